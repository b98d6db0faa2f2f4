//! The launch, as a pipeline of stages: [`plan::inspect`] checks everything and returns
//! a [`plan::LaunchPlan`] without changing anything; [`print::print`] shows it
//! (`--dry-run`); [`apply::apply`] performs it and ends in the `execve` ([`exec`]). The
//! init ([`init`]) forks in front of it all, before the token or any project file is
//! read.

#![forbid(unsafe_code)]

pub(crate) mod apply;
pub(crate) mod exec;
pub(crate) mod init;
pub(crate) mod plan;
pub(crate) mod print;

use crate::caller::CallerEnv;
use crate::cli::Cli;
use crate::config::Config;
use crate::error::{Outcome, Result};
use crate::report::Report;
use plan::Purpose;

/// Runs the launcher. Returns only for a dry run (`Ok`), for the init when the command
/// ended, or on failure.
///
/// # Errors
/// Whatever stage refuses (125), or the command not found or not runnable (127/126).
pub(crate) fn run(cli: &Cli, report: &Report) -> Result<Outcome> {
    let mut config = Config::new(&cli.launch, CallerEnv::from_process())?;
    let init = init::decide(&cli.init, &config.env, init::is_pid1())?;
    let purpose = if cli.dry_run {
        Purpose::Show
    } else {
        Purpose::Launch
    };
    // The init forks before the token or any project file is read, so it never holds
    // them; the child carries on below exactly as without the init.
    if init.on && purpose == Purpose::Launch {
        if let init::Side::Init(status) = init::start(&init, &mut config.env, report)? {
            return Ok(Outcome::Exited(status));
        }
    }
    let plan = plan::inspect(config, &cli.command, &cli.share, purpose, report)?;
    if purpose == Purpose::Show {
        let init = init.on.then(|| init.describe());
        print::print(&plan, init.as_deref(), report);
        return Ok(Outcome::Success);
    }
    match apply::apply(plan, report)? {}
}
