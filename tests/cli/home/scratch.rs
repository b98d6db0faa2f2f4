//! The scratch home (issues 3, 9 and 15 §4): the home the command gets is the home that
//! was checked, whatever is swapped meanwhile; only what claude-iso created is
//! chmod'ed; nothing is created before a refusal, nor in a real config directory; modes
//! hold under any umask; execute-only ancestors are walked through and walk errors name
//! the path; a home that cannot be created suggests one of the user's own.
//!
//! Every test passes as root and as an unprivileged user. Where permissions must bind
//! (root ignores them), the root run starts claude-iso as `nobody` through
//! `setpriv` ([`as_runner`]), with the fixtures it must own chowned to it; where a second
//! user is needed and the run is unprivileged, the test says what covers it instead.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::sandbox::{
    NOBODY, Test, as_runner, bind_wrap, chmod, chown, is_root, mkdir, mkdir_mode, mode_of, modes,
    names_with_prefix, own, realpath, tree, write_mode,
};

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

// ---------------------------------------------------------------------------------------
// The command's HOME is the canonical path of the checked directory
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
// Only chmod what we created
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

// ---------------------------------------------------------------------------------------
// Nothing is created before a refusal
// ---------------------------------------------------------------------------------------

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
// Execute-only ancestors; walk errors name the path
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

// ---------------------------------------------------------------------------------------
// Modes whatever the umask; refusals leave nothing behind
// ---------------------------------------------------------------------------------------

/// "Files and directories we create are 0600/0700 whatever the umask" — including a
/// umask that takes the owner's own bits away; and a second launch still works (it
/// must open the lock file the first one created).
#[test]
fn created_modes_hold_under_a_umask_that_removes_owner_bits() {
    let mut wrong = Vec::new();
    for mask in [0o277, 0o777] {
        let t = Test::new().umask(mask).no_home();
        let home = t.path("state/deeper/home");
        let other = mkdir(&t.path("other"));
        let t = t.arg("--home").arg(&home);
        umask_case(&t, mask, &home, &other, &mut wrong);
        // Let the sandbox be removed even where a parent ended up 0000.
        for dir in [t.path("state"), t.path("state/deeper")] {
            if dir.exists() {
                chmod(&dir, 0o700);
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

fn umask_case(t: &Test, mask: u32, home: &Path, other: &Path, wrong: &mut Vec<String>) {
    let first = t.run();
    if first.status.code() != Some(0) {
        wrong.push(format!(
            "umask {mask:03o}: first launch failed: {}",
            first.stderr_text()
        ));
        return;
    }
    t.reset_probe();
    // A second launch needs the lock file again (a new folder to trust).
    let second = t
        .spawn_with(["-C".into(), other.to_owned().into_os_string()])
        .wait();
    if second.status.code() != Some(0) {
        wrong.push(format!(
            "umask {mask:03o}: second launch failed: {}",
            second.stderr_text()
        ));
    }
    for (path, mode) in [
        (t.path("state"), 0o700),
        (t.path("state/deeper"), 0o700),
        (home.to_owned(), 0o700),
        (home.join(".claude.json"), 0o600),
        (home.join(".claude-iso.lock"), 0o600),
    ] {
        let found = mode_of(&path);
        if found != mode {
            wrong.push(format!(
                "{} is {found:04o} under umask {mask:03o}, expected {mode:04o}",
                path.display()
            ));
        }
    }
}

/// A refused home inside the real `~/.claude` (or the caller's `CLAUDE_CONFIG_DIR`)
/// must not leave directories behind in it.
#[test]
fn refusing_a_home_inside_a_real_config_dir_creates_nothing_there() {
    let t = Test::new().no_home();
    let real_claude = mkdir(&t.real_home().join(".claude"));
    let config = mkdir(&t.path("config-dir"));
    let t = t.env("CLAUDE_CONFIG_DIR", &config);
    for dir in [&real_claude, &config] {
        let before = tree(dir);
        let out = t
            .spawn_with(["--home".into(), dir.join("new/scratch").into_os_string()])
            .wait();
        out.status(125)
            .one_line_error("a real claude config directory")
            .probe_not_run();
        let after = tree(dir);
        let added: Vec<&PathBuf> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        assert!(
            added.is_empty() && after == before,
            "refusing changed {}: new entries {added:?}",
            dir.display()
        );
    }
}
