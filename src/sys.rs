//! Every `unsafe` call of claude-iso lives here, each in a small function with a
//! `// SAFETY:` comment. The rest of the crate forbids `unsafe`.
//!
//! claude-iso is single-threaded from start to `execve` (no thread is ever spawned on the
//! launch path), which is what makes `fork` and the signal-disposition changes sound.

#![allow(unsafe_code)]

use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::ForkResult;

/// Rust's runtime starts with SIGPIPE ignored (so our own writes to a closed pipe fail
/// instead of killing us), and an ignored signal stays ignored across `execve`: the
/// command, and every pipeline it runs, would not die of a broken pipe as it does when
/// run directly. Restores the default; called just before the exec.
pub fn default_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_DFL installs no Rust handler that
    // could observe inconsistent state.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// `fork(2)`.
///
/// # Errors
/// As `fork(2)` (`EAGAIN`, `ENOMEM`).
pub fn fork() -> nix::Result<ForkResult> {
    // SAFETY: claude-iso is single-threaded whenever it forks (no thread is spawned on
    // the launch path), so the child cannot inherit a lock held by another thread; the
    // child only runs code that the parent would run too before `execve` or `_exit`.
    unsafe { nix::unistd::fork() }
}

/// No core file, and no same-user ptrace or `/proc/<pid>/mem` read of this process: the
/// token is in its memory. Reset by the kernel at `execve` for the command (which is
/// dumpable as usual), so it protects claude-iso only. Failure is ignored: on a kernel
/// without `prctl` there is nothing better to do.
pub fn set_non_dumpable() {
    let _ = nix::sys::prctl::set_dumpable(false);
}
