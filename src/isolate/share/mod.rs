//! `--share`: the user's own claude and git configuration carried into the scratch home,
//! read-only, and never a credential.
//!
//! [`plan`] is pure: it turns the requests into (source in the real home, destination in
//! the scratch home) pairs and applies the refusal rules by name. [`check`] reads each
//! source once and judges every entry by where it really leads (symlinks resolved): into
//! a refused file, or into anything the mask hides or empties ([`Limits`]), it is refused
//! — the real `~/.claude` excepted only for what a share names in it; a hard link by its
//! other names, likewise. Nothing on a kernel filesystem, nothing but regular files and
//! directories, is ever opened. Every shared
//! `settings.json` / `settings.local.json` that would bring its own credential
//! (`apiKeyHelper`, a credential `env` entry) is refused unless `--allow-project-auth`.
//!
//! Without a mount namespace, [`apply`] makes a *copy* of each source in the scratch home
//! — files 0444, directories 0555 — replaced only when the source changed. A copy, not a
//! symlink: a symlink into the real home would let claude write through it. Whatever is
//! written to a copy (root ignores the modes) goes nowhere: the real file is never opened
//! for writing, and the next launch puts the changed copy aside and copies afresh.
//! `.claude-iso.shared` in the scratch home records which entries are our copies (inode
//! and ctime), so only those are ever replaced or removed; anything else in the way is
//! moved aside (kept), never deleted.
//!
//! Here, what the launch and `--dry-run` are told; in `names.rs`, what may be shared and
//! how a share is named ([`plan`]); in `source.rs`, whether a source is safe to copy
//! ([`check`]); in `copy.rs`, the copy engine ([`apply`]).

#![forbid(unsafe_code)]

mod copy;
mod names;
mod source;

use std::path::Path;

use crate::isolate::guard;
use crate::layout::CLAUDE_DIR;
use crate::report::Report;

pub use copy::{MANIFEST, apply, own_copies};
pub use names::{DEFAULT, DEFAULT_SET, REFUSED, Share, plan, refused};
pub use source::{Limits, check};

/// The `settings.json` this launch shares (already [`check`]ed), which replaces the
/// scratch home's user settings: the guard judges it in their place.
#[must_use]
pub fn user_settings(shares: &[Share]) -> guard::Shared<'_> {
    let source = |name: &str| {
        let dest = Path::new(CLAUDE_DIR).join(name);
        shares
            .iter()
            .find(|s| s.dest == dest)
            .map(|s| s.source.as_path())
    };
    guard::Shared {
        settings: source("settings.json"),
        cowork: source(guard::COWORK_SETTINGS),
    }
}

/// The `--dry-run` lines for `shares` (already [`check`]ed).
pub fn print_plan(shares: &[Share], home: &Path, report: &Report) {
    if shares.is_empty() {
        return;
    }
    for s in shares {
        report.plan(format!(
            "share: {} -> {} (read-only copy)",
            s.source.display(),
            home.join(&s.dest).display()
        ));
    }
}
