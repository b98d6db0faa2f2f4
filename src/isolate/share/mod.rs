//! `--share`: the user's own claude and git configuration carried into the scratch home,
//! read-only, and never a credential.
//!
//! [`plan`] is pure: it turns the requests into (source in the real home, destination in
//! the scratch home) pairs and applies the refusal rules by name. [`check`] reads each
//! source once and judges every entry by where it really leads (symlinks resolved): into
//! a refused file, or into anything the mask hides or empties ([`Limits`]), it is refused
//! — the real `~/.claude` excepted only for what a share names in it; a hard link by its
//! other names, likewise. Nothing on a kernel filesystem, nothing but regular files and
//! directories, is ever opened. Every shared
//! `settings.json` / `settings.local.json` that would bring its own credential
//! (`apiKeyHelper`, a credential `env` entry) is refused unless `--allow-project-auth`.
//!
//! Without a mount namespace, [`apply`] makes a *copy* of each source in the scratch home
//! — files 0444, directories 0555 — replaced only when the source changed. A copy, not a
//! symlink: a symlink into the real home would let claude write through it. Whatever is
//! written to a copy (root ignores the modes) goes nowhere: the real file is never opened
//! for writing, and the next launch puts the changed copy aside and copies afresh.
//! `.claude-iso.shared` in the scratch home records which entries are our copies (inode
//! and ctime), so only those are ever replaced or removed; anything else in the way is
//! moved aside (kept), never deleted.

#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, mkdirat};
use nix::sys::statfs::{self, FsType};
use nix::unistd::{UnlinkatFlags, unlinkat};

use crate::caller::CallerEnv;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::home::ScratchHome;
use crate::isolate::guard::{self, Finding, Why};
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS, DEVICE_KEYS, OWN_PREFIX};
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, aside_tag, is_type};

/// The value of `--share` that stands for [`DEFAULT_SET`].
pub const DEFAULT: &str = "default";

/// `--share default`, relative to the real home (`.config/git` is taken from
/// `$XDG_CONFIG_HOME/git` when that is set, as git does).
pub const DEFAULT_SET: &[&str] = &[
    ".claude/CLAUDE.md",
    ".claude/agents",
    ".claude/commands",
    ".claude/skills",
    ".claude/output-styles",
    ".claude/keybindings.json",
    ".claude/settings.json",
    ".gitconfig",
    ".config/git",
];

/// Paths (relative to the real home) that are never shared, nor anything inside them,
/// nor anything that contains them: credentials of claude and of the tools it runs, and
/// claude-iso's own token files.
pub const REFUSED: &[&str] = &[
    ".claude.json",
    ".claude/.credentials.json",
    ".claude/.device-keys.json",
    ".claude/backups",
    ".claude/remote",
    ".config/anthropic",
    ".config/claude-iso",
    ".config/claude-auth-sync",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".ssh",
];

/// What a file of this name is, when it is a credential by its name alone: refused
/// wherever it appears (named, inside a shared directory, or where a link leads), in
/// every home. Copies count: `.credentials.json.quarantined-…` (moved out of a scratch
/// home), `token.env.replaced-…` (kept by `token set`, valid until it expires), a
/// `.credentials.json.bak` of the user's.
fn credential_name(name: &OsStr) -> Option<&'static str> {
    let b = name.as_bytes();
    let tag = name.to_str().and_then(aside_tag);
    if tag == Some("quarantined") {
        Some("a credentials file claude-iso quarantined out of a scratch home")
    } else if tag == Some("replaced") && !b.starts_with(CLAUDE_JSON.as_bytes()) {
        Some("a token file `token set` replaced, valid until it expires")
    } else if b.starts_with(CREDENTIALS.as_bytes()) || b.starts_with(DEVICE_KEYS.as_bytes()) {
        Some("a claude credentials file")
    } else if b.starts_with(CLAUDE_JSON.as_bytes()) {
        Some("claude's account file")
    } else {
        None
    }
}

/// claude-iso's own names (`.claude-iso.lock`, `.claude-iso.shared`, their temp files):
/// refused at any depth of a share. At the top they are the scratch home's own; deeper, a
/// directory holding one is (part of) a scratch home, never shared.
fn own_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(OWN_PREFIX.as_bytes())
}

/// Why an entry of a shared directory may not come in by its name, if it may not.
fn entry_refusal(name: &OsStr) -> Option<String> {
    if let Some(what) = credential_name(name) {
        return Some(format!(
            "is {what}; it is never shared: move it out of the shared directory"
        ));
    }
    own_name(name).then(|| own_name_refusal(name))
}

fn own_name_refusal(name: &OsStr) -> String {
    format!(
        "{OWN_PREFIX}* names are claude-iso's own (a scratch home's lock, the record of shared copies): {} is never shared, at any depth; rename or move it, or stop sharing what holds it",
        name.to_string_lossy()
    )
}

/// Settings files claude applies; each one carried in is judged like a project's.
const SETTINGS_NAMES: &[&str] = &[
    "settings.json",
    "settings.local.json",
    "cowork_settings.json",
];

fn is_settings(name: Option<&OsStr>) -> bool {
    name.is_some_and(|n| SETTINGS_NAMES.iter().any(|s| n == *s))
}

/// What `--share` must never carry in, by where an entry really leads: the paths the
/// mask hides or empties (built from the same sources as its plan, by
/// `mask::share_limits`), each given and resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Never shared, nor anything that holds one: (path, what it is). The credential
    /// files of every config dir, the token files, claude's fixed remote files, the
    /// Anthropic profile stores, `.claude.json`, the config dirs named by variables.
    pub never: Vec<(PathBuf, &'static str)>,
    /// Hidden whole by the mask, yet where the files of [`DEFAULT_SET`] live (each real
    /// `~/.claude`): an entry that leads inside is refused unless it is one of the shares
    /// being made, or inside one.
    pub hidden: Vec<PathBuf>,
}

/// The record of our copies, in the scratch home.
pub const MANIFEST: &str = ".claude-iso.shared";

/// Largest file copied (a config file, not data).
const MAX_FILE: u64 = 16 << 20;
/// Deepest nesting copied, symlinked directories included.
const MAX_DEPTH: usize = 32;

/// One thing to share: `source` (absolute, in the real home) seen at `dest` (relative to
/// the scratch home).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub source: PathBuf,
    pub dest: PathBuf,
    /// Named on the command line (a missing one is an error), not from `default`.
    pub explicit: bool,
}

fn refuse(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Usage(format!("--share {what}: {reason}"))
}

/// Turns the `--share` values into what to share. Pure: touches no file.
///
/// A value is `default` or a path relative to the real home (`~/` and an absolute path
/// inside the real home are accepted too).
///
/// # Errors
/// A path outside the real home, with `..`, the home itself, or a refused one (125).
pub fn plan(real_home: &Path, xdg_config: &Path, requests: &[OsString]) -> Result<Vec<Share>> {
    let mut out: Vec<Share> = Vec::new();
    let mut push = |share: Share| {
        if let Some(old) = out.iter_mut().find(|s| s.dest == share.dest) {
            old.explicit |= share.explicit;
        } else {
            out.push(share);
        }
    };
    for request in requests {
        let shown = request.to_string_lossy();
        if request == DEFAULT {
            for rel in DEFAULT_SET {
                let source = match rel.strip_prefix(".config/") {
                    Some(tail) => xdg_config.join(tail),
                    None => real_home.join(rel),
                };
                push(Share {
                    source,
                    dest: PathBuf::from(rel),
                    explicit: false,
                });
            }
            continue;
        }
        let path = Path::new(request);
        let rel = if let Ok(tail) = path.strip_prefix("~") {
            tail.to_owned()
        } else if path.is_absolute() {
            path.strip_prefix(real_home)
                .map_err(|_| {
                    refuse(
                        &shown,
                        format!(
                            "is not inside your home {}; only your own files can be shared",
                            real_home.display()
                        ),
                    )
                })?
                .to_owned()
        } else {
            path.to_owned()
        };
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::CurDir => {}
                _ => return Err(refuse(&shown, "use a path inside your home, without '..'")),
            }
        }
        if clean.as_os_str().is_empty() {
            return Err(refuse(
                &shown,
                "that is your whole home; name what to share (e.g. .claude/CLAUDE.md) or 'default'",
            ));
        }
        if let Some(own) = clean.components().find_map(|c| match c {
            Component::Normal(n) if own_name(n) => Some(n),
            _ => None,
        }) {
            return Err(refuse(&shown, own_name_refusal(own)));
        }
        if let Some(why) = refused(&clean) {
            return Err(refuse(&shown, why));
        }
        push(Share {
            source: real_home.join(&clean),
            dest: clean,
            explicit: true,
        });
    }
    // One share inside another (`--share .claude/agents --share .claude/agents/a.md`,
    // or `default` and a file it already carries) would have two copies claim one place.
    for inner in &out {
        if let Some(outer) = out
            .iter()
            .find(|o| o.dest != inner.dest && inner.dest.starts_with(&o.dest))
        {
            return Err(refuse(
                &inner.dest.to_string_lossy(),
                format!(
                    "is inside {}, which is shared already{}; share one or the other",
                    outer.dest.display(),
                    if outer.explicit { "" } else { " (by default)" }
                ),
            ));
        }
    }
    Ok(out)
}

/// Why a path relative to the home may not be shared, if it may not.
#[must_use]
pub fn refused(rel: &Path) -> Option<String> {
    if let Some((name, what)) = rel.components().find_map(|c| match c {
        Component::Normal(n) => credential_name(n).map(|w| (n, w)),
        _ => None,
    }) {
        return Some(format!(
            "{} is {what}; it is never shared",
            name.to_string_lossy()
        ));
    }
    for r in REFUSED {
        let r = Path::new(r);
        if rel.starts_with(r) {
            return Some(format!(
                "{} holds credentials; it is never shared",
                r.display()
            ));
        }
        if r.starts_with(rel) {
            return Some(format!(
                "contains {}, which holds credentials; share the parts you need instead (e.g. --share default)",
                r.display()
            ));
        }
    }
    None
}

/// Looks at each source once, before anything is changed, and refuses what the copy
/// ([`apply`]) would refuse or fail on, so that a dry run and a launch agree and a
/// refusal leaves nothing behind (not even a new named home):
/// - a missing explicit source;
/// - an entry (the share or anything inside a shared directory, symlinks followed) that
///   leads to a refused or token file or into what the mask hides ([`Limits`]);
/// - a hard link whose other name is such a file ([`Guard::check_links`]);
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
    let guard = Guard::new(config, limits, shares, allow_auth);
    let mut out = Vec::new();
    for share in shares {
        let shown = share.source.display().to_string();
        let real = match std::fs::canonicalize(&share.source) {
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
        guard.check_entry(&share.source, &real, &mut Vec::new(), 0)?;
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

/// The `settings.json` this launch shares (already [`check`]ed), which replaces the
/// scratch home's user settings: the guard judges it in their place.
#[must_use]
pub fn user_settings(shares: &[Share]) -> guard::Shared<'_> {
    let source = |name: &str| {
        let dest = Path::new(CLAUDE_DIR).join(name);
        shares
            .iter()
            .find(|s| s.dest == dest)
            .map(|s| s.source.as_path())
    };
    guard::Shared {
        settings: source("settings.json"),
        cowork: source(guard::COWORK_SETTINGS),
    }
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

fn kernel_type(kind: FsType) -> Option<&'static str> {
    KERNEL_FS.iter().find(|(t, _)| *t == kind).map(|(_, n)| *n)
}

/// The refusal rules applied to what a path really is.
struct Guard<'a> {
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

impl<'a> Guard<'a> {
    fn new(config: &'a Config, limits: &'a Limits, shares: &[Share], allow_auth: bool) -> Self {
        let mut homes = Vec::new();
        for h in config.real_homes(true) {
            homes.push(h.clone());
            if let Ok(real) = std::fs::canonicalize(&h) {
                homes.push(real);
            }
        }
        let shared = shares
            .iter()
            .map(|s| match (s.source.parent(), s.source.file_name()) {
                (Some(dir), Some(name)) => {
                    std::fs::canonicalize(dir).map_or_else(|_| s.source.clone(), |d| d.join(name))
                }
                _ => s.source.clone(),
            })
            .collect();
        let mut scratch = Vec::new();
        for dir in [config.state_dir(), config.home.clone()] {
            if let Ok(real) = std::fs::canonicalize(&dir) {
                if real != dir {
                    scratch.push(real);
                }
            }
            scratch.push(dir);
        }
        Guard {
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
            let real = match std::fs::canonicalize(&path) {
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
    fn check_kind(&self, given: &Path, real: &Path, mode: u32) -> Result<()> {
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
    fn check_links(&self, given: &Path, dev: u64, ino: u64, nlink: u64) -> Result<()> {
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
            let real = std::fs::canonicalize(h).unwrap_or_else(|_| h.clone());
            names.add(&real, &real, None, 0);
        }
        names
    }

    /// `given` is where a file was found, `real` where it leads.
    fn check_path(&self, given: &Path, real: &Path) -> Result<()> {
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
        for home in &self.homes {
            if let Ok(rel) = real.strip_prefix(home) {
                if rel.as_os_str().is_empty() {
                    return Err(refuse(
                        &shown,
                        "leads to your whole home; it is never shared",
                    ));
                }
                if let Some(why) = refused(rel) {
                    return Err(refuse(
                        &shown,
                        format!("leads to {}: {why}", real.display()),
                    ));
                }
            }
        }
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
    fn check_settings_bytes(&self, given: &Path, real: &Path, bytes: &[u8]) -> Result<()> {
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
fn open_source(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
}

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

/// The `--dry-run` lines for `shares` (already [`check`]ed).
pub fn print_plan(shares: &[Share], home: &Path, report: &Report) {
    if shares.is_empty() {
        return;
    }
    for s in shares {
        report.plan(format!(
            "share: {} -> {} (read-only copy)",
            s.source.display(),
            home.join(&s.dest).display()
        ));
    }
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
/// A file that cannot be read or written; what [`check`] refuses, found again (the real
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
        guard: Guard::new(config, limits, shares, config.allow_project_auth),
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
    guard: Guard<'a>,
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
        .map_err(|e| self.err(Path::new(""), e.desc()))?;
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
        let src_meta = match source {
            Some(src) => match std::fs::metadata(src) {
                Ok(m) => Some((src, m)),
                Err(e) => {
                    self.report.warn(format!(
                        "share: cannot read {}: {}; not shared",
                        src.display(),
                        crate::error::error_text(&e)
                    ));
                    None
                }
            },
            None => None,
        };
        let mut real = PathBuf::new();
        if let Some((src, _)) = &src_meta {
            if let Some(why) = entry_refusal(name) {
                return Err(refuse(&src.display().to_string(), why));
            }
            real = std::fs::canonicalize(src).map_err(|e| {
                self.err(
                    rel,
                    format!(
                        "cannot resolve {}: {}",
                        src.display(),
                        crate::error::error_text(&e)
                    ),
                )
            })?;
            self.guard.check_path(src, &real)?;
        }
        let dst = fsutil::lstat_at(dir, name).map_err(|e| self.err(rel, e.desc()))?;
        match src_meta {
            Some((src, m)) if m.is_dir() => {
                let key = (m.dev(), m.ino());
                if !self.visited.insert(key) {
                    self.report
                        .warn(format!("share: {} loops back; skipped", src.display()));
                    return Ok(());
                }
                let sub = self.own_dir(dir, name, rel, dst.as_ref())?;
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
                        &sub,
                        &entry,
                        &rel.join(&entry),
                        depth + 1,
                    )?;
                }
                self.visited.remove(&key);
                self.sweep(&sub, rel, &wanted, depth)?;
                fchmod(&sub, Mode::from_bits_truncate(0o555))
                    .map_err(|e| self.err(rel, e.desc()))?;
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
        let sub = fsutil::open_dir_at(dir, name)
            .map_err(|e| self.err(rel, format!("cannot open: {}", e.desc())))?;
        fchmod(&sub, Mode::from_bits_truncate(0o700)).map_err(|e| self.err(rel, e.desc()))?;
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
        self.guard.check_kind(src, real, st.st_mode)?;
        if let Some(fs) = statfs::fstatfs(&file)
            .ok()
            .and_then(|f| kernel_type(f.filesystem_type()))
        {
            return Err(refuse(
                &src.display().to_string(),
                format!("is on {fs} (the kernel's); it is never shared, nor read"),
            ));
        }
        self.guard
            .check_links(src, st.st_dev, st.st_ino, st.st_nlink)?;
        let bytes = read_limited(file).map_err(|e| cannot(&crate::error::error_text(&e)))?;
        self.guard.check_settings_bytes(src, real, &bytes)?;
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
        let names = fsutil::dir_entries(sub).map_err(|e| self.err(rel, e.desc()))?;
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
                fsutil::lstat_at(sub, name.as_os_str()).map_err(|e| self.err(rel, e.desc()))?;
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
            let sub = fsutil::open_dir_at(dir, name).map_err(|e| self.err(rel, e.desc()))?;
            fchmod(&sub, Mode::from_bits_truncate(0o700)).map_err(|e| self.err(rel, e.desc()))?;
            self.sweep(&sub, rel, &HashSet::new(), depth)?;
            drop(sub);
            if let Err(e) = unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
                // Something not ours is left inside: the directory stays, writable.
                if e != Errno::ENOTEMPTY {
                    return Err(self.err(rel, e.desc()));
                }
            }
        } else {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(|e| self.err(rel, e.desc()))?;
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
                    .map_err(|e| self.err(rel, e.desc()))?;
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
            .map_err(|e| self.err(Path::new(MANIFEST), e.desc()))?;
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

use std::os::unix::fs::MetadataExt;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn default_set_and_paths() {
        let home = Path::new("/h");
        let p = plan(
            home,
            Path::new("/x/cfg"),
            &os(&["default", "~/.claude/CLAUDE.md", "/h/notes"]),
        )
        .unwrap();
        assert_eq!(p.len(), DEFAULT_SET.len() + 1);
        assert!(
            p.iter()
                .any(|s| s.dest == Path::new(".config/git") && s.source == Path::new("/x/cfg/git"))
        );
        let md = p
            .iter()
            .find(|s| s.dest == Path::new(".claude/CLAUDE.md"))
            .unwrap();
        assert!(md.explicit);
        assert!(p.iter().any(|s| s.dest == Path::new("notes") && s.explicit));
    }

    fn guard<'a>(limits: &'a Limits, shared: &[&str], caller: &'a CallerEnv) -> Guard<'a> {
        Guard {
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
        let g = guard(
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
        let g = guard(&limits, &["/cfg/agents"], &caller);
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

    #[test]
    fn credential_names_and_their_copies() {
        for (name, what) in [
            (".credentials.json", "claude credentials"),
            (".credentials.json.bak", "claude credentials"),
            (".credentials.json.quarantined-1700000000-0", "quarantined"),
            (".device-keys.json", "claude credentials"),
            (".device-keys.json~", "claude credentials"),
            (".claude.json", "account"),
            (".claude.json.replaced-1700000000-0", "account"),
            ("token.env.replaced-1700000000-12", "replaced"),
            ("anything.quarantined-1-1", "quarantined"),
        ] {
            let got = credential_name(OsStr::new(name)).unwrap_or_default();
            assert!(got.contains(what), "{name}: {got:?}");
        }
        for name in [
            "credentials.json",
            "CLAUDE.md",
            "token.env.meta.json",
            "notes.unshared-1700000000-1",
            "x.replaced-soon",
        ] {
            assert_eq!(credential_name(OsStr::new(name)), None, "{name}");
        }
    }

    #[test]
    fn credentials_are_refused() {
        let home = Path::new("/h");
        for bad in [
            ".claude/.credentials.json",
            "~/.claude/.credentials.json",
            "/h/.claude/.credentials.json",
            ".claude/.device-keys.json",
            ".claude.json",
            ".claude.json.backup",
            ".claude",
            ".config",
            ".config/anthropic",
            ".config/anthropic/x",
            ".config/claude-iso/token.env",
            ".ssh/id_ed25519",
            "stuff/.credentials.json",
            ".",
            "",
            "../other",
            "/etc/passwd",
        ] {
            assert!(
                plan(home, Path::new("/h/.config"), &os(&[bad])).is_err(),
                "{bad}"
            );
        }
    }
}
