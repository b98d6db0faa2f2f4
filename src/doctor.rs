//! `claude-iso doctor`: inspect everything the launcher would do, change nothing.
//!
//! One check per line (`ok`, `warn`, `fail`), or JSON with `--json`. Exit 0 when no
//! check failed, 1 otherwise. Tokens appear as prefix and length only.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::caller::CallerEnv;
use crate::cli::DoctorArgs;
use crate::config::Config;
use crate::environment::{self, Plan};
use crate::error::{Outcome, Result};
use crate::home::{self, ScratchHome};
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS, TOKEN_VAR};
use crate::report::Report;
use crate::scrub;
use crate::seed;
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
    let checks = run_checks(&config, args.live);
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
        for c in &checks {
            let _ = writeln!(
                out,
                "{:<5} {:<17} {}",
                c.status.to_string(),
                c.name,
                c.detail
            );
        }
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Unhealthy
    })
}

/// All checks, in report order.
#[must_use]
pub fn run_checks(config: &Config, live: bool) -> Vec<Check> {
    let silent = Report::silent();
    let mut out = Vec::new();

    let (token_check, winner) = check_token(config);
    out.push(token_check);
    out.push(check_env_file(config, winner.as_ref().map(|(_, s)| s)));

    let home = home::prepare(config, true, &silent);
    out.push(match &home {
        Ok(h) => describe_home(h),
        Err(e) => check("home", Status::Fail, e.to_string()),
    });
    out.push(if home::has_credentials(&config.home) {
        check(
            "credentials",
            Status::Warn,
            format!(
                "{} exists: claude would fall back to it after a 401; the launcher will move it aside (kept)",
                config
                    .home
                    .join(CLAUDE_DIR)
                    .join(CREDENTIALS)
                    .display()
            ),
        )
    } else {
        check(
            "credentials",
            Status::Ok,
            "no credentials file in the scratch home",
        )
    });
    out.push(check_seed(config, home.as_ref().ok()));
    out.push(check_command(config));
    out.push(check_environment(config, winner.as_ref().map(|(t, _)| t)));
    out.push(check_project_settings(config));
    if live {
        out.push(match &winner {
            Some((token, _)) => check_live(config, token),
            None => check("live", Status::Fail, "no usable token to test"),
        });
    }
    out
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

fn describe_home(home: &ScratchHome) -> Check {
    let Some(dir) = &home.dir else {
        return check(
            "home",
            Status::Ok,
            format!(
                "{}: does not exist yet; the launcher creates it (mode 0700)",
                home.path.display()
            ),
        );
    };
    let Ok(st) = nix::sys::stat::fstat(dir) else {
        return check(
            "home",
            Status::Fail,
            format!("{}: cannot stat", home.path.display()),
        );
    };
    let mode = st.st_mode & 0o7777;
    let detail = format!(
        "{}: exists, owner uid {}, mode {mode:04o}",
        home.path.display(),
        st.st_uid
    );
    if mode & 0o077 == 0 {
        check("home", Status::Ok, detail)
    } else {
        check(
            "home",
            Status::Warn,
            format!(
                "{detail}; readable by others: the launcher tightens it to 0700 (or run chmod 700 {})",
                home.path.display()
            ),
        )
    }
}

fn check_seed(config: &Config, home: Option<&ScratchHome>) -> Check {
    let trust: Vec<&str> = config.trust.iter().filter_map(|p| p.to_str()).collect();
    let path = config.home.join(CLAUDE_JSON);
    let wanted = format!("onboarding, trust for {}", trust.join(", "));
    let Some(dir) = home.and_then(|h| h.dir.as_ref()) else {
        return check(
            "seed",
            Status::Ok,
            format!("not seeded yet; the launcher will seed {wanted}"),
        );
    };
    let file = match seed::open_config(dir, &path) {
        Ok(Some((file, _))) => file,
        Ok(None) => {
            return check(
                "seed",
                Status::Ok,
                format!(
                    "{} does not exist yet; the launcher will seed {wanted}",
                    path.display()
                ),
            );
        }
        Err(e) => return check("seed", Status::Fail, e.to_string()),
    };
    match seed::is_seeded(file, &trust) {
        Some(true) => check(
            "seed",
            Status::Ok,
            format!("{}: {wanted} already seeded", path.display()),
        ),
        Some(false) => check(
            "seed",
            Status::Ok,
            format!(
                "{}: not fully seeded; the launcher will add {wanted}",
                path.display()
            ),
        ),
        None => check(
            "seed",
            Status::Warn,
            format!(
                "{}: not a JSON object; the launcher will keep it aside and seed a fresh one",
                path.display()
            ),
        ),
    }
}

/// Isolated environment for running claude from the doctor.
fn isolated_env(config: &Config, home: &Path, token: &Token) -> Vec<(OsString, OsString)> {
    let mut vars = environment::child_env(
        &config.env,
        &Plan {
            home,
            token,
            pwd: None,
            keep: &config.keep_env,
            unset: &config.unset,
        },
    )
    .vars;
    for (k, v) in QUIET_CLAUDE {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).into(), (*v).into()));
    }
    vars
}

fn check_command(config: &Config) -> Check {
    let path = match crate::exec::resolve(
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
    let Ok(scratch) = tempfile::tempdir() else {
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
        Ok((true, out, _)) => check(
            "command",
            Status::Ok,
            format!(
                "{} ({})",
                path.display(),
                out.lines().next().unwrap_or("").trim()
            ),
        ),
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
        placeholder = Token::parse("sk-ant-oat01-placeholder").expect("valid placeholder");
        &placeholder
    };
    let child = environment::child_env(
        &config.env,
        &Plan {
            home: &config.home,
            token,
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
    if let Some(url) = config
        .env
        .get("ANTHROPIC_BASE_URL")
        .filter(|v| !v.is_empty())
    {
        notes.push(format!(
            "ANTHROPIC_BASE_URL is set: the token will be sent to {}; unset it unless you trust that host",
            url_host(&url.to_string_lossy())
        ));
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

/// The host (and port) of a URL, without any userinfo (which may hold a password).
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        "an unparsable URL".into()
    } else {
        host.to_owned()
    }
}

fn check_project_settings(config: &Config) -> Check {
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in &config.trust {
        files.push(dir.join(".claude/settings.json"));
        files.push(dir.join(".claude/settings.local.json"));
    }
    files.push(config.home.join(".claude/settings.json"));
    let mut findings = Vec::new();
    for file in &files {
        // Non-blocking and regular files only: a FIFO in a cloned repo must not hang us.
        let Ok(mut f) = std::fs::File::options()
            .read(true)
            .custom_flags((nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC).bits())
            .open(file)
        else {
            continue;
        };
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            findings.push(format!("{} is not a regular file", file.display()));
            continue;
        }
        let mut text = Vec::new();
        if Read::by_ref(&mut f)
            .take(4 << 20)
            .read_to_end(&mut text)
            .is_err()
        {
            continue;
        }
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        let mut keys = Vec::new();
        if doc.contains_key("apiKeyHelper") {
            keys.push("apiKeyHelper".to_owned());
        }
        if let Some(Value::Object(env)) = doc.get("env") {
            for k in env.keys() {
                if scrub::is_scrubbed(std::ffi::OsStr::new(k))
                    || k == TOKEN_VAR
                    || k == "ANTHROPIC_BASE_URL"
                {
                    keys.push(format!("env.{k}"));
                }
            }
        }
        if !keys.is_empty() {
            findings.push(format!("{} sets {}", file.display(), keys.join(", ")));
        }
    }
    if findings.is_empty() {
        check(
            "project_settings",
            Status::Ok,
            "no settings file overrides the token",
        )
    } else {
        check(
            "project_settings",
            Status::Warn,
            format!(
                "{}; claude honours these over the token (even with --print); remove them or run elsewhere",
                findings.join("; ")
            ),
        )
    }
}

fn check_live(config: &Config, token: &Token) -> Check {
    let path = match crate::exec::resolve(
        "claude".as_ref(),
        config.path_var().as_deref(),
        &config.start_dir,
    ) {
        Ok(p) => p,
        Err(e) => return check("live", Status::Fail, e.to_string()),
    };
    // A throwaway scratch home, isolated and seeded exactly as the launcher would, so the
    // real one is not changed.
    let Ok(scratch) = tempfile::tempdir() else {
        return check("live", Status::Fail, "cannot create a temporary home");
    };
    let home_path = scratch.path().join("home");
    let live_home = match prepare_temp_home(config, &home_path) {
        Ok(h) => h,
        Err(e) => return check("live", Status::Fail, e),
    };
    let vars = isolated_env(config, &live_home.path, token);
    let args = ["-p", LIVE_PROMPT, "--model", "haiku"];
    let started = Instant::now();
    match run_with_timeout(&path, &args, &vars, &config.workdir, LIVE_TIMEOUT) {
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
                let said = said
                    .replace(token.expose(), &token.redacted())
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
                        "claude did not answer {LIVE_ANSWER} (exit {}): {said}; a 401 means the token is revoked or expired: run `claude setup-token` again",
                        if ok { "0" } else { "non-zero" }
                    ),
                )
            }
        }
        Err(e) => check("live", Status::Fail, e),
    }
}

fn prepare_temp_home(config: &Config, path: &Path) -> Result<ScratchHome, String> {
    std::fs::create_dir(path).map_err(|e| format!("cannot create a temporary home: {e}"))?;
    let dir = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("cannot open the temporary home: {}", e.desc()))?;
    let home = ScratchHome {
        path: path.to_owned(),
        dir: Some(dir),
    };
    seed::ensure(&home, &config.trust, false, &Report::silent()).map_err(|e| e.to_string())?;
    Ok(home)
}

/// Runs `program args` with exactly `vars`, stdin closed, and kills it after `timeout`.
/// Returns (success, stdout, stderr).
fn run_with_timeout(
    program: &Path,
    args: &[&str],
    vars: &[(OsString, OsString)],
    dir: &Path,
    timeout: Duration,
) -> Result<(bool, String, String), String> {
    let mut child = Command::new(program)
        .args(args)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run: {}", crate::error::error_text(&e)))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.by_ref().take(1 << 20).read_to_end(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.by_ref().take(1 << 20).read_to_end(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("timed out after {}s", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    Ok((status.success(), out, err))
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts_without_userinfo() {
        assert_eq!(url_host("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(
            url_host("https://user:pw@api.example.com"),
            "api.example.com"
        );
        assert_eq!(url_host("api.example.com/v1"), "api.example.com");
        assert_eq!(url_host("http://"), "an unparsable URL");
    }
}
