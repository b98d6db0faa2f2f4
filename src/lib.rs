//! claude-iso: run Claude Code with only a long-lived setup-token.
//!
//! The pipeline, top to bottom: options → token → command → scratch home (and
//! quarantine) → `.claude.json` seed → child environment → `execve`.

#![forbid(unsafe_code)]

pub mod caller;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod envfile;
pub mod environment;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod home;
pub mod layout;
pub mod report;
pub mod scan;
pub mod scrub;
pub mod seed;
#[cfg(test)]
mod testgen;
pub mod token;

use std::ffi::OsString;

use clap::Parser;

use crate::caller::CallerEnv;
use crate::cli::Cli;
use crate::config::Config;
use crate::environment::Plan;
use crate::error::{EXIT_FAILURE, Error, Result, error_text};
use crate::layout::TOKEN_VAR;
use crate::report::{Report, Verbosity, redact_secrets};

/// The whole program: parses `args`, runs, and returns the exit status (when `execve`
/// did not replace us). `before_exec` runs right before `execve` (the binary uses it to
/// give the command the default SIGPIPE disposition, which needs `unsafe`).
pub fn main(args: impl IntoIterator<Item = OsString>, before_exec: fn()) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
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
    match &cli.subcommand {
        Some(cli::Subcommand::Doctor(args)) => return doctor::main(args, &report),
        Some(cli::Subcommand::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "claude-iso", &mut script);
            // A closed stdout (`| head`) is the reader's choice, not our failure.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
            return 0;
        }
        None => {}
    }
    match launch(&cli, &report, before_exec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("claude-iso: {}", redact_secrets(&e.to_string()));
            e.exit_code()
        }
    }
}

/// clap's help and version go to stdout with 0; a usage error is one line and 125.
fn usage_error(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!(
        "claude-iso: {} (see claude-iso --help)",
        redact_secrets(first)
    );
    EXIT_FAILURE
}

/// Runs the launcher. Returns only for a dry run (`Ok`) or on failure.
fn launch(cli: &Cli, report: &Report, before_exec: fn()) -> Result<i32> {
    let config = Config::new(&cli.launch, CallerEnv::from_process())?;
    let (token, source) = token::load(&config)?;
    report.info(format!("token {} from {source}", token.redacted()));
    if cli.dry_run {
        report.plan(format!("token: {} from {source}", token.redacted()));
    }

    let argv: Vec<OsString> = if cli.command.is_empty() {
        vec![OsString::from("claude")]
    } else {
        cli.command.clone()
    };
    let program = match exec::resolve(&argv[0], config.path_var().as_deref(), &config.start_dir) {
        Ok(p) => Some(p),
        // A dry run still shows the rest of the plan; a real launch stops here.
        Err(e) if cli.dry_run => {
            report.plan(format!(
                "command: {e} (a launch would exit {})",
                e.exit_code()
            ));
            None
        }
        Err(e) => return Err(e),
    };

    let home = home::prepare(&config, cli.dry_run, report)?;
    seed::ensure(&home, &config.trust, cli.dry_run, report)?;

    let child = environment::child_env(
        &config.env,
        &Plan {
            home: &home.path,
            token: &token,
            pwd: config.chdir.then_some(config.workdir.as_path()),
            keep: &config.keep_env,
            unset: &config.unset,
        },
    );
    if !child.removed.is_empty() {
        report.warn(format!(
            "not passing {} to {} (each would override or relocate the token; --keep-env NAME passes one on purpose)",
            child.removed.join(", "),
            argv[0].to_string_lossy()
        ));
    }

    if cli.dry_run {
        print_plan(report, &config, &token, program.as_deref(), &argv, &child);
        return Ok(0);
    }
    let program = program.expect("resolved unless dry run");
    if config.chdir {
        std::env::set_current_dir(&config.workdir).map_err(|e| Error::Cwd {
            path: config.workdir.clone(),
            reason: error_text(&e),
        })?;
    }
    drop(home);
    Err(exec::exec(&program, &argv, &child.vars, before_exec))
}

fn print_plan(
    report: &Report,
    config: &Config,
    token: &token::Token,
    program: Option<&std::path::Path>,
    argv: &[OsString],
    child: &environment::ChildEnv,
) {
    let redact = |s: &str| s.replace(token.expose(), &token.redacted());
    report.plan(format!("cwd: {}", config.workdir.display()));
    if let Some(program) = program {
        report.plan(format!("command: {}", program.display()));
    }
    let shown: Vec<String> = argv
        .iter()
        .map(|a| shell_quote(&redact(&a.to_string_lossy())))
        .collect();
    report.plan(format!("argv: {}", shown.join(" ")));
    for (k, v) in &child.vars {
        let k = k.to_string_lossy();
        let before = config.env.get(&k);
        if before == Some(v.as_os_str()) {
            continue;
        }
        let v = if k == TOKEN_VAR {
            token.redacted()
        } else {
            redact(&v.to_string_lossy())
        };
        report.plan(format!("env: set {k}={v}"));
    }
    for name in &child.removed {
        report.plan(format!("env: unset {name}"));
    }
    report.plan("dry run: nothing changed, nothing run");
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
