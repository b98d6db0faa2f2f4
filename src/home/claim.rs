//! The launch's claim on its home (a shared `flock` of the directory), which
//! `homes prune` takes exclusively before it removes a home.

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::fstat;

use super::{errno_text, home_err};
use crate::error::{Area, Result, SysContext};
use crate::sys::fsutil::{self, NotLocked};
use crate::sys::proc;

/// A shared `flock(2)` on a home directory, taken by every launch before it changes
/// anything in the home and held until the command is executed (the descriptor is
/// close-on-exec). `homes prune` takes it exclusively, without waiting, before it
/// re-checks a home and moves it aside: a home is never removed while a launch prepares
/// it, and a launch never prepares a home being removed. The directory is locked, not
/// `.claude-iso.lock`, so that whoever holds that file (a seeding launch, or a user's
/// `flock(1)` keeping the home in use) never conflicts with a launch's claim.
pub(crate) type Claim = Flock<OwnedFd>;

/// How long a launch waits for a `homes prune` (or anyone holding the home directory's
/// `flock` exclusively) before giving up.
pub(crate) const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes the launch's [`Claim`] on the opened home `dir`, waiting at most
/// [`CLAIM_TIMEOUT`] for an exclusive holder (`homes prune` checking it), then makes sure
/// `dir` is still the directory at `path`: a prune that held it may have moved it aside
/// to remove it. Nothing has been changed in the home before this.
///
/// # Errors
/// The lock stays held, or the home is no longer at `path` (exit 125, nothing was run).
pub(crate) fn claim(path: &Path, dir: &OwnedFd) -> Result<Claim> {
    let fd = fsutil::reopen_dir(dir).on(Area::Home, path, "open")?;
    let started = Instant::now();
    let claim = match fsutil::flock_polling(fd, FlockArg::LockSharedNonblock, |_| {
        started.elapsed() > CLAIM_TIMEOUT
    }) {
        Ok(claim) => claim,
        Err(NotLocked::GaveUp(fd)) => {
            let holder = proc::lock_holder(&fd)
                .map_or_else(|| "another process".to_owned(), |p| format!("process {p}"));
            return Err(home_err(
                path,
                format!(
                    "{holder} has held this home locked for over {}s (`claude-iso homes prune` removing it?); if it is stopped or stuck, end it",
                    CLAIM_TIMEOUT.as_secs()
                ),
            ));
        }
        Err(NotLocked::Failed(e)) => {
            return Err(home_err(path, format!("cannot lock: {}", errno_text(e))));
        }
    };
    let here = fstat(dir).at(Area::Home, path)?;
    let linked = nix::sys::stat::lstat(path)
        .is_ok_and(|st| st.st_dev == here.st_dev && st.st_ino == here.st_ino);
    if !linked {
        return Err(home_err(
            path,
            "was removed (by `claude-iso homes prune`) or moved while this launch was preparing it; nothing was run: run the command again",
        ));
    }
    Ok(claim)
}
