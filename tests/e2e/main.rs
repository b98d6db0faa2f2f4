//! The end-to-end suites: the built `claude-iso` in front of the real claude CLI (found
//! through `CLAUDE_ISO_TEST_CLAUDE`; `scripts/test` installs the pinned one and sets it),
//! against a fake Messages API on 127.0.0.1 (`support::world`). One test binary, one
//! module per feature; `drift` reads the installed claude's code instead of running it.

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
