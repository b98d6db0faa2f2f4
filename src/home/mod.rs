//! The credential-free scratch HOME, in two steps: [`inspect`] checks everything and
//! returns a [`HomeState`] without changing anything (what `--dry-run` prints and
//! `doctor` reports), [`apply`] creates, tightens, quarantines and marks it.
//!
//! Everything goes through directory descriptors (`*at` calls, `O_NOFOLLOW`, `O_PATH`
//! for the upward walk), and the command gets the canonical path of the very directory
//! that was checked: no symlink component, no `/proc` magic link.

#![forbid(unsafe_code)]

mod checks;
mod claim;
mod create;
mod quarantine;
pub(crate) mod scan;
pub(crate) mod seed;
pub(crate) mod stamp;
pub(crate) mod warned;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, fchmod};

use crate::config::Config;
use crate::error::{Area, Error, Result, SysContext};
use crate::layout::{CLAUDE_DIR, CREDENTIALS, OWN_LOCK};
use crate::report::Report;
use crate::sys::fsutil::{describe_mode, lstat_at, open_dir_at, open_path_dir};
use checks::{check_existing, check_new_path, prospective_path, unreachable_err};
pub(crate) use claim::{Claim, claim};
use create::create;
use quarantine::{mark, quarantine};

/// What [`inspect`] found: the home passed every check.
#[derive(Debug)]
pub(crate) struct HomeState {
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
    pub(crate) fn canonical(&self) -> PathBuf {
        match &self.existing {
            Some(e) => e.canonical.clone(),
            None => prospective_path(&self.path),
        }
    }
}

/// An existing, checked home.
#[derive(Debug)]
pub(crate) struct Existing {
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
pub(crate) enum LockFile {
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
pub(crate) fn inspect(config: &Config) -> Result<HomeState> {
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

/// Lines of the `--dry-run` plan for a home state.
pub(crate) fn plan_lines(state: &HomeState, report: &Report) {
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
pub(crate) fn apply(config: &Config, state: HomeState, report: &Report) -> Result<ScratchHome> {
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
        fchmod(&dir, Mode::from_bits_truncate(0o700)).at(Area::Home, path)?;
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

impl Existing {
    /// The opened home directory (for the seed inspection).
    #[must_use]
    pub(crate) fn dir(&self) -> &OwnedFd {
        &self.dir
    }
}
