//! The env-file parser: a strict subset of systemd's `EnvironmentFile=` syntax.
//!
//! Accepted: blank lines, `#`/`;` comment lines, `KEY=VALUE` with an optional `export `
//! prefix, unquoted values (surrounding whitespace trimmed), single-quoted values (literal)
//! and double-quoted values (`\"`, `\\`, `\$` and `` \` `` escapes), LF or CRLF line ends.
//! No variable expansion.
//!
//! Refused, with the line number, is everything systemd or a shell `source` would drop
//! or read differently: a line without `=`, an invalid name, whitespace before `=`,
//! unbalanced or multi-line quotes, text after a closing quote, a backslash or quote
//! inside an unquoted value, a trailing backslash (line continuation), NUL bytes,
//! invalid UTF-8 and other control characters.
//!
//! Errors never contain a value: only the line number and what is wrong with it.

#![forbid(unsafe_code)]

use std::fmt;

/// One `KEY=VALUE` line of an env file.
#[derive(Clone, PartialEq, Eq)]
pub struct Assignment {
    /// 1-based line number.
    pub line: usize,
    pub key: String,
    pub value: String,
}

impl fmt::Debug for Assignment {
    // Values may be secrets: show only their length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Assignment {{ line: {}, key: {:?}, value: <{} bytes> }}",
            self.line,
            self.key,
            self.value.len()
        )
    }
}

/// What is wrong with which line. `reason` never quotes the line's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

impl LineError {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        LineError {
            line,
            reason: reason.into(),
        }
    }
}

fn is_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Parses a whole env file. Pure: bytes in, assignments or the first bad line out.
///
/// # Errors
/// The first line that is not in the accepted subset.
pub fn parse(bytes: &[u8]) -> Result<Vec<Assignment>, LineError> {
    let mut out = Vec::new();
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        return Err(LineError::new(
            1,
            "starts with a UTF-8 byte-order mark; save the file without one",
        ));
    }
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        if raw.contains(&0) {
            return Err(LineError::new(
                line,
                "contains a NUL byte (not a text file?); save it as plain UTF-8 text with KEY=VALUE lines",
            ));
        }
        let text = std::str::from_utf8(raw)
            .map_err(|_| LineError::new(line, "is not valid UTF-8; save the file as UTF-8 text"))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(LineError::new(
                line,
                "contains a control character (only tab is allowed); delete it, or retype the line",
            ));
        }
        if let Some(assignment) = parse_line(line, text)? {
            out.push(assignment);
        }
    }
    Ok(out)
}

fn parse_line(line: usize, text: &str) -> Result<Option<Assignment>, LineError> {
    let trimmed = text.trim_start_matches([' ', '\t']);
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        if trimmed.ends_with('\\') {
            // systemd before v254 joins the next line into such a comment.
            return Err(LineError::new(
                line,
                "is a comment ending in a backslash (older systemd would swallow the next line); remove the backslash",
            ));
        }
        return Ok(None);
    }
    if trimmed.trim_end_matches([' ', '\t']).is_empty() {
        return Ok(None);
    }
    let body = match trimmed.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start_matches([' ', '\t']),
        _ => trimmed,
    };
    let Some((key, raw_value)) = body.split_once('=') else {
        return Err(LineError::new(
            line,
            "has no '='; write KEY=VALUE, or start the line with # for a comment",
        ));
    };
    if key.ends_with([' ', '\t']) {
        return Err(LineError::new(
            line,
            "has whitespace before '='; write KEY=VALUE with nothing around the '='",
        ));
    }
    if !is_name(key) {
        return Err(LineError::new(
            line,
            "has an invalid variable name; use letters, digits and _ only, not starting with a digit",
        ));
    }
    let value = parse_value(line, raw_value.trim_matches([' ', '\t']))?;
    Ok(Some(Assignment {
        line,
        key: key.to_owned(),
        value,
    }))
}

fn parse_value(line: usize, raw: &str) -> Result<String, LineError> {
    let mut chars = raw.chars();
    match chars.next() {
        Some('\'') => {
            let rest = chars.as_str();
            let Some(end) = rest.find('\'') else {
                return Err(LineError::new(
                    line,
                    "has an unbalanced single quote; close the quote on the same line (values cannot span lines)",
                ));
            };
            only_blank_after_quote(line, &rest[end + 1..])?;
            Ok(rest[..end].to_owned())
        }
        Some('"') => {
            let mut value = String::new();
            let mut iter = chars;
            loop {
                match iter.next() {
                    None => {
                        return Err(LineError::new(
                            line,
                            "has an unbalanced double quote; close the quote on the same line (values cannot span lines)",
                        ));
                    }
                    Some('"') => break,
                    Some('\\') => match iter.next() {
                        Some(c @ ('"' | '\\' | '$' | '`')) => value.push(c),
                        None => {
                            return Err(LineError::new(
                                line,
                                "ends in a backslash (line continuation is not supported); join the value onto one line",
                            ));
                        }
                        Some(_) => {
                            return Err(LineError::new(
                                line,
                                "has an unsupported backslash escape inside double quotes; only \\\" \\\\ \\$ \\` are understood, or single-quote the value to keep it literal",
                            ));
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
            only_blank_after_quote(line, iter.as_str())?;
            Ok(value)
        }
        _ => {
            if raw.ends_with('\\') {
                return Err(LineError::new(
                    line,
                    "ends in a backslash (line continuation is not supported); join the value onto one line",
                ));
            }
            if raw.contains(['\\', '"', '\'']) {
                return Err(LineError::new(
                    line,
                    "has a quote or backslash inside an unquoted value; quote the whole value",
                ));
            }
            Ok(raw.to_owned())
        }
    }
}

fn only_blank_after_quote(line: usize, rest: &str) -> Result<(), LineError> {
    if rest.trim_matches([' ', '\t']).is_empty() {
        Ok(())
    } else {
        Err(LineError::new(
            line,
            "has text after the closing quote; quote the whole value, or delete the text after it",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> (String, String) {
        let mut all = parse(text.as_bytes()).expect("parses");
        assert_eq!(all.len(), 1, "{text:?}");
        let a = all.remove(0);
        (a.key, a.value)
    }

    fn bad(text: &str) -> LineError {
        parse(text.as_bytes()).expect_err(text)
    }

    #[test]
    fn accepted_forms() {
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(one("A=b"), kv("A", "b"));
        assert_eq!(one("A=b\r\n"), kv("A", "b"));
        assert_eq!(one("export A=b"), kv("A", "b"));
        assert_eq!(one("  export\tA=\"b c\"  "), kv("A", "b c"));
        assert_eq!(one("A='b \\ \"c'"), kv("A", "b \\ \"c"));
        assert_eq!(one("A=\"x\\\"y\\\\z\\$\""), kv("A", "x\"y\\z$"));
        assert_eq!(one("A=   b   "), kv("A", "b"));
        assert_eq!(one("A="), kv("A", ""));
        assert_eq!(one("A=$HOME"), kv("A", "$HOME"));
        assert_eq!(one("_a1=v"), kv("_a1", "v"));
        assert_eq!(one("# c\n; c\n\n   \nA=b"), kv("A", "b"));
        assert_eq!(one("exportA=b"), kv("exportA", "b"));
    }

    #[test]
    fn line_numbers() {
        let all = parse(b"# x\r\nA=1\r\n\r\nB=2").unwrap();
        assert_eq!(
            all.iter().map(|a| a.line).collect::<Vec<_>>(),
            vec![2usize, 4]
        );
        assert_eq!(bad("A=1\n\nB\n").line, 3);
    }

    #[test]
    fn refused_forms() {
        for text in [
            "A",
            "A = b",
            "A =b",
            "1A=b",
            "A-B=b",
            "=b",
            "A=\"b",
            "A='b",
            "A=\"b\"c",
            "A='b' c",
            "A=b\\",
            "A=\"b\\",
            "A=b\\c",
            "A=b\"c",
            "A=\"\\n\"",
            "A=b\0",
            "A=\x1b[0m",
            "A=b\rc",
            "# note \\\nA=b",
        ] {
            bad(text);
        }
        assert!(
            bad("A=\u{7f}")
                .reason
                .starts_with("contains a control character")
        );
        assert!(
            parse(b"A=\xff")
                .unwrap_err()
                .reason
                .starts_with("is not valid UTF-8; ")
        );
    }

    #[test]
    fn every_error_says_what_to_do() {
        // "<what is wrong>; <the fix>", for every refusal (and a BOM, a NUL byte).
        for text in [
            "\u{feff}A=b",
            "A",
            "A = b",
            "1A=b",
            "A=\"b",
            "A='b",
            "A=\"b\"c",
            "A='b' c",
            "A=b\\",
            "A=\"b\\",
            "A=b\\c",
            "A=\"\\n\"",
            "A=b\0",
            "A=\x1b[0m",
            "A=b\rc",
            "# note \\\nA=b",
        ] {
            let e = bad(text);
            let (_, fix) = e.reason.split_once("; ").unwrap_or_default();
            assert!(fix.len() > 10, "{text:?}: no fix in {:?}", e.reason);
        }
        let e = parse(b"A=\xff").unwrap_err();
        assert!(e.reason.contains("; save the file as UTF-8"), "{e:?}");
    }

    #[test]
    fn errors_never_quote_the_value() {
        let secret = "sk-ant-oat01-SECRETSECRET";
        for text in [
            format!("X={secret}\"oops"),
            format!("X = {secret}"),
            secret.to_string(),
            format!("X=\"{secret}"),
        ] {
            let e = bad(&text);
            assert!(!e.reason.contains("SECRET"), "{e:?}");
        }
        let a = parse(format!("X={secret}").as_bytes()).unwrap();
        assert!(!format!("{a:?}").contains("SECRET"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn round_trips_quoted_values(key in "[A-Za-z_][A-Za-z0-9_]{0,20}", value in "[ -~]{0,64}") {
            let escaped: String = value.chars().flat_map(|c| match c {
                '"' | '\\' | '$' | '`' => vec!['\\', c],
                c => vec![c],
            }).collect();
            let parsed = parse(format!("export {key}=\"{escaped}\"\r\n").as_bytes()).unwrap();
            proptest::prop_assert_eq!(&parsed[0].key, &key);
            proptest::prop_assert_eq!(&parsed[0].value, &value);
        }

        #[test]
        fn errors_name_a_real_line(text in "[A-Za-z=\"' \\\\#\n]{0,200}") {
            if let Err(e) = parse(text.as_bytes()) {
                proptest::prop_assert!(e.line >= 1 && e.line <= text.split('\n').count());
            }
        }
    }
}
