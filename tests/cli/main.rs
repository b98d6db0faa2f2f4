//! The suites that need no claude: the built `claude-iso` in a sandbox per test, a probe
//! standing in for the command (`support::sandbox`). One test binary, one module per
//! feature. Every test passes as root and as an unprivileged user (CI runs this binary
//! both ways).

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
