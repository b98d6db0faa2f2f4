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

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, RenameFlags, open, openat, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, futimens};
use nix::sys::time::TimeSpec;
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde_json::{Value, json};

use crate::caller::CallerEnv;
use crate::cli::{HomesAction, HomesArgs, LaunchArgs, PruneArgs};
use crate::config::{Config, is_valid_name};
use crate::error::{Error, Outcome, Result};
use crate::home::ScratchHome;
use crate::layout::{
    CLAUDE_DIR, CLAUDE_JSON, CLAUDE_LOCK, CLAUDE_TEMP_PREFIX, DEFAULT_HOME, HOMES_DIR, OWN_LOCK,
    PROJECTS, STALE_AFTER, TEMP_PREFIX, TRUSTED,
};
use crate::report::{redact_secrets, stdout_bytes};
use crate::sys::fsutil::{aside_tag, is_type, lstat_at, open_dir_at};

/// The version of the `homes --json` document; bumped only when a field changes meaning
/// or disappears (new fields may be added without a bump).
pub const SCHEMA_VERSION: u32 = 1;

/// Deepest directory nesting walked or removed.
const MAX_DEPTH: usize = 256;

/// What `homes` reports of one home.
#[derive(Debug, Clone)]
pub struct HomeInfo {
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
    pub fn shown_name(&self) -> &str {
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

/// How stale the last-launch stamp may get before a launch renews it: a launch into a
/// home stamped less than this ago writes nothing at all (an already seeded home is not
/// touched), and `homes prune` counts in days.
pub const STAMP_EVERY: i64 = 3600;

/// Records a launch in `home`: `.claude-iso.lock` (made by `home::apply`) gets the
/// current time as its mtime when its mtime is more than [`STAMP_EVERY`] seconds old or
/// in the future. `homes` reports it as the last launch and `homes prune` ages by it.
/// Never follows a symlink.
///
/// # Errors
/// The lock file cannot be opened or touched.
pub fn stamp_launch(home: &ScratchHome) -> Result<()> {
    let shown = home.path.join(OWN_LOCK);
    let Some(st) = lstat_at(&home.dir, OWN_LOCK).map_err(|e| home_err(&shown, e.desc()))? else {
        return Ok(());
    };
    let age = now_secs().saturating_sub(st.st_mtime);
    if (0..STAMP_EVERY).contains(&age) {
        return Ok(());
    }
    let flags = OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = openat(&home.dir, OWN_LOCK, flags, Mode::empty())
        .map_err(|e| home_err(&shown, format!("cannot open: {}", e.desc())))?;
    let now = TimeSpec::UTIME_NOW;
    futimens(&fd, &now, &now)
        .map_err(|e| home_err(&shown, format!("cannot record the launch: {}", e.desc())))
}

/// `claude-iso homes [--json]` and `claude-iso homes prune`.
///
/// # Errors
/// Bad options, an unusable state directory, or (prune) a home that could not be removed.
pub fn main(args: &HomesArgs) -> Result<Outcome> {
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
        .map_err(|e| home_err(&state.path, e.desc()))?
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
    let mut names =
        crate::sys::fsutil::dir_entries(&homes.fd).map_err(|e| home_err(&homes.path, e.desc()))?;
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

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Looks at one home; reads only.
fn inspect(found: &Found, dir: &OwnedFd, busy_homes: &Busy) -> Result<HomeInfo> {
    let path = &found.path;
    let st = fstat(dir).map_err(|e| home_err(path, e.desc()))?;
    let mut walk = Walk::default();
    walk.dir(dir, st.st_dev, 0, "");
    walk.sort();
    let lock = lstat_at(dir, OWN_LOCK).map_err(|e| home_err(path, e.desc()))?;
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

/// Why a home is in use, if it is (see the module doc).
fn in_use(dir: &OwnedFd, path: &Path, busy_homes: &Busy) -> Option<String> {
    let mut names = vec![path.as_os_str().as_bytes().to_vec()];
    if let Ok(real) = std::fs::canonicalize(path) {
        names.push(real.into_os_string().into_vec());
    }
    if let Some(why) = busy_homes.why(&names) {
        return Some(why.into());
    }
    // A launch's claim (`home::Claim`): probed exclusively, and released at once.
    if let Ok(fd) = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        if let Err((_, Errno::EWOULDBLOCK)) = Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            return Some("a launch is preparing it".into());
        }
    }
    if let Ok(fd) = openat(
        dir,
        OWN_LOCK,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        if let Err((_, Errno::EWOULDBLOCK)) = Flock::lock(fd, FlockArg::LockSharedNonblock) {
            return Some(format!("{OWN_LOCK} is locked"));
        }
    }
    claude_lock_fresh(dir).then(|| format!("claude's {CLAUDE_LOCK} is fresh"))
}

fn claude_lock_fresh(dir: &OwnedFd) -> bool {
    let Ok(Some(st)) = lstat_at(dir, CLAUDE_LOCK) else {
        return false;
    };
    let age = now_secs().saturating_sub(st.st_mtime);
    age <= i64::try_from(STALE_AFTER.as_secs()).unwrap_or(10)
}

/// What running processes use: the `HOME` of every process we may read
/// (`/proc/<pid>/environ`), as bytes, plus each one's resolved path, and each one's
/// working directory (`/proc/<pid>/cwd`). Of the environment only `HOME` is looked at;
/// nothing else is kept. (A command that has neither its home as `HOME` nor its working
/// directory in it is not seen: no descriptor of claude-iso's passes into the command.)
#[derive(Default)]
struct Busy {
    homes: HashSet<Vec<u8>>,
    cwds: Vec<PathBuf>,
}

impl Busy {
    /// Why a home known by any of `names` (its path, resolved or not) is in use.
    fn why(&self, names: &[Vec<u8>]) -> Option<&'static str> {
        if self.homes.iter().any(|h| names.contains(h)) {
            return Some("a running process has it as HOME");
        }
        let inside = |cwd: &PathBuf| {
            names
                .iter()
                .any(|n| cwd.starts_with(Path::new(OsStr::from_bytes(n))))
        };
        self.cwds
            .iter()
            .any(inside)
            .then_some("a running process works in it")
    }
}

///
/// A process in the middle of `execve` shows an empty environment for a moment (the
/// new image's is not set up yet): that is how a launch looks just after its claim on
/// the home went with the exec. Such processes (an empty environment, an executable:
/// not a kernel thread) are read once more after a short pause.
fn homes_of_processes() -> Busy {
    let mut busy = Busy::default();
    let me = std::process::id().to_string();
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return busy;
    };
    let mut empty = Vec::new();
    for entry in proc_dir.flatten() {
        let pid = entry.file_name();
        if !pid.as_bytes().iter().all(u8::is_ascii_digit) || pid.to_str() == Some(&me) {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) {
            busy.cwds.push(cwd);
        }
        if read_home(&entry.path(), &mut busy.homes) == Some(0)
            && std::fs::read_link(entry.path().join("exe")).is_ok()
        {
            empty.push(entry.path());
        }
    }
    if !empty.is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(50));
        for proc in empty {
            read_home(&proc, &mut busy.homes);
        }
    }
    busy
}

/// Adds the `HOME` of the process at `proc` (`/proc/<pid>`) to `out`; returns how many
/// bytes its environment has (`None`: unreadable).
fn read_home(proc: &Path, out: &mut HashSet<Vec<u8>>) -> Option<usize> {
    let mut bytes = Vec::new();
    let mut file = File::open(proc.join("environ")).ok()?;
    if file.read_to_end(&mut bytes).is_err() {
        bytes.fill(0);
        return None;
    }
    if let Some(home) = bytes
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"HOME="))
    {
        let home = crate::sys::fsutil::clean(Path::new(OsStr::from_bytes(home)));
        if let Ok(real) = std::fs::canonicalize(&home) {
            out.insert(real.into_os_string().into_vec());
        }
        out.insert(home.into_os_string().into_vec());
    }
    let len = bytes.len();
    bytes.fill(0);
    Some(len)
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

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days to civil date: H. Hinnant's algorithm).
fn utc(t: i64) -> String {
    let days = t.div_euclid(86400);
    let rem = t.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Mount points (as the kernel lists them for us) at or below `path`.
fn mounts_below(path: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|m| m.starts_with(&real))
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

fn prune(config: &Config, args: &PruneArgs) -> Result<Outcome> {
    let (parents, homes) = collect(config)?;
    let now = now_secs();
    let limit = i64::try_from(args.older_than.saturating_mul(86400)).unwrap_or(i64::MAX);
    let mut out = String::new();
    let mut failed: Option<Error> = None;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (found, info) in homes {
        let name = info.shown_name().to_owned();
        let when = info.last_launch.unwrap_or(info.dir_mtime);
        let age = now.saturating_sub(when);
        if age < limit {
            continue;
        }
        let last = info.last_launch.map_or_else(
            || "never launched".to_owned(),
            |t| format!("last launch {}", last_launch(t, now)),
        );
        let parent = &parents[found.parent];
        match prune_one(parent, &found, &info, args, limit) {
            Ok(Pruned::Kept(why)) => {
                out.push_str(&format!("kept {name} ({}): {why}\n", esc(&info.path)));
            }
            Ok(Pruned::Removed(quarantined)) => {
                out.push_str(&format!(
                    "{verb} {name} ({}): {last}, {}\n",
                    esc(&info.path),
                    human_size(info.size_bytes)
                ));
                for q in &quarantined {
                    out.push_str(&format!(
                        "  {} quarantined credentials file {} with it (--delete-quarantined)\n",
                        if args.dry_run {
                            "would delete"
                        } else {
                            "deleted"
                        },
                        redact_secrets(q)
                    ));
                }
            }
            Err(e) => {
                out.push_str(&format!("failed {name}: {e}\n"));
                failed.get_or_insert(e);
            }
        }
    }
    if out.is_empty() {
        out = format!(
            "nothing to prune: no home in {} unlaunched for {} days\n",
            esc(&config.state_dir()),
            args.older_than
        );
    }
    print_lines(&out);
    match failed {
        Some(e) => Err(e),
        None => Ok(Outcome::Success),
    }
}

enum Pruned {
    /// Removed (or, dry run, would be), with the quarantined files that went with it.
    Removed(Vec<String>),
    Kept(String),
}

/// Removes one home found old and unused by the listing, unless a check made again
/// under its locks says otherwise: the listing is seconds (a large home: minutes) old by
/// then, and a launch may have started in the home meanwhile.
///
/// Two locks, each taken without waiting (held: the home is in use and kept): the
/// directory's [`crate::home::Claim`], shared by every launch from before it changes
/// anything in the home until its command runs, so no launch is preparing it, and none
/// can start to until the home is moved aside; then `.claude-iso.lock`, held by a
/// seeding launch or by a user's `flock(1)`. Under both, everything that decides is read
/// again: that the directory is still the one at its name, the last-launch stamp (a
/// launch renews it under its claim), the `HOME` of every running process, claude's
/// lock, the quarantined files and mount points. Only then is the home renamed aside; the
/// locks go with it, and a launch that was waiting for the claim finds the home gone and
/// stops (125, nothing run) — the next launch by that name makes a fresh home.
fn prune_one(
    parent: &Parent,
    found: &Found,
    info: &HomeInfo,
    args: &PruneArgs,
    limit: i64,
) -> Result<Pruned> {
    let path = &info.path;
    if let Some(why) = &info.in_use {
        return Ok(Pruned::Kept(format!("in use ({why})")));
    }
    if let Some(why) = kept_for_contents(path, &info.quarantined, args) {
        return Ok(Pruned::Kept(why));
    }
    let dir = crate::sys::fsutil::open_dir_at(&parent.fd, found.entry.as_os_str())
        .map_err(|e| home_err(path, e.desc()))?;
    let claim_fd = openat(
        &dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| home_err(path, format!("cannot open: {}", e.desc())))?;
    let claim = match Flock::lock(claim_fd, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => {
            return Ok(Pruned::Kept("in use (a launch is preparing it)".into()));
        }
        Err((_, e)) => return Err(home_err(path, format!("cannot lock: {}", e.desc()))),
    };
    let st = fstat(&dir).map_err(|e| home_err(path, e.desc()))?;
    // Our lock file, created if missing so there is something to lock: the age of a
    // home never launched is then its directory's, read before the creation.
    let shown_lock = path.join(OWN_LOCK);
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let (lock, created) = match openat(&dir, OWN_LOCK, flags, Mode::empty()) {
        Ok(fd) => (fd, false),
        Err(Errno::ENOENT) => match openat(
            &dir,
            OWN_LOCK,
            flags | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => (fd, true),
            Err(Errno::EEXIST) => {
                return Ok(Pruned::Kept(format!(
                    "launched since it was listed ({OWN_LOCK} appeared)"
                )));
            }
            Err(e) => {
                return Err(home_err(
                    &shown_lock,
                    format!("cannot create: {}", e.desc()),
                ));
            }
        },
        Err(e) => return Err(home_err(&shown_lock, format!("cannot open: {}", e.desc()))),
    };
    let lock = match Flock::lock(lock, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => {
            return Ok(Pruned::Kept(format!("in use ({OWN_LOCK} is locked)")));
        }
        Err((_, e)) => {
            return Err(home_err(&shown_lock, format!("cannot lock: {}", e.desc())));
        }
    };
    let stamp = if created {
        st.st_mtime
    } else {
        fstat(&*lock)
            .map_err(|e| home_err(&shown_lock, e.desc()))?
            .st_mtime
    };
    let quarantined = match recheck(parent, found, &dir, &st, &lock, stamp, limit) {
        Err(why) => return Ok(Pruned::Kept(why)),
        Ok(quarantined) => quarantined,
    };
    if let Some(why) = kept_for_contents(path, &quarantined, args) {
        return Ok(Pruned::Kept(why));
    }
    if args.dry_run {
        return Ok(Pruned::Removed(quarantined));
    }
    // Out of the way first, under both locks (a launch by this name now makes a new
    // home), then emptied.
    let aside = format!(
        ".pruning.{}.{}",
        found.entry.to_string_lossy(),
        std::process::id()
    );
    renameat2(
        &parent.fd,
        found.entry.as_os_str(),
        &parent.fd,
        aside.as_str(),
        RenameFlags::RENAME_NOREPLACE,
    )
    .map_err(|e| {
        home_err(
            path,
            format!("cannot move it aside to remove it: {}", e.desc()),
        )
    })?;
    drop(lock);
    drop(claim);
    remove_contents(&dir, st.st_dev, 0).map_err(|e| {
        home_err(
            path,
            format!(
                "removal stopped ({}); what is left is in {}",
                e.desc(),
                parent.path.join(&aside).display()
            ),
        )
    })?;
    drop(dir);
    unlinkat(&parent.fd, aside.as_str(), UnlinkatFlags::RemoveDir).map_err(|e| {
        home_err(
            path,
            format!(
                "cannot remove {}: {}",
                parent.path.join(&aside).display(),
                e.desc()
            ),
        )
    })?;
    Ok(Pruned::Removed(quarantined))
}

/// A reason to keep a home for what it holds: quarantined credentials (unless
/// `--delete-quarantined`) or a mount point.
fn kept_for_contents(path: &Path, quarantined: &[String], args: &PruneArgs) -> Option<String> {
    if !quarantined.is_empty() && !args.delete_quarantined {
        return Some(format!(
            "holds quarantined credentials {} (perhaps a live credential); move it out, or pass --delete-quarantined to delete it with the home",
            redact_secrets(&quarantined.join(", "))
        ));
    }
    mounts_below(path)
        .first()
        .map(|m| format!("{} is a mount point; unmount it first", esc(m)))
}

/// Everything that decides whether a home goes, read again under its locks just before
/// it is moved aside; `Err` is why it stays. Returns the quarantined files in it now.
fn recheck(
    parent: &Parent,
    found: &Found,
    dir: &OwnedFd,
    st: &FileStat,
    lock: &OwnedFd,
    stamp: i64,
    limit: i64,
) -> std::result::Result<Vec<String>, String> {
    let same = |a: &FileStat, b: &FileStat| a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    // Still the directory at its name (the rename below goes by name).
    if !lstat_at(&parent.fd, found.entry.as_os_str())
        .ok()
        .flatten()
        .is_some_and(|now| same(&now, st))
    {
        return Err("moved or replaced since it was listed".into());
    }
    // Still the lock file in it (a launch sets a foreign one aside and makes its own).
    let locked = fstat(lock).map_err(|e| e.desc().to_owned())?;
    if !lstat_at(dir, OWN_LOCK)
        .ok()
        .flatten()
        .is_some_and(|now| same(&now, &locked))
    {
        return Err(format!("in use ({OWN_LOCK} was replaced by a launch)"));
    }
    let age = now_secs().saturating_sub(stamp);
    if age < limit {
        return Err(format!(
            "launched since it was listed (last launch {})",
            utc(stamp)
        ));
    }
    let path = &found.path;
    let mut names = vec![path.as_os_str().as_bytes().to_vec()];
    if let Ok(real) = std::fs::canonicalize(path) {
        names.push(real.into_os_string().into_vec());
    }
    if let Some(why) = homes_of_processes().why(&names) {
        return Err(format!("in use ({why})"));
    }
    if claude_lock_fresh(dir) {
        return Err(format!("in use (claude's {CLAUDE_LOCK} is fresh)"));
    }
    Ok(quarantined_in(dir))
}

/// The quarantined credentials files in a home (`*.quarantined-*`, at its top and in
/// `.claude/`), relative to it.
fn quarantined_in(dir: &OwnedFd) -> Vec<String> {
    let mut out = Vec::new();
    let mut scan = |d: &OwnedFd, prefix: &str| {
        let Ok(mut names) = crate::sys::fsutil::dir_entries(d) else {
            return;
        };
        names.sort();
        out.extend(
            names
                .iter()
                .filter_map(|n| n.to_str())
                .filter(|n| aside_tag(n) == Some("quarantined"))
                .map(|n| format!("{prefix}{n}")),
        );
    };
    scan(dir, "");
    if let Ok(claude) = open_dir_at(dir, CLAUDE_DIR) {
        scan(&claude, &format!("{CLAUDE_DIR}/"));
    }
    out
}

/// Empties `dir`: every entry unlinked, directories emptied first, symlinks removed and
/// never followed, and nothing on another filesystem touched (`EXDEV`).
fn remove_contents(dir: &OwnedFd, dev: u64, depth: usize) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    let st = fstat(dir)?;
    if st.st_dev != dev {
        return Err(Errno::EXDEV);
    }
    // Read-only copies (`--share`) live in 0555 directories.
    if st.st_mode & 0o700 != 0o700 {
        fchmod(dir, Mode::from_bits_truncate(0o700))?;
    }
    for name in crate::sys::fsutil::dir_entries(dir)? {
        let Some(st) = crate::sys::fsutil::lstat_at(dir, name.as_os_str())? else {
            continue;
        };
        if is_type(&st, SFlag::S_IFDIR) {
            let sub = crate::sys::fsutil::open_dir_at(dir, name.as_os_str())?;
            remove_contents(&sub, dev, depth + 1)?;
            drop(sub);
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::RemoveDir)?;
        } else {
            unlinkat(dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
