//! The token's life: `claude-iso token set` stores it, `claude-iso token status` (and
//! `doctor`, and a launch near the end) says how old it is.
//!
//! `token set` reads the token from the terminal without echo, or from stdin when that
//! is not a terminal (never from argv), checks its shape, and writes the env file
//! atomically: a temp file created `O_CREAT|O_EXCL` with mode 0600 in the same
//! directory, fsync, rename, fsync of the directory. There is never a moment where the
//! token sits in a file with wider permissions. Only a regular file is replaced (a
//! directory, FIFO, device node or symlink in its place is refused, nothing moved), and
//! a replaced file is kept aside, never deleted.
//!
//! A setup-token lasts 365 days and does not say when it was made, so `token set`
//! records when each token was *first stored*, in `<env file>.meta.json` next to it,
//! keyed by a fingerprint: the first 64 bits of SHA-256 over a domain-separation label
//! and the token. The token has hundreds of bits of entropy, so the fingerprint cannot
//! be reversed or guessed back to it; it only lets us recognise the same token again
//! (re-storing it keeps its first date, a new token gets a new one).

#![forbid(unsafe_code)]

mod set;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::caller::CallerEnv;
use crate::cli::{LaunchArgs, TokenStatusArgs};
use crate::config::Config;
use crate::error::{Outcome, Result};
use crate::layout::TOKEN_VAR;
use crate::report::{self, Report};
use crate::sys::fsutil;
pub use crate::sys::time::date;
use crate::sys::time::{DAY, now};
use crate::token::envfile;
use crate::token::{self, Source, Token};
pub use set::set;

/// How long a setup-token lasts (`claude setup-token` says one year).
pub const LIFETIME_DAYS: i64 = 365;
/// `token status` and `doctor` warn from this many days before expiry.
pub const STATUS_WARN_DAYS: i64 = 30;
/// A launch prints one warning line a day from this many days before expiry.
pub const LAUNCH_WARN_DAYS: i64 = 14;
/// The length of every setup-token measured so far (see `token::MIN_TOKEN_LEN`).
pub const TYPICAL_LEN: usize = 108;

/// How far in the future a recorded first-stored time may be and still count as now.
const CLOCK_SKEW: i64 = 600;
const META_SUFFIX: &str = ".meta.json";
const WARNED_SUFFIX: &str = ".warned";
const FINGERPRINT_LABEL: &[u8] = b"claude-iso token fingerprint v1\0";
/// Longest input `token set` accepts (a token is ~108 bytes).
const MAX_INPUT: usize = 4096;

/// Bytes that are zeroed when dropped (the typed token, the new file's text).
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// The one-way fingerprint of a token: 16 hex digits.
#[must_use]
pub fn fingerprint(token: &Token) -> String {
    let mut h = Sha256::new();
    h.update(FINGERPRINT_LABEL);
    h.update(token.expose().as_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `1 day`, `2 days`.
#[must_use]
pub fn days(n: i64) -> String {
    if n == 1 {
        "1 day".into()
    } else {
        format!("{n} days")
    }
}

/// When a token was first stored, against now. Ages are counted in whole calendar
/// days (UTC), like the dates printed: a token first stored on day D is 0 days old all
/// of day D, expires on day D + 365, and age + days left is always 365.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub first_stored: i64,
    pub now: i64,
}

impl Lifetime {
    /// Whole calendar days since it was first stored.
    #[must_use]
    pub fn age_days(&self) -> i64 {
        self.now.div_euclid(DAY) - self.first_stored.div_euclid(DAY)
    }

    /// When it stops working (365 days after it was first stored, at the latest); its
    /// date is the first-stored date + 365 days.
    #[must_use]
    pub fn expires(&self) -> i64 {
        self.first_stored + LIFETIME_DAYS * DAY
    }

    /// Whole calendar days since the expiry date (when [`Lifetime::days_left`] is
    /// negative).
    #[must_use]
    pub fn days_expired(&self) -> i64 {
        -self.days_left()
    }

    /// Whole calendar days until the expiry date: 0 on that day, negative after it.
    #[must_use]
    pub fn days_left(&self) -> i64 {
        LIFETIME_DAYS - self.age_days()
    }

    /// `123 days left`, `1 day left`, `EXPIRED 2 days ago`.
    #[must_use]
    pub fn left_text(&self) -> String {
        let left = self.days_left();
        if left >= 0 {
            format!("{} left", days(left))
        } else {
            format!("EXPIRED {} ago", days(self.days_expired()))
        }
    }

    /// `first stored 2025-01-02 (10 days ago), expires 2026-01-02 (355 days left)`.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "first stored {} ({} ago), expires {} ({})",
            date(self.first_stored),
            days(self.age_days()),
            date(self.expires()),
            self.left_text()
        )
    }

    /// The warning for a token this close to its end, if it is.
    #[must_use]
    pub fn warning(&self, within_days: i64) -> Option<String> {
        let left = self.days_left();
        let fix = "make a new one with `claude setup-token`, then run: claude-iso token set";
        let on = date(self.expires());
        if left < 0 {
            Some(format!(
                "the setup-token expired on {on} (365 days after it was first stored); {fix}"
            ))
        } else if left == 0 {
            Some(format!("the setup-token expires today ({on}); {fix}"))
        } else if left <= within_days {
            Some(format!(
                "the setup-token expires in {} ({on}); {fix}",
                days(left)
            ))
        } else {
            None
        }
    }
}

/// What the metadata says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// No metadata file knows this token.
    Unknown,
    /// First stored at a plausible time, recorded in `meta`.
    Known { life: Lifetime, meta: PathBuf },
    /// `meta` records this token with a date that cannot be right (in the future, or
    /// not a Unix time): its age is unknown. `warning` is the one line to show.
    Invalid { meta: PathBuf, warning: String },
}

impl Recorded {
    /// The lifetime, when it is known.
    #[must_use]
    pub fn life(&self) -> Option<Lifetime> {
        match self {
            Recorded::Known { life, .. } => Some(*life),
            _ => None,
        }
    }
}

/// Checks a recorded first-stored time against `now`: a time up to [`CLOCK_SKEW`] ahead
/// counts as now (clocks of two machines, or one corrected by NTP); later, or not a Unix
/// time, is a problem (the text says which).
fn check_first_stored(value: &Value, now: i64) -> std::result::Result<i64, String> {
    let Some(first) = value.as_i64() else {
        return Err("records a first-stored time for this token that is not a Unix time".into());
    };
    if first > now.saturating_add(CLOCK_SKEW) {
        return Err(format!(
            "records a first-stored date in the future ({}) for this token, so its age is unknown",
            date(first)
        ));
    }
    Ok(first.min(now))
}

/// The default env file `token set` writes: `$XDG_CONFIG_HOME/claude-iso/token.env`.
#[must_use]
pub fn default_env_file(config: &Config) -> PathBuf {
    config
        .xdg_config_home()
        .join("claude-iso")
        .join("token.env")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The metadata files that may know a token: next to its env file, then next to the
/// default env file (a token stored there and handed over another way, e.g. systemd's
/// `LoadCredential=`, is recognised by its fingerprint).
fn meta_candidates(config: &Config, source: &Source) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Source::EnvFile(p) = source {
        out.push(with_suffix(p, META_SUFFIX));
    }
    let default = with_suffix(&default_env_file(config), META_SUFFIX);
    if !out.contains(&default) {
        out.push(default);
    }
    out
}

/// Up to 1 MiB of a regular file opened without following a symlink and without
/// blocking (a FIFO put in its place cannot hang us); `None` for anything else.
fn read_regular(dir: Option<&OwnedFd>, path: &Path) -> Option<Vec<u8>> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fd = match dir {
        Some(dir) => openat(dir, path, flags, Mode::empty()),
        None => open(path, flags, Mode::empty()),
    }
    .ok()?;
    let st = nix::sys::stat::fstat(&fd).ok()?;
    if !fsutil::is_type(&st, nix::sys::stat::SFlag::S_IFREG) {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// Reads a metadata file; `None` when missing or not ours.
fn read_meta(path: &Path) -> Option<Value> {
    let bytes = read_regular(None, path)?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("tokens")?.as_object()?;
    Some(doc)
}

/// The fix for metadata that records a wrong date.
const REDO: &str = "store the token again to record today's date: claude-iso token set";

/// When this token was first stored, and the metadata file that says so: the first
/// metadata file (see [`meta_candidates`]) that names the token decides.
#[must_use]
pub fn recorded(config: &Config, source: &Source, token: &Token) -> Recorded {
    let fp = fingerprint(token);
    let now = now();
    for meta in meta_candidates(config, source) {
        let Some(doc) = read_meta(&meta) else {
            continue;
        };
        let Some(entry) = doc["tokens"].get(&fp) else {
            continue;
        };
        return match check_first_stored(&entry["first_stored"], now) {
            Ok(first_stored) => Recorded::Known {
                life: Lifetime { first_stored, now },
                meta,
            },
            Err(problem) => Recorded::Invalid {
                warning: format!("{}: {problem}; {REDO}", meta.display()),
                meta,
            },
        };
    }
    Recorded::Unknown
}

/// What a launch says about the token, after loading it: one warning line in its last
/// [`LAUNCH_WARN_DAYS`] days, or when its metadata records an impossible date (at most
/// once a day: the day is stamped in `<env file>.warned` next to the metadata), and the
/// names of env-file variables that are not exported. Silent with `-q` (which then
/// leaves the stamp alone, so the next launch still warns). A dry run does not stamp:
/// it reports the warning as a line of its plan, saying whether a launch would print it.
pub fn launch_notes(
    config: &Config,
    source: &Source,
    token: &Token,
    report: &Report,
    dry_run: bool,
) {
    let (warning, meta, now) = match recorded(config, source, token) {
        Recorded::Known { life, meta } => (life.warning(LAUNCH_WARN_DAYS), meta, life.now),
        Recorded::Invalid { meta, warning } => (Some(warning), meta, now()),
        Recorded::Unknown => (None, PathBuf::new(), 0),
    };
    if let Some(warning) = warning {
        let stamp = meta
            .to_str()
            .and_then(|m| m.strip_suffix(META_SUFFIX))
            .map(|base| PathBuf::from(format!("{base}{WARNED_SUFFIX}")));
        let fp = fingerprint(token);
        if dry_run {
            let due = stamp.is_none_or(|s| stamp_due(&s, &fp, now, false));
            let when = if report.verbosity == report::Verbosity::Quiet {
                "a launch with -q would not print it"
            } else if due {
                "a launch now would print it as a warning, once today"
            } else {
                "a launch already printed it today; it warns once a day"
            };
            report.plan(format!("token: {warning} ({when})"));
        } else if report.verbosity != report::Verbosity::Quiet
            && stamp.is_none_or(|s| stamp_due(&s, &fp, now, true))
        {
            report.warn(warning);
        }
    }
    if report.verbosity == report::Verbosity::Quiet {
        return;
    }
    let others = other_variables(config, source);
    if !others.is_empty() {
        report.note(format!(
            "{source}: not exporting {} (claude-iso reads only {TOKEN_VAR} from a token file; set other variables in the environment, where they pass through)",
            others.join(", ")
        ));
    }
}

/// Whether today's warning is still due for `fp`; with `stamp`, recording that it is
/// given. Under an exclusive `flock` of the stamp file, so concurrent launches warn
/// once. When the stamp cannot be kept (a read-only directory, something other than a
/// regular file in its place), the warning is due every time: better than silence
/// before the token stops working.
fn stamp_due(path: &Path, fp: &str, now: i64, stamp: bool) -> bool {
    let flags = if stamp {
        OFlag::O_RDWR | OFlag::O_CREAT
    } else {
        OFlag::O_RDONLY
    } | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let Ok(fd) = open(path, flags, Mode::from_bits_truncate(0o600)) else {
        return true;
    };
    if !nix::sys::stat::fstat(&fd)
        .is_ok_and(|st| fsutil::is_type(&st, nix::sys::stat::SFlag::S_IFREG))
    {
        return true;
    }
    let file = std::fs::File::from(fd);
    let lock_kind = if stamp {
        nix::fcntl::FlockArg::LockExclusive
    } else {
        nix::fcntl::FlockArg::LockShared
    };
    let Ok(lock) = nix::fcntl::Flock::lock(file, lock_kind) else {
        return true;
    };
    let mut file: &std::fs::File = &lock;
    let mut text = String::new();
    let _ = file.take(4096).read_to_string(&mut text);
    let line = format!("{fp} {}\n", date(now));
    if text == line {
        return false;
    }
    if stamp {
        let _ = file.set_len(0);
        let _ = std::io::Seek::rewind(&mut file);
        let _ = file.write_all(line.as_bytes());
    }
    drop(lock);
    true
}

/// The variables of the source's env file other than the token, by name.
#[must_use]
pub fn other_variables(config: &Config, source: &Source) -> Vec<String> {
    let (Source::EnvFile(path) | Source::CredentialsDirectory(path)) = source else {
        return Vec::new();
    };
    let Ok(bytes) = token::read_private_file(path, token::credentials_directory(config)) else {
        return Vec::new();
    };
    let bytes = Secret(bytes);
    if !bytes.0.contains(&b'=') {
        return Vec::new();
    }
    let Ok(assignments) = envfile::parse(&bytes.0) else {
        return Vec::new();
    };
    let mut names: Vec<String> = assignments
        .into_iter()
        .map(|a| a.key.clone())
        .filter(|k| k != TOKEN_VAR)
        .collect();
    names.dedup();
    names
}

// ---------------------------------------------------------------------------------
// token status

/// `claude-iso token status`: 0, or 1 once the token is past its 365 days.
///
/// # Errors
/// No token, or an unusable one (125), as a launch would fail.
pub fn status(args: &TokenStatusArgs) -> Result<Outcome> {
    let config = Config::new(
        &LaunchArgs {
            env_file: args.env_file.clone(),
            ..LaunchArgs::default()
        },
        CallerEnv::from_process(),
    )?;
    let (token, source) = token::load(&config)?;
    let record = recorded(&config, &source, &token);
    let life = record.life();
    let warning = match &record {
        Recorded::Invalid { warning, .. } => Some(warning.clone()),
        _ => life.and_then(|l| l.warning(STATUS_WARN_DAYS)),
    };
    let state = match life {
        None => "unknown",
        Some(l) if l.days_left() < 0 => "expired",
        Some(_) if warning.is_some() => "warn",
        Some(_) => "ok",
    };
    if args.json {
        let doc = status_json(&token, &source, life, state, warning.as_deref());
        report::stdout_bytes(format!("{doc:#}\n").as_bytes());
    } else {
        let text: String = status_lines(&token, &source, &record, warning.as_deref())
            .iter()
            .map(|l| report::redact_secrets(l) + "\n")
            .collect();
        report::stdout_bytes(text.as_bytes());
    }
    Ok(if state == "expired" {
        Outcome::Unhealthy
    } else {
        Outcome::Success
    })
}

/// `token status --json`: what the text says, as fields (never the token).
fn status_json(
    token: &Token,
    source: &Source,
    life: Option<Lifetime>,
    state: &str,
    warning: Option<&str>,
) -> Value {
    let shown = token.redacted();
    let prefix = shown.split('…').next().unwrap_or_default().to_owned();
    let kind = match source {
        Source::EnvFile(_) => "env_file",
        Source::CredentialsDirectory(_) => "credentials_directory",
        Source::Environment => "environment",
    };
    json!({
        "source": source.to_string(),
        "kind": kind,
        "prefix": prefix,
        "length": token.expose().len(),
        "fingerprint": fingerprint(token),
        "lifetime_days": LIFETIME_DAYS,
        "first_stored": life.map(|l| date(l.first_stored)),
        "age_days": life.map(|l| l.age_days()),
        "expires": life.map(|l| date(l.expires())),
        "days_left": life.map(|l| l.days_left()),
        "status": state,
        "warning": warning,
    })
}

/// `token status`: its lines (redacted when printed).
fn status_lines(
    token: &Token,
    source: &Source,
    record: &Recorded,
    warning: Option<&str>,
) -> Vec<String> {
    let shown = token.redacted();
    let life = record.life();
    let mut lines = vec![format!("token    {shown}"), format!("source   {source}")];
    match life {
        Some(l) => {
            lines.push(format!(
                "stored   {} ({} ago)",
                date(l.first_stored),
                days(l.age_days())
            ));
            lines.push(format!(
                "expires  {} ({})",
                date(l.expires()),
                l.left_text()
            ));
        }
        None if matches!(record, Recorded::Invalid { .. }) => {
            lines.push("stored   unknown (the recorded date cannot be right)".into());
            lines.push(format!(
                "expires  unknown; a setup-token lasts {LIFETIME_DAYS} days from `claude setup-token`"
            ));
        }
        None => {
            lines.push(
                "stored   unknown (not stored by `claude-iso token set`, which records the date)"
                    .into(),
            );
            lines.push(format!(
                "expires  unknown; a setup-token lasts {LIFETIME_DAYS} days from `claude setup-token`"
            ));
        }
    }
    if let Some(w) = warning {
        lines.push(format!("warning  {w}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::set::{rewrite, unwrap_line};
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_735_689_599), "2024-12-31");
        assert_eq!(date(-1), "1969-12-31");
    }

    #[test]
    fn lifetime_arithmetic() {
        // Calendar days (UTC): the day count follows the printed dates, whatever the
        // time of day of either end.
        let l = Lifetime {
            first_stored: DAY - 1,
            now: 335 * DAY,
        };
        assert_eq!(l.age_days(), 335);
        assert_eq!(l.days_left(), 30);
        assert_eq!(date(l.expires()), date(365 * DAY));
        assert!(l.warning(STATUS_WARN_DAYS).is_some());
        assert!(l.warning(LAUNCH_WARN_DAYS).is_none());
        for now in [0, 1, DAY - 1] {
            let fresh = Lifetime {
                first_stored: 0,
                now,
            };
            assert_eq!((fresh.age_days(), fresh.days_left()), (0, 365));
            assert!(fresh.describe().contains("(0 days ago)"));
            assert!(fresh.describe().contains("(365 days left)"));
            assert!(fresh.warning(STATUS_WARN_DAYS).is_none());
        }
        for (now, age) in [(DAY, 1), (364 * DAY + DAY - 1, 364), (365 * DAY, 365)] {
            let l = Lifetime {
                first_stored: DAY / 2,
                now,
            };
            assert_eq!(l.age_days(), age);
            assert_eq!(l.age_days() + l.days_left(), LIFETIME_DAYS);
        }
        let one = Lifetime {
            first_stored: 0,
            now: 364 * DAY,
        };
        assert!(
            one.describe().contains("(1 day left)"),
            "{}",
            one.describe()
        );
        assert!(one.warning(1).unwrap().contains("expires in 1 day ("));
        let today = Lifetime {
            first_stored: 0,
            now: 365 * DAY + 10,
        };
        assert!(today.warning(0).unwrap().contains("expires today"));
        let old = Lifetime {
            first_stored: 0,
            now: 400 * DAY,
        };
        assert_eq!(old.days_left(), -35);
        assert!(old.describe().contains("EXPIRED 35 days ago"));
        assert!(old.warning(0).unwrap().contains("expired"));
        let yesterday = Lifetime {
            first_stored: 0,
            now: 366 * DAY,
        };
        assert!(yesterday.describe().contains("(366 days ago)"));
        assert!(yesterday.describe().contains("EXPIRED 1 day ago"));
    }

    #[test]
    fn a_first_stored_time_in_the_future_is_not_believed() {
        let now = 1_000 * DAY;
        assert_eq!(check_first_stored(&json!(now - 5), now), Ok(now - 5));
        // Within the clock-skew allowance: counts as now, never a negative age.
        assert_eq!(check_first_stored(&json!(now + 60), now), Ok(now));
        let e = check_first_stored(&json!(now + CLOCK_SKEW + 1), now).unwrap_err();
        assert!(e.contains("in the future"), "{e}");
        assert!(check_first_stored(&json!("2025-01-01"), now).is_err());
        assert!(check_first_stored(&Value::Null, now).is_err());
    }

    #[test]
    fn fingerprint_is_short_stable_and_not_the_token() {
        let body = "x".repeat(95);
        let t = Token::parse(&format!("sk-ant-oat01-{body}")).unwrap();
        let fp = fingerprint(&t);
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, fingerprint(&t.clone()));
        assert!(!t.expose().contains(&fp));
        let u = Token::parse(&format!("sk-ant-oat01-{}y", "x".repeat(94))).unwrap();
        assert_ne!(fp, fingerprint(&u));
    }

    #[test]
    fn a_copied_env_file_line_gives_its_token() {
        let t = "sk-ant-oat01-x";
        for given in [
            "sk-ant-oat01-x",
            " sk-ant-oat01-x\n",
            "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-x",
            "export CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-x",
            "export\tCLAUDE_CODE_OAUTH_TOKEN='sk-ant-oat01-x'",
            "CLAUDE_CODE_OAUTH_TOKEN=\"sk-ant-oat01-x\"",
            "\"sk-ant-oat01-x\"",
        ] {
            assert_eq!(unwrap_line(given), t, "{given}");
        }
        // Anything else is left as it is, for the shape check to name.
        for given in [
            "exportsk-ant-oat01-x",
            "OTHER=sk-ant-oat01-x",
            "Bearer sk-ant-oat01-x",
            "\"sk-ant-oat01-x'",
            "\"sk-ant-oat01-x",
        ] {
            assert_eq!(unwrap_line(given), given, "{given}");
        }
    }

    #[test]
    fn rewrite_keeps_other_lines() {
        let body = "A".repeat(95);
        let t = Token::parse(&format!("sk-ant-oat01-{body}")).unwrap();
        let old = b"# c\r\nFOO=1\r\nexport CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-old\r\nBAR=2";
        let new = rewrite(old, &t).unwrap();
        // The `export ` prefix stays (issue 13 follow-up: it was dropped before).
        assert_eq!(
            String::from_utf8(new.0.clone()).unwrap(),
            format!("# c\r\nFOO=1\r\nexport CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-{body}\r\nBAR=2")
        );
        let indented = rewrite(b"  export\tCLAUDE_CODE_OAUTH_TOKEN='x'\n", &t).unwrap();
        assert_eq!(
            String::from_utf8(indented.0.clone()).unwrap(),
            format!("  export\tCLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-{body}\n")
        );
        let appended = rewrite(b"FOO=1", &t).unwrap();
        assert_eq!(
            String::from_utf8(appended.0.clone()).unwrap(),
            format!("FOO=1\nCLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-{body}\n")
        );
        assert!(rewrite(b"ANTHROPIC_API_KEY=x\n", &t).is_none());
        assert!(rewrite(b"A = b\n", &t).is_none());
    }
}
