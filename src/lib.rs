//! claude-iso: run Claude Code with only a long-lived setup-token.
//!
//! The pipeline, top to bottom: options → token → command → scratch home (and
//! quarantine) → `.claude.json` seed → child environment → `execve`.

#![deny(unsafe_code)]

// Namespaces, /proc, prctl and execve as Linux has them: nothing else is supported.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "claude-iso runs on Linux only (user and mount namespaces, /proc, prctl); build it on Linux, or for a Linux target (--target x86_64-unknown-linux-gnu)"
);

pub mod caller;
pub mod cli;
pub(crate) mod config;
pub mod error;
pub(crate) mod home;
pub mod isolate;
pub(crate) mod launch;
pub mod layout;
pub(crate) mod ops;
pub(crate) mod report;
pub mod scrub;
pub(crate) mod sys;
#[cfg(test)]
mod testgen;
pub mod token;

use std::ffi::OsString;

use clap::Parser;

use crate::cli::Cli;
use crate::error::{Error, Outcome, Result};
use crate::isolate::broker;
use crate::launch::init;
use crate::ops::{doctor, homes};
use crate::report::{Report, Verbosity};
use crate::token::store as tokenstore;

/// The whole program: parses `args`, runs, and returns the exit status (when `execve`
/// did not replace us).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    // The token will be in our memory: no core file, no same-user ptrace, from the start.
    sys::set_non_dumpable();
    init::hold_signals_if_pid1();
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(e) = token::in_arguments(&args) {
        report::error_line(&e.to_string());
        return e.exit_code();
    }
    // The plain launch shapes without clap's command tree (0.12 ms); clap for the rest.
    let cli = match cli::fast::parse(&args).map_or_else(|| Cli::try_parse_from(&args), Ok) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &args),
    };
    let report = Report {
        verbosity: if cli.quiet {
            Verbosity::Quiet
        } else if cli.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
        plans: true,
    };
    let result = match &cli.subcommand {
        Some(sub) => subcommand(sub),
        None => launch::run(&cli, &report),
    };
    if let Err(e) = &result {
        report::error_line(&e.to_string());
    }
    error::exit_status(&result)
}

/// The one dispatcher for subcommands; each returns an outcome or an error.
fn subcommand(sub: &cli::Subcommand) -> Result<Outcome> {
    match sub {
        cli::Subcommand::Doctor(args) => doctor::main(args),
        cli::Subcommand::Token(cli::TokenCommand::Set(args)) => tokenstore::set(args),
        cli::Subcommand::Token(cli::TokenCommand::Status(args)) => tokenstore::status(args),
        cli::Subcommand::Homes(args) => homes::main(args),
        cli::Subcommand::Broker(cli::BrokerCommand::Serve(args)) => broker::serve_main(args),
        cli::Subcommand::Broker(cli::BrokerCommand::Status(args)) => broker::status_main(args),
        cli::Subcommand::Completions { shell } => {
            report::stdout_bytes(&cli::completion_script(*shell));
            Ok(Outcome::Success)
        }
    }
}

/// clap's help and version go to stdout with 0; a usage error is one line and 125.
fn usage_error(e: &clap::Error, args: &[OsString]) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        report::stdout_bytes(e.render().to_string().as_bytes());
        return 0;
    }
    let line = cli::one_line(e);
    let first = line.as_str();
    let err = Error::Usage(match forgotten_separator(e, args) {
        Some(word) => format!("{first}; put `--` before the command: claude-iso -- {word} …"),
        None => format!("{first} (see claude-iso --help)"),
    });
    report::error_line(&err.to_string());
    err.exit_code()
}

/// When a usage error comes from a command given without `--` (`claude-iso claude
/// --print …`, `claude-iso --print …`), the word that should come after `--`: the
/// first argument that is not one of ours.
fn forgotten_separator(e: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
    ) || args.iter().any(|a| a == "--")
    {
        return None;
    }
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let arg = arg.to_string_lossy();
        let ours = cmd.get_arguments().find(|a| {
            a.get_long().is_some_and(|l| {
                arg.strip_prefix("--")
                    .is_some_and(|r| r == l || r.starts_with(&format!("{l}=")))
            }) || a
                .get_short()
                .is_some_and(|c| arg.len() == 2 && arg.starts_with('-') && arg.ends_with(c))
        });
        match ours {
            Some(a) => {
                // Skip the value of an option that takes one (`--home DIR`).
                if a.get_action().takes_values() && !arg.contains('=') {
                    rest.next();
                }
            }
            None if cmd.find_subcommand(arg.as_ref()).is_some() => return None,
            None if arg.starts_with('-') => return Some(format!("claude {arg}")),
            None => return Some(arg.into_owned()),
        }
    }
    None
}
