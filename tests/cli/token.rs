//! The token's life (issue 13): `claude-iso token set` and `token status`, the expiry
//! warnings, the truncation check, and the messages a newcomer meets first.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::sandbox::{
    BIN, NOBODY, TOKEN, Test, as_runner, chmod, chown, is_root, mkdir, mode_of, names_with_prefix,
    temp_files, tree, write_mode, *,
};
use serde_json::Value;

const DAY: i64 = 86_400;

/// A sandbox whose default token file (`realhome/.config/claude-iso/token.env`) does
/// not exist yet; runs get neither `--env-file` nor `--home` unless the test adds them.
fn fresh() -> Test {
    Test::new()
        .no_env_file()
        .no_home()
        .secret(TOKEN_B)
        .secret(TOKEN_C)
}

fn default_file(t: &Test) -> PathBuf {
    t.real_home().join(".config/claude-iso/token.env")
}

fn meta_file(env_file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.meta.json", env_file.display()))
}

/// Runs `printf '%s\n' TOKEN | claude-iso token set [ARGS]` in `t`'s sandbox.
fn set_in(t: &Test, token: &str, args: &[&str]) -> (i32, String, String) {
    run_in(
        t,
        &[&["token", "set"], args].concat(),
        Some(format!("{token}\n")),
    )
}

/// Runs claude-iso with `args` and `t`'s environment, in `t`'s sandbox. A refusal (125)
/// must leave the sandbox as it was.
fn run_in(t: &Test, args: &[&str], stdin: Option<String>) -> (i32, String, String) {
    let unchanged = t.unchanged();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn claude-iso");
    if let Some(text) = stdin {
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    for s in [&stdout, &stderr] {
        if let Some(piece) =
            secret_piece(&[TOKEN, TOKEN_B, TOKEN_C].map(str::to_owned), s.as_bytes())
        {
            panic!("a token leaked in the output of {args:?} ({piece:?}): {s}");
        }
    }
    let code = out.status.code().unwrap_or(-1);
    if code == 125 {
        unchanged.assert(&format!("the refused `claude-iso {}`", args.join(" ")));
    }
    (code, stdout, stderr)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Sets the first-stored time of every token recorded in `meta` to the start (UTC) of
/// the day `days_ago` calendar days ago.
fn backdate(meta: &Path, days_ago: i64) {
    set_first_stored(meta, (now().div_euclid(DAY) - days_ago) * DAY);
}

/// Sets the first-stored time of every token recorded in `meta` to `when`.
fn set_first_stored(meta: &Path, when: impl Into<Value>) {
    let when = when.into();
    let mut doc: Value = serde_json::from_slice(&fs::read(meta).unwrap()).unwrap();
    let tokens = doc["tokens"].as_object_mut().expect("tokens");
    assert!(
        !tokens.is_empty(),
        "no token recorded in {}",
        meta.display()
    );
    for entry in tokens.values_mut() {
        entry["first_stored"] = when.clone();
    }
    write_mode(meta, serde_json::to_vec(&doc).unwrap(), 0o600);
}

/// Every file under `root` but `except` that holds a piece of `token`.
fn files_holding(root: &Path, token: &str, except: &[PathBuf]) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .filter(|(rel, e)| {
            e.kind == "file"
                && !except.contains(&root.join(rel))
                && secret_piece(&[token.to_owned()], &e.content).is_some()
        })
        .map(|(rel, _)| root.join(rel))
        .collect()
}

#[test]
fn piped_token_is_stored_privately_and_a_launch_delivers_exactly_it() {
    let t = fresh();
    let (code, stdout, stderr) = set_in(&t, TOKEN_B, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains(&redacted(TOKEN_B)), "{stderr}");
    assert!(stderr.contains("365 days left"), "{stderr}");

    let file = default_file(&t);
    assert_eq!(mode_of(&file), 0o600);
    // Directories it created are private; the file holds exactly the token line.
    assert_eq!(mode_of(&t.real_home().join(".config")), 0o700);
    assert_eq!(mode_of(&t.real_home().join(".config/claude-iso")), 0o700);
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        vec![format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}")]
    );
    assert_eq!(mode_of(&meta_file(&file)), 0o600);
    assert!(temp_files(file.parent().unwrap()).is_empty());
    // Nowhere else: not in the metadata, not in a temp file, not in the scratch home.
    assert_eq!(
        files_holding(t.root(), TOKEN_B, std::slice::from_ref(&file)),
        Vec::<PathBuf>::new()
    );

    let t = t.no_env_file();
    t.run().success().no_secrets().probe().assert_token(TOKEN_B);
}

#[test]
fn a_bad_token_exits_125_and_changes_nothing() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let dir = default_file(&t).parent().unwrap().to_owned();
    let before = tree(&dir);
    for (input, needle) in [
        (&TOKEN_C[..60], "looks truncated"),
        (&TOKEN_C[..79], "looks truncated"),
        ("", "is empty"),
        (
            "sk-ant-api03-Zq9_Kp3xVw-Lm8LyvoCvi2e4RlaqNp0MIj8UeaOQt_8CALeWusH2BH2ETFK2AS2eOY6lifaNy59XQhL3rsgoVuBNMXLe",
            "API key",
        ),
        (
            "sk-ant-ort01-Zq9_Kp3xVw-Lm8LyvoCvi2e4RlaqNp0MIj8UeaOQt_8CALeWusH2BH2ETFK2AS2eOY6lifaNy59XQhL3rsgoVuBNMXLe",
            "refresh token",
        ),
        ("not a token at all", "whitespace"),
        ("hello", "does not look like a setup-token"),
    ] {
        let (code, stdout, stderr) = set_in(&t, input, &[]);
        assert_eq!(code, 125, "{input:?}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("claude-iso: ") && stderr.contains(needle),
            "{stderr}"
        );
        if input.len() > 20 {
            assert!(!stderr.contains(&input[13..20]), "{stderr}");
        }
        assert_eq!(
            tree(&dir),
            before,
            "token set {input:?} changed {}",
            dir.display()
        );
    }
    // Two lines on stdin are not one token either.
    let (code, _, stderr) = run_in(
        &t,
        &["token", "set"],
        Some(format!("{TOKEN_C}\n{TOKEN_C}\n")),
    );
    assert_eq!(code, 125, "{stderr}");
    assert_eq!(tree(&dir), before);
}

#[test]
fn replacing_keeps_the_old_file_aside_and_its_other_lines() {
    let t = fresh();
    let file = default_file(&t);
    mkdir(file.parent().unwrap());
    write_mode(
        &file,
        format!("# mine\nFOO=bar\nexport CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\nBAZ='q'\n"),
        0o600,
    );
    let old = fs::read(&file).unwrap();
    let (code, _, stderr) = set_in(&t, TOKEN_C, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("# mine\nFOO=bar\nexport CLAUDE_CODE_OAUTH_TOKEN={TOKEN_C}\nBAZ='q'\n"),
        "the token line keeps its `export ` prefix"
    );
    let aside = names_with_prefix(file.parent().unwrap(), "token.env.replaced-");
    assert_eq!(aside.len(), 1, "{aside:?}");
    let aside = file.parent().unwrap().join(&aside[0]);
    assert_eq!(
        fs::read(&aside).unwrap(),
        old,
        "the old file is kept as it was"
    );
    assert_eq!(mode_of(&aside), 0o600);
    assert!(stderr.contains(&aside.display().to_string()), "{stderr}");

    // Both tokens have a first-stored date; re-storing one keeps its date.
    let meta: Value = serde_json::from_slice(&fs::read(meta_file(&file)).unwrap()).unwrap();
    assert_eq!(meta["tokens"].as_object().unwrap().len(), 1);
    backdate(&meta_file(&file), 100);
    let (code, _, stderr) = set_in(&t, TOKEN_C, &[]);
    assert_eq!(code, 0);
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(stderr.contains("100 days ago"), "{stderr}");

    // The launch gets the new token and names the variables it does not export.
    let t = t.no_env_file();
    let out = t.run();
    out.success().no_secrets().probe().assert_token(TOKEN_C);
    out.stderr_contains("not exporting FOO, BAZ");
    assert_eq!(out.probe().var("FOO"), None);
    // -q silences the note.
    t.reset_probe();
    t.spawn_with(["-q"]).wait().success().stderr("");
}

#[test]
fn an_explicit_env_file_is_written_there() {
    let t = fresh();
    let target = t.path("elsewhere/deeper/claude.env");
    let (code, _, stderr) = set_in(&t, TOKEN_B, &["--env-file", target.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(mode_of(&target), 0o600);
    assert_eq!(mode_of(&t.path("elsewhere")), 0o700);
    assert!(meta_file(&target).exists());
    assert!(!default_file(&t).exists());
    Test::new()
        .no_env_file()
        .arg("--env-file")
        .arg(&target)
        .secret(TOKEN_B)
        .run()
        .success()
        .probe()
        .assert_token(TOKEN_B);
}

#[test]
fn the_token_is_never_in_argv_while_token_set_runs() {
    let t = fresh().args(["token", "set"]).stdin_piped();
    let mut running = t.spawn();
    let mut stdin = running.child.stdin.take().unwrap();
    stdin.write_all(TOKEN_B.as_bytes()).unwrap();
    stdin.flush().unwrap();
    // It has the token in its stdin buffer and waits for EOF: look at it now.
    std::thread::sleep(Duration::from_millis(200));
    let pid = running.id();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with(BIN.as_bytes()), "still claude-iso");
    assert_eq!(secret_piece(&[TOKEN_B.to_owned()], &cmdline), None);
    let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    assert_eq!(secret_piece(&[TOKEN_B.to_owned()], &environ), None);
    assert!(!running.exited());
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    running.wait().status(0).no_secrets();
}

#[test]
fn a_terminal_gets_no_echo_and_is_restored() {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let t = fresh();
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = pty.slave;
    let mut master = fs::File::from(pty.master);
    let stderr_path = t.path("tty.stderr");
    let mut child = Command::new(BIN)
        .args(["token", "set"])
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&stderr_path)
        .unwrap()
        .contains("input hidden")
    {
        assert!(Instant::now() < deadline, "no prompt");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Echo is off while it reads; a typo is erased with Backspace.
    assert!(
        !tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ECHO)
    );
    master
        .write_all(format!("X\x7f{TOKEN_B}\r").as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        tcgetattr(slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ECHO),
        "echo restored"
    );
    // What the terminal showed: nothing of the token.
    nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut shown = Vec::new();
    let _ = master.read_to_end(&mut shown);
    assert_eq!(secret_piece(&[TOKEN_B.to_owned()], &shown), None, "echoed");
    assert_eq!(secret_piece(&[TOKEN_B.to_owned()], stderr.as_bytes()), None);
    assert!(
        fs::read_to_string(default_file(&t))
            .unwrap()
            .contains(&format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n"))
    );
}

#[test]
fn status_reports_age_and_days_left_and_warns_near_expiry() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let file = default_file(&t);
    let (code, stdout, _) = run_in(&t, &["token", "status"], None);
    assert_eq!(code, 0);
    assert!(stdout.contains(&redacted(TOKEN_B)), "{stdout}");
    assert!(stdout.contains(&file.display().to_string()), "{stdout}");
    assert!(
        stdout.contains("(0 days ago)") && stdout.contains("(365 days left)"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning"), "{stdout}");

    backdate(&meta_file(&file), 340);
    let (code, stdout, _) = run_in(&t, &["token", "status"], None);
    assert_eq!(code, 0, "a warning is not a failure");
    assert!(
        stdout.contains("(340 days ago)") && stdout.contains("(25 days left)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning  the setup-token expires in 25 days"),
        "{stdout}"
    );
    assert!(stdout.contains("claude-iso token set"), "{stdout}");

    let (code, stdout, _) = run_in(&t, &["token", "status", "--json"], None);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["length"], 108);
    assert_eq!(doc["prefix"], "sk-ant-oat01-");
    assert_eq!(doc["age_days"], 340);
    assert_eq!(doc["days_left"], 25);
    assert_eq!(doc["status"], "warn");
    assert_eq!(doc["kind"], "env_file");

    // doctor's token line says the same.
    let (_, stdout, _) = run_in(&t, &["doctor", "--json"], None);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let token = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "token")
        .unwrap();
    assert_eq!(token["status"], "warn", "{token}");
    assert!(
        token["detail"].as_str().unwrap().contains("25 days left"),
        "{token}"
    );

    backdate(&meta_file(&file), 400);
    let (code, stdout, _) = run_in(&t, &["token", "status"], None);
    assert_eq!(code, 1, "expired: {stdout}");
    assert!(stdout.contains("EXPIRED 35 days ago"), "{stdout}");

    // A token from the environment: known shape, unknown age.
    let t = fresh().env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN_C);
    let (code, stdout, _) = run_in(&t, &["token", "status", "--json"], None);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["kind"], "environment");
    assert_eq!(doc["status"], "unknown");
    assert_eq!(doc["days_left"], Value::Null);

    // No token at all: the one next step.
    let (code, _, stderr) = run_in(&fresh(), &["token", "status"], None);
    assert_eq!(code, 125);
    assert!(stderr.contains("run: claude-iso token set"), "{stderr}");
}

#[test]
fn a_launch_warns_once_a_day_in_the_last_14_days() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let file = default_file(&t);
    let t = t.no_env_file();
    let warned = PathBuf::from(format!("{}.warned", file.display()));

    // 20 days left: status warns, a launch does not.
    backdate(&meta_file(&file), 345);
    t.run().success().stderr("");

    backdate(&meta_file(&file), 355);
    // -q: silent, and the day is not used up.
    t.spawn_with(["-q"]).wait().success().stderr("");
    let first = t.run();
    first.success();
    let err = first.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("claude-iso: warning: the setup-token expires in 10 days"),
        "{err}"
    );
    assert!(err.contains("claude-iso token set"), "{err}");
    // Once a day.
    t.run().success().stderr("");
    t.run().success().stderr("");
    assert_eq!(mode_of(&warned), 0o600);
    // The next day it warns again.
    let stamp = fs::read_to_string(&warned).unwrap();
    let (fp, _) = stamp.split_once(' ').unwrap();
    write_mode(&warned, format!("{fp} 1970-01-01\n"), 0o600);
    t.run().success().stderr_contains("expires in 10 days");
}

#[test]
fn a_forgotten_separator_is_named() {
    for args in [
        &["claude", "--print", "hi"][..],
        &["--print", "hi"],
        &["-C", "/", "claude"],
    ] {
        let t = Test::new().args(args.iter().copied());
        t.run()
            .status(125)
            .one_line_error("put `--` before the command: claude-iso -- claude")
            .probe_not_run();
    }
    // A real option error still points at --help.
    Test::new()
        .args(["--home"])
        .run()
        .status(125)
        .one_line_error("see claude-iso --help");
}

#[test]
fn a_missing_claude_says_how_to_install_it() {
    let t = Test::new();
    fs::remove_file(t.path("bin/claude")).unwrap();
    t.run()
        .status(127)
        .one_line_error("claude: command not found on PATH; install Claude Code: npm install -g @anthropic-ai/claude-code");
}

/// `date -u +%F` of a Unix time.
fn utc_date(unix: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "+%F", "-d", &format!("@{unix}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `token status --json` of `t`'s default token file.
fn status_json(t: &Test) -> Value {
    let (code, stdout, stderr) = run_in(t, &["token", "status", "--json"], None);
    assert!(code == 0 || code == 1, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn token_set_replaces_only_a_regular_file() {
    let t = fresh();
    let dir = t.path("d");
    mkdir(&dir);
    let target = dir.join("token.env");
    let regular = dir.join("real.env");
    write_mode(
        &regular,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n"),
        0o600,
    );
    type Setup = fn(&Path, &Path);
    let cases: Vec<(&str, Setup, &str)> = vec![
        (
            "a directory with contents",
            |p, _| {
                mkdir(p);
                write_mode(&p.join("inside"), "keep me", 0o600);
            },
            "is a directory",
        ),
        (
            "a FIFO",
            |p, _| nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
            "is a FIFO, not a regular file",
        ),
        (
            "a socket",
            |p, _| {
                let l = std::os::unix::net::UnixListener::bind(p).unwrap();
                std::mem::forget(l);
            },
            "is a socket, not a regular file",
        ),
        (
            "a symlink to a device node",
            |p, _| std::os::unix::fs::symlink("/dev/null", p).unwrap(),
            "is a symlink to /dev/null (not a regular file)",
        ),
        (
            "a symlink to a directory",
            |p, _| std::os::unix::fs::symlink("..", p).unwrap(),
            "(not a regular file)",
        ),
        (
            "a dangling symlink",
            |p, _| std::os::unix::fs::symlink("nowhere", p).unwrap(),
            "is a symlink that leads nowhere",
        ),
        (
            // Neither replaced (that cuts the link) nor written through: the fix names
            // the file it points to.
            "a symlink to a token file",
            |p, real| std::os::unix::fs::symlink(real, p).unwrap(),
            "run: claude-iso token set --env-file ",
        ),
    ];
    let mut cases = cases;
    if is_root() {
        cases.push((
            "a character device (/dev/null's numbers)",
            |p, _| {
                nix::sys::stat::mknod(
                    p,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::from_bits_truncate(0o666),
                    nix::sys::stat::makedev(1, 3),
                )
                .unwrap();
            },
            "is a character device, not a regular file",
        ));
    }
    for (what, setup, needle) in cases {
        setup(&target, &regular);
        let before = tree(&dir);
        let (code, stdout, stderr) = set_in(&t, TOKEN_C, &["--env-file", target.to_str().unwrap()]);
        assert_eq!(code, 125, "{what}: {stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        assert!(
            stderr.starts_with(&format!("claude-iso: {}: ", target.display()))
                && stderr.contains(needle)
                && stderr.contains("token set replaces only a regular file"),
            "{what}: {stderr}"
        );
        assert_eq!(tree(&dir), before, "{what}: something was moved or written");
        if what == "a symlink to a token file" {
            assert!(stderr.contains(&regular.display().to_string()), "{stderr}");
        }
        if what == "a directory with contents" {
            assert!(
                stderr.contains(&format!("--env-file {}/token.env", target.display())),
                "{stderr}"
            );
            fs::remove_dir_all(&target).unwrap();
        } else {
            fs::remove_file(&target).unwrap();
        }
    }
    // Not even a device outside the sandbox (as root, /dev/null itself would otherwise
    // be moved aside; this variant runs only unprivileged, where a mistake cannot).
    if !is_root() {
        let (code, _, stderr) = set_in(&t, TOKEN_C, &["--env-file", "/dev/null"]);
        assert_eq!(code, 125, "{stderr}");
        assert!(
            stderr.contains("/dev/null: is a character device, not a regular file"),
            "{stderr}"
        );
    }

    // Its metadata file must be a regular file too, checked before anything is written.
    nix::unistd::mkfifo(
        &meta_file(&target),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let before = tree(&dir);
    let (code, _, stderr) = set_in(&t, TOKEN_C, &["--env-file", target.to_str().unwrap()]);
    assert_eq!(code, 125, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: is a FIFO, not a regular file",
            meta_file(&target).display()
        )),
        "{stderr}"
    );
    assert_eq!(tree(&dir), before);
    fs::remove_file(meta_file(&target)).unwrap();

    // A regular file is still replaced and kept aside.
    write_mode(
        &target,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n"),
        0o600,
    );
    let (code, _, stderr) = set_in(&t, TOKEN_C, &["--env-file", target.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(names_with_prefix(&dir, "token.env.replaced-").len(), 1);
}

#[test]
fn a_hard_linked_token_file_is_replaced_by_rename_and_its_other_name_keeps_the_old_file() {
    let t = fresh();
    let file = default_file(&t);
    mkdir(file.parent().unwrap());
    let old = format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n");
    write_mode(&file, &old, 0o600);
    let other = t.path("other-name.env");
    fs::hard_link(&file, &other).unwrap();
    let (code, _, stderr) = set_in(&t, TOKEN_C, &[]);
    assert_eq!(code, 0, "{stderr}");
    // Never written through: the other name still holds the old file, unchanged.
    assert_eq!(fs::read_to_string(&other).unwrap(), old);
    assert_eq!(mode_of(&other), 0o600);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_C}\n")
    );
    assert!(
        stderr.contains("another name (a hard link elsewhere), which still holds the old token"),
        "{stderr}"
    );
}

#[test]
fn age_and_days_left_count_calendar_days_like_the_printed_dates() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let meta = meta_file(&default_file(&t));
    let today = now().div_euclid(DAY);
    // Stored at the very start of today, at the very end of a day, at noon: the day
    // counts and the dates agree, whatever the time of day.
    for (first, age) in [
        (today * DAY, 0),
        ((today - 10) * DAY + DAY - 1, 10),
        ((today - 1) * DAY + DAY / 2, 1),
        ((today - 364) * DAY + DAY - 1, 364),
        ((today - 365) * DAY, 365),
    ] {
        set_first_stored(&meta, first);
        let doc = status_json(&t);
        assert_eq!(doc["age_days"], age, "{doc}");
        assert_eq!(doc["days_left"], 365 - age, "{doc}");
        assert_eq!(doc["first_stored"], utc_date(first), "{doc}");
        assert_eq!(doc["expires"], utc_date(first + 365 * DAY), "{doc}");
        assert_eq!(
            utc_date((today - age + 365) * DAY),
            doc["expires"].as_str().unwrap()
        );
        let (_, text, _) = run_in(&t, &["token", "status"], None);
        let ago = if age == 1 {
            "1 day ago".to_owned()
        } else {
            format!("{age} days ago")
        };
        let left = match 365 - age {
            1 => "1 day left".to_owned(),
            n => format!("{n} days left"),
        };
        assert!(text.contains(&format!("({ago})")), "{text}");
        assert!(text.contains(&format!("({left})")), "{text}");
        assert!(!text.contains("1 days"), "{text}");
    }
    // The last day: "1 day", and the launch warns about it.
    set_first_stored(&meta, (today - 364) * DAY);
    let (_, text, _) = run_in(&t, &["token", "status"], None);
    assert!(text.contains("expires in 1 day ("), "{text}");
    // The expiry date itself: still 0 days left, "expires today"; the day after, expired.
    set_first_stored(&meta, (today - 365) * DAY + DAY - 1);
    let (code, text, _) = run_in(&t, &["token", "status"], None);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("(0 days left)") && text.contains("expires today"),
        "{text}"
    );
    set_first_stored(&meta, (today - 366) * DAY + DAY - 1);
    let (code, text, _) = run_in(&t, &["token", "status"], None);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("(EXPIRED 1 day ago)"), "{text}");

    // token set on a token stored today says what status says.
    let t = fresh();
    let (_, _, stderr) = set_in(&t, TOKEN_C, &[]);
    let meta = meta_file(&default_file(&t));
    set_first_stored(&meta, now().div_euclid(DAY) * DAY);
    let (_, _, again) = set_in(&t, TOKEN_C, &[]);
    for text in [&stderr, &again] {
        assert!(
            text.contains("(0 days ago)") && text.contains("(365 days left)"),
            "{text}"
        );
    }
}

#[test]
fn a_first_stored_date_in_the_future_is_not_believed() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let file = default_file(&t);
    let meta = meta_file(&file);
    // A few seconds ahead (another machine's clock): today, never a negative age.
    set_first_stored(&meta, now() + 60);
    let doc = status_json(&t);
    assert_eq!(
        (doc["age_days"].clone(), doc["days_left"].clone()),
        (0.into(), 365.into())
    );

    for bad in [Value::from(now() + 5 * DAY), Value::from("2026-01-01")] {
        set_first_stored(&meta, bad.clone());
        let (code, text, _) = run_in(&t, &["token", "status"], None);
        assert_eq!(code, 0, "{text}");
        assert!(!text.contains("-5") && !text.contains("370"), "{text}");
        assert!(text.contains("stored   unknown"), "{text}");
        let warning = text
            .lines()
            .find(|l| l.starts_with("warning  "))
            .unwrap_or_else(|| panic!("no warning for {bad}: {text}"));
        assert!(
            warning.contains(&meta.display().to_string())
                && warning.contains("claude-iso token set"),
            "{warning}"
        );
        let doc = status_json(&t);
        assert_eq!(doc["status"], "unknown", "{doc}");
        assert_eq!(doc["age_days"], Value::Null, "{doc}");
        assert!(
            doc["warning"]
                .as_str()
                .unwrap()
                .contains("claude-iso token set")
        );
        // doctor warns the same way.
        let (_, stdout, _) = run_in(&t, &["doctor", "--json"], None);
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let check = doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "token")
            .unwrap()
            .clone();
        assert_eq!(check["status"], "warn", "{check}");
        assert!(
            check["detail"]
                .as_str()
                .unwrap()
                .contains(&meta.display().to_string())
        );
    }
    set_first_stored(&meta, now() + 5 * DAY);
    // A launch warns in one line, naming the file and the fix.
    let out = t.run();
    out.success();
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("claude-iso: warning: {}: ", meta.display()))
            && err.contains("in the future")
            && err.contains("claude-iso token set"),
        "{err}"
    );
    // The fix works: storing the token again records today.
    let (code, _, stderr) = set_in(&t, TOKEN_B, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("recorded today's date instead"), "{stderr}");
    assert!(stderr.contains("(0 days ago)"), "{stderr}");
    assert_eq!(status_json(&t)["age_days"], 0);
}

#[test]
fn a_double_pasted_or_overlong_token_is_refused_by_token_set_and_by_a_launch() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let dir = default_file(&t).parent().unwrap().to_owned();
    let before = tree(&dir);
    let overlong = format!("{TOKEN_C}{}", &TOKEN_C[13..106]);
    for (input, needle) in [
        (
            format!("{TOKEN_C}{TOKEN_C}"),
            "looks like two tokens pasted together",
        ),
        (
            format!("{TOKEN_C} {TOKEN_C}"),
            "looks like two tokens pasted together",
        ),
        (overlong.clone(), "is longer than any setup-token"),
    ] {
        let (code, stdout, stderr) = set_in(&t, &input, &[]);
        assert_eq!(code, 125, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(tree(&dir), before);
    }
    // The shape check is the launcher's too.
    for (value, needle) in [
        (
            format!("{TOKEN_C}{TOKEN_C}"),
            "looks like two tokens pasted together",
        ),
        (overlong, "is longer than any setup-token"),
    ] {
        Test::new()
            .secret(TOKEN_C)
            .env_file_text(format!("CLAUDE_CODE_OAUTH_TOKEN={value}\n"))
            .run()
            .status(125)
            .one_line_error(&format!("token.env:1: CLAUDE_CODE_OAUTH_TOKEN {needle}"))
            .probe_not_run();
    }
}

#[test]
fn every_bad_env_file_line_names_the_file_the_line_and_the_fix() {
    let token_line = format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n");
    let cases: [(Vec<u8>, &str); 6] = [
        (
            format!("# a\nCLAUDE_CODE_OAUTH_TOKEN={TOKEN}\0\n").into_bytes(),
            "token.env:2: contains a NUL byte",
        ),
        (
            [&b"OTHER=\xff\xfe\n"[..], token_line.as_bytes()].concat(),
            "token.env:1: is not valid UTF-8; save the file as UTF-8 text",
        ),
        (
            [&b"OTHER=a\x1b[0m\n"[..], token_line.as_bytes()].concat(),
            "token.env:1: contains a control character",
        ),
        (
            [&b"OTHER=\"a\\n\"\n"[..], token_line.as_bytes()].concat(),
            "token.env:1: has an unsupported backslash escape",
        ),
        (
            [&b"OTHER='a' b\n"[..], token_line.as_bytes()].concat(),
            "token.env:1: has text after the closing quote",
        ),
        (
            [&b"\n\nOTHER\n"[..], token_line.as_bytes()].concat(),
            "token.env:3: has no '='",
        ),
    ];
    for (text, needle) in cases {
        let t = Test::new().env_file_text(text);
        let out = t.run();
        out.status(125).one_line_error(needle).probe_not_run();
        // "<file>:<line>: <what is wrong>; <the fix>".
        let err = out.stderr_text();
        let (_, reason) = err.split_once("token.env:").unwrap();
        let (_, fix) = reason.split_once("; ").unwrap_or_default();
        assert!(fix.trim().len() > 15, "no fix: {err}");
    }
}

#[test]
fn a_dry_run_reports_the_expiry_warning_without_repeating_it() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let file = default_file(&t);
    let warned = PathBuf::from(format!("{}.warned", file.display()));
    let t = t.no_env_file();
    backdate(&meta_file(&file), 355);
    // Before any launch: the plan says a launch would warn, and nothing is stamped.
    let out = t.spawn_with(["--dry-run"]).wait();
    out.status(0).stderr_lacks("warning");
    out.stdout_contains("token: the setup-token expires in 10 days");
    out.stdout_contains("a launch now would print it as a warning");
    assert!(!warned.exists());
    // After the day's warning: reported as already given, not warned again.
    t.run()
        .success()
        .stderr_contains("warning: the setup-token expires in 10 days");
    let stamp = fs::read(&warned).unwrap();
    let out = t.spawn_with(["--dry-run"]).wait();
    out.status(0).stderr_lacks("warning");
    out.stdout_contains("a launch already printed it today; it warns once a day");
    assert_eq!(fs::read(&warned).unwrap(), stamp);
}

#[test]
fn a_fifo_in_place_of_the_metadata_or_the_stamp_never_hangs() {
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let file = default_file(&t);
    backdate(&meta_file(&file), 355);
    let warned = PathBuf::from(format!("{}.warned", file.display()));
    nix::unistd::mkfifo(&warned, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let t = t.no_env_file().timeout(Duration::from_secs(10));
    // The stamp cannot be kept: the warning is given every time, and nothing hangs.
    t.run().success().stderr_contains("expires in 10 days");
    t.run().success().stderr_contains("expires in 10 days");
    fs::remove_file(meta_file(&file)).unwrap();
    nix::unistd::mkfifo(
        &meta_file(&file),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let out = t.spawn_with(["token", "status"]).wait();
    out.status(0).stdout_contains("stored   unknown");
}

#[test]
fn a_fresh_machine_without_claude_is_told_to_install_it_first() {
    let t = fresh();
    fs::remove_file(t.path("bin/claude")).unwrap();
    t.run()
        .status(125)
        .one_line_error("install Claude Code (npm install -g @anthropic-ai/claude-code), make a token with `claude setup-token`, then run: claude-iso token set");
    // With claude installed, the one next step is only to store the token.
    let t = fresh();
    let out = t.run();
    out.status(125)
        .one_line_error(
            "run: claude-iso token set (it stores the token `claude setup-token` prints)",
        )
        .stderr_lacks("install Claude Code");
}

#[test]
fn text_before_the_token_is_named_and_not_called_a_double_paste() {
    // Each holds `sk-ant-` once, after something that is not part of the token.
    let before = |prefix: &str, suffix: &str| format!("{prefix}{TOKEN_C}{suffix}");
    let values = [
        before("CLAUDE_CODE_OAUTH_TOKEN=", ""),
        before("export CLAUDE_CODE_OAUTH_TOKEN=", ""),
        before("\"", "\""),
        before("'", "'"),
        before("Bearer ", ""),
        before("x", ""),
        before("TOKEN=", ""),
    ];
    // In the environment and in an env file (where quotes are the file's own).
    for value in &values {
        let t = Test::new()
            .no_env_file()
            .secret(TOKEN_C)
            .env("CLAUDE_CODE_OAUTH_TOKEN", value);
        let out = t.run();
        out.status(125)
            .one_line_error("$CLAUDE_CODE_OAUTH_TOKEN")
            .one_line_error("before sk-ant-")
            .probe_not_run();
        out.stderr_lacks("two tokens");
        let quoted = value.replace('\'', "");
        if quoted == TOKEN_C {
            continue; // The file's own quotes: a good line.
        }
        let t = Test::new()
            .secret(TOKEN_C)
            .env_file_text(format!("CLAUDE_CODE_OAUTH_TOKEN='{quoted}'\n"));
        let out = t.run();
        out.status(125)
            .one_line_error("token.env:1: CLAUDE_CODE_OAUTH_TOKEN ")
            .probe_not_run();
        out.stderr_contains(if quoted.starts_with('"') {
            "remove the quotes around it"
        } else {
            "remove what comes before sk-ant-"
        });
        out.stderr_lacks("two tokens");
    }
    // token set: a line copied from an env file is taken as the token it sets (the
    // variable, `export`, quotes around it); anything else before it is refused, named.
    let t = fresh();
    assert_eq!(set_in(&t, TOKEN_B, &[]).0, 0);
    let dir = default_file(&t).parent().unwrap().to_owned();
    for bad in [
        before("Bearer ", ""),
        before("x", ""),
        before("TOKEN=", ""),
        before("\"", ""),
    ] {
        let kept = tree(&dir);
        let (code, stdout, stderr) = set_in(&t, &bad, &[]);
        assert_eq!(code, 125, "{stderr}");
        assert_eq!(stdout, "");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("before sk-ant-") && !stderr.contains("two tokens"),
            "{stderr}"
        );
        assert_eq!(tree(&dir), kept);
    }
    let doubled = before("x", TOKEN_C);
    let (code, _, stderr) = set_in(&t, &doubled, &[]);
    assert_eq!(code, 125, "{stderr}");
    assert!(stderr.contains("two tokens pasted together"), "{stderr}");
    for (i, good) in [
        before("CLAUDE_CODE_OAUTH_TOKEN=", ""),
        before("export CLAUDE_CODE_OAUTH_TOKEN=\"", "\""),
        before("'", "'"),
    ]
    .iter()
    .enumerate()
    {
        let token = if i % 2 == 0 { TOKEN_C } else { TOKEN_B };
        let good = good.replace(TOKEN_C, token);
        let (code, _, stderr) = set_in(&t, &good, &[]);
        assert_eq!(code, 0, "{good:.30}: {stderr}");
        let text = fs::read_to_string(default_file(&t)).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, [format!("CLAUDE_CODE_OAUTH_TOKEN={token}")]);
    }
}

#[test]
fn metadata_that_is_not_a_regular_file_is_named_with_its_own_fix() {
    let t = fresh();
    let dir = mkdir(&t.path("d"));
    let file = dir.join("token.env");
    let meta = meta_file(&file);
    let passwd = fs::read("/etc/passwd").unwrap();
    type Setup = fn(&Path);
    let cases: [(&str, Setup); 4] = [
        ("symlink to /etc/passwd", |p| {
            std::os::unix::fs::symlink("/etc/passwd", p).unwrap();
        }),
        ("dangling symlink", |p| {
            std::os::unix::fs::symlink("nowhere", p).unwrap();
        }),
        ("directory", |p| {
            mkdir(p);
        }),
        ("FIFO", |p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }),
    ];
    for with_file in [false, true] {
        if with_file {
            write_mode(&file, format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n"), 0o600);
        }
        for (what, setup) in &cases {
            setup(&meta);
            let kept = tree(&dir);
            let (code, stdout, stderr) =
                set_in(&t, TOKEN_C, &["--env-file", file.to_str().unwrap()]);
            assert_eq!(code, 125, "{what}: {stderr}");
            assert_eq!(stdout, "");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
            let shown = meta.display().to_string();
            assert!(
                stderr.starts_with(&format!("claude-iso: {shown}: "))
                    && stderr.contains(&format!("mv {shown} {shown}.old"))
                    && stderr.contains("first stored"),
                "{what}: {stderr}"
            );
            assert!(
                !stderr.contains("--env-file") && !stderr.contains("meta.json/"),
                "{what}: the token file's fix: {stderr}"
            );
            assert_eq!(tree(&dir), kept, "{what}");
            if meta.is_dir() && !meta.is_symlink() {
                fs::remove_dir(&meta).unwrap();
            } else {
                fs::remove_file(&meta).unwrap();
            }
        }
    }
    assert_eq!(fs::read("/etc/passwd").unwrap(), passwd);
}

#[test]
fn an_oversized_env_file_error_names_the_fix() {
    let mut text = format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n");
    text.push_str(&format!("# {}\n", "x".repeat(70 * 1024)));
    let t = Test::new().env_file_text(text);
    let out = t.run();
    out.status(125)
        .one_line_error("token.env: is ")
        .one_line_error("64 KiB")
        .probe_not_run();
    let err = out.stderr_text();
    let (_, fix) = err.split_once(": this is not a token file; ").expect(&err);
    assert!(
        fix.contains("--env-file") && fix.contains("claude-iso token set"),
        "{err}"
    );
}

/// A token typed as an argument is recognised wherever it stands before `--`: the run
/// stops before anything is created (no home, no directory named after the token), the
/// user is told it is in their shell history, and the token shows nowhere (issue 24).
#[test]
fn a_token_given_as_an_argument_is_refused_and_named() {
    for (args, at) in [
        (vec!["token", "set", TOKEN], 3),
        (vec![TOKEN], 1),
        (vec!["--home", TOKEN], 2),
        (vec!["-n", &format!("--home={TOKEN}")], 2),
        (vec!["--name", TOKEN, "--", "claude"], 2),
    ] {
        let t = Test::new()
            .no_home()
            .no_env_file()
            .args(args.iter().copied())
            .secret(TOKEN);
        let out = t.run();
        out.status(125)
            .one_line_error(&format!(
                "claude-iso: argument {at} is a token: it is now in your shell history"
            ))
            .one_line_error("claude-iso token set")
            .no_secrets()
            .probe_not_run();
        assert!(!t.home().exists(), "{args:?}");
        for dir in [t.root().to_owned(), t.work()] {
            let names: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().all(|n| !n.contains("sk-ant-")),
                "{args:?}: {names:?} in {}",
                dir.display()
            );
        }
    }
    // After `--` it is the command's business.
    let t = Test::new().command(["probe", "--x", TOKEN]);
    t.run().success();
}

// ---------------------------------------------------------------------------------------
// $CREDENTIALS_DIRECTORY: the exemption only for what systemd builds
// ---------------------------------------------------------------------------------------

#[test]
fn credentials_directory_exemption_variants() {
    struct Row {
        name: &'static str,
        build: fn(&Test) -> PathBuf,
        /// `None`: accepted; otherwise what the one-line refusal says.
        refused: Option<&'static str>,
        root_only: bool,
        env_file: Option<&'static str>,
    }
    let rows = [
        Row {
            name: "a symlink in a 0500 dir pointing at a 0444 file outside",
            build: |t| {
                let outside = t.path("outside-token");
                write_mode(&outside, TOKEN, 0o444);
                let creds = mkdir(&t.path("creds"));
                symlink(&outside, creds.join("claude-oauth-token")).unwrap();
                chmod(&creds, 0o500);
                creds
            },
            refused: Some("UNPROTECTED: mode 0444"),
            root_only: false,
            env_file: None,
        },
        Row {
            name: "a symlink in a 0500 dir pointing at a 0600 file outside",
            build: |t| {
                let outside = t.path("outside-token");
                write_mode(&outside, TOKEN, 0o600);
                let creds = mkdir(&t.path("creds"));
                symlink(&outside, creds.join("claude-oauth-token")).unwrap();
                chmod(&creds, 0o500);
                creds
            },
            refused: None,
            root_only: false,
            env_file: None,
        },
        Row {
            name: "a nested subdirectory (env file in creds/sub, 0440)",
            build: |t| {
                let creds = mkdir(&t.path("creds"));
                let sub = mkdir(&creds.join("sub"));
                write_mode(
                    &sub.join("token.env"),
                    format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"),
                    0o440,
                );
                chmod(&sub, 0o500);
                chmod(&creds, 0o500);
                creds
            },
            refused: Some("UNPROTECTED: mode 0440"),
            root_only: false,
            env_file: Some("creds/sub/token.env"),
        },
        Row {
            name: "the directory has group bits (0550)",
            build: |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o440);
                chmod(&creds, 0o550);
                creds
            },
            refused: Some("UNPROTECTED: mode 0440"),
            root_only: false,
            env_file: None,
        },
        Row {
            name: "CREDENTIALS_DIRECTORY a symlink to a systemd-like 0500 dir",
            build: |t| {
                let creds = mkdir(&t.path("creds-real"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o440);
                chmod(&creds, 0o500);
                symlink(&creds, t.path("creds")).unwrap();
                t.path("creds")
            },
            refused: None,
            root_only: false,
            env_file: None,
        },
        Row {
            name: "the directory is owned by another user (0500, file 0440)",
            build: |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o440);
                chmod(&creds, 0o500);
                chown(&creds, NOBODY);
                creds
            },
            refused: Some("UNPROTECTED: mode 0440"),
            root_only: true,
            env_file: None,
        },
        Row {
            name: "the file is owned by another user (in a 0500 dir of ours)",
            build: |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o400);
                chown(&creds.join("claude-oauth-token"), NOBODY);
                chmod(&creds, 0o500);
                creds
            },
            refused: Some("owned by uid 65534"),
            root_only: true,
            env_file: None,
        },
    ];
    for row in rows {
        if row.root_only && !is_root() {
            eprintln!("[{}] needs root to create another user's file", row.name);
            continue;
        }
        let t = Test::new().no_env_file();
        let creds = (row.build)(&t);
        let mut t = t.env("CREDENTIALS_DIRECTORY", &creds);
        if let Some(f) = row.env_file {
            let p = t.path(f);
            t = t.arg("--env-file").arg(p);
        }
        let out = t.run();
        out.no_secrets();
        match row.refused {
            None => out.success().probe().assert_token(TOKEN),
            Some(needle) => {
                out.status(125).one_line_error(needle).probe_not_run();
            }
        }
    }
}

/// A token file that is there but cannot be read says so: its owner and mode, who we
/// are, and the way out — not "no token found" (issue 24). The default path included.
#[test]
fn an_unreadable_token_file_names_owner_mode_and_the_way_out() {
    // Runner: its own file at mode 0000 (it may not read it either), or, as root, root's
    // 0600 file read as nobody.
    let t = Test::new().no_env_file();
    let dir = mkdir(&t.path("cfg/claude-iso"));
    let file = dir.join("token.env");
    write_mode(&file, format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"), 0o600);
    let (mode, owner) = if is_root() {
        ("0600", "owner root (uid 0)")
    } else {
        chmod(&file, 0o000);
        ("0000", "")
    };
    for t in [
        Test::new().no_env_file().arg("--env-file").arg(&file),
        Test::new()
            .no_env_file()
            .env("XDG_CONFIG_HOME", t.path("cfg")),
    ] {
        let t = as_runner(t);
        let out = t.run();
        out.status(125)
            .one_line_error(&format!(
                "{}: cannot open: Permission denied (",
                file.display()
            ))
            .one_line_error(&format!("mode {mode}; you are "))
            .one_line_error(owner)
            .one_line_error(&format!("chmod 600 {}", file.display()))
            .one_line_error("claude-iso token set --env-file")
            .stderr_lacks("no token found")
            .probe_not_run();
    }
}
