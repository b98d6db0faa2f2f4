//! Whether a home is in use: a launch's claim or our lock file locked, claude's lock
//! fresh, or a running process of the caller's with it as `HOME` (read from `/proc`).

#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{FlockArg, OFlag, openat};
use nix::sys::stat::Mode;

use super::now_secs;
use crate::layout::{CLAUDE_LOCK, OWN_LOCK, STALE_AFTER};
use crate::sys::fsutil::{lstat_at, reopen_dir, try_flock};

/// Why a home is in use, if it is (see the module doc).
pub(super) fn in_use(dir: &OwnedFd, path: &Path, busy_homes: &Busy) -> Option<String> {
    let mut names = vec![path.as_os_str().as_bytes().to_vec()];
    if let Ok(real) = crate::sys::fsutil::realpath(path) {
        names.push(real.into_os_string().into_vec());
    }
    if let Some(why) = busy_homes.why(&names) {
        return Some(why.into());
    }
    // A launch's claim (`home::Claim`): probed exclusively, and released at once.
    if let Ok(fd) = reopen_dir(dir) {
        if let Ok(None) = try_flock(fd, FlockArg::LockExclusiveNonblock) {
            return Some("a launch is preparing it".into());
        }
    }
    if let Ok(fd) = openat(
        dir,
        OWN_LOCK,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        if let Ok(None) = try_flock(fd, FlockArg::LockSharedNonblock) {
            return Some(format!("{OWN_LOCK} is locked"));
        }
    }
    claude_lock_fresh(dir).then(|| format!("claude's {CLAUDE_LOCK} is fresh"))
}

pub(super) fn claude_lock_fresh(dir: &OwnedFd) -> bool {
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
pub(super) struct Busy {
    homes: HashSet<Vec<u8>>,
    cwds: Vec<PathBuf>,
}

impl Busy {
    /// Why a home known by any of `names` (its path, resolved or not) is in use.
    pub(super) fn why(&self, names: &[Vec<u8>]) -> Option<&'static str> {
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
pub(super) fn homes_of_processes() -> Busy {
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
        if let Ok(real) = crate::sys::fsutil::realpath(&home) {
            out.insert(real.into_os_string().into_vec());
        }
        out.insert(home.into_os_string().into_vec());
    }
    let len = bytes.len();
    bytes.fill(0);
    Some(len)
}
