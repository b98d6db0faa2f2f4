//! Readers of `/proc`: the process tree, who holds a lock, whether `/proc` is this PID
//! namespace's. Each degrades to "unknown" (an empty answer) when `/proc` says nothing.

#![forbid(unsafe_code)]

use std::os::fd::AsFd;

use nix::unistd::{Pid, getpid};

/// Whether `/proc` shows this process's PID namespace (it does not after
/// `unshare --pid --fork` without `--mount-proc`).
#[must_use]
pub(crate) fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<i32>().ok())
        == Some(getpid().as_raw())
}

/// Every process below `root` in the process tree, parents before children, read from
/// `/proc/<pid>/stat`. A descendant that is not our child could exit and be reaped by
/// its own parent between this scan and our `kill`, and its PID be reused meanwhile; PIDs
/// are handed out in order, so that needs a full wrap of the PID space in that window.
pub(crate) fn descendants(root: Pid) -> Vec<Pid> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pairs: Vec<(i32, i32)> = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(ppid_from_stat)
        {
            pairs.push((pid, ppid));
        }
    }
    let mut out: Vec<Pid> = Vec::new();
    let mut frontier = vec![root.as_raw()];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &pairs {
            if ppid == parent && pid != root.as_raw() && !out.contains(&Pid::from_raw(pid)) {
                out.push(Pid::from_raw(pid));
                frontier.push(pid);
            }
        }
    }
    out
}

/// The parent PID from a `/proc/<pid>/stat` line: `pid (comm) state ppid …`, where comm
/// may hold spaces and parentheses, so the fields are counted after the last `)`.
fn ppid_from_stat(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The PID holding a `flock` on the file with this device and inode, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF`).
pub(crate) fn flock_holder(dev: u64, ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let major = nix::sys::stat::major(dev);
    let minor = nix::sys::stat::minor(dev);
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, id) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let mut parts = id.split(':');
        let (ma, mi, inode) = (parts.next()?, parts.next()?, parts.next()?);
        (*kind == "FLOCK"
            && u64::from_str_radix(ma, 16).ok()? == major
            && u64::from_str_radix(mi, 16).ok()? == minor
            && inode.parse::<u64>().ok()? == ino)
            .then(|| pid.parse().ok())
            .flatten()
    })
}

/// The PID holding a `flock` on the file open at `fd`, if `/proc/locks` names one.
pub(crate) fn lock_holder(fd: impl AsFd) -> Option<u32> {
    let st = nix::sys::stat::fstat(fd).ok()?;
    flock_holder(st.st_dev, st.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_is_read_after_the_last_parenthesis() {
        assert_eq!(ppid_from_stat("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(ppid_from_stat("42 (a) b) (c) R 9 1 1"), Some(9));
        assert_eq!(ppid_from_stat("42 (x y) Z 1 0"), Some(1));
        assert_eq!(ppid_from_stat("garbage"), None);
    }
}
