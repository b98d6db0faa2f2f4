//! The credential-free scratch HOME, in two steps: [`inspect`] checks everything and
//! returns a [`HomeState`] without changing anything (what `--dry-run` prints and
//! `doctor` reports), [`apply`] creates, tightens, quarantines and marks it.
//!
//! Everything goes through directory descriptors (`*at` calls, `O_NOFOLLOW`, `O_PATH`
//! for the upward walk), and the command gets the canonical path of the very directory
//! that was checked: no symlink component, no `/proc` magic link.

#![forbid(unsafe_code)]

pub mod scan;
pub mod seed;
pub mod stamp;
pub mod warned;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, fchmod, fchmodat, fstat, mkdirat, stat,
};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS, OWN_LOCK};
use crate::report::Report;
use crate::sys::fsutil::{
    self, Aside, canonical_dir, describe_mode, is_ours_alone, is_type, lstat_at, open_dir_at,
    open_path_dir, walk_up,
};

/// What [`inspect`] found: the home passed every check.
#[derive(Debug)]
pub struct HomeState {
    /// The home as configured (for messages).
    pub path: PathBuf,
    /// `None`: nothing there yet; [`apply`] creates it (and missing parents), mode 0700.
    pub existing: Option<Existing>,
}

impl HomeState {
    /// The path the command gets as `HOME`: the canonical path of the checked directory,
    /// or, for a home still to be created, the canonical path of its deepest existing
    /// ancestor (symlinks and `/proc` magic links resolved now, before `-C` changes the
    /// directory, as the launch resolves them) with the missing names appended.
    #[must_use]
    pub fn canonical(&self) -> PathBuf {
        match &self.existing {
            Some(e) => e.canonical.clone(),
            None => prospective_path(&self.path),
        }
    }
}

/// An existing, checked home.
#[derive(Debug)]
pub struct Existing {
    dir: OwnedFd,
    /// The canonical path of the checked directory: what the command gets as `HOME`.
    pub canonical: PathBuf,
    /// Its permission bits now (tightened to 0700 by [`apply`] when wider).
    pub mode: u32,
    /// `.claude/.credentials.json` is there (file or symlink): [`apply`] moves it aside.
    pub credentials: bool,
    /// The state of our lock file, which also marks the directory as a scratch home.
    pub lock: LockFile,
}

/// `.claude-iso.lock` in the home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFile {
    Missing,
    /// A regular file of ours with one name.
    Ours,
    /// Something else by that name (a hard link, another owner, not a regular file):
    /// set aside untouched and replaced.
    Foreign,
}

/// A prepared scratch home, held open and claimed.
#[derive(Debug)]
pub struct ScratchHome {
    /// The canonical path the command gets as `HOME`.
    pub path: PathBuf,
    /// The home directory itself.
    pub dir: OwnedFd,
    /// The launch's claim on the home: a shared `flock` of the directory itself (see
    /// [`claim`]), held until the exec closes it.
    claim: Claim,
}

/// A shared `flock(2)` on a home directory, taken by every launch before it changes
/// anything in the home and held until the command is executed (the descriptor is
/// close-on-exec). `homes prune` takes it exclusively, without waiting, before it
/// re-checks a home and moves it aside: a home is never removed while a launch prepares
/// it, and a launch never prepares a home being removed. The directory is locked, not
/// `.claude-iso.lock`, so that whoever holds that file (a seeding launch, or a user's
/// `flock(1)` keeping the home in use) never conflicts with a launch's claim.
pub type Claim = Flock<OwnedFd>;

/// How long a launch waits for a `homes prune` (or anyone holding the home directory's
/// `flock` exclusively) before giving up.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);

impl ScratchHome {
    /// Closes the directory and keeps only the claim, for the exec to release.
    #[must_use]
    pub fn into_claim(self) -> Claim {
        drop(self.dir);
        self.claim
    }
}

fn home_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Home {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn errno_text(e: Errno) -> &'static str {
    e.desc()
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn home_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "..")
        .ok_or_else(|| {
            home_err(
                path,
                "must end in a directory name (UTF-8, not '..' or '/')",
            )
        })
}

/// Checks the configured home and says what [`apply`] would do. Changes nothing.
///
/// # Errors
/// Any rule of the scratch home broken; see the README.
pub fn inspect(config: &Config) -> Result<HomeState> {
    let path = &config.home;
    let name = home_name(path)?;
    let parent_path = path.parent().unwrap_or(Path::new("/"));
    let parent = match open_path_dir(parent_path) {
        Ok(fd) => Some(fd),
        Err(Errno::ENOENT) => None,
        Err(e) => return Err(unreachable_err(path, parent_path, e)),
    };
    let dir = match &parent {
        Some(parent) => match open_dir_at(parent, name) {
            Ok(fd) => Some(fd),
            Err(Errno::ENOENT) => None,
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let kind = lstat_at(parent, name)
                    .ok()
                    .flatten()
                    .map_or("special file", |st| describe_mode(st.st_mode));
                return Err(home_err(
                    path,
                    format!(
                        "is a {kind}, not a directory; a scratch home must be a real directory (not a symlink): pass --home with a new path"
                    ),
                ));
            }
            Err(e) => return Err(home_err(path, format!("cannot open: {}", errno_text(e)))),
        },
        None => None,
    };
    let existing = match dir {
        Some(dir) => Some(check_existing(config, path, dir, false)?),
        None => {
            // Refuse before creating anything, so a refused path leaves nothing behind.
            check_new_path(config, path)?;
            None
        }
    };
    Ok(HomeState {
        path: path.clone(),
        existing,
    })
}

/// Every check of an opened home directory.
fn check_existing(config: &Config, path: &Path, dir: OwnedFd, created: bool) -> Result<Existing> {
    let st = fstat(&dir).map_err(|e| home_err(path, errno_text(e)))?;
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(home_err(
            path,
            format!(
                "is owned by uid {}, not by you (uid {me}); use a scratch home of your own (--home)",
                st.st_uid
            ),
        ));
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(home_err(
            path,
            format!(
                "is writable by group or others (mode {mode:04o}); fix with: chmod 700 {}",
                path.display()
            ),
        ));
    }
    let canonical = canonical_dir(&dir).map_err(|e| {
        home_err(
            path,
            format!(
                "cannot be named by a path without symlinks from the root ({}{}); pass --home with the directory's real path",
                fsutil::fd_path(&dir)
                    .map(|p| format!("{}: ", p.display()))
                    .unwrap_or_default(),
                errno_text(e)
            ),
        )
    })?;
    let lock = match lstat_at(&dir, OWN_LOCK).map_err(|e| home_err(path, errno_text(e)))? {
        None => LockFile::Missing,
        Some(st) if is_ours_alone(&st) => LockFile::Ours,
        Some(_) => LockFile::Foreign,
    };
    // A home that holds our lock file passed these checks, passwd entry included, when
    // it was first prepared; the passwd database is then not read again on every launch
    // (`$HOME` and `$CLAUDE_CONFIG_DIR` still are checked).
    let with_passwd = created || lock != LockFile::Ours;
    check_not_real_home(config, path, Some(&st), &canonical, with_passwd)?;
    let claude_dir = lstat_at(&dir, CLAUDE_DIR).map_err(|e| home_err(path, errno_text(e)))?;
    check_not_in_config_dir(
        config,
        path,
        &canonical,
        &dir,
        claude_dir.as_ref(),
        with_passwd,
    )?;
    let credentials = check_inside(path, &dir, claude_dir.as_ref())? && {
        let shown = path.join(CLAUDE_DIR).join(CREDENTIALS);
        let claude = open_dir_at(&dir, CLAUDE_DIR)
            .map_err(|e| home_err(path, format!("{CLAUDE_DIR}: {}", errno_text(e))))?;
        lstat_at(&claude, CREDENTIALS)
            .map_err(|e| home_err(&shown, errno_text(e)))?
            .is_some()
    };
    Ok(Existing {
        dir,
        canonical,
        mode,
        credentials,
        lock,
    })
}

/// Lines of the `--dry-run` plan for a home state.
pub fn plan_lines(state: &HomeState, report: &Report) {
    match &state.existing {
        None => report.plan(format!(
            "home: {} (would be created, mode 0700)",
            state.canonical().display()
        )),
        Some(e) => {
            report.plan(format!("home: {} (exists)", e.canonical.display()));
            if e.mode & 0o077 != 0 {
                report.plan(format!("home: would tighten mode {:04o} to 0700", e.mode));
            }
            if e.credentials {
                report.plan(format!(
                    "quarantine: would move {} aside (kept)",
                    e.canonical.join(CLAUDE_DIR).join(CREDENTIALS).display()
                ));
            }
            if e.lock == LockFile::Foreign {
                report.plan(format!(
                    "home: would set {OWN_LOCK} aside (not a private file of yours) and make a new one"
                ));
            }
        }
    }
}

/// Makes the inspected home real: creates it if needed (then checks it again),
/// tightens its mode, quarantines a credentials file and marks it with our lock file.
///
/// # Errors
/// Creation failed, or the new directory fails a check (a race with another process).
pub fn apply(config: &Config, state: HomeState, report: &Report) -> Result<ScratchHome> {
    let path = &state.path;
    let existing = match state.existing {
        Some(e) => e,
        None => {
            let dir = create(config, path)?;
            report.info(format!(
                "created scratch home {} (mode 0700)",
                path.display()
            ));
            check_existing(config, path, dir, true)?
        }
    };
    let Existing {
        dir,
        canonical,
        mode,
        credentials,
        lock,
    } = existing;
    // Claimed before anything in it changes.
    let claim = claim(&canonical, &dir)?;
    if mode & 0o077 != 0 {
        // The directory is ours (checked): tightening it changes nothing elsewhere.
        fchmod(&dir, Mode::from_bits_truncate(0o700)).map_err(|e| home_err(path, errno_text(e)))?;
        report.note(format!(
            "tightened scratch home {} from mode {mode:04o} to 0700",
            canonical.display()
        ));
    }
    if credentials {
        quarantine(&canonical, &dir, report)?;
    }
    mark(&canonical, &dir, lock, report)?;
    Ok(ScratchHome {
        path: canonical,
        dir,
        claim,
    })
}

/// Takes the launch's [`Claim`] on the opened home `dir`, waiting at most
/// [`CLAIM_TIMEOUT`] for an exclusive holder (`homes prune` checking it), then makes sure
/// `dir` is still the directory at `path`: a prune that held it may have moved it aside
/// to remove it. Nothing has been changed in the home before this.
///
/// # Errors
/// The lock stays held, or the home is no longer at `path` (exit 125, nothing was run).
pub fn claim(path: &Path, dir: &OwnedFd) -> Result<Claim> {
    // A descriptor of its own: the lock belongs to the open file description.
    let mut fd = openat(dir, ".", DIR_FLAGS, Mode::empty())
        .map_err(|e| home_err(path, format!("cannot open: {}", errno_text(e))))?;
    let started = Instant::now();
    let claim = loop {
        match Flock::lock(fd, FlockArg::LockSharedNonblock) {
            Ok(claim) => break claim,
            Err((back, Errno::EWOULDBLOCK)) => {
                fd = back;
                if started.elapsed() > CLAIM_TIMEOUT {
                    let holder = fstat(&fd)
                        .ok()
                        .and_then(|st| fsutil::flock_holder(st.st_dev, st.st_ino))
                        .map_or_else(|| "another process".to_owned(), |p| format!("process {p}"));
                    return Err(home_err(
                        path,
                        format!(
                            "{holder} has held this home locked for over {}s (`claude-iso homes prune` removing it?); if it is stopped or stuck, end it",
                            CLAIM_TIMEOUT.as_secs()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => {
                return Err(home_err(path, format!("cannot lock: {}", errno_text(e))));
            }
        }
    };
    let here = fstat(dir).map_err(|e| home_err(path, errno_text(e)))?;
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

/// Creates `.claude-iso.lock` (0600, exactly) so the directory is known as a scratch
/// home from its first launch on; a file by that name that is not ours alone is set
/// aside untouched.
fn mark(path: &Path, dir: &OwnedFd, lock: LockFile, report: &Report) -> Result<()> {
    let shown = path.join(OWN_LOCK);
    if lock == LockFile::Ours {
        return Ok(());
    }
    if lock == LockFile::Foreign {
        let aside = fsutil::put_aside(dir, OWN_LOCK, "foreign", Aside::Rename)
            .map_err(|e| home_err(&shown, format!("cannot move it aside: {}", errno_text(e))))?;
        report.warn(format!(
            "{} was not a private file of yours (a hard link, another owner or not a regular file); kept it as {aside} untouched",
            shown.display()
        ));
    }
    let flags =
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(dir, OWN_LOCK, flags, Mode::from_bits_truncate(0o600)) {
        // Ours, created just now: make it exactly 0600 whatever the umask.
        Ok(fd) => fchmod(&fd, Mode::from_bits_truncate(0o600))
            .map_err(|e| home_err(&shown, format!("cannot chmod: {}", errno_text(e)))),
        // Another launch made it meanwhile.
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(home_err(
            &shown,
            format!("cannot create: {}", errno_text(e)),
        )),
    }
}

/// Creates the home and its missing ancestors, each exactly 0700, one `mkdirat` at a
/// time below the deepest existing ancestor (which [`check_new_path`] checked): a parent
/// swapped for a symlink meanwhile cannot redirect the creation.
fn create(config: &Config, path: &Path) -> Result<OwnedFd> {
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
        // It appeared meanwhile (a concurrent launch made it): open it as `inspect`
        // does, never following a symlink in its last component, and never as the
        // O_PATH descriptor above (which could not be fchmod'ed); `apply` checks it.
        // Its parent is reached from the directory just opened (by `..`, not by the path
        // again, which a swapped symlink could send elsewhere), and the name there must
        // be that same directory, not a symlink.
        let name = home_name(path)?;
        let st = fstat(&fd).map_err(|e| home_err(path, errno_text(e)))?;
        let parent_fd = openat(
            &fd,
            "..",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| home_err(path, format!("cannot open its parent: {}", errno_text(e))))?;
        let same = lstat_at(&parent_fd, name).ok().flatten().is_some_and(|l| {
            is_type(&l, SFlag::S_IFDIR) && l.st_dev == st.st_dev && l.st_ino == st.st_ino
        });
        if !same {
            return Err(home_err(
                path,
                "changed while it was being created (a symlink swapped, or another process); run the command again",
            ));
        }
        return open_dir_at(&parent_fd, name)
            .map_err(|e| home_err(path, format!("cannot open: {}", errno_text(e))));
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
                .map_err(|e| home_err(&shown, format!("cannot chmod: {}", errno_text(e))))?;
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
        fd = openat(&fd, name, flags, Mode::empty())
            .map_err(|e| home_err(&shown, format!("cannot open: {}", errno_text(e))))?;
        base = path; // only for messages below the first level
    }
    Ok(fd)
}

/// `owner uid N, mode 0700` of a directory, for messages.
fn owner_and_mode(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).map_or_else(
        |_| "owner unknown".to_owned(),
        |m| format!("owner uid {}, mode {:04o}", m.uid(), m.mode() & 0o7777),
    )
}

/// `dir`, on the way to the home `path`, could not be opened (`e`). For `EACCES`, the
/// directory that refused is named — the deepest ancestor that can be looked at but
/// does not let this user through — with its owner, its mode and the fix.
fn unreachable_err(path: &Path, dir: &Path, e: Errno) -> Error {
    if e == Errno::EACCES {
        let chain: Vec<&Path> = dir.ancestors().collect();
        let blocker = chain
            .iter()
            .rev()
            .find(|a| matches!(std::fs::metadata(a), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied))
            .and_then(|denied| denied.parent());
        if let Some(blocker) = blocker {
            let me = nix::unistd::geteuid().as_raw();
            return home_err(
                path,
                format!(
                    "cannot be reached: {} ({}) does not let uid {me} through ({}); choose a home outside it (--home DIR), or have its owner grant search permission (chmod o+x)",
                    blocker.display(),
                    owner_and_mode(blocker),
                    errno_text(e)
                ),
            );
        }
    }
    home_err(
        path,
        format!("cannot open {}: {}", dir.display(), errno_text(e)),
    )
}

/// The home `path` cannot be made in `parent` (`e`): the parent and the fix.
fn cannot_create_in(path: &Path, parent: &Path, e: Errno) -> Error {
    let me = nix::unistd::geteuid().as_raw();
    let why = match e {
        Errno::EACCES | Errno::EPERM => format!(
            "{} ({}) is not writable by uid {me} ({})",
            parent.display(),
            owner_and_mode(parent),
            errno_text(e)
        ),
        Errno::EROFS => format!("{} is on a read-only file system", parent.display()),
        _ => format!("{}: {}", parent.display(), errno_text(e)),
    };
    // A directory of the system's (root's, or on a read-only file system) is not one to
    // open up for a scratch home: only another user's directory is worth asking about.
    let owner = std::fs::metadata(parent)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .ok();
    let ask_owner = match owner {
        Some(uid) if uid != 0 && uid != me && matches!(e, Errno::EACCES | Errno::EPERM) => {
            format!(", or ask its owner (uid {uid}) to let you write there")
        }
        _ => String::new(),
    };
    home_err(
        path,
        format!(
            "cannot create: {why}; choose a home in a directory of yours: --home DIR, --name NAME with XDG_STATE_HOME=DIR, or XDG_STATE_HOME=DIR for the default home{ask_owner}"
        ),
    )
}

/// The path a not-yet-existing home will have: its deepest existing ancestor resolved,
/// the rest (which cannot be symlinks, as it does not exist) appended.
fn prospective_path(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return path.to_owned(),
        }
    }
}

/// Checks for a home about to be created: its deepest existing ancestor is not in a real
/// config directory (by device and inode, so a bind mount of one is caught) and lets no
/// one else swap it; the new path is not inside a real config directory that does not
/// exist yet, nor a real home or an ancestor of one.
fn check_new_path(config: &Config, path: &Path) -> Result<()> {
    let new = prospective_path(path);
    let mut existing = path;
    let fd = loop {
        match open_path_dir(existing) {
            Ok(fd) => break fd,
            Err(Errno::ENOENT) => existing = existing.parent().unwrap_or(Path::new("/")),
            Err(e) => return Err(unreachable_err(path, existing, e)),
        }
    };
    check_ancestors(config, path, &fd)?;
    // The launch makes the home below `existing`: say now, naming it, when it cannot.
    // Asked of the directory opened above (through its descriptor: a symlink on the way
    // swapped meanwhile changes nothing); only a refusal is reported here, anything
    // else is left to the creation, which reports it.
    let opened = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ));
    if let Err(e @ (Errno::EACCES | Errno::EPERM | Errno::EROFS)) = nix::unistd::access(
        &opened,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    ) {
        return Err(cannot_create_in(path, existing, e));
    }
    for (dir, what) in guarded_dirs(config, true) {
        // Resolved as far as it exists (a symlinked $HOME without a ~/.claude yet).
        let dir = prospective_path(&dir);
        if new.starts_with(&dir) {
            return Err(home_err(
                path,
                format!(
                    "is inside {}, {what}; choose a scratch home outside it",
                    dir.display()
                ),
            ));
        }
    }
    check_not_real_home(config, path, None, &new, true)
}

/// From an existing ancestor of a home to be created, upward: no real config directory,
/// and no directory another user could use to swap the home.
fn check_ancestors(config: &Config, path: &Path, fd: &OwnedFd) -> Result<()> {
    // For messages only: the checks below go by descriptor.
    let canonical = canonical_dir(fd).ok().or_else(|| fsutil::fd_path(fd));
    let targets = config_dir_ids(config, true);
    walk_up(
        fd,
        |st, depth| {
            let at = canonical.as_deref().and_then(|c| c.ancestors().nth(depth));
            if let Some((p, what)) = matching(&targets, st) {
                return Err(home_err(
                    path,
                    format!(
                        "would be inside {}, {what}{}; choose a scratch home outside it",
                        p.display(),
                        at.filter(|a| *a != p)
                            .map(|a| format!(" (as {})", a.display()))
                            .unwrap_or_default()
                    ),
                ));
            }
            check_parent(path, st, at)
        },
        |depth, e| walk_err(path, canonical.as_deref(), depth, e),
    )
}

fn walk_err(path: &Path, canonical: Option<&Path>, depth: usize, e: Errno) -> Error {
    let name = |d: usize| canonical.and_then(|c| c.ancestors().nth(d));
    // Step `depth` opens `..` of the directory one level down: name both.
    let at = match (name(depth), depth.checked_sub(1).and_then(name)) {
        (Some(at), Some(below)) => {
            format!("{}, the parent of {}", at.display(), below.display())
        }
        (Some(at), None) => at.display().to_string(),
        _ => format!("the directory {depth} levels up"),
    };
    home_err(
        path,
        format!(
            "cannot check {at} (walking up to check who can change it): {}",
            errno_text(e)
        ),
    )
}

/// The home must not be a real home (`$HOME`, passwd) nor an ancestor of one.
fn check_not_real_home(
    config: &Config,
    path: &Path,
    st: Option<&FileStat>,
    resolved: &Path,
    with_passwd: bool,
) -> Result<()> {
    let mut homes = Vec::new();
    for real in config.real_homes(with_passwd) {
        // Both the path as given and where it leads: a symlinked $HOME has the
        // ancestors of its target too.
        let resolved = prospective_path(&real);
        if resolved != real && !homes.contains(&resolved) {
            homes.push(resolved);
        }
        if st.is_some() && !homes.contains(&real) {
            homes.push(real);
        }
    }
    for real in homes {
        for (depth, ancestor) in real.ancestors().enumerate() {
            let same = match st {
                Some(st) => {
                    stat(ancestor).is_ok_and(|a| a.st_dev == st.st_dev && a.st_ino == st.st_ino)
                }
                // Not created yet: compare resolved paths.
                None => ancestor == resolved,
            };
            if same {
                let what = if depth == 0 {
                    "is your real home".to_owned()
                } else {
                    format!("is an ancestor of your real home {}", real.display())
                };
                return Err(home_err(
                    path,
                    format!(
                        "{what}; claude-iso needs a separate scratch directory (the default is ~/.local/state/claude-iso/home)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// One directory above the home must be yours or root's and not writable by others
/// unless sticky — ssh's StrictModes rule: whoever can rename entries in a parent could
/// swap the checked home for their own before claude starts.
fn check_parent(path: &Path, st: &FileStat, at: Option<&Path>) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let which = at.map_or_else(
        || "a parent directory".to_owned(),
        |p| format!("its parent directory {}", p.display()),
    );
    if st.st_uid != me
        && st.st_uid != 0
        && !(at.is_some_and(is_system_dir) && unmapped_in_user_namespace(st.st_uid))
    {
        return Err(home_err(
            path,
            format!(
                "{which} is owned by uid {} (not you or root), who could swap the home; choose a scratch home under directories you own",
                st.st_uid
            ),
        ));
    }
    let sticky = st.st_mode & nix::libc::S_ISVTX != 0;
    if st.st_mode & 0o022 != 0 && !sticky {
        return Err(home_err(
            path,
            format!(
                "{which} is writable by group or others (mode {:04o}, not sticky), so the home could be swapped; fix its mode (chmod go-w) or choose another home",
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Device and inode of each existing real config directory.
/// Where a scratch home must never be, with what each is: the real config dirs, and
/// the credential stores the mask hides whole (a home there could not be masked from).
fn guarded_dirs(config: &Config, with_passwd: bool) -> Vec<(PathBuf, &'static str)> {
    let (profiles, tokens) = config.credential_stores();
    config
        .real_config_dirs(with_passwd)
        .into_iter()
        .map(|p| (p, "a real claude config directory"))
        .chain(
            profiles
                .into_iter()
                .map(|p| (p, "an Anthropic profile store (credentials)")),
        )
        .chain(
            tokens
                .into_iter()
                .map(|p| (p, "a directory of claude-iso's token files")),
        )
        .collect()
}

type Guarded = (PathBuf, &'static str, FileStat);

fn config_dir_ids(config: &Config, with_passwd: bool) -> Vec<Guarded> {
    guarded_dirs(config, with_passwd)
        .into_iter()
        .filter_map(|(p, what)| stat(&p).ok().map(|st| (p, what, st)))
        .collect()
}

fn matching<'a>(targets: &'a [Guarded], st: &FileStat) -> Option<(&'a Path, &'static str)> {
    targets
        .iter()
        .find(|(_, _, t)| t.st_dev == st.st_dev && t.st_ino == st.st_ino)
        .map(|(p, what, _)| (p.as_path(), *what))
}

/// The home must not be, or lie inside, a real `~/.claude` or the caller's
/// `CLAUDE_CONFIG_DIR`, and no directory above it may let another user swap it
/// ([`check_parent`]): one walk up from the opened directory by `..`.
fn check_not_in_config_dir(
    config: &Config,
    path: &Path,
    canonical: &Path,
    dir: &OwnedFd,
    claude_dir: Option<&FileStat>,
    with_passwd: bool,
) -> Result<()> {
    let targets = config_dir_ids(config, with_passwd);
    // Nor may it hold one as its `.claude` (the quarantine would move a live file).
    if let Some(st) = claude_dir {
        if let Some((p, what)) = matching(&targets, st) {
            return Err(home_err(
                path,
                format!(
                    "holds {} as its {CLAUDE_DIR}, {what}; choose a scratch home of its own",
                    p.display()
                ),
            ));
        }
    }
    walk_up(
        dir,
        |st, depth| {
            if let Some((p, what)) = matching(&targets, st) {
                return Err(home_err(
                    path,
                    format!(
                        "is inside {}, {what}; choose a scratch home outside it",
                        p.display()
                    ),
                ));
            }
            if depth == 0 {
                Ok(())
            } else {
                check_parent(path, st, canonical.ancestors().nth(depth))
            }
        },
        |depth, e| walk_err(path, Some(canonical), depth, e),
    )
}

/// Inside a user namespace that maps only some ids (claude-iso's mask, `unshare -r`),
/// root's directories (`/`, `/tmp`) show as the overflow uid, like those of any user
/// outside the map: there, that owner is taken as root — for the system directories of
/// [`is_system_dir`] only, so another user's directory (which shows as the same uid) is
/// still refused. The group/other write bits are still checked.
fn unmapped_in_user_namespace(uid: u32) -> bool {
    let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(65534);
    uid == overflow
        && std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Directories root owns on every Linux system, which a home may lie below.
fn is_system_dir(path: &Path) -> bool {
    const SYSTEM: &[&str] = &[
        "/",
        "/tmp",
        "/var",
        "/var/tmp",
        "/var/lib",
        "/home",
        "/run",
        "/run/user",
        "/dev",
        "/dev/shm",
        "/srv",
        "/opt",
        "/mnt",
        "/media",
        "/root",
        "/usr",
        "/usr/local",
    ];
    SYSTEM.iter().any(|s| Path::new(s) == path)
}

/// `.claude` must be a real directory and `.claude.json` a regular file, if present.
/// Returns whether `.claude` exists.
fn check_inside(path: &Path, dir: &OwnedFd, claude_dir: Option<&FileStat>) -> Result<bool> {
    if let Some(st) = claude_dir {
        if !is_type(st, SFlag::S_IFDIR) {
            return Err(home_err(
                path,
                format!(
                    "{CLAUDE_DIR} is a {}, not a directory; claude would follow it out of the scratch home: move it away",
                    describe_mode(st.st_mode)
                ),
            ));
        }
    }
    if let Some(st) = lstat_at(dir, CLAUDE_JSON).map_err(|e| home_err(path, errno_text(e)))? {
        if !is_type(&st, SFlag::S_IFREG) {
            return Err(home_err(
                path,
                format!(
                    "{CLAUDE_JSON} is a {}, not a regular file; claude would write through it: move it away",
                    describe_mode(st.st_mode)
                ),
            ));
        }
    }
    Ok(claude_dir.is_some())
}

/// Renames `.claude/.credentials.json` (file or symlink) aside, keeping it.
fn quarantine(path: &Path, dir: &OwnedFd, report: &Report) -> Result<()> {
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

impl Existing {
    /// The opened home directory (for the seed inspection).
    #[must_use]
    pub fn dir(&self) -> &OwnedFd {
        &self.dir
    }
}
