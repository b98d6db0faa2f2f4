//! The token's life: `claude-iso token set` stores it, `claude-iso token status` (and
//! `doctor`, and a launch near the end) says how old it is.
//!
//! `token set` reads the token from the terminal without echo, or from stdin when that
//! is not a terminal (never from argv), checks its shape, and writes the env file
//! atomically: a temp file created `O_CREAT|O_EXCL` with mode 0600 in the same
//! directory, fsync, rename, fsync of the directory. There is never a moment where the
//! token sits in a file with wider permissions. A replaced file is kept aside, never
//! deleted.
//!
//! A setup-token lasts 365 days and does not say when it was made, so `token set`
//! records when each token was *first stored*, in `<env file>.meta.json` next to it,
//! keyed by a fingerprint: the first 64 bits of SHA-256 over a domain-separation label
//! and the token. The token has hundreds of bits of entropy, so the fingerprint cannot
//! be reversed or guessed back to it; it only lets us recognise the same token again
//! (re-storing it keeps its first date, a new token gets a new one).

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::sys::stat::Mode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::caller::CallerEnv;
use crate::cli::{LaunchArgs, TokenSetArgs, TokenStatusArgs};
use crate::config::Config;
use crate::envfile;
use crate::error::{Error, Outcome, Result, error_text};
use crate::fsutil;
use crate::layout::TOKEN_VAR;
use crate::report::{self, Report};
use crate::scrub;
use crate::token::{self, Source, Token};

/// How long a setup-token lasts (`claude setup-token` says one year).
pub const LIFETIME_DAYS: i64 = 365;
/// `token status` and `doctor` warn from this many days before expiry.
pub const STATUS_WARN_DAYS: i64 = 30;
/// A launch prints one warning line a day from this many days before expiry.
pub const LAUNCH_WARN_DAYS: i64 = 14;
/// The length of every setup-token measured so far (see `token::MIN_TOKEN_LEN`).
pub const TYPICAL_LEN: usize = 108;

const DAY: i64 = 86_400;
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

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD` (UTC) of a Unix time (Howard Hinnant's `civil_from_days`).
#[must_use]
pub fn date(unix: i64) -> String {
    let z = unix.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// When a token was first stored, against now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub first_stored: i64,
    pub now: i64,
}

impl Lifetime {
    /// Whole days since it was first stored.
    #[must_use]
    pub fn age_days(&self) -> i64 {
        (self.now - self.first_stored).div_euclid(DAY)
    }

    /// When it stops working (365 days after it was first stored, at the latest).
    #[must_use]
    pub fn expires(&self) -> i64 {
        self.first_stored + LIFETIME_DAYS * DAY
    }

    /// Whole days since it expired (when [`Lifetime::days_left`] is negative).
    #[must_use]
    pub fn days_expired(&self) -> i64 {
        (self.now - self.expires()).div_euclid(DAY)
    }

    /// Whole days left; negative once expired.
    #[must_use]
    pub fn days_left(&self) -> i64 {
        (self.expires() - self.now).div_euclid(DAY)
    }

    /// `stored 2025-01-02 (10 days ago), expires 2026-01-02 (355 days left)`.
    #[must_use]
    pub fn describe(&self) -> String {
        let left = self.days_left();
        let left = if left >= 0 {
            format!("{left} days left")
        } else {
            format!("EXPIRED {} days ago", self.days_expired())
        };
        format!(
            "first stored {} ({} days ago), expires {} ({left})",
            date(self.first_stored),
            self.age_days(),
            date(self.expires())
        )
    }

    /// The warning for a token this close to its end, if it is.
    #[must_use]
    pub fn warning(&self, within_days: i64) -> Option<String> {
        let left = self.days_left();
        let fix = "make a new one with `claude setup-token`, then run: claude-iso token set";
        if left < 0 {
            Some(format!(
                "the setup-token expired on {} (365 days after it was first stored); {fix}",
                date(self.expires())
            ))
        } else if left <= within_days {
            Some(format!(
                "the setup-token expires in {left} days ({}); {fix}",
                date(self.expires())
            ))
        } else {
            None
        }
    }
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

/// Reads a metadata file; `None` when missing or not ours.
fn read_meta(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("tokens")?.as_object()?;
    Some(doc)
}

fn first_stored_in(doc: &Value, fp: &str) -> Option<i64> {
    doc["tokens"][fp]["first_stored"].as_i64()
}

/// When this token was first stored, and the metadata file that says so.
#[must_use]
pub fn recorded(config: &Config, source: &Source, token: &Token) -> Option<(Lifetime, PathBuf)> {
    let fp = fingerprint(token);
    meta_candidates(config, source)
        .into_iter()
        .find_map(|meta| {
            let first = first_stored_in(&read_meta(&meta)?, &fp)?;
            Some((
                Lifetime {
                    first_stored: first,
                    now: now(),
                },
                meta,
            ))
        })
}

/// What a launch says about the token, after loading it: one warning line in its last
/// [`LAUNCH_WARN_DAYS`] days (at most once a day: the day is stamped in
/// `<env file>.warned` next to the metadata), and the names of env-file variables that
/// are not exported. Silent with `-q` (which then leaves the stamp alone, so the next
/// launch still warns); a dry run warns without stamping.
pub fn launch_notes(
    config: &Config,
    source: &Source,
    token: &Token,
    report: &Report,
    dry_run: bool,
) {
    if report.verbosity == report::Verbosity::Quiet {
        return;
    }
    if let Some((life, meta)) = recorded(config, source, token) {
        if let Some(warning) = life.warning(LAUNCH_WARN_DAYS) {
            let stamp = meta
                .to_str()
                .and_then(|m| m.strip_suffix(META_SUFFIX))
                .map(|base| PathBuf::from(format!("{base}{WARNED_SUFFIX}")));
            let due =
                dry_run || stamp.is_none_or(|s| stamp_today(&s, &fingerprint(token), life.now));
            if due {
                report.warn(warning);
            }
        }
    }
    let others = other_variables(config, source);
    if !others.is_empty() {
        report.note(format!(
            "{source}: not exporting {} (claude-iso reads only {TOKEN_VAR} from a token file; set other variables in the environment, where they pass through)",
            others.join(", ")
        ));
    }
}

/// Whether today's warning is still due for `fp`, recording that it is given. Under an
/// exclusive `flock` of the stamp file, so concurrent launches warn once. When the stamp
/// cannot be kept (a read-only directory), the warning is due every time: better than
/// silence before the token stops working.
fn stamp_today(stamp: &Path, fp: &str, now: i64) -> bool {
    let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let Ok(fd) = open(stamp, flags, Mode::from_bits_truncate(0o600)) else {
        return true;
    };
    let file = std::fs::File::from(fd);
    let Ok(lock) = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive) else {
        return true;
    };
    let mut file: &std::fs::File = &lock;
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let line = format!("{fp} {}\n", date(now));
    if text == line {
        return false;
    }
    let _ = file.set_len(0);
    let _ = std::io::Seek::rewind(&mut file);
    let _ = file.write_all(line.as_bytes());
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
    if matches!(source, Source::CredentialsDirectory(_)) && !bytes.0.contains(&b'=') {
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
// token set

/// `claude-iso token set`.
///
/// # Errors
/// No token given, a malformed one (nothing is written then), or the file cannot be
/// written safely.
pub fn set(args: &TokenSetArgs) -> Result<Outcome> {
    let config = Config::new(
        &LaunchArgs {
            env_file: args.env_file.clone(),
            ..LaunchArgs::default()
        },
        CallerEnv::from_process(),
    )?;
    let path = config
        .env_file
        .clone()
        .unwrap_or_else(|| default_env_file(&config));
    let stdin = std::io::stdin();
    let from_terminal = nix::unistd::isatty(stdin.as_fd()).unwrap_or(false);
    let (input, source_name) = if from_terminal {
        (read_from_terminal()?, "the token typed")
    } else {
        (read_from_stdin()?, "the token on stdin")
    };
    let text = std::str::from_utf8(&input.0).map_err(|_| Error::Token {
        source_name: source_name.into(),
        reason: "is not valid UTF-8".into(),
    })?;
    let token = Token::parse(text.trim()).map_err(|reason| Error::Token {
        source_name: source_name.into(),
        reason: format!("{reason}; nothing was written"),
    })?;
    drop(input);
    store(&config, &path, &token)
}

fn read_from_stdin() -> Result<Secret> {
    let mut buf = Secret(Vec::with_capacity(256));
    std::io::stdin()
        .lock()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut buf.0)
        .map_err(|e| Error::Token {
            source_name: "stdin".into(),
            reason: format!("cannot be read: {}", error_text(&e)),
        })?;
    if buf.0.len() > MAX_INPUT {
        return Err(Error::Token {
            source_name: "stdin".into(),
            reason: format!(
                "holds more than {MAX_INPUT} bytes; pipe in only the token printed by `claude setup-token`"
            ),
        });
    }
    if buf.0.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Token {
            source_name: "stdin".into(),
            reason: "is empty; pipe in the token printed by `claude setup-token`, or run `claude-iso token set` in a terminal to paste it".into(),
        });
    }
    Ok(buf)
}

/// Restores the terminal's settings when dropped.
struct TerminalGuard(nix::sys::termios::Termios);

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            std::io::stdin(),
            nix::sys::termios::SetArg::TCSAFLUSH,
            &self.0,
        );
    }
}

/// Reads one line from the terminal on stdin with echo off, byte by byte (non-canonical
/// mode, signals off): Enter ends it, Backspace and Ctrl-U edit it, Ctrl-C or Ctrl-D
/// on an empty line cancel. Nothing typed is shown; the terminal is restored after.
fn read_from_terminal() -> Result<Secret> {
    use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};
    let cancelled = |reason: &str| Error::Token {
        source_name: "token set".into(),
        reason: reason.into(),
    };
    let stdin = std::io::stdin();
    let original = tcgetattr(&stdin).map_err(|e| cancelled(&format!("terminal: {}", e.desc())))?;
    let mut hidden = original.clone();
    hidden
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG | LocalFlags::IEXTEN);
    hidden.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    hidden.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &hidden)
        .map_err(|e| cancelled(&format!("terminal: {}", e.desc())))?;
    let guard = TerminalGuard(original);
    // Only now that echo is off: nothing typed after the prompt is shown.
    let _ = std::io::stderr()
        .write_all(b"Paste the token printed by `claude setup-token` (input hidden), then Enter: ");
    let mut line = Secret(Vec::with_capacity(128));
    let mut byte = [0u8; 1];
    let outcome = loop {
        match nix::unistd::read(&stdin, &mut byte) {
            Ok(0) => break Ok(()),
            Ok(_) => match byte[0] {
                b'\r' | b'\n' => break Ok(()),
                0x03 => break Err("cancelled (Ctrl-C); nothing was written"),
                0x04 if line.0.is_empty() => break Err("cancelled (Ctrl-D); nothing was written"),
                0x04 => break Ok(()),
                0x7f | 0x08 => {
                    line.0.pop();
                }
                0x15 => {
                    line.0.fill(0);
                    line.0.clear();
                }
                b => {
                    if line.0.len() >= MAX_INPUT {
                        break Err("input too long; paste only the token");
                    }
                    line.0.push(b);
                }
            },
            Err(Errno::EINTR) => {}
            Err(e) => break Err(e.desc()),
        }
    };
    drop(guard);
    let _ = std::io::stderr().write_all(b"\n");
    outcome.map_err(cancelled)?;
    if line.0.is_empty() {
        return Err(cancelled("nothing was pasted; nothing was written"));
    }
    Ok(line)
}

/// Writes `token` to `path` (keeping the file's other lines), and records when it was
/// first stored.
fn store(config: &Config, path: &Path, token: &Token) -> Result<Outcome> {
    let file_err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Err(file_err(
            "is not a file path with a UTF-8 name; pass --env-file DIR/token.env".into(),
        ));
    };
    let dir_fd = open_or_create_dir(dir)?;
    let existing = fsutil::lstat_at(&dir_fd, name)
        .map_err(|e| file_err(format!("cannot stat: {}", e.desc())))?;
    let old = existing
        .is_some()
        .then(|| token::read_private_file(path, None));
    let (text, kept_lines) = match &old {
        Some(Ok(bytes)) => match rewrite(bytes, token) {
            Some(t) => (t, true),
            None => (fresh(token), false),
        },
        _ => (fresh(token), false),
    };
    let unchanged = matches!(&old, Some(Ok(bytes)) if *bytes == text.0);
    let mut notes = Vec::new();
    if unchanged {
        notes.push(format!(
            "{} already holds this token; nothing written",
            path.display()
        ));
    } else {
        let aside = write_atomic(&dir_fd, name, &text.0, existing.is_some())
            .map_err(|e| file_err(format!("cannot write: {}", e.desc())))?;
        notes.push(format!(
            "stored {} in {} (mode 0600)",
            token.redacted(),
            path.display()
        ));
        if let Some(aside) = aside {
            notes.push(format!(
                "the previous file is kept as {}{}",
                dir.join(aside).display(),
                match (&old, kept_lines) {
                    (Some(Ok(_)), true) => " (its other lines are kept in the new file)",
                    (Some(Err(_)), _) =>
                        " (it was not a usable token file, so nothing of it was carried over)",
                    _ => " (it was not a usable token file, so nothing of it was carried over)",
                }
            ));
        }
    }
    // The launcher must read back exactly this token from the file.
    let back = token::read_source(config, &Source::EnvFile(path.to_owned()))?;
    if back != *token {
        return Err(file_err(
            "reads back a different token after writing; check the file".into(),
        ));
    }
    let life = record_first_stored(&dir_fd, name, token)
        .map_err(|e| file_err(format!("cannot record the date: {}", e.desc())))?;
    notes.push(life.describe());
    if token.expose().len() != TYPICAL_LEN {
        notes.push(format!(
            "note: the token is {} chars; setup-tokens seen so far are {TYPICAL_LEN}: if it was cut short, copy it again",
            token.expose().len()
        ));
    }
    if let Some(w) = life.warning(STATUS_WARN_DAYS) {
        notes.push(format!("warning: {w}"));
    }
    for n in notes {
        report::error_line(&n);
    }
    Ok(Outcome::Success)
}

fn fresh(token: &Token) -> Secret {
    Secret(
        format!(
            "# The setup-token of claude-iso (`claude-iso token set`; `claude-iso token status`).\n{TOKEN_VAR}={}\n",
            token.expose()
        )
        .into_bytes(),
    )
}

/// The old file with its token line replaced (or the token appended), when the old file
/// is one the launcher accepts apart from its token; `None` otherwise.
fn rewrite(old: &[u8], token: &Token) -> Option<Secret> {
    let assignments = envfile::parse(old).ok()?;
    if assignments
        .iter()
        .any(|a| scrub::is_scrubbed(std::ffi::OsStr::new(&a.key)))
        || assignments.iter().filter(|a| a.key == TOKEN_VAR).count() > 1
    {
        return None;
    }
    let at = assignments
        .iter()
        .find(|a| a.key == TOKEN_VAR)
        .map(|a| a.line);
    let mut out = Secret(Vec::with_capacity(old.len() + 128));
    let new_line = format!("{TOKEN_VAR}={}", token.expose());
    for (i, line) in old.split_inclusive(|b| *b == b'\n').enumerate() {
        if Some(i + 1) == at {
            out.0.extend_from_slice(new_line.as_bytes());
            if line.ends_with(b"\r\n") {
                out.0.extend_from_slice(b"\r\n");
            } else if line.ends_with(b"\n") {
                out.0.push(b'\n');
            }
        } else {
            out.0.extend_from_slice(line);
        }
    }
    if at.is_none() {
        if !out.0.is_empty() && !out.0.ends_with(b"\n") {
            out.0.push(b'\n');
        }
        out.0.extend_from_slice(new_line.as_bytes());
        out.0.push(b'\n');
    }
    Some(out)
}

/// Opens `dir`, creating it and its missing parents with mode 0700 first.
fn open_or_create_dir(dir: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::DirBuilderExt;
    let dir_err = |reason: String| Error::EnvFile {
        path: dir.to_owned(),
        reason,
    };
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| dir_err(format!("cannot create: {}", error_text(&e))))?;
    }
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dir_err(format!("cannot open the directory: {}", e.desc())))
}

/// Writes `name` in `dir` atomically with mode 0600 from creation (`fsutil::write_atomic`),
/// the old file hard-linked aside first when `aside`. Returns the name it is kept under.
fn write_atomic(
    dir_fd: &OwnedFd,
    name: &str,
    bytes: &[u8],
    aside: bool,
) -> nix::Result<Option<String>> {
    fsutil::write_atomic(
        dir_fd,
        name,
        &format!(".{name}.claude-iso."),
        bytes,
        0o600,
        aside.then_some("replaced"),
    )
    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32)))
}

/// Adds this token's first-stored date to `<name>.meta.json` unless it is there.
fn record_first_stored(dir_fd: &OwnedFd, name: &str, token: &Token) -> nix::Result<Lifetime> {
    let meta_name = format!("{name}{META_SUFFIX}");
    let fp = fingerprint(token);
    let now = now();
    let old = openat(
        dir_fd,
        meta_name.as_str(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()
    .and_then(|fd| {
        let mut bytes = Vec::new();
        std::fs::File::from(fd)
            .take(1 << 20)
            .read_to_end(&mut bytes)
            .ok()?;
        Some(bytes)
    });
    let parsed: Option<Value> = old
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .filter(|d: &Value| d.get("tokens").is_some_and(Value::is_object));
    if let Some(first) = parsed.as_ref().and_then(|d| first_stored_in(d, &fp)) {
        return Ok(Lifetime {
            first_stored: first,
            now,
        });
    }
    let unreadable = old.is_some() && parsed.is_none();
    let mut doc = parsed.unwrap_or_else(|| {
        json!({
            "about": "claude-iso: when each setup-token was first stored (Unix time), keyed by a one-way fingerprint; never the token",
            "tokens": {},
        })
    });
    doc["tokens"][&fp] = json!({ "first_stored": now });
    let mut text = serde_json::to_vec_pretty(&doc).expect("JSON serializes");
    text.push(b'\n');
    write_atomic(dir_fd, &meta_name, &text, unreadable)?;
    Ok(Lifetime {
        first_stored: now,
        now,
    })
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
    let life = recorded(&config, &source, &token).map(|(l, _)| l);
    let warning = life.and_then(|l| l.warning(STATUS_WARN_DAYS));
    let state = match life {
        None => "unknown",
        Some(l) if l.days_left() < 0 => "expired",
        Some(_) if warning.is_some() => "warn",
        Some(_) => "ok",
    };
    let shown = token.redacted();
    let prefix = shown.split('…').next().unwrap_or_default().to_owned();
    if args.json {
        let kind = match &source {
            Source::EnvFile(_) => "env_file",
            Source::CredentialsDirectory(_) => "credentials_directory",
            Source::Environment => "environment",
        };
        let doc = json!({
            "source": source.to_string(),
            "kind": kind,
            "prefix": prefix,
            "length": token.expose().len(),
            "fingerprint": fingerprint(&token),
            "lifetime_days": LIFETIME_DAYS,
            "first_stored": life.map(|l| date(l.first_stored)),
            "age_days": life.map(|l| l.age_days()),
            "expires": life.map(|l| date(l.expires())),
            "days_left": life.map(|l| l.days_left()),
            "status": state,
            "warning": warning,
        });
        report::stdout_bytes(format!("{doc:#}\n").as_bytes());
    } else {
        let mut lines = vec![format!("token    {shown}"), format!("source   {source}")];
        match life {
            Some(l) => {
                lines.push(format!(
                    "stored   {} ({} days ago)",
                    date(l.first_stored),
                    l.age_days()
                ));
                let left = l.days_left();
                lines.push(if left >= 0 {
                    format!("expires  {} ({left} days left)", date(l.expires()))
                } else {
                    format!(
                        "expires  {} (EXPIRED {} days ago)",
                        date(l.expires()),
                        l.days_expired()
                    )
                });
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
        if let Some(w) = &warning {
            lines.push(format!("warning  {w}"));
        }
        let text: String = lines
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

#[cfg(test)]
mod tests {
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
        let l = Lifetime {
            first_stored: 0,
            now: 335 * DAY + 1,
        };
        assert_eq!(l.age_days(), 335);
        assert_eq!(l.days_left(), 29);
        assert!(l.warning(STATUS_WARN_DAYS).is_some());
        assert!(l.warning(LAUNCH_WARN_DAYS).is_none());
        let fresh = Lifetime {
            first_stored: 0,
            now: 1,
        };
        assert_eq!(fresh.days_left(), 364);
        assert!(fresh.warning(STATUS_WARN_DAYS).is_none());
        let old = Lifetime {
            first_stored: 0,
            now: 400 * DAY,
        };
        assert!(old.days_left() < 0);
        assert!(old.warning(0).unwrap().contains("expired"));
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
    fn rewrite_keeps_other_lines() {
        let body = "A".repeat(95);
        let t = Token::parse(&format!("sk-ant-oat01-{body}")).unwrap();
        let old = b"# c\r\nFOO=1\r\nexport CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-old\r\nBAR=2";
        let new = rewrite(old, &t).unwrap();
        assert_eq!(
            String::from_utf8(new.0.clone()).unwrap(),
            format!("# c\r\nFOO=1\r\nCLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-{body}\r\nBAR=2")
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
