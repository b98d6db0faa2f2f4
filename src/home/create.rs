//! Creating a new scratch home (and its missing parents) by descriptor, after the
//! checks of [`super::checks`].

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstat, mkdirat};

use super::checks::{cannot_create_in, check_ancestors};
use super::{DIR_FLAGS, errno_text, home_err, home_name};
use crate::config::Config;
use crate::error::{Area, Result, SysContext};
use crate::sys::fsutil::{is_type, lstat_at, open_dir_at, open_path_dir};

/// Creates the home and its missing ancestors, each exactly 0700, one `mkdirat` at a
/// time below the deepest existing ancestor (which `checks::check_new_path` checked): a parent
/// swapped for a symlink meanwhile cannot redirect the creation.
pub(super) fn create(config: &Config, path: &Path) -> Result<OwnedFd> {
    let mut missing = Vec::new();
    let mut base = path;
    let fd = loop {
        match open_path_dir(base) {
            Ok(fd) => break fd,
            Err(Errno::ENOENT) => {
                let name = home_name(base)?;
                missing.push(name);
                base = base.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => {
                return Err(home_err(
                    path,
                    format!("cannot open {}: {}", base.display(), errno_text(e)),
                ));
            }
        }
    };
    if missing.is_empty() {
        return open_appeared(path, &fd);
    }
    // The same checks as before, on the descriptor we create under.
    check_ancestors(config, path, &fd)?;
    let mut fd = fd;
    let last = missing.len();
    for (i, name) in missing.into_iter().rev().enumerate() {
        let shown = base.join(name);
        match mkdirat(&fd, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {
                // mkdir's mode went through the umask; ours, so fix it before opening (a
                // umask of 0777 would leave a directory even its owner cannot open).
                fchmodat(
                    &fd,
                    name,
                    Mode::from_bits_truncate(0o700),
                    FchmodatFlags::FollowSymlink,
                )
                .on(Area::Home, &shown, "chmod")?;
            }
            // Made by someone else meanwhile: it is checked like any other parent.
            Err(Errno::EEXIST) => {}
            Err(e) => {
                let parent = shown.parent().unwrap_or(Path::new("/"));
                return Err(cannot_create_in(&shown, parent, e));
            }
        }
        let flags = if i + 1 == last {
            DIR_FLAGS
        } else {
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
        };
        fd = openat(&fd, name, flags, Mode::empty()).on(Area::Home, &shown, "open")?;
        base = path; // only for messages below the first level
    }
    Ok(fd)
}

/// The home appeared meanwhile (a concurrent launch made it), `fd` being its `O_PATH`
/// descriptor: opened again as [`super::inspect`] opens a home.
fn open_appeared(path: &Path, fd: &OwnedFd) -> Result<OwnedFd> {
    // It appeared meanwhile (a concurrent launch made it): open it as `inspect`
    // does, never following a symlink in its last component, and never as the
    // O_PATH descriptor above (which could not be fchmod'ed); `apply` checks it.
    // Its parent is reached from the directory just opened (by `..`, not by the path
    // again, which a swapped symlink could send elsewhere), and the name there must
    // be that same directory, not a symlink.
    let name = home_name(path)?;
    let st = fstat(fd).at(Area::Home, path)?;
    let parent_fd = openat(
        fd,
        "..",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .on(Area::Home, path, "open its parent")?;
    let same = lstat_at(&parent_fd, name).ok().flatten().is_some_and(|l| {
        is_type(&l, SFlag::S_IFDIR) && l.st_dev == st.st_dev && l.st_ino == st.st_ino
    });
    if !same {
        return Err(home_err(
            path,
            "changed while it was being created (a symlink swapped, or another process); run the command again",
        ));
    }
    open_dir_at(&parent_fd, name).on(Area::Home, path, "open")
}
