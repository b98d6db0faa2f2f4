#![deny(clippy::undocumented_unsafe_blocks)]

use nix::sys::signal::{SigHandler, Signal, signal};

/// Rust's runtime starts with SIGPIPE ignored (so our own writes to a closed pipe fail
/// instead of killing us), and an ignored signal stays ignored across `execve`: the
/// command, and every pipeline it runs, would not die of a broken pipe as it does when
/// run directly. Restore the default just before the exec.
fn default_sigpipe() {
    // SAFETY: single-threaded at this point, and SIG_DFL installs no Rust handler that
    // could observe inconsistent state.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn main() {
    std::process::exit(claude_iso::main(std::env::args_os(), default_sigpipe));
}
