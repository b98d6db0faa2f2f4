//! `claude-iso doctor`: inspect everything the launcher would do, change nothing.
//!
//! One check per line (`ok`, `warn`, `fail`), or JSON with `--json`. Exit 0 when no
//! check failed, 1 otherwise. Tokens appear as prefix and length only.

#![forbid(unsafe_code)]

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
use crate::isolate::environment::{self, Plan};
use crate::isolate::guard;
use crate::isolate::mask;
use crate::isolate::tools;
use crate::launch::init;
use crate::layout::{
    CLAUDE_DIR, CREDENTIALS, MANAGED_SETTINGS, REMOTE_CREDENTIALS, REMOTE_CREDENTIALS_DIR,
    TOKEN_FD_VAR, TOKEN_VAR,
};
use crate::scrub;
use crate::token::{self, Source, Token};

/// The prompt of `--live`, as the claude-auth-sync runbook uses it: `claude auth status`
/// can report success during a real 401, a real request cannot.
pub const LIVE_PROMPT: &str = "Reply with exactly AUTH_OK and nothing else.";
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
pub enum Status {
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
pub struct Check {
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
pub fn main(args: &DoctorArgs) -> Result<Outcome> {
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
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
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
pub fn run_checks(
    config: &Config,
    launch: &LaunchArgs,
    init: &InitArgs,
    share_args: &[OsString],
    live: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    // Forks a helper: done first, while no thread of ours runs.
    let mask_check = check_mask(config);

    // A shared broker holds the token: this user needs none (nor an env file).
    let (token_check, winner) = match &config.broker {
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
    if config.broker.is_none() {
        out.push(check_env_file(config, winner.as_ref().map(|(_, s)| s)));
    }

    // The launcher's own inspection: doctor reports exactly what a launch would do.
    let home = home::inspect(config);
    out.push(match &home {
        Ok(h) => describe_home(h),
        Err(e) => check("home", Status::Fail, e.to_string()),
    });
    let existing = home.as_ref().ok().and_then(|h| h.existing.as_ref());
    out.push(match (&home, existing) {
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
    });
    out.push(match &home {
        Ok(_) => check_seed(config, existing),
        Err(_) => check(
            "seed",
            Status::Warn,
            "not checked: the launcher refuses this home (see home)",
        ),
    });
    out.push(check_command(config));
    out.push(check_environment(config, winner.as_ref().map(|(t, _)| t)));
    // The shares, judged as the launcher judges them (before anything is created).
    let shares = (!share_args.is_empty()).then(|| {
        let quiet = crate::report::Report {
            verbosity: crate::report::Verbosity::Quiet,
            plans: false,
        };
        crate::isolate::share::plan(&config.real_home(), &config.xdg_config_home(), share_args)
            .and_then(|planned| {
                let limits = mask::share_limits(config);
                crate::isolate::share::check(
                    config,
                    &planned,
                    &limits,
                    config.allow_project_auth,
                    &quiet,
                )
            })
    });
    let shared_user = match &shares {
        Some(Ok(s)) => crate::isolate::share::user_settings(s),
        _ => guard::Shared::default(),
    };
    let verdict = guard::inspect(
        config,
        &config.home,
        shared_user,
        &crate::isolate::share::own_copies(&config.home),
        guard::Command::default(),
    );
    out.push(check_project_settings(config, &verdict));
    match &shares {
        None => {}
        Some(Ok(s)) => out.push(check(
            "share",
            Status::Ok,
            format!(
                "the launcher will copy in, read-only: {}",
                s.iter()
                    .map(|s| s.dest.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Some(Err(e)) => out.push(check(
            "share",
            Status::Fail,
            format!("{e}; the launcher refuses to run (exit 125)"),
        )),
    }
    let (via_check, broker_plan) = check_token_via(config);
    out.push(via_check);
    out.push(check_destination(&verdict, broker_plan.as_ref(), config));
    out.push(mask_check);
    out.push(check_scrub_tools(config));
    out.push(check_unscrubbable(
        config,
        Path::new(REMOTE_CREDENTIALS_DIR),
        Path::new(MANAGED_SETTINGS),
    ));
    if live {
        out.push(match (&winner, &config.broker) {
            (Some((token, _)), _) => check_live(config, launch, init, share_args, Some(token)),
            (None, Some(_)) => check_live(config, launch, init, share_args, None),
            (None, None) => check("live", Status::Fail, "no usable token to test"),
        });
    }
    out
}

/// The init (issue 12): reported when claude-iso is PID 1, or when an init option or
/// variable was given; absent otherwise (nothing to say about an ordinary launch).
fn check_init(args: &InitArgs, config: &Config) -> Option<Check> {
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

fn check_token(config: &Config) -> (Check, Option<(Token, Source)>) {
    let mut all = token::candidates(config);
    if config.env_file.is_some() {
        all.extend(token::default_candidates(config));
    }
    let present: Vec<&Source> = all
        .iter()
        .filter(|s| token::source_exists(config, s))
        .collect();
    let Some(first) = present.first() else {
        return (
            check(
                "token",
                Status::Fail,
                token::load(config)
                    .err()
                    .map_or_else(String::new, |e| e.to_string()),
            ),
            None,
        );
    };
    let token = match token::read_source(config, first) {
        Ok(t) => t,
        Err(e) => return (check("token", Status::Fail, e.to_string()), None),
    };
    let mut status = Status::Ok;
    let mut others = Vec::new();
    for other in &present[1..] {
        let verdict = match token::read_source(config, other) {
            Ok(t) if t == token => "same token",
            Ok(_) => {
                status = Status::Warn;
                "a DIFFERENT token"
            }
            Err(_) => "unusable",
        };
        others.push(format!("{other} ({verdict})"));
    }
    let mut detail = format!("{} from {first}", token.redacted());
    if !others.is_empty() {
        detail.push_str(&format!("; also present: {}", others.join(", ")));
        if status == Status::Warn {
            detail.push_str(
                "; fix: keep one token (the first source wins, so the others are stale copies)",
            );
        }
    }
    let source = (*first).clone();
    match crate::token::store::recorded(config, &source, &token) {
        crate::token::store::Recorded::Known { life, .. } => {
            detail.push_str(&format!("; {}", life.describe()));
            if let Some(w) = life.warning(crate::token::store::STATUS_WARN_DAYS) {
                status = if life.days_left() < 0 {
                    Status::Fail
                } else {
                    Status::Warn
                };
                detail.push_str(&format!("; {w}"));
            }
        }
        crate::token::store::Recorded::Invalid { warning, .. } => {
            if status == Status::Ok {
                status = Status::Warn;
            }
            detail.push_str(&format!("; age unknown: {warning}"));
        }
        crate::token::store::Recorded::Unknown => {
            detail.push_str("; age unknown (`claude-iso token set` records it)");
        }
    }
    (check("token", status, detail), Some((token, source)))
}

fn check_env_file(config: &Config, winner: Option<&Source>) -> Check {
    let path = match winner {
        Some(Source::EnvFile(p) | Source::CredentialsDirectory(p)) => p.clone(),
        Some(Source::Environment) => {
            return check(
                "env_file",
                Status::Ok,
                "none in use: the token comes from the environment",
            );
        }
        None => match token::candidates(config)
            .into_iter()
            .find(|s| token::source_exists(config, s))
        {
            Some(Source::EnvFile(p) | Source::CredentialsDirectory(p)) => p,
            _ => return check("env_file", Status::Fail, "no env file found"),
        },
    };
    let systemd = token::credentials_directory(config).is_some_and(|d| path.starts_with(d));
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            return check(
                "env_file",
                Status::Fail,
                format!("{}: {}", path.display(), crate::error::error_text(&e)),
            );
        }
    };
    let facts = format!(
        "{}: owner uid {}, mode {:04o}",
        path.display(),
        meta.uid(),
        meta.mode() & 0o7777
    );
    let source = if systemd {
        Source::CredentialsDirectory(path.clone())
    } else {
        Source::EnvFile(path.clone())
    };
    let others = crate::token::store::other_variables(config, &source);
    let facts = if others.is_empty() {
        facts
    } else {
        format!(
            "{facts}; not exported (only {TOKEN_VAR} is read from it): {}",
            others.join(", ")
        )
    };
    match token::read_private_file(&path, token::credentials_directory(config)) {
        Ok(_) => check(
            "env_file",
            Status::Ok,
            if systemd {
                format!("{facts} (systemd credential)")
            } else {
                facts
            },
        ),
        Err(e) => check("env_file", Status::Fail, e.to_string()),
    }
}

fn describe_home(home: &HomeState) -> Check {
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

fn check_seed(config: &Config, existing: Option<&home::Existing>) -> Check {
    let state = seed::inspect(
        existing.map(home::Existing::dir),
        existing.map_or(&config.home, |e| &e.canonical),
        &config.trust,
    );
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

fn check_command(config: &Config) -> Check {
    let path = match crate::launch::exec::resolve(
        "claude".as_ref(),
        config.path_var().as_deref(),
        &config.start_dir,
    ) {
        Ok(p) => p,
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

fn check_environment(config: &Config, token: Option<&Token>) -> Check {
    let placeholder;
    let token = if let Some(t) = token {
        t
    } else {
        placeholder = Token::parse(&format!("sk-ant-oat01-placeholder{}", "x".repeat(84)))
            .expect("valid placeholder");
        &placeholder
    };
    let child = environment::child_env(
        &config.env,
        &Plan {
            home: &config.home,
            token: environment::Delivery::Env(token),
            pwd: None,
            keep: &config.keep_env,
            unset: &config.unset,
        },
    );
    let mut notes = Vec::new();
    if !child.removed.is_empty() {
        notes.push(format!(
            "the launcher will remove {} (each overrides or relocates the token)",
            child.removed.join(", ")
        ));
    }
    // What the command gets (after the scrub, --unset and --keep-env), not the caller's.
    let command_env = guard::command_env(config);
    for name in
        std::iter::once(guard::BASE_URL_VAR).chain(guard::OTHER_API_URL_VARS.iter().copied())
    {
        if let Some(url) = command_env.get(name).filter(|v| !v.is_empty()) {
            notes.push(format!(
                "{name} is set: the token will be sent to {}; unset it unless you trust that host",
                guard::origin(&url.to_string_lossy())
            ));
        }
    }
    for name in &config.keep_env {
        if scrub::is_scrubbed(std::ffi::OsStr::new(name)) && config.env.get(name).is_some() {
            notes.push(format!("--keep-env passes {name} through on purpose"));
        }
    }
    if notes.is_empty() {
        check(
            "environment",
            Status::Ok,
            "no credential-bearing variables set",
        )
    } else {
        check("environment", Status::Warn, notes.join("; "))
    }
}

/// A dotted version's numbers (`2.1.330` of `2.1.330 (Claude Code)`).
fn version_numbers(text: &str) -> Option<Vec<u64>> {
    let word = text.split_whitespace().find(|w| w.contains('.'))?;
    let core = word.split(['-', '+']).next()?;
    core.split('.').map(|n| n.parse().ok()).collect()
}

/// Where `claude --version` output falls in the supported range: a warning when older
/// than the oldest supported release, a note when newer than the pin, and a warning when
/// newer than the newest release whose start-up dialogs were measured
/// ([`DIALOGS_MEASURED`](crate::layout::DIALOGS_MEASURED), `docs/claude-dialogs.md`): a
/// question that release added may stop the unattended TUI.
fn supported_range(said: &str) -> (Status, String) {
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

/// What scrubbing the environment cannot remove: claude's fixed credential files outside
/// HOME, TLS settings that let a proxy read the token, and managed settings that give
/// claude another credential.
fn check_unscrubbable(config: &Config, remote_dir: &Path, managed: &Path) -> Check {
    let mut findings = Vec::new();
    let present: Vec<String> = REMOTE_CREDENTIALS
        .iter()
        .map(|f| remote_dir.join(f))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !present.is_empty() {
        findings.push(format!(
            "{} exist(s): claude reads these whatever HOME and the environment say (.api_key outranks the token); remove them",
            present.join(", ")
        ));
    }
    // What the command gets (after the scrub, --unset and --keep-env), not the caller's.
    let command_env = guard::command_env(config);
    let set = |name: &str| command_env.get(name).filter(|v| !v.is_empty());
    let insecure = set("NODE_TLS_REJECT_UNAUTHORIZED").is_some_and(|v| v == "0");
    // A variable that names the system's own bundle (set by habit, or by an image)
    // trusts nothing extra: no warning for it.
    let extra_ca = set("NODE_EXTRA_CA_CERTS").is_some_and(|v| !names_system_bundle(v));
    // The caller's side of the `destination` check (the same variables: every base URL
    // and proxy claude honours); scheme and host only, never userinfo.
    let dest = guard::destination(&[], &command_env);
    let proxy = dest.proxy.as_ref().map(|(p, by)| format!("{p} ({by})"));
    let foreign = (!dest.is_anthropic()).then(|| {
        std::iter::once((&dest.origin, &dest.chosen_by))
            .chain(dest.also.iter().map(|(o, by)| (o, by)))
            .map(|(o, by)| format!("{o} ({by})"))
            .collect::<Vec<_>>()
            .join(" or ")
    });
    if insecure || extra_ca {
        let tls = if insecure {
            "NODE_TLS_REJECT_UNAUTHORIZED=0 (no certificate check)"
        } else {
            "NODE_EXTRA_CA_CERTS (an extra trusted CA)"
        };
        let path = match (proxy, foreign) {
            (Some(p), _) => Some(format!("the proxy {p}")),
            (None, Some(h)) => Some(h),
            (None, None) => None,
        };
        if let Some(path) = path {
            findings.push(format!(
                "{tls} with {path}: whoever controls that path can read the token in transit"
            ));
        }
    }
    if let Ok(text) = crate::sys::fsutil::read_bounded(managed, 4 << 20) {
        if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&text) {
            let mut keys = Vec::new();
            if doc.contains_key("apiKeyHelper") {
                keys.push("apiKeyHelper".to_owned());
            }
            if let Some(Value::Object(env)) = doc.get("env") {
                keys.extend(env.keys().map(|k| format!("env.{k}")));
            }
            if !keys.is_empty() {
                findings.push(format!(
                    "{} sets {}: managed settings apply to every claude and outrank the environment",
                    managed.display(),
                    keys.join(", ")
                ));
            }
        }
    }
    if findings.is_empty() {
        check(
            "unscrubbable",
            Status::Ok,
            "no fixed credential file, TLS interception setting or managed credential found",
        )
    } else {
        check("unscrubbable", Status::Warn, findings.join("; "))
    }
}

/// `text` (claude's own output) with the userinfo of every URL in it masked, and the
/// userinfo of `ANTHROPIC_BASE_URL` masked wherever it appears: claude may quote the base
/// URL, password included, in an error message.
fn hide_userinfo(text: &str, base_url: Option<&str>) -> String {
    let mut out = text.to_owned();
    if let Some(url) = base_url {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        if let Some((userinfo, _)) = rest.rsplit_once('@') {
            let password = userinfo.split_once(':').map(|(_, p)| p);
            for secret in std::iter::once(userinfo).chain(password) {
                if !secret.is_empty() {
                    out = out.replace(secret, "…");
                }
            }
        }
    }
    // Any `scheme://userinfo@host` left (a URL as claude normalised it).
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("://") {
        masked.push_str(&rest[..at + 3]);
        let tail = &rest[at + 3..];
        let token_end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        match tail[..token_end].rfind('@') {
            Some(userinfo_end) => {
                masked.push('…');
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    masked.push_str(rest);
    masked
}

/// The settings claude would apply for the working directory, judged by the guard (the
/// launcher refuses what this reports, unless allowed on purpose).
fn check_project_settings(config: &Config, verdict: &guard::Verdict) -> Check {
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

/// How claude will get to use the token (for claude, the command doctor checks for): the
/// broker's plan when it is a broker of the launch's own.
fn check_token_via(config: &Config) -> (Check, Option<crate::isolate::broker::Plan>) {
    use crate::config::TokenVia;
    if let Some(socket) = &config.broker {
        return (
            match crate::isolate::broker::fetch_status(socket) {
                Ok(status) => check(
                    "token_via",
                    Status::Ok,
                    format!(
                        "the shared broker at {} answers this user and forwards to {}: claude gets the placeholder and sends its requests there",
                        socket.display(),
                        status["destination"].as_str().unwrap_or("?")
                    ),
                ),
                Err(e) => check("token_via", Status::Fail, e),
            },
            None,
        );
    }
    match TokenVia::for_command(config.token_via, "claude".as_ref()) {
        TokenVia::Broker => match crate::isolate::broker::plan(&config.env) {
            Ok(plan) => (
                check(
                    "token_via",
                    Status::Ok,
                    format!(
                        "broker: a process beside claude holds the token and forwards its API requests from a socket in {} to {}; claude gets the placeholder {}",
                        plan.dir.display(),
                        plan.destination_line(),
                        crate::isolate::broker::PLACEHOLDER
                    ),
                ),
                Some(plan),
            ),
            Err(e) => (check("token_via", Status::Fail, e.to_string()), None),
        },
        TokenVia::Fd => (
            check(
                "token_via",
                Status::Ok,
                format!(
                    "fd: claude reads the token once from a pipe ({TOKEN_FD_VAR}); it is then in claude's memory"
                ),
            ),
            None,
        ),
        TokenVia::Env => (
            check(
                "token_via",
                Status::Warn,
                "env: the token is in claude's environment, inherited by every tool it runs (--token-via broker keeps it out of claude)",
            ),
            None,
        ),
    }
}

/// Where the token goes, and who chose it; a warning when it is not Anthropic's. Through
/// a broker, where the broker forwards, whatever claude's settings say.
fn check_destination(
    verdict: &guard::Verdict,
    broker: Option<&crate::isolate::broker::Plan>,
    config: &Config,
) -> Check {
    if let Some(plan) = broker {
        let anthropic = plan.upstream.base == crate::isolate::broker::DEFAULT_BASE_URL
            || guard::Destination {
                origin: plan.upstream.base.clone(),
                chosen_by: String::new(),
                proxy: None,
                also: Vec::new(),
            }
            .is_anthropic();
        let line = format!("{} through the broker", plan.destination_line());
        return if anthropic && plan.upstream.proxy.is_none() {
            check(
                "destination",
                Status::Ok,
                format!("the token goes to {line}"),
            )
        } else {
            check(
                "destination",
                Status::Warn,
                format!(
                    "the token goes to {line}: not an Anthropic host over https; make sure you trust it"
                ),
            )
        };
    }
    if let Some(socket) = &config.broker {
        return check(
            "destination",
            Status::Ok,
            format!(
                "wherever the shared broker at {} forwards",
                socket.display()
            ),
        );
    }
    let d = &verdict.destination;
    if d.is_anthropic() && d.proxy.is_none() {
        check(
            "destination",
            Status::Ok,
            format!("the token goes to {}", d.line()),
        )
    } else {
        check(
            "destination",
            Status::Warn,
            format!(
                "the token goes to {}: not an Anthropic host over https; make sure you trust it",
                d.line()
            ),
        )
    }
}

fn check_mask(config: &Config) -> Check {
    let failed = if config.mask == Switch::On {
        Status::Fail
    } else {
        Status::Warn
    };
    match mask::verdict(config, &config.home, None, &[]) {
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
            format!("possible here: {}", mask::describe(&plan).join(", ")),
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
                plan.map(|p| format!(" (would mask: {})", mask::describe(&p).join(", ")))
                    .unwrap_or_default()
            ),
        ),
    }
}

fn check_scrub_tools(config: &Config) -> Check {
    // What `off` lets through: the command's value (after --unset and --keep-env).
    let passed = guard::command_env(config)
        .get(tools::SCRUB_VAR)
        .map(ToOwned::to_owned);
    let describe =
        |action: &tools::Action| tools::describe(action, &config.workdir, passed.as_deref());
    match tools::decide(config.scrub_tools, tools::find_bwrap(config, &config.home)) {
        Ok(action @ tools::Action::Remove) => check("scrub_tools", Status::Warn, describe(&action)),
        Ok(action) => check("scrub_tools", Status::Ok, describe(&action)),
        Err(e) => check("scrub_tools", Status::Fail, e.to_string()),
    }
}

/// Runs the real launcher (`/proc/self/exe`, with the caller's launch options) in a
/// throwaway home, on `claude -p`, and expects AUTH_OK back: the same way a launch goes,
/// every step included, and the real scratch home untouched.
fn check_live(
    config: &Config,
    launch: &LaunchArgs,
    init: &InitArgs,
    share_args: &[OsString],
    token: Option<&Token>,
) -> Check {
    if let Err(e) = crate::launch::exec::resolve(
        "claude".as_ref(),
        config.path_var().as_deref(),
        &config.start_dir,
    ) {
        return check("live", Status::Fail, e.to_string());
    }
    let base = throwaway_base(config);
    let Ok(scratch) = tempfile::Builder::new()
        .prefix("claude-iso-live.")
        .tempdir_in(&base)
    else {
        return check(
            "live",
            Status::Fail,
            format!("cannot create a temporary home in {}", base.display()),
        );
    };
    let mut args: Vec<OsString> = launch.to_args();
    for s in share_args {
        args.push("--share".into());
        args.push(s.clone());
    }
    // The init options too: the live launch goes the way the launcher would — with an
    // init also when this doctor is PID 1 and decides on one (the launch it starts is
    // not PID 1, so it would not decide so itself).
    args.extend(init.to_args());
    if crate::launch::init::decide(init, &config.env, crate::launch::init::is_pid1())
        .is_ok_and(|d| d.on && d.reason == crate::launch::init::Reason::Pid1)
    {
        args.push("--init".into());
    }
    args.push("--home".into());
    args.push(scratch.path().join("home").into());
    args.push("-q".into());
    args.push("--".into());
    args.extend(["claude", "-p", LIVE_PROMPT, "--model", "haiku"].map(OsString::from));
    let mut vars: Vec<(OsString, OsString)> = config
        .env
        .vars()
        .iter()
        .filter(|(k, _)| !QUIET_CLAUDE.iter().any(|(q, _)| k == q))
        .cloned()
        .collect();
    vars.extend(QUIET_CLAUDE.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let started = Instant::now();
    match run_with_timeout(
        Path::new("/proc/self/exe"),
        &args,
        &vars,
        &config.start_dir,
        LIVE_TIMEOUT,
    ) {
        Ok((ok, out, err)) => {
            let secs = started.elapsed().as_secs_f32();
            if ok && out.trim() == LIVE_ANSWER {
                check(
                    "live",
                    Status::Ok,
                    format!("claude answered {LIVE_ANSWER} in {secs:.1}s with the token alone"),
                )
            } else {
                let said = if out.trim().is_empty() { err } else { out };
                let base_url = config
                    .env
                    .get("ANTHROPIC_BASE_URL")
                    .map(|u| u.to_string_lossy().into_owned());
                let said = hide_userinfo(&said, base_url.as_deref());
                let said = token
                    .map_or(said.clone(), |t| said.replace(t.expose(), &t.redacted()))
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect::<String>();
                check(
                    "live",
                    Status::Fail,
                    format!(
                        "claude did not answer {LIVE_ANSWER} (exit {}): {said}; a 401 means the token is revoked or expired: run `claude setup-token`, then `claude-iso token set`; \"Not logged in\" from a claude older than {} means it ignores the placeholder or the token's descriptor: pass --token-via env",
                        if ok { "0" } else { "non-zero" },
                        crate::layout::supported_claude().0
                    ),
                )
            }
        }
        Err(e) => check("live", Status::Fail, e),
    }
}

/// Where the throwaway home of `--live` goes: the temp directory, unless that lies in a
/// real claude config directory (a `TMPDIR` inside `~/.claude`), then `/tmp`.
fn throwaway_base(config: &Config) -> PathBuf {
    let tmp = std::env::temp_dir();
    let real = std::fs::canonicalize(&tmp).unwrap_or_else(|_| tmp.clone());
    let inside = config.real_config_dirs(true).iter().any(|d| {
        let d = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        real.starts_with(&d)
    });
    if inside { PathBuf::from("/tmp") } else { tmp }
}

/// Runs `program args` with exactly `vars`, stdin closed, in a process group of its own,
/// and kills that group after `timeout`. Output readers are never waited on past the
/// deadline: a background process that keeps the pipes open cannot hang the doctor.
/// Returns (success, stdout, stderr).
fn run_with_timeout<A: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[A],
    vars: &[(OsString, OsString)],
    dir: &Path,
    timeout: Duration,
) -> Result<(bool, String, String), String> {
    use std::os::unix::process::CommandExt;
    use std::sync::mpsc;
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {}", crate::error::error_text(&e)))?;
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let kill_group = || {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    };
    let (tx, rx) = mpsc::channel();
    let spawn_reader = |mut pipe: Box<dyn Read + Send>, which: usize| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.by_ref().take(1 << 20).read_to_end(&mut s);
            let _ = tx.send((which, s));
        });
    };
    spawn_reader(Box::new(child.stdout.take().expect("piped")), 0);
    spawn_reader(Box::new(child.stderr.take().expect("piped")), 1);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > timeout {
            kill_group();
            let _ = child.wait();
            return Err(format!("timed out after {}s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The command is done; what it left running may hold the pipes: a short grace, then
    // the group is killed, and a reader still blocked is left behind.
    let mut outputs = [Vec::new(), Vec::new()];
    let mut got = 0;
    let grace = Instant::now() + Duration::from_secs(2);
    while got < 2 {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((which, bytes)) => {
                outputs[which] = bytes;
                got += 1;
            }
            Err(_) if Instant::now() >= grace && got < 2 => {
                kill_group();
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok((which, bytes)) => {
                        outputs[which] = bytes;
                        got += 1;
                    }
                    Err(_) => break,
                }
            }
            Err(_) => break,
        }
    }
    let [out, err] = outputs;
    Ok((
        status.success(),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    ))
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
