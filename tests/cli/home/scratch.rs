//! Hardening, round 2 (issue 9) and the four bugs of issue 15 §4: the home the command
//! gets is the home that was checked; a closed stderr never crashes us; only what we
//! created is chmod'ed; nothing is created before a refusal; kills leave nothing that
//! blocks; execute-only ancestors; doctor's timeouts, URLs and throwaway home.
//!
//! Every test passes as root and as an unprivileged user. Where permissions must bind
//! (root ignores them), the root run starts claude-iso as `nobody` through
//! `setpriv` ([`as_runner`]), with the fixtures it must own chowned to it; where a second
//! user is needed and the run is unprivileged, the test says what covers it instead.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::sandbox::{
    BIN, TOKEN, Test, chmod, is_root, mkdir, mode_of, names_with_prefix, realpath, status_of,
    temp_files, tree, write_executable, write_mode,
};

/// `nobody`: the unprivileged user root runs claude-iso as, and the "other user" of
/// fixtures owned by someone else.
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The uid claude-iso runs as under [`as_runner`].
fn runner_uid() -> u32 {
    if is_root() {
        NOBODY
    } else {
        nix::unistd::geteuid().as_raw()
    }
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Gives `path` (and everything below it) to the runner (root runs only).
fn own(path: &Path) {
    if !is_root() {
        return;
    }
    chown(path, NOBODY);
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            own(&e.unwrap().path());
        }
    }
}

/// Runs claude-iso unprivileged: as root, through `setpriv` as `nobody` (same PID), with
/// the env file and the probe's output directory given to it; otherwise as is.
fn as_runner(t: Test) -> Test {
    if !is_root() {
        return t;
    }
    own(&t.env_file());
    own(&t.path("probe"));
    t.wrap("exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" \"$@\"")
}

/// Runs a helper command as the runner (for reads that must be refused to it).
fn runner_command(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    }
}

/// Asserts `home` (the child's `HOME`) is exactly `expected`'s realpath, absolute, with
/// no symlink component and nothing of `/proc`.
#[track_caller]
fn assert_canonical(home: &OsStr, expected: &Path, what: &str) {
    let home = Path::new(home);
    assert_eq!(
        home,
        realpath(expected),
        "[{what}] HOME is not the realpath"
    );
    assert!(home.is_absolute(), "[{what}] {}", home.display());
    assert!(!home.starts_with("/proc"), "[{what}] {}", home.display());
    let mut at = PathBuf::from("/");
    for c in home.components().skip(1) {
        at.push(c);
        assert!(
            !fs::symlink_metadata(&at).unwrap().file_type().is_symlink(),
            "[{what}] HOME {} has a symlink component {}",
            home.display(),
            at.display()
        );
    }
}

/// A snapshot of the sandbox without what every run writes (its output files, the
/// probe's records).
fn sandbox_tree(t: &Test) -> std::collections::BTreeMap<PathBuf, crate::support::sandbox::Entry> {
    tree(t.root())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(".runs") && !p.starts_with("probe"))
        .collect()
}

/// Modes and contents (not times: a hard link aside changes a file's ctime) of
/// everything under `dir`.
fn modes(dir: &Path) -> Vec<(PathBuf, u32, u32, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .map(|(p, e)| (p, e.mode, e.uid, e.content))
        .collect()
}

/// A directory with `mode`, set exactly.
fn mkdir_mode(path: &Path, mode: u32) -> PathBuf {
    mkdir(path);
    chmod(path, mode);
    path.to_owned()
}

/// Waits until `pid` holds a `flock` (claude-iso took its own lock: it is seeding).
fn wait_for_flock(pid: u32, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        if locks
            .lines()
            .any(|l| l.contains("FLOCK") && l.split_whitespace().nth(4) == Some(&pid.to_string()))
        {
            // A moment more for it to reach the wait for claude's lock.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("claude-iso exited ({status}) before taking its lock");
        }
        assert!(Instant::now() < deadline, "claude-iso never took its lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keeps a claude lock (`.claude.json.lock`) fresh, as a live claude does, until dropped.
struct HeldClaudeLock {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldClaudeLock {
    fn new(home: &Path) -> Self {
        let dir = mkdir(&home.join(".claude.json.lock"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(f) = fs::File::open(&dir) {
                        let _ = f.set_modified(std::time::SystemTime::now());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        };
        HeldClaudeLock {
            dir,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HeldClaudeLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// The command line of every process whose argv contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                out.push(format!("{}: {text}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// A marker unique to this test run, for finding processes it left.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}{}{nanos:09}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// 1. The command's HOME is the canonical path of the checked directory
// ---------------------------------------------------------------------------------------

/// Every way of spelling the home through symlinks, `/proc/self/cwd` with `-C`, `..`,
/// `CLAUDE_ISO_HOME` and `XDG_STATE_HOME` ends in the same thing: the probe's `HOME` is
/// the realpath of what was checked, with no symlink component — for a new home and
/// for the same home again once it exists.
#[test]
fn the_child_home_is_the_canonical_path_of_the_checked_directory() {
    struct Row {
        name: &'static str,
        build: fn() -> (Test, PathBuf),
    }
    let rows = [
        Row {
            name: "--home through a directory symlink",
            build: || {
                let t = Test::new().no_home();
                let real = mkdir(&t.path("real"));
                symlink(&real, t.path("link")).unwrap();
                let link = t.path("link/home");
                (t.arg("--home").arg(link), real.join("home"))
            },
        },
        Row {
            name: "--home through a chain of two symlinks, relative",
            build: || {
                let t = Test::new().no_home();
                let real = mkdir(&t.path("real/deep"));
                symlink("real", t.path("l1")).unwrap();
                symlink("l1/deep", t.path("l2")).unwrap();
                let root = t.root().to_owned();
                let t = t.cwd(root).arg("--home").arg("l2/home");
                (t, real.join("home"))
            },
        },
        Row {
            name: "/proc/self/cwd with -C elsewhere",
            build: || {
                let t = Test::new().no_home();
                let start = mkdir(&t.path("start"));
                let elsewhere = mkdir(&t.path("elsewhere"));
                let t = t
                    .cwd(start.clone())
                    .arg("-C")
                    .arg(elsewhere)
                    .arg("--home")
                    .arg("/proc/self/cwd/home");
                (t, start.join("home"))
            },
        },
        Row {
            name: "/proc/self/cwd through a symlinked start directory",
            build: || {
                let t = Test::new().no_home();
                let start = mkdir(&t.path("real-start"));
                symlink(&start, t.path("start-link")).unwrap();
                let elsewhere = mkdir(&t.path("elsewhere"));
                let start_link = t.path("start-link");
                let t = t
                    .cwd(start_link)
                    .arg("-C")
                    .arg(elsewhere)
                    .arg("--home")
                    .arg("/proc/self/cwd/../real-start/home");
                (t, start.join("home"))
            },
        },
        Row {
            name: "'..' components and a symlink before them",
            build: || {
                let t = Test::new().no_home();
                let real = mkdir(&t.path("x/y"));
                mkdir(&t.path("x/z"));
                symlink(t.path("x/z"), t.path("zl")).unwrap();
                // zl/.. is x (physically), not the sandbox.
                let home = t.path("zl/../y/./home");
                let t = t.arg("--home").arg(home);
                (t, real.join("home"))
            },
        },
        Row {
            name: "CLAUDE_ISO_HOME through a symlink",
            build: || {
                let t = Test::new().no_home();
                let real = mkdir(&t.path("real"));
                symlink(&real, t.path("link")).unwrap();
                let home = t.path("link/../link/h");
                let t = t.env("CLAUDE_ISO_HOME", home);
                (t, real.join("h"))
            },
        },
        Row {
            name: "XDG_STATE_HOME through a symlink",
            build: || {
                let t = Test::new().no_home();
                let real = mkdir(&t.path("state-real"));
                symlink(&real, t.path("state")).unwrap();
                let state = t.path("state");
                let t = t.env("XDG_STATE_HOME", state);
                (t, real.join("claude-iso/home"))
            },
        },
        Row {
            name: "HOME (the real one) a symlink, default XDG paths",
            build: || {
                let t = Test::new().no_home();
                symlink(t.real_home(), t.path("home-link")).unwrap();
                let link = t.path("home-link");
                let t = t.env("HOME", link);
                let expected = t.real_home().join(".local/state/claude-iso/home");
                (t, expected)
            },
        },
    ];
    for row in rows {
        let (t, expected) = (row.build)();
        for pass in ["new", "existing"] {
            t.reset_probe();
            let out = t.run();
            out.success();
            let what = format!("{}, {pass}", row.name);
            let home = out.probe().var("HOME").unwrap();
            assert_canonical(&home, &expected, &what);
        }
    }
}

/// A thread swaps `link` between `a` and `b` (renaming a prepared symlink over it) while
/// launches run with `--home <sandbox>/link/home`: each command gets `a/home` or
/// `b/home` as a canonical path, never one through `link`.
#[test]
fn a_symlink_swapped_during_launches_never_reaches_the_child() {
    let t = Test::new().no_home();
    let a = mkdir(&t.path("a"));
    let b = mkdir(&t.path("b"));
    symlink("a", t.path("link")).unwrap();
    let record = t.path("homes");
    let link_home = t.path("link/home");
    let t = t.arg("--home").arg(link_home).arg("-q").command([
        "/bin/sh",
        "-c",
        "printf '%s\\n' \"$HOME\" >> \"$0\"",
        record.to_str().unwrap(),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, stop) = (t.root().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let next = root.join(format!(".next{}", n % 2));
                let _ = fs::remove_file(&next);
                symlink(if n % 2 == 0 { "b" } else { "a" }, &next).unwrap();
                fs::rename(&next, root.join("link")).unwrap();
                n += 1;
            }
            n
        })
    };
    let runs = 200;
    for _ in 0..runs {
        t.run().status(0);
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let text = fs::read_to_string(&record).unwrap();
    let homes: Vec<&str> = text.lines().collect();
    assert_eq!(homes.len(), runs);
    let (in_a, in_b) = (a.join("home"), b.join("home"));
    for h in &homes {
        assert!(
            Path::new(h) == in_a || Path::new(h) == in_b,
            "HOME {h} is neither {} nor {}",
            in_a.display(),
            in_b.display()
        );
        assert_canonical(OsStr::new(h), Path::new(h), "race");
    }
    assert!(swaps > 100, "the swapper ran only {swaps} times");
}

/// A link another user owns, in a shared directory (sticky 1777, or group-writable by
/// that user's group), swapped by that user between our directory and theirs while we
/// launch: the command gets our home's canonical path or nothing (a refusal).
/// Needs root (a second user); the unprivileged run is covered by the race above.
#[test]
fn a_link_in_a_shared_directory_swapped_by_another_user() {
    if !is_root() {
        eprintln!(
            "not root: no second user to swap the link (the same-user race test covers the swap)"
        );
        return;
    }
    for (shared_mode, gid) in [(0o1777, 0), (0o775, NOBODY)] {
        let t = Test::new().no_home();
        let shared = mkdir_mode(&t.path("shared"), shared_mode);
        std::os::unix::fs::chown(&shared, Some(0), Some(gid)).unwrap();
        let mine = mkdir_mode(&t.path("mine"), 0o755);
        mkdir_mode(&mine.join("home"), 0o700);
        let theirs = mkdir_mode(&t.path("theirs"), 0o755);
        mkdir_mode(&theirs.join("home"), 0o700);
        own(&theirs);
        let link = shared.join("link");
        symlink(&mine, &link).unwrap();
        chown(&link, NOBODY);
        let record = t.path("homes");
        let t = t.arg("--home").arg(link.join("home")).command([
            "/bin/sh",
            "-c",
            "printf '%s\\n' \"$HOME\" >> \"$0\"",
            record.to_str().unwrap(),
        ]);
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (shared, mine, theirs, stop) =
                (shared.clone(), mine.clone(), theirs.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let next = shared.join(".next");
                    let _ = fs::remove_file(&next);
                    symlink(if n % 2 == 0 { &theirs } else { &mine }, &next).unwrap();
                    chown(&next, NOBODY);
                    fs::rename(&next, shared.join("link")).unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..60 {
            let out = t.run();
            match out.status.code() {
                Some(0) => accepted += 1,
                Some(125) => {
                    refused += 1;
                    let err = out.stderr_text();
                    assert!(
                        err.lines().count() == 1 && err.contains(&link.display().to_string()),
                        "a refusal that does not name the home: {err:?}"
                    );
                }
                _ => panic!("unexpected status {}: {}", out.status, out.stderr_text()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        let text = fs::read_to_string(&record).unwrap_or_default();
        for h in text.lines() {
            assert_eq!(Path::new(h), mine.join("home"), "mode {shared_mode:o}");
        }
        assert_eq!(text.lines().count(), accepted);
        // In the sticky world-writable directory the kernel (protected_symlinks) does
        // not let root follow another user's link at all; in the group-writable one it
        // does, and our checks must decide.
        let protected =
            fs::read_to_string("/proc/sys/fs/protected_symlinks").is_ok_and(|s| s.trim() == "1");
        if shared_mode == 0o775 || !protected {
            assert!(
                accepted > 0 && refused > 0,
                "mode {shared_mode:o}: {accepted} accepted, {refused} refused: the race was not exercised"
            );
        } else {
            assert_eq!(accepted, 0, "root followed a protected symlink");
        }
        // Nothing of ours landed in their directory.
        assert_eq!(
            fs::read_dir(theirs.join("home")).unwrap().count(),
            0,
            "their home was used"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 2. A closed or broken stderr; non-dumpable while holding the token
// ---------------------------------------------------------------------------------------

/// Runs claude-iso with `t`'s argv and environment but stderr (and, with `stdout_too`,
/// stdout) a pipe whose read end is already closed. Returns the wait status.
fn run_with_broken_pipe(t: &Test, stdout_too: bool) -> std::process::ExitStatus {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let (r2, w2) = nix::unistd::pipe().unwrap();
    drop(r2);
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "30", BIN])
        .args(t.argv())
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stderr(Stdio::from(w));
    if stdout_too {
        cmd.stdout(Stdio::from(w2));
    } else {
        cmd.stdout(Stdio::null());
    }
    status_of(&mut cmd).unwrap()
}

/// Errors, warnings and a dry-run plan written to a pipe nobody reads: the exit status
/// is still 125/127/0, never 134 (SIGABRT), and no core file appears.
#[test]
fn a_broken_stderr_never_aborts() {
    struct Row {
        name: &'static str,
        build: fn() -> Test,
        code: i32,
        probe_runs: bool,
    }
    let rows = [
        Row {
            name: "no token (125)",
            build: || Test::new().no_env_file(),
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "usage error (125)",
            build: || Test::new().arg("--no-such-option"),
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "home refused (125)",
            build: || {
                let t = Test::new();
                mkdir_mode(&t.home(), 0o777);
                t
            },
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "command not found (127)",
            build: || Test::new().command(["no-such-command-here"]),
            code: 127,
            probe_runs: false,
        },
        Row {
            name: "cannot run (126)",
            build: || Test::new().command(["/etc/passwd"]),
            code: 126,
            probe_runs: false,
        },
        Row {
            name: "quarantine and tightening warnings, then the command (0)",
            build: || {
                let t = Test::new().env("ANTHROPIC_API_KEY", "sk-ant-api03-x");
                let claude = mkdir(&t.home().join(".claude"));
                chmod(&t.home(), 0o755);
                write_mode(&claude.join(".credentials.json"), "{}", 0o600);
                write_mode(&t.home().join(".claude.json"), "{oops", 0o600);
                t
            },
            code: 0,
            probe_runs: true,
        },
        Row {
            name: "dry run, verbose (0)",
            build: || Test::new().arg("--dry-run").arg("--verbose"),
            code: 0,
            probe_runs: false,
        },
        Row {
            name: "doctor (1: no claude on PATH)",
            build: || {
                let t = Test::new().no_env_file().no_home();
                fs::remove_file(t.path("bin/claude")).unwrap();
                let (env_file, home) = (t.env_file(), t.home());
                t.arg("doctor")
                    .arg("--env-file")
                    .arg(env_file)
                    .arg("--home")
                    .arg(home)
            },
            code: 1,
            probe_runs: false,
        },
    ];
    for row in rows {
        for stdout_too in [false, true] {
            let t = (row.build)();
            let status = run_with_broken_pipe(&t, stdout_too);
            assert_eq!(
                (status.code(), status.signal()),
                (Some(row.code), None),
                "[{}, stdout broken too: {stdout_too}] status {status}",
                row.name
            );
            assert_eq!(
                t.probe().is_some(),
                row.probe_runs,
                "[{}] the probe ran: {}",
                row.name,
                t.probe().is_some()
            );
            let cores: Vec<_> = fs::read_dir(t.work())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
                .collect();
            assert!(cores.is_empty(), "[{}] core files: {cores:?}", row.name);
        }
    }
}

/// stderr closed outright (fd 2 not open) behaves like a broken pipe: same statuses.
#[test]
fn a_closed_stderr_never_aborts() {
    let close = "exec 2>&- && exec \"$0\" \"$@\"";
    Test::new().no_env_file().wrap(close).run().status(125);
    Test::new()
        .command(["no-such-command-here"])
        .wrap(close)
        .run()
        .status(127);
    let t = Test::new().wrap(close);
    chmod(&mkdir(&t.home()), 0o750);
    t.run().success();
}

/// claude-iso is not dumpable while it holds the token: run unprivileged and kept
/// waiting on claude's lock, its `/proc/<pid>` is root's and its environ cannot be read
/// by its own user. The command, after `execve`, is dumpable again.
#[test]
fn claude_iso_is_not_dumpable_but_the_command_is() {
    let t = Test::new().arg("-v");
    let home = mkdir_mode(&t.home(), 0o700);
    let record = t.path("probe/owner");
    write_executable(
        &t.path("bin/owner-probe"),
        &format!(
            "#!/bin/sh\nstat -c %u /proc/$$/environ > '{}'\nexec '{}'\n",
            record.display(),
            t.probe_path().display()
        ),
    );
    let t = t.command(["owner-probe"]);
    own(&home);
    let t = as_runner(t);
    let lock = HeldClaudeLock::new(&home);
    let mut running = t.spawn();
    let pid = running.id();
    wait_for_flock(pid, &mut running.child);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(2),
        Some(runner_uid().to_string().as_str()),
        "claude-iso does not run as the runner: {uid_line}"
    );
    // (The /proc/<pid> directory itself, mode 0555, keeps the task's owner; the files
    // that reveal memory and environment become root's.)
    for file in ["environ", "mem", "maps"] {
        let uid = fs::metadata(format!("/proc/{pid}/{file}")).unwrap().uid();
        assert_eq!(
            uid, 0,
            "/proc/{pid}/{file} of a non-dumpable process is root's, got uid {uid}"
        );
    }
    let read = status_of(
        runner_command("cat")
            .arg(format!("/proc/{pid}/environ"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    assert!(
        !read.success(),
        "its own user read claude-iso's environ (the token)"
    );
    drop(lock);
    let out = running.wait();
    out.success();
    let owner = fs::read_to_string(&record).unwrap();
    assert_eq!(
        owner.trim(),
        runner_uid().to_string(),
        "the command's /proc entry is not its own: not dumpable after execve"
    );
    out.probe().assert_token(TOKEN);
}

// ---------------------------------------------------------------------------------------
// 3. Only chmod what we created
// ---------------------------------------------------------------------------------------

/// A credentials file in the scratch home hard-linked to the real one (0644): it is
/// moved aside, and the real file keeps its mode, owner and bytes.
#[test]
fn a_hard_linked_credentials_file_is_moved_aside_not_chmoded() {
    let t = Test::new();
    let real_claude = mkdir(&t.real_home().join(".claude"));
    let real = real_claude.join(".credentials.json");
    write_mode(&real, "{\"claudeAiOauth\":{}}", 0o644);
    write_mode(&t.real_home().join(".claude.json"), "{}", 0o644);
    let before = modes(&t.real_home());
    let claude = mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o700);
    fs::hard_link(&real, claude.join(".credentials.json")).unwrap();
    t.run().success();
    assert_eq!(mode_of(&real), 0o644);
    assert_eq!(modes(&t.real_home()), before, "the real home changed");
    let aside = names_with_prefix(&claude, ".credentials.json.");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        fs::metadata(claude.join(&aside[0])).unwrap().ino(),
        fs::metadata(&real).unwrap().ino()
    );
    assert!(!claude.join(".credentials.json").exists());
}

/// `.claude-iso.lock` that is not a private file of ours: set aside untouched (kind,
/// mode, owner, target) and a new private one made; the launch works.
#[test]
fn a_foreign_lock_file_is_set_aside_untouched() {
    struct Row {
        name: &'static str,
        make: fn(&Test, &Path),
        root_only: bool,
    }
    let rows = [
        Row {
            name: "a hard link to a real file",
            make: |t, lock| {
                let real = t.real_home().join("notes.txt");
                write_mode(&real, "mine", 0o644);
                fs::hard_link(real, lock).unwrap();
            },
            root_only: false,
        },
        Row {
            name: "a symlink to a real file",
            make: |t, lock| {
                let real = t.real_home().join("notes.txt");
                write_mode(&real, "mine", 0o644);
                symlink(real, lock).unwrap();
            },
            root_only: false,
        },
        Row {
            name: "a FIFO",
            make: |_, lock| {
                nix::unistd::mkfifo(lock, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
            },
            root_only: false,
        },
        Row {
            name: "a directory",
            make: |_, lock| {
                mkdir_mode(lock, 0o755);
            },
            root_only: false,
        },
        Row {
            name: "owned by another user",
            make: |_, lock| {
                write_mode(lock, "", 0o644);
                chown(lock, NOBODY);
            },
            root_only: true,
        },
    ];
    for row in rows {
        if row.root_only && !is_root() {
            eprintln!("[{}] needs root to create another user's file", row.name);
            continue;
        }
        let t = Test::new();
        let home = mkdir_mode(&t.home(), 0o700);
        let lock = home.join(".claude-iso.lock");
        (row.make)(&t, &lock);
        let lock_before = fs::symlink_metadata(&lock).unwrap();
        let real_before = modes(&t.real_home());
        let out = t.run();
        out.success();
        out.stderr_contains("was not a private file of yours");
        assert_eq!(modes(&t.real_home()), real_before, "[{}]", row.name);
        let aside = names_with_prefix(&home, ".claude-iso.lock.");
        assert_eq!(aside.len(), 1, "[{}] {aside:?}", row.name);
        let kept = fs::symlink_metadata(home.join(&aside[0])).unwrap();
        assert_eq!(
            (kept.ino(), kept.mode(), kept.uid()),
            (lock_before.ino(), lock_before.mode(), lock_before.uid()),
            "[{}] the foreign lock was changed",
            row.name
        );
        let new = fs::symlink_metadata(&lock).unwrap();
        assert!(new.is_file(), "[{}]", row.name);
        assert_eq!(
            (new.mode() & 0o7777, new.nlink(), new.uid()),
            (0o600, 1, nix::unistd::geteuid().as_raw()),
            "[{}] the new lock is not private",
            row.name
        );
    }
}

/// A corrupt (or wrongly typed) `.claude.json` hard-linked to the real `~/.claude.json`:
/// a fresh one is seeded, the real file keeps its bytes and mode.
#[test]
fn a_hard_linked_claude_json_is_replaced_not_chmoded() {
    for (text, aside_tag) in [
        ("{oops", ".claude.json.corrupt-"),
        ("[1, 2]", ".claude.json.corrupt-"),
        (
            "{\"projects\": 3, \"mine\": true}",
            ".claude.json.replaced-",
        ),
    ] {
        let t = Test::new();
        let real = t.real_home().join(".claude.json");
        write_mode(&real, text, 0o644);
        mkdir_mode(&t.real_home().join(".claude"), 0o755);
        let before = modes(&t.real_home());
        let home = mkdir_mode(&t.home(), 0o700);
        fs::hard_link(&real, home.join(".claude.json")).unwrap();
        t.run().success();
        assert_eq!(
            modes(&t.real_home()),
            before,
            "[{text}] the real home changed"
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), text);
        let seeded = fs::symlink_metadata(home.join(".claude.json")).unwrap();
        assert_ne!(seeded.ino(), fs::metadata(&real).unwrap().ino());
        assert_eq!((seeded.mode() & 0o7777, seeded.nlink()), (0o600, 1));
        assert_eq!(names_with_prefix(&home, aside_tag).len(), 1, "[{text}]");
    }
}

// ---------------------------------------------------------------------------------------
// 4. $CREDENTIALS_DIRECTORY: the exemption only for what systemd builds
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

// ---------------------------------------------------------------------------------------
// 5. Nothing is created before a refusal
// ---------------------------------------------------------------------------------------

/// A bind-mount wrapper: runs claude-iso in a private mount namespace (as root) or a
/// user + mount namespace (unprivileged) where `$1` is bind-mounted on `$2`.
fn bind_wrap(t: Test, source: &Path, target: &Path) -> Test {
    let ns = if is_root() {
        "unshare -m"
    } else {
        "unshare -Urm"
    };
    t.wrap(&format!(
        "exec {ns} /bin/sh -c 'mount --bind \"$1\" \"$2\" && shift 2 && exec \"$0\" \"$@\"' \"$0\" '{}' '{}' \"$@\"",
        source.display(),
        target.display()
    ))
}

/// Every refusal leaves the sandbox exactly as it was (the real home included): nothing
/// created, moved, chmod'ed; the command never ran. Refusals found after the home was
/// inspected leave a 0750 home at 0750 and its credentials file where it was.
#[test]
fn nothing_is_created_before_a_refusal() {
    struct Row {
        name: &'static str,
        build: fn() -> Test,
        needle: &'static str,
        root_only: bool,
    }
    /// The exit status of a refusal: 125, but 127 for a command not found.
    fn code_of(needle: &str) -> i32 {
        if needle == "not found" { 127 } else { 125 }
    }
    fn with_real_claude(t: Test) -> Test {
        let claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&claude.join(".credentials.json"), "{}", 0o600);
        t
    }
    /// A 0750 home with a credentials file: what a launch would tighten and quarantine.
    fn loose_home(t: &Test) {
        let claude = mkdir(&t.home().join(".claude"));
        chmod(&t.home(), 0o750);
        write_mode(&claude.join(".credentials.json"), "{}", 0o600);
    }
    let rows = [
        Row {
            name: "no token",
            build: || Test::new().no_env_file(),
            needle: "no token",
            root_only: false,
        },
        Row {
            name: "malformed token, loose home",
            build: || {
                let t = Test::new().env_file_text("CLAUDE_CODE_OAUTH_TOKEN=nope\n");
                loose_home(&t);
                t
            },
            needle: "does not look like a setup-token",
            root_only: false,
        },
        Row {
            name: "command not found, loose home",
            build: || {
                let t = Test::new().command(["no-such-command-here"]);
                loose_home(&t);
                t
            },
            needle: "not found",
            root_only: false,
        },
        Row {
            name: "a cwd that is not UTF-8 (refused by the seed inspection), loose home",
            build: || {
                let t = Test::new();
                loose_home(&t);
                let odd = t.path(OsStr::from_bytes(b"work-\xff"));
                mkdir(&odd);
                t.cwd(odd)
            },
            needle: "not valid UTF-8",
            root_only: false,
        },
        Row {
            name: "a new home under a parent writable by others",
            build: || {
                let t = Test::new().no_home();
                let open = mkdir_mode(&t.path("open"), 0o777);
                t.arg("--home").arg(open.join("new/home"))
            },
            needle: "writable by group or others",
            root_only: false,
        },
        Row {
            name: "a new home under a parent owned by another user",
            build: || {
                let t = Test::new().no_home();
                let theirs = mkdir_mode(&t.path("theirs"), 0o755);
                chown(&theirs, NOBODY);
                t.arg("--home").arg(theirs.join("new/home"))
            },
            needle: "owned by uid 65534",
            root_only: true,
        },
        Row {
            name: "a new home inside the real ~/.claude through a symlink",
            build: || {
                let t = with_real_claude(Test::new().no_home());
                symlink(t.real_home().join(".claude"), t.path("lnk")).unwrap();
                let home = t.path("lnk/a/b/home");
                t.arg("--home").arg(home)
            },
            needle: "a real claude config directory",
            root_only: false,
        },
        Row {
            name: "a new home inside a bind mount of the real ~/.claude",
            build: || {
                let t = with_real_claude(Test::new().no_home());
                let bind = mkdir(&t.path("bind"));
                let real = t.real_home().join(".claude");
                let t = t.arg("--home").arg(bind.join("a/b/home"));
                bind_wrap(t, &real, &bind)
            },
            needle: "a real claude config directory",
            root_only: false,
        },
        Row {
            name: "an existing home holding a bind mount of the real ~/.claude as .claude",
            build: || {
                let t = with_real_claude(Test::new());
                let claude = mkdir(&t.home().join(".claude"));
                chmod(&t.home(), 0o750);
                let real = t.real_home().join(".claude");
                bind_wrap(t, &real, &claude)
            },
            needle: "a real claude config directory",
            root_only: false,
        },
        Row {
            name: "a new home inside CLAUDE_CONFIG_DIR",
            build: || {
                let t = Test::new().no_home();
                let config = mkdir(&t.path("config-dir"));
                t.env("CLAUDE_CONFIG_DIR", &config)
                    .arg("--home")
                    .arg(config.join("x/home"))
            },
            needle: "a real claude config directory",
            root_only: false,
        },
        Row {
            name: "the real home",
            build: || {
                let t = Test::new().no_home();
                let real = t.real_home();
                t.arg("--home").arg(real)
            },
            needle: "real home",
            root_only: false,
        },
        Row {
            name: "an ancestor of the real home",
            build: || {
                let t = Test::new().no_home();
                let root = t.root().to_owned();
                t.arg("--home").arg(root)
            },
            needle: "an ancestor of your real home",
            root_only: false,
        },
        Row {
            name: "an existing home writable by group",
            build: || {
                let t = Test::new();
                mkdir_mode(&t.home(), 0o770);
                t
            },
            needle: "writable by group or others",
            root_only: false,
        },
        Row {
            name: "an existing home owned by another user",
            build: || {
                let t = Test::new();
                mkdir_mode(&t.home(), 0o750);
                chown(&t.home(), NOBODY);
                t
            },
            needle: "owned by uid 65534",
            root_only: true,
        },
        Row {
            name: "the home a symlink",
            build: || {
                let t = Test::new();
                let real = mkdir_mode(&t.path("elsewhere"), 0o700);
                symlink(real, t.home()).unwrap();
                t
            },
            needle: "is a symlink",
            root_only: false,
        },
        Row {
            name: ".claude a symlink to the real ~/.claude",
            build: || {
                let t = with_real_claude(Test::new());
                mkdir_mode(&t.home(), 0o750);
                symlink(t.real_home().join(".claude"), t.home().join(".claude")).unwrap();
                t
            },
            needle: ".claude is a symlink",
            root_only: false,
        },
        Row {
            name: ".claude.json a FIFO, loose home",
            build: || {
                let t = Test::new();
                loose_home(&t);
                nix::unistd::mkfifo(
                    &t.home().join(".claude.json"),
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                )
                .unwrap();
                t
            },
            needle: "FIFO",
            root_only: false,
        },
        Row {
            name: ".claude.json a symlink to the real one, loose home",
            build: || {
                let t = Test::new();
                loose_home(&t);
                write_mode(&t.real_home().join(".claude.json"), "{}", 0o644);
                symlink(
                    t.real_home().join(".claude.json"),
                    t.home().join(".claude.json"),
                )
                .unwrap();
                t
            },
            needle: "symlink",
            root_only: false,
        },
        Row {
            name: ".claude.json a directory, loose home",
            build: || {
                let t = Test::new();
                loose_home(&t);
                mkdir(&t.home().join(".claude.json"));
                t
            },
            needle: "directory",
            root_only: false,
        },
    ];
    for row in rows {
        if row.root_only && !is_root() {
            eprintln!(
                "[{}] needs root to create another user's directory",
                row.name
            );
            continue;
        }
        let t = (row.build)();
        let before = sandbox_tree(&t);
        let out = t.run();
        out.status(code_of(row.needle))
            .one_line_error(row.needle)
            .probe_not_run()
            .no_secrets();
        let after = sandbox_tree(&t);
        let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        let removed: Vec<&PathBuf> = before.keys().filter(|p| !after.contains_key(*p)).collect();
        let changed: Vec<&PathBuf> = before
            .iter()
            .filter(|(p, e)| after.get(*p).is_some_and(|a| a != *e))
            .map(|(p, _)| p)
            .collect();
        assert!(
            added.is_empty() && removed.is_empty() && changed.is_empty(),
            "[{}] the refusal changed the sandbox: added {added:?}, removed {removed:?}, changed {changed:?}",
            row.name
        );
    }
    // A dry run is not a refusal, but creates nothing either.
    let t = Test::new().arg("--dry-run");
    let before = sandbox_tree(&t);
    t.run().status(0).probe_not_run();
    assert_eq!(sandbox_tree(&t), before, "a dry run changed the sandbox");
}

/// A parent of the home is exchanged (`RENAME_EXCHANGE`) between a real directory and a
/// symlink to the real `~/.claude`, in a loop, while launches create new homes below
/// it: the real `~/.claude` never gains an entry.
#[test]
fn a_parent_swapped_with_the_real_config_dir_never_leaves_anything_in_it() {
    let t = Test::new().no_home().arg("-q");
    let real_claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&real_claude.join(".credentials.json"), "{}", 0o600);
    let before = tree(&real_claude);
    mkdir_mode(&t.path("p"), 0o755);
    symlink(&real_claude, t.path("q")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, stop) = (t.root().to_owned(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &root.join("p"),
                    nix::fcntl::AT_FDCWD,
                    &root.join("q"),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results: Vec<(usize, usize)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (t, counter) = (&t, counter.clone());
                s.spawn(move || {
                    let (mut ok, mut refused) = (0, 0);
                    while Instant::now() < deadline && counter.load(Ordering::Relaxed) < 3000 {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let out = t
                            .spawn_with([
                                OsString::from("--home"),
                                t.path(format!("p/n{w}-{n}/home")).into_os_string(),
                                OsString::from("--"),
                                OsString::from("/bin/true"),
                            ])
                            .wait();
                        match out.status.code() {
                            Some(0) => ok += 1,
                            Some(125) => {
                                refused += 1;
                                assert!(
                                    out.stderr_text().lines().count() == 1,
                                    "{}",
                                    out.stderr_text()
                                );
                            }
                            _ => panic!("status {}: {}", out.status, out.stderr_text()),
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    let (ok, refused) = results.iter().fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    eprintln!("{ok} launches created a home, {refused} were refused, {swaps} swaps");
    let after = tree(&real_claude);
    let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    assert!(
        added.is_empty(),
        "the real ~/.claude gained {added:?} ({ok} ok, {refused} refused)"
    );
    assert_eq!(after, before, "the real ~/.claude changed");
    assert!(
        ok > 0 && refused > 0,
        "the race was not exercised: {ok} ok, {refused} refused"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Leftovers after kills; a stopped seeder; a future-dated lock
// ---------------------------------------------------------------------------------------

/// A launch killed (SIGKILL) while seeding blocks nothing, and the next launch that seeds
/// removes temp files of ours left by dead writers — only those.
#[test]
fn a_killed_seeder_leaves_nothing_behind_for_long() {
    let t = Test::new().arg("-v");
    let home = mkdir_mode(&t.home(), 0o700);
    let lock = HeldClaudeLock::new(&home);
    let mut running = t.spawn();
    let pid = running.id();
    wait_for_flock(pid, &mut running.child);
    running.child.kill().unwrap();
    let out = running.wait();
    out.signal(9).probe_not_run();
    drop(lock);
    // What a writer killed mid-write leaves, plus names that are not ours to remove.
    let dead = home.join(format!(".claude.json.claude-iso.{pid}.0.tmp"));
    write_mode(&dead, "{\"half\": ", 0o600);
    let dead2 = home.join(".claude.json.claude-iso.999999999.3.tmp");
    write_mode(&dead2, "x", 0o600);
    let decoy_target = t.real_home().join("target");
    write_mode(&decoy_target, "keep", 0o644);
    let decoy_link = home.join(".claude.json.claude-iso.1.0.tmp");
    symlink(&decoy_target, &decoy_link).unwrap();
    let decoy_dir = mkdir(&home.join(".claude.json.claude-iso.2.0.tmp"));
    let claudes = home.join(".claude.json.tmp.77.123");
    write_mode(&claudes, "claude's own", 0o600);
    t.run().success();
    assert!(
        !dead.exists() && !dead2.exists(),
        "a dead writer's temp file is left"
    );
    assert!(fs::symlink_metadata(&decoy_link).unwrap().is_symlink());
    assert_eq!(fs::read_to_string(&decoy_target).unwrap(), "keep");
    assert!(decoy_dir.is_dir());
    assert!(claudes.exists(), "claude's own temp file was removed");
    assert!(crate::support::sandbox::trusts(
        &crate::support::sandbox::claude_json(&home),
        &t.work()
    ));
    let mut left = temp_files(&home);
    left.sort();
    assert_eq!(
        left,
        vec![
            ".claude.json.claude-iso.1.0.tmp",
            ".claude.json.claude-iso.2.0.tmp",
            ".claude.json.tmp.77.123"
        ]
    );
}

/// A seeder stopped (SIGSTOP) while holding our lock: another launch that must seed
/// gives up after the timeout with one line naming the holder's PID (125).
#[test]
fn a_stopped_seeder_is_named_after_the_timeout() {
    let t = Test::new().arg("-v").timeout(Duration::from_secs(40));
    let home = mkdir_mode(&t.home(), 0o700);
    let lock = HeldClaudeLock::new(&home);
    let mut holder = t.spawn();
    let pid = holder.id();
    wait_for_flock(pid, &mut holder.child);
    kill(pid, nix::sys::signal::Signal::SIGSTOP);
    drop(lock);
    let second = Test::new()
        .no_home()
        .arg("--home")
        .arg(&home)
        .timeout(Duration::from_secs(40));
    let started = Instant::now();
    let out = second.run();
    let waited = started.elapsed();
    kill(pid, nix::sys::signal::Signal::SIGKILL);
    kill(pid, nix::sys::signal::Signal::SIGCONT);
    let _ = holder.child.wait();
    out.status(125)
        .one_line_error(&format!("process {pid}"))
        .probe_not_run();
    out.stderr_contains(".claude-iso.lock");
    assert!(
        waited >= Duration::from_secs(9),
        "gave up after {waited:?}, before the timeout"
    );
}

/// claude's lock with a time stamp in the future is broken at once, not waited on.
#[test]
fn a_future_dated_claude_lock_is_broken_at_once() {
    for kind in ["directory", "file"] {
        let t = Test::new().timeout(Duration::from_secs(15));
        let home = mkdir_mode(&t.home(), 0o700);
        let lock = home.join(".claude.json.lock");
        if kind == "directory" {
            mkdir(&lock);
        } else {
            write_mode(&lock, "", 0o600);
        }
        let future = std::time::SystemTime::now() + Duration::from_secs(86_400);
        fs::File::open(&lock).unwrap().set_modified(future).unwrap();
        let started = Instant::now();
        let out = t.run();
        out.success();
        out.stderr_contains("in the future");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "[{kind}] waited {:?}",
            started.elapsed()
        );
        assert!(crate::support::sandbox::trusts(
            &crate::support::sandbox::claude_json(&home),
            &t.work()
        ));
    }
}

// ---------------------------------------------------------------------------------------
// 7. Execute-only ancestors; walk errors name the path
// ---------------------------------------------------------------------------------------

/// Below a directory the runner may search but not read (0711 of root's, or 0311 and
/// 0111 of its own), a home works: new and existing, with a canonical `HOME`.
#[test]
fn execute_only_ancestors_are_walked_through() {
    let rows: [(&str, u32, bool); 3] = [
        ("0711 of root's", 0o711, true),
        ("0311 of its own", 0o311, false),
        ("0111 of its own", 0o111, false),
    ];
    for (name, mode, roots) in rows {
        if roots && !is_root() {
            // Unprivileged, a root-owned 0711 directory cannot be made; /tmp-style
            // root-owned ancestors are walked in every other test.
            eprintln!("[{name}] needs root to make a root-owned 0711 directory");
            continue;
        }
        let t = Test::new().no_home();
        let xo = mkdir(&t.path("xo"));
        let mine = mkdir_mode(&xo.join("mine"), 0o700);
        if !roots {
            own(&xo);
        }
        own(&mine);
        chmod(&xo, mode);
        let home = mine.join("home");
        let t = as_runner(t.arg("--home").arg(&home));
        for pass in ["new", "existing"] {
            t.reset_probe();
            own(&t.path("probe"));
            let out = t.run();
            out.success();
            assert_canonical(
                &out.probe().var("HOME").unwrap(),
                &home,
                &format!("{name}, {pass}"),
            );
        }
        chmod(&xo, 0o755);
    }
}

/// A walk that cannot go on names the directory it could not check.
#[test]
fn walk_errors_name_the_path() {
    // The runner starts in locked/inner, then loses search permission on `locked`: it
    // can still reach its cwd through /proc/self/cwd, not walk up past `locked`.
    let t = Test::new().no_home();
    let locked = mkdir_mode(&t.path("locked"), 0o700);
    let inner = mkdir_mode(&locked.join("inner"), 0o700);
    let existing = mkdir_mode(&inner.join("existing"), 0o700);
    own(&locked);
    let lock_it = format!(
        "cd '{}' && chmod 0600 '{}' && ",
        inner.display(),
        locked.display()
    );
    let inner_s = inner.display().to_string();
    let locked_s = locked.display().to_string();
    let runner = if is_root() {
        "exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" \"$@\""
    } else {
        "exec \"$0\" \"$@\""
    };
    // (the runner must lose the permission, not root: chmod runs as the owner)
    let chmod_as_owner = if is_root() {
        lock_it.replace(
            "chmod",
            "setpriv --reuid=65534 --regid=65534 --clear-groups chmod",
        )
    } else {
        lock_it
    };
    for (home, expect) in [
        ("home", vec![inner_s.clone()]),
        ("/proc/self/cwd/new/home", vec![locked_s.clone()]),
        (
            "/proc/self/cwd/existing",
            vec![existing.display().to_string()],
        ),
    ] {
        chmod(&locked, 0o700);
        // (-C to a readable directory: the project-settings guard reads claude's cwd.)
        let t2 = Test::new().no_home();
        let work = t2.work();
        let t2 = t2
            .arg("-C")
            .arg(work)
            .arg("--home")
            .arg(home)
            .wrap(&format!("{chmod_as_owner}{runner}"));
        let t2 = if is_root() {
            own(&t2.env_file());
            t2
        } else {
            t2
        };
        let out = t2.run();
        out.status(125).probe_not_run();
        let err = out.stderr_text();
        assert_eq!(err.lines().count(), 1, "{err}");
        for needle in &expect {
            assert!(
                err.contains(needle.as_str()),
                "[--home {home}] the error does not name {needle}: {err}"
            );
        }
        assert!(
            !err.contains("levels up"),
            "[--home {home}] a path is not named: {err}"
        );
    }
    chmod(&locked, 0o700);
}

// ---------------------------------------------------------------------------------------
// 8. doctor honours its timeouts
// ---------------------------------------------------------------------------------------

/// A stand-in `claude` that answers, leaves `sleep <marker> &` holding the pipe, and
/// exits: doctor (with --live) returns promptly and the sleep is gone.
#[test]
fn doctor_does_not_wait_for_a_background_process_holding_the_pipe() {
    let t = Test::new().timeout(Duration::from_secs(20));
    let marker = format!("3000.{}", unique(""));
    write_executable(
        &t.path("bin/claude"),
        &format!(
            "#!/bin/sh\nsleep {marker} &\ncase \"$1\" in\n--version) echo '9.9.9 (Claude Code)' ;;\n-p) echo AUTH_OK ;;\nesac\nexit 0\n"
        ),
    );
    let doctor = doctor_live(&t).timeout(Duration::from_secs(20));
    let started = Instant::now();
    let out = doctor.run();
    let took = started.elapsed();
    out.status(0)
        .stdout_contains("9.9.9 (Claude Code)")
        .stdout_contains("claude answered AUTH_OK");
    std::thread::sleep(Duration::from_millis(300));
    let left = processes_with(&marker);
    for p in &left {
        if let Some(pid) = p.split(':').next().and_then(|s| s.parse::<u32>().ok()) {
            kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    assert!(left.is_empty(), "left running: {left:?}");
    eprintln!("doctor --live took {took:?}");
}

// ---------------------------------------------------------------------------------------
// 9. Lone surrogates in keys
// ---------------------------------------------------------------------------------------

#[test]
fn lone_surrogates_in_keys_survive_the_seed() {
    let t = Test::new();
    let home = mkdir_mode(&t.home(), 0o700);
    let work = t.work();
    let original = format!(
        "{{\"\\ud800x\": 1, \"dup\\udfff\": [\"\\ud83d\"], \"dup\\udfff\": 2, \"a\\\"b\\\\\": {{\"\\udbff\": null}}, \"projects\": {{\"\\udc00\": {{}}, \"{}\": {{\"\\ud801k\": 3}}}}}}",
        work.display()
    );
    write_mode(&home.join(".claude.json"), &original, 0o600);
    t.run().success();
    let text = fs::read_to_string(home.join(".claude.json")).unwrap();
    for kept in [
        "\"\\ud800x\": 1",
        "\"dup\\udfff\": [\"\\ud83d\"]",
        "\"dup\\udfff\": 2",
        "\"a\\\"b\\\\\": {\"\\udbff\": null}",
        "\"\\udc00\": {}",
        "\"\\ud801k\": 3",
        "\"hasCompletedOnboarding\": true",
        "\"hasTrustDialogAccepted\": true",
    ] {
        assert!(text.contains(kept), "{kept} lost in {text}");
    }
    for tag in [".claude.json.corrupt", ".claude.json.replaced"] {
        assert!(
            names_with_prefix(&home, tag).is_empty(),
            "set aside as {tag}"
        );
    }
    // Seeded now: the next launch writes nothing.
    let ino = fs::metadata(home.join(".claude.json")).unwrap().ino();
    t.reset_probe();
    t.run().success();
    assert_eq!(fs::metadata(home.join(".claude.json")).unwrap().ino(), ino);
}

// ---------------------------------------------------------------------------------------
// 10. Small ones
// ---------------------------------------------------------------------------------------

/// 100 000 caller variables: the launch (and a dry run) complete within the harness
/// bound, and the command gets every one of them.
#[test]
fn a_hundred_thousand_variables() {
    let t = Test::new();
    let record = t.path("probe/environ");
    let t = t.command(["/bin/cp", "/proc/self/environ", record.to_str().unwrap()]);
    let vars: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("V{i:06}"), "x".to_owned()))
        .collect();
    for dry in [false, true] {
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", "20", BIN]);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.args(t.argv())
            .env_clear()
            .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir(t.work())
            .stdout(Stdio::null());
        let status = status_of(&mut cmd).unwrap();
        assert_eq!(status.code(), Some(0), "dry run: {dry}: {status}");
    }
    let environ = fs::read(&record).unwrap();
    let names: std::collections::HashSet<&[u8]> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .collect();
    let missing = vars
        .iter()
        .filter(|(k, _)| !names.contains(k.as_bytes()))
        .count();
    assert_eq!(missing, 0, "{missing} variables did not reach the command");
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|kv| kv == format!("HOME={}", t.home().display()).as_bytes())
    );
}

/// doctor never shows a password (or any userinfo) of `ANTHROPIC_BASE_URL`, whatever the
/// password contains — not in its environment check, not in what --live prints of
/// claude's output.
#[test]
fn doctor_never_prints_the_base_url_password() {
    let t = Test::new();
    // claude echoes its base URL back, as an error message might.
    write_executable(
        &t.path("bin/claude"),
        "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) echo \"API Error: cannot reach $ANTHROPIC_BASE_URL\" >&2; exit 1 ;; esac\n",
    );
    let secret = "Pw9x7Secret";
    for url in [
        format!("https://user:{secret}@api.example.com/v1"),
        format!("https://user:{secret}/x@api.example.com"),
        format!("https://user:ab/{secret}@api.example.com"),
        format!("https://user:{secret}?q@api.example.com"),
        format!("https://user:{secret}#f@api.example.com"),
        format!("https://user:{secret}@x@api.example.com"),
        format!("https://user:{secret}\\@api.example.com"),
        format!("user:{secret}/y@api.example.com"),
        format!("https://{secret}@api.example.com"),
        format!("HTTPS://user:{secret}@[::1]:8443/"),
        format!("https://user:{secret}%40@api.example.com"),
    ] {
        let d = doctor_live(&t).env("ANTHROPIC_BASE_URL", &url);
        let out = d.run();
        let all = format!("{}{}", out.stdout_text(), out.stderr_text());
        assert!(
            all.contains("ANTHROPIC_BASE_URL is set"),
            "[{url}] no note: {all}"
        );
        for piece in [secret, &secret[..6], &secret[5..]] {
            assert!(!all.contains(piece), "[{url}] {piece:?} shown:\n{all}");
        }
        assert!(!all.contains("user:"), "[{url}] userinfo shown:\n{all}");
    }
}

/// A stand-in claude for `doctor --live` that records `$HOME` and `$PWD` and answers.
fn recording_claude(t: &Test) -> PathBuf {
    let record = t.path("live-record");
    write_executable(
        &t.path("bin/claude"),
        &format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) printf '%s\\n%s\\n%s\\n' \"$HOME\" \"$PWD\" \"$(pwd -P)\" > '{}'; echo AUTH_OK ;; esac\n",
            record.display()
        ),
    );
    record
}

fn doctor_live(t: &Test) -> Test {
    Test::new()
        .no_env_file()
        .no_home()
        .args(["doctor", "--live", "--env-file"])
        .arg(t.env_file())
        .arg("--home")
        .arg(t.home())
        .env("HOME", t.real_home())
        .env("PATH", format!("{}:/usr/bin:/bin", t.path("bin").display()))
}

/// `TMPDIR` inside (or a symlink to) the real `~/.claude` or `CLAUDE_CONFIG_DIR`: the
/// throwaway home of --live goes elsewhere, and the config dir is unchanged.
#[test]
fn doctor_live_never_makes_its_home_in_a_real_config_dir() {
    let t = Test::new();
    let record = recording_claude(&t);
    let real_claude = mkdir(&t.real_home().join(".claude"));
    let inside = mkdir(&real_claude.join("tmp"));
    symlink(&real_claude, t.path("tmp-link")).unwrap();
    let config = mkdir(&t.path("config-dir"));
    let config_tmp = mkdir(&config.join("tmp"));
    for (name, tmpdir, extra) in [
        ("TMPDIR in ~/.claude", inside.clone(), None),
        ("TMPDIR a symlink to ~/.claude", t.path("tmp-link"), None),
        (
            "TMPDIR in CLAUDE_CONFIG_DIR",
            config_tmp.clone(),
            Some(config.clone()),
        ),
    ] {
        // The record exists before the run: with CLAUDE_CONFIG_DIR in the sandbox, the
        // sandbox is a view under the mask, in which no new entry can be made.
        write_mode(&record, "", 0o644);
        let before = (tree(&real_claude), tree(&config));
        let mut d = doctor_live(&t).env("TMPDIR", &tmpdir);
        if let Some(c) = &extra {
            d = d.env("CLAUDE_CONFIG_DIR", c);
        }
        let out = d.run();
        out.stdout_contains("claude answered AUTH_OK");
        let rec = fs::read_to_string(&record).unwrap();
        let home = PathBuf::from(rec.lines().next().unwrap());
        for dir in [&real_claude, &config] {
            assert!(
                !home.starts_with(dir),
                "[{name}] the throwaway home {} is in {}",
                home.display(),
                dir.display()
            );
        }
        assert!(
            (tree(&real_claude), tree(&config)) == before,
            "[{name}] a config dir changed"
        );
        fs::remove_file(&record).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Issue 15 §4: one test per bug
// ---------------------------------------------------------------------------------------

/// A path with a slash whose lookup fails other than by a missing file is found but
/// cannot run (126), as execvp reports it; a missing one is 127.
#[test]
fn a_slash_path_that_cannot_be_looked_up_is_126() {
    let t = Test::new();
    symlink("loop-b", t.path("loop-a")).unwrap();
    symlink("loop-a", t.path("loop-b")).unwrap();
    let loop_a = t.path("loop-a");
    for (cmd, code, needle) in [
        ("/etc/passwd/x".to_owned(), 126, "Not a directory"),
        (loop_a.display().to_string(), 126, "symbolic links"),
        (format!("{}/x", loop_a.display()), 126, "symbolic links"),
        ("/no/such/dir/x".to_owned(), 127, "not found"),
    ] {
        let t = Test::new().command([&cmd]);
        t.run().status(code).one_line_error(needle).probe_not_run();
    }
    // A directory the runner cannot search: EACCES, 126.
    let t = Test::new();
    let shut = mkdir_mode(&t.path("shut"), 0o700);
    fs::copy(t.probe_path(), shut.join("probe")).unwrap();
    // No search permission for the runner (its own directory without x, or root's).
    chmod(&shut, 0o600);
    let t = as_runner(t.command([shut.join("probe")]));
    t.run()
        .status(126)
        .one_line_error("Permission denied")
        .probe_not_run();
    chmod(&shut, 0o700);
}

/// A home seeded by hand (no lock file of ours): a nested claude-iso run inside it knows
/// `HOME` is a scratch home and plans the real (passwd) home's default, not one inside.
#[test]
fn a_nested_run_in_a_hand_seeded_home_knows_it_is_nested() {
    let t = Test::new();
    let home = mkdir_mode(&t.home(), 0o700);
    write_mode(
        &home.join(".claude.json"),
        format!(
            "{{\"hasCompletedOnboarding\": true, \"projects\": {{\"{}\": {{\"hasTrustDialogAccepted\": true}}}}}}",
            t.work().display()
        ),
        0o600,
    );
    let passwd = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .dir;
    // The outer run unmasked: under the mask the real homes are views whose top level
    // cannot gain entries, so the passwd home's default home (whose `.local` may not
    // exist) could not be planned as creatable; this test is about nesting, not the mask.
    let t = t
        .args(["--mask", "off"])
        .command([BIN, "--dry-run", "--", "probe"]);
    let out = t.run();
    out.status(0);
    let plan = out.stdout_text();
    let line = plan
        .lines()
        .find(|l| l.starts_with("home: "))
        .unwrap_or_else(|| panic!("no home line in {plan}"));
    assert!(
        !line.contains(&home.display().to_string()),
        "the nested run took the scratch HOME for the real home: {line}"
    );
    assert!(
        line.contains(
            &passwd
                .join(".local/state/claude-iso/home")
                .display()
                .to_string()
        ) || line.contains(".local/state/claude-iso/home"),
        "{line}"
    );
    assert!(
        home.join(".claude-iso.lock").is_file(),
        "the home is not marked"
    );
}

/// `doctor --live -C DIR` runs claude in DIR with `PWD` = DIR's realpath (the caller's
/// stale `PWD` is not passed on).
#[test]
fn doctor_live_with_cwd_gives_the_command_pwd() {
    let t = Test::new();
    let record = recording_claude(&t);
    let dir = mkdir(&t.path("project"));
    symlink(&dir, t.path("project-link")).unwrap();
    for given in [dir.clone(), t.path("project-link")] {
        let d = doctor_live(&t)
            .env("PWD", "/stale/pwd")
            .arg("-C")
            .arg(&given);
        let out = d.run();
        out.stdout_contains("claude answered AUTH_OK");
        let rec = fs::read_to_string(&record).unwrap();
        let lines: Vec<&str> = rec.lines().collect();
        assert_eq!(
            &lines[1..],
            &[dir.to_str().unwrap(), dir.to_str().unwrap()],
            "-C {}: PWD / pwd -P",
            given.display()
        );
    }
}

/// `.claude` in the home a symlink to (or a bind mount of) the real `~/.claude`: doctor
/// reports the launcher's refusal, and neither "will move it aside" nor "will seed".
#[test]
fn doctor_reports_the_refusal_of_a_home_holding_the_real_config_dir() {
    for bind in [false, true] {
        let t = Test::new().no_env_file().no_home();
        let real_claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&real_claude.join(".credentials.json"), "{}", 0o600);
        let home = mkdir_mode(&t.home(), 0o700);
        let env_file = t.env_file();
        let t = if bind {
            let claude = mkdir(&home.join(".claude"));
            bind_wrap(t, &real_claude, &claude)
        } else {
            symlink(&real_claude, home.join(".claude")).unwrap();
            t
        };
        let t = t
            .args(["doctor", "--env-file"])
            .arg(&env_file)
            .arg("--home")
            .arg(&home);
        let out = t.run();
        out.status(1);
        let text = out.stdout_text();
        let home_line = text
            .lines()
            .find(|l| l.starts_with("fail  home"))
            .unwrap_or_else(|| {
                panic!("[bind: {bind}] doctor does not report the refusal:\n{text}")
            });
        assert!(home_line.contains(".claude"), "{home_line}");
        for wrong in [
            "will move",
            "will seed",
            "will create",
            "would move",
            "would seed",
            "would create",
        ] {
            assert!(
                !text.contains(wrong),
                "[bind: {bind}] doctor says {wrong:?}:\n{text}"
            );
        }
        // And the launcher refuses it the same way.
        // (The same caller: its HOME holds the real ~/.claude.)
        let launch = Test::new()
            .no_env_file()
            .no_home()
            .env("HOME", real_claude.parent().unwrap());
        let launch = if bind {
            bind_wrap(launch, &real_claude, &home.join(".claude"))
        } else {
            launch
        };
        launch
            .arg("--env-file")
            .arg(&env_file)
            .arg("--home")
            .arg(&home)
            .run()
            .status(125)
            .probe_not_run();
        assert!(real_claude.join(".credentials.json").exists());
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

/// A home that cannot be created in a system directory (`/`, owned by root) never
/// suggests making that directory writable: it names the ways to a home of one's own
/// (issue 24).
#[test]
fn a_home_that_cannot_be_created_in_a_system_directory_suggests_one_of_your_own() {
    let t = Test::new()
        .no_home()
        .arg("--home")
        .arg("/claude-iso-test-not-there/home");
    let t = as_runner(t);
    let out = t.run();
    out.status(125)
        .one_line_error(
            "home /claude-iso-test-not-there/home: cannot create: / (owner uid 0, mode ",
        )
        .one_line_error("choose a home in a directory of yours: --home DIR")
        .stderr_lacks("made writable")
        .probe_not_run();
    assert!(!Path::new("/claude-iso-test-not-there").exists());
}

/// `doctor --live` against a claude that gets a 401: the `live` line says what to do
/// ("run `claude setup-token`, then `claude-iso token set`"), and the report ends with
/// its summary line (issue 24).
#[test]
fn doctor_live_failure_names_the_way_out_and_the_report_ends_with_a_summary() {
    let t = Test::new();
    write_executable(
        &t.path("bin/claude"),
        "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) echo 'API Error: 401 {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\"}}'; exit 1 ;; esac\n",
    );
    let doctor = doctor_live(&t).timeout(Duration::from_secs(60));
    let out = doctor.run();
    out.status(1);
    let text = out.stdout_text();
    let live = text
        .lines()
        .find(|l| l.starts_with("fail  live"))
        .unwrap_or_else(|| panic!("no failed live line:\n{text}"));
    assert!(
        live.contains("API Error: 401")
            && live.contains("run `claude setup-token`, then `claude-iso token set`"),
        "{live}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("summary: ") && last.contains(" fail: fix the `fail` lines"),
        "{text}"
    );
}
