//! `claude-iso homes prune`: removes the homes not launched for a while, each only
//! after a check made again under its locks (a launch may have started meanwhile), by
//! renaming it aside first and then removing its contents through descriptors.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::busy::{claude_lock_fresh, homes_of_processes};
use super::{
    Found, HomeInfo, MAX_DEPTH, Parent, collect, esc, home_err, human_size, last_launch, now_secs,
    print_lines, utc,
};
use crate::cli::PruneArgs;
use crate::config::Config;
use crate::error::{Area, Error, Outcome, Result, SysContext};
use crate::layout::{CLAUDE_DIR, CLAUDE_LOCK, OWN_LOCK};
use crate::report::redact_secrets;
use crate::sys::fsutil::{aside_tag, is_type, lstat_at, open_dir_at, reopen_dir, try_flock};

/// Mount points (as the kernel lists them for us) at or below `path`.
fn mounts_below(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let real = crate::sys::fsutil::realpath(path).unwrap_or_else(|_| path.to_owned());
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m.starts_with(&real))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape_mount(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

pub(super) fn prune(config: &Config, args: &PruneArgs) -> Result<Outcome> {
    let (parents, homes) = collect(config)?;
    let now = now_secs();
    let limit = i64::try_from(args.older_than.saturating_mul(86400)).unwrap_or(i64::MAX);
    let mut out = String::new();
    let mut failed: Option<Error> = None;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (found, info) in homes {
        let name = info.shown_name().to_owned();
        let when = info.last_launch.unwrap_or(info.dir_mtime);
        let age = now.saturating_sub(when);
        if age < limit {
            continue;
        }
        let last = info.last_launch.map_or_else(
            || "never launched".to_owned(),
            |t| format!("last launch {}", last_launch(t, now)),
        );
        let parent = &parents[found.parent];
        match prune_one(parent, &found, &info, args, limit) {
            Ok(Pruned::Kept(why)) => {
                out.push_str(&format!("kept {name} ({}): {why}\n", esc(&info.path)));
            }
            Ok(Pruned::Removed(quarantined)) => {
                out.push_str(&format!(
                    "{verb} {name} ({}): {last}, {}\n",
                    esc(&info.path),
                    human_size(info.size_bytes)
                ));
                for q in &quarantined {
                    out.push_str(&format!(
                        "  {} quarantined credentials file {} with it (--delete-quarantined)\n",
                        if args.dry_run {
                            "would delete"
                        } else {
                            "deleted"
                        },
                        redact_secrets(q)
                    ));
                }
            }
            Err(e) => {
                out.push_str(&format!("failed {name}: {e}\n"));
                failed.get_or_insert(e);
            }
        }
    }
    if out.is_empty() {
        out = format!(
            "nothing to prune: no home in {} unlaunched for {} days\n",
            esc(&config.state_dir()),
            args.older_than
        );
    }
    print_lines(&out);
    match failed {
        Some(e) => Err(e),
        None => Ok(Outcome::Success),
    }
}

enum Pruned {
    /// Removed (or, dry run, would be), with the quarantined files that went with it.
    Removed(Vec<String>),
    Kept(String),
}

/// Removes one home found old and unused by the listing, unless a check made again
/// under its locks says otherwise: the listing is seconds (a large home: minutes) old by
/// then, and a launch may have started in the home meanwhile.
///
/// Two locks, each taken without waiting (held: the home is in use and kept): the
/// directory's [`crate::home::Claim`], shared by every launch from before it changes
/// anything in the home until its command runs, so no launch is preparing it, and none
/// can start to until the home is moved aside; then `.claude-iso.lock`, held by a
/// seeding launch or by a user's `flock(1)`. Under both, everything that decides is read
/// again: that the directory is still the one at its name, the last-launch stamp (a
/// launch renews it under its claim), the `HOME` of every running process, claude's
/// lock, the quarantined files and mount points. Only then is the home renamed aside; the
/// locks go with it, and a launch that was waiting for the claim finds the home gone and
/// stops (125, nothing run) — the next launch by that name makes a fresh home.
fn prune_one(
    parent: &Parent,
    found: &Found,
    info: &HomeInfo,
    args: &PruneArgs,
    limit: i64,
) -> Result<Pruned> {
    let path = &info.path;
    if let Some(why) = &info.in_use {
        return Ok(Pruned::Kept(format!("in use ({why})")));
    }
    if let Some(why) = kept_for_contents(path, &info.quarantined, args) {
        return Ok(Pruned::Kept(why));
    }
    let dir = crate::sys::fsutil::open_dir_at(&parent.fd, found.entry.as_os_str())
        .at(Area::Home, path)?;
    let claim_fd = reopen_dir(&dir).on(Area::Home, path, "open")?;
    let claim = match try_flock(claim_fd, FlockArg::LockExclusiveNonblock) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(Pruned::Kept("in use (a launch is preparing it)".into())),
        Err(e) => return Err(home_err(path, format!("cannot lock: {}", e.desc()))),
    };
    let st = fstat(&dir).at(Area::Home, path)?;
    // Our lock file, created if missing so there is something to lock: the age of a
    // home never launched is then its directory's, read before the creation.
    let shown_lock = path.join(OWN_LOCK);
    let (lock, created) = match lock_own(&dir, &shown_lock)? {
        Ok(locked) => locked,
        Err(why) => return Ok(Pruned::Kept(why)),
    };
    let stamp = if created {
        st.st_mtime
    } else {
        fstat(&*lock).at(Area::Home, &shown_lock)?.st_mtime
    };
    let quarantined = match recheck(parent, found, &dir, &st, &lock, stamp, limit) {
        Err(why) => return Ok(Pruned::Kept(why)),
        Ok(quarantined) => quarantined,
    };
    if let Some(why) = kept_for_contents(path, &quarantined, args) {
        return Ok(Pruned::Kept(why));
    }
    if args.dry_run {
        return Ok(Pruned::Removed(quarantined));
    }
    remove(parent, found, path, dir, st.st_dev, (lock, claim))?;
    Ok(Pruned::Removed(quarantined))
}

/// Our lock file in the home `dir` (`shown_lock` for messages), opened or created (then
/// `true`), locked exclusively without waiting. `Ok(Err(why))`: the home is kept.
fn lock_own(
    dir: &OwnedFd,
    shown_lock: &Path,
) -> Result<std::result::Result<(Flock<OwnedFd>, bool), String>> {
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let (lock, created) = match openat(dir, OWN_LOCK, flags, Mode::empty()) {
        Ok(fd) => (fd, false),
        Err(Errno::ENOENT) => match openat(
            dir,
            OWN_LOCK,
            flags | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => (fd, true),
            Err(Errno::EEXIST) => {
                return Ok(Err(format!(
                    "launched since it was listed ({OWN_LOCK} appeared)"
                )));
            }
            Err(e) => {
                return Err(home_err(shown_lock, format!("cannot create: {}", e.desc())));
            }
        },
        Err(e) => return Err(home_err(shown_lock, format!("cannot open: {}", e.desc()))),
    };
    let lock = match try_flock(lock, FlockArg::LockExclusiveNonblock) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(Err(format!("in use ({OWN_LOCK} is locked)"))),
        Err(e) => return Err(home_err(shown_lock, format!("cannot lock: {}", e.desc()))),
    };
    Ok(Ok((lock, created)))
}

/// Moves the re-checked home aside, still under both of its locks (`locks`: our lock
/// file's, then the claim; a launch by this name then makes a new home), releases them,
/// and empties and removes it.
fn remove(
    parent: &Parent,
    found: &Found,
    path: &Path,
    dir: OwnedFd,
    dev: u64,
    locks: (Flock<OwnedFd>, Flock<OwnedFd>),
) -> Result<()> {
    // Out of the way first, under both locks (a launch by this name now makes a new
    // home), then emptied.
    let aside = format!(
        ".pruning.{}.{}",
        found.entry.to_string_lossy(),
        std::process::id()
    );
    crate::sys::rename_noreplace(
        &parent.fd,
        found.entry.as_os_str(),
        &parent.fd,
        aside.as_str(),
    )
    .map_err(|e| {
        home_err(
            path,
            format!("cannot move it aside to remove it: {}", e.desc()),
        )
    })?;
    let (lock, claim) = locks;
    drop(lock);
    drop(claim);
    remove_contents(&dir, dev, 0).map_err(|e| {
        home_err(
            path,
            format!(
                "removal stopped ({}); what is left is in {}",
                e.desc(),
                parent.path.join(&aside).display()
            ),
        )
    })?;
    drop(dir);
    unlinkat(&parent.fd, aside.as_str(), UnlinkatFlags::RemoveDir).map_err(|e| {
        home_err(
            path,
            format!(
                "cannot remove {}: {}",
                parent.path.join(&aside).display(),
                e.desc()
            ),
        )
    })?;
    Ok(())
}

/// A reason to keep a home for what it holds: quarantined credentials (unless
/// `--delete-quarantined`) or a mount point.
fn kept_for_contents(path: &Path, quarantined: &[String], args: &PruneArgs) -> Option<String> {
    if !quarantined.is_empty() && !args.delete_quarantined {
        return Some(format!(
            "holds quarantined credentials {} (perhaps a live credential); move it out, or pass --delete-quarantined to delete it with the home",
            redact_secrets(&quarantined.join(", "))
        ));
    }
    mounts_below(path)
        .first()
        .map(|m| format!("{} is a mount point; unmount it first", esc(m)))
}

/// Everything that decides whether a home goes, read again under its locks just before
/// it is moved aside; `Err` is why it stays. Returns the quarantined files in it now.
pub(super) fn recheck(
    parent: &Parent,
    found: &Found,
    dir: &OwnedFd,
    st: &FileStat,
    lock: &OwnedFd,
    stamp: i64,
    limit: i64,
) -> std::result::Result<Vec<String>, String> {
    let same = |a: &FileStat, b: &FileStat| a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    // Still the directory at its name (the rename below goes by name).
    if !lstat_at(&parent.fd, found.entry.as_os_str())
        .ok()
        .flatten()
        .is_some_and(|now| same(&now, st))
    {
        return Err("moved or replaced since it was listed".into());
    }
    // Still the lock file in it (a launch sets a foreign one aside and makes its own).
    let locked = fstat(lock).map_err(|e| e.desc().to_owned())?;
    if !lstat_at(dir, OWN_LOCK)
        .ok()
        .flatten()
        .is_some_and(|now| same(&now, &locked))
    {
        return Err(format!("in use ({OWN_LOCK} was replaced by a launch)"));
    }
    let age = now_secs().saturating_sub(stamp);
    if age < limit {
        return Err(format!(
            "launched since it was listed (last launch {})",
            utc(stamp)
        ));
    }
    let path = &found.path;
    let mut names = vec![path.as_os_str().as_bytes().to_vec()];
    if let Ok(real) = crate::sys::fsutil::realpath(path) {
        names.push(real.into_os_string().into_vec());
    }
    if let Some(why) = homes_of_processes().why(&names) {
        return Err(format!("in use ({why})"));
    }
    if claude_lock_fresh(dir) {
        return Err(format!("in use (claude's {CLAUDE_LOCK} is fresh)"));
    }
    Ok(quarantined_in(dir))
}

/// The quarantined credentials files in a home (`*.quarantined-*`, at its top and in
/// `.claude/`), relative to it.
fn quarantined_in(dir: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut scan = |d: &OwnedFd, prefix: &str| {
        let Ok(mut names) = crate::sys::fsutil::dir_entries(d) else {
            return;
        };
        names.sort();
        out.extend(
            names
                .iter()
                .filter_map(|n| n.to_str())
                .filter(|n| aside_tag(n) == Some("quarantined"))
                .map(|n| format!("{prefix}{n}")),
        );
    };
    scan(dir, "");
    if let Ok(claude) = open_dir_at(dir, CLAUDE_DIR) {
        scan(&claude, &format!("{CLAUDE_DIR}/"));
    }
    out
}

/// Empties `dir`: every entry unlinked, directories emptied first, symlinks removed and
/// never followed, and nothing on another filesystem touched (`EXDEV`).
fn remove_contents(dir: &OwnedFd, dev: u64, depth: usize) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let st = fstat(dir)?;
    if st.st_dev != dev {
        return Err(Errno::EXDEV);
    }
    // Read-only copies (`--share`) live in 0555 directories.
    if st.st_mode & 0o700 != 0o700 {
        fchmod(dir, Mode::from_bits_truncate(0o700))?;
    }
    for name in crate::sys::fsutil::dir_entries(dir)? {
        let Some(st) = crate::sys::fsutil::lstat_at(dir, name.as_os_str())? else {
            continue;
        };
        if is_type(&st, SFlag::S_IFDIR) {
            let sub = crate::sys::fsutil::open_dir_at(dir, name.as_os_str())?;
            remove_contents(&sub, dev, depth + 1)?;
            drop(sub);
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::RemoveDir)?;
        } else {
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    Ok(())
}
