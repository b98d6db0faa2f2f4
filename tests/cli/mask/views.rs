//! The mask against changes made outside while the command runs, other homes, inherited
//! descriptors and refusals (issue 21, items 2–5 and 7). Every test runs as root and as
//! an unprivileged user (CI runs each test binary both ways).
//!
//! A mount on a real entry goes away, in every namespace, when that entry is removed or
//! renamed outside; the mask therefore covers the directory holding each hidden place
//! with a view of its own (see README: The mask). These tests remove, rename and
//! re-create the hidden places outside during a run and read from inside.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::sandbox::{Entry, TOKEN, Test, mkdir, tree, write_executable, write_mode};

/// What the new files made outside during the run hold: none of it may reach inside.
const NEW: &str = "NEW-MARK-made-outside";
/// What the real files held at launch.
const OLD: &str = "OLD-MARK-at-launch";

/// How a hidden place is replaced outside.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// `rm -rf` it, then create it again with new credentials (a new login).
    Remove,
    /// `mv` it aside, then create it again.
    Rename,
}

/// The hidden places of a sandbox, each with the credential file inside it.
struct Places {
    t: Test,
    /// (directory, credential file name in it).
    dirs: Vec<(PathBuf, &'static str)>,
    claude_json: PathBuf,
}

fn places() -> Places {
    let t = Test::new();
    let home = t.real_home();
    let claude = mkdir(&home.join(".claude"));
    write_mode(&claude.join(".credentials.json"), OLD, 0o600);
    write_mode(
        &home.join(".claude.json"),
        format!("{{\"m\":\"{OLD}\"}}"),
        0o600,
    );
    let config_dir = mkdir(&t.path("elsewhere/config"));
    write_mode(&config_dir.join(".credentials.json"), OLD, 0o600);
    let tokens = mkdir(&home.join(".config/claude-iso"));
    write_mode(
        &tokens.join("token.env"),
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"),
        0o600,
    );
    let profiles = mkdir(&home.join(".config/anthropic"));
    write_mode(&profiles.join("active_config"), OLD, 0o600);
    let t = t.env("CLAUDE_CONFIG_DIR", &config_dir);
    Places {
        t,
        dirs: vec![
            (claude, ".credentials.json"),
            (config_dir, ".credentials.json"),
            (tokens, "token.env"),
            (profiles, "active_config"),
        ],
        claude_json: home.join(".claude.json"),
    }
}

/// The command: waits until the test has changed things outside, then reads each place,
/// lists it and tries to create and write in it; one line each.
fn reader(p: &Places, ready: &Path, go: &Path) -> PathBuf {
    let mut script = format!("#!/bin/sh\n{}", pause(ready, go));
    for (dir, file) in &p.dirs {
        let (d, f) = (dir.display(), dir.join(file).display().to_string());
        script.push_str(&format!(
            "echo \"read {f}: [$(cat '{f}' 2>&1)]\"\n\
             echo \"list {d}: [$(ls -A '{d}' 2>&1)]\"\n\
             (echo planted > '{d}/planted') 2>/dev/null && echo 'create in {d}: ok'\n\
             (echo pwned > '{f}') 2>/dev/null && echo 'write {f}: ok'\n"
        ));
    }
    let j = p.claude_json.display();
    script.push_str(&format!(
        "echo \"read {j}: [$(cat '{j}' 2>&1)]\"\n\
         (echo pwned > '{j}') 2>/dev/null && echo 'write {j}: ok'\n\
         echo END\n"
    ));
    let path = p.t.path("reader.sh");
    write_executable(&path, &script);
    path
}

/// What the test does outside while the command waits.
fn change(dirs: &[(PathBuf, &'static str)], claude_json: &Path, how: Change) {
    for (dir, file) in dirs {
        match how {
            Change::Remove => fs::remove_dir_all(dir).unwrap(),
            Change::Rename => {
                let aside = dir.with_file_name(format!(
                    "{}.aside",
                    dir.file_name().unwrap().to_string_lossy()
                ));
                fs::rename(dir, aside).unwrap();
            }
        }
        mkdir(dir);
        write_mode(&dir.join(file), NEW, 0o600);
    }
    // ~/.claude.json: removed and written anew, or replaced by rename (as claude saves it).
    match how {
        Change::Remove => fs::remove_file(claude_json).unwrap(),
        Change::Rename => {
            let tmp = claude_json.with_extension("json.tmp");
            write_mode(&tmp, format!("{{\"m\":\"{NEW}\"}}"), 0o600);
            fs::rename(&tmp, claude_json).unwrap();
        }
    }
    if !claude_json.exists() {
        write_mode(claude_json, format!("{{\"m\":\"{NEW}\"}}"), 0o600);
    }
}

#[test]
fn removing_renaming_and_recreating_hidden_places_outside_lifts_nothing() {
    for how in [Change::Remove, Change::Rename] {
        let p = places();
        let (ready, go) = (p.t.path("ready"), p.t.path("go"));
        let script = reader(&p, &ready, &go);
        let Places {
            t,
            dirs,
            claude_json,
        } = p;
        let t = t.command(["/bin/sh", script.to_str().unwrap()]);
        let run = t.spawn();
        wait_for(&ready);
        change(&dirs, &claude_json, how);
        fs::write(&go, "").unwrap();
        let out = run.wait();
        out.status(0);
        let said = out.stdout_text();
        assert!(said.contains("END"), "{how:?}: {said}");
        assert!(
            !said.contains(NEW),
            "{how:?}: a new file reached the command:\n{said}"
        );
        for line in said.lines() {
            assert!(!line.ends_with(": ok"), "{how:?}: the command could {line}");
            if line.starts_with("read ") && !line.contains(".claude.json") {
                assert!(!line.contains(OLD), "{how:?}: {line}");
            }
            if let Some(rest) = line.strip_prefix("list ") {
                assert!(
                    rest.ends_with(": []") || rest.contains("No such file"),
                    "{how:?}: a hidden place is not empty: {line}"
                );
            }
        }
        // Nothing the command tried reached the new directories or ~/.claude.json.
        for (dir, file) in &dirs {
            assert!(!dir.join("planted").exists(), "{how:?}: {}", dir.display());
            assert_eq!(fs::read_to_string(dir.join(file)).unwrap(), NEW);
        }
        assert!(fs::read_to_string(&claude_json).unwrap().contains(NEW));
    }
}

/// A login made outside during the run, where `~/.claude` did not exist at launch (only
/// the `~/.claude.json` any claude leaves): the command never sees it.
#[test]
fn a_config_dir_created_outside_during_the_run_stays_out_of_sight() {
    let t = Test::new();
    let home = mkdir(&t.real_home());
    write_mode(&home.join(".claude.json"), "{}", 0o600);
    let claude = home.join(".claude");
    let (ready, go) = (t.path("ready"), t.path("go"));
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n{pause}echo \"[$(cat '{c}/.credentials.json' 2>&1)]\"\n(mkdir '{c}/x') 2>/dev/null && echo MADE\necho END\n",
            pause = pause(&ready, &go),
            c = claude.display()
        ),
    );
    let t = t.command(["/bin/sh", script.to_str().unwrap()]);
    let run = t.spawn();
    wait_for(&ready);
    mkdir(&claude);
    write_mode(&claude.join(".credentials.json"), NEW, 0o600);
    fs::write(&go, "").unwrap();
    let out = run.wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("END") && !said.contains(NEW), "{said}");
    assert!(
        !said.contains("MADE") && !claude.join("x").exists(),
        "{said}"
    );
}

/// The launch's own home is the only one reachable in claude-iso's state directory: not
/// the default home, not another named home (with a credentials file quarantined there),
/// not one made during the run.
#[test]
fn other_homes_are_out_of_reach() {
    let t = Test::new().no_home();
    let state = t.real_home().join(".local/state/claude-iso");
    let other = mkdir(&state.join("homes/other/.claude"));
    write_mode(&other.join(".credentials.json.quarantined-1-0"), OLD, 0o600);
    let default = mkdir(&state.join("home/.claude"));
    write_mode(&default.join("settings.json"), OLD, 0o600);
    for d in [
        &state,
        &state.join("homes"),
        &state.join("homes/other"),
        &state.join("home"),
    ] {
        crate::support::sandbox::chmod(d, 0o700);
    }
    let (ready, go) = (t.path("ready"), t.path("go"));
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n{pause}cat '{o}/.credentials.json.quarantined-1-0' '{d}/settings.json' '{s}/homes/late/.claude/.credentials.json' 2>&1\necho \"homes: [$(ls -A '{s}/homes')]\"\necho \"state: [$(ls -A '{s}')]\"\necho mine > \"$HOME/mine\" && echo OWN-WRITABLE\necho END\n",
            pause = pause(&ready, &go),
            o = other.display(),
            d = default.display(),
            s = state.display()
        ),
    );
    let t = t
        .args(["--name", "mine"])
        .command(["/bin/sh", script.to_str().unwrap()]);
    let run = t.spawn();
    wait_for(&ready);
    let late = mkdir(&state.join("homes/late/.claude"));
    write_mode(&late.join(".credentials.json"), NEW, 0o600);
    fs::write(&go, "").unwrap();
    let out = run.wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(
        said.contains("END") && said.contains("OWN-WRITABLE"),
        "{said}"
    );
    assert!(!said.contains(OLD) && !said.contains(NEW), "{said}");
    assert!(said.contains("homes: [mine]"), "{said}");
    assert!(said.contains("state: [homes]"), "{said}");
    assert_eq!(
        fs::read_to_string(state.join("homes/mine/mine")).unwrap(),
        "mine\n"
    );
}

/// The broker's socket directory stays reachable even where it is claude-iso's state
/// directory too (`XDG_STATE_HOME` = `XDG_RUNTIME_DIR`).
#[test]
fn the_broker_directory_is_never_hidden() {
    let t = Test::new().no_home();
    let run_dir = mkdir(&t.path("run"));
    crate::support::sandbox::chmod(&run_dir, 0o700);
    let broker = mkdir(&run_dir.join("claude-iso"));
    crate::support::sandbox::chmod(&broker, 0o700);
    write_mode(&broker.join("api.sock-stand-in"), "BROKER", 0o600);
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\ncat '{}'\n",
            broker.join("api.sock-stand-in").display()
        ),
    );
    let t = t
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("XDG_STATE_HOME", &run_dir)
        .args(["--name", "b"])
        .command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    assert_eq!(out.stdout_text(), "BROKER");
}

/// `/bin/sh -c SCRIPT claude-iso ARGS…` that opens `target` on descriptor 3 first.
fn with_fd3(target: &Path) -> String {
    format!("exec 3<'{}' && exec \"$0\" \"$@\"", target.display())
}

/// A snapshot of the sandbox without the runs' own output files.
fn snapshot(t: &Test) -> BTreeMap<PathBuf, Entry> {
    let mut s = tree(t.root());
    s.retain(|p, _| !p.starts_with(".runs"));
    s
}

#[track_caller]
fn nothing_changed(t: &Test, before: &BTreeMap<PathBuf, Entry>, what: &str) {
    let after = snapshot(t);
    let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
    let removed: Vec<&PathBuf> = before.keys().filter(|p| !after.contains_key(*p)).collect();
    let changed: Vec<&PathBuf> = before
        .iter()
        .filter(|(p, e)| after.get(*p).is_some_and(|a| a != *e))
        .map(|(p, _)| p)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "[{what}] the refusal changed the sandbox: added {added:?}, removed {removed:?}, changed {changed:?}"
    );
}

/// A directory descriptor left open by the caller (`3</home/me`) reached the real
/// credentials through `/proc/self/fd/3/.claude/…`. One that leads into a hidden place,
/// or to a directory above one, is refused before anything is made; a file elsewhere, a
/// directory below nothing hidden, and a pipe pass.
#[test]
fn an_inherited_descriptor_into_a_hidden_place_is_refused_before_anything_is_made() {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&claude.join(".credentials.json"), OLD, 0o600);
    for target in [
        t.real_home(),
        claude.clone(),
        claude.join(".credentials.json"),
        PathBuf::from("/"),
    ] {
        let run = Test::new()
            .env("HOME", t.real_home())
            .wrap(&with_fd3(&target));
        let before = snapshot(&run);
        let before_real = tree(&t.real_home());
        let out = run.run();
        out.status(125)
            .one_line_error("descriptor 3")
            .probe_not_run();
        let err = out.stderr_text();
        assert!(
            err.contains(&target.display().to_string()) && err.contains("3<&-"),
            "{err}"
        );
        drop(out);
        nothing_changed(&run, &before, &target.display().to_string());
        assert_eq!(tree(&t.real_home()), before_real);
        // --mask off: nothing is hidden, the descriptor passes.
        run.args(["--mask", "off"]).run().success();
    }
    // What systemd passes (LISTEN_FDS=1: descriptor 3) is the unit's choice and passes;
    // the next one is the caller's and is refused.
    let home = t.real_home();
    let run = Test::new()
        .env("HOME", &home)
        .env("LISTEN_FDS", "1")
        .wrap(&with_fd3(&home));
    run.run().success();
    let run = Test::new()
        .env("HOME", &home)
        .env("LISTEN_FDS", "1")
        .wrap(&format!(
            "exec 3</dev/null 4<'{}' && exec \"$0\" \"$@\"",
            home.display()
        ));
    run.run()
        .status(125)
        .one_line_error("descriptor 4")
        .probe_not_run();
    // Harmless descriptors pass: a directory that holds nothing hidden, a file elsewhere,
    // a pipe.
    let run = Test::new().env("HOME", t.real_home());
    let work = run.work();
    for wrap in [
        with_fd3(&work),
        with_fd3(&run.env_file()),
        "exec 3< /dev/null && echo x | exec \"$0\" \"$@\"".to_owned(),
    ] {
        let t = Test::new().env("HOME", t.real_home()).wrap(&wrap);
        t.run().success();
    }
}

/// Every refusal of the mask comes before the first change: a new home is not made, an
/// existing loose one is not tightened, nothing is seeded.
#[test]
fn a_mask_refusal_leaves_everything_as_it_was() {
    struct Row {
        name: &'static str,
        build: fn() -> Test,
        needle: &'static str,
    }
    let rows = [
        Row {
            name: "working directory inside the profile store, new home",
            build: || {
                let t = Test::new().no_home();
                let store = mkdir(&t.real_home().join(".config/anthropic/sub"));
                let home = t.path("new/home");
                t.cwd(store).arg("--home").arg(home)
            },
            needle: "which the mask hides",
        },
        Row {
            name: "working directory inside another claude-iso home, loose home",
            build: || {
                let t = Test::new();
                let other = mkdir(&t.real_home().join(".local/state/claude-iso/homes/x"));
                mkdir(&t.home());
                crate::support::sandbox::chmod(&t.home(), 0o750);
                t.cwd(other)
            },
            needle: "claude-iso's state directory",
        },
        Row {
            name: "an inherited directory descriptor above the real ~/.claude, new home",
            build: || {
                let t = Test::new().no_home();
                mkdir(&t.real_home().join(".claude"));
                let wrap = with_fd3(&t.real_home());
                let home = t.path("new/home");
                t.wrap(&wrap).arg("--home").arg(home)
            },
            needle: "descriptor 3",
        },
        Row {
            name: "--mask on where the kernel refuses namespaces, new home",
            build: || {
                let t = Test::new().no_home();
                mkdir(&t.real_home().join(".claude"));
                let home = t.path("new/home");
                t.wrap(NO_USERNS).args(["--mask", "on", "--home"]).arg(home)
            },
            needle: "max_user_namespaces",
        },
        Row {
            name: "--mask on in a PID namespace with a foreign /proc, new home",
            build: || {
                let t = Test::new().no_home();
                mkdir(&t.real_home().join(".claude"));
                let home = t.path("new/home");
                t.wrap(FOREIGN_PROC)
                    .args(["--mask", "on", "--home"])
                    .arg(home)
            },
            needle: "--mount-proc",
        },
    ];
    for row in rows {
        let t = (row.build)();
        let before = snapshot(&t);
        let out = t.run();
        out.status(125)
            .one_line_error(row.needle)
            .probe_not_run()
            .no_secrets();
        nothing_changed(&t, &before, row.name);
    }
}

/// `/bin/sh -c SCRIPT claude-iso ARGS…` where `user.max_user_namespaces` is 0 (as in
/// tests/cli/mask/mod.rs).
const NO_USERNS: &str = "exec unshare -U -r /bin/sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && ! unshare -U true 2>/dev/null && exec \"$0\" \"$@\"' \"$0\" \"$@\"";

/// In a new PID namespace without its own `/proc` (`unshare --pid --fork`, no
/// `--mount-proc`): `/proc/self` is another process there.
const FOREIGN_PROC: &str = "exec unshare -U -r --pid --fork \"$0\" \"$@\"";

/// The same with `--mount-proc`: the mask works.
const OWN_PROC: &str = "exec unshare -U -r -m --pid --fork --mount-proc \"$0\" \"$@\"";

#[test]
fn a_foreign_proc_is_named_with_its_fix() {
    fn sandbox() -> (Test, PathBuf) {
        let t = Test::new();
        let claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&claude.join(".credentials.json"), OLD, 0o600);
        (t, claude.join(".credentials.json"))
    }
    let (t, _) = sandbox();
    let run = t.wrap(FOREIGN_PROC).args(["--mask", "on"]);
    let out = run.run();
    out.status(125)
        .one_line_error("--mount-proc")
        .probe_not_run();
    let err = out.stderr_text();
    assert!(
        err.contains("PID namespace") && !err.contains("AppArmor"),
        "{err}"
    );
    // auto: one warning naming the cause, and the command runs (not the probe, which
    // reads its own /proc entries: another process's there).
    let (t, _) = sandbox();
    let run = t.wrap(FOREIGN_PROC).command(["/bin/echo", "RAN"]);
    let out = run.run();
    out.status(0).stdout("RAN\n");
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--mount-proc") && err.contains("isolated by environment"),
        "{err}"
    );
    // With --mount-proc the mask works.
    let (t, creds) = sandbox();
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!("#!/bin/sh\ncat '{}' 2>&1; echo END\n", creds.display()),
    );
    let run = t
        .wrap(OWN_PROC)
        .args(["--mask", "on"])
        .command(["/bin/sh", script.to_str().unwrap()]);
    let out = run.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("END") && !said.contains(OLD), "{said}");
}

/// A shell step that says it is ready (creates `ready`) and waits (20 s at most) until
/// `go` exists: something outside acts meanwhile.
fn pause(ready: &Path, go: &Path) -> String {
    format!(
        "touch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n",
        ready.display(),
        go.display()
    )
}

/// Waits (20 s at most) until the command created `ready`.
fn wait_for(ready: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The views cannot be taken down from inside: not by unmounting them (lazily, twice to
/// peel the placeholder too), not by remounting them writable, not from a user namespace
/// of the command's own (root included).
#[test]
fn the_command_cannot_take_a_view_down() {
    let t = Test::new();
    let home = t.real_home();
    let claude = mkdir(&home.join(".claude"));
    write_mode(&claude.join(".credentials.json"), OLD, 0o600);
    let (h, c) = (home.display(), claude.display());
    let script = t.path("umount.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n\
             attempt() {{ \"$@\" >/dev/null 2>&1; echo \"after $*: [$(cat '{c}/.credentials.json' 2>/dev/null)]\"; }}\n\
             attempt umount -l '{c}'\n\
             attempt umount -l '{c}'\n\
             attempt umount -l '{h}'\n\
             attempt mount -o remount,rw '{h}'\n\
             attempt mount -o remount,rw,bind '{h}'\n\
             attempt unshare -U -r -m sh -c \"umount -l '{c}'; umount -l '{c}'; umount -l '{h}'; cat '{c}/.credentials.json'\"\n\
             (touch '{h}/planted') 2>/dev/null && echo 'create: ok'\n\
             echo END\n"
        ),
    );
    let run = t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = run.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("END"), "{said}");
    assert!(!said.contains(OLD), "a view was taken down:\n{said}");
    assert!(!said.contains("create: ok"), "{said}");
    assert_eq!(said.matches(": []").count(), 6, "{said}");
    assert!(!home.join("planted").exists());
}

/// A credentials file found in the scratch home is quarantined by the launch after the
/// plan was made: it reads as empty all the same.
#[test]
fn a_credentials_file_quarantined_by_this_launch_reads_empty() {
    let t = Test::new();
    let claude = mkdir(&t.home().join(".claude"));
    crate::support::sandbox::chmod(&t.home(), 0o700);
    write_mode(&claude.join(".credentials.json"), OLD, 0o600);
    let script = t.path("read.sh");
    write_executable(
        &script,
        "#!/bin/sh\nfor f in \"$HOME\"/.claude/.credentials.json.quarantined-*; do echo \"$f: [$(cat \"$f\" 2>&1)]\"; done\n",
    );
    let run = t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = run.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(
        said.contains(".quarantined-") && said.contains(": []"),
        "{said}"
    );
    assert!(!said.contains(OLD), "{said}");
    // The real file is kept, unchanged, where the quarantine put it.
    let kept: Vec<String> = fs::read_dir(&claude)
        .unwrap()
        .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    assert!(kept.iter().any(|k| k == OLD), "{kept:?}");
}

/// A credentials *symlink* in the scratch home, quarantined by this launch: masked where
/// it leads, and the mask still goes up when that is inside a hidden place (it exited
/// 125 unprivileged, after the home was changed, and ran unmasked as root).
#[test]
fn a_quarantined_credentials_symlink_keeps_the_mask() {
    for into_hidden in [true, false] {
        let t = Test::new();
        let claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&claude.join(".credentials.json"), OLD, 0o600);
        let target = if into_hidden {
            claude.join(".credentials.json")
        } else {
            let f = t.path("elsewhere.json");
            write_mode(&f, NEW, 0o600);
            f
        };
        let scratch = mkdir(&t.home().join(".claude"));
        crate::support::sandbox::chmod(&t.home(), 0o700);
        std::os::unix::fs::symlink(&target, scratch.join(".credentials.json")).unwrap();
        let script = t.path("read.sh");
        write_executable(
            &script,
            "#!/bin/sh\nfor f in \"$HOME\"/.claude/.credentials.json.quarantined-*; do echo \"[$(cat \"$f\" 2>&1)]\"; done\necho END\n",
        );
        let run = t.command(["/bin/sh", script.to_str().unwrap()]);
        let out = run.run();
        out.status(0);
        let said = out.stdout_text();
        let err = out.stderr_text();
        assert!(!err.contains("cannot mask"), "{err}");
        assert!(said.contains("END"), "{said}");
        assert!(!said.contains(OLD) && !said.contains(NEW), "{said}");
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            if into_hidden { OLD } else { NEW }
        );
    }
}

/// The state directory itself renamed away outside, and a new one made with another
/// home in it: the command still sees only its own home (its parent is viewed too).
#[test]
fn renaming_the_state_directory_outside_lifts_nothing() {
    let t = Test::new().no_home();
    let state = t.real_home().join(".local/state/claude-iso");
    mkdir(&state);
    crate::support::sandbox::chmod(&state, 0o700);
    let (ready, go) = (t.path("ready"), t.path("go"));
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n{pause}cat '{s}/homes/late/.claude/.credentials.json' 2>&1\necho \"homes: [$(ls -A '{s}/homes' 2>&1)]\"\necho x > \"$HOME/still-mine\" && echo OWN-WRITABLE\necho END\n",
            pause = pause(&ready, &go),
            s = state.display()
        ),
    );
    let t = t
        .args(["--name", "mine"])
        .command(["/bin/sh", script.to_str().unwrap()]);
    let run = t.spawn();
    wait_for(&ready);
    let moved = state.with_file_name("claude-iso.moved");
    fs::rename(&state, &moved).unwrap();
    let late = mkdir(&state.join("homes/late/.claude"));
    write_mode(&late.join(".credentials.json"), NEW, 0o600);
    fs::write(&go, "").unwrap();
    let out = run.wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(
        said.contains("END") && said.contains("OWN-WRITABLE"),
        "{said}"
    );
    assert!(!said.contains(NEW), "{said}");
    assert!(said.contains("homes: [mine]"), "{said}");
    // The home was written where it now is, under the renamed directory.
    assert!(moved.join("homes/mine/still-mine").is_file());
}

/// A hidden place whose name is not UTF-8 (here the caller's `CLAUDE_CONFIG_DIR`) is
/// matched by its bytes: a descriptor into it is refused like any other.
#[test]
fn a_descriptor_into_a_hidden_place_named_in_bytes_that_are_not_utf8_is_refused() {
    use std::os::unix::ffi::OsStrExt;
    let t = Test::new();
    let dir = t.path(std::ffi::OsStr::from_bytes(b"config-\xff"));
    mkdir(&dir);
    write_mode(&dir.join(".credentials.json"), OLD, 0o600);
    let run = Test::new()
        .env("HOME", t.real_home())
        .env("CLAUDE_CONFIG_DIR", dir.as_os_str())
        .env("HIDDEN_DIR", dir.as_os_str())
        .wrap("exec 3<\"$HIDDEN_DIR\" && exec \"$0\" \"$@\"");
    let out = run.run();
    out.status(125)
        .one_line_error("descriptor 3")
        .probe_not_run();
    assert!(out.stderr_text().contains("3<&-"), "{}", out.stderr_text());
    // --mask off: nothing is hidden, the descriptor passes.
    run.args(["--mask", "off"]).run().success();
}
