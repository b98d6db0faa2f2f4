//! The setup-token: where it comes from, how it is checked, and how it is shown.
//!
//! A [`Token`] never prints its value: `Debug` and `Display` show the public prefix
//! (`sk-ant-oat01-`) and the length only.

#![forbid(unsafe_code)]

pub mod envfile;
pub mod pipe;
pub mod store;

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::{CREDENTIAL_NAME, TOKEN_VAR};
use crate::scrub;

/// Largest env file we read; a token file is a few hundred bytes.
pub const MAX_ENV_FILE: u64 = 64 * 1024;

const SETUP_PREFIX: &str = "sk-ant-oat";

/// The shortest token accepted. Every setup-token measured so far (`claude setup-token`,
/// 2025–2026) is 108 characters: `sk-ant-oat01-` and 95 of URL-safe base64. 80 leaves
/// room for a format change (other tools that check these tokens use the same floor)
/// while a token cut short in copying, the usual mistake, is caught.
pub const MIN_TOKEN_LEN: usize = 80;

/// The longest token accepted: below two measured tokens (216), so a double paste is
/// caught by its length too, and almost twice the measured 108 for a format change.
pub const MAX_TOKEN_LEN: usize = 200;

/// A validated setup-token (`sk-ant-oat` + two digits + `-` + URL-safe base64).
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Checks the shape of a token. The error says what is wrong, never the value.
    ///
    /// # Errors
    /// A static description of the problem: empty, an API key, a refresh token,
    /// whitespace, or not a setup-token.
    pub fn parse(value: &str) -> Result<Token, &'static str> {
        if value.is_empty() {
            return Err("is empty; set it to the token printed by `claude setup-token`");
        }
        if value.starts_with("sk-ant-api") {
            return Err(
                "holds an API key (sk-ant-api…), not a setup-token; run `claude setup-token` and use the sk-ant-oat01-… token it prints",
            );
        }
        if value.starts_with("sk-ant-ort") {
            return Err(
                "holds a refresh token (sk-ant-ort…), which rotates and must not be shared; run `claude setup-token` and use the sk-ant-oat01-… token it prints",
            );
        }
        // `sk-ant-` twice: the usual double paste. (The URL-safe base64 body of one
        // token holds it by chance with odds of ~2^-42.)
        let bytes = value.as_bytes();
        let mut at = bytes
            .windows(7)
            .enumerate()
            .filter(|(_, w)| *w == b"sk-ant-");
        let first = at.next().map(|(i, _)| i);
        if at.next().is_some() {
            return Err(
                "looks like two tokens pasted together (it holds `sk-ant-` twice); paste the token printed by `claude setup-token` once",
            );
        }
        if let Some(start) = first.filter(|i| *i > 0) {
            return Err(text_before(&bytes[..start]));
        }
        if value.chars().any(char::is_whitespace) {
            return Err(
                "contains whitespace; a setup-token is one unbroken word: copy it again without spaces or line breaks",
            );
        }
        let shape_ok = value.starts_with(SETUP_PREFIX)
            && bytes.len() > SETUP_PREFIX.len() + 3
            && bytes[SETUP_PREFIX.len()].is_ascii_digit()
            && bytes[SETUP_PREFIX.len() + 1].is_ascii_digit()
            && bytes[SETUP_PREFIX.len() + 2] == b'-'
            && bytes[SETUP_PREFIX.len() + 3..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        if !shape_ok {
            return Err(
                "does not look like a setup-token (expected sk-ant-oat01- followed by URL-safe base64); copy the token printed by `claude setup-token` again",
            );
        }
        if value.len() < MIN_TOKEN_LEN {
            return Err(
                "looks truncated: it is shorter than any setup-token (those are about 108 chars); copy the whole token printed by `claude setup-token` again",
            );
        }
        if value.len() > MAX_TOKEN_LEN {
            return Err(
                "is longer than any setup-token (those are about 108 chars, at most 200 accepted): something was pasted with it; copy only the token printed by `claude setup-token`",
            );
        }
        Ok(Token(value.to_owned()))
    }

    /// The value, for the child's environment only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `sk-ant-oat01-… (108 chars)`: what may be shown of a token.
    #[must_use]
    pub fn redacted(&self) -> String {
        format!(
            "{}… ({} chars)",
            &self.0[..SETUP_PREFIX.len() + 3],
            self.0.len()
        )
    }
}

/// What is wrong with a value that holds one `sk-ant-` after `before` (never shown: it
/// may be a piece of something else secret).
fn text_before(before: &[u8]) -> &'static str {
    if before.iter().all(|b| matches!(b, b'"' | b'\'')) {
        "is in quotes; the value is the token alone: remove the quotes around it (and anything else before sk-ant-)"
    } else if before.contains(&b'=') {
        "holds an assignment (NAME=) before the token; the value is the token alone: remove what comes before sk-ant-"
    } else {
        "has text before the token; a setup-token starts with sk-ant-oat01-: remove what comes before sk-ant-"
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.redacted())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is freed.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// The first of claude-iso's own arguments (those before `--`) that holds a token
/// (`claude-iso token set "$TOKEN"`, `claude-iso "$TOKEN"`, `--home "$TOKEN"`), as the
/// error that refuses the run before anything is created: the token is in the shell's
/// history by now, and was in `ps` for everyone while we ran.
#[must_use]
pub fn in_arguments(args: &[std::ffi::OsString]) -> Option<Error> {
    let at = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        // A plain search: arguments are short, and this runs at every start (memchr's
        // would first probe the CPU's features).
        .position(|a| a.as_encoded_bytes().windows(7).any(|w| w == b"sk-ant-"))?;
    Some(Error::Usage(format!(
        "argument {} is a token: it is now in your shell history, and other users could see it in `ps`; nothing was done. Store it with `claude-iso token set` (it reads the token without echo), then delete it from your history (bash: `history -d OFFSET`; or edit ~/.bash_history); if others share this machine, make a new one with `claude setup-token`",
        at + 1
    )))
}

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An env file (`--env-file`, `CLAUDE_ISO_ENV_FILE`, or a default path).
    EnvFile(PathBuf),
    /// `$CREDENTIALS_DIRECTORY/claude-oauth-token` (systemd `LoadCredential=`).
    CredentialsDirectory(PathBuf),
    /// `CLAUDE_CODE_OAUTH_TOKEN` already in the caller's environment.
    Environment,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::EnvFile(p) => write!(f, "{}", p.display()),
            Source::CredentialsDirectory(p) => {
                write!(f, "credentials-directory ({})", p.display())
            }
            Source::Environment => write!(f, "environment ({TOKEN_VAR})"),
        }
    }
}

/// The places a token may come from, in the order they are tried.
#[must_use]
pub fn candidates(config: &Config) -> Vec<Source> {
    if let Some(path) = &config.env_file {
        return vec![Source::EnvFile(path.clone())];
    }
    default_candidates(config)
}

/// The default places, in order, used when no env file is named.
#[must_use]
pub fn default_candidates(config: &Config) -> Vec<Source> {
    let mut out = Vec::new();
    if let Some(dir) = config.env.absolute_path("CREDENTIALS_DIRECTORY") {
        out.push(Source::CredentialsDirectory(dir.join(CREDENTIAL_NAME)));
    }
    out.push(Source::Environment);
    out.push(Source::EnvFile(
        config
            .xdg_config_home()
            .join("claude-iso")
            .join("token.env"),
    ));
    out.push(Source::EnvFile(
        config
            .real_home()
            .join(".config/claude-auth-sync/claude-oauth.env"),
    ));
    out
}

/// Whether a source is there to be read. An explicit `--env-file` always is: a missing
/// one is an error, not a reason to look elsewhere.
#[must_use]
pub fn source_exists(config: &Config, source: &Source) -> bool {
    match source {
        Source::EnvFile(p) if config.env_file.as_ref() == Some(p) => true,
        // A file that cannot even be looked at (a directory above it not searchable by
        // us) is there as far as we can tell: reading it says why, not "no token found".
        Source::EnvFile(p) | Source::CredentialsDirectory(p) => {
            match std::fs::symlink_metadata(p) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
            }
        }
        Source::Environment => config.env.get(TOKEN_VAR).is_some_and(|v| !v.is_empty()),
    }
}

/// Finds the first existing token source and reads and validates its token.
///
/// # Errors
/// No source exists, or the first one that exists is unreadable, unsafe or malformed.
pub fn load(config: &Config) -> Result<(Token, Source)> {
    let candidates = candidates(config);
    let Some(source) = candidates.iter().find(|s| source_exists(config, s)) else {
        let looked = candidates
            .iter()
            .map(|s| match s {
                Source::Environment => format!("${TOKEN_VAR}"),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::NoToken {
            looked,
            next: no_token_next_step(config),
        });
    };
    let token = read_source(config, source)?;
    Ok((token, source.clone()))
}

/// What to do without a token: store the one `claude setup-token` prints, after
/// installing Claude Code when `claude` is not on `PATH` (a fresh machine).
fn no_token_next_step(config: &Config) -> String {
    let path_var = config
        .path_var()
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let has_claude = which::which_in("claude", Some(path_var), &config.start_dir).is_ok();
    if has_claude {
        "run: claude-iso token set (it stores the token `claude setup-token` prints)".into()
    } else {
        "claude is not on PATH either: install Claude Code (npm install -g @anthropic-ai/claude-code), make a token with `claude setup-token`, then run: claude-iso token set".into()
    }
}

/// Reads and validates the token of one source.
///
/// # Errors
/// As [`load`].
pub fn read_source(config: &Config, source: &Source) -> Result<Token> {
    match source {
        Source::Environment => {
            let value = config.env.get(TOKEN_VAR).unwrap_or_default();
            let value = std::str::from_utf8(value.as_bytes()).map_err(|_| Error::Token {
                source_name: format!("${TOKEN_VAR}"),
                reason: "is not valid UTF-8; set it to the token printed by `claude setup-token`"
                    .into(),
            })?;
            Token::parse(value).map_err(|reason| Error::Token {
                source_name: format!("${TOKEN_VAR}"),
                reason: reason.into(),
            })
        }
        Source::CredentialsDirectory(path) | Source::EnvFile(path) => {
            let bytes = read_private_file(path, credentials_directory(config))?;
            // A bare token holds no '=' (URL-safe base64 without padding), so any '='
            // means the file was written in env-file form. A token alone is what a
            // systemd credential or a Kubernetes Secret holds: taken as it is.
            if bytes.contains(&b'=') {
                return token_from_env_file(path, &bytes);
            }
            bare_token(path, &bytes)
        }
    }
}

/// The token of a file that holds the token alone (no `=`), blank lines and `#`
/// comments aside.
fn bare_token(path: &Path, bytes: &[u8]) -> Result<Token> {
    let err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    let way_out = format!(
        "write {TOKEN_VAR}=<token printed by `claude setup-token`>, or run `claude-iso token set`"
    );
    let text = std::str::from_utf8(bytes).map_err(|_| {
        err(format!(
            "is not valid UTF-8 and holds no {TOKEN_VAR}= line; {way_out}"
        ))
    })?;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_matches([' ', '\t', '\r']))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match lines.as_slice() {
        [one] if one.starts_with("sk-ant-") => {
            Token::parse(one).map_err(|reason| err(format!("the token {reason}")))
        }
        [] => Err(err(format!(
            "holds no token and no {TOKEN_VAR}= line; {way_out}"
        ))),
        _ => Err(err(format!(
            "holds no {TOKEN_VAR}= line and is not a token alone; {way_out}"
        ))),
    }
}

/// systemd's `$CREDENTIALS_DIRECTORY`, if set (absolute).
#[must_use]
pub fn credentials_directory(config: &Config) -> Option<&Path> {
    config.env.absolute_path("CREDENTIALS_DIRECTORY")
}

/// Picks `CLAUDE_CODE_OAUTH_TOKEN` out of an env file's bytes.
fn token_from_env_file(path: &Path, bytes: &[u8]) -> Result<Token> {
    let line_err = |line, reason: String| Error::EnvFileLine {
        path: path.to_owned(),
        line,
        reason,
    };
    let assignments = envfile::parse(bytes).map_err(|e| line_err(e.line, e.reason))?;
    let mut found: Option<&envfile::Assignment> = None;
    for a in &assignments {
        if a.key != TOKEN_VAR && scrub::is_credential(OsStr::new(&a.key)) {
            return Err(line_err(
                a.line,
                format!(
                    "sets {}, which claude-iso removes because it would outrank or relocate the token; delete that line",
                    a.key
                ),
            ));
        }
        if a.key == TOKEN_VAR {
            if let Some(first) = found {
                return Err(line_err(
                    a.line,
                    format!(
                        "{TOKEN_VAR} is set twice (lines {} and {}); keep one",
                        first.line, a.line
                    ),
                ));
            }
            found = Some(a);
        }
    }
    let Some(a) = found else {
        return Err(Error::EnvFile {
            path: path.to_owned(),
            reason: format!(
                "no {TOKEN_VAR}= line; add {TOKEN_VAR}=<token printed by `claude setup-token`>"
            ),
        });
    };
    Token::parse(&a.value).map_err(|reason| line_err(a.line, format!("{TOKEN_VAR} {reason}")))
}

/// Why a token file we may not open cannot be read: its owner and mode (or the
/// directory in the way), and the way out.
fn unreadable(path: &Path, e: &std::io::Error) -> String {
    let me = nix::unistd::geteuid();
    let retry = format!(
        "or store the token anew with: claude-iso token set --env-file {}",
        path.display()
    );
    match std::fs::metadata(path) {
        Ok(meta) => format!(
            "cannot open: {} (owner {}, mode {:04o}; you are {}); make it yours and private: chown {} {p} && chmod 600 {p} (as its owner or root), {retry}",
            crate::error::error_text(e),
            user_name(meta.uid()),
            meta.mode() & 0o7777,
            user_name(me.as_raw()),
            login(me.as_raw()),
            p = path.display(),
        ),
        Err(_) => format!(
            "cannot open: {}: a directory above it is not searchable by you ({}); let yourself in (chmod u+x on that directory, as its owner), {retry}",
            crate::error::error_text(e),
            user_name(me.as_raw()),
        ),
    }
}

/// A uid as `name (uid N)`, or `uid N` when it has no name.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// A uid as chown(1) takes it: the name, or the number when it has none.
fn login(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Opens a secret file once and checks what was opened, not the path.
///
/// Non-blocking open so a FIFO cannot hang us; regular file only; owned by us or root
/// and without group/other bits (ssh's "UNPROTECTED PRIVATE KEY FILE" rule). A file
/// that really lies in `exempt_under`, systemd's credentials directory, is private by
/// construction (0400 plus an ACL): its mode is not held against it, its owner is.
///
/// # Errors
/// Cannot open, not a regular file, foreign owner, loose mode, or larger than 64 KiB.
pub fn read_private_file(path: &Path, exempt_under: Option<&Path>) -> Result<Vec<u8>> {
    let err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    let (mut file, meta) = open_regular(path)?;
    check_private(path, &file, &meta, exempt_under)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).min(4096));
    (&mut file)
        .take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            err(format!(
                "cannot read: {}; make it a readable token file of yours",
                crate::error::error_text(&e)
            ))
        })?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(err(format!(
            "is larger than {MAX_ENV_FILE} bytes (64 KiB); a token file is a few hundred: {TOO_BIG_FIX}"
        )));
    }
    Ok(bytes)
}

/// Opens a token file for reading, refusing anything but a regular file (looked at
/// before it is opened, and checked again once open).
fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata)> {
    let err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    // Looked at before it is opened: opening a device node can act (a tape rewinds, a
    // watchdog starts). The opened file is checked again below.
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.file_type().is_file() {
            return Err(not_regular(path, meta.mode()));
        }
    }
    let file = File::options()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| {
            err(match e.kind() {
                std::io::ErrorKind::NotFound => format!(
                    "cannot open: {}; store a token there with: claude-iso token set --env-file {}",
                    crate::error::error_text(&e),
                    path.display()
                ),
                std::io::ErrorKind::PermissionDenied => unreadable(path, &e),
                _ => format!(
                    "cannot open: {}; make it a readable token file of yours, or store the token anew with: claude-iso token set --env-file {}",
                    crate::error::error_text(&e),
                    path.display()
                ),
            })
        })?;
    let meta = file.metadata().map_err(|e| {
        err(format!(
            "cannot stat: {}; make it a readable token file of yours",
            crate::error::error_text(&e)
        ))
    })?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, meta.mode()));
    }
    Ok((file, meta))
}

/// The token file is the user's (or root's), private to them unless `exempt_under` holds
/// it as systemd built it, and not larger than a token file can be.
fn check_private(
    path: &Path,
    file: &File,
    meta: &std::fs::Metadata,
    exempt_under: Option<&Path>,
) -> Result<()> {
    let err = |reason: String| Error::EnvFile {
        path: path.to_owned(),
        reason,
    };
    // The empty read-only stand-in the mask of an outer claude-iso puts over a token file
    // (a nested run given the same file): say that, not "fix its mode".
    if meta.len() == 0
        && meta.mode() & 0o7777 == 0o444
        && nix::sys::statfs::fstatfs(file)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
    {
        return Err(err(
            "reads as empty here: the claude-iso this runs under masks it; give this one a token of its own with --env-file FILE (a file outside the masked paths), or run the outer one with --token-via env and this one with CLAUDE_ISO_ENV_FILE and CREDENTIALS_DIRECTORY unset, so that it takes CLAUDE_CODE_OAUTH_TOKEN"
                .into(),
        ));
    }
    let check_private = !exempt_under.is_some_and(|dir| built_by_systemd(file, meta, dir));
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return Err(err(format!(
            "is owned by uid {}, not by you (uid {me}) or root; use a token file of your own",
            meta.uid()
        )));
    }
    if check_private {
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(err(format!(
                "UNPROTECTED: mode {mode:04o} lets other users read the token; run: chmod 600 {}",
                path.display()
            )));
        }
    }
    if meta.len() > MAX_ENV_FILE {
        return Err(err(format!(
            "is {} bytes; a token file is at most {MAX_ENV_FILE} bytes (64 KiB): {}",
            meta.len(),
            TOO_BIG_FIX
        )));
    }
    Ok(())
}

/// The fix for a "token file" too large to be one.
const TOO_BIG_FIX: &str = "this is not a token file; point claude-iso at the file holding CLAUDE_CODE_OAUTH_TOKEN= (--env-file), or store the token anew with: claude-iso token set";

fn not_regular(path: &Path, mode: u32) -> Error {
    Error::EnvFile {
        path: path.to_owned(),
        reason: format!(
            "is a {}, not a regular file; point --env-file at the token file",
            crate::sys::fsutil::describe_mode(mode)
        ),
    }
}

/// Whether an opened secret file is one systemd's `LoadCredential=` made, whose mode
/// (0400/0440 plus an ACL) is private by construction: it lies directly in
/// `$CREDENTIALS_DIRECTORY` as opened (judged on the opened file's real path, not on what
/// the path says), that directory is owned by us or root with no permission bits for
/// group or others (systemd makes it 0500), and the file is regular without write bits.
/// Anything else gets the normal owner/mode rules: `CREDENTIALS_DIRECTORY=/` exempts
/// nothing.
fn built_by_systemd(file: &File, meta: &std::fs::Metadata, dir: &Path) -> bool {
    let me = nix::unistd::geteuid().as_raw();
    let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
        return false;
    };
    let Ok(dir_real) = crate::sys::fsutil::realpath(dir) else {
        return false;
    };
    let Ok(dir_meta) = std::fs::metadata(&dir_real) else {
        return false;
    };
    real.parent() == Some(dir_real.as_path())
        && dir_meta.is_dir()
        && (dir_meta.uid() == me || dir_meta.uid() == 0)
        && dir_meta.mode() & 0o077 == 0
        && meta.file_type().is_file()
        && meta.mode() & 0o222 == 0
}

fn libc_flags() -> i32 {
    (nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC)
        .bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sk-ant-oat01-AbC_dEf-123HLxDsCxqjBLd3qbJskH53rGTD-2U3OpSH5r44wLzwTGV6HJYq-EEyUqj37Xa2fCs_4Gu0GSzVrE_BfeTRxAA";

    #[test]
    fn shapes() {
        assert!(Token::parse(GOOD).is_ok());
        assert!(Token::parse(&format!("sk-ant-oat99-{}", "x".repeat(95))).is_ok());
        // Truncated: its own message; the floor leaves room for a format change.
        assert!(Token::parse(&GOOD[..MIN_TOKEN_LEN]).is_ok());
        let cut = Token::parse(&GOOD[..MIN_TOKEN_LEN - 1]).unwrap_err();
        assert!(cut.contains("looks truncated"), "{cut}");
        assert!(!cut.contains(&GOOD[13..30]), "{cut}");
        for bad in [
            "",
            "sk-ant-api03-abc",
            "sk-ant-ort01-abc",
            "sk-ant-oat01-",
            "sk-ant-oat1-abc",
            "sk-ant-oat01-ab c",
            "sk-ant-oat01-ab+c",
            "sk-ant-oat01-ab/c",
            "sk-ant-oat01-ab=",
            "SK-ANT-OAT01-abc",
            "hello",
        ] {
            let reason = Token::parse(bad).expect_err(bad);
            if bad.len() > 13 {
                assert!(!reason.contains(&bad[13..]), "{reason}");
            }
        }
        // A double paste, with or without a separator, and anything overlong.
        for doubled in [
            format!("{GOOD}{GOOD}"),
            format!("{GOOD} {GOOD}"),
            format!("{GOOD}\n{GOOD}"),
            format!("{}{GOOD}", &GOOD[..90]),
        ] {
            let e = Token::parse(&doubled).unwrap_err();
            assert!(e.contains("two tokens pasted together"), "{e}");
        }
        // `sk-ant-` once, after something else: that text is named, not a double paste.
        for (prefix, suffix, needle) in [
            ("CLAUDE_CODE_OAUTH_TOKEN=", "", "assignment (NAME=)"),
            ("export CLAUDE_CODE_OAUTH_TOKEN=", "", "assignment (NAME=)"),
            ("\"", "\"", "in quotes"),
            ("'", "", "in quotes"),
            ("Bearer ", "", "text before the token"),
            ("x", "", "text before the token"),
        ] {
            let e = Token::parse(&format!("{prefix}{GOOD}{suffix}")).unwrap_err();
            assert!(e.contains(needle) && e.contains("before sk-ant-"), "{e}");
            assert!(!e.contains("two tokens"), "{e}");
        }
        let e = Token::parse(&format!("x{GOOD}{GOOD}")).unwrap_err();
        assert!(e.contains("two tokens"), "{e}");
        let longest = format!("sk-ant-oat01-{}", "x".repeat(MAX_TOKEN_LEN - 13));
        assert!(Token::parse(&longest).is_ok());
        let e = Token::parse(&format!("{longest}x")).unwrap_err();
        assert!(e.contains("longer than any setup-token"), "{e}");
        assert!(
            Token::parse("é sk-ant-").is_err(),
            "no panic on a multibyte start"
        );
        assert!(
            Token::parse("sk-ant-api03-x")
                .unwrap_err()
                .contains("API key")
        );
        assert!(
            Token::parse("sk-ant-ort01-x")
                .unwrap_err()
                .contains("refresh token")
        );
    }

    #[test]
    fn never_shown() {
        let t = Token::parse(GOOD).unwrap();
        for shown in [format!("{t}"), format!("{t:?}"), t.redacted()] {
            assert!(!shown.contains("AbC"), "{shown}");
            assert!(shown.contains("sk-ant-oat01-"));
            assert!(shown.contains(&GOOD.len().to_string()));
        }
    }

    #[test]
    fn env_file_token() {
        let p = Path::new("/x/token.env");
        let t = token_from_env_file(
            p,
            format!("# c\nexport {TOKEN_VAR}=\"{GOOD}\"\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(t.expose(), GOOD);
        let e = token_from_env_file(
            p,
            format!("{TOKEN_VAR}={GOOD}\n{TOKEN_VAR}={GOOD}").as_bytes(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lines 1 and 2") && !e.contains("AbC"), "{e}");
        let e = token_from_env_file(p, b"ANTHROPIC_API_KEY=sk-ant-api03-zzz\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1:") && e.contains("ANTHROPIC_API_KEY") && !e.contains("zzz"));
        let e = token_from_env_file(p, b"OTHER=1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no CLAUDE_CODE_OAUTH_TOKEN"), "{e}");
    }
}
