//! `--init` (issue 12): claude-iso as PID 1 of a new PID namespace, and as a subreaper
//! outside one. The command's orphans are reaped while it runs, signals reach it, its
//! exit status is claude-iso's (128+N after a signal), what it leaves behind gets
//! SIGTERM then SIGKILL within the grace period, 126/127 are unchanged, and the init
//! holds no copy of the token.
//!
//! The `pid1_*` tests run claude-iso as PID 1 of a new PID namespace, with the same
//! assertions as root and as any other user. As root: `unshare --pid --fork
//! --mount-proc`, on the real file system. A user needs a user namespace for that
//! (`unshare --user --map-root-user`), where every directory of the real root shows as
//! the overflow uid 65534, and claude-iso (rightly) refuses a scratch home below a
//! directory of an unknown owner. So there the test first gives the namespaces a root of
//! their own ([`NEW_ROOT`]): a tmpfs owned by the namespace's root (the user), holding
//! bind mounts of the system directories, the test's sandbox and claude-iso at their
//! usual paths, entered with `pivot_root` (not `chroot`: claude-iso is not a chrooted
//! process). The home's ancestors are then that tmpfs and the user's own sandbox, and
//! claude-iso's ownership checks pass as on a host where the user owns the path. The
//! `init_*` tests run the init outside a PID namespace, as a subreaper.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TOKEN, Test, is_root};

/// The grace period the tests give (short, so a test does not wait 10 s).
const GRACE: u64 = 2;

/// `(pid, ppid, state)` of every process.
fn processes() -> Vec<(u32, u32, char)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap().chars().next().unwrap();
        let ppid = f.next().unwrap().parse().unwrap();
        out.push((pid, ppid, state));
    }
    out
}

/// Every process below `root`, with its state.
fn descendants(root: u32) -> Vec<(u32, char)> {
    let all = processes();
    let mut out: Vec<(u32, char)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, state) in &all {
            if ppid == parent && !out.iter().any(|(p, _)| *p == pid) {
                out.push((pid, state));
                frontier.push(pid);
            }
        }
    }
    out
}

#[track_caller]
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).unwrap();
}

/// Kills a started run and everything below it when the test fails before the run
/// ended, so that a failed assertion leaves no init, command or orphan running.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        let root = self.0;
        let ours = || {
            processes()
                .iter()
                .any(|&(pid, ppid, _)| pid == root && ppid == std::process::id())
        };
        // Only a run not waited for yet: its PID is still our child's.
        if !std::thread::panicking() || !ours() {
            return;
        }
        for (pid, _) in descendants(root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(root as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// For a user without privileges: gives the namespaces a root of their own, then runs
/// claude-iso as PID 1 of a new PID namespace. Run as `sh NEW_ROOT SANDBOX CLAUDE_ISO
/// ARGS…` inside `unshare --user --map-root-user --mount`. The sandbox and claude-iso
/// keep their paths, and the working directory is kept.
const NEW_ROOT: &str = r#"set -eu
sandbox=$1 bin=$2
shift 2
wd=$(pwd -P)
new=$sandbox/.root
mkdir -p "$new"
# Owned by the namespace's root (the user), not writable by others.
mount -t tmpfs -o mode=0755 claude-iso-test-root "$new"
(
    umask 022
    for d in usr etc dev; do
        mkdir "$new/$d"
        mount --rbind "/$d" "$new/$d"
    done
    for d in bin sbin lib lib32 lib64 libx32; do
        if [ -L "/$d" ]; then
            ln -s "$(readlink "/$d")" "$new/$d"
        elif [ -d "/$d" ]; then
            mkdir "$new/$d"
            mount --rbind "/$d" "$new/$d"
        fi
    done
    mkdir -p "$new/proc" "$new$sandbox" "$new${bin%/*}"
    : >"$new$bin"
)
mount -o remount,bind,ro "$new/usr"
mount -o remount,bind,ro "$new/etc"
# The real /proc, under the PID namespace's own (which unshare mounts below): umount
# reads it, and the kernel lets a user namespace mount a proc only where one is fully
# visible already.
mount --rbind /proc "$new/proc"
mount --bind "$sandbox" "$new$sandbox"
mount --bind "$bin" "$new$bin"
mount -o remount,bind,ro "$new$bin"
mkdir "$new/.old"
cd "$new"
PATH=/usr/sbin:/sbin:$PATH pivot_root . .old
umount -l /.old
rmdir /.old
cd "$wd"
exec unshare --pid --fork --mount-proc "$bin" "$@"
"#;

/// `path` quoted for `/bin/sh`.
fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Runs claude-iso as PID 1 of a new PID namespace with /proc of its own (as a user:
/// in a root of its own, see [`NEW_ROOT`]).
fn in_pid_namespace(t: Test) -> Test {
    if is_root() {
        return t.wrap("exec unshare --pid --fork --mount-proc \"$0\" \"$@\"");
    }
    let script = t.path(".new-root.sh");
    common::write_mode(&script, NEW_ROOT, 0o644);
    let wrap = format!(
        "exec unshare --user --map-root-user --mount /bin/sh {} {} \"$0\" \"$@\"",
        sh_quote(&script),
        sh_quote(t.root())
    );
    t.wrap(&wrap)
}

/// claude-iso's PID (on our side) once unshare has forked it: the child of `unshare`
/// that is PID 1 of its namespace (as a user, the set-up commands are children too).
fn pid1_of(unshare: u32) -> u32 {
    let mut found = None;
    wait_until("claude-iso under unshare", Duration::from_secs(10), || {
        found = processes()
            .into_iter()
            .filter(|(_, ppid, _)| *ppid == unshare)
            .map(|(pid, _, _)| pid)
            .find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|status| {
                    status.lines().any(|l| {
                        let ids: Vec<&str> = l.split_whitespace().collect();
                        ids.len() > 2 && ids[0] == "NSpid:" && ids.last() == Some(&"1")
                    })
                })
            });
        found.is_some()
    });
    found.unwrap()
}

/// A command that orphans two grandchildren (each exits 0.2 s later), says it is ready,
/// then keeps running.
fn orphaning_command(t: &Test) -> Vec<String> {
    let ready = t.path("ready");
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "(sleep 0.2 &); (sleep 0.2 &); echo $$ > {}; exec sleep 60",
            ready.display()
        ),
    ]
}

/// Waits for the orphans to exit, then returns the states of everything below `pid`.
fn after_orphans_exit(t: &Test, pid: u32) -> Vec<(u32, char)> {
    wait_until("the command to start", Duration::from_secs(10), || {
        t.path("ready").exists()
    });
    // The orphans sleep 0.2 s; give their exit and our reaping ample time.
    std::thread::sleep(Duration::from_millis(900));
    descendants(pid)
}

fn zombies(procs: &[(u32, char)]) -> usize {
    procs.iter().filter(|(_, s)| *s == 'Z').count()
}

#[test]
fn pid1_reaps_orphans_while_the_command_runs() {
    // Control: with --no-init the command (sleep) is PID 1 and reaps nothing, so the
    // check below can see zombies.
    let t = Test::new();
    let cmd = orphaning_command(&t);
    let t = in_pid_namespace(t.args(["--no-init"]).command(cmd));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let pid = pid1_of(run.id());
    let procs = after_orphans_exit(&t, run.id());
    assert_eq!(
        zombies(&procs),
        2,
        "without the init the orphans stay zombies: {procs:?}"
    );
    signal(pid, nix::sys::signal::Signal::SIGKILL);
    drop(run.wait());

    let t = Test::new();
    let cmd = orphaning_command(&t);
    let t = in_pid_namespace(t.command(cmd));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let pid = pid1_of(run.id());
    let procs = after_orphans_exit(&t, run.id());
    assert_eq!(zombies(&procs), 0, "a zombie remains: {procs:?}");
    // claude-iso (PID 1) and the command, still running.
    assert_eq!(procs.len(), 2, "{procs:?}");
    let command: u32 = fs::read_to_string(t.path("ready"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(command, 2, "the command is PID 2 in the namespace");
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    run.wait().status(143);
}

#[test]
fn pid1_sigterm_reaches_the_command_and_exits_143() {
    let t = Test::new();
    let ready = t.path("ready");
    let t = in_pid_namespace(t.command([
        "sh",
        "-c",
        &format!("echo $$ > {}; exec sleep 60", ready.display()),
    ]));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let pid = pid1_of(run.id());
    wait_until("the command", Duration::from_secs(10), || ready.exists());
    let started = Instant::now();
    signal(pid, nix::sys::signal::Signal::SIGTERM);
    let out = run.wait();
    out.status(143).stderr("");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        started.elapsed()
    );
}

#[test]
fn pid1_exit_status_is_the_commands() {
    for (script, status) in [("exit 42", 42), ("exit 0", 0), ("kill -KILL $$", 137)] {
        let t = in_pid_namespace(Test::new().command(["sh", "-c", script]));
        let started = Instant::now();
        t.run().status(status).stderr("");
        // Nothing was left behind: no grace period to wait out.
        assert!(started.elapsed() < Duration::from_secs(5), "{script}");
    }
}

/// A command that leaves two descendants and exits 3: one records the SIGTERM it gets
/// and exits, the other ignores SIGTERM. Each writes its PID first.
fn leaving_command(t: &Test) -> Vec<String> {
    let dir = t.root().display().to_string();
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "sh -c 'echo $$ > {dir}/polite; trap \"echo TERM > {dir}/got-term; exit 0\" TERM; while :; do sleep 0.05; done' &\n\
             sh -c 'echo $$ > {dir}/stubborn; trap \"\" TERM; while :; do sleep 0.05; done' &\n\
             while [ ! -s {dir}/polite ] || [ ! -s {dir}/stubborn ]; do sleep 0.02; done\n\
             exit 3"
        ),
    ]
}

fn recorded_pid(t: &Test, name: &str) -> u32 {
    fs::read_to_string(t.path(name))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn pid1_descendants_left_get_sigterm_then_sigkill_within_the_grace() {
    let t = Test::new();
    let cmd = leaving_command(&t);
    let t = in_pid_namespace(t.args(["--init-grace", &GRACE.to_string()]).command(cmd));
    let started = Instant::now();
    // (stderr may hold the shells' "Terminated" for their killed sleeps.)
    t.run().status(3);
    let took = started.elapsed();
    // The polite one got SIGTERM (the kernel's SIGKILL at PID 1's exit would leave no
    // trace), the stubborn one held us up until the grace ran out.
    assert_eq!(fs::read_to_string(t.path("got-term")).unwrap(), "TERM\n");
    assert!(
        took >= Duration::from_secs(GRACE) && took < Duration::from_secs(GRACE + 4),
        "took {took:?} with a {GRACE} s grace"
    );
}

#[test]
fn pid1_not_found_and_cannot_run_are_127_and_126() {
    let t = Test::new();
    write_plain(&t.path("bin/not-exec"));
    let t = in_pid_namespace(t.command(["no-such-command-xyz"]));
    t.run()
        .status(127)
        .one_line_error("no-such-command-xyz: command not found");
    let t = in_pid_namespace(Test::new().command(["/etc"]));
    t.run().status(126).one_line_error("/etc: is a directory");
}

fn write_plain(path: &Path) {
    common::write_mode(path, "echo hi\n", 0o644);
}

#[test]
fn pid1_is_automatic_and_no_init_turns_it_off() {
    // The probe records its PID: 2 under the init, 1 when claude-iso exec'd it.
    for (args, env, pid) in [
        (&[][..], None, 2),
        (&["--no-init"][..], None, 1),
        (&[][..], Some("0"), 1),
    ] {
        let mut t = in_pid_namespace(Test::new().args(args));
        if let Some(v) = env {
            t = t.env("CLAUDE_ISO_INIT", v);
        }
        let out = t.run();
        out.success();
        assert_eq!(out.probe().pid, pid, "{args:?} CLAUDE_ISO_INIT={env:?}");
        out.probe().assert_token(TOKEN);
    }
}

// --- outside a PID namespace: the init as a subreaper (any user) ------------------------

#[test]
fn init_reaps_orphans_as_a_subreaper() {
    let t = Test::new();
    let cmd = orphaning_command(&t);
    let t = t.args(["--init"]).command(cmd);
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let procs = after_orphans_exit(&t, run.id());
    assert_eq!(zombies(&procs), 0, "a zombie remains: {procs:?}");
    assert_eq!(procs.len(), 1, "only the command is left: {procs:?}");
    signal(run.id(), nix::sys::signal::Signal::SIGTERM);
    run.wait().signal(15).stderr("");
}

#[test]
fn init_passes_the_exit_status_and_126_127() {
    Test::new()
        .args(["--init"])
        .command(["sh", "-c", "exit 42"])
        .run()
        .status(42)
        .stderr("");
    // A death by signal N is passed on as the same death (not PID 1), not as 128+N.
    Test::new()
        .args(["--init"])
        .command(["sh", "-c", "kill -TERM $$"])
        .run()
        .signal(15)
        .stderr("");
    let t = Test::new().args(["--init"]);
    let out = t.run();
    out.success();
    out.probe().assert_token(TOKEN);
    Test::new()
        .args(["--init"])
        .command(["no-such-command-xyz"])
        .run()
        .status(127)
        .one_line_error("no-such-command-xyz: command not found");
    Test::new()
        .args(["--init"])
        .command(["/etc"])
        .run()
        .status(126)
        .one_line_error("/etc: is a directory");
    // A 125 of the child (no token) is passed on the same way.
    Test::new()
        .args(["--init"])
        .env_file_text("")
        .run()
        .status(125)
        .probe_not_run();
}

#[test]
fn init_cleans_up_descendants_within_the_grace() {
    let t = Test::new();
    let cmd = leaving_command(&t);
    let t = t
        .args(["--init", "--init-grace", &GRACE.to_string()])
        .command(cmd);
    let started = Instant::now();
    // (stderr may hold the shells' "Terminated" for their killed sleeps.)
    t.run().status(3);
    let took = started.elapsed();
    assert_eq!(fs::read_to_string(t.path("got-term")).unwrap(), "TERM\n");
    assert!(
        took >= Duration::from_secs(GRACE) && took < Duration::from_secs(GRACE + 4),
        "took {took:?} with a {GRACE} s grace"
    );
    for name in ["polite", "stubborn"] {
        let pid = recorded_pid(&t, name);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the {name} descendant ({pid}) is still there"
        );
    }
}

#[test]
fn init_forwards_each_signal() {
    let t = Test::new();
    let got = t.path("got");
    let ready = t.path("ready");
    let traps: String = ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH"]
        .iter()
        .map(|s| format!("trap 'echo {s} >> {}' {s}; ", got.display()))
        .collect();
    let t = t.args(["--init"]).command([
        "sh",
        "-c",
        &format!(
            "{traps}echo > {}; while :; do sleep 0.05; done",
            ready.display()
        ),
    ]);
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    wait_until("the command", Duration::from_secs(10), || ready.exists());
    use nix::sys::signal::Signal::*;
    let mut expected = String::new();
    for (sig, name) in [
        (SIGHUP, "HUP"),
        (SIGINT, "INT"),
        (SIGQUIT, "QUIT"),
        (SIGUSR1, "USR1"),
        (SIGUSR2, "USR2"),
        (SIGWINCH, "WINCH"),
    ] {
        signal(run.id(), sig);
        expected.push_str(name);
        expected.push('\n');
        wait_until(name, Duration::from_secs(5), || {
            fs::read_to_string(&got).unwrap_or_default() == expected
        });
    }
    signal(run.id(), SIGTERM);
    run.wait().signal(15).stderr("");
}

#[test]
fn init_group_signals_the_commands_process_group() {
    for (group, both) in [(true, true), (false, false)] {
        let t = Test::new();
        let dir = t.root().display().to_string();
        let mut args = vec!["--init", "--init-grace", "1"];
        if group {
            args.push("--init-group");
        }
        let t = t.args(args).command([
            "sh",
            "-c",
            &format!(
                "sh -c 'trap \"echo inner > {dir}/inner\" USR1; echo > {dir}/inner-ready; while :; do sleep 0.05; done' &\n\
                 trap 'echo outer > {dir}/outer' USR1\n\
                 echo $$ > {dir}/ready\n\
                 while :; do sleep 0.05; done"
            ),
        ]);
        let run = t.spawn();
        let _cleanup = KillOnPanic(run.id());
        // Written, not only created: `echo $$ > ready` creates the file before writing.
        wait_until("the command", Duration::from_secs(10), || {
            fs::read_to_string(t.path("ready")).is_ok_and(|s| s.ends_with('\n'))
                && t.path("inner-ready").exists()
        });
        let command = recorded_pid(&t, "ready");
        let pgid = nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(command as i32)))
            .unwrap()
            .as_raw() as u32;
        assert_eq!(
            pgid == command,
            group,
            "the command leads its own group only with --init-group"
        );
        signal(run.id(), nix::sys::signal::Signal::SIGUSR1);
        wait_until("the command's USR1", Duration::from_secs(5), || {
            t.path("outer").exists()
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(t.path("inner").exists(), both, "group={group}");
        signal(run.id(), nix::sys::signal::Signal::SIGTERM);
        run.wait().signal(15);
    }
}

/// The readable memory of `pid` (as root), region by region.
fn memory(pid: u32) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let range = f.next().unwrap();
        let perms = f.next().unwrap();
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            u64::from_str_radix(a, 16).unwrap(),
            u64::from_str_radix(b, 16).unwrap(),
        );
        let mut buf = vec![0; usize::try_from(b - a).unwrap()];
        if mem.seek(SeekFrom::Start(a)).is_ok() && mem.read_exact(&mut buf).is_ok() {
            out.extend_from_slice(&buf);
        }
    }
    out
}

/// The first 10-byte piece of the token's secret part found in `haystack` (what
/// `common::secret_piece` looks for, with a fast search: memory is megabytes).
fn token_piece(haystack: &[u8]) -> Option<String> {
    let body = &TOKEN.as_bytes()[13..];
    body.windows(10)
        .find(|piece| memchr::memmem::find(haystack, piece).is_some())
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

#[test]
fn the_init_holds_no_copy_of_the_token_and_stays_non_dumpable() {
    // The token from the env file, and from the caller's environment.
    for from_env in [false, true] {
        let t = Test::new();
        let ready = t.path("ready");
        let mut t = t.args(["--init"]).command([
            "sh",
            "-c",
            &format!("echo > {}; exec sleep 60", ready.display()),
        ]);
        if from_env {
            t = t.no_env_file().env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN);
        }
        let run = t.spawn();
        let _cleanup = KillOnPanic(run.id());
        wait_until("the command", Duration::from_secs(10), || ready.exists());
        let init = run.id();
        let command = descendants(init)[0].0;
        // The shell writes `ready` and then execs sleep: read its memory once the exec is
        // done, not in the middle of it.
        wait_until(
            "the command's exec of sleep",
            Duration::from_secs(10),
            || {
                fs::read_to_string(format!("/proc/{command}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            },
        );
        if is_root() {
            // Root may read any process's memory: the command's has the token (the check
            // works), the init's has no piece of it.
            assert!(token_piece(&memory(command)).is_some());
            let mem = memory(init);
            assert!(mem.len() > 100_000, "read {} bytes", mem.len());
            if let Some(piece) = token_piece(&mem) {
                panic!("the init's memory holds {piece:?} (token from_env={from_env})");
            }
            let environ = fs::read(format!("/proc/{init}/environ")).unwrap();
            assert_eq!(token_piece(&environ), None);
        } else {
            // Same user: the init is non-dumpable, so its memory and environment are
            // closed to us, while the command's (dumpable again after execve) are not.
            for file in ["mem", "environ"] {
                let err = fs::File::open(format!("/proc/{init}/{file}"))
                    .and_then(|mut f| std::io::Read::read(&mut f, &mut [0; 1]))
                    .expect_err("the init's memory is readable");
                assert_eq!(err.raw_os_error(), Some(13), "{file}: {err}");
            }
            assert!(fs::read(format!("/proc/{command}/environ")).is_ok());
        }
        signal(init, nix::sys::signal::Signal::SIGTERM);
        run.wait().signal(15).no_secrets();
    }
}

#[test]
fn dry_run_shows_the_init_and_bad_variables_are_125() {
    let t = Test::new().args(["--init", "--dry-run"]);
    let out = t.run();
    out.status(0).probe_not_run();
    assert!(
        out.stdout_text().contains(
            "init: on (--init): claude-iso forks, reaps orphans and forwards signals to the command; 10 s from SIGTERM to SIGKILL"
        ),
        "{}",
        out.stdout_text()
    );
    let t = Test::new()
        .args(["--init-group", "--dry-run"])
        .env("CLAUDE_ISO_INIT_GRACE", "25");
    let out = t.run();
    assert!(
        out.stdout_text()
            .contains("to the command's process group; 25 s from"),
        "{}",
        out.stdout_text()
    );
    // Not PID 1 and not asked: no init, no line.
    let t = Test::new().args(["--dry-run"]);
    let out = t.run();
    assert!(!out.stdout_text().contains("init:"));

    for (var, value) in [("CLAUDE_ISO_INIT", "yes"), ("CLAUDE_ISO_INIT_GRACE", "5s")] {
        Test::new()
            .env(var, value)
            .run()
            .status(125)
            .one_line_error(var)
            .probe_not_run();
    }
    Test::new()
        .args(["--init", "--no-init"])
        .run()
        .status(125)
        .probe_not_run();
}

/// Issue 15: `doctor --live` runs the real launcher "so it also covers mask and init".
/// Found by review: the init options were not passed on. A fake claude that answers only
/// when its parent's parent is claude-iso too (the init between doctor and the command)
/// tells.
#[test]
fn doctor_live_launches_with_the_init_options() {
    let t = Test::new();
    let bin = t.path("bin");
    fs::create_dir_all(&bin).unwrap();
    common::write_executable(
        &bin.join("claude"),
        "#!/bin/sh\ncase \"$1\" in\n--version) echo '9.9.9 (Claude Code)' ;;\n-p) pp=$(ps -o ppid= -p $PPID | tr -d ' '); [ \"$(cat /proc/$pp/comm)\" = claude-iso ] && echo AUTH_OK || echo NO-INIT-BETWEEN ;;\nesac\nexit 0\n",
    );
    let doctor = |extra: &[&str]| {
        Test::new()
            .no_env_file()
            .no_home()
            .args(["doctor", "--live", "--env-file"])
            .arg(t.env_file())
            .arg("--home")
            .arg(t.home())
            .args(extra.iter().copied())
            .env("HOME", t.real_home())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .timeout(Duration::from_secs(30))
    };
    let with_init = doctor(&["--init", "--init-grace", "2"]);
    with_init
        .run()
        .status(0)
        .stdout_contains("claude answered AUTH_OK");
    // The control: without it, the fake does not answer.
    let plain = doctor(&[]);
    plain.run().status(1);
}
