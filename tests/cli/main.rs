//! The suites that need no claude: the built `claude-iso` in a sandbox per test, a probe
//! standing in for the command (`support::sandbox`). One test binary, one module per
//! feature. Every test passes as root and as an unprivileged user (CI runs this binary
//! both ways).

// A test crate: its helpers are `pub` for the sibling modules that share them, and the
// harness forks where a test needs a process of its own (crate-wide lints of Cargo.toml
// are for the library).
#![allow(unreachable_pub, unsafe_code, clippy::undocumented_unsafe_blocks)]

#[path = "../support/mod.rs"]
mod support;

mod containers;
mod docs;
mod doctor;
mod group_commit;
mod guard;
mod home;
mod init;
mod launcher;
mod layering;
mod mask;
mod plan_agreement;
mod share;
mod token;
mod token_via;
