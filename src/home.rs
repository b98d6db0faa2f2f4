//! The credential-free scratch HOME: created or checked through a directory descriptor,
//! never the real home, and with any credentials file quarantined.

#![forbid(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, fchmod, fchmodat, fstat, mkdirat, stat,
};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fsutil::{self, Aside, describe_mode, is_type, lstat_at, open_dir_at};
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS};
use crate::report::Report;

/// A checked scratch home, held open.
#[derive(Debug)]
pub struct ScratchHome {
    /// The path the child gets as `HOME`.
    pub path: PathBuf,
    /// The home directory itself (`None` in a dry run when it does not exist yet).
    pub dir: Option<OwnedFd>,
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

/// Creates or checks the scratch home and quarantines a credentials file in it.
/// With `dry_run`, changes nothing and reports what it would do.
///
/// # Errors
/// Any rule of the scratch home broken; see the module and the README.
pub fn prepare(config: &Config, dry_run: bool, report: &Report) -> Result<ScratchHome> {
    let path = &config.home;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| *n != "..")
        .ok_or_else(|| {
            home_err(
                path,
                "must end in a directory name (UTF-8, not '..' or '/')",
            )
        })?;
    let parent_path = path.parent().unwrap_or(Path::new("/"));

    let opened = match open(
        parent_path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Some(fd),
        Err(Errno::ENOENT) => None,
        Err(e) => {
            return Err(home_err(
                parent_path,
                format!("cannot open the parent directory: {}", errno_text(e)),
            ));
        }
    };
    let exists = match &opened {
        Some(parent) => lstat_at(parent, name)
            .map_err(|e| home_err(path, errno_text(e)))?
            .is_some(),
        None => false,
    };

    let mut created = false;
    let parent = if exists {
        opened.expect("the parent exists when the home does")
    } else {
        // Refuse before creating anything, so a refused path leaves nothing behind.
        check_new_path(config, path)?;
        if dry_run {
            report.plan(format!(
                "home: {} (would be created, mode 0700)",
                path.display()
            ));
            return Ok(ScratchHome {
                path: path.clone(),
                dir: None,
            });
        }
        let parent = match opened {
            Some(fd) => fd,
            None => {
                create_parents(parent_path)?;
                open(
                    parent_path,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| home_err(parent_path, format!("cannot open: {}", errno_text(e))))?
            }
        };
        match mkdirat(&parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {
                created = true;
                // mkdir's mode went through the umask; fix it before opening (a umask
                // of 0777 would leave a directory even its owner cannot open).
                fchmodat(
                    &parent,
                    name,
                    Mode::from_bits_truncate(0o700),
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| home_err(path, format!("cannot chmod: {}", errno_text(e))))?;
            }
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(home_err(path, format!("cannot create: {}", errno_text(e)))),
        }
        parent
    };

    let dir = match open_dir_at(&parent, name) {
        Ok(fd) => fd,
        Err(Errno::ELOOP | Errno::ENOTDIR) => {
            let kind = lstat_at(&parent, name)
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
    };
    drop(parent);

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
    // A home that holds our lock file passed these checks, passwd entry included, when
    // it was first seeded; the passwd database is then not read again on every launch
    // (`$HOME` and `$CLAUDE_CONFIG_DIR` still are checked).
    let with_passwd = created
        || lstat_at(&dir, crate::layout::OWN_LOCK)
            .map_err(|e| home_err(path, errno_text(e)))?
            .is_none();
    check_not_real_home(config, path, Some(&st), path, with_passwd)?;
    let claude_dir = lstat_at(&dir, CLAUDE_DIR).map_err(|e| home_err(path, errno_text(e)))?;
    check_not_in_config_dir(config, path, &dir, &st, claude_dir.as_ref(), with_passwd)?;

    if created {
        report.info(format!(
            "created scratch home {} (mode 0700)",
            path.display()
        ));
    } else if mode & 0o077 != 0 {
        if dry_run {
            report.plan(format!(
                "home: would tighten mode {mode:04o} to 0700 on {}",
                path.display()
            ));
        } else {
            fchmod(&dir, Mode::from_bits_truncate(0o700))
                .map_err(|e| home_err(path, errno_text(e)))?;
            report.note(format!(
                "tightened scratch home {} from mode {mode:04o} to 0700",
                path.display()
            ));
        }
    }

    if check_inside(path, &dir, claude_dir.as_ref())? {
        quarantine(path, &dir, dry_run, report)?;
    }
    if dry_run {
        report.plan(format!("home: {} (exists)", path.display()));
    }
    // `..` in the path: give the child the resolved directory, not a path that
    // depends on what `..` means.
    let path = if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd()))
            .unwrap_or_else(|_| path.clone())
    } else {
        path.clone()
    };
    Ok(ScratchHome {
        path,
        dir: Some(dir),
    })
}

/// Creates the missing ancestors of the home, each exactly 0700 whatever the umask.
fn create_parents(parent: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let missing: Vec<&Path> = parent
        .ancestors()
        .take_while(|p| std::fs::symlink_metadata(p).is_err())
        .collect();
    for dir in missing.into_iter().rev() {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| {
                    home_err(
                        dir,
                        format!("cannot chmod: {}", crate::error::error_text(&e)),
                    )
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(home_err(
                    dir,
                    format!("cannot create: {}", crate::error::error_text(&e)),
                ));
            }
        }
    }
    Ok(())
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

/// Path-level checks for a home about to be created: not inside a real config
/// directory, not a real home or an ancestor of one. (The descriptor-level checks run
/// again once it exists.)
fn check_new_path(config: &Config, path: &Path) -> Result<()> {
    let new = prospective_path(path);
    if let Some(existing) = new.ancestors().find(|p| p.is_dir()) {
        let fd = open(
            existing,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| home_err(existing, format!("cannot open: {}", errno_text(e))))?;
        check_parents(path, &fd)?;
    }
    for dir in config.real_config_dirs(true) {
        // Resolved as far as it exists (a symlinked $HOME without a ~/.claude yet).
        let dir = prospective_path(&dir);
        if new.starts_with(&dir) {
            return Err(home_err(
                path,
                format!(
                    "is inside {}, a real claude config directory; choose a scratch home outside it",
                    dir.display()
                ),
            ));
        }
    }
    check_not_real_home(config, path, None, &new, true)
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

/// Every directory from `start` up to `/` must be yours or root's and not writable by
/// others unless sticky — ssh's StrictModes rule: whoever can rename entries in a parent
/// could swap the checked home for their own before claude starts.
fn check_parents(path: &Path, start: &OwnedFd) -> Result<()> {
    let st = fstat(start).map_err(|e| home_err(path, errno_text(e)))?;
    walk_up(path, start, st, |st, _| check_parent(path, st))
}

/// Calls `visit` with the status of `start` (`true`) and of each directory above it up
/// to `/` (`false`), moving by `..` from descriptor to descriptor.
fn walk_up(
    path: &Path,
    start: &OwnedFd,
    start_st: FileStat,
    mut visit: impl FnMut(&FileStat, bool) -> Result<()>,
) -> Result<()> {
    visit(&start_st, true)?;
    let mut current: Option<OwnedFd> = None;
    let mut st = start_st;
    for _ in 0..4096 {
        let fd = current.as_ref().map_or(start.as_fd(), AsFd::as_fd);
        let up = nix::fcntl::openat(
            fd,
            "..",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| home_err(path, errno_text(e)))?;
        let up_st = fstat(&up).map_err(|e| home_err(path, errno_text(e)))?;
        if up_st.st_dev == st.st_dev && up_st.st_ino == st.st_ino {
            break; // reached /
        }
        visit(&up_st, false)?;
        st = up_st;
        current = Some(up);
    }
    Ok(())
}

/// One directory above the home: see [`check_parents`].
fn check_parent(path: &Path, st: &FileStat) -> Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me && st.st_uid != 0 {
        return Err(home_err(
            path,
            format!(
                "has a parent directory owned by uid {} (not you or root), who could swap the home; choose a scratch home under directories you own",
                st.st_uid
            ),
        ));
    }
    let sticky = st.st_mode & nix::libc::S_ISVTX != 0;
    if st.st_mode & 0o022 != 0 && !sticky {
        return Err(home_err(
            path,
            format!(
                "has a parent directory writable by group or others (mode {:04o}, not sticky), so the home could be swapped; fix its mode or choose another home",
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The home must not be, or lie inside, a real `~/.claude` or the caller's
/// `CLAUDE_CONFIG_DIR`, and no directory above it may let another user swap it
/// ([`check_parent`]): one walk up from the opened directory by `..`.
fn check_not_in_config_dir(
    config: &Config,
    path: &Path,
    dir: &OwnedFd,
    home_st: &FileStat,
    claude_dir: Option<&FileStat>,
    with_passwd: bool,
) -> Result<()> {
    let targets: Vec<(PathBuf, FileStat)> = config
        .real_config_dirs(with_passwd)
        .into_iter()
        .filter_map(|p| stat(&p).ok().map(|st| (p, st)))
        .collect();
    let matching = |st: &FileStat| {
        targets
            .iter()
            .find(|(_, t)| t.st_dev == st.st_dev && t.st_ino == st.st_ino)
            .map(|(p, _)| p)
    };
    // Nor may it hold one as its `.claude` (the quarantine would move a live file).
    if let Some(st) = claude_dir {
        if let Some(p) = matching(st) {
            return Err(home_err(
                path,
                format!(
                    "holds {} as its {CLAUDE_DIR}, a real claude config directory; choose a scratch home of its own",
                    p.display()
                ),
            ));
        }
    }
    walk_up(path, dir, *home_st, |st, is_home| {
        if let Some(p) = matching(st) {
            return Err(home_err(
                path,
                format!(
                    "is inside {}, a real claude config directory; choose a scratch home outside it",
                    p.display()
                ),
            ));
        }
        if is_home {
            Ok(())
        } else {
            check_parent(path, st)
        }
    })
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
fn quarantine(path: &Path, dir: &OwnedFd, dry_run: bool, report: &Report) -> Result<()> {
    let claude = match open_dir_at(dir, CLAUDE_DIR) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(home_err(path, format!("{CLAUDE_DIR}: {}", errno_text(e)))),
    };
    let shown = path.join(CLAUDE_DIR).join(CREDENTIALS);
    if lstat_at(&claude, CREDENTIALS)
        .map_err(|e| home_err(&shown, errno_text(e)))?
        .is_none()
    {
        return Ok(());
    }
    if dry_run {
        report.plan(format!(
            "quarantine: would move {} aside (kept)",
            shown.display()
        ));
        return Ok(());
    }
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

/// Whether a `.claude/.credentials.json` (file or symlink) sits in a home; changes
/// nothing (for `doctor`).
#[must_use]
pub fn has_credentials(home: &Path) -> bool {
    nix::sys::stat::lstat(&home.join(CLAUDE_DIR).join(CREDENTIALS)).is_ok()
}
