//! The copy engine: each share copied into the scratch home read-only (files 0444,
//! directories 0555), replaced only when the source changed, and recorded in
//! [`MANIFEST`] so that only our own copies are ever replaced or removed; anything else in
//! the way is moved aside, never deleted.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, mkdirat};
use nix::sys::statfs;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::names::{Share, entry_refusal, refuse};
use super::source::{Limits, MAX_DEPTH, MAX_FILE, SourceCheck, kernel_type, open_source};
use crate::config::Config;
use crate::error::{Area, Error, Result, SysContext};
use crate::home::ScratchHome;
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, aside_tag, is_type};

/// The record of our copies, in the scratch home.
pub const MANIFEST: &str = ".claude-iso.shared";

fn read_limited(file: File) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut out)?;
    if out.len() as u64 > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE >> 20
        )));
    }
    Ok(out)
}

/// claude-iso's own copies in the scratch home `home`, unchanged since they were made
/// (the record's inode and ctime): a launch removes or replaces each of them before the
/// command runs, so what they hold is never applied as it is (the guard skips them; a
/// copy shared again is judged by its source).
#[must_use]
pub fn own_copies(home: &Path) -> Vec<PathBuf> {
    let Ok(dir) = nix::fcntl::open(
        home,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return Vec::new();
    };
    load_manifest(&dir)
        .into_iter()
        .filter(|(rel, recorded)| {
            nix::sys::stat::fstatat(
                &dir,
                rel.as_path(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok_and(|st| stamp(&st) == *recorded)
        })
        .map(|(rel, _)| home.join(rel))
        .collect()
}

/// Our copies: relative path → (inode, ctime seconds, ctime nanoseconds).
type Manifest = BTreeMap<PathBuf, (u64, i64, i64)>;

fn stamp(st: &FileStat) -> (u64, i64, i64) {
    (st.st_ino, st.st_ctime, st.st_ctime_nsec)
}

fn load_manifest(dir: &OwnedFd) -> Manifest {
    let mut out = Manifest::new();
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, MANIFEST, flags, Mode::empty()) else {
        return out;
    };
    let mut text = Vec::new();
    if File::from(fd)
        .take(MAX_FILE)
        .read_to_end(&mut text)
        .is_err()
    {
        return out;
    }
    for line in text.split(|b| *b == b'\n') {
        let mut parts = line.splitn(4, |b| *b == b' ');
        let mut num = || {
            parts
                .next()
                .and_then(|p| std::str::from_utf8(p).ok())
                .and_then(|p| p.parse::<i64>().ok())
        };
        let (Some(ino), Some(sec), Some(nsec)) = (num(), num(), num()) else {
            continue;
        };
        if let Some(rel) = parts.next().filter(|r| !r.is_empty()) {
            out.insert(
                PathBuf::from(OsStr::from_bytes(rel)),
                (u64::try_from(ino).unwrap_or(0), sec, nsec),
            );
        }
    }
    out
}

/// Copies every share into the scratch home (see the module doc) and records the copies.
///
/// # Errors
/// A file that cannot be read or written; what [`check`](super::check) refuses, found again (the real
/// home changed since).
pub fn apply(
    config: &Config,
    home: &ScratchHome,
    shares: &[Share],
    limits: &Limits,
    report: &Report,
) -> Result<()> {
    let root = &home.dir;
    let old = load_manifest(root);
    if shares.is_empty() && old.is_empty() {
        return Ok(());
    }
    let mut sync = Sync {
        home: &home.path,
        check: SourceCheck::new(config, limits, shares, config.allow_project_auth),
        old,
        new: Manifest::new(),
        report,
        visited: HashSet::new(),
    };
    let kept: HashSet<&Path> = shares.iter().map(|s| s.dest.as_path()).collect();
    for share in shares {
        let (parent, name) = sync.parent_of(root, &share.dest)?;
        sync.item(Some(&share.source), &parent, name, &share.dest, 0)?;
    }
    // Shares dropped since the last launch: our copies go, anything else stays.
    let dropped: Vec<PathBuf> = sync
        .old
        .keys()
        .filter(|rel| {
            rel.components().count() > 0
                && !kept.iter().any(|k| rel.starts_with(k))
                && !sync.old.keys().any(|o| o != *rel && rel.starts_with(o))
        })
        .cloned()
        .collect();
    for rel in dropped {
        if let Ok((parent, name)) = sync.existing_parent_of(root, &rel) {
            sync.item(None, &parent, name, &rel, 0)?;
        }
    }
    sync.save(root)
}

struct Sync<'a> {
    home: &'a Path,
    check: SourceCheck<'a>,
    old: Manifest,
    new: Manifest,
    report: &'a Report,
    visited: HashSet<(u64, u64)>,
}

impl Sync<'_> {
    fn err(&self, rel: &Path, reason: impl std::fmt::Display) -> Error {
        Error::Home {
            path: self.home.join(rel),
            reason: reason.to_string(),
        }
    }

    /// Opens (creating, 0700) the directories above `rel` in the scratch home.
    fn parent_of<'r>(&self, root: &OwnedFd, rel: &'r Path) -> Result<(OwnedFd, &'r OsStr)> {
        let name = rel.file_name().expect("a share names a file");
        let mut dir = openat(
            root,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .at(Area::Home, &self.home.join(Path::new("")))?;
        let mut sofar = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            let Component::Normal(part) = c else { continue };
            sofar.push(part);
            match mkdirat(&dir, part, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(self.err(&sofar, format!("cannot create: {}", e.desc()))),
            }
            dir = fsutil::open_dir_at(&dir, part).map_err(|e| {
                self.err(
                    &sofar,
                    format!(
                        "cannot open ({}); a shared file's directory must be a real directory in the scratch home",
                        e.desc()
                    ),
                )
            })?;
        }
        Ok((dir, name))
    }

    /// As [`Self::parent_of`], creating nothing.
    fn existing_parent_of<'r>(
        &self,
        root: &OwnedFd,
        rel: &'r Path,
    ) -> nix::Result<(OwnedFd, &'r OsStr)> {
        let name = rel.file_name().ok_or(Errno::EINVAL)?;
        let mut dir = openat(
            root,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        for c in rel.parent().into_iter().flat_map(Path::components) {
            let Component::Normal(part) = c else { continue };
            dir = fsutil::open_dir_at(&dir, part)?;
        }
        Ok((dir, name))
    }

    fn is_ours(&self, rel: &Path, st: &FileStat) -> bool {
        self.old.get(rel) == Some(&stamp(st))
    }

    /// Makes `name` in `dir` (at `rel`) a read-only copy of `source`, or (`None`)
    /// removes our copy there.
    fn item(
        &mut self,
        source: Option<&Path>,
        dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.err(rel, "shared directories nest too deep (a symlink loop?)"));
        }
        let src_meta = self.source_meta(source);
        let mut real = PathBuf::new();
        if let Some((src, _)) = &src_meta {
            if let Some(why) = entry_refusal(name) {
                return Err(refuse(&src.display().to_string(), why));
            }
            real = crate::sys::fsutil::realpath(src).map_err(|e| {
                self.err(
                    rel,
                    format!(
                        "cannot resolve {}: {}",
                        src.display(),
                        crate::error::error_text(&e)
                    ),
                )
            })?;
            self.check.check_path(src, &real)?;
        }
        let dst = fsutil::lstat_at(dir, name).at(Area::Home, &self.home.join(rel))?;
        match src_meta {
            Some((src, m)) if m.is_dir() => {
                let key = (m.dev(), m.ino());
                if !self.visited.insert(key) {
                    self.report
                        .warn(format!("share: {} loops back; skipped", src.display()));
                    return Ok(());
                }
                let sub = self.own_dir(dir, name, rel, dst.as_ref())?;
                let wanted = self.copy_entries(src, &sub, rel, depth)?;
                self.visited.remove(&key);
                self.sweep(&sub, rel, &wanted, depth)?;
                fchmod(&sub, Mode::from_bits_truncate(0o555))
                    .at(Area::Home, &self.home.join(rel))?;
                self.record(dir, name, rel);
                Ok(())
            }
            Some((src, m)) if m.is_file() && m.len() > MAX_FILE => {
                self.report.warn(format!(
                    "share: {} is larger than {} MiB; not shared",
                    src.display(),
                    MAX_FILE >> 20
                ));
                self.remove_ours(dir, name, rel, dst.as_ref(), 0)
            }
            Some((src, m)) if m.is_file() => {
                self.copy_file(src, &real, dir, name, rel, dst.as_ref())
            }
            Some((src, _)) => {
                self.report.warn(format!(
                    "share: {} is not a regular file or directory; not shared",
                    src.display()
                ));
                self.remove_ours(dir, name, rel, dst.as_ref(), depth)
            }
            None => self.remove_ours(dir, name, rel, dst.as_ref(), depth),
        }
    }

    /// The source's metadata, or `None` (warned about) when it cannot be read.
    fn source_meta<'s>(&self, source: Option<&'s Path>) -> Option<(&'s Path, std::fs::Metadata)> {
        let src = source?;
        match std::fs::metadata(src) {
            Ok(m) => Some((src, m)),
            Err(e) => {
                self.report.warn(format!(
                    "share: cannot read {}: {}; not shared",
                    src.display(),
                    crate::error::error_text(&e)
                ));
                None
            }
        }
    }

    /// Copies each entry of the shared directory `src` into our copy `sub` (at `rel`);
    /// returns the names copied (what `sub` keeps).
    fn copy_entries(
        &mut self,
        src: &Path,
        sub: &OwnedFd,
        rel: &Path,
        depth: usize,
    ) -> Result<HashSet<OsString>> {
        let mut wanted = HashSet::new();
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(|e| {
                self.err(
                    rel,
                    format!(
                        "cannot read {}: {}",
                        src.display(),
                        crate::error::error_text(&e)
                    ),
                )
            })?
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        for entry in entries {
            if entry.as_bytes().contains(&b'\n') {
                self.report.warn(format!(
                    "share: {}: a name with a newline is not shared",
                    src.join(&entry).display()
                ));
                continue;
            }
            wanted.insert(entry.clone());
            self.item(
                Some(&src.join(&entry)),
                sub,
                &entry,
                &rel.join(&entry),
                depth + 1,
            )?;
        }
        Ok(wanted)
    }

    /// The directory `name` ready for copying into (mode 0700 for now): ours, or one in
    /// the way moved aside, or created.
    fn own_dir(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        dst: Option<&FileStat>,
    ) -> Result<OwnedFd> {
        if let Some(st) = dst {
            if !is_type(st, SFlag::S_IFDIR) {
                self.set_aside(dir, name, rel)?;
            }
        }
        match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.err(rel, format!("cannot create: {}", e.desc()))),
        }
        let sub = fsutil::open_dir_at(dir, name).on(Area::Home, &self.home.join(rel), "open")?;
        fchmod(&sub, Mode::from_bits_truncate(0o700)).at(Area::Home, &self.home.join(rel))?;
        Ok(sub)
    }

    fn copy_file(
        &mut self,
        src: &Path,
        real: &Path,
        dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        dst: Option<&FileStat>,
    ) -> Result<()> {
        let cannot = |e: &dyn std::fmt::Display| {
            self.err(rel, format!("cannot read {}: {e}", src.display()))
        };
        let file = open_source(src).map_err(|e| cannot(&crate::error::error_text(&e)))?;
        // What was opened is judged again before a byte is read (the real home may have
        // changed since `check`): a regular file, not the kernel's, not a second name of
        // a credential.
        let st = fstat(&file).map_err(|e| cannot(&e.desc()))?;
        self.check.check_kind(src, real, st.st_mode)?;
        if let Some(fs) = statfs::fstatfs(&file)
            .ok()
            .and_then(|f| kernel_type(f.filesystem_type()))
        {
            return Err(refuse(
                &src.display().to_string(),
                format!("is on {fs} (the kernel's); it is never shared, nor read"),
            ));
        }
        self.check
            .check_links(src, st.st_dev, st.st_ino, st.st_nlink)?;
        let bytes = read_limited(file).map_err(|e| cannot(&crate::error::error_text(&e)))?;
        self.check.check_settings_bytes(src, real, &bytes)?;
        if let Some(st) = dst {
            let ours = self.is_ours(rel, st);
            if is_type(st, SFlag::S_IFREG) && ours && same_content(dir, name, &bytes) {
                if st.st_mode & 0o7777 == 0o444 {
                    self.record(dir, name, rel);
                    return Ok(());
                }
            } else if !ours {
                self.set_aside(dir, name, rel)?;
            } else if is_type(st, SFlag::S_IFDIR) {
                self.remove_ours(dir, name, rel, dst, 0)?;
            }
        }
        self.write_copy(dir, name, rel, &bytes)?;
        self.record(dir, name, rel);
        Ok(())
    }

    /// A new 0444 file with `bytes`, renamed over `name`.
    fn write_copy(&self, dir: &OwnedFd, name: &OsStr, rel: &Path, bytes: &[u8]) -> Result<()> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let pid = std::process::id();
        let mut n = 0u32;
        let (tmp, fd) = loop {
            let tmp = format!(".claude-iso-share.{pid}.{n}.tmp");
            match openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => break (tmp, fd),
                Err(Errno::EEXIST) if n < 100 => n += 1,
                Err(e) => return Err(self.err(rel, format!("cannot write a copy: {}", e.desc()))),
            }
        };
        let written = (|| -> std::io::Result<()> {
            let mut file = File::from(fd);
            file.write_all(bytes)?;
            fchmod(&file, Mode::from_bits_truncate(0o444))?;
            Ok(())
        })();
        let result = written
            .map_err(|e| crate::error::error_text(&e))
            .and_then(|()| renameat(dir, tmp.as_str(), dir, name).map_err(|e| e.desc().to_owned()));
        if let Err(reason) = result {
            let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.err(rel, format!("cannot write a copy: {reason}")));
        }
        Ok(())
    }

    /// Removes entries of our copied directory `sub` that the source no longer has:
    /// our copies go, anything else is moved aside (kept).
    fn sweep(
        &mut self,
        sub: &OwnedFd,
        rel: &Path,
        wanted: &HashSet<OsString>,
        depth: usize,
    ) -> Result<()> {
        let names = fsutil::dir_entries(sub).at(Area::Home, &self.home.join(rel))?;
        for name in names {
            // What was set aside here stays; but a copy of ours stays only while wanted,
            // whatever its name (an older claude-iso copied `*.quarantined-*` files in).
            if wanted.contains(&name)
                || (name.to_str().is_some_and(|n| aside_tag(n).is_some())
                    && !self.old.contains_key(&rel.join(&name)))
            {
                continue;
            }
            let st =
                fsutil::lstat_at(sub, name.as_os_str()).at(Area::Home, &self.home.join(rel))?;
            self.remove_ours(sub, &name, &rel.join(&name), st.as_ref(), depth + 1)?;
        }
        Ok(())
    }

    /// Removes our copy at `name`; moves anything else there aside.
    fn remove_ours(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        rel: &Path,
        dst: Option<&FileStat>,
        depth: usize,
    ) -> Result<()> {
        let Some(st) = dst else { return Ok(()) };
        if !self.is_ours(rel, st) {
            if self.old.contains_key(rel) {
                // Was ours, changed since (root ignores the modes): kept aside.
                return self.set_aside(dir, name, rel);
            }
            return Ok(());
        }
        if is_type(st, SFlag::S_IFDIR) {
            let sub = fsutil::open_dir_at(dir, name).at(Area::Home, &self.home.join(rel))?;
            fchmod(&sub, Mode::from_bits_truncate(0o700)).at(Area::Home, &self.home.join(rel))?;
            self.sweep(&sub, rel, &HashSet::new(), depth)?;
            drop(sub);
            if let Err(e) = unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
                // Something not ours is left inside: the directory stays, writable.
                if e != Errno::ENOTEMPTY {
                    return Err(self.err(rel, e.desc()));
                }
            }
        } else {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).at(Area::Home, &self.home.join(rel))?;
        }
        Ok(())
    }

    fn set_aside(&mut self, dir: &OwnedFd, name: &OsStr, rel: &Path) -> Result<()> {
        // An empty file holds nothing to keep: the one claude leaves where a shared
        // `.gitconfig` goes (when a launch without that share ran) is replaced without
        // a warning, not set aside on every launch.
        if let Ok(Some(st)) = fsutil::lstat_at(dir, name) {
            if is_type(&st, SFlag::S_IFREG) && st.st_size == 0 {
                unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
                    .at(Area::Home, &self.home.join(rel))?;
                self.report.info(format!(
                    "{}: an empty file was in the way of a shared copy; replaced",
                    self.home.join(rel).display()
                ));
                return Ok(());
            }
        }
        let Some(n) = name.to_str() else {
            return Err(self.err(
                rel,
                "is in the way of a shared file and its name is not UTF-8; move it away",
            ));
        };
        // A directory of ours that was made read-only must be writable to rename from.
        let new = fsutil::put_aside(dir, n, "unshared", Aside::Rename).map_err(|e| {
            self.err(
                rel,
                format!(
                    "is in the way of a shared file and cannot be moved aside: {}",
                    e.desc()
                ),
            )
        })?;
        self.report.warn(format!(
            "{} was in the way of a shared copy (or a copy was changed); kept it as {new}",
            self.home.join(rel).display()
        ));
        Ok(())
    }

    fn record(&mut self, dir: &OwnedFd, name: &OsStr, rel: &Path) {
        if let Ok(Some(st)) = fsutil::lstat_at(dir, name) {
            self.new.insert(rel.to_owned(), stamp(&st));
        }
    }

    fn save(&self, root: &OwnedFd) -> Result<()> {
        if self.new.is_empty() {
            return match unlinkat(root, MANIFEST, UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(self.err(Path::new(MANIFEST), e.desc())),
            };
        }
        let mut text = Vec::new();
        for (rel, (ino, sec, nsec)) in &self.new {
            text.extend_from_slice(format!("{ino} {sec} {nsec} ").as_bytes());
            text.extend_from_slice(rel.as_os_str().as_bytes());
            text.push(b'\n');
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let tmp = format!("{MANIFEST}.{}.tmp", std::process::id());
        let _ = unlinkat(root, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let fd = openat(root, tmp.as_str(), flags, Mode::from_bits_truncate(0o600))
            .at(Area::Home, &self.home.join(Path::new(MANIFEST)))?;
        let mut file = File::from(fd);
        let result = file
            .write_all(&text)
            .map_err(|e| crate::error::error_text(&e))
            .and_then(|()| {
                renameat(root, tmp.as_str(), root, MANIFEST).map_err(|e| e.desc().to_owned())
            });
        if let Err(reason) = result {
            let _ = unlinkat(root, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(self.err(Path::new(MANIFEST), reason));
        }
        Ok(())
    }
}

fn same_content(dir: &OwnedFd, name: &OsStr, bytes: &[u8]) -> bool {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let mut have = Vec::with_capacity(bytes.len());
    File::from(fd)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut have)
        .is_ok()
        && have == bytes
}
