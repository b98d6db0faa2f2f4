//! The doctor's checks of the launch's stages: the init, the home and its seed, the
//! command, the settings, the mask and claude's tool scrub.

#![forbid(unsafe_code)]

#[allow(clippy::wildcard_imports)]
use super::*;

/// The init (issue 12): reported when claude-iso is PID 1, or when an init option or
/// variable was given; absent otherwise (nothing to say about an ordinary launch).
pub(super) fn check_init(args: &InitArgs, config: &Config) -> Option<Check> {
    let pid1 = init::is_pid1();
    let decision = match init::decide(args, &config.env, pid1) {
        Ok(d) => d,
        Err(e) => return Some(check("init", Status::Fail, e.to_string())),
    };
    Some(match (pid1, decision.on) {
        (false, false) if decision.reason == init::Reason::NotPid1 => return None,
        (true, false) => check(
            "init",
            Status::Warn,
            format!(
                "claude-iso is PID 1 but the init is off ({}): the command becomes PID 1, orphans of its tools stay zombies and SIGTERM without a handler is ignored (the runtime waits, then SIGKILLs); drop it, or run under another init (docker run --init, tini)",
                decision.reason.describe()
            ),
        ),
        (false, true) if !init::proc_is_ours() => check(
            "init",
            Status::Warn,
            format!(
                "{}; but /proc is not this PID namespace's, so processes the command leaves cannot be found and are left running: mount a /proc for the namespace (unshare --mount-proc)",
                decision.describe()
            ),
        ),
        _ => check("init", Status::Ok, decision.describe()),
    })
}

pub(super) fn describe_home(home: &HomeState) -> Check {
    let Some(e) = &home.existing else {
        return check(
            "home",
            Status::Ok,
            format!(
                "{}: does not exist yet; the launcher creates it (mode 0700)",
                home.path.display()
            ),
        );
    };
    let Ok(st) = nix::sys::stat::fstat(e.dir()) else {
        return check(
            "home",
            Status::Fail,
            format!("{}: cannot stat", e.canonical.display()),
        );
    };
    let detail = format!(
        "{}: exists, owner uid {}, mode {:04o}",
        e.canonical.display(),
        st.st_uid,
        e.mode
    );
    if e.mode & 0o077 == 0 {
        check("home", Status::Ok, detail)
    } else {
        check(
            "home",
            Status::Warn,
            format!(
                "{detail}; readable by others: the launcher tightens it to 0700 (or run chmod 700 {})",
                e.canonical.display()
            ),
        )
    }
}

pub(super) fn check_seed(
    config: &Config,
    existing: Option<&home::Existing>,
    home_path: &Path,
) -> Check {
    let state = seed::inspect(existing.map(home::Existing::dir), home_path, &config.trust);
    match state {
        Err(e) => check("seed", Status::Fail, e.to_string()),
        Ok(state) => {
            let status = if state.plan == seed::SeedPlan::Replace {
                Status::Warn
            } else {
                Status::Ok
            };
            let detail = match &state.plan {
                seed::SeedPlan::Seeded => state.describe(),
                _ => format!("the launcher {}", state.describe()),
            };
            check(
                "seed",
                status,
                detail.replace("the launcher would", "the launcher will"),
            )
        }
    }
}

pub(super) fn check_command(config: &Config, program: &Result<PathBuf>) -> Check {
    let path = match program {
        Ok(p) => p.clone(),
        Err(e) => {
            return check(
                "command",
                Status::Fail,
                format!(
                    "{e}; install Claude Code (npm install -g @anthropic-ai/claude-code) or add it to PATH"
                ),
            );
        }
    };
    // Never inside a real config directory (a TMPDIR in ~/.claude): see throwaway_base.
    let Ok(scratch) = tempfile::Builder::new()
        .prefix("claude-iso-version.")
        .tempdir_in(throwaway_base(config))
    else {
        return check(
            "command",
            Status::Warn,
            format!(
                "{}: cannot make a temp dir to run --version",
                path.display()
            ),
        );
    };
    // --version needs no credential: run it with none at all.
    let mut vars: Vec<(OsString, OsString)> = config
        .env
        .vars()
        .iter()
        .filter(|(k, _)| !scrub::is_scrubbed(k) && k != TOKEN_VAR && k != "HOME")
        .cloned()
        .collect();
    vars.push(("HOME".into(), scratch.path().into()));
    vars.extend(QUIET_CLAUDE.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    match run_with_timeout(
        &path,
        &["--version"],
        &vars,
        &config.start_dir,
        VERSION_TIMEOUT,
    ) {
        Ok((true, out, _)) => {
            let said = out.lines().next().unwrap_or("").trim();
            let (status, range) = supported_range(said);
            check(
                "command",
                status,
                format!("{} ({said}); {range}", path.display()),
            )
        }
        Ok((false, _, err)) => check(
            "command",
            Status::Fail,
            format!(
                "{}: `claude --version` failed: {}",
                path.display(),
                err.lines().next().unwrap_or("").trim()
            ),
        ),
        Err(e) => check("command", Status::Fail, format!("{}: {e}", path.display())),
    }
}

/// A dotted version's numbers (`2.1.330` of `2.1.330 (Claude Code)`).
pub(super) fn version_numbers(text: &str) -> Option<Vec<u64>> {
    let word = text.split_whitespace().find(|w| w.contains('.'))?;
    let core = word.split(['-', '+']).next()?;
    core.split('.').map(|n| n.parse().ok()).collect()
}

/// Where `claude --version` output falls in the supported range: a warning when older
/// than the oldest supported release, a note when newer than the pin, and a warning when
/// newer than the newest release whose start-up dialogs were measured
/// ([`DIALOGS_MEASURED`](crate::layout::DIALOGS_MEASURED), `docs/claude-dialogs.md`): a
/// question that release added may stop the unattended TUI.
pub(super) fn supported_range(said: &str) -> (Status, String) {
    let (oldest, pinned) = crate::layout::supported_claude();
    let measured = crate::layout::DIALOGS_MEASURED;
    let range = format!(
        "supported: {oldest} to {pinned} (tested; newer releases are checked by CI with --latest)"
    );
    let (Some(v), Some(lo), Some(hi), Some(dialogs)) = (
        version_numbers(said),
        version_numbers(oldest),
        version_numbers(pinned),
        version_numbers(measured),
    ) else {
        return (Status::Ok, format!("version not recognised; {range}"));
    };
    if v < lo {
        (
            Status::Warn,
            format!(
                "OLDER than the oldest supported release; {range}; update claude (the launcher hands claude the token on a descriptor, {TOKEN_FD_VAR}, which is measured to work from {oldest} on: with this claude pass --token-via env if it does not answer)"
            ),
        )
    } else if v > dialogs.clone().max(hi.clone()) {
        (
            Status::Warn,
            format!(
                "newer than the pinned release and than {measured}, the newest whose start-up dialogs were measured (docs/claude-dialogs.md): the interactive TUI may stop on a question claude-iso does not answer yet; type a first prompt in a tmux pane to check; {range}"
            ),
        )
    } else if v > hi {
        (
            Status::Ok,
            format!(
                "newer than the pinned release (start-up dialogs measured up to {measured}); {range}"
            ),
        )
    } else {
        (Status::Ok, range)
    }
}

/// The settings claude would apply for the working directory, judged by the guard (the
/// launcher refuses what this reports, unless allowed on purpose).
pub(super) fn check_project_settings(config: &Config, verdict: &guard::SettingsVerdict) -> Check {
    if verdict.findings.is_empty() {
        let mut detail =
            "no settings file claude would apply brings another credential or destination"
                .to_owned();
        for note in &verdict.unread {
            detail.push_str(&format!("; {note}"));
        }
        return check("project_settings", Status::Ok, detail);
    }
    let lines: Vec<String> = verdict.findings.iter().map(guard::Finding::line).collect();
    if config.allow_project_auth {
        check(
            "project_settings",
            Status::Warn,
            format!(
                "{}; the launcher lets these through (--allow-project-auth)",
                lines.join("; ")
            ),
        )
    } else {
        check(
            "project_settings",
            Status::Fail,
            format!(
                "{}; the launcher refuses to run here (exit 125): remove them, run elsewhere, or pass --allow-project-auth",
                lines.join("; ")
            ),
        )
    }
}

pub(super) fn check_mask(config: &Config, verdict: &mask::Verdict) -> Check {
    let failed = if config.mask == Switch::On {
        Status::Fail
    } else {
        Status::Warn
    };
    match verdict {
        mask::Verdict::Misplaced(why) => check(
            "mask",
            Status::Fail,
            format!("{why}: the launcher will exit 125 from here"),
        ),
        mask::Verdict::Off => check(
            "mask",
            Status::Warn,
            "off (--mask off): the real credential files stay reachable to the command and everything it starts",
        ),
        mask::Verdict::Ready(plan) if plan.ops.is_empty() => check(
            "mask",
            Status::Ok,
            "possible here; no credential file exists to mask",
        ),
        mask::Verdict::Ready(plan) => check(
            "mask",
            Status::Ok,
            format!("possible here: {}", mask::describe(plan).join(", ")),
        ),
        mask::Verdict::Refused(plan, why) => check(
            "mask",
            failed,
            format!(
                "NOT possible here: {why}{}{}",
                if config.mask == Switch::On {
                    "; --mask on: the launcher will exit 125"
                } else {
                    "; the launcher will run isolated by environment only"
                },
                plan.as_ref()
                    .map(|p| format!(" (would mask: {})", mask::describe(p).join(", ")))
                    .unwrap_or_default()
            ),
        ),
    }
}

pub(super) fn check_scrub_tools(config: &Config, home_path: &Path) -> Check {
    // What `off` lets through: the command's value (after --unset and --keep-env).
    let passed = guard::command_env(config)
        .get(tools::SCRUB_VAR)
        .map(ToOwned::to_owned);
    let describe =
        |action: &tools::Action| tools::describe(action, &config.workdir, passed.as_deref());
    match tools::decide(config.scrub_tools, tools::find_bwrap(config, home_path)) {
        Ok(action @ tools::Action::Remove) => check("scrub_tools", Status::Warn, describe(&action)),
        Ok(action) => check("scrub_tools", Status::Ok, describe(&action)),
        Err(e) => check("scrub_tools", Status::Fail, e.to_string()),
    }
}
