//! The mounts themselves: the staging tmpfs with the empty sources, each [`MountOp`]
//! applied, and the views built entry by entry.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::statvfs::FsFlags;

use super::{Kind, MountOp};

/// The empty sources: a small tmpfs at `dir` holding an empty file and an empty
/// directory, then made read-only as a whole. A hidden directory with something shown
/// again inside gets its own empty directory, holding the mount points for it.
pub(super) struct Staged {
    file: PathBuf,
    dir: PathBuf,
    /// (hidden directory, its own empty directory with mount points).
    with_points: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    fn dir_for(&self, hidden: &Path) -> &Path {
        self.with_points
            .iter()
            .find(|(h, _)| h == hidden)
            .map_or(self.dir.as_path(), |(_, d)| d.as_path())
    }
}

/// What the views applied so far already show as the mask would: a placeholder of a
/// kind (an empty file or directory in the view's read-only tmpfs: `Some(kind)`), or an
/// entry bound back read-only (`None`). A later [`MountOp::Empty`] or file
/// [`MountOp::ReadOnly`] on such a place would mount over it what it already is (a bind,
/// and for a read-only one its remount, each torn down again at exit), so it is skipped.
#[derive(Default)]
pub(super) struct Shown(Vec<(PathBuf, Option<Kind>)>);

impl Shown {
    /// Notes what an applied op shows (a view: its placeholders and read-only entries).
    pub(super) fn record(&mut self, op: &MountOp) {
        if let MountOp::View {
            path,
            cover,
            only: None,
            read_only,
        } = op
        {
            self.0.extend(
                cover
                    .iter()
                    .filter(|(_, kind)| kind.is_some())
                    .map(|(name, kind)| (path.join(name), *kind)),
            );
            self.0
                .extend(read_only.iter().map(|name| (path.join(name), None)));
        }
    }

    /// Whether `op` would only mount over a place what an applied view already shows
    /// there: an empty placeholder of the same kind (and nothing to show again inside
    /// it: the staging tmpfs has its mount points), or a file bound back read-only.
    pub(super) fn makes_redundant(&self, op: &MountOp, ops: &[MountOp]) -> bool {
        match op {
            MountOp::Empty { path, kind } => {
                self.0.contains(&(path.clone(), Some(*kind)))
                    && !ops
                        .iter()
                        .any(|o| matches!(o, MountOp::Reveal { path: r } if r.starts_with(path)))
            }
            MountOp::ReadOnly {
                path,
                kind: Kind::File,
            } => self.0.contains(&(path.clone(), None)),
            _ => false,
        }
    }
}

pub(super) fn stage(dir: &Path, ops: &[MountOp]) -> nix::Result<Staged> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let points = mount_points(ops)?;
    let inodes = 8 + points
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|rel| rel.components().count() + 1)
        .sum::<usize>();
    nix::mount::mount(
        Some("claude-iso-mask"),
        dir,
        Some("tmpfs"),
        flags,
        Some(format!("mode=0755,size=16k,nr_inodes={inodes}").as_str()),
    )?;
    let with_points = make_points(dir, &points)?;
    let file = dir.join("empty");
    let empty_dir = dir.join("empty.d");
    let fd = nix::fcntl::open(
        &file,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o444),
    )?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o444))?;
    drop(fd);
    nix::unistd::mkdir(&empty_dir, Mode::from_bits_truncate(0o555))?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &empty_dir,
        Mode::from_bits_truncate(0o555),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    nix::mount::mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )?;
    Ok(Staged {
        file,
        dir: empty_dir,
        with_points,
    })
}

/// Each revealed directory needs its mount point (and the directories leading to it) in
/// the empty directory standing in for the hidden one: (hidden directory, the revealed
/// paths relative to it).
fn mount_points(ops: &[MountOp]) -> nix::Result<Vec<(PathBuf, Vec<PathBuf>)>> {
    let mut points: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for op in ops {
        let MountOp::Reveal { path } = op else {
            continue;
        };
        let Some(hidden) = ops.iter().find_map(|o| match o {
            MountOp::Empty {
                path: h,
                kind: Kind::Dir,
            } if path.starts_with(h) => Some(h),
            _ => None,
        }) else {
            continue;
        };
        let rel = path.strip_prefix(hidden).map_err(|_| Errno::EINVAL)?;
        match points.iter_mut().find(|(h, _)| h == hidden) {
            Some((_, v)) => v.push(rel.to_owned()),
            None => points.push((hidden.clone(), vec![rel.to_owned()])),
        }
    }
    Ok(points)
}

/// Makes the empty directory (with its mount points) of each hidden directory in the
/// staging tmpfs at `dir`, read-only when done: (hidden directory, its empty directory).
fn make_points(
    dir: &Path,
    points: &[(PathBuf, Vec<PathBuf>)],
) -> nix::Result<Vec<(PathBuf, PathBuf)>> {
    let mut with_points = Vec::new();
    let mut made = Vec::new();
    for (i, (hidden, rels)) in points.iter().enumerate() {
        let base = dir.join(format!("empty.{i}.d"));
        nix::unistd::mkdir(&base, Mode::from_bits_truncate(0o700))?;
        made.push(base.clone());
        for rel in rels {
            let mut at = base.clone();
            for c in rel.components() {
                at.push(c);
                if !made.contains(&at) {
                    nix::unistd::mkdir(&at, Mode::from_bits_truncate(0o700))?;
                    made.push(at.clone());
                }
            }
        }
        with_points.push((hidden.clone(), base));
    }
    // Deepest first, so that each is still writable while its entries are made.
    for d in made.iter().rev() {
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            d,
            Mode::from_bits_truncate(0o555),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    Ok(with_points)
}

/// Applies one op; `false` when there was nothing to mount (a view of a directory gone
/// since the plan).
pub(super) fn apply(
    op: &MountOp,
    staged: Option<&Staged>,
    keep: Option<&OwnedFd>,
) -> nix::Result<bool> {
    let bind = |source: &Path, target: &Path, rec: bool| {
        let mut flags = MsFlags::MS_BIND;
        if rec {
            flags |= MsFlags::MS_REC;
        }
        nix::mount::mount(Some(source), target, None::<&str>, flags, None::<&str>)
    };
    match op {
        MountOp::ReadOnly { path, kind } => {
            bind(path, path, *kind == Kind::Dir)?;
            remount_read_only(path)?;
        }
        MountOp::Writable { path } => {
            let fd = keep.ok_or(Errno::EBADF)?;
            let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            bind(&source, path, true)?;
        }
        MountOp::Empty { path, kind } => {
            let staged = staged.ok_or(Errno::ENOENT)?;
            let source = match kind {
                Kind::File => staged.file.as_path(),
                Kind::Dir => staged.dir_for(path),
            };
            // No remount: a bind mount is born with the flags of the mount it is taken
            // from (the kernel's `clone_mnt`), and the staging tmpfs is already
            // read-only, nosuid, nodev and noexec ([`stage`]), its superblock too. So
            // the mask is all four from the start, and they are locked with the rest
            // where a user namespace locks the masks.
            bind(source, path, false)?;
        }
        MountOp::Reveal { path } => {
            let fd = keep.ok_or(Errno::EBADF)?;
            let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            bind(&source, path, true)?;
            remount_read_only(path)?;
        }
        MountOp::View {
            path,
            cover,
            only,
            read_only,
        } => return view(path, cover, only.as_deref(), read_only),
    }
    Ok(true)
}

/// Applies a [`MountOp::View`]: lists the directory (as it is now: through the views
/// made before it), covers it with a small tmpfs, binds each entry back from the real
/// directory through a descriptor opened before, and makes the tmpfs read-only. A
/// directory that does not exist (any more) needs no view (`false`).
fn view(
    path: &Path,
    cover: &[(OsString, Option<Kind>)],
    only: Option<&[OsString]>,
    read_only: &[OsString],
) -> nix::Result<bool> {
    let owned = match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(d) => d,
        // Gone since the plan, or not listable: the masks on its entries still apply.
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EACCES) => return Ok(false),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(&owned)?;
    let entries = list(&owned, cover, only)?;
    let inodes = entries.len() + cover.len() + 8;
    let options = format!("mode={:o},size=64k,nr_inodes={inodes}", st.st_mode & 0o7777);
    let tmpfs = |data: &str| {
        nix::mount::mount(
            Some("claude-iso-view"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data),
        )
    };
    // The real directory's owner, where this namespace maps it (a directory of root's
    // seen from a user namespace is not): else the tmpfs is this process's.
    match tmpfs(&format!("{options},uid={},gid={}", st.st_uid, st.st_gid)) {
        Err(Errno::EINVAL) => tmpfs(&options)?,
        other => other?,
    }
    for (name, kind) in cover {
        let at = path.join(name);
        match kind {
            Some(Kind::Dir) => nix::unistd::mkdir(&at, Mode::from_bits_truncate(0o555))?,
            Some(Kind::File) => drop(nix::fcntl::open(
                &at,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o444),
            )?),
            None => {}
        }
    }
    for (name, kind) in entries {
        bind_back(&owned, path, &name, kind, read_only.contains(&name))?;
    }
    remount_read_only(path)?;
    Ok(true)
}

/// The entries of the directory open at `dir` a view shows (all but `.`, `..`, the
/// `cover` names and, with `only`, every name not listed), with their type when the
/// listing says it.
fn list(
    dir: &OwnedFd,
    cover: &[(OsString, Option<Kind>)],
    only: Option<&[OsString]>,
) -> nix::Result<Vec<(OsString, Option<nix::dir::Type>)>> {
    let mut listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    let mut entries = Vec::new();
    for e in listing.iter() {
        let e = e?;
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
        if name == "." || name == ".." {
            continue;
        }
        if only.is_some_and(|o| !o.contains(&name)) || cover.iter().any(|(n, _)| *n == name) {
            continue;
        }
        entries.push((name, e.file_type()));
    }
    Ok(entries)
}

/// Binds the entry `name` of the real directory (open at `dir`) back onto its place in
/// the view's tmpfs at `path` (a symlink is copied), read-only with `read_only`.
fn bind_back(
    dir: &OwnedFd,
    path: &Path,
    name: &OsString,
    kind: Option<nix::dir::Type>,
    read_only: bool,
) -> nix::Result<()> {
    use nix::sys::stat::SFlag;
    let kind = match kind {
        Some(k) => k,
        None => {
            // Gone since the listing: nothing to show.
            let Ok(st) = nix::sys::stat::fstatat(
                dir,
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                return Ok(());
            };
            match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
                SFlag::S_IFDIR => nix::dir::Type::Directory,
                SFlag::S_IFLNK => nix::dir::Type::Symlink,
                _ => nix::dir::Type::File,
            }
        }
    };
    let target = path.join(name);
    match kind {
        nix::dir::Type::Symlink => {
            let Ok(to) = nix::fcntl::readlinkat(dir, name.as_os_str()) else {
                return Ok(());
            };
            nix::unistd::symlinkat(to.as_os_str(), nix::fcntl::AT_FDCWD, &target)?;
            return Ok(());
        }
        nix::dir::Type::Directory => {
            nix::unistd::mkdir(&target, Mode::from_bits_truncate(0o700))?;
        }
        _ => drop(nix::fcntl::open(
            &target,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?),
    }
    let mut source = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    source.push(name);
    // An entry that cannot be bound back (another user's FUSE mount, one removed
    // meanwhile) stays an empty placeholder: the mask itself does not fail for it
    // (which, after `unshare` in place, would stop the launch after the home is made).
    if nix::mount::mount(
        Some(&source),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .is_ok()
        && read_only
    {
        remount_read_only(&target)?;
    }
    Ok(())
}

/// `MS_REMOUNT|MS_BIND|MS_RDONLY`, keeping the flags the mount already has: in a user
/// namespace, flags inherited from outside (nosuid, nodev, noexec, atime) are locked
/// and a remount that would clear them fails.
fn remount_read_only(path: &Path) -> nix::Result<()> {
    let have = nix::sys::statvfs::statvfs(path)?.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // ST_RELATIME (4096: nix names it for glibc only).
        (FsFlags::from_bits_retain(4096), MsFlags::MS_RELATIME),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(only: Option<Vec<OsString>>) -> MountOp {
        MountOp::View {
            path: "/h".into(),
            cover: vec![
                (".claude".into(), Some(Kind::Dir)),
                ("creds".into(), Some(Kind::File)),
                ("gone".into(), None),
            ],
            only,
            read_only: vec![".claude.json".into()],
        }
    }

    fn empty(p: &str, kind: Kind) -> MountOp {
        MountOp::Empty {
            path: p.into(),
            kind,
        }
    }

    fn read_only(p: &str, kind: Kind) -> MountOp {
        MountOp::ReadOnly {
            path: p.into(),
            kind,
        }
    }

    #[test]
    fn only_what_an_applied_view_already_shows_is_skipped() {
        let ops = vec![view(None)];
        let mut shown = Shown::default();
        // Before the view is applied (or when it was not: a directory gone), nothing.
        assert!(!shown.makes_redundant(&empty("/h/.claude", Kind::Dir), &ops));
        shown.record(&ops[0]);
        // The same place, the same kind: the placeholder already is the mask.
        assert!(shown.makes_redundant(&empty("/h/.claude", Kind::Dir), &ops));
        assert!(shown.makes_redundant(&empty("/h/creds", Kind::File), &ops));
        assert!(shown.makes_redundant(&read_only("/h/.claude.json", Kind::File), &ops));
        // Another kind, a name left out (no placeholder), another path, a read-only
        // directory: mounted as planned.
        assert!(!shown.makes_redundant(&empty("/h/.claude", Kind::File), &ops));
        assert!(!shown.makes_redundant(&empty("/h/gone", Kind::Dir), &ops));
        assert!(!shown.makes_redundant(&empty("/h/.claude/x", Kind::Dir), &ops));
        assert!(!shown.makes_redundant(&empty("/other/.claude", Kind::Dir), &ops));
        assert!(!shown.makes_redundant(&read_only("/h/.claude.json", Kind::Dir), &ops));
        assert!(!shown.makes_redundant(&read_only("/h/.claude", Kind::File), &ops));
        // Something shown again inside the hidden directory needs its mount point there:
        // the staging tmpfs's own empty directory, so the mask is mounted.
        let with_reveal = vec![
            view(None),
            MountOp::Reveal {
                path: "/h/.claude/local".into(),
            },
        ];
        assert!(!shown.makes_redundant(&empty("/h/.claude", Kind::Dir), &with_reveal));
        // A view showing only some names records nothing.
        let mut only = Shown::default();
        only.record(&view(Some(vec!["a".into()])));
        assert!(!only.makes_redundant(&empty("/h/.claude", Kind::Dir), &ops));
    }
}
