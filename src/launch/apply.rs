//! A launch performs its [`LaunchPlan`]: the refusals kept in the plan first, then the
//! changes in order (home, stamp, seed, shares, broker, mask, token pipe), and the exec.

#![forbid(unsafe_code)]

use std::ffi::OsStr;

use crate::config::TokenVia;
use crate::error::{Error, Result, error_text};
use crate::home::{self, seed, stamp, warned};
use crate::isolate::{broker, guard, mask, share};
use crate::launch::plan::{self, BrokerChoice, LaunchPlan, MaskStage};
use crate::launch::{exec, init};
use crate::layout::TOKEN_FD_VAR;
use crate::report::Report;
use crate::token;

/// Performs the plan and replaces this process with the command. Returns only on
/// failure.
///
/// # Errors
/// A refusal kept in the plan, a change that fails, or the exec (125/126/127).
pub(crate) fn apply(plan: LaunchPlan, report: &Report) -> Result<std::convert::Infallible> {
    plan.refusal()?;
    // What the inspection learnt of paths is not carried into the changes.
    crate::sys::fsutil::forget_paths();
    let LaunchPlan {
        config,
        argv,
        outer_home,
        shares,
        broker,
        token,
        program,
        home: home_state,
        home_path,
        settings,
        seed: seed_state,
        via,
        mut child,
        mask,
        ..
    } = plan;
    let program = program?;
    let_through(&settings, &broker, report);
    if let Some((token, source)) = &token {
        token::store::launch_notes(&config, source, token, report, false);
    }
    let mask_plan = match mask {
        MaskStage::Launch(p) => p,
        MaskStage::Show(_) => None,
    };
    // Claimed (`home::Claim`) until the exec: `homes prune` cannot take it meanwhile.
    let home = home::apply(&config, home_state, report)?;
    if let Some(warning) = plan::removed_warning(&child, &argv[0]) {
        warned::warn_daily(&home, report, &warning);
    }
    stamp::stamp_launch(&home)?;
    seed::apply(&home, &seed_state, report)?;
    if !outer_home {
        share::apply(&config, &home, &shares.list, &shares.limits, report)?;
    }
    if home.path != home_path {
        // Created just now: the command gets the canonical path of what was made.
        child.set("HOME", home.path.as_os_str());
    }
    // The broker is forked before the mask: it stays outside the command's namespaces.
    if let (BrokerChoice::Own(b), Some((token, _))) = (&broker, &token) {
        broker::start(b, token)?;
    }
    // The real credential files are masked from here on (home and seed needed the real
    // filesystem); the namespace starts the process at its `/`, hence the change of
    // directory.
    let fallback = |warning: &str| warned::warn_daily(&home, report, warning);
    let masked = mask::launch(&config, mask_plan, &home.path, report, &fallback)?;
    if let (BrokerChoice::None, Some((token, _)), TokenVia::Fd) = (&broker, &token, via) {
        let floor = token::pipe::token_fd_floor(config.env.get("LISTEN_FDS"));
        let fd = token::pipe::token_pipe(token, floor)?;
        child.set(TOKEN_FD_VAR, OsStr::new(&fd.to_string()));
    }
    drop(token);
    if config.chdir || masked {
        std::env::set_current_dir(&config.workdir).map_err(|e| Error::Cwd {
            path: config.workdir.clone(),
            reason: error_text(&e),
        })?;
    }
    let prepared = exec::prepare(&program, &argv, &child.vars)?;
    // Released by the exec (close-on-exec), once the command has the home as `HOME`.
    let _claim = home.into_claim();
    // The mask's helpers, released earlier, must not become the command's children.
    mask::reap_helpers();
    init::release_held_signals();
    let errno = exec::exec(&prepared);
    Err(exec::exec_error(errno, prepared.shown()))
}

/// Settings findings let through with `--allow-project-auth`: one warning each. Through a
/// broker, what a finding says claude would do with the token cannot happen: the broker
/// sends it only where it forwards.
fn let_through(settings: &guard::SettingsVerdict, broker: &BrokerChoice, report: &Report) {
    let through = match broker {
        BrokerChoice::None => String::new(),
        BrokerChoice::Own(b) => format!(
            " (claude talks through the broker, so the token still goes only to {})",
            b.destination_line()
        ),
        BrokerChoice::Shared(socket) => format!(
            " (claude talks through the shared broker at {}, which alone holds the token)",
            socket.display()
        ),
    };
    for finding in &settings.findings {
        report.warn(format!(
            "letting through on purpose: {}{through}",
            finding.line()
        ));
    }
}
