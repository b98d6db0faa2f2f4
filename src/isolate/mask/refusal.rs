//! Why the kernel refused the mask: the step, the errno, and words for the reason and
//! the fix.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::Error;

/// The step at which the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Fork,
    Unshare,
    Setgroups,
    UidMap,
    GidMap,
    Private,
    Staging,
    /// The op at this index of the plan.
    Mount(usize),
    Lock,
    Join,
    /// The helper died or said something we did not understand.
    Helper,
    /// `/proc` belongs to another PID namespace (found before anything is tried).
    Proc,
}

/// Why the mask could not be set up: the step, the errno, and the path when one was
/// being mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub step: Step,
    pub errno: Errno,
    pub path: Option<PathBuf>,
    /// It failed after this process itself entered the new user namespace (the in-place
    /// path), which it cannot leave: the launch must stop even under `--mask auto`.
    pub in_place: bool,
}

impl Refusal {
    /// What happened, in words, with the likely cause.
    #[must_use]
    pub(crate) fn reason(&self) -> String {
        let e = self.errno.desc();
        let apparmor = || {
            std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .is_ok_and(|v| v.trim() == "1")
        };
        match (self.step, self.errno) {
            (Step::Proc, _) => "this runs in a PID namespace whose /proc belongs to another one (/proc/self is not this process: `unshare --pid --fork` without `--mount-proc`?), so the new namespace's id maps cannot be written".into(),
            (Step::Unshare | Step::Lock, Errno::ENOSPC | Errno::EUSERS) => format!(
                "the kernel refused a new user namespace ({e}): user.max_user_namespaces is 0 or used up"
            ),
            (Step::Unshare, Errno::EINVAL) => {
                "the kernel has no user namespaces (unshare: Invalid argument)".into()
            }
            (Step::Unshare | Step::Lock, Errno::EPERM) => format!(
                "user namespaces are not allowed here (unshare: {e}): a container's seccomp policy, systemd's RestrictNamespaces=, or an unmapped user"
            ),
            (
                Step::Setgroups | Step::UidMap | Step::GidMap | Step::Private | Step::Staging,
                Errno::EPERM | Errno::EACCES,
            ) if apparmor() => {
                format!(
                    "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): {} refused ({e})",
                    self.step_name()
                )
            }
            _ => match &self.path {
                Some(p) => format!("cannot mount over {}: {e}", p.display()),
                None => format!("{} failed: {e}", self.step_name()),
            },
        }
    }

    /// How to make it work, in words.
    #[must_use]
    pub(crate) fn fix(&self) -> String {
        match (self.step, self.errno) {
            (Step::Proc, _) => {
                "fix: mount a /proc of this PID namespace (unshare --pid --fork --mount-proc; container runtimes do it), or pass --mask off".into()
            }
            (Step::Unshare | Step::Lock, Errno::ENOSPC | Errno::EUSERS) => {
                "fix: sysctl -w user.max_user_namespaces=10000 (as root), or pass --mask off".into()
            }
            (Step::Unshare | Step::Lock, _) => {
                "fix: allow user namespaces (docker: --security-opt seccomp=unconfined or a profile allowing unshare; systemd: RestrictNamespaces=user mnt, which allows only those two), or pass --mask off".into()
            }
            (Step::Setgroups | Step::UidMap | Step::GidMap | Step::Private | Step::Staging, _) => {
                "fix: install the AppArmor profile from examples/apparmor (see README: The mask), or pass --mask off".into()
            }
            _ => "fix: pass --mask off to run without the mask".into(),
        }
    }

    fn step_name(&self) -> &'static str {
        match self.step {
            Step::Fork => "fork",
            Step::Unshare => "unshare",
            Step::Setgroups => "writing /proc/self/setgroups",
            Step::UidMap => "writing uid_map",
            Step::GidMap => "writing gid_map",
            Step::Private => "making / private",
            Step::Staging => "mounting a tmpfs",
            Step::Mount(_) => "mount",
            Step::Lock => "locking the masks (nested namespace)",
            Step::Join => "setns",
            Step::Helper => "the helper process",
            Step::Proc => "/proc",
        }
    }

    /// As an error of claude-iso (exit 125).
    #[must_use]
    pub(crate) fn into_error(self) -> Error {
        Error::Mask {
            reason: self.reason(),
            fix: self.fix(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}
