//! The two locks a seeding launch holds: our own `flock` of `.claude-iso.lock` (with a
//! bounded wait) and claude's own `mkdir` lock on `.claude.json` (recorded in ours, so a
//! killed launch's is broken at once; a stale or future-dated one is broken too).

#![forbid(unsafe_code)]

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::seed_err;
use crate::error::{Area, Result, SysContext};
use crate::layout::{CLAUDE_LOCK, CLAUDE_LOCK_STAGING, LOCK_TIMEOUT, OWN_LOCK, STALE_AFTER};
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, NotLocked, lstat_at};
use crate::sys::proc;

/// How long a launch waits for another launch's seed before giving up.
pub(crate) const OWN_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Our lock, taken with a bounded wait: a seeder stopped (SIGSTOP) or stuck while holding
/// it cannot block every other launch forever.
/// `Ok(None)`: `done` turned true while waiting (a holder wrote what this launch needs).
pub(super) fn own_lock(
    dir: &OwnedFd,
    home: &Path,
    done: impl Fn() -> bool,
) -> Result<Option<Flock<OwnedFd>>> {
    let shown = home.join(OWN_LOCK);
    // The home was marked when it was prepared; the lock file is ours alone (checked).
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, OWN_LOCK, flags, Mode::empty()).on(Area::File, &shown, "open")?;
    let mut started = std::time::Instant::now();
    // Every holder records claude's lock in the file as it takes and releases it: a
    // change is another holder's progress, and the wait is timed from there (launches
    // queued behind several holders in turn are not waiting for a stuck one).
    let stamp = |fd: &OwnedFd| fstat(fd).ok().map(|st| (st.st_mtime, st.st_mtime_nsec));
    let mut last = stamp(&fd);
    let mut finished = false;
    let locked = fsutil::flock_polling(fd, FlockArg::LockExclusiveNonblock, |fd| {
        if done() {
            finished = true;
            return true;
        }
        let now = stamp(fd);
        if now != last {
            last = now;
            started = std::time::Instant::now();
        }
        started.elapsed() > OWN_LOCK_TIMEOUT
    });
    match locked {
        Ok(lock) => Ok(Some(lock)),
        Err(NotLocked::GaveUp(_)) if finished => Ok(None),
        Err(NotLocked::GaveUp(fd)) => {
            let (who, end) = match proc::lock_holder(&fd) {
                Some(pid) => (format!("process {pid}"), format!(" (kill {pid})")),
                None => ("another process".to_owned(), String::new()),
            };
            Err(seed_err(
                &shown,
                format!(
                    "{who} has held this lock for over {}s while seeding; if it is stopped or stuck, end it{end}",
                    OWN_LOCK_TIMEOUT.as_secs(),
                ),
            ))
        }
        Err(NotLocked::Failed(e)) => Err(seed_err(&shown, format!("cannot lock: {}", e.desc()))),
    }
}

/// claude's own lock on `.claude.json`, taken the way claude takes it (`mkdir`), so
/// neither writes over the other. Removed on drop.
///
/// Which lock directory we made is recorded in our own lock file (inode and change
/// time, to the nanosecond) while we hold it: a launch killed while holding it leaves a
/// lock that the next holder of our lock knows for a dead launch's and breaks at once,
/// instead of waiting for it to go stale while every other launch waits for our lock.
/// (See [`take_claude_lock`] for how the record comes first.)
pub(super) struct ClaudeLock<'a> {
    dir: &'a OwnedFd,
    own: &'a OwnedFd,
}

/// The identity of a lock directory, as recorded in our own lock file: its inode and
/// its mtime to the nanosecond (a rename keeps the mtime; a new directory on a reused
/// inode has another).
fn lock_identity(st: &nix::sys::stat::FileStat) -> String {
    format!("{} {}.{:09}\n", st.st_ino, st.st_mtime, st.st_mtime_nsec)
}

/// Takes claude's lock, its identity on record first. `Err(EEXIST)`: someone holds it.
///
/// Where the filesystem can rename without replacing, the directory is made under a
/// staging name of ours, recorded, then renamed to [`CLAUDE_LOCK`] (never over an
/// existing one: `RENAME_NOREPLACE`), so no moment exists in which it is claude's lock
/// and not on record. Elsewhere it is made in place and recorded right after.
fn take_claude_lock(dir: &OwnedFd, own: &OwnedFd) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(0o700);
    let staging = format!("{CLAUDE_LOCK_STAGING}{}.tmp", std::process::id());
    let _ = unlinkat(dir, staging.as_str(), UnlinkatFlags::RemoveDir);
    mkdirat(dir, staging.as_str(), mode)?;
    if let Some(st) = lstat_at(dir, staging.as_str())? {
        record_identity(own, &lock_identity(&st));
    }
    let renamed = crate::sys::rename_noreplace(dir, staging.as_str(), dir, CLAUDE_LOCK);
    if renamed.is_ok() {
        return Ok(());
    }
    let _ = unlinkat(dir, staging.as_str(), UnlinkatFlags::RemoveDir);
    record_identity(own, "");
    match renamed {
        Err(Errno::EINVAL | Errno::ENOSYS) => {} // not on this filesystem
        other => return other,
    }
    mkdirat(dir, CLAUDE_LOCK, mode)?;
    if let Some(st) = lstat_at(dir, CLAUDE_LOCK)? {
        record_identity(own, &lock_identity(&st));
    }
    Ok(())
}

/// What our own lock file records (empty when no claude lock of ours is outstanding).
fn recorded_identity(own: &OwnedFd) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64];
    let n = own
        .try_clone()
        .map(File::from)
        .and_then(|f| f.read_at(&mut buf, 0))
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Replaces what our own lock file records (best effort: without a record, a lock left
/// by a killed launch is broken when it goes stale, as before).
fn record_identity(own: &OwnedFd, identity: &str) {
    use std::os::unix::fs::FileExt;
    if let Ok(f) = own.try_clone().map(File::from) {
        let _ = f
            .set_len(0)
            .and_then(|()| f.write_all_at(identity.as_bytes(), 0));
    }
}

impl<'a> ClaudeLock<'a> {
    pub(super) fn acquire(
        dir: &'a OwnedFd,
        own: &'a OwnedFd,
        home: &Path,
        report: &Report,
    ) -> Result<Self> {
        let shown = home.join(CLAUDE_LOCK);
        let started = std::time::Instant::now();
        let mut told = false;
        // Read before our own tries overwrite it: the lock the last holder made, if any.
        let left = recorded_identity(own);
        loop {
            match take_claude_lock(dir, own) {
                Ok(()) => return Ok(ClaudeLock { dir, own }),
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(seed_err(&shown, format!("cannot lock: {}", e.desc()))),
            }
            let Some(st) = lstat_at(dir, CLAUDE_LOCK).at(Area::File, &shown)? else {
                continue; // released just now
            };
            if !left.is_empty() && left == lock_identity(&st) {
                // Made by a launch that held our lock before us: it is gone.
                report.note(format!(
                    "breaking claude's lock {} left by a claude-iso launch that ended while seeding",
                    shown.display()
                ));
                match unlinkat(dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => continue,
                    Err(_) => {} // not empty: not ours after all; waited on as claude's
                }
            }
            let mtime = SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(st.st_mtime).unwrap_or(0),
                    u32::try_from(st.st_mtime_nsec).unwrap_or(0),
                );
            let now = SystemTime::now();
            // A live holder refreshes the mtime to "now"; one far in the future was not
            // written by a live holder's clock and would otherwise be waited on forever.
            let from_future = mtime > now + Duration::from_secs(1);
            let age = now.duration_since(mtime).unwrap_or(Duration::ZERO);
            if age > STALE_AFTER || from_future {
                report.note(format!(
                    "breaking claude's stale lock {} ({})",
                    shown.display(),
                    if from_future {
                        "its time stamp is in the future".to_owned()
                    } else {
                        format!("last touched {}s ago", age.as_secs())
                    }
                ));
                match unlinkat(dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(_) => {
                        fsutil::put_aside(dir, CLAUDE_LOCK, "stale", Aside::Rename).map_err(
                            |e| seed_err(&shown, format!("cannot break stale lock: {}", e.desc())),
                        )?;
                    }
                }
                continue;
            }
            if started.elapsed() > LOCK_TIMEOUT {
                return Err(seed_err(
                    &shown,
                    format!(
                        "claude has held this lock for over {}s; if no claude is running, remove the directory",
                        LOCK_TIMEOUT.as_secs()
                    ),
                ));
            }
            if !told {
                report.info(format!("waiting for claude's lock {}", shown.display()));
                told = true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for ClaudeLock<'_> {
    fn drop(&mut self) {
        // Cleared after: a record that outlives its directory (killed in between) names
        // no other lock, since a new directory on the same inode has another change time.
        let _ = unlinkat(self.dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir);
        record_identity(self.own, "");
    }
}
