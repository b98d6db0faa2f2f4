//! Checked options: the command line and the caller's environment resolved into paths.

#![forbid(unsafe_code)]

use std::cell::OnceCell;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::caller::CallerEnv;
use crate::cli::{LaunchArgs, Switch};
use crate::error::{Error, Result};
use crate::layout::{
    ALLOW_PROJECT_AUTH_VAR, BROKER_VAR, DEFAULT_HOME, HOMES_DIR, NESTED_VAR, OWN_LOCK, STATE_DIR,
};
use crate::sys::fsutil::clean;

/// How the token reaches the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVia {
    /// A pipe on a descriptor named by `CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR`: the token
    /// is in no environment, and once claude has read it, nowhere but claude's memory.
    Fd,
    /// `CLAUDE_CODE_OAUTH_TOKEN` in the command's environment.
    Env,
    /// A broker process holds the token and forwards the command's API requests, which
    /// come over a Unix socket (`ANTHROPIC_UNIX_SOCKET`); the command gets a placeholder
    /// and no token in any form.
    Broker,
}

impl TokenVia {
    /// The way for a command: `--token-via`/`CLAUDE_ISO_TOKEN_VIA` when given, else the
    /// broker for claude itself (the token never enters claude) and `env` for anything
    /// else (a server that starts many claudes needs the variable).
    #[must_use]
    pub fn for_command(chosen: Option<TokenVia>, command: &std::ffi::OsStr) -> TokenVia {
        chosen.unwrap_or_else(|| {
            if Path::new(command).file_name() == Some(std::ffi::OsStr::new("claude")) {
                TokenVia::Broker
            } else {
                TokenVia::Env
            }
        })
    }
}

/// Everything the launcher needs, resolved.
#[derive(Debug)]
pub struct Config {
    pub env: CallerEnv,
    /// `--env-file` / `CLAUDE_ISO_ENV_FILE`, made absolute.
    pub env_file: Option<PathBuf>,
    /// The scratch home, absolute (not yet checked).
    pub home: PathBuf,
    /// `--name` / `CLAUDE_ISO_NAME`: the home is the named one, `homes/NAME`.
    pub name: Option<String>,
    /// The directory claude will run in (realpath), and the first one trusted.
    pub workdir: PathBuf,
    /// Whether `-C` moves us to `workdir` before exec.
    pub chdir: bool,
    /// Realpaths to trust: `workdir` first (unless `--no-trust`), then each `--trust`,
    /// without duplicates.
    pub trust: Vec<PathBuf>,
    pub keep_env: Vec<String>,
    pub unset: Vec<String>,
    /// `--token-via` / `CLAUDE_ISO_TOKEN_VIA`, if given (else chosen per command).
    pub token_via: Option<TokenVia>,
    /// `--broker` / `CLAUDE_ISO_BROKER`, made absolute: a shared broker's socket; no
    /// token is read.
    pub broker: Option<PathBuf>,
    /// `--allow-project-auth` / `CLAUDE_ISO_ALLOW_PROJECT_AUTH=1`.
    pub allow_project_auth: bool,
    /// The directory claude-iso was started in.
    pub start_dir: PathBuf,
    /// `--mask` / `CLAUDE_ISO_MASK`.
    pub mask: Switch,
    /// `--scrub-tools` / `CLAUDE_ISO_SCRUB_TOOLS`.
    pub scrub_tools: Switch,
    real_home: RealHome,
}

/// The user's real home: `$HOME` (unless it is itself a scratch home, as when nested)
/// and the passwd entry's home, looked up only when needed.
#[derive(Debug, Default)]
struct RealHome {
    from_env: Option<PathBuf>,
    from_passwd: OnceCell<Option<PathBuf>>,
}

impl RealHome {
    fn passwd(&self) -> Option<&Path> {
        self.from_passwd
            .get_or_init(|| {
                nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten()
                    .map(|u| u.dir)
                    .filter(|d| d.is_absolute())
            })
            .as_deref()
    }
}

impl Config {
    /// Resolves the launcher options against the caller's environment and directory.
    ///
    /// # Errors
    /// `-C`/`--trust` not a directory, no usable real home, paths that cannot be resolved.
    pub fn new(args: &LaunchArgs, env: CallerEnv) -> Result<Config> {
        let start_dir = std::env::current_dir().map_err(|e| Error::Cwd {
            path: PathBuf::from("."),
            reason: format!(
                "cannot get the current directory: {}",
                crate::error::error_text(&e)
            ),
        })?;
        let real_home = RealHome::from_caller(&env);

        let (workdir, chdir) = match &args.cwd {
            Some(dir) => (real_dir(&start_dir.join(dir), "-C")?, true),
            // getcwd already returns the resolved path claude will see.
            None => (start_dir.clone(), false),
        };
        let trust = trust_dirs(args, &start_dir, &workdir)?;

        // The options' variables; empty counts as unset, like the XDG ones.
        let from_env = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let env_file = args
            .env_file
            .clone()
            .or_else(|| from_env("CLAUDE_ISO_ENV_FILE"));
        let (home, name) = home_or_name(args, &env)?;

        let mask = switch(args.mask, &env, "--mask", "CLAUDE_ISO_MASK", Switch::Auto)?;
        // Off unless asked for: with it, claude writes stubs into the working directory
        // (issue 21 §6; `tools::describe`).
        let scrub_tools = switch(
            args.scrub_tools,
            &env,
            "--scrub-tools",
            "CLAUDE_ISO_SCRUB_TOOLS",
            Switch::Off,
        )?;
        let mut config = Config {
            env_file: env_file.map(|p| clean(&start_dir.join(p))),
            home: PathBuf::new(),
            name,
            workdir,
            chdir,
            trust,
            keep_env: args.keep_env.clone(),
            unset: args.unset.clone(),
            token_via: token_via(args.token_via.as_deref(), &env)?,
            broker: args
                .broker
                .clone()
                .or_else(|| {
                    env.get(BROKER_VAR)
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                })
                .map(|p| clean(&start_dir.join(p))),
            allow_project_auth: allowed(args.allow_project_auth, &env)?,
            start_dir,
            mask,
            scrub_tools,
            real_home,
            env,
        };
        config.home = match (&home, &config.name) {
            (Some(h), _) => clean(&config.start_dir.join(h)),
            (None, Some(name)) => config.homes_dir().join(name),
            (None, None) => config.default_home(),
        };
        check_var_names(&config.keep_env, &config.unset)?;
        Ok(config)
    }

    /// The user's real home for default paths: `$HOME`, else the passwd entry's.
    #[must_use]
    pub fn real_home(&self) -> PathBuf {
        self.real_home
            .from_env
            .clone()
            .or_else(|| self.real_home.passwd().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"))
    }

    /// Every path that counts as the real home: `$HOME` and (`with_passwd`) the passwd
    /// entry's home.
    #[must_use]
    pub fn real_homes(&self, with_passwd: bool) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.real_home.from_env.iter().cloned().collect();
        if let Some(p) = with_passwd.then(|| self.real_home.passwd()).flatten() {
            if !out.iter().any(|q| q == p) {
                out.push(p.to_path_buf());
            }
        }
        out
    }

    /// `$XDG_CONFIG_HOME` if absolute, else `<real home>/.config`.
    #[must_use]
    pub fn xdg_config_home(&self) -> PathBuf {
        self.env
            .absolute_path("XDG_CONFIG_HOME")
            .map_or_else(|| self.real_home().join(".config"), clean)
    }

    /// `$XDG_STATE_HOME` if absolute, else `<real home>/.local/state`.
    #[must_use]
    pub fn xdg_state_home(&self) -> PathBuf {
        self.env
            .absolute_path("XDG_STATE_HOME")
            .map_or_else(|| self.real_home().join(".local/state"), clean)
    }

    /// `$XDG_STATE_HOME/claude-iso`: the default home and the named ones live here.
    #[must_use]
    pub fn state_dir(&self) -> PathBuf {
        self.xdg_state_home().join(STATE_DIR)
    }

    /// The default scratch home, `$XDG_STATE_HOME/claude-iso/home`.
    #[must_use]
    pub fn default_home(&self) -> PathBuf {
        self.state_dir().join(DEFAULT_HOME)
    }

    /// Where named homes live, `$XDG_STATE_HOME/claude-iso/homes`.
    #[must_use]
    pub fn homes_dir(&self) -> PathBuf {
        self.state_dir().join(HOMES_DIR)
    }

    /// Directories that hold nothing but credentials, which the mask hides whole: the
    /// Anthropic profile store (`$ANTHROPIC_CONFIG_DIR`, `$XDG_CONFIG_HOME/anthropic`,
    /// each real home's `.config/anthropic`) and claude-iso's own token directories
    /// (`$XDG_CONFIG_HOME/claude-iso`, each real home's `.config/claude-iso` and
    /// `.config/claude-auth-sync`). A scratch home never lies in one.
    #[must_use]
    pub fn credential_stores(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let homes = self.real_homes(true);
        let mut profiles: Vec<PathBuf> = self
            .env
            .get("ANTHROPIC_CONFIG_DIR")
            .filter(|v| !v.is_empty())
            .map(|v| clean(&self.start_dir.join(v)))
            .into_iter()
            .collect();
        profiles.push(self.xdg_config_home().join("anthropic"));
        profiles.extend(homes.iter().map(|h| h.join(".config/anthropic")));
        let mut tokens = vec![self.xdg_config_home().join("claude-iso")];
        for h in &homes {
            tokens.push(h.join(".config/claude-iso"));
            tokens.push(h.join(".config/claude-auth-sync"));
        }
        (profiles, tokens)
    }

    /// Directories claude must never get as its config: each real `~/.claude` and the
    /// caller's `CLAUDE_CONFIG_DIR`.
    #[must_use]
    pub fn real_config_dirs(&self, with_passwd: bool) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .real_homes(with_passwd)
            .iter()
            .map(|h| h.join(".claude"))
            .collect();
        if let Some(dir) = self.env.get("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
            out.push(clean(&self.start_dir.join(dir)));
        }
        out
    }

    /// `PATH` of the caller, for resolving COMMAND.
    #[must_use]
    pub fn path_var(&self) -> Option<OsString> {
        self.env.get("PATH").map(ToOwned::to_owned)
    }
}

impl RealHome {
    /// `$HOME`, unless it is itself a scratch home: under a claude-iso parent, $HOME is a
    /// scratch home (it holds our lock file), and the real home is then the passwd entry's.
    fn from_caller(env: &CallerEnv) -> RealHome {
        let nested = env.get(NESTED_VAR).is_some_and(|v| !v.is_empty())
            && env
                .absolute_path("HOME")
                .is_some_and(|h| h.join(OWN_LOCK).exists());
        RealHome {
            from_env: if nested {
                None
            } else {
                env.absolute_path("HOME").map(clean)
            },
            from_passwd: OnceCell::new(),
        }
    }
}

/// The directories to trust, resolved: `workdir` first (unless `--no-trust`), then each
/// `--trust`, without duplicates.
fn trust_dirs(args: &LaunchArgs, start_dir: &Path, workdir: &Path) -> Result<Vec<PathBuf>> {
    let mut trust = if args.no_trust {
        Vec::new()
    } else {
        vec![workdir.to_path_buf()]
    };
    for dir in &args.trust {
        let dir = real_dir(&start_dir.join(dir), "--trust")?;
        if !trust.contains(&dir) {
            trust.push(dir);
        }
    }
    Ok(trust)
}

/// `--home` or `--name` (else `CLAUDE_ISO_HOME` or `CLAUDE_ISO_NAME`), at most one.
fn home_or_name(args: &LaunchArgs, env: &CallerEnv) -> Result<(Option<PathBuf>, Option<String>)> {
    let from_env = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    // The command line beats the environment; within each, --home and --name
    // (CLAUDE_ISO_HOME and CLAUDE_ISO_NAME) exclude each other.
    let (home, name) = match (&args.home, &args.name) {
        (Some(h), _) => (Some(h.clone()), None),
        (None, Some(n)) => (None, Some(n.clone())),
        (None, None) => {
            let name = env
                .get("CLAUDE_ISO_NAME")
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned());
            match (from_env("CLAUDE_ISO_HOME"), name) {
                (Some(_), Some(_)) => {
                    return Err(Error::Usage(
                        "CLAUDE_ISO_HOME and CLAUDE_ISO_NAME are both set; unset one (or pass --home or --name)".into(),
                    ));
                }
                pair => pair,
            }
        }
    };
    if let Some(name) = &name {
        check_name(name)?;
    }
    Ok((home, name))
}

/// `--keep-env`/`--unset` name variables: not empty, no `=`.
fn check_var_names(keep_env: &[String], unset: &[String]) -> Result<()> {
    for name in keep_env.iter().chain(unset) {
        if name.is_empty() || name.contains('=') {
            return Err(Error::Usage(format!(
                "--keep-env/--unset take a variable name, got one with '=' or empty: {}",
                if name.contains('=') { "NAME=…" } else { "''" }
            )));
        }
    }
    Ok(())
}

fn token_via(arg: Option<&str>, env: &CallerEnv) -> Result<Option<TokenVia>> {
    let from_env = env.get("CLAUDE_ISO_TOKEN_VIA").filter(|v| !v.is_empty());
    let (value, origin) = match (arg, from_env) {
        (Some(a), _) => (a.to_owned(), "--token-via"),
        (None, Some(v)) => (v.to_string_lossy().into_owned(), "CLAUDE_ISO_TOKEN_VIA"),
        (None, None) => return Ok(None),
    };
    match value.as_str() {
        "fd" => Ok(Some(TokenVia::Fd)),
        "env" => Ok(Some(TokenVia::Env)),
        "broker" => Ok(Some(TokenVia::Broker)),
        other => Err(Error::Usage(format!(
            "{origin}={other}: expected broker, fd or env"
        ))),
    }
}

/// The opt-in: `--allow-project-auth`, or `CLAUDE_ISO_ALLOW_PROJECT_AUTH=1`.
///
/// # Errors
/// The variable set to anything but `1`, `0` or empty (a typo must not pass silently).
fn allowed(flag: bool, env: &CallerEnv) -> Result<bool> {
    if flag {
        return Ok(true);
    }
    match env.get(ALLOW_PROJECT_AUTH_VAR).map(OsStr::as_encoded_bytes) {
        None | Some(b"" | b"0") => Ok(false),
        Some(b"1") => Ok(true),
        Some(_) => Err(Error::Usage(format!(
            "{ALLOW_PROJECT_AUTH_VAR} must be 1 (let project settings through) or 0; unset it or fix the value"
        ))),
    }
}

/// Whether `name` is a valid home name (see [`check_name`]).
#[must_use]
pub(crate) fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A home name: one ASCII letter or digit, then up to 63 letters, digits, `.`, `_` or
/// `-` (so never `.`, `..`, a path, or a hidden name).
///
/// # Errors
/// Any other name, with the rule.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        return Ok(());
    }
    let shown: String = name
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .to_string();
    Err(Error::Usage(format!(
        "--name/CLAUDE_ISO_NAME \"{shown}\": a home name is 1 to 64 characters, a letter or digit then letters, digits, '.', '_' or '-'"
    )))
}

/// An `auto|on|off` option: the command line, else its variable (empty counts as
/// unset), else `default`.
fn switch(
    flag: Option<Switch>,
    env: &CallerEnv,
    option: &str,
    var: &str,
    default: Switch,
) -> Result<Switch> {
    if let Some(s) = flag {
        return Ok(s);
    }
    match env.get(var).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.to_str().and_then(Switch::parse).ok_or_else(|| {
            Error::Usage(format!(
                "{var} must be auto, on or off (as {option}), got {:?}",
                v.to_string_lossy()
            ))
        }),
    }
}

fn real_dir(path: &Path, option: &str) -> Result<PathBuf> {
    let bad = |reason: String| {
        Error::Usage(format!(
            "{option} {}: {reason}; pass an existing directory",
            path.display()
        ))
    };
    let real = crate::sys::fsutil::realpath(path).map_err(|e| bad(crate::error::error_text(&e)))?;
    if !real.is_dir() {
        return Err(bad("not a directory".into()));
    }
    if real.to_str().is_none() {
        return Err(bad(
            "the path is not valid UTF-8, so claude cannot record trust for it".into(),
        ));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opt_in_values() {
        let env = |v: &str| {
            [(ALLOW_PROJECT_AUTH_VAR, v)]
                .into_iter()
                .collect::<CallerEnv>()
        };
        assert!(!allowed(false, &CallerEnv::default()).unwrap());
        assert!(allowed(true, &CallerEnv::default()).unwrap());
        assert!(allowed(false, &env("1")).unwrap());
        assert!(!allowed(false, &env("0")).unwrap());
        assert!(!allowed(false, &env("")).unwrap());
        assert!(allowed(false, &env("yes")).is_err());
    }
}
