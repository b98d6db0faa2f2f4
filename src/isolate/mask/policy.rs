//! The policy: when the mask is on, off, or refused, what the launcher and `--dry-run`
//! are told, and the refusals decided before anything changes (a misplaced working
//! directory, a descriptor into a hidden place, a `/proc` of another PID namespace).

#![forbid(unsafe_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::ns::{enter, probe, probe_for_launch, reap_helpers};
use super::plan::{Plan, plan, resolve_once};
use super::refusal::{Refusal, Step};
use super::sources::{Sources, set_aside};
use super::{Kind, MountOp};
use crate::cli::Switch;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::isolate::share;
use crate::layout::{CLAUDE_DIR, CREDENTIALS};
use crate::report::Report;

/// The launcher's first hook, before anything changes: the plan for this launch, or
/// `None` when the launch goes on unmasked (`--mask off`, or `auto` where the mask is
/// impossible: one warning). Every refusal of the mask is decided here: a working
/// directory it cannot be made from, an inherited descriptor into a hidden place, and,
/// under `--mask on`, the kernel's refusal of any step of the plan (tried in a helper that
/// is not joined: one `fork`, for `on` only; see [`probe_for_launch`]).
///
/// # Errors
/// A refusal (125).
pub(crate) fn prepare(
    config: &Config,
    home: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, Kind)],
    report: &Report,
) -> Result<Option<Plan>> {
    if config.mask == Switch::Off {
        return Ok(None);
    }
    let sources = Sources::new(config, home)
        .with_program(program)
        .with_shared(shared);
    let plan = match plan(&sources, &resolve_once()) {
        Ok(plan) => plan,
        // Not the kernel's refusal: the launch stops whatever the mode.
        Err(e @ Error::MaskPlace { .. }) => return Err(e),
        Err(e) if config.mask == Switch::Auto => {
            report.warn(format!("{e}; running isolated by environment only"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    check_descriptors(&plan, config.env.get("LISTEN_FDS"))?;
    let refused = match foreign_proc() {
        Some(r) => Some(r),
        None if config.mask == Switch::On => probe_for_launch(&plan).err(),
        None => None,
    };
    match refused {
        None => Ok(Some(plan)),
        Some(r) if config.mask == Switch::Auto => {
            report.warn(format!(
                "cannot mask the real credentials ({}); running isolated by environment only; {}",
                r.reason(),
                r.fix()
            ));
            Ok(None)
        }
        Some(r) => Err(r.into_error()),
    }
}

/// The launcher's second hook, after the home is made: enters the plan [`prepare`]
/// returned (see [`enter_as`]), with the credentials file the launch just quarantined out
/// of the scratch home emptied too. Returns whether this process is now masked. `fallback`
/// says the warning of `--mask auto` going on without the mask (a unit whose kernel
/// refuses hears it on every start: the launch says it once a day per home).
///
/// # Errors
/// `--mask on` and the kernel refused after all (125).
pub(crate) fn launch(
    config: &Config,
    plan: Option<Plan>,
    home: &Path,
    report: &Report,
    fallback: &dyn Fn(&str),
) -> Result<bool> {
    let Some(mut plan) = plan else {
        return Ok(false);
    };
    plan.add_files(set_aside(
        &home.join(CLAUDE_DIR).join(CREDENTIALS),
        "quarantined",
    ));
    enter_as(config.mask, &plan, report, fallback)
}

/// `/proc` of another PID namespace (`unshare --pid --fork` without `--mount-proc`):
/// `/proc/self` is not this process, and the namespace's id maps cannot be written.
fn foreign_proc() -> Option<Refusal> {
    let shown: u32 = std::fs::read_link("/proc/self")
        .ok()?
        .to_str()?
        .parse()
        .ok()?;
    (shown != std::process::id()).then_some(Refusal {
        step: Step::Proc,
        errno: Errno::EPERM,
        path: None,
        in_place: false,
    })
}

/// Refuses when a descriptor this process would hand to the command (one without
/// close-on-exec) leads into a place the plan hides: a directory or file inside it, or
/// a directory above it (`openat` or `/proc/self/fd/N/…` would reach the real files
/// through it, whatever the mount namespace shows). Sockets, pipes, terminals and files
/// elsewhere pass, and so do the descriptors systemd passes (`LISTEN_FDS`: 3 up to
/// `3 + LISTEN_FDS`), which the unit chose to hand on.
///
/// # Errors
/// The first such descriptor, named with where it leads (125).
pub(crate) fn check_descriptors(plan: &Plan, listen_fds: Option<&std::ffi::OsStr>) -> Result<()> {
    let systemd = 3..u32::try_from(crate::token::pipe::token_fd_floor(listen_fds)).unwrap_or(3);
    let (places, allowed) = plan.places();
    if places.is_empty() {
        return Ok(());
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Ok(());
    };
    let mut fds: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    for fd in fds.into_iter().filter(|fd| !systemd.contains(fd)) {
        // Where it leads first, one readlink: a terminal, a pipe, /dev/null or a file
        // elsewhere leads near no hidden place, even taken as a directory (which reaches
        // more: above a place too), and needs no other question of /proc.
        let link = format!("/proc/self/fd/{fd}");
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        // By bytes: a place whose name is not UTF-8 must still be matched.
        let bytes = target.as_os_str().as_bytes();
        if !bytes.starts_with(b"/") {
            continue;
        }
        let target = PathBuf::from(std::ffi::OsStr::from_bytes(
            bytes.strip_suffix(b" (deleted)").unwrap_or(bytes),
        ));
        if leads_into(&target, true, &places, &allowed).is_none() {
            continue;
        }
        let cloexec = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .ok()
            .and_then(|info| {
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
                u32::from_str_radix(flags.trim(), 8).ok()
            })
            .is_none_or(|flags| flags & 0o2_000_000 != 0);
        if cloexec {
            continue;
        }
        let is_dir = std::fs::metadata(&link).is_ok_and(|m| m.is_dir());
        if let Some(place) = leads_into(&target, is_dir, &places, &allowed) {
            return Err(Error::MaskPlace {
                reason: format!(
                    "descriptor {fd} ({}) leads to {}, which the mask hides",
                    target.display(),
                    place.display()
                ),
                fix: format!("close it before the launch ({fd}<&-), or pass --mask off"),
            });
        }
    }
    Ok(())
}

/// Where a descriptor on `target` leads among `places` (see [`check_descriptors`]): into
/// one (unless into one of `allowed`, shown again inside), or, for a directory, above one.
fn leads_into<'a>(
    target: &Path,
    is_dir: bool,
    places: &'a [PathBuf],
    allowed: &[PathBuf],
) -> Option<&'a Path> {
    // Every path here is canonical (the plan's, and the kernel's readlink of the
    // descriptor): compared by bytes.
    let within = crate::sys::fsutil::is_within;
    places
        .iter()
        .find(|p| {
            (within(target, p) && !allowed.iter().any(|a| within(a, p) && within(target, a)))
                || (is_dir && within(p, target))
        })
        .map(PathBuf::as_path)
}

/// Whether the mask would be applied here, without applying it (`--dry-run`, `doctor`).
#[derive(Debug)]
pub(crate) enum Verdict {
    /// `--mask off`.
    Off,
    /// The kernel allows it: the plan (possibly empty).
    Ready(Plan),
    /// Impossible: the plan if there is one, and the reason with its fix.
    Refused(Option<Plan>, String),
    /// The kernel would allow it, but not from this working directory or home: a launch
    /// exits 125 whatever the mode.
    Misplaced(String),
}

/// Computes the plan and tries it in a helper this process does not join.
#[must_use]
pub(crate) fn verdict(
    config: &Config,
    home: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, Kind)],
) -> Verdict {
    if config.mask == Switch::Off {
        return Verdict::Off;
    }
    match plan(
        &Sources::new(config, home)
            .with_program(program)
            .with_shared(shared),
        &resolve_once(),
    ) {
        Err(e @ Error::MaskPlace { .. }) => Verdict::Misplaced(e.to_string()),
        Err(e) => Verdict::Refused(None, e.to_string()),
        Ok(plan) => match check_descriptors(&plan, config.env.get("LISTEN_FDS")) {
            Err(e) => Verdict::Misplaced(e.to_string()),
            Ok(()) => match foreign_proc().map_or_else(|| probe(&plan), Err) {
                Ok(()) => Verdict::Ready(plan),
                Err(r) => {
                    let why = format!("{}; {}", r.reason(), r.fix());
                    Verdict::Refused(Some(plan), why)
                }
            },
        },
    }
}

/// The `--share` copies as the plan needs them: each destination in the scratch home
/// and whether it is a directory (taken from its source: the copy is made later).
#[must_use]
pub(crate) fn shared_paths(shares: &[share::Share], home: &Path) -> Vec<(PathBuf, Kind)> {
    shares
        .iter()
        .map(|s| {
            let kind = if std::fs::metadata(&s.source).is_ok_and(|m| m.is_dir()) {
                Kind::Dir
            } else {
                Kind::File
            };
            (home.join(&s.dest), kind)
        })
        .collect()
}

/// Enters the mask according to `mode`: `Off` does nothing; `Auto` warns (one line:
/// reason and fix) and goes on without it when the kernel refuses; `On` fails then.
/// Returns whether this process is now inside the mask (its working directory is then
/// `/` of the namespace: the caller changes to where it wants to be).
///
/// # Errors
/// `--mask on` and the kernel refused (125).
pub(crate) fn enter_as(
    mode: Switch,
    plan: &Plan,
    report: &Report,
    fallback: &dyn Fn(&str),
) -> Result<bool> {
    reap_helpers();
    if mode == Switch::Off {
        return Ok(false);
    }
    match enter(plan) {
        Ok(()) => {
            report.info(format!(
                "mask: {} paths masked",
                plan.ops
                    .iter()
                    .filter(|op| !matches!(op, MountOp::Writable { .. } | MountOp::Reveal { .. }))
                    .count()
            ));
            Ok(true)
        }
        Err(r) if mode == Switch::Auto && !r.in_place => {
            fallback(&format!(
                "cannot mask the real credentials ({}); running isolated by environment only; {}",
                r.reason(),
                r.fix()
            ));
            Ok(false)
        }
        Err(r) => Err(r.into_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_lead_into_a_place_inside_it_or_from_a_directory_above_it() {
        let places = vec![PathBuf::from("/h/.claude"), PathBuf::from("/s/claude-iso")];
        let allowed = vec![PathBuf::from("/s/claude-iso/homes/a")];
        let at = |t: &str, dir: bool| leads_into(Path::new(t), dir, &places, &allowed);
        assert_eq!(
            at("/h/.claude/.credentials.json", false),
            Some(Path::new("/h/.claude"))
        );
        assert_eq!(at("/h/.claude", true), Some(Path::new("/h/.claude")));
        assert_eq!(at("/h", true), Some(Path::new("/h/.claude")));
        assert_eq!(at("/", true), Some(Path::new("/h/.claude")));
        assert_eq!(
            at("/s/claude-iso/homes/b", true),
            Some(Path::new("/s/claude-iso"))
        );
        // A file above is no way in; the own home, a sibling and /dev/null are harmless.
        assert_eq!(at("/h", false), None);
        assert_eq!(at("/s/claude-iso/homes/a/x", true), None);
        assert_eq!(at("/h/.claude.bak", true), None);
        assert_eq!(at("/dev/null", false), None);
    }
}
