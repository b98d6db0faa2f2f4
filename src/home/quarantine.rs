//! What [`super::apply`] changes inside a checked, claimed home: a credentials file
//! moved aside (quarantined, kept), and our lock file made (a foreign one set aside).

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, fchmod};

use super::{LockFile, errno_text, home_err};
use crate::error::{Area, Result, SysContext};
use crate::layout::{CLAUDE_DIR, CREDENTIALS, OWN_LOCK};
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, open_dir_at};

/// Creates `.claude-iso.lock` (0600, exactly) so the directory is known as a scratch
/// home from its first launch on; a file by that name that is not ours alone is set
/// aside untouched.
pub(super) fn mark(path: &Path, dir: &OwnedFd, lock: LockFile, report: &Report) -> Result<()> {
    let shown = path.join(OWN_LOCK);
    if lock == LockFile::Ours {
        return Ok(());
    }
    if lock == LockFile::Foreign {
        let aside = fsutil::put_aside(dir, OWN_LOCK, "foreign", Aside::Rename).on(
            Area::Home,
            &shown,
            "move it aside",
        )?;
        report.warn(format!(
            "{} was not a private file of yours (a hard link, another owner or not a regular file); kept it as {aside} untouched",
            shown.display()
        ));
    }
    let flags =
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(dir, OWN_LOCK, flags, Mode::from_bits_truncate(0o600)) {
        // Ours, created just now: make it exactly 0600 whatever the umask.
        Ok(fd) => fchmod(&fd, Mode::from_bits_truncate(0o600)).on(Area::Home, &shown, "chmod"),
        // Another launch made it meanwhile.
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(home_err(
            &shown,
            format!("cannot create: {}", errno_text(e)),
        )),
    }
}

/// Renames `.claude/.credentials.json` (file or symlink) aside, keeping it.
pub(super) fn quarantine(path: &Path, dir: &OwnedFd, report: &Report) -> Result<()> {
    let claude = match open_dir_at(dir, CLAUDE_DIR) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(home_err(path, format!("{CLAUDE_DIR}: {}", errno_text(e)))),
    };
    let shown = path.join(CLAUDE_DIR).join(CREDENTIALS);
    let new =
        fsutil::put_aside(&claude, CREDENTIALS, "quarantined", Aside::Rename).map_err(|e| {
            home_err(
                &shown,
                format!("cannot move the credentials file aside: {}", errno_text(e)),
            )
        })?;
    report.warn(format!(
        "moved {} to {new} so claude cannot fall back to it; only the token is used (the file is kept)",
        shown.display()
    ));
    Ok(())
}
