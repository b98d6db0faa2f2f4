//! The one error type of claude-iso and the one place that maps it to an exit status.
//!
//! Variants carry paths, line numbers and variable names — never a secret value.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use nix::errno::Errno;

/// Exit status when claude-iso itself fails (as env(1) does).
pub const EXIT_FAILURE: i32 = 125;
/// Exit status when the command was found but could not be run.
pub const EXIT_CANNOT_RUN: i32 = 126;
/// Exit status when the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    /// `next` is the one next step (installing Claude Code first when it is missing).
    #[error("no token found; looked in {looked}; {next}")]
    NoToken { looked: String, next: String },

    #[error("{path}: {reason}")]
    EnvFile { path: PathBuf, reason: String },

    #[error("{path}:{line}: {reason}")]
    EnvFileLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A token found in a variable (e.g. `CLAUDE_CODE_OAUTH_TOKEN` in the environment).
    #[error("{source_name}: {reason}")]
    Token { source_name: String, reason: String },

    #[error("home {path}: {reason}")]
    Home { path: PathBuf, reason: String },

    #[error("{path}: {reason}")]
    Seed { path: PathBuf, reason: String },

    /// A settings file claude would apply brings another credential or destination.
    #[error("{0}")]
    Settings(String),

    #[error("working directory {path}: {reason}")]
    Cwd { path: PathBuf, reason: String },

    /// The mask could not be set up (`--mask on`), or its plan is impossible.
    #[error("cannot mask the real credentials: {reason}; {fix}")]
    Mask { reason: String, fix: String },

    /// The kernel would allow the mask, but not from here (the working directory or the
    /// scratch home lies inside what it must hide): a launch stops under `auto` too.
    #[error("cannot mask the real credentials from here: {reason}; {fix}")]
    MaskPlace { reason: String, fix: String },

    #[error("{command}: command not found{detail}")]
    NotFound { command: String, detail: String },

    #[error("{command}: {reason}")]
    CannotRun { command: String, reason: String },

    /// The init (`--init`) could not start.
    #[error("init: {0}")]
    Init(String),

    /// A system call on a path failed: what it was for, the path, what was being done,
    /// and the kernel's answer, kept as the error's source.
    #[error("{area}{path}: {op}{errno_text}", path = .path.display(), op = Op(*.op), errno_text = .errno.desc())]
    Sys {
        area: Area,
        path: PathBuf,
        /// What was being done (`"open"` shows as `cannot open: …`); `None`: said by the
        /// errno alone.
        op: Option<&'static str>,
        #[source]
        errno: Errno,
    },
}

/// What a failed system call was for, as the start of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// The scratch home: `home PATH: …`.
    Home,
    /// A file named by itself (`.claude.json`, an env file, a token file): `PATH: …`.
    File,
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Area::Home => f.write_str("home "),
            Area::File => Ok(()),
        }
    }
}

struct Op(Option<&'static str>);

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(op) => write!(f, "cannot {op}: "),
            None => Ok(()),
        }
    }
}

/// Turns a failed system call into [`Error::Sys`], keeping the errno as its source:
/// `fstat(&dir).on(Area::Home, path, "stat")?`.
pub trait SysContext<T> {
    /// The call failed while doing `op` on `path` (for `area`).
    ///
    /// # Errors
    /// The call's own failure, as [`Error::Sys`].
    fn on(self, area: Area, path: &Path, op: &'static str) -> Result<T>;

    /// The call failed on `path`; the errno says enough.
    ///
    /// # Errors
    /// The call's own failure, as [`Error::Sys`].
    fn at(self, area: Area, path: &Path) -> Result<T>;
}

fn sys_error(area: Area, path: &Path, op: Option<&'static str>, errno: Errno) -> Error {
    Error::Sys {
        area,
        path: path.to_owned(),
        op,
        errno,
    }
}

impl<T> SysContext<T> for nix::Result<T> {
    fn on(self, area: Area, path: &Path, op: &'static str) -> Result<T> {
        self.map_err(|e| sys_error(area, path, Some(op), e))
    }

    fn at(self, area: Area, path: &Path) -> Result<T> {
        self.map_err(|e| sys_error(area, path, None, e))
    }
}

impl<T> SysContext<T> for std::io::Result<T> {
    fn on(self, area: Area, path: &Path, op: &'static str) -> Result<T> {
        self.map_err(|e| sys_error(area, path, Some(op), io_errno(&e)))
    }

    fn at(self, area: Area, path: &Path) -> Result<T> {
        self.map_err(|e| sys_error(area, path, None, io_errno(&e)))
    }
}

/// The errno of an I/O error (`EIO` for one that carries none).
fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

impl Error {
    /// The exit status for this error: 127 not found, 126 not runnable, else 125.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound { .. } => EXIT_NOT_FOUND,
            Error::CannotRun { .. } => EXIT_CANNOT_RUN,
            _ => EXIT_FAILURE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a run that did not `execve` ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (a dry run, a subcommand that succeeded): 0.
    Success,
    /// A report found a problem (`doctor` with a failed check): 1.
    Unhealthy,
    /// The command ran under the init (`--init`) and ended with this status (its exit
    /// code, or 128+N for a death by signal N).
    Exited(i32),
}

/// The one map from how claude-iso ended to its exit status.
#[must_use]
pub fn exit_status(result: &Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Unhealthy) => 1,
        Ok(Outcome::Exited(status)) => *status,
        Err(e) => e.exit_code(),
    }
}

/// An I/O error's text without Rust's "(os error N)" suffix.
pub fn error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_owned(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_call_error_says_where_what_and_why_and_keeps_its_cause() {
        let path = Path::new("/h/.claude-iso.lock");
        let e = Err::<(), _>(Errno::EACCES)
            .on(Area::Home, path, "open")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "home /h/.claude-iso.lock: cannot open: Permission denied"
        );
        let cause = std::error::Error::source(&e).expect("the errno is kept");
        assert_eq!(cause.to_string(), Errno::EACCES.to_string());
        assert_eq!(e.exit_code(), EXIT_FAILURE);
        let io: std::io::Result<()> = Err(std::io::Error::from_raw_os_error(libc_enoent()));
        assert_eq!(
            io.at(Area::File, Path::new("/x")).unwrap_err().to_string(),
            "/x: No such file or directory"
        );
    }

    fn libc_enoent() -> i32 {
        Errno::ENOENT as i32
    }
}
