//! The caller's environment as data, and the child's environment as a pure function of it.
//!
//! Nothing here calls `std::env::set_var`: the child's environment is computed and handed
//! to `execve`.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::caller::CallerEnv;
use crate::layout::{NESTED_VAR, TOKEN_FD_VAR, TOKEN_VAR};
use crate::token::Token;

/// What the child's environment is built from besides the caller's.
#[derive(Debug)]
pub(crate) struct ChildEnvPlan<'a> {
    pub home: &'a Path,
    pub token: Delivery<'a>,
    /// Set `PWD` to this (when `-C` moved us).
    pub pwd: Option<&'a Path>,
    /// Scrubbed names to let through anyway (`--keep-env`).
    pub keep: &'a [String],
    /// More names to remove (`--unset`).
    pub unset: &'a [String],
}

/// How the token travels to the command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Delivery<'a> {
    /// In `CLAUDE_CODE_OAUTH_TOKEN`.
    Env(&'a Token),
    /// On this descriptor, named by `CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR`;
    /// `CLAUDE_CODE_OAUTH_TOKEN` is then not set at all.
    Fd(i32),
    /// Through a broker listening on this socket: the command gets the socket
    /// (`ANTHROPIC_UNIX_SOCKET`), `ANTHROPIC_BASE_URL=http://localhost` and the
    /// placeholder `CLAUDE_CODE_OAUTH_TOKEN=ssh-placeholder`, and no token in any form.
    Broker(&'a Path),
}

/// The child's environment and what was removed from the caller's.
#[derive(Debug)]
pub(crate) struct ChildEnv {
    pub vars: Vec<(OsString, OsString)>,
    /// Names (never values) of variables that were set and are removed, unasked: what
    /// the launch warns about.
    pub removed: Vec<String>,
    /// Names of variables that were set and are removed because `--unset` names them:
    /// acknowledged, so not warned about (a unit that always has `XDG_CONFIG_HOME` set
    /// says `--unset XDG_CONFIG_HOME` once instead of hearing it on every start).
    pub unset: Vec<String>,
}

impl ChildEnv {
    /// Replaces the value of a variable this module set (`HOME` once the home is made).
    pub(crate) fn set(&mut self, name: &str, value: &std::ffi::OsStr) {
        if let Some(slot) = self.vars.iter_mut().find(|(k, _)| k == name) {
            slot.1 = value.to_owned();
        }
    }
}

/// Computes the child's environment from the caller's. Pure.
///
/// Every scrubbed or `--unset` variable is dropped (unless `--keep-env`), `HOME`,
/// `CLAUDE_CODE_OAUTH_TOKEN` and `CLAUDE_ISO` are set, `PWD` follows `-C`; everything
/// else keeps its value and order. Duplicate entries of a name collapse to the first.
#[must_use]
pub(crate) fn child_env(caller: &CallerEnv, plan: &ChildEnvPlan<'_>) -> ChildEnv {
    let removed_by_us = |name: &OsStr| crate::scrub::removed(name, plan.keep, plan.unset);
    let mut ours: Vec<(&str, OsString)> = vec![("HOME", plan.home.as_os_str().to_owned())];
    match plan.token {
        Delivery::Env(token) => ours.push((TOKEN_VAR, OsString::from(token.expose()))),
        Delivery::Fd(fd) => ours.push((TOKEN_FD_VAR, OsString::from(fd.to_string()))),
        Delivery::Broker(socket) => ours.extend(crate::isolate::broker::child_vars(socket)),
    }
    ours.push((NESTED_VAR, OsString::from("1")));
    ours.push((
        "PWD",
        plan.pwd
            .map(|p| p.as_os_str().to_owned())
            .unwrap_or_default(),
    ));
    let is_ours = |name: &OsStr| {
        ours.iter()
            .any(|(k, _)| OsStr::new(k) == name && (*k != "PWD" || plan.pwd.is_some()))
    };

    let mut vars: Vec<(OsString, OsString)> = Vec::with_capacity(caller.vars().len() + 3);
    let mut removed = Vec::new();
    let mut unset = Vec::new();
    // Linear in the size of the environment: each name is looked up once.
    let mut seen: std::collections::HashSet<&OsStr> =
        std::collections::HashSet::with_capacity(caller.vars().len());
    for (k, v) in caller.vars() {
        if k.is_empty() || k.as_bytes().contains(&b'=') || !seen.insert(k.as_os_str()) {
            continue;
        }
        // Scrubbed first: a caller's CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR is reported
        // as removed even when ours takes its place.
        // A variable we set anyway, which the caller already has at our value (a nested
        // launch through its session's broker): kept, not reported as removed.
        let same_as_ours = || ours.iter().any(|(n, val)| OsStr::new(n) == k && val == v);
        if removed_by_us(k) && !same_as_ours() {
            let name = k.to_string_lossy().into_owned();
            if plan.unset.contains(&name) {
                unset.push(name);
            } else {
                removed.push(name);
            }
            continue;
        }
        // Ours, replaced below; and in fd mode the caller's CLAUDE_CODE_OAUTH_TOKEN is
        // not passed either (the token is on the descriptor, and nowhere else).
        if is_ours(k) || (matches!(plan.token, Delivery::Fd(_)) && k == TOKEN_VAR) {
            continue;
        }
        // Through the broker, neither a descriptor variable of the caller's (scrubbed
        // above unless kept) nor any token value reaches the command.
        if matches!(plan.token, Delivery::Broker(_)) && k == TOKEN_FD_VAR {
            continue;
        }
        vars.push((k.clone(), v.clone()));
    }
    for (k, v) in ours {
        if k != "PWD" || plan.pwd.is_some() {
            vars.push((OsString::from(k), v));
        }
    }
    ChildEnv {
        vars,
        removed,
        unset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::LISTED;
    use crate::scrub::is_scrubbed;
    use std::path::PathBuf;

    fn env(text: &str) -> CallerEnv {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split_once('=').unwrap())
            .collect()
    }

    fn token() -> Token {
        Token::parse(&format!("sk-ant-oat01-abcdefgh{}", "x".repeat(87))).unwrap()
    }

    fn run(caller: &str, keep: &[&str], unset: &[&str], pwd: Option<&str>) -> ChildEnv {
        let keep: Vec<String> = keep.iter().map(|s| (*s).to_owned()).collect();
        let unset: Vec<String> = unset.iter().map(|s| (*s).to_owned()).collect();
        let pwd = pwd.map(PathBuf::from);
        let t = token();
        child_env(
            &env(caller),
            &ChildEnvPlan {
                home: Path::new("/scratch"),
                token: Delivery::Env(&t),
                pwd: pwd.as_deref(),
                keep: &keep,
                unset: &unset,
            },
        )
    }

    fn get<'a>(c: &'a ChildEnv, name: &str) -> Option<&'a str> {
        c.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn scrubs_and_sets() {
        let caller = "PATH=/bin\nHOME=/home/u\nANTHROPIC_API_KEY=sk-ant-api03-x\nCLAUDE_CONFIG_DIR=/home/u/.claude\nCLAUDE_CODE_OAUTH_TOKEN=old\nTERM=xterm\nXDG_CONFIG_HOME=/home/u/.config\nANTHROPIC_BASE_URL=http://127.0.0.1:1\n";
        let c = run(caller, &[], &[], None);
        assert_eq!(get(&c, "PATH"), Some("/bin"));
        assert_eq!(get(&c, "TERM"), Some("xterm"));
        assert_eq!(get(&c, "ANTHROPIC_BASE_URL"), Some("http://127.0.0.1:1"));
        assert_eq!(get(&c, "HOME"), Some("/scratch"));
        assert_eq!(get(&c, TOKEN_VAR), Some(token().expose()));
        assert_eq!(get(&c, NESTED_VAR), Some("1"));
        assert_eq!(get(&c, "PWD"), None);
        for e in LISTED {
            assert_eq!(get(&c, e.name), None, "{}", e.name);
        }
        assert_eq!(
            c.removed,
            vec!["ANTHROPIC_API_KEY", "CLAUDE_CONFIG_DIR", "XDG_CONFIG_HOME"]
        );
        assert_eq!(c.vars.iter().filter(|(k, _)| k == "HOME").count(), 1);
    }

    #[test]
    fn fd_delivery_sets_only_the_descriptor() {
        let t = token();
        let c = child_env(
            &env(
                "CLAUDE_CODE_OAUTH_TOKEN=caller\nCLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR=9\nTERM=x\n",
            ),
            &ChildEnvPlan {
                home: Path::new("/scratch"),
                token: Delivery::Fd(5),
                pwd: None,
                keep: &[],
                unset: &[],
            },
        );
        assert_eq!(get(&c, TOKEN_VAR), None);
        assert_eq!(get(&c, TOKEN_FD_VAR), Some("5"));
        assert_eq!(c.vars.iter().filter(|(k, _)| k == TOKEN_FD_VAR).count(), 1);
        assert_eq!(get(&c, "TERM"), Some("x"));
        assert!(!format!("{:?}", c.vars).contains(t.expose()));
    }

    #[test]
    fn a_hundred_thousand_variables() {
        // Linear: each name is looked up once (the old quadratic scan took minutes here).
        let caller: CallerEnv = (0..100_000)
            .map(|i| (format!("V{i}"), "x".to_owned()))
            .chain(std::iter::once(("V7".to_owned(), "dup".to_owned())))
            .collect();
        let t = token();
        let c = child_env(
            &caller,
            &ChildEnvPlan {
                home: Path::new("/scratch"),
                token: Delivery::Env(&t),
                pwd: None,
                keep: &[],
                unset: &[],
            },
        );
        assert_eq!(c.vars.len(), 100_000 + 3);
        assert_eq!(get(&c, "V7"), Some("x"));
    }

    #[test]
    fn keep_unset_and_pwd() {
        let caller = "ANTHROPIC_API_KEY=a\nFOO=1\nPWD=/old\nFOO=2\n";
        let c = run(caller, &["ANTHROPIC_API_KEY"], &["FOO"], Some("/new"));
        assert_eq!(get(&c, "ANTHROPIC_API_KEY"), Some("a"));
        assert_eq!(get(&c, "FOO"), None);
        assert_eq!(get(&c, "PWD"), Some("/new"));
        assert!(c.removed.is_empty(), "{:?}", c.removed);
        assert_eq!(c.unset, vec!["FOO"]);
        let c = run(caller, &[], &[], None);
        assert_eq!(get(&c, "PWD"), Some("/old"));
        assert_eq!(get(&c, "FOO"), Some("1"));
    }

    #[test]
    fn every_documented_variable_is_scrubbed() {
        // The one list of credential names (the tests of the launcher and the drift
        // check read it too).
        for name in crate::scrub::known_credentials() {
            assert!(is_scrubbed(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn configuration_passes_through() {
        let caller = "ANTHROPIC_BASE_URL=http://127.0.0.1:1\nANTHROPIC_MODEL=m\nCLAUDE_CODE_MAX_OUTPUT_TOKENS=9\nDISABLE_AUTOUPDATER=1\nCLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\nMAX_THINKING_TOKENS=5\nGITHUB_TOKEN=gh\nCLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR=3\nCLAUDE_CODE_USE_FOUNDRY=1\n";
        let c = run(caller, &[], &[], None);
        for (name, value) in [
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("ANTHROPIC_MODEL", "m"),
            ("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "9"),
            ("DISABLE_AUTOUPDATER", "1"),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
            ("MAX_THINKING_TOKENS", "5"),
            ("GITHUB_TOKEN", "gh"),
        ] {
            assert_eq!(get(&c, name), Some(value), "{name}");
        }
        // The caller's descriptor variable is removed: it would name another token.
        assert_eq!(get(&c, "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"), None);
        assert_eq!(
            c.removed,
            vec![
                "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
                "CLAUDE_CODE_USE_FOUNDRY"
            ]
        );
    }
}
