//! The end-to-end suites: the built `claude-iso` in front of the real claude CLI (found
//! through `CLAUDE_ISO_TEST_CLAUDE`; `scripts/test` installs the pinned one and sets it),
//! against a fake Messages API on 127.0.0.1 (`support::world`). One test binary, one
//! module per feature; `drift` reads the installed claude's code instead of running it.

// A test crate: its helpers are `pub` for the sibling modules that share them, and the
// harness forks where a test needs a process of its own (crate-wide lints of Cargo.toml
// are for the library).
#![allow(unreachable_pub, unsafe_code, clippy::undocumented_unsafe_blocks)]

#[path = "../support/mod.rs"]
mod support;

mod dialogs;
mod doctor;
mod drift;
mod guard;
mod launch;
mod mask;
mod setup;
mod token;
