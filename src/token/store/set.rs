//! `claude-iso token set`: the token read without echo (or from stdin), checked, and
//! written atomically with mode 0600 from creation (a replaced file kept aside; only a
//! regular file replaced), then its first-stored date recorded in the metadata.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use serde_json::{Value, json};

use super::{
    Lifetime, MAX_INPUT, META_SUFFIX, STATUS_WARN_DAYS, Secret, TYPICAL_LEN, check_first_stored,
    default_env_file, fingerprint, now, read_regular, with_suffix,
};
use crate::caller::CallerEnv;
use crate::cli::{LaunchArgs, TokenSetArgs};
use crate::config::Config;
use crate::error::{Error, Outcome, Result, error_text};
use crate::layout::TOKEN_VAR;
use crate::report;
use crate::scrub;
use crate::sys::fsutil;
use crate::token::envfile;
use crate::token::{self, Source, Token};

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
        reason: "is not valid UTF-8; give the token printed by `claude setup-token`; nothing was written".into(),
    })?;
    let token = Token::parse(unwrap_line(text)).map_err(|reason| Error::Token {
        source_name: source_name.into(),
        reason: format!("{reason}; nothing was written"),
    })?;
    drop(input);
    store(&config, &path, &token)
}

/// The token in what was given to `token set`: trimmed, and, as a convenience for a line
/// copied from an env file, without `export `, `CLAUDE_CODE_OAUTH_TOKEN=` and quotes
/// around it (the same quote at both ends). Anything else is left for [`Token::parse`]
/// to name.
pub(super) fn unwrap_line(text: &str) -> &str {
    let mut v = text.trim();
    if let Some(rest) = v.strip_prefix("export") {
        if rest.starts_with([' ', '\t']) {
            v = rest.trim_start();
        }
    }
    if let Some(rest) = v.strip_prefix(TOKEN_VAR).and_then(|r| r.strip_prefix('=')) {
        v = rest;
    }
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
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
        return Err(cancelled(
            "nothing was pasted; nothing was written: run it again and paste the token printed by `claude setup-token`",
        ));
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
    // Only a regular file is replaced (and kept aside); anything else in the way of the
    // file or of its metadata is refused before anything is written or moved.
    if let Some(st) = &existing {
        refuse_unless_regular(path, st)?;
    }
    let meta_path = with_suffix(path, META_SUFFIX);
    let meta_name = format!("{name}{META_SUFFIX}");
    if let Some(st) = fsutil::lstat_at(&dir_fd, meta_name.as_str())
        .map_err(|e| file_err(format!("cannot stat {}: {}", meta_path.display(), e.desc())))?
    {
        refuse_meta_unless_regular(&meta_path, &st)?;
    }
    let mut notes = replace(path, dir, &dir_fd, name, existing.as_ref(), token)?;
    // The launcher must read back exactly this token from the file.
    let back = token::read_source(config, &Source::EnvFile(path.to_owned()))?;
    if back != *token {
        return Err(file_err(
            "reads back a different token after writing; check the file".into(),
        ));
    }
    let (life, redated) = record_first_stored(&dir_fd, &meta_name, token).map_err(|e| {
        file_err(format!(
            "cannot record the date in {}: {}",
            meta_path.display(),
            e.desc()
        ))
    })?;
    if let Some(problem) = redated {
        notes.push(format!(
            "{} {problem}; recorded today's date instead",
            meta_path.display()
        ));
    }
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

/// Writes the token file `name` in `dir_fd` (`path` for messages), unless it already
/// holds exactly this: the new text keeps the old file's other lines when the launcher
/// would accept it. Returns the lines to print.
fn replace(
    path: &Path,
    dir: &Path,
    dir_fd: &OwnedFd,
    name: &str,
    existing: Option<&nix::sys::stat::FileStat>,
    token: &Token,
) -> Result<Vec<String>> {
    let file_err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    let other_links = existing.map_or(0, |st| st.st_nlink.saturating_sub(1));
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
        let aside = write_atomic(dir_fd, name, &text.0, existing.is_some())
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
                if kept_lines {
                    " (its other lines are kept in the new file)"
                } else {
                    " (it was not a usable token file, so nothing of it was carried over)"
                }
            ));
        }
        if other_links > 0 {
            // Replaced by rename: only this name gets the new file; another hard link
            // of the old one (never written through) still holds the old token.
            notes.push(format!(
                "note: the old file had {} (a hard link elsewhere), which still holds the old token: only {} was replaced",
                if other_links == 1 {
                    "another name".to_owned()
                } else {
                    format!("{other_links} other names")
                },
                path.display()
            ));
        }
    }
    Ok(notes)
}

/// The metadata next to the token file (`<file>.meta.json`, where `token set` records
/// when each token was first stored) is replaced only when it is a regular file: anything
/// else there is refused, naming that file and how to get it out of the way (it is never
/// written through, nor is the token file's fix given for it).
fn refuse_meta_unless_regular(path: &Path, st: &nix::sys::stat::FileStat) -> Result<()> {
    use nix::sys::stat::SFlag;
    if fsutil::is_type(st, SFlag::S_IFREG) {
        return Ok(());
    }
    let what = if fsutil::is_type(st, SFlag::S_IFLNK) {
        match std::fs::read_link(path) {
            Ok(target) => format!("is a symlink (to {})", target.display()),
            Err(_) => "is a symlink".to_owned(),
        }
    } else {
        format!("is a {}", fsutil::describe_mode(st.st_mode))
    };
    Err(Error::EnvFile {
        path: path.to_owned(),
        reason: format!(
            "{what}, not a regular file; token set records here when each token was first stored, and writes only a regular file of its own: move it away (mv {0} {0}.old), then run token set again",
            path.display()
        ),
    })
}

/// `token set` replaces only a regular file: a directory, a FIFO, a socket, a device
/// node or a symlink (whatever it points to) at `path` is refused with the fix, and
/// nothing is moved. A symlink is not replaced (that would cut the link) nor written
/// through (that would write wherever it points): the fix names its target.
fn refuse_unless_regular(path: &Path, st: &nix::sys::stat::FileStat) -> Result<()> {
    use nix::sys::stat::SFlag;
    if fsutil::is_type(st, SFlag::S_IFREG) {
        return Ok(());
    }
    let reason = if fsutil::is_type(st, SFlag::S_IFLNK) {
        match crate::sys::fsutil::realpath(path) {
            Ok(target) if target.is_file() => format!(
                "is a symlink to {0}; token set replaces only a regular file: to update the file it points to, run: claude-iso token set --env-file {0}",
                target.display()
            ),
            Ok(target) => format!(
                "is a symlink to {} (not a regular file); token set replaces only a regular file: remove the link, or pass --env-file with another path",
                target.display()
            ),
            Err(_) => "is a symlink that leads nowhere; token set replaces only a regular file: remove the link, or pass --env-file with another path".to_owned(),
        }
    } else if fsutil::is_type(st, SFlag::S_IFDIR) {
        format!(
            "is a directory; token set replaces only a regular file: to store the token inside it, pass --env-file {}",
            path.join("token.env").display()
        )
    } else {
        format!(
            "is a {}, not a regular file; token set replaces only a regular file: pass --env-file with the path of a token file",
            fsutil::describe_mode(st.st_mode)
        )
    };
    Err(Error::EnvFile {
        path: path.to_owned(),
        reason,
    })
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
pub(super) fn rewrite(old: &[u8], token: &Token) -> Option<Secret> {
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
            // Keep what comes before the name (indentation, `export `): the file may be
            // sourced by a shell that needs the variable exported.
            let before = line
                .windows(TOKEN_VAR.len() + 1)
                .position(|w| w.strip_suffix(b"=") == Some(TOKEN_VAR.as_bytes()))
                .map_or(&[][..], |n| &line[..n]);
            out.0.extend_from_slice(before);
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
            .map_err(|e| {
                dir_err(format!(
                    "cannot create: {}; pass --env-file with a path in a directory you can write",
                    error_text(&e)
                ))
            })?;
    }
    open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        dir_err(format!(
            "cannot open the directory: {}; pass --env-file with a path in a directory you can write",
            e.desc()
        ))
    })
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

/// Adds this token's first-stored date to the metadata file `meta_name` unless a
/// plausible one is there. A date that cannot be right (see [`check_first_stored`]) is
/// replaced by now; the problem it had is returned.
fn record_first_stored(
    dir_fd: &OwnedFd,
    meta_name: &str,
    token: &Token,
) -> nix::Result<(Lifetime, Option<String>)> {
    let fp = fingerprint(token);
    let now = now();
    let old = read_regular(Some(dir_fd), Path::new(meta_name));
    let parsed: Option<Value> = old
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok())
        .filter(|d: &Value| d.get("tokens").is_some_and(Value::is_object));
    let mut redated = None;
    if let Some(entry) = parsed.as_ref().and_then(|d| d["tokens"].get(&fp)) {
        match check_first_stored(&entry["first_stored"], now) {
            Ok(first_stored) => return Ok((Lifetime { first_stored, now }, None)),
            Err(problem) => redated = Some(problem),
        }
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
    write_atomic(dir_fd, meta_name, &text, unreadable)?;
    Ok((
        Lifetime {
            first_stored: now,
            now,
        },
        redated,
    ))
}
