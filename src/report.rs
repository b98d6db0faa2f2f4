//! What claude-iso tells the user: warnings and notes on stderr, the dry-run plan on
//! stdout. Callers pass only names, paths and redacted tokens.

use std::io::Write;

use crate::config::Verbosity;

#[derive(Debug)]
pub struct Report {
    pub verbosity: Verbosity,
    /// Whether dry-run plan lines are printed.
    pub plans: bool,
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
            let msg = crate::redact_secrets(msg);
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
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                crate::redact_secrets(msg.as_ref())
            );
        }
    }
}
