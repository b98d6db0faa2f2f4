//! What claude-iso tells the user: warnings and notes on stderr, the dry-run plan on
//! stdout. Callers pass only names, paths and redacted tokens.

#![forbid(unsafe_code)]

use std::io::Write;

#[derive(Debug)]
pub struct Report {
    pub verbosity: Verbosity,
    /// Whether dry-run plan lines are printed.
    pub plans: bool,
}

/// An error, as the one line claude-iso prints before exiting non-zero. A closed or
/// broken stderr is ignored: the exit status still tells.
pub(crate) fn error_line(msg: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "claude-iso: {}",
        redact_secrets(msg)
    );
}

/// Bytes for stdout (help, completions, reports); a closed stdout (`| head`) is the
/// reader's choice, not our failure.
pub(crate) fn stdout_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

impl Report {
    /// A report that prints nothing (for `doctor`, which reports in its own format).
    #[must_use]
    pub fn silent() -> Self {
        Report {
            verbosity: Verbosity::Quiet,
            plans: false,
        }
    }

    fn say(&self, min: Verbosity, prefix: &str, msg: &str) {
        if self.verbosity >= min {
            let msg = redact_secrets(msg);
            let _ = writeln!(std::io::stderr().lock(), "claude-iso: {prefix}{msg}");
        }
    }

    /// Something the user should act on (shown unless `--quiet`).
    pub fn warn(&self, msg: impl AsRef<str>) {
        self.say(Verbosity::Normal, "warning: ", msg.as_ref());
    }

    /// Something changed that the user may want to know (shown unless `--quiet`).
    pub fn note(&self, msg: impl AsRef<str>) {
        self.say(Verbosity::Normal, "", msg.as_ref());
    }

    /// Detail for `--verbose`.
    pub fn info(&self, msg: impl AsRef<str>) {
        self.say(Verbosity::Verbose, "", msg.as_ref());
    }

    /// A line of the `--dry-run` plan, on stdout.
    pub fn plan(&self, msg: impl AsRef<str>) {
        if self.plans {
            let _ = writeln!(std::io::stdout().lock(), "{}", redact_secrets(msg.as_ref()));
        }
    }
}

/// How much claude-iso says on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Replaces anything shaped like an Anthropic secret (`sk-ant-…`) with its prefix and
/// length: clap quotes a misplaced argument back, and that argument may be a token.
/// What we print, made safe: secrets redacted and control characters (a newline in a
/// path) escaped, so every message stays one line.
pub(crate) fn redact_secrets(text: &str) -> String {
    escape_controls(redact_tokens(text))
}

/// Text made safe for one terminal line: control characters (a newline in a path, an
/// escape sequence in a file we do not control) escaped.
#[must_use]
pub(crate) fn escape_controls(text: impl Into<String>) -> String {
    let text = text.into();
    if text.chars().any(char::is_control) {
        text.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    } else {
        text
    }
}

fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sk-ant-") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(tail.len());
        if len <= 13 {
            // Already only a prefix (as `Token::redacted` shows it).
            out.push_str(&tail[..len]);
        } else {
            out.push_str(&format!("{}… ({len} chars)", &tail[..13]));
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_usage_errors_are_redacted() {
        assert_eq!(
            super::redact_secrets("unexpected argument 'sk-ant-oat01-SECRET_x-y' found"),
            "unexpected argument 'sk-ant-oat01-… (23 chars)' found"
        );
        assert_eq!(super::redact_secrets("no secret"), "no secret");
        let once = "token sk-ant-oat01-… (64 chars)";
        assert_eq!(super::redact_secrets(once), once);
        assert_eq!(super::redact_secrets("sk-ant-"), "sk-ant-");
        assert_eq!(super::redact_secrets("/tmp/a\nFAKE: x"), "/tmp/a\\nFAKE: x");
    }
}
