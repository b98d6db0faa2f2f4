//! Directory-descriptor file operations: everything inside the scratch home goes through
//! `*at` calls with `O_NOFOLLOW`, so nothing can be swapped for a symlink between a check
//! and its use. Every descriptor is close-on-exec.

#![forbid(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat};

/// `lstat` relative to a directory descriptor; `None` when nothing is there.
///
/// # Errors
/// Any error but `ENOENT`.
pub(crate) fn lstat_at<P: ?Sized + nix::NixPath>(
    dir: &OwnedFd,
    name: &P,
) -> nix::Result<Option<FileStat>> {
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
pub(crate) fn open_dir_at<P: ?Sized + nix::NixPath>(
    dir: &OwnedFd,
    name: &P,
) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// What kind of file a `st_mode` describes, in words.
#[must_use]
pub(crate) fn describe_mode(mode: u32) -> &'static str {
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
pub(crate) fn is_type(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// How a displaced file is kept: renamed, or (when a new file will replace it
/// atomically) hard-linked under the new name first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aside {
    Rename,
    Link,
}

/// Moves or links `name` aside to `<name>.<tag>-<unix time>-<n>` in the same directory,
/// never replacing anything. Returns the new name. Nothing is deleted, and the file's
/// mode is left as it was unless [`make_private`] finds it is ours alone.
///
/// # Errors
/// The rename or link failed (the file is then where it was).
pub(crate) fn put_aside(dir: &OwnedFd, name: &str, tag: &str, how: Aside) -> nix::Result<String> {
    let stamp = crate::sys::time::now();
    for n in 0..10_000u32 {
        let new = format!("{name}.{tag}-{stamp}-{n}");
        let result = match how {
            Aside::Rename => crate::sys::rename_noreplace(dir, name, dir, new.as_str()),
            Aside::Link => nix::unistd::linkat(dir, name, dir, new.as_str(), AtFlags::empty()),
        };
        match result {
            Ok(()) => {
                // A link aside has two names until the new file replaces the old one.
                make_private(dir, &new, if how == Aside::Link { 2 } else { 1 });
                return Ok(new);
            }
            Err(Errno::EEXIST) => {}
            Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EMLINK) if how == Aside::Link => {
                // No hard links here: rename instead (the file is briefly absent).
                return put_aside(dir, name, tag, Aside::Rename);
            }
            Err(Errno::EINVAL) if how == Aside::Rename => {
                // A filesystem without RENAME_NOREPLACE: check, then rename.
                if lstat_at(dir, new.as_str())?.is_none() {
                    nix::fcntl::renameat(dir, name, dir, new.as_str())?;
                    make_private(dir, &new, 1);
                    return Ok(new);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EEXIST)
}

/// The tag of a name that [`put_aside`] made: `<name>.<tag>-<time>-<n>`.
#[must_use]
pub(crate) fn aside_tag(name: &str) -> Option<&str> {
    let (_, last) = name.rsplit_once('.')?;
    let mut parts = last.splitn(3, '-');
    let tag = parts.next()?;
    let time = parts.next()?;
    let n = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (!tag.is_empty() && tag.bytes().all(|b| b.is_ascii_lowercase()) && digits(time) && digits(n))
        .then_some(tag)
}

/// chmod 0600 a file set aside, only when that cannot change anything reachable
/// elsewhere: a regular file (never following a symlink), owned by us, with no more
/// names than `links` (a hard link to the real credentials file keeps its mode).
fn make_private(dir: &OwnedFd, name: &str, links: u64) {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    if let Ok(fd) = openat(dir, name, flags, Mode::empty()) {
        if fstat(&fd).is_ok_and(|st| {
            is_type(&st, SFlag::S_IFREG)
                && st.st_uid == nix::unistd::geteuid().as_raw()
                && st.st_nlink <= links
                && st.st_mode & 0o777 != 0o600
        }) {
            let _ = fchmod(&fd, Mode::from_bits_truncate(0o600));
        }
    }
}

/// Whether a file opened by us may be chmod'ed or rewritten as ours: a regular file,
/// owned by us, with one name. Anything else is reachable elsewhere (a hard link to a
/// real file) or not ours to change.
#[must_use]
pub(crate) fn is_ours_alone(st: &FileStat) -> bool {
    is_type(st, SFlag::S_IFREG) && st.st_uid == nix::unistd::geteuid().as_raw() && st.st_nlink == 1
}

/// Opens a directory for path operations only (`O_PATH`): needs search permission, not
/// read permission, so an execute-only (0711) ancestor can be walked through.
///
/// # Errors
/// As `open(2)`.
pub(crate) fn open_path_dir(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Calls `visit` with the status of `start` and its depth 0, then of each directory
/// above it up to `/` (depth 1, 2, …), moving by `..` from descriptor to descriptor with
/// `O_PATH` (search permission is enough).
///
/// # Errors
/// What `visit` returns, or `(depth, errno)` of a step that could not be taken.
pub(crate) fn walk_up<E>(
    start: &OwnedFd,
    mut visit: impl FnMut(&FileStat, usize) -> Result<(), E>,
    step_failed: impl Fn(usize, Errno) -> E,
) -> Result<(), E> {
    let mut st = fstat(start).map_err(|e| step_failed(0, e))?;
    visit(&st, 0)?;
    let mut current: Option<OwnedFd> = None;
    for depth in 1..4096 {
        let fd = current.as_ref().map_or(start.as_fd(), AsFd::as_fd);
        let up = openat(
            fd,
            "..",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| step_failed(depth, e))?;
        let up_st = fstat(&up).map_err(|e| step_failed(depth, e))?;
        if up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino {
            break; // reached /
        }
        visit(&up_st, depth)?;
        st = up_st;
        current = Some(up);
    }
    Ok(())
}

/// The path the kernel gives an open descriptor (`/proc/self/fd/N`), unchecked: for
/// messages only, when [`canonical_dir`] cannot confirm it (a component we may not
/// search). `None` for a deleted directory or one outside our root.
#[must_use]
pub(crate) fn fd_path(fd: &OwnedFd) -> Option<PathBuf> {
    let link = nix::fcntl::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str()).ok()?;
    let path = PathBuf::from(link);
    (path.is_absolute() && !path.as_os_str().as_bytes().ends_with(b" (deleted)")).then_some(path)
}

/// The canonical path of an opened directory: what `/proc/self/fd` says it is, checked
/// by opening that path again one component at a time without following any symlink
/// (magic links of `/proc` included) and finding the same directory.
///
/// # Errors
/// `ENOENT` when the directory has no path from our root (deleted, another mount
/// namespace), `ELOOP`/`ENOTDIR` when a component is a symlink, `EXDEV` when the path
/// leads to another directory.
pub(crate) fn canonical_dir(dir: &OwnedFd) -> nix::Result<PathBuf> {
    let link = nix::fcntl::readlink(format!("/proc/self/fd/{}", dir.as_raw_fd()).as_str())?;
    let path = PathBuf::from(link);
    if !path.is_absolute() || path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(Errno::ENOENT);
    }
    let want = fstat(dir)?;
    let mut fd = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for comp in path.components() {
        match comp {
            Component::RootDir => {}
            Component::Normal(name) => {
                fd = openat(
                    &fd,
                    name,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
            }
            _ => return Err(Errno::EINVAL),
        }
    }
    let got = fstat(&fd)?;
    if got.st_dev == want.st_dev && got.st_ino == want.st_ino {
        Ok(path)
    } else {
        Err(Errno::EXDEV)
    }
}

/// Writes `contents` to a new file `<tmp_prefix><pid>.<n>.tmp` in `dir`, created with
/// `mode` (exact, whatever the umask), fsyncs it, (with `keep_old_as`) hard-links the
/// old `name` aside with that tag ([`put_aside`]), renames the new file over `name` and
/// fsyncs the directory. Returns the name the old file is kept under. On failure the
/// temp file is removed and `name` is untouched.
///
/// # Errors
/// Creating, writing, syncing, keeping aside or renaming failed.
pub(crate) fn write_atomic(
    dir: &OwnedFd,
    name: &str,
    tmp_prefix: &str,
    contents: &[u8],
    mode: u32,
    keep_old_as: Option<&str>,
) -> std::io::Result<Option<String>> {
    use std::io::Write;
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let pid = std::process::id();
    let mut attempt = 0u32;
    let (tmp, fd) = loop {
        let tmp = format!("{tmp_prefix}{pid}.{attempt}.tmp");
        // Created 0600 at most (the umask can only remove bits), widened below if asked.
        match openat(
            dir,
            tmp.as_str(),
            flags,
            Mode::from_bits_truncate(mode & 0o600),
        ) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let result = (|| -> std::io::Result<Option<String>> {
        // Ours: created just now with O_EXCL.
        fchmod(&fd, Mode::from_bits_truncate(mode))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(contents)?;
        file.sync_all()?;
        let kept = match keep_old_as {
            Some(tag) => Some(put_aside(dir, name, tag, Aside::Link)?),
            None => None,
        };
        nix::fcntl::renameat(dir, tmp.as_str(), dir, name)?;
        Ok(kept)
    })();
    let kept = match result {
        Ok(kept) => kept,
        Err(e) => {
            let _ =
                nix::unistd::unlinkat(dir, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
    };
    // The rename is durable once the directory is synced.
    let _ = nix::unistd::fsync(dir);
    Ok(kept)
}

/// What one `lstat` (and, for a symlink, one `readlink`) said of a component on the way
/// to a path: kept by [`realpath`] for the rest of the launch.
#[derive(Clone)]
enum Step {
    /// An existing directory that is not a symlink: canonical as it is.
    Dir,
    /// Something else that exists and is not a symlink (a file): the end of a path, never
    /// a step on the way. Kept only while inspecting ([`Inspecting`]).
    Other,
    /// A symlink, and where it points.
    Link(std::ffi::OsString),
    /// `lstat` failed with this error (`ENOENT`, `EACCES`, …). Kept only while
    /// inspecting.
    Failed(i32),
}

thread_local! {
    /// The components [`realpath`] has seen on the way to a path, by their canonical
    /// parent joined with their name. Only directories found to exist above the last
    /// component, except while inspecting ([`Inspecting`]): then every answer.
    /// Keyed by the path's bytes: every key is built the same way (names joined onto
    /// `/`), so equal bytes are equal paths, and a byte hash is much cheaper than
    /// `Path`'s, which walks the components.
    static STEPS: std::cell::RefCell<std::collections::HashMap<std::ffi::OsString, Step>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// How many [`Inspecting`] guards are alive.
    static INSPECTING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Forgets what [`realpath`] learnt: a launch calls it before it changes anything, so
/// what it made or moved is seen as it now is.
pub(crate) fn forget_paths() {
    STEPS.with(|s| s.borrow_mut().clear());
}

/// While it lives, [`realpath`] also remembers the last component of each path and what
/// does not exist (or cannot be searched): an inspection, which changes nothing, asks
/// about the same few places many times (the passwd home, `~/.config`, each `PATH`
/// entry), many of them missing. The last one dropped forgets everything learnt
/// ([`forget_paths`]): what comes after an inspection may change the paths.
#[must_use = "the memory lasts as long as the guard"]
pub(crate) struct Inspecting(());

impl Inspecting {
    pub(crate) fn start() -> Inspecting {
        INSPECTING.with(|i| i.set(i.get() + 1));
        Inspecting(())
    }
}

impl Drop for Inspecting {
    fn drop(&mut self) {
        // The last guard forgets (a nested one leaves the memory to the outer).
        if INSPECTING.with(|i| {
            i.set(i.get().saturating_sub(1));
            i.get() == 0
        }) {
            forget_paths();
        }
    }
}

/// `realpath(3)` (`std::fs::canonicalize`) with the directories on the way remembered:
/// one launch resolves dozens of paths under the same few directories (each settings
/// layer, each place the mask hides, `PATH`), and `realpath` asks the kernel about every
/// component of each again. A directory above the last component is asked once per
/// launch ([`forget_paths`]); the last component, and what is missing, are asked again
/// each time, except while inspecting ([`Inspecting`]).
///
/// # Errors
/// As `realpath`: a component missing (`ENOENT`), not a directory (`ENOTDIR`), too many
/// symlinks (`ELOOP`), or not searchable (`EACCES`).
pub(crate) fn realpath(path: impl AsRef<Path>) -> std::io::Result<PathBuf> {
    use std::ffi::OsString;
    use std::io::Error;
    let path = path.as_ref();
    if path.as_os_str().is_empty() {
        return Err(Error::from_raw_os_error(Errno::ENOENT as i32));
    }
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir()?
    };
    // What is left to walk, the next component last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, path.as_os_str());
    let mut links = 0u32;
    while let Some(name) = pending.pop() {
        // `.` resolves to where we are; it makes what comes before it a directory
        // (`file/.` is ENOTDIR), which `look` asks since `.` is still pending then.
        if name == "." {
            continue;
        }
        if name == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&name);
        let dir = !pending.is_empty();
        // Only directories above the last component are remembered (every answer while
        // inspecting), and nothing under /proc: its links are per process and per moment
        // (`/proc/self`, `/proc/<pid>/fd/N`).
        let inspecting = INSPECTING.with(std::cell::Cell::get) > 0;
        let remembered = (dir || inspecting) && !under_proc(&candidate);
        let known = if remembered {
            STEPS.with(|s| s.borrow().get(candidate.as_os_str()).cloned())
        } else {
            None
        };
        let step = match known {
            Some(step) => step,
            None => {
                let step = look(&candidate)?;
                let keep = match step {
                    Step::Dir | Step::Link(_) => remembered,
                    Step::Other | Step::Failed(_) => remembered && inspecting,
                };
                if keep {
                    STEPS.with(|s| {
                        s.borrow_mut()
                            .insert(candidate.as_os_str().to_owned(), step.clone())
                    });
                }
                step
            }
        };
        match step {
            Step::Failed(errno) => return Err(Error::from_raw_os_error(errno)),
            Step::Other if dir => {
                return Err(Error::from_raw_os_error(Errno::ENOTDIR as i32));
            }
            Step::Dir | Step::Other => out = candidate,
            Step::Link(target) => {
                links += 1;
                if links > 40 {
                    return Err(Error::from_raw_os_error(Errno::ELOOP as i32));
                }
                if Path::new(&target).is_absolute() {
                    out = PathBuf::from("/");
                }
                push_components(&mut pending, &target);
            }
        }
    }
    Ok(out)
}

/// Whether an absolute path built by [`realpath`] is `/proc` or lies under it.
fn under_proc(path: &Path) -> bool {
    is_within(path, Path::new("/proc"))
}

/// `path.starts_with(base)` for canonical paths (absolute, no `.`, `..`, doubled or
/// trailing `/`: what [`realpath`] and the kernel's `readlink` of `/proc/self/fd` give),
/// by their bytes: `Path::starts_with` walks the components of both, and the launch asks
/// it hundreds of times.
#[must_use]
pub(crate) fn is_within(path: &Path, base: &Path) -> bool {
    let (path, base) = (path.as_os_str().as_bytes(), base.as_os_str().as_bytes());
    base == b"/"
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
}

/// Pushes the components of `path` (a path, or a symlink's target) onto `pending` so
/// that the first is popped first: split on `/` as the kernel does, `.` and `..` kept
/// (`Path::components` drops a `.` inside or at the end), and a trailing `/` kept as a
/// `.`: what comes before either must be a directory.
fn push_components(pending: &mut Vec<std::ffi::OsString>, path: &std::ffi::OsStr) {
    let bytes = path.as_bytes();
    let mut parts: Vec<&[u8]> = bytes
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    if bytes.ends_with(b"/") && !parts.is_empty() {
        parts.push(b".");
    }
    for part in parts.into_iter().rev() {
        pending.push(std::ffi::OsStr::from_bytes(part).to_owned());
    }
}

/// One component, as `lstat` (and `readlink`) find it: a directory, a symlink and its
/// target, something else, or the system's error. An error that is not the system's
/// (a name holding a NUL byte) is returned as it is, and never remembered.
fn look(path: &Path) -> std::io::Result<Step> {
    let failed = |e: std::io::Error| match e.raw_os_error() {
        Some(errno) => Ok(Step::Failed(errno)),
        None => Err(e),
    };
    let kind = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type(),
        Err(e) => return failed(e),
    };
    if kind.is_symlink() {
        return match std::fs::read_link(path) {
            Ok(target) => Ok(Step::Link(target.into_os_string())),
            Err(e) => failed(e),
        };
    }
    Ok(if kind.is_dir() {
        Step::Dir
    } else {
        Step::Other
    })
}

/// Drops `.` components and trailing slashes; `..` is kept (the kernel resolves it
/// against what is really there, which a lexical rewrite cannot know).
#[must_use]
pub(crate) fn clean(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The names in a directory, `.` and `..` left out. Reads through a descriptor of its
/// own, so `dir`'s offset is untouched.
///
/// # Errors
/// Opening or reading the directory failed.
pub(crate) fn dir_entries(dir: &OwnedFd) -> nix::Result<Vec<std::ffi::OsString>> {
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(std::ffi::OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(out)
}

/// A descriptor of its own for the directory `dir` itself, to `flock` it: a lock
/// belongs to the open file description, so one taken through `dir` would be released
/// with any other descriptor sharing it.
///
/// # Errors
/// As `openat(2)`.
pub(crate) fn reopen_dir(dir: &OwnedFd) -> nix::Result<OwnedFd> {
    openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// A `flock` taken without waiting (`how` is a `…Nonblock` kind); `None` when someone
/// else holds it.
///
/// # Errors
/// Any other error of `flock(2)`.
pub(crate) fn try_flock(fd: OwnedFd, how: FlockArg) -> nix::Result<Option<Flock<OwnedFd>>> {
    match Flock::lock(fd, how) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e),
    }
}

/// Why [`flock_polling`] returned without the lock.
#[derive(Debug)]
pub(crate) enum NotLocked {
    /// `give_up` said so; the descriptor comes back (to name who holds the lock).
    GaveUp(OwnedFd),
    /// `flock(2)` failed otherwise.
    Failed(Errno),
}

/// A `flock` (`how` is a `…Nonblock` kind) tried every 20 ms while someone else holds it,
/// until it is ours or `give_up` (asked after each refusal) says to stop: a bounded
/// wait, where a blocking `flock` would wait for a stopped holder forever.
///
/// # Errors
/// [`NotLocked`].
pub(crate) fn flock_polling(
    mut fd: OwnedFd,
    how: FlockArg,
    mut give_up: impl FnMut(&OwnedFd) -> bool,
) -> Result<Flock<OwnedFd>, NotLocked> {
    loop {
        match Flock::lock(fd, how) {
            Ok(lock) => return Ok(lock),
            Err((back, Errno::EWOULDBLOCK)) => {
                if give_up(&back) {
                    return Err(NotLocked::GaveUp(back));
                }
                fd = back;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => return Err(NotLocked::Failed(e)),
        }
    }
}

/// Up to `max` bytes of the regular file at `path` (symlinks followed), opened
/// non-blocking and close-on-exec: a FIFO put in its place cannot hang us, and a device
/// is not read.
///
/// # Errors
/// The open or read failed; `InvalidInput` for anything but a regular file.
pub(crate) fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::File::options()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::ErrorKind::InvalidInput.into());
    }
    let mut bytes = Vec::new();
    Read::by_ref(&mut f).take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_within_agrees_with_path_starts_with_on_canonical_paths() {
        let paths = [
            "/",
            "/a",
            "/a/b",
            "/ab",
            "/a/bc",
            "/proc",
            "/procfs",
            "/proc/self",
        ];
        for p in paths {
            for b in paths {
                assert_eq!(
                    is_within(Path::new(p), Path::new(b)),
                    Path::new(p).starts_with(b),
                    "{p} within {b}"
                );
            }
        }
        assert!(under_proc(Path::new("/proc/1/fd")));
        assert!(!under_proc(Path::new("/procfs/x")));
    }

    #[test]
    fn aside_tags() {
        assert_eq!(
            aside_tag(".credentials.json.quarantined-1700000000-0"),
            Some("quarantined")
        );
        assert_eq!(aside_tag(".claude.json.corrupt-1-2"), Some("corrupt"));
        assert_eq!(aside_tag(".claude.json"), None);
        assert_eq!(aside_tag(".claude.json.backup-x-1"), None);
    }

    /// Paths through `/proc/self` are resolved for the process asking, even after a fork
    /// (nothing under `/proc` is remembered).
    #[test]
    fn realpath_through_proc_self_follows_the_process() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(realpath("/proc/self/cwd").unwrap(), cwd);
        let me = realpath("/proc/self").unwrap();
        assert_eq!(me, PathBuf::from(format!("/proc/{}", std::process::id())));
        assert_eq!(realpath("/proc/self/cwd/.").unwrap(), cwd);
        STEPS.with(|s| {
            assert!(
                s.borrow()
                    .keys()
                    .all(|k| !Path::new(k).starts_with("/proc"))
            );
        });
    }

    /// `realpath` answers as `std::fs::canonicalize` does for every path built from a
    /// tree of directories, files and symlinks (absolute, relative, chained, dangling,
    /// looping, through `..`), asked twice (the second time from what it remembered), and
    /// again after the tree changed and [`forget_paths`].
    #[test]
    fn realpath_agrees_with_canonicalize() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let r = |p: &str| root.join(p);
        for d in ["a/b/c", "x/y", "m"] {
            std::fs::create_dir_all(r(d)).unwrap();
        }
        std::fs::write(r("a/b/f"), "").unwrap();
        std::fs::write(r("x/y/g"), "").unwrap();
        symlink(r("x/y"), r("a/abs")).unwrap();
        symlink("b/c", r("a/rel")).unwrap();
        symlink("../a/rel", r("m/chain")).unwrap();
        symlink("nowhere", r("m/dangling")).unwrap();
        symlink("loop2", r("m/loop1")).unwrap();
        symlink("loop1", r("m/loop2")).unwrap();
        symlink("../x/y/g", r("m/file")).unwrap();
        symlink(".", r("m/self")).unwrap();
        symlink("../x/y/g/", r("m/fileslash")).unwrap();
        symlink("../x/y/g/.", r("m/filedot")).unwrap();
        symlink("../a/b/", r("m/dirslash")).unwrap();
        let names = [
            "",
            "a",
            "a/b",
            "a/b/c",
            "a/b/f",
            "a/abs",
            "a/rel",
            "m/chain",
            "m/dangling",
            "m/loop1",
            "m/file",
            "m/self",
            "x/y/g",
            "missing",
            "m/fileslash",
            "m/filedot",
            "m/dirslash",
        ];
        let tails = [
            "", "/..", "/../..", "/c", "/g", "/f", "/./c", "/", "/../x", "/f/..", "/g/x", "/.",
            "/f/.", "/g/./", "//", "/./.",
        ];
        let check = |label: &str| {
            for n in names {
                for t in tails {
                    let p = root.join(format!("{n}{t}"));
                    for round in 0..2 {
                        let want = std::fs::canonicalize(&p).map_err(|e| e.raw_os_error());
                        let got = realpath(&p).map_err(|e| e.raw_os_error());
                        assert_eq!(got, want, "{label} {} (round {round})", p.display());
                    }
                }
            }
        };
        check("first tree");
        // The tree changes: the old answers must not outlive forget_paths().
        std::fs::remove_file(r("a/abs")).unwrap();
        symlink(r("a/b"), r("a/abs")).unwrap();
        std::fs::rename(r("x/y"), r("x/z")).unwrap();
        forget_paths();
        check("changed tree");
        // While inspecting, every answer is remembered (files, symlinks and misses at the
        // end of a path too): the second round is answered from memory, and must agree.
        {
            let _inspecting = Inspecting::start();
            check("inspected tree");
            let remembered = STEPS.with(|s| s.borrow().len());
            assert!(
                STEPS.with(|s| s.borrow().values().any(|v| matches!(v, Step::Failed(_)))),
                "a miss was not remembered"
            );
            assert!(
                STEPS.with(|s| s.borrow().values().any(|v| matches!(v, Step::Other))),
                "a file was not remembered"
            );
            check("inspected tree, again");
            assert_eq!(STEPS.with(|s| s.borrow().len()), remembered, "asked again");
            // A nested guard leaves the memory to the outer one.
            drop(Inspecting::start());
            assert_eq!(STEPS.with(|s| s.borrow().len()), remembered);
        }
        // The guard gone, so is what it remembered: a change after it is seen.
        assert!(STEPS.with(|s| s.borrow().is_empty()));
        std::fs::rename(r("x/z"), r("x/y")).unwrap();
        std::fs::write(r("missing"), "").unwrap();
        check("tree changed after the inspection");
        // Relative paths start at the working directory; the empty path is ENOENT.
        for rel in [".", "./", "./.", "src/..", "src/./lib.rs", "src/lib.rs/."] {
            assert_eq!(
                realpath(Path::new(rel)).map_err(|e| e.raw_os_error()),
                std::fs::canonicalize(rel).map_err(|e| e.raw_os_error()),
                "{rel}"
            );
        }
        assert_eq!(
            realpath("").map_err(|e| e.raw_os_error()),
            std::fs::canonicalize("").map_err(|e| e.raw_os_error())
        );
        // A name with a NUL byte is not the system's error: passed on as it is (not
        // EIO), inspecting or not, and never remembered.
        for inspecting in [false, true] {
            let _guard = inspecting.then(Inspecting::start);
            let nul = root.join("a\0b");
            let (got, want) = (
                realpath(&nul).unwrap_err(),
                std::fs::canonicalize(&nul).unwrap_err(),
            );
            assert_eq!(
                (got.kind(), got.raw_os_error()),
                (want.kind(), want.raw_os_error())
            );
            assert!(STEPS.with(|s| s.borrow().keys().all(|k| !k.as_bytes().contains(&0))));
        }
    }
}
