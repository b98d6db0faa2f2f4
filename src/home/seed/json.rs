//! The merge of `.claude.json`: the keys a launch owns set in the file's own text, every
//! other member kept byte for byte (values are not re-encoded, so numbers, escapes and
//! key order survive; only the members we change are rewritten).

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;

use serde_json::value::RawValue;

use crate::layout::{DIALOG_COUNTERS, DIALOG_FLAGS, ONBOARDING, PROJECTS, TRUSTED};

/// What a merge changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changes {
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
    pub(crate) fn is_empty(&self) -> bool {
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
pub(super) fn counter_limit(key: &str) -> Option<u64> {
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
pub(crate) fn merge(text: &str, trust: &[&str]) -> Result<(String, Changes), NotAnObject> {
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
pub(crate) struct NotAnObject;
