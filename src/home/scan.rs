//! A streaming check of `.claude.json`: is it a JSON object with
//! `hasCompletedOnboarding: true`, every dialog counter of `layout::DIALOG_COUNTERS` at
//! its limit or above, every flag of `layout::DIALOG_FLAGS` `true`, and
//! `projects[dir].hasTrustDialogAccepted: true` for every wanted `dir`?
//!
//! Long-lived agent homes grow `.claude.json` to tens of megabytes of `projects` history,
//! and this check runs on every launch. It reads through a fixed 64 KiB buffer (memory
//! stays flat whatever the file size), validates the JSON grammar as it goes, decodes
//! only the keys it must compare, and skips everything else without building it.
//! A document that is not valid JSON, or not of the expected shape, gives `None` — the
//! caller then takes the full parse-and-merge path, which handles it.

#![forbid(unsafe_code)]

use std::io::Read;

const BUF: usize = 64 * 1024;
/// Deeper nesting than this is not checked or rewritten (a real `.claude.json` is a few
/// levels deep; this only bounds recursion).
const MAX_DEPTH: usize = 1000;

const ONBOARDING: &[u8] = crate::layout::ONBOARDING.as_bytes();
const PROJECTS: &[u8] = crate::layout::PROJECTS.as_bytes();
const TRUSTED: &[u8] = crate::layout::TRUSTED.as_bytes();
const COUNTERS: &[(&str, u64)] = crate::layout::DIALOG_COUNTERS;
const FLAGS: &[&str] = crate::layout::DIALOG_FLAGS;

/// `Some(true)` when everything is seeded, `Some(false)` when something is missing,
/// `None` when the document is not a JSON object of the expected shape (or unreadable).
/// (The tests' entry point; the launch sizes its buffer: [`is_seeded_sized`].)
/// Both searches (the portable one and the CPU-dispatched one) are tried, and must agree.
#[cfg(test)]
pub(crate) fn is_seeded<R: Read>(mut reader: R, trust: &[&str]) -> Option<bool> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).ok()?;
    let small = is_seeded_sized(&bytes[..], BUF, trust);
    let large = is_seeded_sized(&bytes[..], SIMD_FROM, trust);
    assert_eq!(small, large, "the two searches disagree");
    small
}

/// From this size on, the searches use the CPU's vector instructions, found at run
/// time. Below it the portable search is fast enough, and the launch is spared the
/// detection: seven `CPUID` instructions, each a trap to the hypervisor on a VM (about
/// 7.5 µs each measured here), for every agent start.
const SIMD_FROM: usize = 256 * 1024;

/// Whether everything is seeded (see `is_seeded`), with the buffer sized for a file of `size_hint` bytes (at most
/// 64 KiB): a small file is read in one go without zeroing a large buffer.
pub(crate) fn is_seeded_sized<R: Read>(
    reader: R,
    size_hint: usize,
    trust: &[&str],
) -> Option<bool> {
    let mut s = Scanner {
        reader,
        simd: size_hint >= SIMD_FROM,
        buf: vec![0; size_hint.clamp(1, BUF)].into_boxed_slice(),
        pos: 0,
        len: 0,
        eof: false,
        key: Vec::new(),
    };
    let mut onboarded = false;
    let mut counters = [false; COUNTERS.len()];
    let mut flags = [false; FLAGS.len()];
    let mut trusted = vec![false; trust.len()];
    s.object(true, |s| {
        // Later duplicates win, as in JavaScript's JSON.parse.
        if s.key == ONBOARDING {
            onboarded = s.value_is_true()?;
        } else if let Some(i) = COUNTERS.iter().position(|(k, _)| k.as_bytes() == s.key) {
            counters[i] = s.value_at_least(COUNTERS[i].1)?;
        } else if let Some(i) = FLAGS.iter().position(|k| k.as_bytes() == s.key) {
            flags[i] = s.value_is_true()?;
        } else if s.key == PROJECTS && !trust.is_empty() {
            trusted = s.projects(trust)?;
        } else {
            s.value(1)?;
        }
        Some(())
    })?;
    s.ws()?;
    if s.peek()?.is_some() {
        return None; // trailing content
    }
    Some(
        onboarded
            && counters.iter().all(|c| *c)
            && flags.iter().all(|f| *f)
            && trusted.iter().all(|t| *t),
    )
}

/// Whether one of `needles` occurs nowhere in the first `size` bytes of `file`: read
/// from the end backwards through a 64 KiB buffer (claude appends a newly opened folder
/// last, so a folder already there is usually found in the first read), each read
/// overlapping the next by a needle's length. Unreadable: `false` (nothing decided).
///
/// With each needle a trusted directory as JSON writes it (`"<dir>"`), `true` proves the
/// directory has no trust entry, far faster than [`is_seeded_sized`] can: a launch that is
/// the first in its directory then needs a write and skips the full check. (A key that
/// was written with escapes JavaScript does not use is missed; the merge under the lock
/// finds it and writes nothing.)
pub(crate) fn lacks_any(file: &std::fs::File, size: u64, needles: &[Vec<u8>]) -> bool {
    use std::os::unix::fs::FileExt;
    let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
    if needles.is_empty() || longest == 0 || longest >= BUF {
        return false;
    }
    let simd = usize::try_from(size).map_or(true, |s| s >= SIMD_FROM);
    let finders: Vec<Finder<'_>> = needles.iter().map(|n| Finder::new(n, simd)).collect();
    let mut found = vec![false; needles.len()];
    let step = (BUF - longest) as u64;
    let mut buf = vec![0u8; BUF];
    let mut end = size;
    loop {
        let start = end.saturating_sub(step);
        let want = usize::try_from((end - start) + (longest as u64 - 1))
            .unwrap_or(BUF)
            .min(usize::try_from(size - start).unwrap_or(BUF));
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..want], start + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        for (f, seen) in finders.iter().zip(found.iter_mut()) {
            if !*seen && f.found(&buf[..got]) {
                *seen = true;
            }
        }
        if found.iter().all(|f| *f) {
            return false;
        }
        if start == 0 {
            return true;
        }
        end = start;
    }
}

/// A substring search: portable, or dispatched on the CPU's features (see [`SIMD_FROM`]).
enum Finder<'a> {
    Portable(memchr::arch::all::twoway::Finder, &'a [u8]),
    Simd(Box<memchr::memmem::Finder<'a>>),
}

impl<'a> Finder<'a> {
    fn new(needle: &'a [u8], simd: bool) -> Finder<'a> {
        if simd {
            Finder::Simd(Box::new(memchr::memmem::Finder::new(needle)))
        } else {
            Finder::Portable(memchr::arch::all::twoway::Finder::new(needle), needle)
        }
    }

    fn found(&self, haystack: &[u8]) -> bool {
        match self {
            Finder::Portable(f, needle) => f.find(haystack, needle).is_some(),
            Finder::Simd(f) => f.find(haystack).is_some(),
        }
    }
}

struct Scanner<R> {
    reader: R,
    /// Search with the CPU's vector instructions (a large file; see [`SIMD_FROM`]).
    simd: bool,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The last string read with `decode`.
    key: Vec<u8>,
}

impl<R: Read> Scanner<R> {
    /// Makes sure a byte is buffered; `Some(false)` at end of input.
    #[inline(always)]
    fn fill(&mut self) -> Option<bool> {
        if self.pos < self.len {
            return Some(true);
        }
        self.refill()
    }

    #[cold]
    #[inline(never)]
    fn refill(&mut self) -> Option<bool> {
        if self.eof {
            return Some(false);
        }
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Some(false);
                }
                Ok(n) => {
                    self.pos = 0;
                    self.len = n;
                    return Some(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }

    fn peek(&mut self) -> Option<Option<u8>> {
        Some(if self.fill()? {
            Some(self.buf[self.pos])
        } else {
            None
        })
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()??;
        self.pos += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) -> Option<()> {
        loop {
            if !self.fill()? {
                return Some(());
            }
            let chunk = &self.buf[self.pos..self.len];
            let skip = chunk
                .iter()
                .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(chunk.len());
            self.pos += skip;
            if self.pos < self.len {
                return Some(());
            }
        }
    }

    /// After the opening quote: validates the string; with `decode`, leaves it in `key`.
    fn string(&mut self, decode: bool) -> Option<()> {
        if decode {
            self.key.clear();
        }
        loop {
            if !self.fill()? {
                return None;
            }
            let chunk = &self.buf[self.pos..self.len];
            // The end of the run (by SIMD in a large file); the run is then checked for raw
            // control characters with a branch-free fold the compiler vectorises.
            let stop = if self.simd {
                memchr::memchr2(b'"', b'\\', chunk)
            } else {
                memchr::arch::all::memchr::Two::new(b'"', b'\\').find(chunk)
            };
            let run = &chunk[..stop.unwrap_or(chunk.len())];
            if run.iter().fold(false, |bad, &b| bad | (b < 0x20)) {
                return None; // raw control character
            }
            if decode {
                self.key.extend_from_slice(run);
            }
            let Some(i) = stop else {
                self.pos = self.len;
                continue;
            };
            let b = chunk[i];
            self.pos += i + 1;
            if b == b'"' {
                return Some(());
            }
            self.escape(decode)?;
        }
    }

    fn escape(&mut self, decode: bool) -> Option<()> {
        let c = match self.next()? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                if decode {
                    self.push_unit(unit)?;
                }
                return Some(());
            }
            _ => return None,
        };
        if decode {
            self.key.push(c);
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u16> {
        let mut v = 0u16;
        for _ in 0..4 {
            let d = char::from(self.next()?).to_digit(16)?;
            v = v * 16 + u16::try_from(d).ok()?;
        }
        Some(v)
    }

    /// Appends a `\uXXXX` code unit, pairing surrogates (a lone one becomes U+FFFD,
    /// which can never equal a path we look for).
    fn push_unit(&mut self, unit: u16) -> Option<()> {
        let ch = if (0xD800..0xDC00).contains(&unit) {
            // A high surrogate: a `\uDC00`-`\uDFFF` must follow to make a character.
            if self.peek()? == Some(b'\\') {
                self.pos += 1;
                if self.next()? != b'u' {
                    return None;
                }
                let low = self.hex4()?;
                char::decode_utf16([unit, low])
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        } else {
            char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        let mut utf8 = [0u8; 4];
        self.key
            .extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
        Some(())
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        for &want in rest {
            self.expect(want)?;
        }
        Some(())
    }

    fn digits(&mut self) -> Option<usize> {
        let mut n = 0;
        while matches!(self.peek()?, Some(b'0'..=b'9')) {
            self.pos += 1;
            n += 1;
        }
        Some(n)
    }

    /// After the first character (`-` or a digit) of a number.
    fn number(&mut self, first: u8) -> Option<()> {
        let first_digit = if first == b'-' { self.next()? } else { first };
        match first_digit {
            b'0' => {}
            b'1'..=b'9' => {
                self.digits()?;
            }
            _ => return None,
        }
        if self.peek()? == Some(b'.') {
            self.pos += 1;
            if self.digits()? == 0 {
                return None;
            }
        }
        if matches!(self.peek()?, Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek()?, Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits()? == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Validates and skips one value.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws()?;
        if self.peek()? == Some(b'{') {
            return self.object(false, |s| s.value(depth + 1));
        }
        match self.next()? {
            b'[' => {
                self.ws()?;
                if self.peek()? == Some(b']') {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws()?;
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'"' => self.string(false),
            b't' => self.literal(b"rue"),
            b'f' => self.literal(b"alse"),
            b'n' => self.literal(b"ull"),
            b @ (b'-' | b'0'..=b'9') => self.number(b),
            _ => None,
        }
    }

    /// Skips one value, saying whether it was the literal `true`.
    fn value_is_true(&mut self) -> Option<bool> {
        self.ws()?;
        if self.peek()? == Some(b't') {
            self.pos += 1;
            self.literal(b"rue")?;
            return Some(true);
        }
        self.value(1)?;
        Some(false)
    }

    /// Skips one value, saying whether it was a number of at least `limit`. A number
    /// serde_json cannot read as an `f64` (out of range) gives `None`: the full merge
    /// decides then.
    fn value_at_least(&mut self, limit: u64) -> Option<bool> {
        self.ws()?;
        if !matches!(self.peek()?, Some(b'-' | b'0'..=b'9')) {
            self.value(1)?;
            return Some(false);
        }
        self.key.clear();
        while let Some(b) = self.peek()? {
            if !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                break;
            }
            self.key.push(b);
            self.pos += 1;
        }
        // serde_json holds the text to JSON's number grammar (no `01`, `1.`, `-`).
        let n: f64 = serde_json::from_slice(&self.key).ok()?;
        #[allow(clippy::cast_precision_loss)] // the limits are small integers
        Some(n >= limit as f64)
    }

    /// An object, calling `member` after each key (left in `self.key` when
    /// `decode_keys`) and its colon, to consume the value.
    fn object(
        &mut self,
        decode_keys: bool,
        mut member: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.ws()?;
        self.expect(b'{')?;
        self.ws()?;
        if self.peek()? == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws()?;
            self.expect(b'"')?;
            self.string(decode_keys)?;
            self.ws()?;
            self.expect(b':')?;
            member(self)?;
            self.ws()?;
            match self.next()? {
                b',' => {}
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The `projects` object: whether each wanted directory is trusted. `None` when it
    /// (or a wanted entry) is not an object — the merge replaces those.
    fn projects(&mut self, trust: &[&str]) -> Option<Vec<bool>> {
        let mut trusted = vec![false; trust.len()];
        self.object(true, |s| {
            if !trust.iter().any(|t| t.as_bytes() == s.key) {
                return s.value(2);
            }
            let key = std::mem::take(&mut s.key);
            let value = s.project()?;
            for (slot, dir) in trusted.iter_mut().zip(trust) {
                if dir.as_bytes() == key {
                    *slot = value;
                }
            }
            Some(())
        })?;
        Some(trusted)
    }

    /// One project entry: whether `hasTrustDialogAccepted` is `true`.
    fn project(&mut self) -> Option<bool> {
        let mut trusted = false;
        self.object(true, |s| {
            if s.key == TRUSTED {
                trusted = s.value_is_true()?;
                Some(())
            } else {
                s.value(3)
            }
        })?;
        Some(trusted)
    }
}

#[cfg(test)]
mod lacks_any_tests {

    /// The portable and the dispatched search find the same needles.
    #[test]
    fn both_finders_agree() {
        let hay = b"{\"projects\": {\"/a/dir\": {}, \"/b\": {}}} \xff\x00 tail";
        for needle in [
            &b"\"/a/dir\""[..],
            b"\"/b\"",
            b"\"/c\"",
            b"tail",
            b"\xff\x00",
            b"{",
        ] {
            for at in 0..hay.len() {
                let h = &hay[at..];
                assert_eq!(
                    super::Finder::new(needle, false).found(h),
                    super::Finder::new(needle, true).found(h),
                    "{needle:?} in {h:?}"
                );
            }
        }
    }
    use super::*;
    use std::io::Write;

    fn file(text: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(text).unwrap();
        f
    }

    #[test]
    fn finds_needles_anywhere_across_reads() {
        let n = |s: &str| s.as_bytes().to_vec();
        // Needles at the start, the end and straddling every read boundary.
        for at in [0, 1, BUF - 40, BUF - 3, BUF, 3 * BUF - 7, 5 * BUF - 8] {
            let mut text = vec![b'x'; 5 * BUF];
            text[at..at + 8].copy_from_slice(b"\"/a/dir\"");
            let size = text.len() as u64;
            let f = file(&text);
            assert!(!lacks_any(&f, size, &[n("\"/a/dir\"")]), "at {at}");
            assert!(
                lacks_any(&f, size, &[n("\"/a/dir\""), n("\"/b\"")]),
                "at {at}"
            );
            assert!(lacks_any(&f, size, &[n("\"/a/di\"")]), "at {at}");
        }
        assert!(lacks_any(&file(b"{}"), 2, &[n("\"/x\"")]));
        assert!(!lacks_any(&file(b"{}"), 2, &[]), "nothing to look for");
        // Only the first `size` bytes count (the size seen when the file was opened).
        assert!(lacks_any(&file(b"{} \"/x\""), 2, &[n("\"/x\"")]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgen::arb_json;
    use serde_json::{Value, json};

    /// The same question answered on a fully parsed document.
    fn reference(text: &[u8], trust: &[&str]) -> Option<bool> {
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(text) else {
            return None;
        };
        let onboarded = doc.get("hasCompletedOnboarding") == Some(&Value::Bool(true))
            && COUNTERS.iter().all(|(k, limit)| {
                #[allow(clippy::cast_precision_loss)]
                doc.get(*k)
                    .and_then(Value::as_f64)
                    .is_some_and(|n| n >= *limit as f64)
            })
            && FLAGS
                .iter()
                .all(|k| doc.get(*k) == Some(&Value::Bool(true)));
        if trust.is_empty() {
            return Some(onboarded);
        }
        let projects = match doc.get("projects") {
            None => return Some(false),
            Some(Value::Object(p)) => p,
            Some(_) => return None,
        };
        let mut all = onboarded;
        for dir in trust {
            match projects.get(*dir) {
                None => all = false,
                Some(Value::Object(entry)) => {
                    all &= entry.get("hasTrustDialogAccepted") == Some(&Value::Bool(true));
                }
                Some(_) => return None,
            }
        }
        Some(all)
    }

    fn check(text: &str, trust: &[&str]) -> Option<bool> {
        is_seeded(text.as_bytes(), trust)
    }

    #[test]
    fn answers() {
        let full = json!({"hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true, "big": {"deep": [1, -2.5e3, {"x": "y\"\\\u{1}"}], "n": null, "f": false}, "projects": {"/a": {"hasTrustDialogAccepted": true, "o": {}}, "/b": {"hasTrustDialogAccepted": false}, "/c": {}}}).to_string();
        assert_eq!(check(&full, &["/a"]), Some(true));
        assert_eq!(check(&full, &["/a", "/b"]), Some(false));
        assert_eq!(check(&full, &["/c"]), Some(false));
        assert_eq!(check(&full, &["/z"]), Some(false));
        assert_eq!(check(&full, &[]), Some(true));
        assert_eq!(
            check(r#"{"hasCompletedOnboarding": "true"}"#, &[]),
            Some(false)
        );
        assert_eq!(check("{}", &[]), Some(false));
        assert_eq!(check(" \n{ } \n", &["/a"]), Some(false));
        assert_eq!(check("[1]", &[]), None);
        assert_eq!(check(r#"{"projects": []}"#, &["/a"]), None);
        assert_eq!(check(r#"{"projects": {"/a": true}}"#, &["/a"]), None);
        assert_eq!(check(r#"{"hasCompletedOnboarding": true} x"#, &[]), None);
        assert_eq!(check("{", &[]), None);
        assert_eq!(check("", &[]), None);
        assert_eq!(
            check(
                r#"{"hasCompletedOnboarding": true, "hasCompletedOnboarding": false}"#,
                &[]
            ),
            Some(false)
        );
        // Escaped keys are decoded before comparing.
        assert_eq!(
            check(
                r#"{"has\u0043ompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true, "projects": {"\/t\u00e9\ud83d\ude00": {"hasTrustDialogAccepted": true}}}"#,
                &["/té😀"]
            ),
            Some(true)
        );
        for bad in [
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": -}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a": [1,]}"#,
            r#"{"a": {"b" 1}}"#,
            r#"{"a": "\x"}"#,
            "{\"a\": \"\t\"}",
            r#"{"a": 1,}"#,
            r#"{a: 1}"#,
        ] {
            assert_eq!(check(bad, &[]), None, "{bad}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dialog_counters_must_reach_their_limit() {
        let doc = |count: &str| {
            format!(
                r#"{{"hasCompletedOnboarding": true, "hasSeenAutoDefaultNudge": true, "fullscreenUpsellSeenCount": {count}}}"#
            )
        };
        for (count, want) in [
            ("3", Some(true)),
            ("3.0", Some(true)),
            ("250", Some(true)),
            ("2", Some(false)),
            ("2.999", Some(false)),
            ("-4e1", Some(false)),
            ("\"3\"", Some(false)),
            ("null", Some(false)),
            ("[3]", Some(false)),
            ("1e999", None),
            ("03", None),
            ("3.", None),
        ] {
            assert_eq!(check(&doc(count), &[]), want, "{count}");
        }
        assert_eq!(
            check(r#"{"hasCompletedOnboarding": true}"#, &[]),
            Some(false)
        );
        // The flags too.
        for flag in [
            "",
            r#", "hasSeenAutoDefaultNudge": false"#,
            r#", "hasSeenAutoDefaultNudge": 1"#,
        ] {
            let doc = format!(
                r#"{{"hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3{flag}}}"#
            );
            assert_eq!(check(&doc, &[]), Some(false), "{doc}");
        }
        // The last duplicate counts.
        assert_eq!(
            check(
                r#"{"hasCompletedOnboarding": true, "hasSeenAutoDefaultNudge": true, "fullscreenUpsellSeenCount": 3, "fullscreenUpsellSeenCount": 1}"#,
                &[]
            ),
            Some(false)
        );
    }

    #[test]
    fn too_deep_is_left_to_the_full_parse() {
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(1500), "]".repeat(1500));
        assert_eq!(is_seeded(deep.as_bytes(), &[]), None);
    }

    #[test]
    fn reads_across_buffer_boundaries() {
        let mut doc = serde_json::Map::new();
        for i in 0..5000 {
            doc.insert(
                format!("/p/{i}\u{e9}\"x"),
                json!({"history": ["a\\b", "c", "d"], "hasTrustDialogAccepted": i % 2 == 0}),
            );
        }
        let text =
            serde_json::to_string_pretty(&json!({"projects": doc, "hasCompletedOnboarding": true}))
                .unwrap();
        assert!(text.len() > 3 * BUF);
        // A reader that returns one byte at a time exercises every refill.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(7);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        for trust in [
            &["/p/4998\u{e9}\"x"][..],
            &["/p/4999\u{e9}\"x"],
            &["/p/0\u{e9}\"x", "/p/2\u{e9}\"x"],
        ] {
            assert_eq!(
                is_seeded(Trickle(text.as_bytes()), trust),
                reference(text.as_bytes(), trust)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_full_parse(value in arb_json(), pretty in proptest::bool::ANY, trust in proptest::collection::vec("/w|/[a-z]{0,3}", 0..3)) {
            let trust: Vec<&str> = trust.iter().map(String::as_str).collect();
            let text = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) }.unwrap();
            proptest::prop_assert_eq!(is_seeded(text.as_bytes(), &trust), reference(text.as_bytes(), &trust));
        }

        #[test]
        fn garbage_never_panics_and_is_never_seeded_unless_valid(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let got = is_seeded(&bytes[..], &["/a"]);
            if got.is_some() {
                proptest::prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok());
            }
        }

        #[test]
        fn mutated_json_agrees(value in arb_json(), cut in 0usize..400, byte in proptest::num::u8::ANY) {
            let mut text = serde_json::to_vec(&serde_json::json!({"hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true, "x": value})).unwrap();
            let at = cut % text.len();
            text[at] = byte;
            let got = is_seeded(&text[..], &[]);
            let want = reference(&text, &[]);
            // Invalid UTF-8 inside strings is accepted by us (JSON.parse of a file read
            // as UTF-8 replaces it) but refused by serde_json: compare only valid UTF-8.
            // Likewise a number too large for f64 (JSON.parse makes it Infinity).
            let out_of_range = serde_json::from_slice::<Value>(&text)
                .is_err_and(|e| e.to_string().contains("out of range"));
            if std::str::from_utf8(&text).is_ok() && !out_of_range {
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
