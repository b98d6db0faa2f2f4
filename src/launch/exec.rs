//! Resolving COMMAND and replacing ourselves with it.
//!
//! The contract is env(1)'s: exec, don't spawn (same PID, so the command's exit status
//! and signals are the caller's); 127 when the command is not found, 126 when it is
//! found but cannot run, 125 when claude-iso itself fails.

#![forbid(unsafe_code)]

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// `PATH` when the caller has none (glibc's `execvp` default, minus the cwd).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// The shell execvp hands a script without a `#!` line to.
const SHELL: &str = "/bin/sh";

/// Finds COMMAND the way `execvp` would, on the caller's `PATH` and relative to the
/// directory claude-iso started in (before `-C` moves it).
///
/// # Errors
/// 127 when nothing by that name exists, 126 when only non-executable files do.
pub(crate) fn resolve(
    command: &OsStr,
    path_var: Option<&OsStr>,
    start_dir: &Path,
) -> Result<PathBuf> {
    let shown = command.to_string_lossy().into_owned();
    if command.is_empty() {
        return Err(Error::NotFound {
            command: "''".into(),
            detail: String::new(),
        });
    }
    if command.as_bytes().contains(&b'/') {
        let path = crate::sys::fsutil::clean(&start_dir.join(command));
        return match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Err(Error::CannotRun {
                command: shown,
                reason: "is a directory".into(),
            }),
            Ok(_) => Ok(path),
            // As execve reports it: only a missing file is "not found"; a path through
            // a non-directory (ENOTDIR), a symlink loop (ELOOP) or a denied search
            // (EACCES) is found-but-cannot-run, 126.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                command: shown,
                detail: format!(" ({})", crate::error::error_text(&e)),
            }),
            Err(e) => Err(Error::CannotRun {
                command: shown,
                reason: crate::error::error_text(&e),
            }),
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    if let Ok(found) = which::which_in(command, Some(path_var), start_dir) {
        return Ok(found);
    }
    // `which` skips files we may not execute; execvp would report EACCES for them.
    for dir in std::env::split_paths(path_var) {
        let candidate = start_dir.join(dir).join(command);
        if let Ok(m) = std::fs::metadata(&candidate) {
            if m.is_file() {
                return Err(Error::CannotRun {
                    command: shown,
                    reason: format!("{} is not executable", candidate.display()),
                });
            }
        }
    }
    Err(Error::NotFound {
        command: shown,
        detail: " on PATH".into(),
    })
}

fn cstring(s: &OsStr, what: &str) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::Usage(format!("{what} contains a NUL byte")))
}

/// Everything `execve` needs, as C strings, checked before anything is forked or run:
/// every 125 decision about the command line is made here.
#[derive(Debug)]
pub(crate) struct Prepared {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    shown: String,
}

/// Turns the resolved program, its argv and the child's environment into C strings.
///
/// # Errors
/// 125 for an argument or variable that cannot be passed (a NUL byte).
pub(crate) fn prepare(
    program: &Path,
    argv: &[OsString],
    env: &[(OsString, OsString)],
) -> Result<Prepared> {
    let path = cstring(program.as_os_str(), "the command path")?;
    let argv = argv
        .iter()
        .map(|a| cstring(a, "an argument"))
        .collect::<Result<Vec<_>>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone();
            kv.push("=");
            kv.push(v);
            cstring(&kv, "an environment variable")
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        path,
        argv,
        envp,
        shown: program.display().to_string(),
    })
}

impl Prepared {
    /// The command as shown in messages.
    #[must_use]
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

/// Replaces this process with the prepared command; SIGPIPE goes back to its default
/// first (and is ignored again if the exec fails). Returns only on failure, with the
/// `errno` of the last `execve`.
#[must_use]
pub(crate) fn exec(p: &Prepared) -> Errno {
    // Nothing of ours is printed after this point unless the exec fails.
    crate::sys::default_sigpipe();
    let result = match nix::unistd::execve(&p.path, &p.argv, &p.envp) {
        // Like execvp (and so env(1)): a file with no #! line is a shell script.
        Err(Errno::ENOEXEC) => {
            let mut sh_args = vec![CString::new(SHELL).expect("no NUL"), p.path.clone()];
            sh_args.extend(p.argv.iter().skip(1).cloned());
            nix::unistd::execve(&CString::new(SHELL).expect("no NUL"), &sh_args, &p.envp)
        }
        other => other,
    };
    match result {
        Err(e) => {
            // Still us: our error line must not die of a broken stderr.
            crate::sys::ignore_sigpipe();
            e
        }
        Ok(never) => match never {},
    }
}

/// The one map from a failed `execve` to our error: 127 for `ENOENT` (the file or its
/// interpreter is missing), 126 for anything else (found, cannot run), as execvp's
/// callers (env(1), shells) report it.
#[must_use]
pub(crate) fn exec_error(errno: Errno, shown: &str) -> Error {
    match errno {
        Errno::ENOENT => Error::NotFound {
            command: shown.to_owned(),
            detail: " (or its interpreter)".into(),
        },
        e => Error::CannotRun {
            command: shown.to_owned(),
            reason: e.desc().to_owned(),
        },
    }
}
