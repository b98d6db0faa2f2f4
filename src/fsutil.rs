//! Directory-descriptor file operations: everything inside the scratch home goes through
//! `*at` calls with `O_NOFOLLOW`, so nothing can be swapped for a symlink between a check
//! and its use. Every descriptor is close-on-exec.

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags, openat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};

/// `lstat` relative to a directory descriptor; `None` when nothing is there.
///
/// # Errors
/// Any error but `ENOENT`.
pub fn lstat_at(dir: &OwnedFd, name: &str) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens a directory below `dir` without following a symlink in its last component.
///
/// # Errors
/// As `openat(2)`: `ELOOP` for a symlink, `ENOTDIR` for something else.
pub fn open_dir_at(dir: &OwnedFd, name: &str) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// What kind of file a `st_mode` describes, in words.
#[must_use]
pub fn describe_mode(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFLNK => "symlink",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFREG => "regular file",
        _ => "special file",
    }
}

/// Whether `st` is of the file type `kind`.
#[must_use]
pub fn is_type(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a displaced file is kept: renamed, or (when a new file will replace it
/// atomically) hard-linked under the new name first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aside {
    Rename,
    Link,
}

/// Moves or links `name` aside to `<name>.<tag>-<unix time>-<n>` in the same directory,
/// never replacing anything, and makes a regular file 0600. Returns the new name.
/// Nothing is deleted.
///
/// # Errors
/// The rename or link failed (the file is then where it was).
pub fn put_aside(dir: &OwnedFd, name: &str, tag: &str, how: Aside) -> nix::Result<String> {
    let stamp = now_secs();
    for n in 0..10_000u32 {
        let new = format!("{name}.{tag}-{stamp}-{n}");
        let result = match how {
            Aside::Rename => renameat2(dir, name, dir, new.as_str(), RenameFlags::RENAME_NOREPLACE),
            Aside::Link => nix::unistd::linkat(dir, name, dir, new.as_str(), AtFlags::empty()),
        };
        match result {
            Ok(()) => {
                make_private(dir, &new);
                return Ok(new);
            }
            Err(Errno::EEXIST) => {}
            Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EMLINK) if how == Aside::Link => {
                // No hard links here: rename instead (the file is briefly absent).
                return put_aside(dir, name, tag, Aside::Rename);
            }
            Err(Errno::EINVAL) if how == Aside::Rename => {
                // A filesystem without RENAME_NOREPLACE: check, then rename.
                if lstat_at(dir, &new)?.is_none() {
                    nix::fcntl::renameat(dir, name, dir, new.as_str())?;
                    make_private(dir, &new);
                    return Ok(new);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EEXIST)
}

/// chmod 0600 a regular file, never following a symlink (which could point anywhere).
fn make_private(dir: &OwnedFd, name: &str) {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    if let Ok(fd) = openat(dir, name, flags, Mode::empty()) {
        if fstat(&fd).is_ok_and(|st| is_type(&st, SFlag::S_IFREG) && st.st_mode & 0o777 != 0o600) {
            let _ = fchmod(&fd, Mode::from_bits_truncate(0o600));
        }
    }
}

/// Drops `.` components and trailing slashes; `..` is kept (the kernel resolves it
/// against what is really there, which a lexical rewrite cannot know).
#[must_use]
pub fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
