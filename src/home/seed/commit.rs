//! The group commit of trust (issue 26): each launch that needs a write posts a pending
//! request in the home, and whoever holds the lock merges every live request in one
//! rewrite, then retires them; a dead launch's request is removed unmerged.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::seed_err;
use crate::error::Result;
use crate::layout::{CLAUDE_LOCK_STAGING, PENDING_PREFIX, TEMP_PREFIX};
use crate::sys::fsutil::{self, is_type, lstat_at};

/// This launch's request for a write, posted where the lock holder sees it: a file
/// `<PENDING_PREFIX><pid>.<n>` holding the directories to trust as a JSON array, on
/// which this launch holds a `flock` until it is dropped (then it is removed, if the
/// holder that merged it has not removed it already).
pub(super) struct Pending<'a> {
    dir: &'a OwnedFd,
    pub(super) name: String,
    file: Flock<OwnedFd>,
}

impl<'a> Pending<'a> {
    /// Writes the request to a temp file of its own (created with `O_EXCL`, locked
    /// first), then links it under its final name: a holder never reads a partial one.
    pub(super) fn post(dir: &'a OwnedFd, home: &Path, trust: &[String]) -> Result<Self> {
        use std::io::Write;
        let body = serde_json::to_string(trust).expect("strings serialise");
        let pid = std::process::id();
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fail = |name: &str, what: &str, e: Errno| {
            seed_err(&home.join(name), format!("cannot {what}: {}", e.desc()))
        };
        let mut n = 0u32;
        loop {
            let name = format!("{PENDING_PREFIX}{pid}.{n}");
            let tmp = format!("{name}.tmp");
            n += 1;
            let fd = match openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => fd,
                Err(Errno::EEXIST) if n < 1000 => continue,
                Err(e) => return Err(fail(&tmp, "create", e)),
            };
            let file =
                Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| fail(&tmp, "lock", e))?;
            let written = File::from(
                file.try_clone()
                    .map_err(|e| seed_err(&home.join(&tmp), format!("cannot write: {e}")))?,
            )
            .write_all(body.as_bytes());
            if let Err(e) = written {
                let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(seed_err(&home.join(&tmp), format!("cannot write: {e}")));
            }
            // A link never replaces: a name still taken (a dead launch's file of the
            // same pid) or a temp file a holder removed as a dead launch's (it looked
            // for our lock before we took it) means another try under a new name.
            let linked = nix::unistd::linkat(
                dir,
                tmp.as_str(),
                dir,
                name.as_str(),
                nix::fcntl::AtFlags::empty(),
            );
            let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            match linked {
                Ok(()) => return Ok(Pending { dir, name, file }),
                Err(Errno::EEXIST | Errno::ENOENT) if n < 1000 => {}
                Err(e) => return Err(fail(&name, "create", e)),
            }
        }
    }

    /// Removes the file: the request is done (still locked, so never taken for a dead
    /// launch's).
    pub(super) fn retire(&self) {
        let _ = unlinkat(self.dir, self.name.as_str(), UnlinkatFlags::NoRemoveDir);
    }

    /// A holder merged the request and removed its file: the write it asked for is done.
    pub(super) fn merged(&self) -> bool {
        unlinked(&self.file)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // Removed while still locked, so a holder never takes it for a dead launch's.
        if !unlinked(&self.file) {
            self.retire();
        }
    }
}

/// The file behind `fd` has no name left.
fn unlinked(fd: &Flock<OwnedFd>) -> bool {
    fstat(&**fd).is_ok_and(|st| st.st_nlink == 0)
}

/// The requests other live launches have posted, by file name. Those no launch holds
/// any more (it died before its request was merged; or its temp file, never linked) are
/// removed unmerged: a dead launch runs no command that needs its trust.
pub(super) fn collect_pending(dir: &OwnedFd, own: &str) -> Vec<(String, Vec<String>)> {
    let Ok(names) = fsutil::dir_entries(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for name in names.iter().filter_map(|n| n.to_str()) {
        if !name.starts_with(PENDING_PREFIX) || name == own {
            continue;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
            continue;
        };
        if !fstat(&fd).is_ok_and(|st| is_type(&st, SFlag::S_IFREG)) {
            continue;
        }
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(_dead) => {
                // Removed while we hold its lock: its owner is gone.
                let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
            Err((fd, Errno::EWOULDBLOCK)) if !name.ends_with(".tmp") => {
                let mut text = String::new();
                // A request is a few paths; anything longer is not one of ours.
                let dirs = File::from(fd)
                    .take(MAX_PENDING)
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| serde_json::from_str::<Vec<String>>(&text).ok());
                // Unreadable: its launch finds it unmerged and writes for itself.
                if let Some(dirs) = dirs {
                    found.push((name.to_owned(), dirs));
                }
            }
            Err(_) => {}
        }
    }
    found
}

/// The longest request file read (1 MiB: thousands of paths).
const MAX_PENDING: u64 = 1 << 20;

/// Removes the merged requests' files: their launches see it and go on.
pub(super) fn retire(dir: &OwnedFd, merged: &[(String, Vec<String>)]) {
    for (name, _) in merged {
        let _ = unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir);
    }
}

/// Removes temp files of ours (`.claude.json.claude-iso.<pid>.<n>.tmp`) left by a writer
/// that was killed: every writer holds our lock while its temp file exists, and we hold
/// it now, so any such file is a leftover. Only regular files, never following a link.
pub(super) fn remove_stale_temp_files(dir: &OwnedFd) {
    let Ok(names) = fsutil::dir_entries(dir) else {
        return;
    };
    for name in names.iter().filter_map(|n| n.to_str()) {
        if name.starts_with(TEMP_PREFIX)
            && name.ends_with(".tmp")
            && lstat_at(dir, name).is_ok_and(|st| st.is_some_and(|st| is_type(&st, SFlag::S_IFREG)))
        {
            let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        } else if name.starts_with(CLAUDE_LOCK_STAGING) && name.ends_with(".tmp") {
            // A staging lock directory a killed launch made (empty, or it stays).
            let _ = unlinkat(dir, name, UnlinkatFlags::RemoveDir);
        }
    }
}
