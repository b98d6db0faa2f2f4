#![deny(clippy::undocumented_unsafe_blocks)]

use nix::sys::signal::{SigHandler, Signal, signal};

fn main() {
    // Rust's runtime starts with SIGPIPE ignored, and an ignored signal stays ignored
    // across execve: the command (and every pipeline it runs) would not die of a
    // broken pipe as it does when run directly. Restore the default first.
    // SAFETY: nothing else runs yet (single thread, no handler is installed), and
    // SIG_DFL is not a Rust function that could observe inconsistent state.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    std::process::exit(claude_iso::main(std::env::args_os()));
}
