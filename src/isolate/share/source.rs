//! Whether a source is safe to copy, judged by where it really leads (symlinks resolved,
//! hard links by their other names): never a credential or token file, nothing the mask
//! hides that no share names, nothing of a scratch home, nothing on a kernel filesystem,
//! only regular files and directories, and no settings file bringing its own credential.

#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;
use nix::sys::statfs::{self, FsType};

use super::names::{REFUSED, Share, credential_name, entry_refusal, is_settings, refuse, refused};
use crate::caller::CallerEnv;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::isolate::guard::{self, Finding, Why};
use crate::layout::CLAUDE_DIR;
use crate::report::Report;
use crate::sys::fsutil;

/// What `--share` must never carry in, by where an entry really leads: the paths the
/// mask hides or empties (built from the same sources as its plan, by
/// `mask::share_limits`), each given and resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Never shared, nor anything that holds one: (path, what it is). The credential
    /// files of every config dir, the token files, claude's fixed remote files, the
    /// Anthropic profile stores, `.claude.json`, the config dirs named by variables.
    pub never: Vec<(PathBuf, &'static str)>,
    /// Hidden whole by the mask, yet where the files of [`DEFAULT_SET`](super::DEFAULT_SET) live (each real
    /// `~/.claude`): an entry that leads inside is refused unless it is one of the shares
    /// being made, or inside one.
    pub hidden: Vec<PathBuf>,
}

/// Largest file copied (a config file, not data).
pub(super) const MAX_FILE: u64 = 16 << 20;
/// Deepest nesting copied, symlinked directories included.
pub(super) const MAX_DEPTH: usize = 32;

/// Looks at each source once, before anything is changed, and refuses what the copy
/// ([`apply`](super::apply)) would refuse or fail on, so that a dry run and a launch agree and a
/// refusal leaves nothing behind (not even a new named home):
/// - a missing explicit source;
/// - an entry (the share or anything inside a shared directory, symlinks followed) that
///   leads to a refused or token file or into what the mask hides ([`Limits`]);
/// - a hard link whose other name is such a file ([`SourceCheck::check_links`]);
/// - anything on a kernel filesystem (`/proc`, `/sys`, `/dev`, …), and anything but a
///   regular file or a directory (a FIFO, a device, a socket): never opened;
/// - a file or directory that cannot be read, a tree nested deeper than [`MAX_DEPTH`];
/// - a settings file with a credential of its own (unless `allow_auth`).
///
/// A broken symlink inside a shared directory is skipped (the copy says so), as is a
/// file larger than 16 MiB. Returns the shares whose source exists.
///
/// # Errors
/// 125 for each refusal, naming the file and the fix.
pub fn check(
    config: &Config,
    shares: &[Share],
    limits: &Limits,
    allow_auth: bool,
    report: &Report,
) -> Result<Vec<Share>> {
    if shares.is_empty() {
        return Ok(Vec::new());
    }
    let sources = SourceCheck::new(config, limits, shares, allow_auth);
    let mut out = Vec::new();
    for share in shares {
        let shown = share.source.display().to_string();
        let real = match crate::sys::fsutil::realpath(&share.source) {
            Ok(real) => real,
            Err(e) if is_missing(&e) => {
                if share.explicit {
                    return Err(refuse(
                        &share.dest.to_string_lossy(),
                        format!("{shown} does not exist (or is a broken symlink)"),
                    ));
                }
                report.info(format!("share: {shown} does not exist; skipped"));
                continue;
            }
            Err(e) => return Err(cannot_read(&share.source, &e)),
        };
        sources.check_entry(&share.source, &real, &mut Vec::new(), 0)?;
        out.push(share.clone());
    }
    Ok(out)
}

/// A path that leads nowhere (the copy skips it): missing, a broken or looping symlink.
fn is_missing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP)
    )
}

fn cannot_read(given: &Path, e: &std::io::Error) -> Error {
    refuse(
        &given.display().to_string(),
        format!(
            "cannot read it ({}); make it readable (chmod u+r, and u+x for a directory) or stop sharing it",
            crate::error::error_text(e)
        ),
    )
}

/// Filesystems whose files are the kernel's (a process's environment, memory, devices),
/// never configuration: nothing on them is shared, nor read.
const KERNEL_FS: &[(FsType, &str)] = &[
    (statfs::PROC_SUPER_MAGIC, "proc"),
    (statfs::SYSFS_MAGIC, "sysfs"),
    (statfs::DEVPTS_SUPER_MAGIC, "devpts"),
    (statfs::DEBUGFS_MAGIC, "debugfs"),
    (statfs::TRACEFS_MAGIC, "tracefs"),
    (statfs::SECURITYFS_MAGIC, "securityfs"),
    (statfs::SELINUX_MAGIC, "selinuxfs"),
    (statfs::SMACK_MAGIC, "smackfs"),
    (statfs::CGROUP_SUPER_MAGIC, "cgroup"),
    (statfs::CGROUP2_SUPER_MAGIC, "cgroup2"),
    (statfs::BPF_FS_MAGIC, "bpf"),
    (statfs::NSFS_MAGIC, "nsfs"),
    (statfs::HUGETLBFS_MAGIC, "hugetlbfs"),
    (statfs::USBDEVICE_SUPER_MAGIC, "usbdevfs"),
    (statfs::OPENPROM_SUPER_MAGIC, "openpromfs"),
];

/// Where the kernel's filesystems are mounted, whatever `statfs` says (devtmpfs
/// reports itself as tmpfs).
const KERNEL_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// The kernel filesystem `real` (a resolved path) is on, if it is on one.
fn kernel_fs(real: &Path) -> Option<&'static str> {
    if let Some(dir) = KERNEL_DIRS.iter().find(|d| real.starts_with(d)) {
        return Some(dir);
    }
    kernel_type(statfs::statfs(real).ok()?.filesystem_type())
}

pub(super) fn kernel_type(kind: FsType) -> Option<&'static str> {
    KERNEL_FS.iter().find(|(t, _)| *t == kind).map(|(_, n)| *n)
}

/// The refusal rules applied to what a path really is.
pub(super) struct SourceCheck<'a> {
    homes: Vec<PathBuf>,
    limits: &'a Limits,
    /// Each share's path with its directories resolved: what an entry leading into a
    /// hidden directory may be (or be inside).
    shared: Vec<PathBuf>,
    allow_auth: bool,
    /// The environment the command will get (after the scrub and `--unset`): what a
    /// shared settings file's entries are compared with.
    caller: CallerEnv,
    /// The other names a hard link may have, looked for when the first one is met.
    names: OnceCell<Names>,
    /// Where claude-iso keeps scratch homes (`$XDG_STATE_HOME/claude-iso`) and this
    /// launch's scratch home, given and resolved: nothing in them, nor what holds them,
    /// is shared.
    scratch: Vec<PathBuf>,
    /// Every scratch home claude-iso knows (the default one, each named one, this
    /// launch's): where the other names of a hard link to a quarantined credentials file
    /// are looked for.
    scratch_homes: Vec<PathBuf>,
}

/// The default home, each directory in `homes/`, and this launch's home.
fn scratch_homes(config: &Config) -> Vec<PathBuf> {
    let mut out = vec![config.default_home(), config.home.clone()];
    if let Ok(entries) = std::fs::read_dir(config.homes_dir()) {
        out.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
    }
    out.sort();
    out.dedup();
    out
}

/// Most entries looked at for [`Names`].
const MAX_NAMES: usize = 100_000;

/// One name of a file with more than one, found below `under`: a place credentials live
/// (`what` says which), or (`what` is `None`) a directory the mask hides.
#[derive(Debug)]
struct Name {
    path: PathBuf,
    under: PathBuf,
    what: Option<&'static str>,
}

/// Every name, by inode, of the files with more than one name that lie where credentials
/// live ([`Limits::never`], the [`REFUSED`] paths of each real home) or where the mask
/// hides ([`Limits::hidden`]): what a hard link may be a second name of.
#[derive(Debug, Default)]
struct Names {
    by_inode: HashMap<(u64, u64), Vec<Name>>,
    /// The walk stopped at [`MAX_NAMES`]: an inode not found may still be there.
    partial: bool,
    dirs: HashSet<(u64, u64)>,
    looked: usize,
}

impl Names {
    /// Adds what is at `path` (followed when `depth` is 0, as given; never inside).
    fn add(&mut self, path: &Path, under: &Path, what: Option<&'static str>, depth: usize) {
        let meta = if depth == 0 {
            std::fs::metadata(path)
        } else {
            std::fs::symlink_metadata(path)
        };
        let Ok(meta) = meta else { return };
        if self.looked >= MAX_NAMES {
            self.partial = true;
            return;
        }
        self.looked += 1;
        if meta.is_dir() {
            if depth > MAX_DEPTH || !self.dirs.insert((meta.dev(), meta.ino())) {
                return;
            }
            let Ok(entries) = std::fs::read_dir(path) else {
                return;
            };
            for entry in entries.flatten() {
                self.add(&entry.path(), under, what, depth + 1);
            }
        } else if meta.is_file() && meta.nlink() > 1 {
            self.by_inode
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(Name {
                    path: path.to_owned(),
                    under: under.to_owned(),
                    what,
                });
        }
    }
}

impl<'a> SourceCheck<'a> {
    pub(super) fn new(
        config: &'a Config,
        limits: &'a Limits,
        shares: &[Share],
        allow_auth: bool,
    ) -> Self {
        let mut homes = Vec::new();
        for h in config.real_homes(true) {
            homes.push(h.clone());
            if let Ok(real) = crate::sys::fsutil::realpath(&h) {
                homes.push(real);
            }
        }
        let shared = shares
            .iter()
            .map(|s| match (s.source.parent(), s.source.file_name()) {
                (Some(dir), Some(name)) => crate::sys::fsutil::realpath(dir)
                    .map_or_else(|_| s.source.clone(), |d| d.join(name)),
                _ => s.source.clone(),
            })
            .collect();
        let mut scratch = Vec::new();
        for dir in [config.state_dir(), config.home.clone()] {
            if let Ok(real) = crate::sys::fsutil::realpath(&dir) {
                if real != dir {
                    scratch.push(real);
                }
            }
            scratch.push(dir);
        }
        SourceCheck {
            homes,
            limits,
            shared,
            allow_auth,
            caller: guard::command_env(config),
            names: OnceCell::new(),
            scratch,
            scratch_homes: scratch_homes(config),
        }
    }

    /// The share or an entry of a shared directory: `given` is where it was found, `real`
    /// where it leads; `ancestors` the directories being looked at above it.
    fn check_entry(
        &self,
        given: &Path,
        real: &Path,
        ancestors: &mut Vec<(u64, u64)>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(refuse(
                &given.display().to_string(),
                format!(
                    "shared directories nest too deep (more than {MAX_DEPTH} levels); share a part of it"
                ),
            ));
        }
        self.check_path(given, real)?;
        let meta = std::fs::metadata(given).map_err(|e| cannot_read(given, &e))?;
        if !meta.is_dir() {
            return self.check_file(given, real, &meta);
        }
        let key = (meta.dev(), meta.ino());
        if ancestors.contains(&key) {
            // A loop: the copy skips it, saying so.
            return Ok(());
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(given).map_err(|e| cannot_read(given, &e))? {
            names.push(entry.map_err(|e| cannot_read(given, &e))?.file_name());
        }
        names.sort();
        ancestors.push(key);
        for name in names {
            let path = given.join(&name);
            if name.as_bytes().contains(&b'\n') {
                continue; // Not shared (the copy says so).
            }
            if let Some(why) = entry_refusal(&name) {
                return Err(refuse(&path.display().to_string(), why));
            }
            let real = match crate::sys::fsutil::realpath(&path) {
                Ok(real) => real,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(cannot_read(&path, &e)),
            };
            self.check_entry(&path, &real, ancestors, depth + 1)?;
        }
        ancestors.pop();
        Ok(())
    }

    /// A shared file, found at `given`, leading to `real`, `meta` what it is.
    fn check_file(&self, given: &Path, real: &Path, meta: &std::fs::Metadata) -> Result<()> {
        self.check_kind(given, real, meta.mode())?;
        self.check_links(given, meta.dev(), meta.ino(), meta.nlink())?;
        if meta.len() > MAX_FILE {
            return Ok(()); // Left out by the copy, which says so.
        }
        open_source(given).map_err(|e| cannot_read(given, &e))?;
        self.check_settings(given, real)
    }

    /// Only regular files (and directories) are shared: a FIFO, a device or a socket is
    /// never opened.
    pub(super) fn check_kind(&self, given: &Path, real: &Path, mode: u32) -> Result<()> {
        if mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits() {
            return Ok(());
        }
        let kind = fsutil::describe_mode(mode);
        let what = if given == real {
            format!("is a {kind}")
        } else {
            format!("leads to {}, a {kind}", real.display())
        };
        Err(refuse(
            &given.display().to_string(),
            format!(
                "{what}; only regular files and directories are shared, and it is never read: remove it or stop sharing it"
            ),
        ))
    }

    /// A file with more than one name (a hard link) is judged by its other names, as a
    /// symlink is by where it leads: a second name of a credential or token file, or of a
    /// file the mask hides that no share names, is refused. Its other names are looked
    /// for where those files live; one found nowhere there (a hard-linked dotfiles
    /// checkout, a deduplicated store) is shared like any file.
    pub(super) fn check_links(&self, given: &Path, dev: u64, ino: u64, nlink: u64) -> Result<()> {
        if nlink <= 1 {
            return Ok(());
        }
        let shown = given.display().to_string();
        let names = self.names.get_or_init(|| self.index());
        let found = names
            .by_inode
            .get(&(dev, ino))
            .map_or(&[][..], Vec::as_slice);
        if let Some((n, what)) = found.iter().find_map(|n| n.what.map(|w| (n, w))) {
            return Err(refuse(
                &shown,
                format!(
                    "is a hard link of {} ({what}); it is never shared: delete this second name of it",
                    place(&n.path, &n.under)
                ),
            ));
        }
        if let Some(n) = found
            .iter()
            .find(|n| !self.shared.iter().any(|s| n.path.starts_with(s)))
        {
            return Err(refuse(
                &shown,
                format!(
                    "is a hard link of {}, which the mask hides (claude's credentials and settings); only what --share names there comes in: share that file by its own path, or delete the link",
                    place(&n.path, &n.under)
                ),
            ));
        }
        if found.is_empty() && names.partial {
            return Err(refuse(
                &shown,
                format!(
                    "has {nlink} names (hard links), and there are too many files where credentials live to look for the others (more than {MAX_NAMES}); replace it with a plain copy"
                ),
            ));
        }
        Ok(())
    }

    fn index(&self) -> Names {
        let mut names = Names::default();
        for (p, what) in &self.limits.never {
            names.add(p, p, Some(what), 0);
        }
        for home in &self.homes {
            for r in REFUSED {
                let p = home.join(r);
                names.add(&p, &p, Some("a file that holds credentials"), 0);
            }
        }
        // The credential files of every scratch home and their quarantined copies, by
        // name (each home and its `.claude`, not below): a hard link of one in any home
        // is another home's credential.
        for home in &self.scratch_homes {
            for dir in [home.clone(), home.join(CLAUDE_DIR)] {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if let Some(what) = credential_name(&name) {
                        let p = entry.path();
                        names.add(&p, &p, Some(what), 1);
                    }
                }
            }
        }
        for h in &self.limits.hidden {
            // Resolved, as the shares are: an entry is "inside a share" by its real path.
            let real = crate::sys::fsutil::realpath(h).unwrap_or_else(|_| h.clone());
            names.add(&real, &real, None, 0);
        }
        names
    }

    /// `given` is where a file was found, `real` where it leads.
    pub(super) fn check_path(&self, given: &Path, real: &Path) -> Result<()> {
        let shown = given.display().to_string();
        if let Some(fs) = kernel_fs(real) {
            return Err(refuse(
                &shown,
                format!(
                    "leads to {}, on {fs} (the kernel's, not a file of yours); it is never shared, nor read: remove the link",
                    real.display()
                ),
            ));
        }
        if let Some(what) = real.file_name().and_then(credential_name) {
            return Err(refuse(
                &shown,
                format!("leads to {}, {what}; it is never shared", real.display()),
            ));
        }
        if let Some(s) = self
            .scratch
            .iter()
            .find(|s| real.starts_with(s) || s.starts_with(real))
        {
            let how = if real.starts_with(s) {
                format!("leads to {}", place(real, s))
            } else {
                format!("holds {}", s.display())
            };
            return Err(refuse(
                &shown,
                format!(
                    "{how}, where claude-iso keeps its scratch homes (their sessions, quarantined credentials); a scratch home is never shared: share the files of your own home instead"
                ),
            ));
        }
        if let Some((p, what)) = self
            .limits
            .never
            .iter()
            .find(|(p, _)| real.starts_with(p) || p.starts_with(real))
        {
            return Err(refuse(
                &shown,
                format!(
                    "leads to {} ({what}, which the mask hides); it is never shared",
                    place(real, p)
                ),
            ));
        }
        self.check_in_homes(&shown, real)?;
        if let Some(h) = self
            .limits
            .hidden
            .iter()
            .find(|h| real.starts_with(h) || h.starts_with(real))
        {
            if !self.shared.iter().any(|s| real.starts_with(s)) {
                return Err(refuse(
                    &shown,
                    format!(
                        "leads to {}, which the mask hides (claude's credentials and settings); only what --share names there comes in: share it by its own path, or replace the symlink with a copy",
                        place(real, h)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `real` in a real home: refused when it is the home itself or a path of it never
    /// shared ([`refused`]).
    fn check_in_homes(&self, shown: &str, real: &Path) -> Result<()> {
        for home in &self.homes {
            if let Ok(rel) = real.strip_prefix(home) {
                if rel.as_os_str().is_empty() {
                    return Err(refuse(
                        shown,
                        "leads to your whole home; it is never shared",
                    ));
                }
                if let Some(why) = refused(rel) {
                    return Err(refuse(shown, format!("leads to {}: {why}", real.display())));
                }
            }
        }
        Ok(())
    }

    /// A settings file carried in (by its name or by where it leads) is judged by the
    /// same rule as a project's (the guard): a credential helper, an `env` entry
    /// claude-iso removes or one that sends the token elsewhere, or a file that cannot be
    /// judged, is refused unless allowed.
    fn check_settings(&self, given: &Path, real: &Path) -> Result<()> {
        if self.allow_auth
            || !(is_settings(given.file_name()) || is_settings(real.file_name()))
            || !real.is_file()
        {
            return Ok(());
        }
        match guard::judge_file(given, &self.caller).first() {
            Some(finding) => Err(settings_refusal(finding)),
            None => Ok(()),
        }
    }

    /// As [`Self::check_settings`], on the bytes being copied (what the command will read).
    pub(super) fn check_settings_bytes(
        &self,
        given: &Path,
        real: &Path,
        bytes: &[u8],
    ) -> Result<()> {
        if self.allow_auth || !(is_settings(given.file_name()) || is_settings(real.file_name())) {
            return Ok(());
        }
        let finding = |key: String, why: Why| Finding {
            path: given.to_owned(),
            target: (real != given).then(|| real.to_owned()),
            key,
            why,
        };
        let first = match guard::parse(bytes) {
            Ok(doc) => guard::judge(&doc, &self.caller)
                .into_iter()
                .next()
                .map(|(k, w)| finding(k, w)),
            Err(reason) => Some(finding(
                String::new(),
                Why::unjudgeable(reason, &self.caller),
            )),
        };
        match first {
            Some(f) => Err(settings_refusal(&f)),
            None => Ok(()),
        }
    }
}

/// Where `real` is, relative to the masked path `masked` it is, is inside, or holds.
fn place(real: &Path, masked: &Path) -> String {
    if real == masked {
        real.display().to_string()
    } else if real.starts_with(masked) {
        format!("{}, inside {}", real.display(), masked.display())
    } else {
        format!("{}, which holds {}", real.display(), masked.display())
    }
}

fn settings_refusal(finding: &Finding) -> Error {
    Error::Usage(format!(
        "--share: {}; remove it, or pass --allow-project-auth",
        finding.line()
    ))
}

/// A source opened for reading, following symlinks; never blocking (on a FIFO that
/// took a regular file's place since it was looked at) nor becoming a terminal.
pub(super) fn open_source(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::ffi::{OsStr, OsString};

    use super::*;
    use crate::isolate::share::plan;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn source_check<'a>(
        limits: &'a Limits,
        shared: &[&str],
        caller: &'a CallerEnv,
    ) -> SourceCheck<'a> {
        SourceCheck {
            homes: vec![PathBuf::from("/h")],
            limits,
            shared: shared.iter().map(PathBuf::from).collect(),
            allow_auth: false,
            caller: caller.clone(),
            names: OnceCell::new(),
            scratch: vec![PathBuf::from("/st/claude-iso"), PathBuf::from("/sh")],
            scratch_homes: Vec::new(),
        }
    }

    #[test]
    fn where_an_entry_leads_decides() {
        let limits = Limits {
            never: vec![
                ("/cfg".into(), "a claude config directory"),
                (
                    "/home/claude/.claude/remote".into(),
                    "claude's remote credentials",
                ),
                ("/h/.config/claude-iso/token.env".into(), "a token file"),
            ],
            hidden: vec!["/h/.claude".into()],
        };
        let caller = CallerEnv::default();
        let g = source_check(
            &limits,
            &[
                "/h/.claude/agents",
                "/h/.claude/CLAUDE.md",
                "/h/.config/git",
            ],
            &caller,
        );
        let given = Path::new("/h/.config/git/leak");
        let ok = |real: &str| g.check_path(given, Path::new(real)).is_ok();
        // What a share names in the hidden ~/.claude, and anything outside it.
        assert!(ok("/h/.claude/agents/x.md"));
        assert!(ok("/h/.claude/CLAUDE.md"));
        assert!(ok("/h/.config/git/ignore"));
        assert!(ok("/elsewhere/notes.md"));
        // Anything else the mask hides, or a directory holding it.
        for bad in [
            "/h/.claude/settings.json",
            "/h/.claude/CLAUDE.md.bak",
            "/h/.claude/projects/p/log.jsonl",
            "/h/.claude",
            "/cfg",
            "/cfg/settings.json",
            "/home/claude/.claude/remote/.api_key",
            "/home/claude",
            "/h/.config/claude-iso/token.env",
            "/h/.config/claude-iso",
            "/h",
            "/st/claude-iso/homes/n1/.claude",
            "/st/claude-iso/home/.claude/x.md",
            "/st",
            "/sh/notes",
            "/elsewhere/.credentials.json.quarantined-1700000000-1",
        ] {
            let e = g.check_path(given, Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains("/h/.config/git/leak") && e.contains(bad), "{e}");
        }
        // A share inside a never-shared place is refused even when named.
        let g = source_check(&limits, &["/cfg/agents"], &caller);
        assert!(g.check_path(given, Path::new("/cfg/agents/a.md")).is_err());
    }

    #[test]
    fn kernel_files_and_own_names() {
        for p in [
            "/proc/self/environ",
            "/proc",
            "/sys/kernel",
            "/dev/null",
            "/dev/shm/x",
        ] {
            assert!(kernel_fs(Path::new(p)).is_some(), "{p}");
        }
        assert_eq!(kernel_fs(Path::new("/etc/hostname")), None);
        assert_eq!(kernel_fs(Path::new("/procfs-like/x")), None);
        let home = Path::new("/h");
        for bad in [
            ".claude-iso.lock",
            ".claude-iso.shared",
            "~/.claude-iso.x/y",
        ] {
            let e = plan(home, Path::new("/h/.config"), &os(&[bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("claude-iso's own"), "{e}");
        }
        // At any depth: a directory holding one is (part of) a scratch home.
        let e = plan(
            home,
            Path::new("/h/.config"),
            &os(&["notes/.claude-iso.lock"]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at any depth"), "{e}");
        assert!(entry_refusal(OsStr::new(".claude-iso.shared")).is_some());
        assert!(entry_refusal(OsStr::new("claude-iso.md")).is_none());
    }
}
