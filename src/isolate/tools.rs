//! What reaches the agent's tools: claude can strip credential variables, the token
//! included, from the environment of its Bash tool, hooks and MCP servers
//! (`CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1`), but then refuses to start without bubblewrap.
//! `--scrub-tools` decides whether claude-iso turns that on: off by default, because
//! claude then creates empty stubs in the working directory ([`SCRUB_STUBS`]: `.env*`,
//! `package.json`, lock files, `.npmrc`, `node_modules/.bin/`, …) and appends a block to
//! `.git/info/exclude` on every start (per release: `docs/claude-facts.md`): run
//! from `$HOME`, the empty `package.json` breaks npm for every folder below.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cli::Switch;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::{CLAUDE_DIR, SCRUB_GIT_STUBS, SCRUB_STUBS};

/// claude's switch.
pub(crate) const SCRUB_VAR: &str = "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB";
/// Where claude reads managed settings on Linux (`sandbox.bwrapPath` is honoured there).
pub(crate) const MANAGED_SETTINGS: &str = "/etc/claude-code/managed-settings.json";
/// The fix when bubblewrap is missing.
pub(crate) const FIX: &str = "install bubblewrap (apt-get install bubblewrap) or set sandbox.bwrapPath in claude's user or managed settings";

/// Where claude would find bubblewrap: `sandbox.bwrapPath` in the scratch home's user
/// settings or the managed settings (when it names an executable file), else `bwrap` on
/// the caller's `PATH`. `None` when it would not.
#[must_use]
pub(crate) fn find_bwrap(config: &Config, home: &Path) -> Option<PathBuf> {
    let settings = [
        PathBuf::from(MANAGED_SETTINGS),
        home.join(CLAUDE_DIR).join("settings.json"),
    ];
    for file in &settings {
        if let Some(p) = bwrap_path_setting(file) {
            return is_executable(&p).then_some(p);
        }
    }
    which::which_in(
        "bwrap",
        Some(config.path_var().unwrap_or_else(|| "/usr/bin:/bin".into())),
        &config.start_dir,
    )
    .ok()
}

fn bwrap_path_setting(file: &Path) -> Option<PathBuf> {
    let text = crate::sys::fsutil::read_bounded(file, 4 << 20).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let p = PathBuf::from(doc.get("sandbox")?.get("bwrapPath")?.as_str()?);
    p.is_absolute().then_some(p)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What to do with [`SCRUB_VAR`] in the child's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Leave the caller's value (`off`).
    PassThrough,
    /// Set it to 1 (bubblewrap is there).
    Set(PathBuf),
    /// Remove it: claude would refuse to start without bubblewrap (`auto`).
    Remove,
}

/// Decides from the mode and where bubblewrap is. Pure.
///
/// # Errors
/// `on` and no bubblewrap (125).
pub(crate) fn decide(mode: Switch, bwrap: Option<PathBuf>) -> Result<Action> {
    match (mode, bwrap) {
        (Switch::Off, _) => Ok(Action::PassThrough),
        (_, Some(p)) => Ok(Action::Set(p)),
        (Switch::Auto, None) => Ok(Action::Remove),
        (Switch::On, None) => Err(Error::Usage(format!(
            "--scrub-tools on: claude needs bubblewrap to keep the token from its tools, and none was found (no bwrap on PATH, no sandbox.bwrapPath); {FIX}"
        ))),
    }
}

/// Applies the action to the child's environment.
pub(crate) fn apply(vars: &mut Vec<(OsString, OsString)>, action: &Action) {
    match action {
        Action::PassThrough => {}
        Action::Set(_) => {
            vars.retain(|(k, _)| k != SCRUB_VAR);
            vars.push((SCRUB_VAR.into(), "1".into()));
        }
        Action::Remove => vars.retain(|(k, _)| k != SCRUB_VAR),
    }
}

/// Whether a value of [`SCRUB_VAR`] turns claude's scrub on (`1`, `true`, `yes`, `on`,
/// trimmed, in any case: claude's reading of a boolean variable).
#[must_use]
pub(crate) fn is_on(value: &std::ffi::OsStr) -> bool {
    value.to_str().is_some_and(|v| {
        ["1", "true", "yes", "on"].contains(&v.trim().to_ascii_lowercase().as_str())
    })
}

/// Where claude writes its stubs when the scrub is on, and which.
fn stubs(workdir: &Path) -> String {
    format!(
        "claude creates empty stubs in {} ({}) and, in a git checkout, in its .git ({}) and appends to its .git/info/exclude",
        workdir.display(),
        SCRUB_STUBS.join(" "),
        SCRUB_GIT_STUBS.join(" ")
    )
}

/// What to say about the action under `-v`, `--dry-run` and in `doctor`; `workdir` is
/// where claude will run (where the stubs appear when the scrub is on), `passed` the
/// caller's value of [`SCRUB_VAR`] that `off` lets through.
#[must_use]
pub(crate) fn describe(
    action: &Action,
    workdir: &Path,
    passed: Option<&std::ffi::OsStr>,
) -> String {
    match action {
        Action::PassThrough if passed.is_some_and(is_on) => format!(
            "off: the caller's {SCRUB_VAR} passes through and turns claude's scrub on: {}",
            stubs(workdir)
        ),
        Action::PassThrough => "off: claude's tools see the credentials they are given (--scrub-tools on keeps them out, and makes claude write stubs into the working directory)".to_owned(),
        Action::Set(p) => format!(
            "{SCRUB_VAR}=1: claude keeps credentials from its Bash tool, hooks and MCP servers (bubblewrap: {}); {}",
            p.display(),
            stubs(workdir)
        ),
        Action::Remove => format!(
            "not set: bubblewrap was not found, so claude's tools will see the credentials in their environment; {FIX}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let p = PathBuf::from("/usr/bin/bwrap");
        assert_eq!(decide(Switch::Off, None).unwrap(), Action::PassThrough);
        assert_eq!(
            decide(Switch::Off, Some(p.clone())).unwrap(),
            Action::PassThrough
        );
        assert_eq!(
            decide(Switch::Auto, Some(p.clone())).unwrap(),
            Action::Set(p.clone())
        );
        assert_eq!(decide(Switch::On, Some(p.clone())).unwrap(), Action::Set(p));
        assert_eq!(decide(Switch::Auto, None).unwrap(), Action::Remove);
        let e = decide(Switch::On, None).unwrap_err().to_string();
        assert!(e.contains("apt-get install bubblewrap"), "{e}");
    }

    #[test]
    fn the_callers_value_is_overridden_unless_off() {
        let vars = || vec![("A".into(), "1".into()), (SCRUB_VAR.into(), "0".into())];
        let mut v = vars();
        apply(&mut v, &Action::Set("/b".into()));
        assert_eq!(
            v,
            vec![("A".into(), "1".into()), (SCRUB_VAR.into(), "1".into())]
        );
        let mut v = vars();
        apply(&mut v, &Action::Remove);
        assert_eq!(v, vec![("A".into(), "1".into())]);
        let mut v = vars();
        apply(&mut v, &Action::PassThrough);
        assert_eq!(v, vars());
    }
}
