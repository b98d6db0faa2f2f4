//! The last-launch stamp of a home: the mtime of its `.claude-iso.lock`, which `homes`
//! reports and `homes prune` ages by.

#![forbid(unsafe_code)]

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, futimens};
use nix::sys::time::TimeSpec;

use crate::error::{Area, Result, SysContext};
use crate::home::ScratchHome;
use crate::layout::OWN_LOCK;
use crate::sys::fsutil::lstat_at;

/// How stale the last-launch stamp may get before a launch renews it: a launch into a
/// home stamped less than this ago writes nothing at all (an already seeded home is not
/// touched), and `homes prune` counts in days.
pub(crate) const STAMP_EVERY: i64 = 3600;

/// Records a launch in `home`: `.claude-iso.lock` (made by `home::apply`) gets the
/// current time as its mtime when its mtime is more than [`STAMP_EVERY`] seconds old or
/// in the future. `homes` reports it as the last launch and `homes prune` ages by it.
/// Never follows a symlink.
///
/// # Errors
/// The lock file cannot be opened or touched.
pub(crate) fn stamp_launch(home: &ScratchHome) -> Result<()> {
    let shown = home.path.join(OWN_LOCK);
    let Some(st) = lstat_at(&home.dir, OWN_LOCK).at(Area::Home, &shown)? else {
        return Ok(());
    };
    let age = crate::sys::time::now().saturating_sub(st.st_mtime);
    if (0..STAMP_EVERY).contains(&age) {
        return Ok(());
    }
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(&home.dir, OWN_LOCK, flags, Mode::empty()).on(Area::Home, &shown, "open")?;
    let now = TimeSpec::UTIME_NOW;
    futimens(&fd, &now, &now).on(Area::Home, &shown, "record the launch")
}
