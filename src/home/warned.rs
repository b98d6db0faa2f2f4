//! Warnings a unit would repeat on every start (a variable it always has that the launch
//! removes, a mask the kernel always refuses): said once a day per home, recorded in the
//! home's [`OWN_WARNED`] under an exclusive `flock` (not waited for: a held lock means
//! the warning is said), so launches of one unit say it once a day. `--verbose` always says them; when the record cannot be kept
//! the warning is said every time (better than silence).

#![forbid(unsafe_code)]

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;

use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::home::ScratchHome;
use crate::layout::OWN_WARNED;
use crate::report::{Report, Verbosity};
use crate::sys::fsutil::is_type;

/// The most lines the record keeps (the oldest go first).
const KEEP: usize = 64;

/// Says `msg` as a warning unless it was said in `home` today.
pub(crate) fn warn_daily(home: &ScratchHome, report: &Report, msg: &str) {
    if report.verbosity == Verbosity::Quiet {
        return;
    }
    if report.verbosity == Verbosity::Verbose || due(&home.dir, msg, today()) {
        report.warn(msg);
    }
}

fn today() -> u64 {
    u64::try_from(crate::sys::time::now()).unwrap_or(0) / 86_400
}

/// FNV-1a of the text: the record names a warning without holding its words.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Whether `msg` is due on `day`, recording it as said when it is.
fn due(home: &OwnedFd, msg: &str, day: u64) -> bool {
    let flags =
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = openat(home, OWN_WARNED, flags, Mode::from_bits_truncate(0o600)) else {
        return true;
    };
    // Ours alone, and a regular file: anything else is not a record we keep.
    let me = nix::unistd::geteuid().as_raw();
    if !fstat(&fd)
        .is_ok_and(|st| is_type(&st, SFlag::S_IFREG) && st.st_uid == me && st.st_nlink == 1)
    {
        return true;
    }
    // Not waited for: the record is in the home the command can write, so a process
    // holding its lock must not stall a launch; the warning is then said.
    let Ok(lock) = Flock::lock(std::fs::File::from(fd), FlockArg::LockExclusiveNonblock) else {
        return true;
    };
    let mut file: &std::fs::File = &lock;
    let mut text = String::new();
    if file.take(64 * 1024).read_to_string(&mut text).is_err() {
        text.clear();
    }
    let fp = fingerprint(msg);
    let line = format!("{fp} {day}");
    if text.lines().any(|l| l == line) {
        return false;
    }
    let mut kept: Vec<&str> = text
        .lines()
        .filter(|l| l.split(' ').next() != Some(fp.as_str()))
        .collect();
    kept.push(&line);
    let from = kept.len().saturating_sub(KEEP);
    let mut out = kept[from..].join("\n");
    out.push('\n');
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(out.as_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap().into();
        (dir, fd)
    }

    #[test]
    fn once_a_day_per_text() {
        let (_dir, home) = home();
        assert!(due(&home, "a", 10));
        assert!(!due(&home, "a", 10));
        assert!(due(&home, "b", 10));
        assert!(!due(&home, "b", 10));
        assert!(due(&home, "a", 11));
        assert!(!due(&home, "a", 11));
    }

    #[test]
    fn the_record_holds_no_words_and_stays_small() {
        let (dir, home) = home();
        for i in 0..200 {
            assert!(due(&home, &format!("secret-ish text {i}"), 5));
        }
        let text = std::fs::read_to_string(dir.path().join(OWN_WARNED)).unwrap();
        assert!(!text.contains("text"), "{text}");
        assert_eq!(text.lines().count(), KEEP);
    }

    #[test]
    fn a_record_someone_holds_locked_does_not_stall_the_launch() {
        let (dir, home) = home();
        assert!(due(&home, "a", 1));
        let held = std::fs::File::open(dir.path().join(OWN_WARNED)).unwrap();
        let _lock = Flock::lock(held, FlockArg::LockExclusive).unwrap();
        // Said (not recorded), at once.
        assert!(due(&home, "a", 1));
        assert!(due(&home, "b", 1));
    }

    #[test]
    fn a_record_that_is_not_ours_alone_means_every_time() {
        let (dir, home) = home();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(OWN_WARNED)).unwrap();
        assert!(due(&home, "a", 1));
        assert!(due(&home, "a", 1));
        assert!(
            std::fs::symlink_metadata(dir.path().join(OWN_WARNED))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
