//! Seeding `.claude.json` so the interactive TUI shows no onboarding or folder-trust
//! dialog (keys observed on the real CLI, see `claude-code-facts.md`):
//! `hasCompletedOnboarding: true` and `projects[<realpath>].hasTrustDialogAccepted: true`;
//! and no question a home that is not fresh brings up at start (the counters of
//! [`DIALOG_COUNTERS`], raised to their limits, and the flags of [`DIALOG_FLAGS`], set;
//! see `docs/claude-dialogs.md`).
//!
//! The common case — already seeded — is decided by streaming through the file once,
//! skipping everything but the two keys we own, and writes nothing. Otherwise, under our
//! own `flock` and claude's `mkdir` lock, the file is read, merged (every other key kept),
//! written to a temp file, fsynced and renamed over the original.
//!
//! Launches that need a write at the same time share one (group commit, issue 26): each
//! first posts what it needs as a pending file in the home ([`PENDING_PREFIX`], written
//! whole before it gets its name, and `flock`ed by the launch for as long as it runs);
//! whoever gets the lock merges every pending request in one rewrite and removes those
//! files once the new `.claude.json` is in place. A launch whose file was removed so is
//! done without taking the lock; a pending file nobody holds is a dead launch's and is
//! removed unmerged. A launch killed at any point leaves `.claude.json` whole (it is only
//! ever replaced by rename) and every other launch's request pending or merged.

#![forbid(unsafe_code)]

mod commit;
mod json;
mod lock;

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::error::{Area, Error, Result, SysContext};
use crate::home::ScratchHome;
use crate::layout::{CLAUDE_JSON, DIALOG_COUNTERS, DIALOG_FLAGS, ONBOARDING, TEMP_PREFIX};
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, is_type};
use commit::{Pending, collect_pending, remove_stale_temp_files, retire};
pub(crate) use json::{Changes, NotAnObject, merge};
use lock::{ClaudeLock, own_lock};

fn seed_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Seed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Opens `.claude.json` without following a symlink; returns it with its size.
pub(crate) fn open_config(dir: &OwnedFd, path: &Path) -> Result<Option<(File, u64)>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match openat(dir, CLAUDE_JSON, flags, Mode::empty()) {
        Ok(fd) => {
            let st = fstat(&fd).at(Area::File, path)?;
            if !is_type(&st, SFlag::S_IFREG) {
                return Err(seed_err(
                    path,
                    format!(
                        "is a {}, not a regular file: move it away",
                        fsutil::describe_mode(st.st_mode)
                    ),
                ));
            }
            Ok(Some((
                File::from(fd),
                u64::try_from(st.st_size).unwrap_or(0),
            )))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP) => Err(seed_err(
            path,
            "is a symlink; claude would write through it out of the scratch home: move it away",
        )),
        Err(e) => Err(seed_err(path, format!("cannot open: {}", e.desc()))),
    }
}

/// What seeding would do to a home's `.claude.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SeedPlan {
    /// Already seeded: nothing is written.
    Seeded,
    /// No `.claude.json` yet: one is created with onboarding and trust.
    Create,
    /// These changes would be merged in (every other key kept).
    Update(Changes),
    /// Not a JSON object: kept aside, and a fresh one seeded.
    Replace,
    /// Not seeded yet; what would change was not worked out ([`inspect_for`] a launch).
    Unseeded,
}

/// What [`inspect`] found.
#[derive(Debug)]
pub(crate) struct SeedState {
    /// `<home>/.claude.json`, for messages.
    pub path: PathBuf,
    /// The directories to trust, as claude records them.
    pub trust: Vec<String>,
    pub plan: SeedPlan,
}

impl SeedState {
    /// One line for the dry-run plan or the doctor.
    #[must_use]
    pub(crate) fn describe(&self) -> String {
        let path = self.path.display();
        let trust = if self.trust.is_empty() {
            String::new()
        } else {
            format!(" and trust for {}", self.trust.join(", "))
        };
        match &self.plan {
            SeedPlan::Seeded => format!("{path} already seeded (no write)"),
            SeedPlan::Create => format!("would create {path} with {}{trust}", fresh_keys()),
            SeedPlan::Update(changes) => format!("would set {changes} in {path}"),
            SeedPlan::Unseeded => format!("would seed {path}"),
            SeedPlan::Replace => format!(
                "{path} is not a JSON object: would keep it aside and seed a fresh one with {}{trust}",
                fresh_keys()
            ),
        }
    }
}

/// What a fresh `.claude.json` gets besides trust: `hasCompletedOnboarding=true, …`.
fn fresh_keys() -> String {
    std::iter::once(format!("{ONBOARDING}=true"))
        .chain(
            DIALOG_COUNTERS
                .iter()
                .map(|(k, limit)| format!("{k}={limit}")),
        )
        .chain(DIALOG_FLAGS.iter().map(|k| format!("{k}=true")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn trust_strings(trust: &[PathBuf]) -> Result<Vec<String>> {
    trust
        .iter()
        .map(|p| {
            p.to_str()
                .map(ToOwned::to_owned)
                .ok_or_else(|| seed_err(p, "is not valid UTF-8; claude cannot record trust for it"))
        })
        .collect()
}

/// Decides what seeding `.claude.json` in the home would change; writes nothing. The
/// common case (already seeded) is a streaming scan; otherwise the file is merged in
/// memory to list exactly what would change.
///
/// # Errors
/// A path that is not UTF-8, or an unusable `.claude.json` (a symlink, not a regular file).
pub(crate) fn inspect(dir: Option<&OwnedFd>, home: &Path, trust: &[PathBuf]) -> Result<SeedState> {
    inspect_for(dir, home, trust, true)
}

/// [`inspect`] for a launch (`detail` false): a file the scan finds unseeded is planned
/// as [`SeedPlan::Unseeded`] without merging it in memory just to list the changes —
/// [`apply`] merges it again under the lock anyway. (With a large `.claude.json` and many
/// launches starting together, that listing was most of a first launch's time.)
///
/// # Errors
/// As [`inspect`].
pub(crate) fn inspect_for(
    dir: Option<&OwnedFd>,
    home: &Path,
    trust: &[PathBuf],
    detail: bool,
) -> Result<SeedState> {
    let path = home.join(CLAUDE_JSON);
    let trust = trust_strings(trust)?;
    let refs: Vec<&str> = trust.iter().map(String::as_str).collect();
    let opened = match dir {
        Some(dir) => open_config(dir, &path)?,
        None => None,
    };
    let plan = match opened {
        None => SeedPlan::Create,
        Some((mut file, size)) => {
            // One byte more than the size, so a small file is read to EOF in one buffer.
            let hint = usize::try_from(size.saturating_add(1)).unwrap_or(usize::MAX);
            let needles = || -> Vec<Vec<u8>> {
                refs.iter()
                    .map(|d| serde_json::to_vec(d).expect("a string serialises"))
                    .collect()
            };
            if !detail && crate::home::scan::lacks_any(&file, size, &needles()) {
                // A directory named nowhere in the file: a write is needed.
                SeedPlan::Unseeded
            } else if crate::home::scan::is_seeded_sized(&mut file, hint, &refs) == Some(true) {
                SeedPlan::Seeded
            } else if !detail {
                SeedPlan::Unseeded
            } else {
                let mut bytes = Vec::new();
                use std::io::Seek;
                file.seek(std::io::SeekFrom::Start(0))
                    .and_then(|_| file.read_to_end(&mut bytes))
                    .map_err(|e| {
                        seed_err(
                            &path,
                            format!("cannot read: {}", crate::error::error_text(&e)),
                        )
                    })?;
                match merge(&String::from_utf8_lossy(&bytes), &refs) {
                    Ok((_, changes)) if changes.is_empty() => SeedPlan::Seeded,
                    Ok((_, changes)) => SeedPlan::Update(changes),
                    Err(NotAnObject) => SeedPlan::Replace,
                }
            }
        }
    };
    Ok(SeedState { path, trust, plan })
}

/// Makes sure `.claude.json` in the home has onboarding and trust set, as inspected:
/// under our own lock and claude's, the file is read again, merged and replaced
/// atomically. Nothing is written when it is already seeded.
///
/// # Errors
/// An unusable `.claude.json`, a lock that stays held, or a failed write (the previous
/// file is then intact).
pub(crate) fn apply(home: &ScratchHome, state: &SeedState, report: &Report) -> Result<()> {
    let path = &state.path;
    if state.plan == SeedPlan::Seeded {
        report.info(format!("{} already seeded; not written", path.display()));
        return Ok(());
    }
    let dir = &home.dir;
    let request = Pending::post(dir, &home.path, &state.trust)?;
    let Some(own) = own_lock(dir, &home.path, || request.merged())? else {
        report.info(format!(
            "{} seeded by a concurrent launch (one write for all of them); not written",
            path.display()
        ));
        return Ok(());
    };
    if request.merged() {
        report.info(format!(
            "{} seeded by a concurrent launch (one write for all of them); not written",
            path.display()
        ));
        return Ok(());
    }
    let _claude = ClaudeLock::acquire(dir, &own, &home.path, report)?;
    remove_stale_temp_files(dir);
    let others = collect_pending(dir, &request.name);
    let mut trust: Vec<&str> = state.trust.iter().map(String::as_str).collect();
    for dir in others.iter().flat_map(|(_, dirs)| dirs) {
        if !trust.contains(&dir.as_str()) {
            trust.push(dir);
        }
    }

    let Some(changes) = rewrite(dir, path, &trust, report)? else {
        // Another process seeded it meanwhile: every request is already in place.
        retire(dir, &others);
        request.retire();
        return Ok(());
    };
    // Only now, with the new file in place, are the requests done (ours too: removed
    // before the locks go, so the next holder does not read it again).
    retire(dir, &others);
    request.retire();
    report.info(format!("seeded {}: {changes}", path.display()));
    if !others.is_empty() {
        report.info(format!(
            "one write for {} concurrent launches",
            others.len() + 1
        ));
    }
    Ok(())
}

/// The current `.claude.json`, whole (`None`: there is none).
fn read_original(dir: &OwnedFd, path: &Path) -> Result<Option<Vec<u8>>> {
    Ok(match open_config(dir, path)? {
        None => None,
        Some((mut file, size)) => {
            // Sized to the file (one byte more to see EOF): no regrowing, no copies.
            let mut bytes =
                Vec::with_capacity(usize::try_from(size.saturating_add(1)).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(|e| {
                seed_err(
                    path,
                    format!("cannot read: {}", crate::error::error_text(&e)),
                )
            })?;
            Some(bytes)
        }
    })
}

/// Under both locks: `.claude.json` read again, merged with `trust` and replaced
/// atomically (a file that was not an object, or lost something to the merge, kept
/// aside first). `None`: nothing to change, nothing written.
fn rewrite(dir: &OwnedFd, path: &Path, trust: &[&str], report: &Report) -> Result<Option<Changes>> {
    let original = read_original(dir, path)?;
    // Invalid UTF-8 is decoded the way claude (Node) reads the file: as U+FFFD.
    let decoded = original.as_deref().map(String::from_utf8_lossy);
    let lossy = matches!(decoded, Some(std::borrow::Cow::Owned(_)));
    let merged = decoded.as_deref().map(|text| merge(text, trust));
    let lossy = lossy && matches!(merged, Some(Ok(_)));
    let (text, mut changes) = match merged {
        Some(Ok(merged)) => merged,
        None => merge("{}", trust).expect("an object"),
        Some(Err(NotAnObject)) => {
            let aside = fsutil::put_aside(dir, CLAUDE_JSON, "corrupt", Aside::Link).on(
                Area::File,
                path,
                "keep a copy of it",
            )?;
            report.warn(format!(
                "{} was not a JSON object; kept it as {aside} and seeded a fresh one",
                path.display()
            ));
            merge("{}", trust).expect("an object")
        }
    };
    if changes.is_empty() {
        return Ok(None);
    }
    if lossy {
        changes
            .replaced
            .push("invalid UTF-8 (now U+FFFD, as claude reads it)".to_owned());
    }
    if original.is_some() && !changes.replaced.is_empty() {
        let aside = fsutil::put_aside(dir, CLAUDE_JSON, "replaced", Aside::Link).on(
            Area::File,
            path,
            "keep a copy of it",
        )?;
        report.warn(format!(
            "{} had {}; kept the original as {aside}",
            path.display(),
            changes.replaced.join(", ")
        ));
    }
    fsutil::write_atomic(dir, CLAUDE_JSON, TEMP_PREFIX, text.as_bytes(), 0o600, None).map_err(
        |e| {
            seed_err(
                path,
                format!(
                    "cannot write: {}; the previous file is unchanged",
                    crate::error::error_text(&e)
                ),
            )
        },
    )?;
    Ok(Some(changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_json;
    use serde_json::{Value, json};

    fn merged(input: &Value, trust: &[&str]) -> (Value, Changes) {
        let (text, changes) = merge(&input.to_string(), trust).expect("an object");
        (serde_json::from_str(&text).expect("valid JSON"), changes)
    }

    #[test]
    fn merge_sets_and_keeps() {
        let input =
            json!({"a": 1, "projects": {"/x": {"allowedTools": ["t"]}, "/y": {"k": 2}}, "z": [1]});
        let (out, c) = merged(&input, &["/x", "/n"]);
        assert!(c.onboarding);
        assert_eq!(c.trusted, vec!["/x", "/n"]);
        assert_eq!(
            out,
            json!({"a": 1, "projects": {"/x": {"allowedTools": ["t"], "hasTrustDialogAccepted": true}, "/y": {"k": 2}, "/n": {"hasTrustDialogAccepted": true}}, "z": [1], "hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true})
        );
        assert_eq!(c.counters, vec!["fullscreenUpsellSeenCount"]);
        assert_eq!(c.flags, vec!["hasSeenAutoDefaultNudge"]);
        let (again, c) = merged(&out, &["/x", "/n"]);
        assert!(c.is_empty());
        assert_eq!(again, out);
    }

    #[test]
    fn merge_raises_dialog_counters_and_never_lowers_them() {
        let seeded = |count: Value| json!({"hasCompletedOnboarding": true, "hasSeenAutoDefaultNudge": true, "fullscreenUpsellSeenCount": count});
        for (before, after) in [
            (json!(0), json!(3)),
            (json!(2), json!(3)),
            (json!("5"), json!(3)),
            (json!(null), json!(3)),
            (json!(3), json!(3)),
            (json!(41), json!(41)),
        ] {
            let (out, c) = merged(&seeded(before.clone()), &[]);
            assert_eq!(out, seeded(after.clone()), "{before}");
            assert_eq!(c.counters.is_empty(), before == after, "{before}");
            assert!(!c.onboarding);
        }
        // Kept as written when already high enough.
        let text = "{\"hasCompletedOnboarding\": true, \"hasSeenAutoDefaultNudge\": true, \"fullscreenUpsellSeenCount\": 3.50}";
        let (out, c) = merge(text, &[]).unwrap();
        assert!(c.is_empty());
        assert!(out.contains("3.50"), "{out}");
        assert_eq!(c.to_string(), "");
        let (_, c) = merge("{}", &[]).unwrap();
        assert_eq!(
            c.to_string(),
            "hasCompletedOnboarding=true, fullscreenUpsellSeenCount=3, hasSeenAutoDefaultNudge=true"
        );
        // A flag already set is kept; any other value becomes true.
        for (before, changed) in [
            (json!(true), false),
            (json!(false), true),
            (json!("yes"), true),
        ] {
            let doc = json!({"hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": before});
            let (out, c) = merged(&doc, &[]);
            assert_eq!(out["hasSeenAutoDefaultNudge"], json!(true));
            assert_eq!(c.flags.is_empty(), !changed, "{doc}");
        }
    }

    #[test]
    fn merge_replaces_wrong_types() {
        assert_eq!(
            merged(&json!({"projects": 3}), &["/x"]).1.replaced,
            vec!["projects"]
        );
        assert_eq!(
            merged(&json!({"projects": {"/x": true}}), &["/x"])
                .1
                .replaced,
            vec!["projects[/x]"]
        );
        assert_eq!(merge("[1]", &["/x"]), Err(NotAnObject));
        assert_eq!(merge("{", &[]), Err(NotAnObject));
    }

    #[test]
    fn merge_keeps_what_javascript_wrote_byte_for_byte() {
        // A lone surrogate (JSON.stringify of a string cut through an emoji), a number
        // serde_json would round, and an escaped slash: all kept exactly.
        let input = "{\n  \"lastPrompt\": \"emoji \\ud83d\",\n  \"cost\": 1.00000000000000001,\n  \"p\": \"a\\/b\",\n  \"projects\": {\n    \"/old\": {\n      \"history\": [\"\\udc00\"]\n    }\n  }\n}";
        let (out, c) = merge(input, &["/old"]).unwrap();
        assert_eq!(c.trusted, vec!["/old"]);
        for kept in [
            "\"emoji \\ud83d\"",
            "1.00000000000000001",
            "\"a\\/b\"",
            "[\"\\udc00\"]",
        ] {
            assert!(out.contains(kept), "{kept} lost in {out}");
        }
        assert_eq!(
            crate::home::scan::is_seeded(out.as_bytes(), &["/old"]),
            Some(true)
        );
    }

    #[test]
    fn merge_handles_deep_nesting() {
        let deep = format!("{{\"d\": {}1{}}}", "[".repeat(3000), "]".repeat(3000));
        let (out, c) = merge(&deep, &["/x"]).unwrap();
        assert!(c.onboarding);
        assert!(out.contains(&"[".repeat(3000)));
    }

    proptest::proptest! {
        #[test]
        fn merge_properties(
            doc in proptest::collection::btree_map("[a-z/]{0,6}|projects|hasCompletedOnboarding|fullscreenUpsellSeenCount|hasSeenAutoDefaultNudge", arb_json(), 0..8),
            trust in proptest::collection::vec("/[a-z]{0,4}|/w", 0..4),
            pretty in proptest::bool::ANY,
        ) {
            let trust: Vec<&str> = trust.iter().map(String::as_str).collect();
            let before: serde_json::Map<String, Value> = doc.into_iter().collect();
            let text = if pretty {
                serde_json::to_string_pretty(&before)
            } else {
                serde_json::to_string(&before)
            }.unwrap();
            let (out, c) = merge(&text, &trust).unwrap();
            // Output is valid JSON, seeded, and the streaming check agrees.
            let after: serde_json::Map<String, Value> = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(crate::home::scan::is_seeded(out.as_bytes(), &trust), Some(true));
            // Every input key is kept; keys we do not own keep their values.
            for (k, v) in &before {
                proptest::prop_assert!(after.contains_key(k));
                if k != "projects" && k != "hasCompletedOnboarding" && json::counter_limit(k).is_none() && !DIALOG_FLAGS.contains(&k.as_str()) {
                    proptest::prop_assert_eq!(&after[k], v);
                }
            }
            // Seeding twice equals seeding once.
            let (again, c2) = merge(&out, &trust).unwrap();
            proptest::prop_assert!(c2.is_empty());
            proptest::prop_assert_eq!(&again, &out);
            // Nothing to do means the streaming check said so.
            if c.is_empty() {
                proptest::prop_assert_eq!(crate::home::scan::is_seeded(text.as_bytes(), &trust), Some(true));
            }
        }

        #[test]
        fn merge_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = merge(text, &["/a"]);
            }
        }
    }
}
