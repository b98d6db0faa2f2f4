//! `claude-iso doctor`: inspect everything the launcher would do, change nothing.
//!
//! One check per line (`ok`, `warn`, `fail`), or JSON with `--json`. Exit 0 when no
//! check failed, 1 otherwise. Tokens appear as prefix and length only.

#![forbid(unsafe_code)]

mod credentials;
mod live;
mod stages;

use credentials::*;
use live::*;
use stages::*;
use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::caller::CallerEnv;
use crate::cli::{DoctorArgs, InitArgs, LaunchArgs, Switch};
use crate::config::Config;
use crate::error::{Outcome, Result};
use crate::home::seed;
use crate::home::{self, HomeState};
use crate::isolate::environment::{self, ChildEnvPlan};
use crate::isolate::guard;
use crate::isolate::mask;
use crate::isolate::tools;
use crate::launch::{init, plan};
use crate::layout::{
    CLAUDE_DIR, CREDENTIALS, MANAGED_SETTINGS, REMOTE_CREDENTIALS, REMOTE_CREDENTIALS_DIR,
    TOKEN_FD_VAR, TOKEN_VAR,
};
use crate::scrub;
use crate::token::{self, Source, Token};

/// The prompt of `--live`, as the claude-auth-sync runbook uses it: `claude auth status`
/// can report success during a real 401, a real request cannot.
pub(crate) const LIVE_PROMPT: &str = "Reply with exactly AUTH_OK and nothing else.";
const LIVE_ANSWER: &str = "AUTH_OK";
const LIVE_TIMEOUT: Duration = Duration::from_secs(90);
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);
/// Keeps claude from updating itself or phoning home while we probe it.
const QUIET_CLAUDE: &[(&str, &str)] = &[
    ("DISABLE_AUTOUPDATER", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: crate::report::redact_secrets(&detail.into()),
    }
}

/// Runs the doctor: [`Outcome::Success`] when no check failed, else
/// [`Outcome::Unhealthy`].
///
/// # Errors
/// Bad options (125).
pub(crate) fn main(args: &DoctorArgs) -> Result<Outcome> {
    let config = Config::new(&args.launch, CallerEnv::from_process())?;
    let mut checks = run_checks(&config, &args.launch, &args.init, &args.share, args.live);
    checks.extend(check_init(&args.init, &config));
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    // Write errors (a closed pipe) are ignored: the exit status still tells.
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = json!({
            "ok": ok,
            "checks": checks.iter().map(|c| json!({
                "name": c.name,
                "status": c.status.to_string(),
                "detail": c.detail,
            })).collect::<Vec<Value>>(),
        });
        let _ = writeln!(out, "{doc:#}");
    } else {
        // On a terminal, each detail is folded to 100 columns under its own column; a
        // pipe or a file gets one line per check (for grep).
        let width = nix::unistd::isatty(std::io::stdout())
            .unwrap_or(false)
            .then_some(TEXT_WIDTH);
        for c in &checks {
            let head = format!("{:<5} {:<17} ", c.status.to_string(), c.name);
            let _ = writeln!(out, "{head}{}", fold(&c.detail, head.len(), width));
        }
        let _ = writeln!(out, "{}", summary(&checks));
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Unhealthy
    })
}

/// The CA bundles distributions install as the system's trust store (Debian/Ubuntu,
/// Fedora/RHEL, openSUSE, Alpine/Arch, and the older RHEL path).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Whether `path` is (or resolves to) one of the system's CA bundles.
fn names_system_bundle(path: &std::ffi::OsStr) -> bool {
    let real = |p: &Path| crate::sys::fsutil::realpath(p).unwrap_or_else(|_| p.to_owned());
    let path = real(Path::new(path));
    SYSTEM_CA_BUNDLES
        .iter()
        .any(|b| Path::new(b) == path || real(Path::new(b)) == path)
}

/// The width a report on a terminal keeps to.
const TEXT_WIDTH: usize = 100;

/// `text` folded at spaces so that, after `indent` columns, no line passes `width`
/// (a word longer than the room stays whole); continuation lines are indented.
fn fold(text: &str, indent: usize, width: Option<usize>) -> String {
    let Some(width) = width else {
        return text.to_owned();
    };
    let room = width.saturating_sub(indent).max(20);
    let mut out = String::new();
    let mut line_len = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > room {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            line_len = 0;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += len;
    }
    out
}

/// The report's last line: how many checks passed, warned and failed, and what to do.
fn summary(checks: &[Check]) -> String {
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let (ok, warn, fail) = (count(Status::Ok), count(Status::Warn), count(Status::Fail));
    let verdict = if fail > 0 {
        "fix the `fail` lines (exit status 1)"
    } else if warn > 0 {
        "nothing failed; read the `warn` lines"
    } else {
        "every check passed"
    };
    format!("summary: {ok} ok, {warn} warn, {fail} fail: {verdict}")
}

/// All checks, in report order.
#[must_use]
/// Every stage of a launch of claude, run by the launch's own stage functions on the
/// inputs a launch gives them (the home's canonical path, the command, the shares), each
/// result kept for its check: doctor cannot judge anything else than a launch would.
pub(crate) struct Stages {
    /// `--share`, when any was asked for.
    pub shares: Option<Result<plan::Shares>>,
    /// `claude`, resolved on `PATH`.
    pub program: Result<PathBuf>,
    pub home: Result<HomeState>,
    /// The home a launch would use: its canonical path when it exists.
    pub home_path: PathBuf,
    pub settings: guard::SettingsVerdict,
    pub mask: mask::Verdict,
}

impl Stages {
    /// Runs the stages; changes nothing (the mask is tried in a helper not joined).
    pub(crate) fn inspect(config: &Config, share_args: &[OsString]) -> Self {
        let quiet = crate::report::Report::silent();
        // In the home of the claude-iso session this runs in, a launch shares nothing (the
        // outer run's copies are in use): nothing to judge.
        let shares = (!share_args.is_empty() && !plan::in_outer_home(config))
            .then(|| plan::shares(config, share_args, false, &quiet));
        let argv = [OsString::from("claude")];
        let program = plan::program(config, &argv[0]);
        let home = home::inspect(config);
        let home_path = home
            .as_ref()
            .map_or_else(|_| config.home.clone(), HomeState::canonical);
        let no_shares = plan::Shares::default();
        let planned = match &shares {
            Some(Ok(s)) => s,
            _ => &no_shares,
        };
        let settings = plan::settings(config, &home_path, planned, program.as_deref().ok(), &argv);
        let shared = mask::shared_paths(&planned.list, &home_path);
        let mask = match plan::mask_stage(
            config,
            &home_path,
            program.as_deref().ok(),
            &shared,
            plan::Purpose::Show,
            &quiet,
        ) {
            Ok(plan::MaskStage::Show(verdict)) => verdict,
            Ok(plan::MaskStage::Launch(_)) => unreachable!("shown, not launched"),
            Err(e) => mask::Verdict::Misplaced(e.to_string()),
        };
        Stages {
            shares,
            program,
            home,
            home_path,
            settings,
            mask,
        }
    }
}

pub(crate) fn run_checks(
    config: &Config,
    launch: &LaunchArgs,
    init: &InitArgs,
    share_args: &[OsString],
    live: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    // Every stage as a launch runs it; the mask's forks a helper: done first, while no
    // thread of ours runs.
    let stages = Stages::inspect(config, share_args);
    let mask_check = check_mask(config, &stages.mask);

    // A shared broker holds the token (`--broker`, or the broker of the claude-iso session
    // this runs in, as a launch would use it): this user needs none, nor an env file.
    let shared = match plan::broker_choice(config, std::ffi::OsStr::new("claude")) {
        Ok(plan::BrokerChoice::Shared(socket)) => Some(socket),
        _ => None,
    };
    let (token_check, winner) = match &shared {
        Some(socket) => (
            check(
                "token",
                Status::Ok,
                format!(
                    "none needed: the shared broker at {} holds it",
                    socket.display()
                ),
            ),
            None,
        ),
        None => check_token(config),
    };
    out.push(token_check);
    if shared.is_none() {
        out.push(check_env_file(config, winner.as_ref().map(|(_, s)| s)));
    }

    // The launcher's own inspection: doctor reports exactly what a launch would do.
    out.extend(home_checks(config, &stages));
    out.push(check_command(config, &stages.program));
    out.push(check_environment(
        config,
        winner.as_ref().map(|(t, _)| t),
        &stages.home_path,
    ));
    out.push(check_project_settings(config, &stages.settings));
    out.extend(share_check(stages.shares.as_ref()));
    let (via_check, broker_plan) = check_token_via(config, shared.as_deref());
    out.push(via_check);
    out.push(check_destination(
        &stages.settings,
        broker_plan.as_ref(),
        shared.as_deref(),
    ));
    out.push(mask_check);
    out.push(check_scrub_tools(config, &stages.home_path));
    out.push(check_unscrubbable(
        config,
        Path::new(REMOTE_CREDENTIALS_DIR),
        Path::new(MANAGED_SETTINGS),
    ));
    if live {
        out.push(match (&winner, &shared) {
            (Some((token, _)), _) => check_live(config, launch, init, share_args, Some(token)),
            (None, Some(_)) => check_live(config, launch, init, share_args, None),
            (None, None) => check("live", Status::Fail, "no usable token to test"),
        });
    }
    out
}

/// The home, its credentials file and its seed, as the launch inspected them.
fn home_checks(config: &Config, stages: &Stages) -> [Check; 3] {
    let home = &stages.home;
    let existing = home.as_ref().ok().and_then(|h| h.existing.as_ref());
    let described = match home {
        Ok(h) => describe_home(h),
        Err(e) => check("home", Status::Fail, e.to_string()),
    };
    let credentials = match (home, existing) {
        (Err(_), _) => check(
            "credentials",
            Status::Warn,
            "not checked: the launcher refuses this home (see home), so it will not touch it",
        ),
        (Ok(_), Some(e)) if e.credentials => check(
            "credentials",
            Status::Warn,
            format!(
                "{} exists: claude would fall back to it after a 401; the launcher will move it aside (kept)",
                e.canonical.join(CLAUDE_DIR).join(CREDENTIALS).display()
            ),
        ),
        (Ok(_), _) => check(
            "credentials",
            Status::Ok,
            "no credentials file in the scratch home",
        ),
    };
    let seed = match home {
        Ok(_) => check_seed(config, existing, &stages.home_path),
        Err(_) => check(
            "seed",
            Status::Warn,
            "not checked: the launcher refuses this home (see home)",
        ),
    };
    [described, credentials, seed]
}

/// `--share`, when any was asked for.
fn share_check(shares: Option<&Result<plan::Shares>>) -> Option<Check> {
    Some(match shares? {
        Ok(s) => check(
            "share",
            Status::Ok,
            format!(
                "the launcher will copy in, read-only: {}",
                s.list
                    .iter()
                    .map(|s| s.dest.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Err(e) => check(
            "share",
            Status::Fail,
            format!("{e}; the launcher refuses to run (exit 125)"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(env: &[(&str, &str)]) -> Config {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["claude-iso"]).unwrap();
        let mut vars: Vec<(&str, &str)> = vec![("HOME", "/nonexistent/home")];
        vars.extend_from_slice(env);
        Config::new(&cli.launch, vars.into_iter().collect()).unwrap()
    }

    #[test]
    fn versions_against_the_supported_range() {
        let (oldest, pinned) = crate::layout::supported_claude();
        assert_eq!(
            supported_range(&format!("{oldest} (Claude Code)")).0,
            Status::Ok
        );
        assert_eq!(
            supported_range(&format!("{pinned} (Claude Code)")).0,
            Status::Ok
        );
        let (status, detail) = supported_range("2.0.1 (Claude Code)");
        assert_eq!(status, Status::Warn);
        assert!(
            detail.contains("OLDER") && detail.contains(oldest),
            "{detail}"
        );
        // Outside the range the token's descriptor is not known to work: say the way out.
        assert!(
            detail.contains("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR")
                && detail.contains("--token-via env"),
            "{detail}"
        );
        // Issue 27: newer than the newest release whose dialogs were measured: a warning.
        let measured = crate::layout::DIALOGS_MEASURED;
        let (status, detail) = supported_range(&format!("{measured} (Claude Code)"));
        assert_eq!(status, Status::Ok, "{detail}");
        let mut next = version_numbers(measured).unwrap();
        *next.last_mut().unwrap() += 1;
        let next = next
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        for newer in [next.as_str(), "99.0.0"] {
            let (status, detail) = supported_range(&format!("{newer} (Claude Code)"));
            assert_eq!(status, Status::Warn, "{newer}: {detail}");
            assert!(detail.contains("newer than the pinned"), "{detail}");
            assert!(
                detail.contains(&format!(
                    "than {measured}, the newest whose start-up dialogs were measured"
                )),
                "{detail}"
            );
        }
        let (status, detail) = supported_range("garbage");
        assert_eq!(status, Status::Ok);
        assert!(detail.contains("not recognised"), "{detail}");
    }

    #[test]
    fn unscrubbable_findings() {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let managed = dir.path().join("managed-settings.json");
        let quiet = config_with(&[("HTTPS_PROXY", "http://proxy:3128")]);
        let c = check_unscrubbable(&quiet, &remote, &managed);
        assert_eq!(c.status, Status::Ok, "{}", c.detail);

        std::fs::create_dir(&remote).unwrap();
        std::fs::write(remote.join(".api_key"), "sk-ant-api03-x").unwrap();
        std::fs::write(
            &managed,
            r#"{"apiKeyHelper":"echo k","env":{"ANTHROPIC_API_KEY":"sk-ant-api03-y"}}"#,
        )
        .unwrap();
        let loud = config_with(&[
            ("NODE_EXTRA_CA_CERTS", "/etc/mitm.pem"),
            ("HTTPS_PROXY", "http://proxy:3128"),
        ]);
        let c = check_unscrubbable(&loud, &remote, &managed);
        assert_eq!(c.status, Status::Warn);
        for needle in [
            ".api_key",
            "NODE_EXTRA_CA_CERTS",
            "HTTPS_PROXY",
            "apiKeyHelper",
            "env.ANTHROPIC_API_KEY",
        ] {
            assert!(c.detail.contains(needle), "{needle}: {}", c.detail);
        }
        assert!(!c.detail.contains("sk-ant-api03-y"), "{}", c.detail);

        // TLS switches matter only with a proxy or a foreign base URL.
        let (remote, managed) = (dir.path().join("none"), dir.path().join("none.json"));
        let tls_only = config_with(&[("NODE_TLS_REJECT_UNAUTHORIZED", "0")]);
        assert_eq!(
            check_unscrubbable(&tls_only, &remote, &managed).status,
            Status::Ok
        );
        let anthropic = config_with(&[
            ("NODE_TLS_REJECT_UNAUTHORIZED", "0"),
            ("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
        ]);
        assert_eq!(
            check_unscrubbable(&anthropic, &remote, &managed).status,
            Status::Ok
        );
        let foreign = config_with(&[
            ("NODE_TLS_REJECT_UNAUTHORIZED", "0"),
            ("ANTHROPIC_BASE_URL", "https://llm.example.com/v1"),
        ]);
        let c = check_unscrubbable(&foreign, &remote, &managed);
        assert_eq!(c.status, Status::Warn);
        assert!(c.detail.contains("llm.example.com"), "{}", c.detail);
    }

    #[test]
    fn the_unscrubbable_check_never_shows_userinfo() {
        // Found by review: a second host parser here printed `alice:s3cr` for a password
        // holding a `/`.
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let managed = dir.path().join("managed.json");
        for url in [
            "http://alice:s3cr/et@llm.example.com",
            "http://alice:s3cr?et@llm.example.com/v1",
            "http://alice:s3cr#et@llm.example.com",
            "https://alice:s3cret@llm.example.com:8443/v1",
        ] {
            let config = config_with(&[
                ("ANTHROPIC_BASE_URL", url),
                ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca.pem"),
            ]);
            let c = check_unscrubbable(&config, &remote, &managed);
            assert_eq!(c.status, Status::Warn, "{url}: {}", c.detail);
            assert!(!c.detail.contains("alice"), "{url}: {}", c.detail);
            assert!(!c.detail.contains("s3cr"), "{url}: {}", c.detail);
        }
        let config = config_with(&[
            ("ANTHROPIC_BASE_URL", "https://api.anthropic.com"),
            ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca.pem"),
        ]);
        assert_eq!(
            check_unscrubbable(&config, &remote, &managed).status,
            Status::Ok
        );
    }

    #[test]
    fn a_ca_variable_naming_the_system_bundle_is_not_an_extra_ca() {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote");
        let managed = dir.path().join("managed.json");
        let proxied = |ca: &str| {
            config_with(&[
                ("HTTPS_PROXY", "http://proxy.example.com:3128"),
                ("NODE_EXTRA_CA_CERTS", ca),
            ])
        };
        for ca in SYSTEM_CA_BUNDLES {
            let c = check_unscrubbable(&proxied(ca), &remote, &managed);
            assert_eq!(c.status, Status::Ok, "{ca}: {}", c.detail);
        }
        let c = check_unscrubbable(&proxied("/etc/mitm.pem"), &remote, &managed);
        assert_eq!(c.status, Status::Warn, "{}", c.detail);
        assert!(c.detail.contains("NODE_EXTRA_CA_CERTS"), "{}", c.detail);
    }

    #[test]
    fn summary_counts_and_folds() {
        let c = |status| check("x", status, "d");
        assert_eq!(
            summary(&[c(Status::Ok), c(Status::Ok)]),
            "summary: 2 ok, 0 warn, 0 fail: every check passed"
        );
        assert_eq!(
            summary(&[c(Status::Ok), c(Status::Warn), c(Status::Fail)]),
            "summary: 1 ok, 1 warn, 1 fail: fix the `fail` lines (exit status 1)"
        );
        let long = "word ".repeat(60);
        let folded = fold(long.trim_end(), 24, Some(TEXT_WIDTH));
        assert!(folded.lines().count() > 1);
        for line in folded.lines() {
            assert!(24 + line.trim_start().len() <= TEXT_WIDTH, "{line:?}");
        }
        assert_eq!(fold("a b", 24, None), "a b");
    }

    #[test]
    fn userinfo_hidden_in_output() {
        let said = super::hide_userinfo(
            "API Error: https://user:Pw9x7/Secret@api.example.com/v1 and https://a:b%40c@h/",
            Some("https://user:Pw9x7/Secret@api.example.com/v1"),
        );
        assert!(!said.contains("Pw9x7") && !said.contains("b%40c"), "{said}");
        assert!(said.contains("api.example.com"), "{said}");
    }
}
