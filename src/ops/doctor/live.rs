//! `doctor --live`: the real launcher, run on `claude -p` in a throwaway home.

#![forbid(unsafe_code)]

#[allow(clippy::wildcard_imports)]
use super::*;

/// Runs the real launcher (`/proc/self/exe`, with the caller's launch options) in a
/// throwaway home, on `claude -p`, and expects AUTH_OK back: the same way a launch goes,
/// every step included, and the real scratch home untouched.
pub(super) fn check_live(
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
    let args = live_args(config, launch, init, share_args, scratch.path());
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
                live_failure(config, token, ok, out, err)
            }
        }
        Err(e) => check("live", Status::Fail, e),
    }
}

/// Where the throwaway home of `--live` goes: the temp directory, unless that lies in a
/// real claude config directory (a `TMPDIR` inside `~/.claude`), then `/tmp`.
pub(super) fn throwaway_base(config: &Config) -> PathBuf {
    let tmp = std::env::temp_dir();
    let real = crate::sys::fsutil::realpath(&tmp).unwrap_or_else(|_| tmp.clone());
    let inside = config.real_config_dirs(true).iter().any(|d| {
        let d = crate::sys::fsutil::realpath(d).unwrap_or_else(|_| d.clone());
        real.starts_with(&d)
    });
    if inside { PathBuf::from("/tmp") } else { tmp }
}

/// Runs `program args` with exactly `vars`, stdin closed, in a process group of its own,
/// and kills that group after `timeout`. Output readers are never waited on past the
/// deadline: a background process that keeps the pipes open cannot hang the doctor.
/// Returns (success, stdout, stderr).
pub(super) fn run_with_timeout<A: AsRef<std::ffi::OsStr>>(
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

/// The launcher's arguments for the live launch: the caller's launch options, shares and
/// init options, a throwaway home, quiet, and `claude -p`.
fn live_args(
    config: &Config,
    launch: &LaunchArgs,
    init: &InitArgs,
    share_args: &[OsString],
    scratch: &Path,
) -> Vec<OsString> {
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
    args.push(scratch.join("home").into());
    args.push("-q".into());
    args.push("--".into());
    args.extend(["claude", "-p", LIVE_PROMPT, "--model", "haiku"].map(OsString::from));
    args
}

/// The live launch did not answer as expected: what claude said (first line, no secret),
/// and the likely ways out.
fn live_failure(
    config: &Config,
    token: Option<&Token>,
    ok: bool,
    out: String,
    err: String,
) -> Check {
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
