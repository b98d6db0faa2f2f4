//! The token on a pipe (`--token-via fd`): the descriptor the command inherits, and where
//! it is placed among the descriptors the caller passes.

#![forbid(unsafe_code)]

use std::ffi::OsStr;

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Puts the token into a pipe for the command: writes it, closes the write end, and
/// moves the read end to the lowest free descriptor at or above `min` (so it takes none
/// the caller passed: systemd's `LISTEN_FDS` sockets start at 3), without close-on-exec.
/// Returns that descriptor, which the command inherits; once claude has read the token
/// the pipe is empty and nothing can read it from there again.
///
/// # Errors
/// The pipe could not be made or written (125).
pub fn token_pipe(token: &super::Token, min: i32) -> Result<i32> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let err = |what: &str, e: Errno| {
        Error::Usage(format!(
            "cannot pass the token on a pipe ({what}: {}); use --token-via env",
            e.desc()
        ))
    };
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe", e))?;
    // A token is far smaller than a pipe's buffer: the write cannot block.
    let mut write = std::fs::File::from(write);
    write
        .write_all(token.expose().as_bytes())
        .map_err(|e| err("write", Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
    drop(write);
    let fd =
        nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_DUPFD(min)).map_err(|e| err("dup", e))?;
    debug_assert_ne!(fd, read.as_raw_fd());
    drop(read);
    // F_DUPFD leaves close-on-exec clear: the command inherits it.
    Ok(fd)
}

/// The lowest descriptor the token pipe may take: above every socket systemd passes
/// (`LISTEN_FDS`, starting at 3).
#[must_use]
pub fn token_fd_floor(listen_fds: Option<&OsStr>) -> i32 {
    let passed = listen_fds
        .and_then(|v| v.to_str())
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|n| (0..65_536).contains(n))
        .unwrap_or(0);
    3 + passed
}
