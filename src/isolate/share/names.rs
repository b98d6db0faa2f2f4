//! What may be shared and how a share is named: the `default` set, the paths and file
//! names never shared (credentials, claude-iso's own), and the `--share` values turned
//! into (source, destination) pairs. Pure: touches no file.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::layout::{CLAUDE_JSON, CREDENTIALS, DEVICE_KEYS, OWN_PREFIX};
use crate::sys::fsutil::aside_tag;

/// The value of `--share` that stands for [`DEFAULT_SET`].
pub const DEFAULT: &str = "default";

/// `--share default`, relative to the real home (`.config/git` is taken from
/// `$XDG_CONFIG_HOME/git` when that is set, as git does).
pub const DEFAULT_SET: &[&str] = &[
    ".claude/CLAUDE.md",
    ".claude/agents",
    ".claude/commands",
    ".claude/skills",
    ".claude/output-styles",
    ".claude/keybindings.json",
    ".claude/settings.json",
    ".gitconfig",
    ".config/git",
];

/// Paths (relative to the real home) that are never shared, nor anything inside them,
/// nor anything that contains them: credentials of claude and of the tools it runs, and
/// claude-iso's own token files.
pub const REFUSED: &[&str] = &[
    ".claude.json",
    ".claude/.credentials.json",
    ".claude/.device-keys.json",
    ".claude/backups",
    ".claude/remote",
    ".config/anthropic",
    ".config/claude-iso",
    ".config/claude-auth-sync",
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".ssh",
];

/// What a file of this name is, when it is a credential by its name alone: refused
/// wherever it appears (named, inside a shared directory, or where a link leads), in
/// every home. Copies count: `.credentials.json.quarantined-…` (moved out of a scratch
/// home), `token.env.replaced-…` (kept by `token set`, valid until it expires), a
/// `.credentials.json.bak` of the user's.
pub(super) fn credential_name(name: &OsStr) -> Option<&'static str> {
    let b = name.as_bytes();
    let tag = name.to_str().and_then(aside_tag);
    if tag == Some("quarantined") {
        Some("a credentials file claude-iso quarantined out of a scratch home")
    } else if tag == Some("replaced") && !b.starts_with(CLAUDE_JSON.as_bytes()) {
        Some("a token file `token set` replaced, valid until it expires")
    } else if b.starts_with(CREDENTIALS.as_bytes()) || b.starts_with(DEVICE_KEYS.as_bytes()) {
        Some("a claude credentials file")
    } else if b.starts_with(CLAUDE_JSON.as_bytes()) {
        Some("claude's account file")
    } else {
        None
    }
}

/// claude-iso's own names (`.claude-iso.lock`, `.claude-iso.shared`, their temp files):
/// refused at any depth of a share. At the top they are the scratch home's own; deeper, a
/// directory holding one is (part of) a scratch home, never shared.
fn own_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(OWN_PREFIX.as_bytes())
}

/// Why an entry of a shared directory may not come in by its name, if it may not.
pub(super) fn entry_refusal(name: &OsStr) -> Option<String> {
    if let Some(what) = credential_name(name) {
        return Some(format!(
            "is {what}; it is never shared: move it out of the shared directory"
        ));
    }
    own_name(name).then(|| own_name_refusal(name))
}

fn own_name_refusal(name: &OsStr) -> String {
    format!(
        "{OWN_PREFIX}* names are claude-iso's own (a scratch home's lock, the record of shared copies): {} is never shared, at any depth; rename or move it, or stop sharing what holds it",
        name.to_string_lossy()
    )
}

/// Settings files claude applies; each one carried in is judged like a project's.
const SETTINGS_NAMES: &[&str] = &[
    "settings.json",
    "settings.local.json",
    "cowork_settings.json",
];

pub(super) fn is_settings(name: Option<&OsStr>) -> bool {
    name.is_some_and(|n| SETTINGS_NAMES.iter().any(|s| n == *s))
}

/// One thing to share: `source` (absolute, in the real home) seen at `dest` (relative to
/// the scratch home).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub source: PathBuf,
    pub dest: PathBuf,
    /// Named on the command line (a missing one is an error), not from `default`.
    pub explicit: bool,
}

pub(super) fn refuse(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Usage(format!("--share {what}: {reason}"))
}

/// Turns the `--share` values into what to share. Pure: touches no file.
///
/// A value is `default` or a path relative to the real home (`~/` and an absolute path
/// inside the real home are accepted too).
///
/// # Errors
/// A path outside the real home, with `..`, the home itself, or a refused one (125).
pub fn plan(real_home: &Path, xdg_config: &Path, requests: &[OsString]) -> Result<Vec<Share>> {
    let mut out: Vec<Share> = Vec::new();
    let mut push = |share: Share| {
        if let Some(old) = out.iter_mut().find(|s| s.dest == share.dest) {
            old.explicit |= share.explicit;
        } else {
            out.push(share);
        }
    };
    for request in requests {
        if request == DEFAULT {
            for rel in DEFAULT_SET {
                let source = match rel.strip_prefix(".config/") {
                    Some(tail) => xdg_config.join(tail),
                    None => real_home.join(rel),
                };
                push(Share {
                    source,
                    dest: PathBuf::from(rel),
                    explicit: false,
                });
            }
            continue;
        }
        let clean = home_relative(real_home, request)?;
        push(Share {
            source: real_home.join(&clean),
            dest: clean,
            explicit: true,
        });
    }
    refuse_nested(&out)?;
    Ok(out)
}

/// A `--share` path value (`~/…`, absolute inside the real home, or relative to it) as a
/// clean path relative to the real home, refused when it leaves the home, is the home
/// itself, or names or holds what is never shared.
fn home_relative(real_home: &Path, request: &OsStr) -> Result<PathBuf> {
    let shown = request.to_string_lossy();
    let path = Path::new(request);
    let rel = if let Ok(tail) = path.strip_prefix("~") {
        tail.to_owned()
    } else if path.is_absolute() {
        path.strip_prefix(real_home)
            .map_err(|_| {
                refuse(
                    &shown,
                    format!(
                        "is not inside your home {}; only your own files can be shared",
                        real_home.display()
                    ),
                )
            })?
            .to_owned()
    } else {
        path.to_owned()
    };
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            _ => return Err(refuse(&shown, "use a path inside your home, without '..'")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(refuse(
            &shown,
            "that is your whole home; name what to share (e.g. .claude/CLAUDE.md) or 'default'",
        ));
    }
    if let Some(own) = clean.components().find_map(|c| match c {
        Component::Normal(n) if own_name(n) => Some(n),
        _ => None,
    }) {
        return Err(refuse(&shown, own_name_refusal(own)));
    }
    if let Some(why) = refused(&clean) {
        return Err(refuse(&shown, why));
    }
    Ok(clean)
}

/// Refuses one share inside another (`--share .claude/agents --share
/// .claude/agents/a.md`, or `default` and a file it already carries): two copies would
/// claim one place.
fn refuse_nested(shares: &[Share]) -> Result<()> {
    for inner in shares {
        if let Some(outer) = shares
            .iter()
            .find(|o| o.dest != inner.dest && inner.dest.starts_with(&o.dest))
        {
            return Err(refuse(
                &inner.dest.to_string_lossy(),
                format!(
                    "is inside {}, which is shared already{}; share one or the other",
                    outer.dest.display(),
                    if outer.explicit { "" } else { " (by default)" }
                ),
            ));
        }
    }
    Ok(())
}

/// Why a path relative to the home may not be shared, if it may not.
#[must_use]
pub fn refused(rel: &Path) -> Option<String> {
    if let Some((name, what)) = rel.components().find_map(|c| match c {
        Component::Normal(n) => credential_name(n).map(|w| (n, w)),
        _ => None,
    }) {
        return Some(format!(
            "{} is {what}; it is never shared",
            name.to_string_lossy()
        ));
    }
    for r in REFUSED {
        let r = Path::new(r);
        if rel.starts_with(r) {
            return Some(format!(
                "{} holds credentials; it is never shared",
                r.display()
            ));
        }
        if r.starts_with(rel) {
            return Some(format!(
                "contains {}, which holds credentials; share the parts you need instead (e.g. --share default)",
                r.display()
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn default_set_and_paths() {
        let home = Path::new("/h");
        let p = plan(
            home,
            Path::new("/x/cfg"),
            &os(&["default", "~/.claude/CLAUDE.md", "/h/notes"]),
        )
        .unwrap();
        assert_eq!(p.len(), DEFAULT_SET.len() + 1);
        assert!(
            p.iter()
                .any(|s| s.dest == Path::new(".config/git") && s.source == Path::new("/x/cfg/git"))
        );
        let md = p
            .iter()
            .find(|s| s.dest == Path::new(".claude/CLAUDE.md"))
            .unwrap();
        assert!(md.explicit);
        assert!(p.iter().any(|s| s.dest == Path::new("notes") && s.explicit));
    }

    #[test]
    fn credential_names_and_their_copies() {
        for (name, what) in [
            (".credentials.json", "claude credentials"),
            (".credentials.json.bak", "claude credentials"),
            (".credentials.json.quarantined-1700000000-0", "quarantined"),
            (".device-keys.json", "claude credentials"),
            (".device-keys.json~", "claude credentials"),
            (".claude.json", "account"),
            (".claude.json.replaced-1700000000-0", "account"),
            ("token.env.replaced-1700000000-12", "replaced"),
            ("anything.quarantined-1-1", "quarantined"),
        ] {
            let got = credential_name(OsStr::new(name)).unwrap_or_default();
            assert!(got.contains(what), "{name}: {got:?}");
        }
        for name in [
            "credentials.json",
            "CLAUDE.md",
            "token.env.meta.json",
            "notes.unshared-1700000000-1",
            "x.replaced-soon",
        ] {
            assert_eq!(credential_name(OsStr::new(name)), None, "{name}");
        }
    }

    #[test]
    fn credentials_are_refused() {
        let home = Path::new("/h");
        for bad in [
            ".claude/.credentials.json",
            "~/.claude/.credentials.json",
            "/h/.claude/.credentials.json",
            ".claude/.device-keys.json",
            ".claude.json",
            ".claude.json.backup",
            ".claude",
            ".config",
            ".config/anthropic",
            ".config/anthropic/x",
            ".config/claude-iso/token.env",
            ".ssh/id_ed25519",
            "stuff/.credentials.json",
            ".",
            "",
            "../other",
            "/etc/passwd",
        ] {
            assert!(
                plan(home, Path::new("/h/.config"), &os(&[bad])).is_err(),
                "{bad}"
            );
        }
    }
}
