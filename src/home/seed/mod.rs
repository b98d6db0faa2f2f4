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

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::home::ScratchHome;
use crate::layout::{
    CLAUDE_JSON, CLAUDE_LOCK, CLAUDE_LOCK_STAGING, DIALOG_COUNTERS, DIALOG_FLAGS, LOCK_TIMEOUT,
    ONBOARDING, OWN_LOCK, PENDING_PREFIX, PROJECTS, STALE_AFTER, TEMP_PREFIX, TRUSTED,
};
use crate::report::Report;
use crate::sys::fsutil::{self, Aside, is_type, lstat_at};

/// What a merge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// `hasCompletedOnboarding` was set.
    pub onboarding: bool,
    /// Directories whose trust was set.
    pub trusted: Vec<String>,
    /// Dialog counters raised to their limit (names from [`DIALOG_COUNTERS`]).
    pub counters: Vec<&'static str>,
    /// Dialog flags set to `true` (names from [`DIALOG_FLAGS`]).
    pub flags: Vec<&'static str>,
    /// Values of the wrong type that had to be replaced (`projects`, `projects[dir]`).
    pub replaced: Vec<String>,
}

impl Changes {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.onboarding
            && self.trusted.is_empty()
            && self.counters.is_empty()
            && self.flags.is_empty()
            && self.replaced.is_empty()
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
        for key in &self.counters {
            let limit = counter_limit(key).unwrap_or_default();
            parts.push(format!("{key}={limit}"));
        }
        for key in &self.flags {
            parts.push(format!("{key}=true"));
        }
        for what in &self.replaced {
            parts.push(format!("replaced non-object {what}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// An object whose members we do not own are kept as their original JSON text (borrowed
/// from the text read, never copied), byte for byte — keys included: a rewrite never re-encodes a number, an escape or a lone
/// surrogate that claude (JavaScript) wrote and would read back, even in a key (which no
/// Rust `String` can hold). Duplicate keys are kept; the last one counts, as in
/// JavaScript's `JSON.parse`.
type RawMap<'t> = Vec<Member<'t>>;

#[derive(Debug)]
struct Member<'t> {
    /// The key as written, quotes included.
    raw_key: String,
    /// The key decoded, when it is valid Unicode (a lone surrogate is not).
    key: Option<String>,
    node: Node<'t>,
}

/// A member: untouched original text, or an object we descend into.
#[derive(Debug)]
enum Node<'t> {
    Raw(Cow<'t, RawValue>),
    Object(RawMap<'t>),
}

fn raw_true<'t>() -> Node<'t> {
    Node::Raw(Cow::Owned(
        RawValue::from_string("true".to_owned()).expect("valid JSON"),
    ))
}

fn is_true(node: Option<&Node>) -> bool {
    matches!(node, Some(Node::Raw(raw)) if raw.get().trim() == "true")
}

fn raw_number<'t>(n: u64) -> Node<'t> {
    Node::Raw(Cow::Owned(
        RawValue::from_string(n.to_string()).expect("a number is valid JSON"),
    ))
}

/// The limit of a dialog counter, by its key.
fn counter_limit(key: &str) -> Option<u64> {
    DIALOG_COUNTERS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, limit)| *limit)
}

/// A JSON number of at least `limit` (claude compares `(count ?? 0) >= limit`; it only
/// ever writes numbers there, and a value of another type is replaced).
fn is_at_least(node: Option<&Node>, limit: u64) -> bool {
    #[allow(clippy::cast_precision_loss)] // the limits are small integers
    let limit = limit as f64;
    matches!(node, Some(Node::Raw(raw)) if serde_json::from_str::<f64>(raw.get()).is_ok_and(|n| n >= limit))
}

fn find(map: &RawMap<'_>, key: &str) -> Option<usize> {
    map.iter().rposition(|m| m.key.as_deref() == Some(key))
}

fn get<'a, 't>(map: &'a RawMap<'t>, key: &str) -> Option<&'a Node<'t>> {
    find(map, key).map(|i| &map[i].node)
}

/// The node of `key` (the last of duplicates), inserted at the end with `make` if missing.
fn entry<'a, 't>(
    map: &'a mut RawMap<'t>,
    key: &str,
    make: impl FnOnce() -> Node<'t>,
) -> &'a mut Node<'t> {
    let i = find(map, key).unwrap_or_else(|| {
        map.push(Member {
            raw_key: serde_json::to_string(key).expect("a string serialises"),
            key: Some(key.to_owned()),
            node: make(),
        });
        map.len() - 1
    });
    &mut map[i].node
}

fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while pos < b.len() && matches!(b[pos], b' ' | b'\t' | b'\n' | b'\r') {
        pos += 1;
    }
    pos
}

/// Parses the members of an object, keys and values kept as raw text. `None`: not a
/// JSON object (or trailing content after it).
fn parse_object(text: &str) -> Option<RawMap<'_>> {
    let b = text.as_bytes();
    let mut pos = skip_ws(b, 0);
    if b.get(pos) != Some(&b'{') {
        return None;
    }
    pos = skip_ws(b, pos + 1);
    let mut map = RawMap::new();
    if b.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            if b.get(pos) != Some(&b'"') {
                return None;
            }
            let mut end = pos + 1;
            loop {
                match b.get(end)? {
                    b'"' => break,
                    b'\\' => end += 2,
                    _ => end += 1,
                }
            }
            let raw_key = &text[pos..=end];
            // Valid JSON string syntax (escapes, no raw control characters) is required;
            // valid Unicode is not.
            serde_json::from_str::<&RawValue>(raw_key).ok()?;
            let key = serde_json::from_str::<String>(raw_key).ok();
            pos = skip_ws(b, end + 1);
            if b.get(pos) != Some(&b':') {
                return None;
            }
            pos = skip_ws(b, pos + 1);
            let mut values =
                serde_json::Deserializer::from_str(&text[pos..]).into_iter::<&RawValue>();
            let value = values.next()?.ok()?;
            pos += values.byte_offset();
            map.push(Member {
                raw_key: raw_key.to_owned(),
                key,
                node: Node::Raw(Cow::Borrowed(value)),
            });
            pos = skip_ws(b, pos);
            match b.get(pos)? {
                b',' => pos = skip_ws(b, pos + 1),
                b'}' => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, pos) == b.len()).then_some(map)
}

/// Writes an object the way `JSON.stringify(_, null, 2)` lays it out; raw members are
/// written exactly as they were read.
fn write_object(out: &mut String, map: &RawMap<'_>, indent: usize) {
    if map.is_empty() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (n, m) in map.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', indent + 2));
        out.push_str(&m.raw_key);
        out.push_str(": ");
        match &m.node {
            Node::Raw(raw) => out.push_str(raw.get()),
            Node::Object(inner) => write_object(out, inner, indent + 2),
        }
    }
    out.push('\n');
    out.extend(std::iter::repeat_n(' ', indent));
    out.push('}');
}

/// Descends into member `key` of `map` as an object, replacing it (and saying so in
/// `replaced`) when it is not one; creates it when missing.
fn object_member<'a, 't>(
    map: &'a mut RawMap<'t>,
    key: &str,
    replaced: &mut Vec<String>,
    what: String,
) -> &'a mut RawMap<'t> {
    let node = entry(map, key, || Node::Object(RawMap::new()));
    if let Node::Raw(raw) = node {
        // Only values read from the text are objects; ours are `true` and numbers.
        let parsed = match raw {
            Cow::Borrowed(raw) => parse_object((*raw).get()),
            Cow::Owned(_) => None,
        };
        *node = Node::Object(parsed.unwrap_or_else(|| {
            replaced.push(what);
            RawMap::new()
        }));
    }
    match node {
        Node::Object(map) => map,
        Node::Raw(_) => unreachable!("made an object above"),
    }
}

/// Sets onboarding, the dialog counters and trust in the text of a `.claude.json`. Pure. Keeps every other
/// key, its position and its value's exact text. Idempotent: a second merge of the
/// output changes nothing.
///
/// # Errors
/// The text is not a JSON object (the caller keeps it aside and starts afresh).
pub fn merge(text: &str, trust: &[&str]) -> Result<(String, Changes), NotAnObject> {
    let mut doc = parse_object(text).ok_or(NotAnObject)?;
    let mut changes = Changes::default();
    if !is_true(get(&doc, ONBOARDING)) {
        *entry(&mut doc, ONBOARDING, raw_true) = raw_true();
        changes.onboarding = true;
    }
    for &(key, limit) in DIALOG_COUNTERS {
        if !is_at_least(get(&doc, key), limit) {
            *entry(&mut doc, key, || raw_number(limit)) = raw_number(limit);
            changes.counters.push(key);
        }
    }
    for &key in DIALOG_FLAGS {
        if !is_true(get(&doc, key)) {
            *entry(&mut doc, key, raw_true) = raw_true();
            changes.flags.push(key);
        }
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
            if !is_true(get(entry, TRUSTED)) {
                *self::entry(entry, TRUSTED, raw_true) = raw_true();
                changes.trusted.push((*dir).to_owned());
            }
        }
    }
    let mut out = String::with_capacity(text.len() + 256);
    write_object(&mut out, &doc, 0);
    out.push('\n');
    Ok((out, changes))
}

/// The text given to [`merge`] is not a JSON object.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAnObject;

pub use crate::home::scan::is_seeded;

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

/// What seeding would do to a home's `.claude.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedPlan {
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
pub struct SeedState {
    /// `<home>/.claude.json`, for messages.
    pub path: PathBuf,
    /// The directories to trust, as claude records them.
    pub trust: Vec<String>,
    pub plan: SeedPlan,
}

impl SeedState {
    /// One line for the dry-run plan or the doctor.
    #[must_use]
    pub fn describe(&self) -> String {
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
pub fn inspect(dir: Option<&OwnedFd>, home: &Path, trust: &[PathBuf]) -> Result<SeedState> {
    inspect_for(dir, home, trust, true)
}

/// [`inspect`] for a launch (`detail` false): a file the scan finds unseeded is planned
/// as [`SeedPlan::Unseeded`] without merging it in memory just to list the changes —
/// [`apply`] merges it again under the lock anyway. (With a large `.claude.json` and many
/// launches starting together, that listing was most of a first launch's time.)
///
/// # Errors
/// As [`inspect`].
pub fn inspect_for(
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
pub fn apply(home: &ScratchHome, state: &SeedState, report: &Report) -> Result<()> {
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

    let original = match open_config(dir, path)? {
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
                .map_err(|e| seed_err(path, format!("cannot keep a copy of it: {}", e.desc())))?;
            report.warn(format!(
                "{} was not a JSON object; kept it as {aside} and seeded a fresh one",
                path.display()
            ));
            merge("{}", &trust).expect("an object")
        }
    };
    if changes.is_empty() {
        // Another process seeded it meanwhile: every request is already in place.
        retire(dir, &others);
        request.retire();
        return Ok(());
    }
    if lossy {
        changes
            .replaced
            .push("invalid UTF-8 (now U+FFFD, as claude reads it)".to_owned());
    }
    if original.is_some() && !changes.replaced.is_empty() {
        let aside = fsutil::put_aside(dir, CLAUDE_JSON, "replaced", Aside::Link)
            .map_err(|e| seed_err(path, format!("cannot keep a copy of it: {}", e.desc())))?;
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

/// This launch's request for a write, posted where the lock holder sees it: a file
/// `<PENDING_PREFIX><pid>.<n>` holding the directories to trust as a JSON array, on
/// which this launch holds a `flock` until it is dropped (then it is removed, if the
/// holder that merged it has not removed it already).
struct Pending<'a> {
    dir: &'a OwnedFd,
    name: String,
    file: Flock<OwnedFd>,
}

impl<'a> Pending<'a> {
    /// Writes the request to a temp file of its own (created with `O_EXCL`, locked
    /// first), then links it under its final name: a holder never reads a partial one.
    fn post(dir: &'a OwnedFd, home: &Path, trust: &[String]) -> Result<Self> {
        use std::io::Write;
        let body = serde_json::to_string(trust).expect("strings serialise");
        let pid = std::process::id();
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fail = |name: &str, what: &str, e: Errno| {
            seed_err(&home.join(name), format!("cannot {what}: {}", e.desc()))
        };
        let mut n = 0u32;
        loop {
            let name = format!("{PENDING_PREFIX}{pid}.{n}");
            let tmp = format!("{name}.tmp");
            n += 1;
            let fd = match openat(dir, tmp.as_str(), flags, Mode::from_bits_truncate(0o600)) {
                Ok(fd) => fd,
                Err(Errno::EEXIST) if n < 1000 => continue,
                Err(e) => return Err(fail(&tmp, "create", e)),
            };
            let file =
                Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| fail(&tmp, "lock", e))?;
            let written = File::from(
                file.try_clone()
                    .map_err(|e| seed_err(&home.join(&tmp), format!("cannot write: {e}")))?,
            )
            .write_all(body.as_bytes());
            if let Err(e) = written {
                let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                return Err(seed_err(&home.join(&tmp), format!("cannot write: {e}")));
            }
            // A link never replaces: a name still taken (a dead launch's file of the
            // same pid) or a temp file a holder removed as a dead launch's (it looked
            // for our lock before we took it) means another try under a new name.
            let linked = nix::unistd::linkat(
                dir,
                tmp.as_str(),
                dir,
                name.as_str(),
                nix::fcntl::AtFlags::empty(),
            );
            let _ = unlinkat(dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            match linked {
                Ok(()) => return Ok(Pending { dir, name, file }),
                Err(Errno::EEXIST | Errno::ENOENT) if n < 1000 => {}
                Err(e) => return Err(fail(&name, "create", e)),
            }
        }
    }

    /// Removes the file: the request is done (still locked, so never taken for a dead
    /// launch's).
    fn retire(&self) {
        let _ = unlinkat(self.dir, self.name.as_str(), UnlinkatFlags::NoRemoveDir);
    }

    /// A holder merged the request and removed its file: the write it asked for is done.
    fn merged(&self) -> bool {
        unlinked(&self.file)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // Removed while still locked, so a holder never takes it for a dead launch's.
        if !unlinked(&self.file) {
            self.retire();
        }
    }
}

/// The file behind `fd` has no name left.
fn unlinked(fd: &Flock<OwnedFd>) -> bool {
    fstat(&**fd).is_ok_and(|st| st.st_nlink == 0)
}

/// The requests other live launches have posted, by file name. Those no launch holds
/// any more (it died before its request was merged; or its temp file, never linked) are
/// removed unmerged: a dead launch runs no command that needs its trust.
fn collect_pending(dir: &OwnedFd, own: &str) -> Vec<(String, Vec<String>)> {
    let Ok(names) = fsutil::dir_entries(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for name in names.iter().filter_map(|n| n.to_str()) {
        if !name.starts_with(PENDING_PREFIX) || name == own {
            continue;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
            continue;
        };
        if !fstat(&fd).is_ok_and(|st| is_type(&st, SFlag::S_IFREG)) {
            continue;
        }
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(_dead) => {
                // Removed while we hold its lock: its owner is gone.
                let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            }
            Err((fd, Errno::EWOULDBLOCK)) if !name.ends_with(".tmp") => {
                let mut text = String::new();
                // A request is a few paths; anything longer is not one of ours.
                let dirs = File::from(fd)
                    .take(MAX_PENDING)
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| serde_json::from_str::<Vec<String>>(&text).ok());
                // Unreadable: its launch finds it unmerged and writes for itself.
                if let Some(dirs) = dirs {
                    found.push((name.to_owned(), dirs));
                }
            }
            Err(_) => {}
        }
    }
    found
}

/// The longest request file read (1 MiB: thousands of paths).
const MAX_PENDING: u64 = 1 << 20;

/// Removes the merged requests' files: their launches see it and go on.
fn retire(dir: &OwnedFd, merged: &[(String, Vec<String>)]) {
    for (name, _) in merged {
        let _ = unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir);
    }
}

/// Removes temp files of ours (`.claude.json.claude-iso.<pid>.<n>.tmp`) left by a writer
/// that was killed: every writer holds our lock while its temp file exists, and we hold
/// it now, so any such file is a leftover. Only regular files, never following a link.
fn remove_stale_temp_files(dir: &OwnedFd) {
    let Ok(names) = fsutil::dir_entries(dir) else {
        return;
    };
    for name in names.iter().filter_map(|n| n.to_str()) {
        if name.starts_with(TEMP_PREFIX)
            && name.ends_with(".tmp")
            && lstat_at(dir, name).is_ok_and(|st| st.is_some_and(|st| is_type(&st, SFlag::S_IFREG)))
        {
            let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        } else if name.starts_with(CLAUDE_LOCK_STAGING) && name.ends_with(".tmp") {
            // A staging lock directory a killed launch made (empty, or it stays).
            let _ = unlinkat(dir, name, UnlinkatFlags::RemoveDir);
        }
    }
}

/// How long a launch waits for another launch's seed before giving up.
pub const OWN_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Our lock, taken with a bounded wait: a seeder stopped (SIGSTOP) or stuck while holding
/// it cannot block every other launch forever.
/// `Ok(None)`: `done` turned true while waiting (a holder wrote what this launch needs).
fn own_lock(dir: &OwnedFd, home: &Path, done: impl Fn() -> bool) -> Result<Option<Flock<OwnedFd>>> {
    let shown = home.join(OWN_LOCK);
    // The home was marked when it was prepared; the lock file is ours alone (checked).
    let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut fd = openat(dir, OWN_LOCK, flags, Mode::empty())
        .map_err(|e| seed_err(&shown, format!("cannot open: {}", e.desc())))?;
    let mut started = std::time::Instant::now();
    // Every holder records claude's lock in the file as it takes and releases it: a
    // change is another holder's progress, and the wait is timed from there (launches
    // queued behind several holders in turn are not waiting for a stuck one).
    let stamp = |fd: &OwnedFd| fstat(fd).ok().map(|st| (st.st_mtime, st.st_mtime_nsec));
    let mut last = stamp(&fd);
    loop {
        match Flock::lock(fd, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(lock)),
            Err((back, Errno::EWOULDBLOCK)) => {
                fd = back;
                if done() {
                    return Ok(None);
                }
                let now = stamp(&fd);
                if now != last {
                    last = now;
                    started = std::time::Instant::now();
                }
                if started.elapsed() > OWN_LOCK_TIMEOUT {
                    let holder = fstat(&fd)
                        .ok()
                        .and_then(|st| fsutil::flock_holder(st.st_dev, st.st_ino));
                    let (who, end) = match holder {
                        Some(pid) => (format!("process {pid}"), format!(" (kill {pid})")),
                        None => ("another process".to_owned(), String::new()),
                    };
                    return Err(seed_err(
                        &shown,
                        format!(
                            "{who} has held this lock for over {}s while seeding; if it is stopped or stuck, end it{end}",
                            OWN_LOCK_TIMEOUT.as_secs(),
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, e)) => return Err(seed_err(&shown, format!("cannot lock: {}", e.desc()))),
        }
    }
}

/// claude's own lock on `.claude.json`, taken the way claude takes it (`mkdir`), so
/// neither writes over the other. Removed on drop.
///
/// Which lock directory we made is recorded in our own lock file (inode and change
/// time, to the nanosecond) while we hold it: a launch killed while holding it leaves a
/// lock that the next holder of our lock knows for a dead launch's and breaks at once,
/// instead of waiting for it to go stale while every other launch waits for our lock.
/// (See [`take_claude_lock`] for how the record comes first.)
struct ClaudeLock<'a> {
    dir: &'a OwnedFd,
    own: &'a OwnedFd,
}

/// The identity of a lock directory, as recorded in our own lock file: its inode and
/// its mtime to the nanosecond (a rename keeps the mtime; a new directory on a reused
/// inode has another).
fn lock_identity(st: &nix::sys::stat::FileStat) -> String {
    format!("{} {}.{:09}\n", st.st_ino, st.st_mtime, st.st_mtime_nsec)
}

/// Takes claude's lock, its identity on record first. `Err(EEXIST)`: someone holds it.
///
/// Where the filesystem can rename without replacing, the directory is made under a
/// staging name of ours, recorded, then renamed to [`CLAUDE_LOCK`] (never over an
/// existing one: `RENAME_NOREPLACE`), so no moment exists in which it is claude's lock
/// and not on record. Elsewhere it is made in place and recorded right after.
fn take_claude_lock(dir: &OwnedFd, own: &OwnedFd) -> nix::Result<()> {
    let mode = Mode::from_bits_truncate(0o700);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let staging = format!("{CLAUDE_LOCK_STAGING}{}.tmp", std::process::id());
        let _ = unlinkat(dir, staging.as_str(), UnlinkatFlags::RemoveDir);
        mkdirat(dir, staging.as_str(), mode)?;
        if let Some(st) = lstat_at(dir, staging.as_str())? {
            record_identity(own, &lock_identity(&st));
        }
        let renamed = nix::fcntl::renameat2(
            dir,
            staging.as_str(),
            dir,
            CLAUDE_LOCK,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        );
        if renamed.is_ok() {
            return Ok(());
        }
        let _ = unlinkat(dir, staging.as_str(), UnlinkatFlags::RemoveDir);
        record_identity(own, "");
        match renamed {
            Err(Errno::EINVAL | Errno::ENOSYS) => {} // not on this filesystem
            other => return other,
        }
    }
    mkdirat(dir, CLAUDE_LOCK, mode)?;
    if let Some(st) = lstat_at(dir, CLAUDE_LOCK)? {
        record_identity(own, &lock_identity(&st));
    }
    Ok(())
}

/// What our own lock file records (empty when no claude lock of ours is outstanding).
fn recorded_identity(own: &OwnedFd) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 64];
    let n = own
        .try_clone()
        .map(File::from)
        .and_then(|f| f.read_at(&mut buf, 0))
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Replaces what our own lock file records (best effort: without a record, a lock left
/// by a killed launch is broken when it goes stale, as before).
fn record_identity(own: &OwnedFd, identity: &str) {
    use std::os::unix::fs::FileExt;
    if let Ok(f) = own.try_clone().map(File::from) {
        let _ = f
            .set_len(0)
            .and_then(|()| f.write_all_at(identity.as_bytes(), 0));
    }
}

impl<'a> ClaudeLock<'a> {
    fn acquire(dir: &'a OwnedFd, own: &'a OwnedFd, home: &Path, report: &Report) -> Result<Self> {
        let shown = home.join(CLAUDE_LOCK);
        let started = std::time::Instant::now();
        let mut told = false;
        // Read before our own tries overwrite it: the lock the last holder made, if any.
        let left = recorded_identity(own);
        loop {
            match take_claude_lock(dir, own) {
                Ok(()) => return Ok(ClaudeLock { dir, own }),
                Err(Errno::EEXIST) => {}
                Err(e) => return Err(seed_err(&shown, format!("cannot lock: {}", e.desc()))),
            }
            let Some(st) = lstat_at(dir, CLAUDE_LOCK).map_err(|e| seed_err(&shown, e.desc()))?
            else {
                continue; // released just now
            };
            if !left.is_empty() && left == lock_identity(&st) {
                // Made by a launch that held our lock before us: it is gone.
                report.note(format!(
                    "breaking claude's lock {} left by a claude-iso launch that ended while seeding",
                    shown.display()
                ));
                match unlinkat(dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir) {
                    Ok(()) | Err(Errno::ENOENT) => continue,
                    Err(_) => {} // not empty: not ours after all; waited on as claude's
                }
            }
            let mtime = SystemTime::UNIX_EPOCH
                + Duration::new(
                    u64::try_from(st.st_mtime).unwrap_or(0),
                    u32::try_from(st.st_mtime_nsec).unwrap_or(0),
                );
            let now = SystemTime::now();
            // A live holder refreshes the mtime to "now"; one far in the future was not
            // written by a live holder's clock and would otherwise be waited on forever.
            let from_future = mtime > now + Duration::from_secs(1);
            let age = now.duration_since(mtime).unwrap_or(Duration::ZERO);
            if age > STALE_AFTER || from_future {
                report.note(format!(
                    "breaking claude's stale lock {} ({})",
                    shown.display(),
                    if from_future {
                        "its time stamp is in the future".to_owned()
                    } else {
                        format!("last touched {}s ago", age.as_secs())
                    }
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
        // Cleared after: a record that outlives its directory (killed in between) names
        // no other lock, since a new directory on the same inode has another change time.
        let _ = unlinkat(self.dir, CLAUDE_LOCK, UnlinkatFlags::RemoveDir);
        record_identity(self.own, "");
    }
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
                if k != "projects" && k != "hasCompletedOnboarding" && counter_limit(k).is_none() && !DIALOG_FLAGS.contains(&k.as_str()) {
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
