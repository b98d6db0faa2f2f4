//! Writing the scratch home's `.claude.json` (issues 3, 9, 15): a write that fails
//! half-way (a full disk, a write cut short, a read-only home) never loses the previous
//! file; a hard-linked one is replaced, not chmod'ed; a killed or stopped seeder leaves
//! nothing that blocks the next launch, and a future-dated claude lock is broken at
//! once; keys claude wrote with lone surrogates survive the seed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::sandbox::{
    HeldClaudeLock, Output, Test, chmod, is_root, kill, mkdir, mkdir_mode, modes,
    names_with_prefix, sh, status_of, temp_files, wait_for_flock, write_mode,
};

// ---------------------------------------------------------------------------------------
// A failure halfway never loses the previous .claude.json
// ---------------------------------------------------------------------------------------

/// A small tmpfs, unmounted on drop (root only). The sandbox it lives in is removed
/// after the unmount, whichever of the two is dropped first.
struct Tmpfs {
    mountpoint: PathBuf,
    sandbox: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`; `None` when not root or when mounting is not
    /// allowed here (a container without `CAP_SYS_ADMIN`).
    fn mount(t: &Test, dir: &Path, size: &str) -> Option<Tmpfs> {
        if !is_root() {
            return None;
        }
        let status = status_of(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={size},mode=0755"))
                .arg("claude-iso-test")
                .arg(dir)
                .stderr(std::process::Stdio::null()),
        )
        .ok()?;
        if status.success() {
            Some(Tmpfs {
                mountpoint: dir.to_owned(),
                sandbox: t.root().to_owned(),
            })
        } else {
            eprintln!("note: cannot mount a tmpfs here; using the fallback");
            None
        }
    }

    fn remount_read_only(&self) {
        sh(&format!(
            "mount -o remount,ro '{}'",
            self.mountpoint.display()
        ));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = status_of(
            std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint),
        );
        let _ = fs::remove_dir_all(&self.sandbox);
    }
}

/// Runs claude-iso with a file size limit of 4 KiB (`ulimit -f 8`) and SIGXFSZ
/// ignored, so writing the new `.claude.json` fails midway with EFBIG — for root too.
const FILE_SIZE_LIMIT: &str = "trap '' XFSZ && ulimit -f 8 && exec \"$0\" \"$@\"";

/// A home whose `.claude.json` (about 20 KB, other keys included) still needs this
/// folder's trust, so the launch must write.
fn home_needing_a_write(home: &Path) -> Vec<u8> {
    mkdir(home);
    chmod(home, 0o700);
    let original = serde_json::to_vec_pretty(&serde_json::json!({
        "hasCompletedOnboarding": true,
        "numStartups": 9,
        "history": "x".repeat(20_000),
        "projects": {"/elsewhere": {"hasTrustDialogAccepted": true}},
    }))
    .unwrap();
    write_mode(&home.join(".claude.json"), &original, 0o600);
    original
}

/// Exit 125 with one line naming `.claude.json` or its lock, the command never ran,
/// the previous `.claude.json` byte for byte, no temp file, nothing else displaced.
#[track_caller]
fn assert_intact(home: &Path, original: &[u8], out: &Output) {
    out.status_after_writing(125)
        .one_line_error(&home.join(".claude").display().to_string())
        .probe_not_run()
        .no_secrets();
    assert_eq!(
        fs::read(home.join(".claude.json")).unwrap(),
        original,
        "the previous .claude.json must survive byte for byte"
    );
    assert_eq!(temp_files(home), Vec::<String>::new());
    assert_eq!(
        names_with_prefix(home, ".claude.json."),
        Vec::<String>::new(),
        "nothing may be left next to .claude.json"
    );
}

/// Root: a 64 KiB tmpfs filled to the last byte, so writing the new `.claude.json`
/// hits ENOSPC. Not root (or no mount allowed): the file size limit cuts the write
/// short with EFBIG instead — the same point of failure.
#[test]
fn a_full_disk_leaves_the_old_claude_json_intact() {
    let t = Test::new();
    let mnt = mkdir(&t.path("mnt"));
    let home = mnt.join("home");
    let tmpfs = Tmpfs::mount(&t, &mnt, "64k");
    let original = home_needing_a_write(&home);
    let t = t.no_home().arg("--home").arg(&home);
    let t = if tmpfs.is_some() {
        // The lock file needs no data block, but create it before the disk is full.
        write_mode(&home.join(".claude-iso.lock"), "", 0o600);
        let mut filler = fs::File::create(mnt.join("filler")).unwrap();
        let chunk = vec![b'f'; 512];
        while filler.write_all(&chunk).is_ok() {}
        let _ = filler.sync_all();
        t
    } else {
        t.wrap(FILE_SIZE_LIMIT)
    };
    let out = t.run();
    assert_intact(&home, &original, &out);
    out.stderr_contains(if tmpfs.is_some() {
        "No space left on device"
    } else {
        "File too large"
    });
}

/// A write cut short by the file size limit (EFBIG) — root and not root alike.
#[test]
fn a_write_cut_short_leaves_the_old_claude_json_intact() {
    let t = Test::new().wrap(FILE_SIZE_LIMIT);
    let original = home_needing_a_write(&t.home());
    let out = t.run();
    assert_intact(&t.home(), &original, &out);
    out.stderr_contains("File too large");
}

/// Root: the tmpfs remounted read-only (permission bits do not stop root). Not root:
/// chmod 0500. Root where mounting is not allowed: the file size limit.
#[test]
fn a_read_only_home_leaves_the_old_claude_json_intact() {
    let t = Test::new();
    let mnt = mkdir(&t.path("mnt"));
    let home = mnt.join("home");
    let tmpfs = Tmpfs::mount(&t, &mnt, "1m");
    let original = home_needing_a_write(&home);
    let mut t = t.no_home().arg("--home").arg(&home);
    let expected = match &tmpfs {
        Some(fs) => {
            fs.remount_read_only();
            "Read-only file system"
        }
        None if !is_root() => {
            chmod(&home, 0o500);
            "Permission denied"
        }
        None => {
            t = t.wrap(FILE_SIZE_LIMIT);
            "File too large"
        }
    };
    let out = t.run();
    // Before the home is made writable again: the check compares modes too.
    assert_intact(&home, &original, &out);
    if tmpfs.is_none() {
        chmod(&home, 0o700);
    }
    out.stderr_contains(expected);
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
// Leftovers after kills; a stopped seeder; a future-dated lock
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
// Lone surrogates in keys
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
