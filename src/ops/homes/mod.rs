//! `claude-iso homes`: the homes claude-iso made (the default one and each named one),
//! what is in them, and `homes prune` to remove those not launched for a while.
//!
//! Everything inside a home is read and removed through directory descriptors with
//! `O_NOFOLLOW`: a symlink is listed or unlinked, never followed, so nothing outside the
//! homes is ever read or removed. A home is *in use*, and never pruned, while its
//! `.claude-iso.lock` is locked (a launch preparing it, or anyone holding `flock(1)` on
//! it), while claude's own `.claude.json.lock` is fresh, or while a process of the caller
//! runs with it as `HOME`.

#![forbid(unsafe_code)]

mod busy;
mod prune;

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use serde_json::{Value, json};

use crate::caller::CallerEnv;
use crate::cli::{HomesAction, HomesArgs, LaunchArgs};
use crate::config::{Config, is_valid_name};
use crate::error::{Area, Error, Outcome, Result, SysContext};
use crate::layout::{
    CLAUDE_JSON, CLAUDE_TEMP_PREFIX, DEFAULT_HOME, HOMES_DIR, OWN_LOCK, PROJECTS, TEMP_PREFIX,
    TRUSTED,
};
use crate::report::{redact_secrets, stdout_bytes};
use crate::sys::fsutil::{aside_tag, is_type, lstat_at};
use crate::sys::time::{now as now_secs, utc};
use busy::{Busy, homes_of_processes, in_use};
use prune::prune;

/// The version of the `homes --json` document; bumped only when a field changes meaning
/// or disappears (new fields may be added without a bump).
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// Deepest directory nesting walked or removed.
const MAX_DEPTH: usize = 256;

/// What `homes` reports of one home.
#[derive(Debug, Clone)]
pub(crate) struct HomeInfo {
    /// `None` for the default home.
    pub name: Option<String>,
    pub path: PathBuf,
    /// Apparent size of every file below the home (not directories), each inode once.
    pub size_bytes: u64,
    /// When claude-iso last launched in it (mtime of `.claude-iso.lock`), Unix seconds.
    pub last_launch: Option<i64>,
    /// Why the home is in use, if it is.
    pub in_use: Option<String>,
    /// Directories trusted in its `.claude.json`; `None` when that file is unreadable.
    pub seeded_dirs: Option<usize>,
    /// Credential files claude-iso moved aside (`*.quarantined-*`), relative to the home.
    pub quarantined: Vec<String>,
    /// Other files moved aside (`.claude.json.corrupt-*`, `.replaced-*`, …).
    pub set_aside: Vec<String>,
    /// Temp files left next to `.claude.json` by an interrupted write.
    pub temp_files: Vec<String>,
    /// Mtime of the home directory, for a home never launched.
    dir_mtime: i64,
}

impl HomeInfo {
    /// The home's name as shown: its name, or `(default)`.
    #[must_use]
    pub(crate) fn shown_name(&self) -> &str {
        self.name.as_deref().unwrap_or("(default)")
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "default": self.name.is_none(),
            "path": self.path.to_string_lossy(),
            "size_bytes": self.size_bytes,
            "last_launch": self.last_launch,
            "in_use": self.in_use.is_some(),
            "seeded_dirs": self.seeded_dirs,
            "quarantined": self.quarantined,
            "set_aside": self.set_aside,
            "temp_files": self.temp_files,
        })
    }
}

fn home_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Home {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

pub(crate) use crate::home::stamp::STAMP_EVERY;

/// `claude-iso homes [--json]` and `claude-iso homes prune`.
///
/// # Errors
/// Bad options, an unusable state directory, or (prune) a home that could not be removed.
pub(crate) fn main(args: &HomesArgs) -> Result<Outcome> {
    let config = Config::new(&LaunchArgs::default(), CallerEnv::from_process())?;
    match &args.action {
        None => list(&config, args.json),
        Some(HomesAction::Prune(prune_args)) => prune(&config, prune_args),
    }
}

/// A directory holding homes, opened without following its last component.
struct Parent {
    path: PathBuf,
    fd: OwnedFd,
}

fn open_parent(path: &Path) -> Result<Option<Parent>> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(Some(Parent {
            path: path.to_owned(),
            fd,
        })),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Err(home_err(
            path,
            "is not a directory (a symlink?); claude-iso keeps its homes in a real directory",
        )),
        Err(e) => Err(home_err(path, format!("cannot open: {}", e.desc()))),
    }
}

/// One home found: where it is (parent descriptor and entry name) and its name.
struct Found {
    parent: usize,
    entry: OsString,
    name: Option<String>,
    path: PathBuf,
}

/// The default home, then the named homes in byte order. Entries of `homes/` that are
/// not homes (a bad name, not a directory) are skipped with a note on stderr.
fn find(config: &Config) -> Result<(Vec<Parent>, Vec<Found>)> {
    let mut parents = Vec::new();
    let mut found = Vec::new();
    let Some(state) = open_parent(&config.state_dir())? else {
        return Ok((parents, found));
    };
    if lstat_at(&state.fd, DEFAULT_HOME)
        .at(Area::Home, &state.path)?
        .is_some_and(|st| is_type(&st, SFlag::S_IFDIR))
    {
        found.push(Found {
            parent: 0,
            entry: DEFAULT_HOME.into(),
            name: None,
            path: config.default_home(),
        });
    }
    let homes_path = state.path.join(HOMES_DIR);
    parents.push(state);
    let Some(homes) = open_parent(&homes_path)? else {
        return Ok((parents, found));
    };
    let mut names = crate::sys::fsutil::dir_entries(&homes.fd).at(Area::Home, &homes.path)?;
    names.sort();
    for entry in names {
        let shown = homes.path.join(&entry);
        let Some(name) = entry.to_str().filter(|n| is_valid_name(n)) else {
            if !entry.as_bytes().starts_with(b".") {
                note(&format!(
                    "skipped {}: not a valid home name",
                    shown.display()
                ));
            }
            continue;
        };
        match lstat_at(&homes.fd, name) {
            Ok(Some(st)) if is_type(&st, SFlag::S_IFDIR) => found.push(Found {
                parent: 1,
                name: Some(name.to_owned()),
                entry: entry.clone(),
                path: shown,
            }),
            Ok(Some(st)) => note(&format!(
                "skipped {}: a {}, not a home",
                shown.display(),
                crate::sys::fsutil::describe_mode(st.st_mode)
            )),
            Ok(None) => {}
            Err(e) => note(&format!("skipped {}: {}", shown.display(), e.desc())),
        }
    }
    parents.push(homes);
    Ok((parents, found))
}

fn note(msg: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "claude-iso: {}",
        redact_secrets(msg)
    );
}

fn secs(st: &FileStat) -> i64 {
    st.st_mtime
}

/// Looks at one home; reads only.
fn inspect(found: &Found, dir: &OwnedFd, busy_homes: &Busy) -> Result<HomeInfo> {
    let path = &found.path;
    let st = fstat(dir).at(Area::Home, path)?;
    let mut walk = Walk::default();
    walk.dir(dir, st.st_dev, 0, "");
    walk.sort();
    let lock = lstat_at(dir, OWN_LOCK).at(Area::Home, path)?;
    let last_launch = lock
        .filter(|st| is_type(st, SFlag::S_IFREG))
        .map(|st| secs(&st));
    let info = HomeInfo {
        name: found.name.clone(),
        path: path.clone(),
        size_bytes: walk.size,
        last_launch,
        in_use: in_use(dir, path, busy_homes),
        seeded_dirs: seeded_dirs(dir, path),
        quarantined: walk.quarantined,
        set_aside: walk.set_aside,
        temp_files: walk.temp_files,
        dir_mtime: secs(&st),
    };
    Ok(info)
}

/// What one walk of a home finds: its size, and the files set aside or left behind
/// anywhere in it (a copy of `--share` is set aside wherever the shared tree has it).
#[derive(Default)]
struct Walk {
    /// Apparent size of every non-directory, each inode once.
    size: u64,
    seen: HashSet<(u64, u64)>,
    quarantined: Vec<String>,
    set_aside: Vec<String>,
    temp_files: Vec<String>,
}

/// The prefix of the temp files of `--share` copies, in any shared directory.
const SHARE_TEMP_PREFIX: &str = ".claude-iso-share.";

impl Walk {
    /// Everything below `dir` (at `prefix`, relative to the home), not crossing into
    /// another filesystem, never following a symlink, at most [`MAX_DEPTH`] deep.
    fn dir(&mut self, dir: &OwnedFd, dev: u64, depth: usize, prefix: &str) {
        if depth > MAX_DEPTH {
            return;
        }
        let Ok(names) = crate::sys::fsutil::dir_entries(dir) else {
            return;
        };
        for name in names {
            let Ok(Some(st)) = crate::sys::fsutil::lstat_at(dir, name.as_os_str()) else {
                continue;
            };
            let shown = name.to_string_lossy();
            if let Some(n) = name.to_str() {
                self.classify(n, &format!("{prefix}{n}"), depth);
            }
            if is_type(&st, SFlag::S_IFDIR) {
                if st.st_dev != dev {
                    continue;
                }
                if let Ok(sub) = crate::sys::fsutil::open_dir_at(dir, name.as_os_str()) {
                    self.dir(&sub, dev, depth + 1, &format!("{prefix}{shown}/"));
                }
            } else if self.seen.insert((st.st_dev, st.st_ino)) {
                self.size = self
                    .size
                    .saturating_add(u64::try_from(st.st_size).unwrap_or(0));
            }
        }
    }

    fn classify(&mut self, name: &str, rel: &str, depth: usize) {
        let temp = name.starts_with(SHARE_TEMP_PREFIX) && name.ends_with(".tmp")
            || depth == 0
                && ((name.starts_with(TEMP_PREFIX) && name.ends_with(".tmp"))
                    || name.starts_with(CLAUDE_TEMP_PREFIX));
        if temp {
            self.temp_files.push(rel.to_owned());
        } else if let Some(tag) = aside_tag(name) {
            if tag == "quarantined" {
                self.quarantined.push(rel.to_owned());
            } else {
                self.set_aside.push(rel.to_owned());
            }
        }
    }

    /// Shallow first, then by name: the home's own files before those deeper in it.
    fn sort(&mut self) {
        for list in [
            &mut self.quarantined,
            &mut self.set_aside,
            &mut self.temp_files,
        ] {
            list.sort_by(|a, b| {
                (a.matches('/').count(), a.as_str()).cmp(&(b.matches('/').count(), b.as_str()))
            });
        }
    }
}

/// Directories marked trusted in the home's `.claude.json`.
fn seeded_dirs(dir: &OwnedFd, path: &Path) -> Option<usize> {
    let shown = path.join(CLAUDE_JSON);
    let Ok(Some((mut file, _))) = crate::home::seed::open_config(dir, &shown) else {
        // Missing: nothing seeded yet; unreadable: unknown.
        return lstat_at(dir, CLAUDE_JSON)
            .ok()
            .and_then(|st| st.is_none().then_some(0));
    };
    let mut text = Vec::new();
    file.read_to_end(&mut text).ok()?;
    let doc: Value = serde_json::from_str(&String::from_utf8_lossy(&text)).ok()?;
    let projects = doc.get(PROJECTS)?.as_object();
    Some(projects.map_or(0, |p| {
        p.values()
            .filter(|v| v.get(TRUSTED) == Some(&Value::Bool(true)))
            .count()
    }))
}

/// The directories holding homes, and each home found with what was seen in it.
type Collected = (Vec<Parent>, Vec<(Found, HomeInfo)>);

fn collect(config: &Config) -> Result<Collected> {
    let (parents, found) = find(config)?;
    let busy = homes_of_processes();
    let mut out = Vec::new();
    for f in found {
        let dir = match crate::sys::fsutil::open_dir_at(&parents[f.parent].fd, f.entry.as_os_str())
        {
            Ok(fd) => fd,
            Err(e) => {
                note(&format!("skipped {}: {}", f.path.display(), e.desc()));
                continue;
            }
        };
        let info = inspect(&f, &dir, &busy)?;
        out.push((f, info));
    }
    Ok((parents, out))
}

fn list(config: &Config, as_json: bool) -> Result<Outcome> {
    let (_, homes) = collect(config)?;
    let mut out = String::new();
    if as_json {
        let doc = json!({
            "version": SCHEMA_VERSION,
            "state_dir": config.state_dir().to_string_lossy(),
            "homes": homes.iter().map(|(_, h)| h.to_json()).collect::<Vec<_>>(),
        });
        out = format!("{doc:#}\n");
    } else if homes.is_empty() {
        out.push_str(&format!("no homes in {}\n", esc(&config.state_dir())));
    } else {
        let now = now_secs();
        out.push_str(&format!(
            "{:<20} {:>10}  {:<33} {:>6}  {}\n",
            "NAME", "SIZE", "LAST LAUNCH", "SEEDED", "PATH"
        ));
        for (_, h) in &homes {
            let last = h
                .last_launch
                .map_or_else(|| "never".to_owned(), |t| last_launch(t, now));
            let seeded = h
                .seeded_dirs
                .map_or_else(|| "?".to_owned(), |n| n.to_string());
            out.push_str(&format!(
                "{:<20} {:>10}  {:<33} {:>6}  {}\n",
                h.shown_name(),
                human_size(h.size_bytes),
                last,
                seeded,
                esc(&h.path)
            ));
            if let Some(why) = &h.in_use {
                out.push_str(&format!("  in use: {why}\n"));
            }
            for (what, list) in [
                ("quarantined", &h.quarantined),
                ("set aside", &h.set_aside),
                ("temp file", &h.temp_files),
            ] {
                for f in list {
                    out.push_str(&format!("  {what}: {}\n", redact_secrets(f)));
                }
            }
        }
    }
    print_lines(&out);
    Ok(Outcome::Success)
}

/// A path as shown: control characters escaped, secrets redacted.
fn esc(path: &Path) -> String {
    redact_secrets(&path.display().to_string())
}

/// Prints `text` line by line, each made safe (a newline inside a path stays escaped).
fn print_lines(text: &str) {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        out.push_str(&redact_secrets(line));
        out.push('\n');
    }
    stdout_bytes(out.as_bytes());
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A last launch as precisely as it is kept: the stamp is renewed at most every
/// [`STAMP_EVERY`] seconds, so the launch lies somewhere in the hour after it. The day,
/// and hours or days ago.
fn last_launch(stamp: i64, now: i64) -> String {
    let age = now - stamp;
    if (0..STAMP_EVERY).contains(&age) {
        return "within the last hour".into();
    }
    let day = &utc(stamp)[..10];
    match age {
        a if a < 0 => format!("{day} (in the future)"),
        a if a < 2 * 86400 => format!("{day} ({}h ago)", a / 3600),
        a => format!("{day} ({}d ago)", a / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::prune::unescape_mount;
    use super::*;

    #[test]
    fn last_launch_is_shown_as_precisely_as_it_is_kept() {
        let stamp = 1_700_000_000; // 2023-11-14T22:13:20Z
        assert_eq!(last_launch(stamp, stamp), "within the last hour");
        assert_eq!(last_launch(stamp, stamp + 3599), "within the last hour");
        assert_eq!(last_launch(stamp, stamp + 3600), "2023-11-14 (1h ago)");
        assert_eq!(last_launch(stamp, stamp + 5 * 86400), "2023-11-14 (5d ago)");
        assert_eq!(last_launch(stamp, stamp - 10), "2023-11-14 (in the future)");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn mount_escapes() {
        assert_eq!(unescape_mount(r"/a\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mount("/plain"), PathBuf::from("/plain"));
    }
}
