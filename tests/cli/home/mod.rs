//! Homes (issue 14): named homes, `claude-iso homes` and `homes prune`; the built binary,
//! a sandbox per test, as root and as an unprivileged user. The scratch home a launch
//! prepares is in [`scratch`], the writes of its `.claude.json` in [`seed`].

mod scratch;
mod seed;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::support::sandbox::{
    Test, mkdir, mode_of, named, sh, state_dir, state_test, tree, write_mode,
};
use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

/// Runs a subcommand (`homes …`) in the sandbox's environment.
fn sub(t: &Test, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(crate::support::sandbox::BIN)
        .args(args)
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run claude-iso");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn homes_json(t: &Test) -> Value {
    let (code, out, err) = sub(t, &["homes", "--json"]);
    assert_eq!(code, 0, "homes --json: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Sets the mtime of `path` to `secs` (Unix time).
fn set_mtime(path: &Path, secs: i64) {
    sh(&format!("touch -h -d @{secs} '{}'", path.display()));
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------
// Named homes
// ---------------------------------------------------------------------------------------

#[test]
fn two_named_homes_side_by_side_stay_separate() {
    let t = state_test();
    let mark = |name: &str| {
        t.reset_probe();
        let out = t.spawn_with(["--name", name]).wait();
        out.success();
        let home = out.probe().var("HOME").expect("HOME set");
        fs::write(Path::new(&home).join(format!("mine-{name}")), name).unwrap();
        PathBuf::from(home)
    };
    let a = mark("agent-1");
    let b = mark("agent.2_B");
    assert_eq!(a, named(&t, "agent-1"));
    assert_eq!(b, named(&t, "agent.2_B"));
    assert_eq!(mode_of(&a), 0o700);
    assert_eq!(mode_of(&state_dir(&t).join("homes")), 0o700);
    // Each sees only its own files; the default home was never made.
    assert!(a.join("mine-agent-1").exists() && !a.join("mine-agent.2_B").exists());
    assert!(b.join("mine-agent.2_B").exists() && !b.join("mine-agent-1").exists());
    assert!(!state_dir(&t).join("home").exists());
    // The environment variable names a home too; the command line wins over it.
    let t = t.env("CLAUDE_ISO_NAME", "agent-1");
    t.reset_probe();
    let out = t.run();
    out.success();
    assert_eq!(out.probe().var("HOME").unwrap(), a.as_os_str());
    t.reset_probe();
    let out = t.spawn_with(["--name", "agent.2_B"]).wait();
    out.success();
    assert_eq!(out.probe().var("HOME").unwrap(), b.as_os_str());
}

#[test]
fn bad_names_are_refused_with_the_rule() {
    let t = state_test();
    for bad in [
        ".", "..", "../x", "a/b", "/abs", "-dash", ".hidden", "a b", "é", "a\nb", "",
    ] {
        let out = t.spawn_with([format!("--name={bad}")]).wait();
        out.status(125)
            .one_line_error("a home name is 1 to 64 characters")
            .probe_not_run();
    }
    let long = "a".repeat(65);
    t.spawn_with(["--name", long.as_str()])
        .wait()
        .status(125)
        .probe_not_run();
    let ok = "a".repeat(64);
    t.spawn_with(["--name", ok.as_str()]).wait().success();
    assert!(!t.path("x").exists() && !state_dir(&t).join("x").exists());

    let t2 = state_test().env("CLAUDE_ISO_NAME", "../../etc");
    t2.run()
        .status(125)
        .one_line_error("CLAUDE_ISO_NAME")
        .probe_not_run();
}

#[test]
fn home_and_name_together_are_a_usage_error() {
    let t = Test::new().args(["--name", "a"]);
    t.run().status(125).one_line_error("--name").probe_not_run();
    assert!(!t.home().exists());
    let t = state_test()
        .env("CLAUDE_ISO_NAME", "a")
        .env("CLAUDE_ISO_HOME", "/tmp/somewhere");
    t.run()
        .status(125)
        .one_line_error("CLAUDE_ISO_HOME and CLAUDE_ISO_NAME")
        .probe_not_run();
    // One from the command line and the other from the environment: the command line wins.
    let t = state_test().env("CLAUDE_ISO_HOME", "/nonexistent/nope");
    let out = t.spawn_with(["--name", "cli"]).wait();
    out.success();
    assert_eq!(
        out.probe().var("HOME").unwrap(),
        named(&t, "cli").as_os_str()
    );
}

// ---------------------------------------------------------------------------------------
// claude-iso homes
// ---------------------------------------------------------------------------------------

/// Apparent size of every non-directory below `root`, as `homes` counts it.
fn size_of(root: &Path) -> u64 {
    tree(root)
        .values()
        .filter(|e| e.kind != "dir")
        .map(|e| e.content.len() as u64)
        .sum()
}

#[test]
fn homes_lists_every_home_with_its_figures_and_stable_json() {
    let t = state_test();
    let extra1 = mkdir(&t.path("p1"));
    let extra2 = mkdir(&t.path("p2"));
    t.run().success(); // the default home
    t.spawn_with(["--name", "b"]).wait().success();
    let trust = [
        "--name",
        "a",
        "--trust",
        extra1.to_str().unwrap(),
        "--trust",
        extra2.to_str().unwrap(),
    ];
    t.spawn_with(trust).wait().success();

    let a = named(&t, "a");
    let b = named(&t, "b");
    let default = state_dir(&t).join("home");
    mkdir(&b.join(".claude"));
    write_mode(
        &b.join(".claude/.credentials.json.quarantined-1700000000-0"),
        "{\"claudeAiOauth\":{}}",
        0o600,
    );
    write_mode(
        &b.join(".claude.json.corrupt-1700000001-0"),
        "not json",
        0o600,
    );
    write_mode(&a.join(".claude.json.claude-iso.4242.0.tmp"), "{", 0o600);
    write_mode(&a.join(".claude.json.tmp.77.abc"), "{}", 0o600);
    set_mtime(&a.join(".claude-iso.lock"), 1_700_000_000);
    // Not homes: a symlink, a file, a bad name.
    symlink(t.real_home(), state_dir(&t).join("homes/link")).unwrap();
    fs::write(state_dir(&t).join("homes/file"), "").unwrap();
    mkdir(&state_dir(&t).join("homes/bad name"));

    let doc = homes_json(&t);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["state_dir"], state_dir(&t).to_str().unwrap());
    let homes = doc["homes"].as_array().unwrap();
    let names: Vec<&Value> = homes.iter().map(|h| &h["name"]).collect();
    assert_eq!(names, [&Value::Null, &Value::from("a"), &Value::from("b")]);
    let keys: Vec<&str> = homes[1]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "default",
            "path",
            "size_bytes",
            "last_launch",
            "in_use",
            "seeded_dirs",
            "quarantined",
            "set_aside",
            "temp_files"
        ]
    );
    let (d, ha, hb) = (&homes[0], &homes[1], &homes[2]);
    assert_eq!(d["default"], true);
    assert_eq!(ha["default"], false);
    assert_eq!(d["path"], default.to_str().unwrap());
    assert_eq!(ha["path"], a.to_str().unwrap());
    assert_eq!(d["seeded_dirs"], 1);
    assert_eq!(ha["seeded_dirs"], 3);
    assert_eq!(hb["seeded_dirs"], 1);
    assert_eq!(ha["last_launch"], 1_700_000_000);
    let lb = hb["last_launch"].as_i64().unwrap();
    assert!((now() - lb).abs() < 120, "{lb}");
    for (h, dir) in [(d, &default), (ha, &a), (hb, &b)] {
        assert_eq!(h["size_bytes"], size_of(dir), "{dir:?}");
        assert_eq!(h["in_use"], false);
    }
    assert_eq!(
        hb["quarantined"],
        serde_json::json!([".claude/.credentials.json.quarantined-1700000000-0"])
    );
    assert_eq!(
        hb["set_aside"],
        serde_json::json!([".claude.json.corrupt-1700000001-0"])
    );
    assert_eq!(
        ha["temp_files"],
        serde_json::json!([
            ".claude.json.claude-iso.4242.0.tmp",
            ".claude.json.tmp.77.abc"
        ])
    );
    assert_eq!(ha["quarantined"], serde_json::json!([]));

    // Stable: the same state gives the same bytes.
    let (_, first, _) = sub(&t, &["homes", "--json"]);
    let (_, second, _) = sub(&t, &["homes", "--json"]);
    assert_eq!(first, second);

    let (code, text, err) = sub(&t, &["homes"]);
    assert_eq!(code, 0);
    assert!(
        text.contains("(default)") && text.contains(" 2023-11-14 ("),
        "{text}"
    );
    assert!(
        text.contains("quarantined: .claude/.credentials.json.quarantined-1700000000-0"),
        "{text}"
    );
    // No more precise than the stamp is kept (renewed at most hourly): the day, days ago.
    assert!(!text.contains("22:13"), "{text}");
    assert!(text.contains("d ago)"), "{text}");
    assert!(err.contains("homes/link: a symlink, not a home"), "{err}");
    assert!(err.contains("not a valid home name"), "{err}");
}

#[test]
fn a_launch_renews_a_stale_stamp_and_leaves_a_fresh_one_alone() {
    let t = state_test();
    t.spawn_with(["--name", "s"]).wait().success();
    let lock = named(&t, "s").join(".claude-iso.lock");
    let last = |t: &Test| homes_json(t)["homes"][0]["last_launch"].as_i64().unwrap();
    assert!((now() - last(&t)).abs() < 120);
    set_mtime(&lock, now() - 2 * 86400);
    t.reset_probe();
    t.spawn_with(["--name", "s"]).wait().success();
    assert!(
        (now() - last(&t)).abs() < 120,
        "a launch did not renew the stamp"
    );
    // Within the hour, a launch into a seeded home changes nothing at all.
    let before = tree(&named(&t, "s"));
    t.reset_probe();
    t.spawn_with(["--name", "s"]).wait().success();
    assert_eq!(tree(&named(&t, "s")), before);
}

#[test]
fn homes_with_no_state_directory_lists_none() {
    let t = state_test();
    let doc = homes_json(&t);
    assert_eq!(doc["homes"], serde_json::json!([]));
    let (code, text, _) = sub(&t, &["homes"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("no homes in "), "{text}");
}

// ---------------------------------------------------------------------------------------
// claude-iso homes prune
// ---------------------------------------------------------------------------------------

fn make_old(t: &Test, name: &str) -> PathBuf {
    t.spawn_with(["--name", name]).wait().success();
    let home = named(t, name);
    set_mtime(&home.join(".claude-iso.lock"), now() - 40 * 86400);
    home
}

#[test]
fn prune_removes_old_homes_never_one_in_use_nor_a_quarantined_file_unreported() {
    let t = state_test();
    let old = make_old(&t, "old");
    let busy = make_old(&t, "busy");
    let quarantined = make_old(&t, "q");
    t.spawn_with(["--name", "fresh"]).wait().success();
    let qfile = quarantined.join(".claude/.credentials.json.quarantined-1700000000-0");
    mkdir(&quarantined.join(".claude"));
    write_mode(&qfile, "{\"refreshToken\":\"x\"}", 0o600);
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(busy.join(".claude-iso.lock"))
        .unwrap();
    let held = Flock::lock(lock, FlockArg::LockExclusive).unwrap();

    // A dry run removes nothing and says what it would do.
    let before = tree(&state_dir(&t));
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "30", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would remove old"), "{out}");
    assert!(out.contains("kept busy") && out.contains("in use"), "{out}");
    assert!(
        out.contains("kept q") && out.contains(".credentials.json.quarantined"),
        "{out}"
    );
    assert!(!out.contains("fresh"), "{out}");
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        tree(&state_dir(&t)).keys().collect::<Vec<_>>()
    );

    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "30"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed old"), "{out}");
    assert!(!old.exists());
    assert!(
        busy.join(".claude.json").exists(),
        "a home in use was removed: {out}"
    );
    assert!(
        qfile.exists(),
        "a quarantined credentials file was removed: {out}"
    );
    assert!(out.contains("--delete-quarantined"), "{out}");
    assert!(named(&t, "fresh").exists());

    // Once the lock is released, and the quarantined file is allowed to go, both go —
    // and the deleted credentials file is named.
    drop(held);
    let (code, out, err) = sub(
        &t,
        &[
            "homes",
            "prune",
            "--older-than",
            "30",
            "--delete-quarantined",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!busy.exists() && !quarantined.exists(), "{out}");
    assert!(
        out.contains("deleted quarantined credentials file .claude/.credentials.json.quarantined-1700000000-0"),
        "{out}"
    );
    assert!(named(&t, "fresh").exists());
    let left: Vec<_> = fs::read_dir(state_dir(&t).join("homes"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["fresh"]);
}

#[test]
fn prune_keeps_a_home_a_process_runs_in() {
    let t = state_test();
    let home = make_old(&t, "running");
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .env_clear()
        .env("HOME", &home)
        .spawn()
        .unwrap();
    let (code, out, _) = sub(&t, &["homes", "prune", "--older-than", "1"]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(code, 0);
    assert!(
        out.contains("kept running") && out.contains("HOME"),
        "{out}"
    );
    assert!(home.join(".claude.json").exists());
}

/// Found by review: a command that changes its `HOME` was not seen as using its home,
/// and `homes prune` removed the home under it. A process working in a home uses it too
/// (no descriptor of claude-iso's passes into the command, so its `HOME` and its working
/// directory are what can be seen).
#[test]
fn prune_keeps_a_home_a_command_works_in_under_another_home() {
    let t = state_test();
    let home = make_old(&t, "cwdonly");
    let ready = t.path("ready");
    let runner = launcher(
        &t,
        &[
            "/bin/sh",
            "-c",
            &format!(
                "mkdir -p \"$HOME/work\"; cd \"$HOME/work\"; touch '{}'; exec env HOME=/ /bin/sleep 30",
                ready.display()
            ),
        ],
    );
    let run = runner.spawn_with(["--name", "cwdonly"]);
    assert!(
        wait_until(20, || ready.exists()),
        "the command never started"
    );
    set_mtime(&home.join(".claude-iso.lock"), now() - 40 * 86400);
    let listed = homes_json(&t);
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "1"]);
    signal(run.id(), nix::sys::signal::Signal::SIGKILL);
    let mut run = run;
    let _ = run.child.wait();
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kept cwdonly") && out.contains("works in it"),
        "{out}"
    );
    assert!(home.join(".claude.json").exists());
    let entry = listed["homes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "cwdonly")
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(entry["in_use"], true, "{listed}");
    // Once the command is gone, the home goes.
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed cwdonly"), "{out}");
}

/// README's guard for a long-running agent: a shared lock of the home directory
/// (`flock -s HOME command`), which launches share, keeps it from being pruned.
#[test]
fn a_shared_lock_of_the_home_directory_keeps_it() {
    let t = state_test();
    let home = make_old(&t, "guarded");
    let dir = fs::File::open(&home).unwrap();
    let held = Flock::lock(dir, FlockArg::LockShared).unwrap();
    // A launch into the guarded home still works (its own lock is shared too).
    t.spawn_with(["--name", "guarded"]).wait().success();
    set_mtime(&home.join(".claude-iso.lock"), now() - 40 * 86400);
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "30"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kept guarded"), "{out}");
    assert!(home.join(".claude.json").exists());
    drop(held);
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "30"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed guarded"), "{out}");
}

#[test]
fn prune_never_follows_a_symlink_out_of_the_homes() {
    let t = state_test();
    let home = make_old(&t, "h");
    let outside = mkdir(&t.path("outside"));
    write_mode(&outside.join("precious"), "keep me", 0o644);
    mkdir(&outside.join("sub"));
    write_mode(&outside.join("sub/also"), "keep me too", 0o444);
    symlink(&outside, home.join("link-to-outside")).unwrap();
    symlink(outside.join("precious"), home.join(".claude.json.lnk")).unwrap();
    mkdir(&home.join(".claude/deep/er"));
    symlink(&outside, home.join(".claude/deep/er/up")).unwrap();
    // A read-only directory inside (as --share makes them) is removed too.
    mkdir(&home.join("ro/inner"));
    fs::write(home.join("ro/inner/f"), "x").unwrap();
    crate::support::sandbox::chmod(&home.join("ro/inner"), 0o555);
    crate::support::sandbox::chmod(&home.join("ro"), 0o555);
    // A symlink where a home would be is not a home.
    symlink(&outside, state_dir(&t).join("homes/evil")).unwrap();
    let before = tree(&outside);

    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!home.exists(), "{out}");
    assert_eq!(
        tree(&outside),
        before,
        "something outside the homes changed"
    );
    assert!(fs::symlink_metadata(state_dir(&t).join("homes/evil")).is_ok());
}

// ---------------------------------------------------------------------------------------
// homes prune against launches running meanwhile
// ---------------------------------------------------------------------------------------

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, sig).unwrap();
}

/// The PIDs holding a `flock` on the inode of `path`, from `/proc/locks`.
fn flock_holders(path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let st = fs::metadata(path).unwrap();
    let id = format!(
        "{:02x}:{:02x}:{}",
        nix::sys::stat::major(st.dev()),
        nix::sys::stat::minor(st.dev()),
        st.ino()
    );
    fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter(|l| l.contains("FLOCK") && !l.contains("->"))
        .filter(|l| l.split_whitespace().nth(5) == Some(id.as_str()))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse().ok())
        .collect()
}

/// Polls `cond` every millisecond for at most `secs` seconds.
fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    false
}

/// A launch that shares `t`'s state directory but runs `argv`, from a working directory
/// of its own.
fn launcher(t: &Test, argv: &[&str]) -> Test {
    Test::new()
        .no_home()
        .env("XDG_STATE_HOME", t.path("state"))
        .command(argv.iter().copied())
}

/// One run of the race `prune_checks_each_home_again_just_before_removing_it`: `false`
/// when the prune could not be caught inside the big home's removal.
fn prune_race(files: usize) -> bool {
    let t = state_test();
    let big = make_old(&t, "aaa");
    let relaunched = make_old(&t, "bbb");
    let running = make_old(&t, "ccc");
    let idle = make_old(&t, "ddd");
    mkdir(&big.join("many"));
    for i in 0..files {
        fs::File::create(big.join("many").join(i.to_string())).unwrap();
    }
    let homes = state_dir(&t).join("homes");
    let out_file = t.path("prune.out");
    let mut prune = crate::support::sandbox::spawn_helper(
        std::process::Command::new(crate::support::sandbox::BIN)
            .args(["homes", "prune", "--older-than", "30"])
            .env_clear()
            .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
            .stdout(fs::File::create(&out_file).unwrap())
            .stderr(std::process::Stdio::inherit()),
    );
    let pid = prune.id();
    let removing_big = || {
        fs::read_dir(&homes).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".pruning.aaa.")
        })
    };
    // Every home was listed (old, not in use) before the first one is removed: catch
    // the prune while it empties the big one, and stop it there.
    let caught = wait_until(60, || removing_big() || prune.try_wait().unwrap().is_some());
    assert!(caught, "the prune did not get to the big home");
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    if !removing_big() {
        signal(pid, nix::sys::signal::Signal::SIGCONT);
        prune.wait().unwrap();
        return false;
    }
    // Meanwhile: a launch into one listed home (its stamp renewed), and a command left
    // running in another whose stamp is then made old again.
    t.reset_probe();
    t.spawn_with(["--name", "bbb"]).wait().success();
    let marker = t.path("ccc-started");
    let script = format!("echo \"$HOME\" > '{}'; exec sleep 60", marker.display());
    let runner = launcher(&t, &["sh", "-c", &script]);
    let mut agent = runner.spawn_with(["--name", "ccc"]);
    assert!(
        wait_until(20, || fs::read_to_string(&marker)
            .is_ok_and(|s| s.ends_with('\n'))),
        "the command in ccc did not start"
    );
    assert_eq!(
        fs::read_to_string(&marker).unwrap().trim_end(),
        running.to_str().unwrap()
    );
    set_mtime(&running.join(".claude-iso.lock"), now() - 40 * 86400);

    signal(pid, nix::sys::signal::Signal::SIGCONT);
    let status = prune.wait().unwrap();
    let still_running = !agent.exited();
    agent.child.kill().unwrap();
    let _ = agent.child.wait();
    let out = fs::read_to_string(&out_file).unwrap();
    assert!(status.success(), "{out}");
    assert!(still_running, "the command in ccc ended early");
    assert!(out.contains("removed aaa") && !big.exists(), "{out}");
    assert!(out.contains("removed ddd") && !idle.exists(), "{out}");
    assert!(
        out.contains("kept bbb") && out.contains("launched since it was listed"),
        "{out}"
    );
    assert!(
        relaunched.join(".claude.json").exists(),
        "a home launched after the listing was removed: {out}"
    );
    assert!(
        out.contains("kept ccc") && out.contains("a running process has it as HOME"),
        "{out}"
    );
    assert!(
        running.join(".claude.json").exists(),
        "the home of a running command was removed: {out}"
    );
    let mut left: Vec<_> = fs::read_dir(&homes)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["bbb", "ccc"], "{out}");
    true
}

/// The listing is not trusted at removal time: a home launched into, or whose command
/// started, after `homes prune` listed it (while it was busy removing another) is kept,
/// each check made again under the home's lock just before it would go.
#[test]
fn prune_checks_each_home_again_just_before_removing_it() {
    for files in [20_000, 60_000, 150_000] {
        if prune_race(files) {
            return;
        }
    }
    panic!("the prune was never caught inside a removal: the race was not exercised");
}

/// A launch holds its claim on the home from before it changes anything until the
/// command runs: stopped in the middle (here while it waits to seed), its home is in
/// use and not pruned, even by `--older-than 0`; it then goes on in that same home.
#[test]
fn a_home_a_launch_is_preparing_is_never_pruned() {
    let t = state_test();
    let home = make_old(&t, "p");
    // The launch comes from another directory, so it must seed, and waits for our lock.
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(home.join(".claude-iso.lock"))
        .unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusive).unwrap();
    let other = launcher(&t, &["probe"]);
    let mut launch = other.spawn_with(["--name", "p"]);
    let pid = launch.id();
    wait_until(20, || {
        flock_holders(&home).contains(&pid) || launch.exited()
    });
    assert!(
        flock_holders(&home).contains(&pid),
        "the launch never claimed its home"
    );
    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    drop(held);
    let doc = homes_json(&t);
    assert_eq!(doc["homes"][0]["in_use"], true, "{doc}");
    let (code, out, err) = sub(&t, &["homes", "prune", "--older-than", "0"]);
    signal(pid, nix::sys::signal::Signal::SIGCONT);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("kept p") && out.contains("a launch is preparing it"),
        "{out}"
    );
    assert!(home.join(".claude.json").exists(), "{out}");
    let done = launch.wait();
    done.success();
    assert_eq!(done.probe().var("HOME").unwrap(), home.as_os_str());
    assert!(crate::support::sandbox::trusts(
        &crate::support::sandbox::claude_json(&home),
        &other.work()
    ));
}

/// A launch that finds its home held by a prune waits, and when the prune has moved the
/// home aside, runs nothing (125, one line) rather than prepare a home being removed.
#[test]
fn a_launch_that_waited_for_a_prune_runs_nothing_in_the_removed_home() {
    for pause in [1500, 4000] {
        let t = state_test();
        let home = make_old(&t, "w");
        let held = Flock::lock(fs::File::open(&home).unwrap(), FlockArg::LockExclusive).unwrap();
        t.reset_probe();
        let mut launch = t.spawn_with(["--name", "w"]);
        std::thread::sleep(std::time::Duration::from_millis(pause));
        assert!(!launch.exited(), "the launch did not wait for the lock");
        let aside = state_dir(&t).join("homes/.pruning.w.1");
        fs::rename(&home, &aside).unwrap();
        drop(held);
        let out = launch.wait();
        if out.status.success() {
            // It had not opened the home before the rename (a slow start): it made a
            // fresh one, which is right too, but not this test.
            continue;
        }
        out.status(125)
            .one_line_error("was removed (by `claude-iso homes prune`) or moved while this launch was preparing it")
            .probe_not_run();
        assert!(
            !home.exists(),
            "the launch re-created the home it was preparing"
        );
        return;
    }
    panic!("the launch never waited for the prune's lock: not exercised");
}
