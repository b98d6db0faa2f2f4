//! Reading one settings file as claude would (symlinks followed, a bounded regular file)
//! and judging it: its findings, or why it is absent, skipped or cannot be judged.

#![forbid(unsafe_code)]

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::layers::{Layer, SettingsFile};
use super::rules::{Finding, NOT_JSON, NOT_OBJECT, Why, judge, parse};
use super::shown;
use crate::caller::CallerEnv;
use crate::error::error_text;

/// A settings file larger than this is refused unread (claude's own are a few KiB).
pub const MAX_SETTINGS: u64 = 1 << 20;
/// One settings file, read and judged.
pub(super) enum Judged {
    /// Read: the document and what in it is refused.
    Doc(Map<String, Value>, Vec<Finding>),
    /// Does not exist.
    Absent,
    /// Skipped: this user cannot read it, nor make it readable (why, for a note).
    Unread(String),
    /// Read, but not a settings document claude would apply (why, for a note).
    NotApplied(String),
    /// Cannot be judged: refused.
    Refused(Finding),
}

/// Judges one settings file as claude would read it (symlinks followed, named): `Ok` with
/// its findings (none when the file does not exist). For callers that hold a settings
/// file of their own to check (a shared home's `settings.json`).
#[must_use]
pub fn judge_file(path: &Path, caller: &CallerEnv) -> Vec<Finding> {
    match read_and_judge(path, caller) {
        Judged::Doc(_, found) => found,
        Judged::Absent | Judged::Unread(_) | Judged::NotApplied(_) => Vec::new(),
        Judged::Refused(finding) => vec![finding],
    }
}

fn read_and_judge(path: &Path, caller: &CallerEnv) -> Judged {
    let target = symlink_target(path);
    let finding = |key: String, why: Why| Finding {
        path: path.to_path_buf(),
        target: target.clone(),
        key,
        why,
    };
    let bytes = match read_bounded(path) {
        Ok(Content::Absent) => return Judged::Absent,
        Ok(Content::Unread(note)) => return Judged::Unread(note),
        Ok(Content::Bytes(b)) => b,
        Err(reason) => {
            return Judged::Refused(finding(String::new(), Why::unjudgeable(reason, caller)));
        }
    };
    match parse(&bytes) {
        Ok(doc) => {
            let found = judge(&doc, caller)
                .into_iter()
                .map(|(k, w)| finding(k, w))
                .collect();
            Judged::Doc(doc, found)
        }
        Err(reason) => Judged::Refused(finding(String::new(), Why::unjudgeable(reason, caller))),
    }
}

/// Reads and judges one layer as claude would take it: a `--settings` JSON given inline
/// from the argument, any file as [`read_and_judge`] reads it, except that a `--settings`
/// file claude would not apply is a note, not a refusal.
pub(super) fn read_layer(file: &SettingsFile, env: &CallerEnv) -> Judged {
    match (&file.inline, file.layer) {
        (Some(json), _) => match parse(json.as_bytes()) {
            Ok(doc) => {
                let found = judge(&doc, env)
                    .into_iter()
                    .map(|(key, why)| Finding {
                        path: file.path.clone(),
                        target: None,
                        key,
                        why,
                    })
                    .collect();
                Judged::Doc(doc, found)
            }
            Err(reason) => Judged::NotApplied(reason),
        },
        // A `--settings` file that is not a JSON object is not applied: claude
        // 2.1.330+ stop with "Invalid or malformed JSON", 2.1.197 goes on without it
        // (measured). Not a refusal: a command that is not claude may take a
        // `--settings` of another format.
        // Nor is a directory (claude: "Cannot use settings file"). A FIFO or a
        // pipe (`--settings <(…)`) is read by claude: refused as unjudgeable.
        (None, Layer::Flag) if std::fs::metadata(&file.path).is_ok_and(|m| m.is_dir()) => {
            Judged::NotApplied("a directory".into())
        }
        (None, Layer::Flag) => match read_and_judge(&file.path, env) {
            Judged::Refused(Finding {
                why: Why::Unjudgeable { reason, .. },
                ..
            }) if reason.starts_with(NOT_JSON) || reason == NOT_OBJECT => {
                Judged::NotApplied(reason)
            }
            other => other,
        },
        (None, _) => read_and_judge(&file.path, env),
    }
}

/// Where a path leads, when a symlink is on the way (the file or a directory above it;
/// the paths judged are built on realpaths, so any difference is a symlink).
fn symlink_target(path: &Path) -> Option<PathBuf> {
    crate::sys::fsutil::realpath(path)
        .ok()
        .filter(|real| real != path)
}

/// What reading a settings file gave.
enum Content {
    Absent,
    /// Not readable by this user, and not this user's to make readable (why).
    Unread(String),
    Bytes(Vec<u8>),
}

/// The file's bytes, or that it does not exist, or that this user can neither read it
/// nor make it readable. Opened non-blocking (a FIFO cannot hang us), checked on the
/// descriptor to be a regular file of at most [`MAX_SETTINGS`] bytes, read with that
/// bound.
fn read_bounded(path: &Path) -> Result<Content, String> {
    let file = match std::fs::File::options()
        .read(true)
        .custom_flags(
            (nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOCTTY)
                .bits(),
        )
        .open(path)
    {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Content::Absent);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return match not_ours_to_read(path) {
                Ok(note) => Ok(Content::Unread(note)),
                Err(whose) => Err(format!("cannot be read: {}{whose}", error_text(&e))),
            };
        }
        Err(e) => return Err(format!("cannot be read: {}", error_text(&e))),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {}", error_text(&e)))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SETTINGS {
        return Err(format!("larger than {MAX_SETTINGS} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {}", error_text(&e)))?;
    if bytes.len() as u64 > MAX_SETTINGS {
        return Err(format!("larger than {MAX_SETTINGS} bytes"));
    }
    Ok(Content::Bytes(bytes))
}

/// For a file this user got `EACCES` opening: `Ok`, why claude, running as the same
/// user, cannot load it either — the file, or a directory on its way, refuses this user
/// and belongs to someone else. `Err`, what to add to the refusal: a file or directory
/// of our own we could chmod (and so could anything claude runs), or nothing known.
fn not_ours_to_read(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Some((blocker, meta, is_file)) = what_refuses(path) else {
        return Err(String::new());
    };
    let which = if is_file {
        "it".to_owned()
    } else {
        format!(
            "the directory {} on its way",
            shown(&blocker.to_string_lossy())
        )
    };
    if meta.uid() == me {
        return Err(format!(
            " ({which} is yours, mode {:04o}: what claude runs could make it readable; fix the mode or remove it)",
            meta.mode() & 0o7777
        ));
    }
    Ok(format!(
        "skipped: {which} (owner uid {}, mode {:04o}) does not let uid {me} read it, and claude, running as uid {me}, cannot load it either",
        meta.uid(),
        meta.mode() & 0o7777
    ))
}

/// Resolves `path` one component at a time, following symlinks as `open` would, up to
/// what refuses this user: the file itself (`true`), or the directory whose entry cannot
/// be looked up (`false`), with its metadata. `None` when something else stops the walk.
fn what_refuses(path: &Path) -> Option<(PathBuf, std::fs::Metadata, bool)> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut pending: Vec<std::ffi::OsString> = absolute
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let meta = std::fs::metadata(&cur).ok()?;
                return Some((cur, meta, false));
            }
            Err(_) => return None,
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                pending.extend(
                    target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(n.to_owned()),
                            Component::ParentDir => Some("..".into()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev(),
                );
            }
            Ok(m) if pending.is_empty() => return Some((next, m, true)),
            Ok(_) => cur = next,
        }
    }
    None
}
