//! The rules of a scratch home, checked before anything changes: owned by the user and
//! not writable by others, no symlink in the way, not a real home (nor an ancestor of
//! one), not inside a real config directory or a credential store, and no directory
//! above it that another user could use to swap it. Everything by descriptor.

#![forbid(unsafe_code)]

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag, fstat, stat};

use super::{Existing, LockFile, errno_text, home_err};
use crate::config::Config;
use crate::error::{Area, Error, Result, SysContext};
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS, OWN_LOCK};
use crate::sys::fsutil::{
    self, canonical_dir, describe_mode, is_ours_alone, is_type, lstat_at, open_dir_at,
    open_path_dir, walk_up,
};

/// Every check of an opened home directory.
pub(super) fn check_existing(
    config: &Config,
    path: &Path,
    dir: OwnedFd,
    created: bool,
) -> Result<Existing> {
    let st = fstat(&dir).at(Area::Home, path)?;
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
    let lock = match lstat_at(&dir, OWN_LOCK).at(Area::Home, path)? {
        None => LockFile::Missing,
        Some(st) if is_ours_alone(&st) => LockFile::Ours,
        Some(_) => LockFile::Foreign,
    };
    // A home that holds our lock file passed these checks, passwd entry included, when
    // it was first prepared; the passwd database is then not read again on every launch
    // (`$HOME` and `$CLAUDE_CONFIG_DIR` still are checked).
    let with_passwd = created || lock != LockFile::Ours;
    check_not_real_home(config, path, Some(&st), &canonical, with_passwd)?;
    let claude_dir = lstat_at(&dir, CLAUDE_DIR).at(Area::Home, path)?;
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
            .at(Area::Home, &shown)?
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
pub(super) fn unreachable_err(path: &Path, dir: &Path, e: Errno) -> Error {
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
pub(super) fn cannot_create_in(path: &Path, parent: &Path, e: Errno) -> Error {
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
/// the rest appended. A dangling symlink on the way is followed to where it would lead
/// (a `$HOME` that is a symlink to a directory not made yet is that directory).
pub(super) fn prospective_path(path: &Path) -> PathBuf {
    prospective(path, 0)
}

fn prospective(path: &Path, links: u32) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = crate::sys::fsutil::realpath(existing) {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        if links < 40 {
            if let Ok(target) = std::fs::read_link(existing) {
                let target = match existing.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
                let base = prospective(&target, links + 1);
                return rest.iter().rev().fold(base, |acc, c| acc.join(c));
            }
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
pub(super) fn check_new_path(config: &Config, path: &Path) -> Result<()> {
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
pub(super) fn check_ancestors(config: &Config, path: &Path, fd: &OwnedFd) -> Result<()> {
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
        // ancestors of its target too. A home not created yet is compared by resolved
        // path, so the resolved one is always kept then (a `$HOME` that does not exist
        // yet resolves to itself).
        let resolved = prospective_path(&real);
        if (st.is_none() || resolved != real) && !homes.contains(&resolved) {
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

/// A guarded directory with its device and inode (it exists).
type Guarded = (PathBuf, &'static str, FileStat);

/// Device and inode of each existing guarded directory.
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
    if let Some(st) = lstat_at(dir, CLAUDE_JSON).at(Area::Home, path)? {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;

    use super::*;

    /// A configuration whose real home is `home` (the caller's environment only).
    fn config_for(home: &Path) -> Config {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["claude-iso"]).unwrap();
        let env = [("HOME", home.to_str().unwrap())];
        Config::new(&cli.launch, env.into_iter().collect()).unwrap()
    }

    fn open_dir(path: &Path) -> OwnedFd {
        open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A scratch tree: `<tmp>/real` is the real home, `<tmp>/scratch` a home, mode 0700.
    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        let home = tmp.path().join("scratch");
        std::fs::create_dir(&real).unwrap();
        std::fs::create_dir(&home).unwrap();
        chmod(&home, 0o700);
        (tmp, real, home)
    }

    fn existing(real: &Path, home: &Path) -> Result<Existing> {
        check_existing(&config_for(real), home, open_dir(home), false)
    }

    fn refusal(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_private_home_of_mine_passes() {
        let (_tmp, real, home) = tree();
        let e = existing(&real, &home).unwrap();
        assert_eq!(e.mode, 0o700);
        assert_eq!(e.lock, LockFile::Missing);
        assert!(!e.credentials);
        assert_eq!(e.canonical, std::fs::canonicalize(&home).unwrap());
        // Wider for reading is accepted (apply tightens it), for writing it is not.
        chmod(&home, 0o755);
        assert_eq!(existing(&real, &home).unwrap().mode, 0o755);
        for mode in [0o770, 0o702, 0o777] {
            chmod(&home, mode);
            let why = refusal(existing(&real, &home));
            assert!(why.contains("writable by group or others"), "{why}");
            assert!(why.contains(&format!("{mode:04o}")), "{why}");
        }
    }

    #[test]
    fn the_real_home_and_its_ancestors_are_refused() {
        let (tmp, real, _home) = tree();
        let why = refusal(existing(&real, &real));
        assert!(why.contains("is your real home"), "{why}");
        let nested = tmp.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        chmod(&tmp.path().join("a"), 0o700);
        let why = refusal(existing(&nested, &tmp.path().join("a")));
        assert!(why.contains("is an ancestor of your real home"), "{why}");
    }

    #[test]
    fn a_home_inside_a_real_config_dir_is_refused() {
        let (_tmp, real, _home) = tree();
        let inside = real.join(".claude/scratch");
        std::fs::create_dir_all(&inside).unwrap();
        chmod(&inside, 0o700);
        let why = refusal(existing(&real, &inside));
        assert!(why.contains("a real claude config directory"), "{why}");
        // Nor one about to be created there, existing or not.
        let config = config_for(&real);
        let why = refusal(check_new_path(&config, &real.join(".claude/new/home")));
        assert!(why.contains("a real claude config directory"), "{why}");
        std::fs::remove_dir_all(real.join(".claude")).unwrap();
        let why = refusal(check_new_path(&config, &real.join(".claude/new")));
        assert!(why.contains("is inside"), "{why}");
    }

    #[test]
    fn a_home_holding_the_real_config_dir_is_refused() {
        let (_tmp, real, home) = tree();
        std::fs::create_dir(real.join(".claude")).unwrap();
        std::os::unix::fs::symlink(real.join(".claude"), home.join(CLAUDE_DIR)).unwrap();
        // A symlinked `.claude` is refused as a symlink before anything else.
        let why = refusal(existing(&real, &home));
        assert!(why.contains(".claude is a symlink"), "{why}");
    }

    #[test]
    fn symlinks_and_special_files_inside_are_refused() {
        let (_tmp, real, home) = tree();
        std::os::unix::fs::symlink("/nonexistent", home.join(CLAUDE_DIR)).unwrap();
        let why = refusal(existing(&real, &home));
        assert!(why.contains("not a directory"), "{why}");
        std::fs::remove_file(home.join(CLAUDE_DIR)).unwrap();
        std::fs::create_dir(home.join(CLAUDE_JSON)).unwrap();
        let why = refusal(existing(&real, &home));
        assert!(why.contains("not a regular file"), "{why}");
        std::fs::remove_dir(home.join(CLAUDE_JSON)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", home.join(CLAUDE_JSON)).unwrap();
        let why = refusal(existing(&real, &home));
        assert!(why.contains("is a symlink, not a regular file"), "{why}");
    }

    #[test]
    fn credentials_and_the_lock_file_are_seen() {
        let (_tmp, real, home) = tree();
        std::fs::create_dir(home.join(CLAUDE_DIR)).unwrap();
        assert!(!existing(&real, &home).unwrap().credentials);
        // A dangling symlink counts too: claude would follow it.
        std::os::unix::fs::symlink("/nonexistent", home.join(CLAUDE_DIR).join(CREDENTIALS))
            .unwrap();
        assert!(existing(&real, &home).unwrap().credentials);
        std::fs::write(home.join(OWN_LOCK), "").unwrap();
        chmod(&home.join(OWN_LOCK), 0o600);
        assert_eq!(existing(&real, &home).unwrap().lock, LockFile::Ours);
        // A second name makes it not ours alone.
        std::fs::hard_link(home.join(OWN_LOCK), home.join("other")).unwrap();
        assert_eq!(existing(&real, &home).unwrap().lock, LockFile::Foreign);
        std::fs::remove_file(home.join("other")).unwrap();
        std::fs::remove_file(home.join(OWN_LOCK)).unwrap();
        std::fs::create_dir(home.join(OWN_LOCK)).unwrap();
        assert_eq!(existing(&real, &home).unwrap().lock, LockFile::Foreign);
    }

    #[test]
    fn a_parent_others_can_write_is_refused_unless_sticky() {
        let (tmp, real, _home) = tree();
        let parent = tmp.path().join("shared");
        let home = parent.join("home");
        std::fs::create_dir_all(&home).unwrap();
        chmod(&home, 0o700);
        for (mode, ok) in [
            (0o755, true),
            (0o777, false),
            (0o1777, true),
            (0o775, false),
        ] {
            chmod(&parent, mode);
            let st = stat(&parent).unwrap();
            let checked = check_parent(&home, &st, Some(&parent));
            assert_eq!(checked.is_ok(), ok, "{mode:o}: {checked:?}");
            // The walk from the home up finds it too, and so does a new home below it.
            assert_eq!(existing(&real, &home).is_ok(), ok, "{mode:o}");
            let new = check_new_path(&config_for(&real), &parent.join("new"));
            assert_eq!(new.is_ok(), ok, "{mode:o}: {new:?}");
            if !ok {
                let why = refusal(checked);
                assert!(why.contains("writable by group or others"), "{why}");
            }
        }
    }

    #[test]
    fn a_new_home_is_named_through_symlinks() {
        let (tmp, real, _home) = tree();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let canonical = std::fs::canonicalize(&real).unwrap();
        assert_eq!(prospective_path(&link.join("a/b")), canonical.join("a/b"));
        assert_eq!(prospective_path(&link), canonical);
        // A new home inside the real home is fine; the real home itself, named through
        // a symlink and not made yet, is not.
        let config = config_for(&real);
        assert!(check_new_path(&config, &link.join("scratch")).is_ok());
        let why = refusal(check_new_path(
            &config_for(&link.join("x")),
            &real.join("x"),
        ));
        assert!(why.contains("is your real home"), "{why}");
    }

    #[test]
    fn system_directories() {
        for dir in ["/", "/tmp", "/var/tmp", "/home", "/run/user", "/dev/shm"] {
            assert!(is_system_dir(Path::new(dir)), "{dir}");
        }
        for dir in ["/tmp/x", "/home/someone", "/etc", "tmp"] {
            assert!(!is_system_dir(Path::new(dir)), "{dir}");
        }
    }
}
