//! Where credentials live for this launch, as the launcher knows it: the input of
//! the plan.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::{FIXED_FILES, Kind};
use crate::config::Config;
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS};
use crate::sys::fsutil::clean;
use crate::token::{self, Source};

/// Where credentials live, as the launcher knows it (paths as given; the plan resolves them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// Each real `~/.claude`, the caller's `CLAUDE_CONFIG_DIR` and
    /// `CLAUDE_SECURESTORAGE_CONFIG_DIR`: hidden (an empty read-only directory), or,
    /// when the working directory or the scratch home lies inside, read-only with the
    /// credential files emptied.
    pub config_dirs: Vec<PathBuf>,
    /// Each real `~/.claude.json`: read-only.
    pub claude_jsons: Vec<PathBuf>,
    /// `$ANTHROPIC_CONFIG_DIR`, `$XDG_CONFIG_HOME/anthropic`, `~/.config/anthropic`
    /// (profiles, and credentials under `credentials/`): hidden.
    pub profile_stores: Vec<PathBuf>,
    /// Every token file claude-iso reads, and the fixed files: emptied.
    pub files: Vec<PathBuf>,
    /// The directories kept only for claude-iso's token files
    /// (`$XDG_CONFIG_HOME/claude-iso`, each real home's `.config/claude-iso`, the
    /// `claude-auth-sync` compatibility directory): hidden whole, so that replacing a
    /// token file by rename outside (`token set` does) cannot lift the mask.
    pub token_dirs: Vec<PathBuf>,
    /// Directories the command may need that can lie inside a hidden config dir (the
    /// caller's `PATH` entries, the command's own directory: claude's local installer puts
    /// it in `~/.claude/local`): shown again, read-only, inside the hidden directory.
    pub reveal: Vec<PathBuf>,
    /// The scratch home and the working directory: stay writable.
    pub writable: Vec<PathBuf>,
    /// The copies `--share` made in the scratch home: bound read-only onto themselves,
    /// so that the command cannot change them (root included) nor replace them.
    pub shared: Vec<(PathBuf, Kind)>,
    /// The scratch home (also the first of `writable`): no view is made in it.
    pub home: PathBuf,
    /// claude-iso's state directory (`$XDG_STATE_HOME/claude-iso`): every home in it but
    /// `home` is left out (other homes hold other agents' logins, quarantined files).
    pub state_dir: Option<PathBuf>,
    /// Where the per-launch credential broker keeps its socket
    /// (`$XDG_RUNTIME_DIR/claude-iso`, `/tmp/claude-iso-<uid>`): never hidden.
    pub broker_dirs: Vec<PathBuf>,
    /// The scratch home holds a `.claude/.credentials.json` the launch will quarantine.
    pub home_may_quarantine: bool,
}

impl Sources {
    /// Where credentials live for this launch; `home` is the scratch home.
    #[must_use]
    pub(crate) fn new(config: &Config, home: &Path) -> Sources {
        let env_dir = |name: &str| {
            config
                .env
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| clean(&config.start_dir.join(v)))
        };
        let homes = config.real_homes(true);
        let mut config_dirs = config.real_config_dirs(true);
        config_dirs.extend(env_dir("CLAUDE_SECURESTORAGE_CONFIG_DIR"));
        let (profile_stores, token_dirs) = config.credential_stores();
        let mut files: Vec<PathBuf> = Vec::new();
        let mut sources = token::default_candidates(config);
        sources.extend(token::candidates(config));
        for source in sources {
            if let Source::EnvFile(p) | Source::CredentialsDirectory(p) = source {
                files.push(p);
            }
        }
        // Copies set aside are still credentials: a replaced token file (`token set`
        // keeps the old one, valid until it expires) and a credentials file quarantined
        // out of the scratch home.
        let asides: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| set_aside(f, "replaced"))
            .chain(set_aside(
                &home.join(CLAUDE_DIR).join(CREDENTIALS),
                "quarantined",
            ))
            .collect();
        files.extend(asides);
        files.extend(FIXED_FILES.iter().map(PathBuf::from));
        // Only the entries that can lead into a config dir are worth resolving on every
        // launch: those in a real home or in a config dir as named (`/usr/bin` is
        // not; a directory elsewhere that is a symlink into `~/.claude` is not seen).
        let may_lead_in = |d: &Path| {
            homes.iter().any(|h| d.starts_with(h)) || config_dirs.iter().any(|c| d.starts_with(c))
        };
        let reveal = config
            .env
            .get("PATH")
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .map(|d| clean(&d))
                    .filter(|d| may_lead_in(d))
                    .collect()
            })
            .unwrap_or_default();
        Sources {
            config_dirs,
            claude_jsons: homes.iter().map(|h| h.join(CLAUDE_JSON)).collect(),
            profile_stores,
            files,
            token_dirs,
            reveal,
            writable: vec![home.to_owned(), config.workdir.clone()],
            shared: Vec::new(),
            home: home.to_owned(),
            state_dir: Some(config.state_dir()),
            broker_dirs: broker_dirs(config),
            home_may_quarantine: std::fs::symlink_metadata(home.join(CLAUDE_DIR).join(CREDENTIALS))
                .is_ok(),
        }
    }

    /// Adds the copies `--share` makes (paths in the scratch home, and whether each is a
    /// directory: they may not exist yet when the plan is made).
    #[must_use]
    pub(crate) fn with_shared(mut self, shared: &[(PathBuf, Kind)]) -> Sources {
        self.shared.extend(shared.iter().cloned());
        self
    }

    /// Adds the command's own directory, and the directory of the file it leads to, to
    /// what is shown again inside a hidden directory.
    #[must_use]
    pub(crate) fn with_program(mut self, program: Option<&Path>) -> Sources {
        let Some(program) = program.filter(|p| p.is_absolute()) else {
            return self;
        };
        if let Some(dir) = program.parent() {
            self.reveal.push(clean(dir));
        }
        if let Some(dir) = crate::sys::fsutil::realpath(program)
            .ok()
            .as_deref()
            .and_then(Path::parent)
        {
            self.reveal.push(dir.to_owned());
        }
        self
    }
}

/// Where the credential broker keeps its socket: `$XDG_RUNTIME_DIR/claude-iso` (when
/// set) and `/tmp/claude-iso-<uid>`. The mask never hides them.
fn broker_dirs(config: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = config
        .env
        .absolute_path("XDG_RUNTIME_DIR")
        .map(|d| clean(d).join(crate::layout::STATE_DIR))
        .into_iter()
        .collect();
    out.push(PathBuf::from(format!(
        "/tmp/claude-iso-{}",
        nix::unistd::geteuid().as_raw()
    )));
    out
}

/// The copies of `file` set aside with `tag` (`<name>.<tag>-<time>-<n>`, see
/// `fsutil::put_aside`) that exist in its directory.
pub(super) fn set_aside(file: &Path, tag: &str) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.{tag}-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}
