//! `--init` (issue 12): claude-iso as PID 1 of a new PID namespace, and as a subreaper
//! outside one. The command's orphans are reaped while it runs, signals reach it, its
//! exit status is claude-iso's (128+N after a signal as PID 1; outside, the init dies of
//! the same signal), what it leaves behind gets SIGTERM then SIGKILL within the grace
//! period, 126/127 are unchanged, and the init holds no copy of the token.
//!
//! Issue 23 (round 2, with tini 0.19 as the reference): every signal 1–31 (and a
//! real-time one) reaches the command; Ctrl-Z, `fg` and Ctrl-C work from a shell in
//! tmux; an interactive dash as the command of PID 1 has the terminal; a shell loop stops
//! on Ctrl-C; a second SIGTERM or SIGINT cuts the grace short. The runs start with every
//! signal at its default action ([`default_signals`]), so the suite also passes when
//! started in the background of a script (SIGINT and SIGQUIT inherited ignored).
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

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::sandbox::{TOKEN, Test, is_root};
use crate::support::tui;

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
/// in a root of its own, see [`NEW_ROOT`]), with every signal at its default action
/// (see [`default_signals`]).
fn in_pid_namespace(t: Test) -> Test {
    let prefix: Vec<String> = pid_namespace_prefix(&t)
        .iter()
        .map(|w| sh_quote(Path::new(w)))
        .collect();
    let wrap = format!(
        "exec env --default-signal {} \"$0\" \"$@\"",
        prefix.join(" ")
    );
    t.wrap(&wrap)
}

/// The command line that runs what follows it as PID 1 of a new PID namespace (see
/// [`in_pid_namespace`]).
fn pid_namespace_prefix(t: &Test) -> Vec<String> {
    if is_root() {
        vec![
            "unshare".into(),
            "--pid".into(),
            "--fork".into(),
            "--mount-proc".into(),
        ]
    } else {
        let script = t.path(".new-root.sh");
        crate::support::sandbox::write_mode(&script, NEW_ROOT, 0o644);
        vec![
            "unshare".into(),
            "--user".into(),
            "--map-root-user".into(),
            "--mount".into(),
            "/bin/sh".into(),
            script.display().to_string(),
            t.root().display().to_string(),
        ]
    }
}

/// Starts claude-iso with every signal at its default action (`env --default-signal`):
/// a test started in the background of a script (`scripts/test > log &`) inherits
/// SIGINT and SIGQUIT ignored, and a command inherits that through claude-iso, so a
/// shell could not trap them nor die of them.
fn default_signals(t: Test) -> Test {
    t.wrap("exec env --default-signal \"$0\" \"$@\"")
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
    crate::support::sandbox::write_mode(path, "echo hi\n", 0o644);
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
    // (SIGINT and SIGQUIT at their default action, or the shell could not trap them.)
    let t = default_signals(t.args(["--init"])).command([
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
/// `crate::support::sandbox::secret_piece` looks for, with a fast search: memory is megabytes).
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
    crate::support::sandbox::write_executable(
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

// --- round 2: every signal, job control, the command's own death ------------------------

/// A command of one process (no child a stop or a group signal could catch first) that
/// records, one line each, every signal of `ARGV[2..]` it receives (in `ARGV[0]`), after
/// writing its PID to `ARGV[1]`. Perl (perl-base is essential on Debian): a shell could
/// not trap signals it inherited ignored, and waits in children.
const RECORDER: &str = r#"
use Config;
my @names = split ' ', $Config{sig_name};
my ($got, $ready, @signals) = @ARGV;
open(my $out, '>>', $got) or die "$got: $!";
select((select($out), $| = 1)[0]);
for my $n (@signals) {
    $SIG{$names[$n]} = sub { print $out "$n\n" };
}
open(my $r, '>', "$ready.tmp") or die; print $r "$$\n"; close $r;
rename("$ready.tmp", $ready) or die;
sleep 1 while 1;
"#;

/// Every signal from 1 to 31 a process can catch, but SIGCHLD (the init's own: it reaps
/// instead of forwarding, as tini does): the terminal's, the job-control ones, the timers',
/// the fault signals sent with `kill`.
fn catchable() -> Vec<i32> {
    use nix::libc::{SIGCHLD, SIGKILL, SIGSTOP};
    (1..=31)
        .filter(|n| ![SIGKILL, SIGSTOP, SIGCHLD].contains(n))
        .collect()
}

fn recorder(t: &Test, signals: &[i32]) -> Vec<String> {
    let mut argv = vec![
        "perl".to_string(),
        "-e".into(),
        RECORDER.into(),
        t.path("got").display().to_string(),
        t.path("ready").display().to_string(),
    ];
    argv.extend(signals.iter().map(ToString::to_string));
    argv
}

/// Sends signal number `signo` (real-time ones included) with kill(1).
fn send(pid: u32, signo: i32) {
    let status = crate::support::sandbox::status_of(
        std::process::Command::new("kill")
            .arg("-s")
            .arg(signo.to_string())
            .arg(pid.to_string()),
    )
    .unwrap();
    assert!(status.success(), "kill -s {signo} {pid}");
}

/// Sends each of `signals` to the init and waits until the command recorded it.
#[track_caller]
fn each_reaches_the_command(t: &Test, init: u32, signals: &[i32]) {
    let mut expected = String::new();
    for &n in signals {
        send(init, n);
        expected.push_str(&format!("{n}\n"));
        let mut got = String::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got != expected {
            assert!(
                Instant::now() < end,
                "signal {n} sent to the init did not reach the command: it recorded {got:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
            got = fs::read_to_string(t.path("got")).unwrap_or_default();
        }
    }
}

/// Issue 23: any signal the init did not know (ALRM, PWR, XCPU, …) killed it and left the
/// command running as an orphan. Every catchable one reaches the command now, with
/// `--init` (the command in the init's group) and `--init-group`, and the init is still
/// there after all of them; a real-time signal too.
#[test]
fn init_forwards_every_signal_and_none_orphans_the_command() {
    let mut signals = catchable();
    signals.push(40);
    for mode in ["--init", "--init-group"] {
        let t = Test::new();
        let cmd = recorder(&t, &signals);
        let t = default_signals(t.args([mode, "--init-grace", "1"]).command(cmd));
        let mut run = t.spawn();
        let _cleanup = KillOnPanic(run.id());
        wait_until("the command", Duration::from_secs(10), || {
            t.path("ready").exists()
        });
        let command = recorded_pid(&t, "ready");
        each_reaches_the_command(&t, run.id(), &signals);
        assert!(!run.exited(), "{mode}: the init ended");
        let parent = processes()
            .into_iter()
            .find(|(pid, _, _)| *pid == command)
            .map(|(_, ppid, _)| ppid);
        assert_eq!(parent, Some(run.id()), "{mode}: the command's parent");
        // Killed, the command makes the init die of the same signal.
        signal(command, nix::sys::signal::Signal::SIGKILL);
        run.wait().signal(9).stderr("");
    }
}

#[test]
fn pid1_forwards_every_signal() {
    let mut signals = catchable();
    signals.push(40);
    let t = Test::new();
    let cmd = recorder(&t, &signals);
    let t = in_pid_namespace(t.args(["--init-grace", "1"]).command(cmd));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let init = pid1_of(run.id());
    wait_until("the command", Duration::from_secs(10), || {
        t.path("ready").exists()
    });
    assert_eq!(recorded_pid(&t, "ready"), 2, "the command is PID 2");
    each_reaches_the_command(&t, init, &signals);
    let command = descendants(init)[0].0;
    signal(command, nix::sys::signal::Signal::SIGKILL);
    // As PID 1: 128+N (the kernel does not let PID 1 die of its own signal).
    run.wait().status(137).stderr("");
}

/// Not PID 1, a command killed by signal N makes the init die of N (a shell loop around
/// it stops on Ctrl-C); as PID 1 it exits 128+N. A real-time signal too: nix could not
/// decode that status after reaping, and the init waited forever.
#[test]
fn the_init_dies_of_the_signal_that_killed_the_command() {
    for (script, signo) in [
        ("kill -INT $$", 2),
        ("kill -SEGV $$", 11),
        ("kill -s 40 $$", 40),
    ] {
        default_signals(Test::new().args(["--init"]).command(["sh", "-c", script]))
            .run()
            .signal(signo)
            .stderr("");
        in_pid_namespace(Test::new().command(["sh", "-c", script]))
            .run()
            .status(128 + signo)
            .stderr("");
    }
}

/// A command that leaves a descendant ignoring SIGTERM, and exits 5 on SIGTERM itself.
fn leaving_on_term(t: &Test) -> Vec<String> {
    let dir = t.root().display().to_string();
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "sh -c 'trap \"\" TERM; echo $$ > {dir}/stubborn.tmp; mv {dir}/stubborn.tmp {dir}/stubborn; while :; do sleep 0.05; done' &\n\
             trap 'exit 5' TERM\n\
             while [ ! -s {dir}/stubborn ]; do sleep 0.02; done\n\
             echo $$ > {dir}/ready.tmp; mv {dir}/ready.tmp {dir}/ready\n\
             while :; do sleep 0.05; done"
        ),
    ]
}

/// Issue 23: a second SIGTERM (or SIGINT) while the init waits out the grace period for
/// what the command left goes straight to SIGKILL, instead of being ignored for the
/// rest of the grace (60 s here).
#[test]
fn a_second_term_or_int_during_the_grace_kills_the_leftovers_at_once() {
    use nix::sys::signal::Signal::{SIGINT, SIGTERM};
    for (pid1, second) in [(false, SIGTERM), (false, SIGINT), (true, SIGTERM)] {
        let t = Test::new();
        let cmd = leaving_on_term(&t);
        let t = t.args(["--init-grace", "60"]).command(cmd);
        let t = if pid1 {
            in_pid_namespace(t)
        } else {
            default_signals(t.args(["--init"]))
        };
        let run = t.spawn();
        let _cleanup = KillOnPanic(run.id());
        let init = if pid1 { pid1_of(run.id()) } else { run.id() };
        wait_until("the command", Duration::from_secs(10), || {
            t.path("ready").exists()
        });
        // (Its PID on our side: as PID 1, what it wrote is its PID in the namespace.)
        let command = processes()
            .into_iter()
            .find(|(_, ppid, _)| *ppid == init)
            .map(|(pid, _, _)| pid)
            .expect("the command");
        // The first SIGTERM reaches the command, which exits; the stubborn one stays.
        signal(init, SIGTERM);
        wait_until("the command's exit", Duration::from_secs(10), || {
            !descendants(init).iter().any(|(pid, _)| *pid == command)
        });
        let left: Vec<u32> = descendants(init).into_iter().map(|(pid, _)| pid).collect();
        assert!(!left.is_empty(), "pid1={pid1}: nothing was left");
        let started = Instant::now();
        signal(init, second);
        run.wait().status(5);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "pid1={pid1}, {second:?}: the init took {took:?} of its 60 s grace"
        );
        for pid in left {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "pid1={pid1}: a descendant left ({pid}) is still there"
            );
        }
    }
}

/// Two SIGTERMs while the command still runs (it ends only on the second) count as a
/// second SIGTERM too: the grace is not waited out for what it left.
#[test]
fn two_terms_before_the_command_ends_skip_the_grace() {
    use nix::sys::signal::Signal::SIGTERM;
    let t = Test::new();
    let dir = t.root().display().to_string();
    let t = default_signals(t.args(["--init", "--init-grace", "60"]).command([
        "sh".to_string(),
        "-c".into(),
        format!(
            "sh -c 'trap \"\" TERM; echo $$ > {dir}/stubborn.tmp; mv {dir}/stubborn.tmp {dir}/stubborn; while :; do sleep 0.05; done' &\n\
             n=0\n\
             trap 'n=$((n+1)); echo $n > {dir}/terms; [ $n -ge 2 ] && exit 5' TERM\n\
             while [ ! -s {dir}/stubborn ]; do sleep 0.02; done\n\
             echo > {dir}/ready\n\
             while :; do sleep 0.05; done"
        ),
    ]));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    wait_until("the command", Duration::from_secs(10), || {
        t.path("ready").exists()
    });
    let stubborn = recorded_pid(&t, "stubborn");
    signal(run.id(), SIGTERM);
    wait_until("the first SIGTERM", Duration::from_secs(10), || {
        fs::read_to_string(t.path("terms")).is_ok_and(|s| s == "1\n")
    });
    let started = Instant::now();
    signal(run.id(), SIGTERM);
    run.wait().status(5);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} of a 60 s grace"
    );
    assert!(
        !Path::new(&format!("/proc/{stubborn}")).exists(),
        "the stubborn descendant ({stubborn}) is still there"
    );
}

/// As PID 1 the command leads a process group of its own (as under tini), without
/// `--init-group`.
#[test]
fn pid1_command_leads_its_own_process_group() {
    let t = Test::new();
    let out = t.path("pgrp");
    // Field 5 of /proc/PID/stat is the process group (sh's name holds no space).
    let t = in_pid_namespace(t.command([
        "sh",
        "-c",
        &format!("cut -d' ' -f1,5 /proc/$$/stat > {}", out.display()),
    ]));
    t.run().status(0).stderr("");
    assert_eq!(fs::read_to_string(&out).unwrap(), "2 2\n");
}

// --- on a terminal (tmux) -----------------------------------------------------------------

/// `s` quoted for `/bin/sh`.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A tmux pane running `argv` with every signal at its default action, in `t`'s
/// sandbox, with `t`'s environment, [`PROMPT`] as `PS1`, and `ci` on `PATH`: claude-iso with the
/// test's token and home (`ci --init-group -- cat`).
fn terminal(t: &Test, argv: &[String]) -> tui::Tmux {
    let ci: Vec<String> = std::iter::once(crate::support::sandbox::BIN.to_string())
        .chain(t.argv().iter().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| quote(&a))
        .collect();
    crate::support::sandbox::write_executable(
        &t.path("bin/ci"),
        &format!("#!/bin/sh\nexec {} \"$@\"\n", ci.join(" ")),
    );
    let mut env: Vec<(String, String)> = t
        .env_vars()
        .iter()
        .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
        .collect();
    env.push(("PS1".into(), format!("{PROMPT} ")));
    env.push(("LANG".into(), "C.UTF-8".into()));
    let mut full = vec!["env".to_string(), "--default-signal".into()];
    full.extend(argv.iter().cloned());
    tui::Tmux::start(&t.path("tmux"), &env, &t.work(), &full, 100, 30)
}

/// The shells' prompt (tmux drops the space after it from the screen's text).
const PROMPT: &str = "prompt>";

fn prompts(screen: &str) -> usize {
    screen.matches(PROMPT).count()
}

/// How many lines of `screen` are exactly `text` (cat's copy and the terminal's echo of
/// a typed line; a shell that read it instead says "text: command not found").
fn lines(screen: &str, text: &str) -> usize {
    screen.lines().filter(|l| l.trim_end() == text).count()
}

#[track_caller]
fn wait_screen(tmux: &tui::Tmux, what: &str, done: impl FnMut(&str) -> bool) -> String {
    tmux.wait_for(Duration::from_secs(15), done)
        .unwrap_or_else(|screen| panic!("waiting for {what}: {screen}"))
}

/// Issue 23: with `--init-group` on a terminal, Ctrl-Z stopped the command's group but
/// not the init, so the shell waited forever. Now the init takes the terminal back and
/// stops too; `fg` continues the command with the terminal; Ctrl-C ends it (and the init
/// dies of SIGINT, so the shell reports 130). The same with `--init` (one group).
#[test]
fn ctrl_z_fg_and_ctrl_c_work_from_an_interactive_shell() {
    for mode in ["--init-group", "--init"] {
        let t = Test::new();
        let tmux = terminal(
            &t,
            &[
                "bash".into(),
                "--norc".into(),
                "--noprofile".into(),
                "-i".into(),
            ],
        );
        wait_screen(&tmux, "the prompt", |s| prompts(s) == 1);
        tmux.type_text(&format!("ci {mode} -- cat"));
        tmux.keys(&["Enter"]);
        tmux.type_text("hello");
        tmux.keys(&["Enter"]);
        // The terminal's echo, then cat's copy.
        wait_screen(&tmux, "cat's hello", |s| lines(s, "hello") == 2);
        tmux.keys(&["C-z"]);
        wait_screen(&tmux, "the stopped job", |s| {
            s.contains("Stopped") && prompts(s) == 2
        });
        // The shell has its terminal back.
        tmux.type_text("echo back-$((40+2))");
        tmux.keys(&["Enter"]);
        wait_screen(&tmux, "the shell's answer", |s| s.contains("back-42"));
        tmux.type_text("fg");
        tmux.keys(&["Enter"]);
        wait_screen(&tmux, "fg", |s| {
            s.matches(&format!("ci {mode} -- cat")).count() == 3
        });
        tmux.type_text("again");
        tmux.keys(&["Enter"]);
        wait_screen(&tmux, "cat's again", |s| lines(s, "again") == 2);
        tmux.keys(&["C-c"]);
        wait_screen(&tmux, "the prompt after Ctrl-C", |s| prompts(s) == 4);
        tmux.type_text("echo status=$?");
        tmux.keys(&["Enter"]);
        let screen = wait_screen(&tmux, "the status", |s| s.contains("status="));
        assert!(screen.contains("status=130"), "{mode}: {screen}");
    }
}

/// Issue 23: a shell loop around `claude-iso --init -- …` stops on Ctrl-C, as it does
/// without the init: bash ends a loop on a command that died of SIGINT, and goes on
/// after one that exited 130 (it takes that for a command that caught SIGINT).
#[test]
fn ctrl_c_stops_a_shell_loop_around_the_init() {
    let t = Test::new();
    let tmux = terminal(
        &t,
        &[
            "bash".into(),
            "-c".into(),
            "while :; do ci --init -- sh -c 'echo running; exec sleep 30'; echo next; done".into(),
        ],
    );
    wait_screen(&tmux, "the command", |s| s.contains("running"));
    tmux.keys(&["C-c"]);
    let end = Instant::now() + Duration::from_secs(15);
    let screen = loop {
        let screen = tmux.screen();
        if screen.exited.is_some() {
            break screen;
        }
        assert!(
            Instant::now() < end,
            "the loop goes on after Ctrl-C:\n{}",
            screen.text
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!screen.text.contains("next"), "{}", screen.text);
}

/// Issue 23: as PID 1 (`unshare --pid --fork`), an interactive dash exited 2 ("Cannot set
/// tty process group") where tini gives 0: it found the terminal's foreground group to be
/// one it cannot name from inside the namespace. The command now leads its own group
/// and gets the terminal, as under tini.
#[test]
fn pid1_interactive_dash_has_the_terminal_and_exits_0() {
    let t = Test::new();
    let mut argv = pid_namespace_prefix(&t);
    argv.push(crate::support::sandbox::BIN.to_string());
    argv.extend(t.argv().iter().map(|a| a.to_string_lossy().into_owned()));
    argv.extend(["--".to_string(), "dash".into(), "-i".into()]);
    // The status through a file: tmux may see the terminal close and report the pane
    // dead before it has collected the exit status (seen with tmux 3.3a).
    let status = t.path("status");
    let mut wrapped = vec![
        "sh".to_string(),
        "-c".into(),
        format!("\"$@\"; echo $? > {}", quote(&status.display().to_string())),
        "sh".into(),
    ];
    wrapped.extend(argv);
    let tmux = terminal(&t, &wrapped);
    wait_screen(&tmux, "the prompt", |s| prompts(s) == 1);
    tmux.type_text("echo pid=$$");
    tmux.keys(&["Enter"]);
    wait_screen(&tmux, "dash's PID", |s| s.contains("pid=2"));
    tmux.type_text("exit");
    tmux.keys(&["Enter"]);
    wait_until("dash's exit", Duration::from_secs(15), || {
        fs::read_to_string(&status).is_ok_and(|s| s.ends_with('\n'))
    });
    let screen = tmux.screen().text;
    assert_eq!(fs::read_to_string(&status).unwrap(), "0\n", "{screen}");
}

/// The state letter of `pid` (`T`: stopped), if it exists.
fn state_of(pid: u32) -> Option<char> {
    processes()
        .into_iter()
        .find(|(p, _, _)| *p == pid)
        .map(|(_, _, state)| state)
}

/// As PID 1 the init cannot stop itself (the kernel discards the stop for PID 1): a
/// command stopped by SIGTSTP is continued at once (as the kernel discards SIGTSTP for a
/// group nobody could continue), one stopped by SIGSTOP stays stopped until a SIGCONT
/// for the init, which reaches it.
#[test]
fn pid1_a_stopped_command_is_continued() {
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP, SIGTERM, SIGTSTP};
    let t = Test::new();
    let ready = t.path("ready");
    let t = in_pid_namespace(t.command([
        "sh",
        "-c",
        &format!("echo > {}; exec sleep 60", ready.display()),
    ]));
    let run = t.spawn();
    let _cleanup = KillOnPanic(run.id());
    let init = pid1_of(run.id());
    wait_until("the command", Duration::from_secs(10), || ready.exists());
    let command = processes()
        .into_iter()
        .find(|(_, ppid, _)| *ppid == init)
        .map(|(pid, _, _)| pid)
        .expect("the command");
    signal(init, SIGTSTP);
    // Stopped and continued, or never stopped: either way not stopped for long.
    std::thread::sleep(Duration::from_millis(300));
    wait_until("the command to run", Duration::from_secs(5), || {
        state_of(command) != Some('T')
    });
    assert_ne!(state_of(init), Some('T'), "the init stopped");
    signal(command, SIGSTOP);
    wait_until("the command's stop", Duration::from_secs(5), || {
        state_of(command) == Some('T')
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state_of(command), Some('T'), "SIGSTOP: continued anyway");
    signal(init, SIGCONT);
    wait_until("the command to run", Duration::from_secs(5), || {
        state_of(command) != Some('T')
    });
    signal(init, SIGTERM);
    run.wait().status(143).stderr("");
}

/// claude quits on a second Ctrl-C: with `--init` on a terminal (one process group) the
/// init gets the terminal's copies of both, and they must not cut the grace of what the
/// command leaves (here a descendant that takes a moment to shut down on SIGTERM).
#[test]
fn two_ctrl_c_to_quit_the_command_leave_the_grace() {
    let t = Test::new();
    let dir = t.root().display().to_string();
    let script = format!(
        "sh -c 'trap \"sleep 0.5; echo clean > {dir}/clean; exit 0\" TERM; while :; do sleep 0.05; done' &\n\
         n=0\n\
         trap 'n=$((n+1)); echo ctrl-c-$n; [ $n -ge 2 ] && exit 0' INT\n\
         echo running\n\
         while :; do sleep 0.05; done"
    );
    let tmux = terminal(
        &t,
        &[
            "sh".into(),
            "-c".into(),
            // (A handler, not an ignore, so that the command may trap SIGINT.)
            format!(
                "trap : INT; ci --init -- sh -c {}; echo init-status=$?",
                quote(&script)
            ),
        ],
    );
    wait_screen(&tmux, "the command", |s| s.contains("running"));
    tmux.keys(&["C-c"]);
    wait_screen(&tmux, "the first Ctrl-C", |s| s.contains("ctrl-c-1"));
    tmux.keys(&["C-c"]);
    let screen = wait_screen(&tmux, "the init's end", |s| s.contains("init-status="));
    assert!(screen.contains("init-status=0"), "{screen}");
    assert_eq!(
        fs::read_to_string(t.path("clean")).unwrap_or_default(),
        "clean\n",
        "the descendant was not given its grace:\n{screen}"
    );
}

/// With `--init-group`, a job started in the background (`&`) that reads the terminal
/// stops (SIGTTIN, the init too), and `fg` then gives the command the terminal: the init
/// hands it over whenever it is continued in the foreground, not only when it started
/// there.
#[test]
fn a_background_job_gets_the_terminal_on_fg() {
    let t = Test::new();
    let tmux = terminal(
        &t,
        &[
            "bash".into(),
            "--norc".into(),
            "--noprofile".into(),
            "-i".into(),
        ],
    );
    wait_screen(&tmux, "the prompt", |s| prompts(s) == 1);
    tmux.type_text("ci --init-group -- cat &");
    tmux.keys(&["Enter"]);
    wait_screen(&tmux, "the job", |s| s.contains("[1] "));
    // bash reports a stop with its next prompt.
    wait_until("the init's stop", Duration::from_secs(15), || {
        tmux.keys(&["Enter"]);
        std::thread::sleep(Duration::from_millis(200));
        tmux.screen().text.contains("Stopped")
    });
    tmux.type_text("fg");
    tmux.keys(&["Enter"]);
    wait_screen(&tmux, "fg", |s| s.contains("\nci --init-group -- cat"));
    tmux.type_text("xyz");
    tmux.keys(&["Enter"]);
    let screen = wait_screen(&tmux, "cat's xyz", |s| lines(s, "xyz") == 2);
    let before = prompts(&screen);
    tmux.keys(&["C-c"]);
    wait_screen(&tmux, "the prompt after Ctrl-C", |s| {
        prompts(s) == before + 1
    });
    tmux.type_text("echo status=$?");
    tmux.keys(&["Enter"]);
    let screen = wait_screen(&tmux, "the status", |s| s.contains("status="));
    assert!(screen.contains("status=130"), "{screen}");
}
