//! The one test harness, shared by both test binaries (`tests/cli/main.rs` and
//! `tests/e2e/main.rs` include it as `mod support`):
//!
//! - [`sandbox`]: the built `claude-iso` run in a sandbox, with a probe standing in for
//!   the command (the suites that need no claude);
//! - [`world`]: the real claude CLI behind claude-iso, in a hostile caller environment
//!   pointing at a decoy real home (the end-to-end suites);
//! - [`fake_api`]: a fake Messages API on 127.0.0.1; [`http1`]: a minimal HTTP/1.1
//!   client; [`tui`]: a tmux driver.
//!
//! Each binary uses a different part of it, so unused items are not warned about.
#![allow(dead_code)]

pub mod fake_api;
pub mod http1;
pub mod sandbox;
pub mod tui;
pub mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The claude-iso binary under test.
pub const CLAUDE_ISO: &str = env!("CARGO_BIN_EXE_claude-iso");

/// Whether the tests run as root (some fixtures, like foreign ownership or a tmpfs,
/// need it; the alternatives are chosen per test).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Writes `text` to `path` with `mode`, set exactly (not through the umask).
pub fn write_mode(path: &Path, text: impl AsRef<[u8]>, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chmod(path, mode);
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// The permission bits of `path` (not following a symlink).
pub fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .mode()
        & 0o7777
}

pub fn mkdir(path: &Path) -> PathBuf {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    path.to_owned()
}

pub fn realpath(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|e| panic!("realpath {}: {e}", path.display()))
}

/// One entry of a [`tree`] snapshot: everything a change would alter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub ino: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub content: Vec<u8>,
}

/// A snapshot of everything under `root` (not following symlinks): type, mode, owner,
/// size, inode, mtime, ctime, file contents and link targets. Equal snapshots mean
/// nothing was created, removed, renamed, written or chmod'ed. FIFOs are not opened; a
/// directory that cannot be listed (not root, mode 0) is recorded but not entered.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    tree_without(root, &[])
}

/// [`tree`] without the paths `skip` (relative to `root`) and what is below them: those
/// are not even read.
fn tree_without(root: &Path, skip: &[PathBuf]) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

fn walk(root: &Path, path: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, Entry>) {
    let rel = path.strip_prefix(root).unwrap();
    if skip.iter().any(|s| rel.starts_with(s)) {
        return;
    }
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    let ft = meta.file_type();
    // Gone meanwhile (a test may change the tree while it is read): not there.
    let (kind, content) = if ft.is_symlink() {
        let Ok(target) = fs::read_link(path) else {
            return;
        };
        ("symlink", target.into_os_string().into_vec())
    } else if ft.is_dir() {
        ("dir", Vec::new())
    } else if ft.is_file() {
        let mut bytes = Vec::new();
        if let Ok(mut f) = fs::File::open(path) {
            let _ = f.read_to_end(&mut bytes);
        }
        ("file", bytes)
    } else {
        ("special", Vec::new())
    };
    out.insert(
        rel.to_owned(),
        Entry {
            kind,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            content,
        },
    );
    if ft.is_dir() {
        let Ok(entries) = fs::read_dir(path) else {
            return;
        };
        let mut names: Vec<_> = entries.filter_map(|e| Some(e.ok()?.file_name())).collect();
        names.sort();
        for name in names {
            walk(root, &path.join(name), skip, out);
        }
    }
}

/// The state on disk under a directory, taken before something that must change nothing
/// there (a refusal: no home, no `.claude.json`, no quarantine, no lock, no socket), to
/// compare with afterwards. Paths given to [`Unchanged::skipping`] (relative to the
/// directory) are left out with everything below them.
pub struct Unchanged {
    root: PathBuf,
    skip: Vec<PathBuf>,
    before: BTreeMap<PathBuf, Entry>,
}

impl Unchanged {
    pub fn new(root: &Path) -> Self {
        Self::skipping(root, &[])
    }

    pub fn skipping(root: &Path, skip: &[&str]) -> Self {
        let mut u = Unchanged {
            root: root.to_owned(),
            skip: skip.iter().map(PathBuf::from).collect(),
            before: BTreeMap::new(),
        };
        u.before = u.now();
        u
    }

    fn now(&self) -> BTreeMap<PathBuf, Entry> {
        tree_without(&self.root, &self.skip)
    }

    /// What was added, removed or changed since the snapshot, one line each.
    pub fn changes(&self) -> Vec<String> {
        self.changes_where(|_| false)
    }

    /// [`Unchanged::changes`], except that a directory whose times (and size) alone
    /// changed counts as unchanged: something was created in it and removed again.
    pub fn changes_but_directory_times(&self) -> Vec<String> {
        self.changes_where(|e| e.kind == "dir")
    }

    fn changes_where(&self, times_may_differ: impl Fn(&Entry) -> bool) -> Vec<String> {
        let same = |a: &Entry, b: &Entry| {
            if times_may_differ(a) {
                (a.kind, a.mode, a.uid, a.gid, a.ino, &a.content)
                    == (b.kind, b.mode, b.uid, b.gid, b.ino, &b.content)
            } else {
                a == b
            }
        };
        let after = self.now();
        let mut out = Vec::new();
        for (p, e) in &self.before {
            match after.get(p) {
                None => out.push(format!("removed: {}", p.display())),
                Some(a) if !same(e, a) => out.push(format!("changed: {}", p.display())),
                Some(_) => {}
            }
        }
        for p in after.keys().filter(|p| !self.before.contains_key(*p)) {
            out.push(format!("added:   {}", p.display()));
        }
        out
    }

    /// Nothing under the directory was added, removed or changed.
    #[track_caller]
    pub fn assert(&self, what: &str) {
        let changes = self.changes();
        if !changes.is_empty() {
            let mut list = String::new();
            for c in &changes {
                let _ = write!(list, "\n  {c}");
            }
            panic!(
                "{what} changed what is on disk under {}:{list}",
                self.root.display()
            );
        }
    }
}
