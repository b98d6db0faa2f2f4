//! The mask: the real credential files made unreachable to the command and everything it
//! starts, by the kernel, in a private mount namespace entered just before `execve`.
//!
//! [`plan`] is a function from where credentials live to a list of [`MountOp`]s:
//! each real config dir and the Anthropic profile store covered by an empty read-only
//! directory, each real `~/.claude.json` bound read-only onto itself, each token file
//! covered by an empty read-only file. A config dir that holds the working directory
//! stays visible but read-only (that directory writable), its credential files emptied.
//! First come the views ([`MountOp::View`]): the directory holding each hidden place is
//! covered by a read-only tmpfs with its launch-time entries bound back, so that removing,
//! renaming or re-creating a hidden place outside during the run lifts nothing (a mount
//! on the real entry would go away with it); claude-iso's state directory shows only the
//! launch's own home.
//!
//! The launcher calls [`prepare`] before anything changes (the plan, and every refusal:
//! a misplaced working directory, an inherited descriptor into a hidden place
//! ([`check_descriptors`]), a `/proc` of another PID namespace, and under `--mask on` the
//! kernel's refusal of the namespaces, tried in a helper), then [`launch`] after the home is made, which
//! [`enter`]s it.
//!
//! How it is applied (measured; see the README's "The mask"): in this very process, no
//! fork, wherever a refusal part-way can still be undone or is known to come first:
//! - unprivileged: a new user + mount namespace with an identity map of the uid and gid
//!   (`setgroups` denied), `/` made private, the masks mounted. After `execve` the
//!   command has no capabilities there, so it cannot remove them, and a namespace of its
//!   own only gets them locked. A refusal at `unshare` leaves this process as it was;
//!   one after it stops the launch (125), there being no way back.
//! - root (in the initial user namespace, with `CAP_SYS_ADMIN` and `CAP_SYS_CHROOT`): a
//!   plain mount namespace with the masks, then a new user namespace (all ids mapped to
//!   themselves, so root stays root for files; made by a holder process that shares this
//!   process's memory, since only a process outside it may write such maps) and a mount
//!   namespace of its own. Mounts inherited into a less privileged namespace are locked:
//!   root in it cannot unmount or remount them, nor reach `/proc/<pid>/root` of processes
//!   outside. Until the user namespace is joined, root can go back to the mount
//!   namespace, root and working directory it came from, so a refusal there leaves it as
//!   it was (and `auto` goes on isolated by environment).
//! - otherwise (root in a user namespace of its own, or without those capabilities, and
//!   where AppArmor leaves a new user namespace without capabilities): a forked helper
//!   does the work and this process joins the result with `setns`.
//!
//! A view already shows a hidden place as an empty placeholder in its read-only tmpfs
//! (and `~/.claude.json` bound back read-only): the separate mask on it is then skipped,
//! and the staging tmpfs is only made for the empty masks still needed.
//!
//! The files: the plan, pure but for `resolve` (`sources`: where credentials live for this
//! caller; `plan`: what is hidden, emptied, read-only or shown again, and what `--share`
//! may not carry in; `views`: which directories are viewed and what each shows); the
//! policy (`policy`: when the mask is on, off or refused, and what refuses it before
//! anything changes; `refusal`: the kernel's refusal in words); the namespace mechanics
//! (`ns`: `unshare`, the id maps, the forked helper and `setns`; `mount`: the mounts
//! themselves).

#![forbid(unsafe_code)]

mod mount;
mod ns;
mod plan;
mod policy;
mod refusal;
mod sources;
mod views;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub(crate) use ns::reap_helpers;
pub(crate) use plan::{Plan, share_limits};
pub(crate) use policy::{Verdict, launch, prepare, shared_paths, verdict};

/// Files claude reads outside any home when their descriptor variables are unset (an
/// API key there outranks the token).
pub(crate) const FIXED_FILES: &[&str] = &[
    "/home/claude/.claude/remote/.oauth_token",
    "/home/claude/.claude/remote/.api_key",
    "/home/claude/.claude/remote/.session_ingress_token",
];

/// What a path is, as far as mounting over it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// A regular file (or anything else that is not a directory).
    File,
}

/// One mount, in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountOp {
    /// Bind the path onto itself read-only: nothing in it can be written, created,
    /// renamed or removed.
    ReadOnly { path: PathBuf, kind: Kind },
    /// Bind the scratch home or the working directory back writable where it lies inside
    /// a read-only directory.
    Writable { path: PathBuf },
    /// Cover the path with an empty read-only file (or directory): it reads as empty and
    /// cannot be written, renamed over or removed.
    Empty { path: PathBuf, kind: Kind },
    /// Show a directory inside a hidden one again, read-only (a `PATH` entry such as
    /// claude's local install in `~/.claude/local`).
    Reveal { path: PathBuf },
    /// A view of a directory: a read-only tmpfs over it in which each entry it holds at
    /// launch is bound back from the real directory (writable as it was; a symlink is
    /// copied), except the `cover` names (an empty placeholder of that kind, or nothing)
    /// and, with `only`, every name not listed (left out). A mount on a real entry goes
    /// away when that entry is removed or renamed outside; the view's mount points are
    /// its own, so removing, renaming or re-creating an entry outside changes nothing
    /// the command sees (issue 21).
    View {
        path: PathBuf,
        cover: Vec<(OsString, Option<Kind>)>,
        only: Option<Vec<OsString>>,
        /// Bound back read-only (`~/.claude.json`; a config dir that is the working
        /// directory), so that what shows when a later mount on it goes away is read-only
        /// too.
        read_only: Vec<OsString>,
    },
}

impl MountOp {
    #[must_use]
    pub(crate) fn path(&self) -> &Path {
        match self {
            MountOp::ReadOnly { path, .. }
            | MountOp::Writable { path }
            | MountOp::Empty { path, .. }
            | MountOp::Reveal { path }
            | MountOp::View { path, .. } => path,
        }
    }

    /// How the op is shown in `--dry-run` and `doctor`.
    #[must_use]
    pub(crate) fn describe(&self) -> String {
        match self {
            MountOp::ReadOnly { path, .. } => format!("read-only {}", path.display()),
            MountOp::Writable { path } => format!("kept writable {}", path.display()),
            MountOp::Empty {
                path,
                kind: Kind::File,
            } => format!("empty {}", path.display()),
            MountOp::Empty {
                path,
                kind: Kind::Dir,
            } => format!("hidden {}", path.display()),
            MountOp::Reveal { path } => format!("shown read-only {}", path.display()),
            MountOp::View {
                path,
                only: Some(only),
                ..
            } => {
                let names: Vec<String> = only
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                format!(
                    "view {} (only {} shown)",
                    path.display(),
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(" ")
                    }
                )
            }
            MountOp::View {
                path,
                cover,
                read_only,
                ..
            } => {
                let names = |v: Vec<&OsString>| {
                    v.iter()
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect::<Vec<String>>()
                        .join(" ")
                };
                let hidden = names(
                    cover
                        .iter()
                        .filter(|(_, k)| k.is_some())
                        .map(|(n, _)| n)
                        .collect(),
                );
                let absent = names(
                    cover
                        .iter()
                        .filter(|(_, k)| k.is_none())
                        .map(|(n, _)| n)
                        .collect(),
                );
                let ro = names(read_only.iter().collect());
                let mut parts = vec!["entries as at launch".to_owned()];
                for (what, list) in [("empty", hidden), ("left out", absent), ("read-only", ro)] {
                    if !list.is_empty() {
                        parts.push(format!("{what}: {list}"));
                    }
                }
                format!("view {} ({})", path.display(), parts.join("; "))
            }
        }
    }
}

/// The plan's lines for `--dry-run` and `doctor`.
#[must_use]
pub(crate) fn describe(plan: &Plan) -> Vec<String> {
    plan.ops.iter().map(MountOp::describe).collect()
}
