//! Seeding `.claude.json` so the interactive TUI shows no onboarding or folder-trust
//! dialog (keys observed on the real CLI, see `claude-code-facts.md`):
//! `hasCompletedOnboarding: true` and `projects[<realpath>].hasTrustDialogAccepted: true`.
//!
//! The common case — already seeded — is decided by streaming through the file once,
//! skipping everything but the two keys we own, and writes nothing. Otherwise, under our
//! own `flock` and claude's `mkdir` lock, the file is read, merged (every other key kept),
//! written to a temp file, fsynced and renamed over the original.

#![forbid(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::fsutil::{self, Aside, is_type, lstat_at};
use crate::home::ScratchHome;
use crate::layout::{
    CLAUDE_JSON, CLAUDE_LOCK, LOCK_TIMEOUT, ONBOARDING, OWN_LOCK, PROJECTS, STALE_AFTER, TRUSTED,
};
use crate::report::Report;

/// What a merge changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// `hasCompletedOnboarding` was set.
    pub onboarding: bool,
    /// Directories whose trust was set.
    pub trusted: Vec<String>,
    /// Values of the wrong type that had to be replaced (`projects`, `projects[dir]`).
    pub replaced: Vec<String>,
}

impl Changes {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.onboarding && self.trusted.is_empty() && self.replaced.is_empty()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.onboarding {
            parts.push(format!("{ONBOARDING}=true"));
        }
        for dir in &self.trusted {
            parts.push(format!("trust for {dir}"));
        }
        for what in &self.replaced {
            parts.push(format!("replaced non-object {what}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// An object whose members we do not own are kept as their original JSON text, byte
/// for byte: a rewrite never re-encodes a number, an escape or a lone surrogate that
/// claude (JavaScript) wrote and would read back.
type RawMap = IndexMap<String, Node>;

/// A member: untouched original text, or an object we descend into.
#[derive(Debug)]
enum Node {
    Raw(Box<RawValue>),
    Object(RawMap),
}

impl serde::Serialize for Node {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Raw(raw) => raw.serialize(s),
            Node::Object(map) => map.serialize(s),
        }
    }
}

fn raw_true() -> Node {
    Node::Raw(RawValue::from_string("true".to_owned()).expect("valid JSON"))
}

fn is_true(node: Option<&Node>) -> bool {
    matches!(node, Some(Node::Raw(raw)) if raw.get().trim() == "true")
}

/// Parses the members of an object, each kept as raw text. `None`: not an object.
fn parse_object(text: &str) -> Option<RawMap> {
    let members: IndexMap<String, Box<RawValue>> = serde_json::from_str(text).ok()?;
    Some(
        members
            .into_iter()
            .map(|(k, v)| (k, Node::Raw(v)))
            .collect(),
    )
}

/// Descends into member `key` of `map` as an object, replacing it (and saying so in
/// `replaced`) when it is not one; creates it when missing.
fn object_member<'a>(
    map: &'a mut RawMap,
    key: &str,
    replaced: &mut Vec<String>,
    what: String,
) -> &'a mut RawMap {
    let node = map
        .entry(key.to_owned())
        .or_insert_with(|| Node::Object(RawMap::new()));
    if let Node::Raw(raw) = node {
        *node = Node::Object(parse_object(raw.get()).unwrap_or_else(|| {
            replaced.push(what);
            RawMap::new()
        }));
    }
    match node {
        Node::Object(map) => map,
        Node::Raw(_) => unreachable!("made an object above"),
    }
}

/// Sets onboarding and trust in the text of a `.claude.json`. Pure. Keeps every other
/// key, its position and its value's exact text. Idempotent: a second merge of the
/// output changes nothing.
///
/// # Errors
/// The text is not a JSON object (the caller keeps it aside and starts afresh).
pub fn merge(text: &str, trust: &[&str]) -> Result<(String, Changes), NotAnObject> {
    let mut doc = parse_object(text).ok_or(NotAnObject)?;
    let mut changes = Changes::default();
    if !is_true(doc.get(ONBOARDING)) {
        doc.insert(ONBOARDING.to_owned(), raw_true());
        changes.onboarding = true;
    }
    if !trust.is_empty() {
        let projects = object_member(
            &mut doc,
            PROJECTS,
            &mut changes.replaced,
            PROJECTS.to_owned(),
        );
        for dir in trust {
            let entry = object_member(
                projects,
                dir,
                &mut changes.replaced,
                format!("{PROJECTS}[{dir}]"),
            );
            if !is_true(entry.get(TRUSTED)) {
                entry.insert(TRUSTED.to_owned(), raw_true());
                changes.trusted.push((*dir).to_owned());
            }
        }
    }
    let mut out = serde_json::to_string_pretty(&doc).expect("serialising raw JSON cannot fail");
    out.push('\n');
    Ok((out, changes))
}

/// The text given to [`merge`] is not a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAnObject;

pub use crate::scan::is_seeded;

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
            let st = fstat(&fd).map_err(|e| seed_err(path, e.desc()))?;
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

/// Makes sure `.claude.json` in `home` has onboarding and trust for `trust` set.
/// Writes nothing when it already has; in a dry run, only says what it would do.
///
/// # Errors
/// A path that is not UTF-8, an unusable `.claude.json`, a lock that stays held, or a
/// failed write (the previous file is then intact).
pub fn ensure(home: &ScratchHome, trust: &[PathBuf], dry_run: bool, report: &Report) -> Result<()> {
    let path = home.path.join(CLAUDE_JSON);
    let trust: Vec<&str> = trust
        .iter()
        .map(|p| {
            p.to_str()
                .ok_or_else(|| seed_err(p, "is not valid UTF-8; claude cannot record trust for it"))
        })
        .collect::<Result<_>>()?;
    let Some(dir) = &home.dir else {
        report.plan(format!(
            "seed: would create {} with {ONBOARDING}=true and trust for {}",
            path.display(),
            trust.join(", ")
        ));
        return Ok(());
    };

    if let Some((file, size)) = open_config(dir, &path)? {
        // One byte more than the size, so a small file is read to EOF in one buffer.
        let size = usize::try_from(size.saturating_add(1)).unwrap_or(usize::MAX);
        if crate::scan::is_seeded_sized(file, size, &trust) == Some(true) {
            report.info(format!("{} already seeded; not written", path.display()));
            if dry_run {
                report.plan(format!(
                    "seed: {} already seeded (no write)",
                    path.display()
                ));
            }
            return Ok(());
        }
    }
    if dry_run {
        report.plan(format!(
            "seed: would set {ONBOARDING}=true and trust for {} in {}",
            trust.join(", "),
            path.display()
        ));
        return Ok(());
    }

    let _own = own_lock(dir, &home.path)?;
    let _claude = ClaudeLock::acquire(dir, &home.path, report)?;

    let original = match open_config(dir, &path)? {
        None => None,
        Some((mut file, _)) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(|e| {
                seed_err(
                    &path,
                    format!("cannot read: {}", crate::error::error_text(&e)),
                )
            })?;
            Some(bytes)
        }
    };
    // Invalid UTF-8 is decoded the way claude (Node) reads the file: as U+FFFD.
    let decoded = original.as_deref().map(String::from_utf8_lossy);
    let lossy = matches!(decoded, Some(std::borrow::Cow::Owned(_)));
    let merged = decoded.as_deref().map(|text| merge(text, &trust));
    let lossy = lossy && matches!(merged, Some(Ok(_)));
    let (text, mut changes) = match merged {
        Some(Ok(merged)) => merged,
        None => merge("{}", &trust).expect("an object"),
        Some(Err(NotAnObject)) => {
            let aside = fsutil::put_aside(dir, CLAUDE_JSON, "corrupt", Aside::Link)
                .map_err(|e| seed_err(&path, format!("cannot keep a copy of it: {}", e.desc())))?;
            report.warn(format!(
                "{} was not a JSON object; kept it as {aside} and seeded a fresh one",
                path.display()
            ));
            merge("{}", &trust).expect("an object")
        }
    };
    if changes.is_empty() {
        return Ok(()); // another process seeded it meanwhile
    }
    if lossy {
        changes
            .replaced
            .push("invalid UTF-8 (now U+FFFD, as claude reads it)".to_owned());
    }
    if original.is_some() && !changes.replaced.is_empty() {
        let aside = fsutil::put_aside(dir, CLAUDE_JSON, "replaced", Aside::Link)
            .map_err(|e| seed_err(&path, format!("cannot keep a copy of it: {}", e.desc())))?;
        report.warn(format!(
            "{} had {}; kept the original as {aside}",
            path.display(),
            changes.replaced.join(", ")
        ));
    }
    write_atomic(dir, &path, text.as_bytes())?;
    report.info(format!("seeded {}: {changes}", path.display()));
    Ok(())
}

fn own_lock(dir: &OwnedFd, home: &Path) -> Result<Flock<OwnedFd>> {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(dir, OWN_LOCK, flags, Mode::from_bits_truncate(0o600))
        .map_err(|e| seed_err(&home.join(OWN_LOCK), format!("cannot open: {}", e.desc())))?;
    // Created through the umask: make it exactly 0600 (an unreadable lock file would
    // stop every later launch).
    if nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & 0o7777 != 0o600) {
        fchmod(&fd, Mode::from_bits_truncate(0o600))
            .map_err(|e| seed_err(&home.join(OWN_LOCK), format!("cannot chmod: {}", e.desc())))?;
    }
    Flock::lock(fd, FlockArg::LockExclusive)
        .map_err(|(_, e)| seed_err(&home.join(OWN_LOCK), format!("cannot lock: {}", e.desc())))
}

/// claude's own lock on `.claude.json`, taken the way claude takes it (`mkdir`), so
/// neither writes over the other. Removed on drop.
struct ClaudeLock<'a> {
    dir: &'a OwnedFd,
}

impl<'a> ClaudeLock<'a> {
    fn acquire(dir: &'a OwnedFd, home: &Path, report: &Report) -> Result<Self> {
        let shown = home.join(CLAUDE_LOCK);
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            match mkdirat(dir, CLAUDE_LOCK, Mode::from_bits_truncate(0o700)) {
                Ok(()) => return Ok(ClaudeLock { dir }),
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(seed_err(&shown, format!("cannot lock: {}", e.desc()))),
            }
            let Some(st) = lstat_at(dir, CLAUDE_LOCK).map_err(|e| seed_err(&shown, e.desc()))?
            else {
                continue; // released just now
            };
            let mtime = SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(st.st_mtime).unwrap_or(0),
                    u32::try_from(st.st_mtime_nsec).unwrap_or(0),
                );
            let age = SystemTime::now()
                .duration_since(mtime)
                .unwrap_or(Duration::ZERO);
            if age > STALE_AFTER {
                report.note(format!(
                    "breaking claude's stale lock {} (last touched {}s ago)",
                    shown.display(),
                    age.as_secs()
                ));
                match unlinkat(dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(_) => {
                        fsutil::put_aside(dir, CLAUDE_LOCK, "stale", Aside::Rename).map_err(
                            |e| seed_err(&shown, format!("cannot break stale lock: {}", e.desc())),
                        )?;
                    }
                }
                continue;
            }
            if started.elapsed() > LOCK_TIMEOUT {
                return Err(seed_err(
                    &shown,
                    format!(
                        "claude has held this lock for over {}s; if no claude is running, remove the directory",
                        LOCK_TIMEOUT.as_secs()
                    ),
                ));
            }
            if !told {
                report.info(format!("waiting for claude's lock {}", shown.display()));
                told = true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for ClaudeLock<'_> {
    fn drop(&mut self) {
        let _ = unlinkat(self.dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir);
    }
}

/// Writes `contents` to a new 0600 temp file in `dir`, fsyncs it, renames it over
/// `.claude.json` and fsyncs the directory. On any failure the temp file is removed and
/// the previous `.claude.json` is untouched.
fn write_atomic(dir: &OwnedFd, path: &Path, contents: &[u8]) -> Result<()> {
    let flags =
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let pid = std::process::id();
    let mut attempt = 0u32;
    let (tmp, fd) = loop {
        let tmp = format!("{CLAUDE_JSON}.claude-iso.{pid}.{attempt}.tmp");
        match openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => break (tmp, fd),
            Err(Errno::EEXIST) if attempt < 100 => attempt += 1,
            Err(e) => {
                return Err(seed_err(
                    path,
                    format!("cannot write a temp file: {}", e.desc()),
                ));
            }
        }
    };
    let result = (|| -> std::io::Result<()> {
        fchmod(&fd, Mode::from_bits_truncate(0o600))?;
        let mut file = File::from(fd);
        file.write_all(contents)?;
        file.sync_all()?;
        renameat(dir, tmp.as_str(), dir, CLAUDE_JSON)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        return Err(seed_err(
            path,
            format!(
                "cannot write: {}; the previous file is unchanged",
                crate::error::error_text(&e)
            ),
        ));
    }
    // The rename is durable once the directory is synced.
    let _ = nix::unistd::fsync(dir);
    Ok(())
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
            json!({"a": 1, "projects": {"/x": {"allowedTools": ["t"], "hasTrustDialogAccepted": true}, "/y": {"k": 2}, "/n": {"hasTrustDialogAccepted": true}}, "z": [1], "hasCompletedOnboarding": true})
        );
        let (again, c) = merged(&out, &["/x", "/n"]);
        assert!(c.is_empty());
        assert_eq!(again, out);
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
            crate::scan::is_seeded(out.as_bytes(), &["/old"]),
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
            doc in proptest::collection::btree_map("[a-z/]{0,6}|projects|hasCompletedOnboarding", arb_json(), 0..8),
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
            proptest::prop_assert_eq!(crate::scan::is_seeded(out.as_bytes(), &trust), Some(true));
            // Every input key is kept; keys we do not own keep their values.
            for (k, v) in &before {
                proptest::prop_assert!(after.contains_key(k));
                if k != "projects" && k != "hasCompletedOnboarding" {
                    proptest::prop_assert_eq!(&after[k], v);
                }
            }
            // Seeding twice equals seeding once.
            let (again, c2) = merge(&out, &trust).unwrap();
            proptest::prop_assert!(c2.is_empty());
            proptest::prop_assert_eq!(&again, &out);
            // Nothing to do means the streaming check said so.
            if c.is_empty() {
                proptest::prop_assert_eq!(crate::scan::is_seeded(text.as_bytes(), &trust), Some(true));
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
