//! Names: the files of a scratch home, the keys of `.claude.json` we own, and the
//! variables claude-iso sets. A leaf: every other module may read it, it reads none.
//!
//! The file and key names are claude's own (observed on the real CLI, see
//! `claude-code-facts.md`); the rest are claude-iso's.

#![forbid(unsafe_code)]

use std::time::Duration;

/// claude's config file, relative to HOME.
pub const CLAUDE_JSON: &str = ".claude.json";
/// claude's config directory, relative to HOME.
pub const CLAUDE_DIR: &str = ".claude";
/// claude's settings file, in `.claude` of a home or a project.
pub const SETTINGS: &str = "settings.json";
/// A project's settings file kept out of git, in `.claude` (it beats [`SETTINGS`]).
pub const SETTINGS_LOCAL: &str = "settings.local.json";
/// claude's option for one more settings layer: a file or inline JSON.
pub const FLAG_SETTINGS: &str = "--settings";
/// claude's option that keeps only some of its settings sources (`user,project,local`).
pub const FLAG_SETTING_SOURCES: &str = "--setting-sources";
/// What marks a git root.
pub const GIT_DIR: &str = ".git";
/// The credentials file claude falls back to after a 401 (and blanks on a failed refresh).
pub const CREDENTIALS: &str = ".credentials.json";
/// A second credential file of newer claudes, next to [`CREDENTIALS`] (since which
/// release: `docs/claude-facts.md`).
pub const DEVICE_KEYS: &str = ".device-keys.json";

/// Our own lock file in the scratch home (claude's is `.claude.json.lock`). Its presence
/// also marks a directory as a scratch home claude-iso prepared.
pub const OWN_LOCK: &str = ".claude-iso.lock";
/// The record of warnings said in a home, one line per warning (a hash of its text and
/// the day it was said): a unit that restarts all day says each once a day.
pub const OWN_WARNED: &str = ".claude-iso.warned";
/// What the names claude-iso itself writes at the top of a scratch home begin with
/// ([`OWN_LOCK`], the record of shared copies `.claude-iso.shared`, their temp files):
/// never a name a share may take.
pub const OWN_PREFIX: &str = ".claude-iso";
/// claude's lock: a directory created with `mkdir` (proper-lockfile style).
pub const CLAUDE_LOCK: &str = ".claude.json.lock";
/// A claude lock whose mtime is older than this is stale (proper-lockfile's default,
/// which claude uses; a live holder refreshes the mtime about every 5 s).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// How long we wait for a live claude lock, or for our own lock, before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// The prefix of our temp files next to `.claude.json`:
/// `.claude.json.claude-iso.<pid>.<n>.tmp`.
pub const TEMP_PREFIX: &str = ".claude.json.claude-iso.";

/// The prefix of a launch's request for trust, waiting for whichever launch holds the
/// lock to merge it (group commit): `.claude-iso.pending.<pid>.<n>` (its temp file ends
/// in `.tmp`). A JSON array of the directories to trust; the launch holds a `flock` on it
/// until it is done, so a file nobody holds was left by a launch that died.
pub const PENDING_PREFIX: &str = ".claude-iso.pending.";

/// Where claude's lock directory is made before it is renamed to [`CLAUDE_LOCK`]
/// (`.claude-iso.claude-lock.<pid>.tmp`), so that its identity is on record in our lock
/// file before it is claude's lock.
pub const CLAUDE_LOCK_STAGING: &str = ".claude-iso.claude-lock.";

/// claude-iso's directory under `$XDG_STATE_HOME`.
pub const STATE_DIR: &str = "claude-iso";
/// The default scratch home, in [`STATE_DIR`].
pub const DEFAULT_HOME: &str = "home";
/// The directory of named homes (`--name`), in [`STATE_DIR`].
pub const HOMES_DIR: &str = "homes";
/// claude's own temp files next to `.claude.json`: `.claude.json.tmp.<pid>.<hex>`.
pub const CLAUDE_TEMP_PREFIX: &str = ".claude.json.tmp.";

/// `.claude.json`: set once onboarding is done (suppresses the onboarding dialog).
pub const ONBOARDING: &str = "hasCompletedOnboarding";
/// `.claude.json`: the per-directory records, keyed by realpath.
pub const PROJECTS: &str = "projects";
/// `.claude.json`: `projects[dir].hasTrustDialogAccepted` (suppresses the trust dialog).
pub const TRUSTED: &str = "hasTrustDialogAccepted";
/// `.claude.json` counters of questions the interactive claude asks at start until it has
/// asked them this many times, each with that limit (claude's own constant; which
/// releases ask what: `docs/claude-dialogs.md`). The seed raises each to its limit, which
/// is what claude itself records when the question is answered "Not now":
/// - `fullscreenUpsellSeenCount`: "Try the new fullscreen renderer?", asked at every
///   start of a home first used by an older claude; at 3 or more it is never asked, and
///   the renderer stays the classic one.
pub const DIALOG_COUNTERS: &[(&str, u64)] = &[("fullscreenUpsellSeenCount", 3)];
/// `.claude.json` flags claude sets once a start-up question is answered; the seed sets
/// each to `true`, the answer "No" (per release: `docs/claude-dialogs.md`):
/// - `hasSeenAutoDefaultNudge`: "Make auto mode your default permission mode?", asked at
///   start when the user settings set `permissions.defaultMode` to another mode and auto
///   mode is available; `true` keeps the mode the settings chose.
pub const DIALOG_FLAGS: &[&str] = &["hasSeenAutoDefaultNudge"];
/// The newest claude release whose start-up dialogs were measured
/// (`docs/claude-facts.md`, `docs/claude-dialogs.md`); `doctor` warns about a newer one.
pub const DIALOGS_MEASURED: &str = "2.1.332";

/// The variable claude reads the token from, and the key we look for in env files.
pub const TOKEN_VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN";
/// Where claude reads the token from when it comes on a descriptor (read once at start;
/// per release: `docs/claude-facts.md`).
pub const TOKEN_FD_VAR: &str = "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR";
/// Exported to the child so a nested claude-iso knows `HOME` is a scratch home.
pub const NESTED_VAR: &str = "CLAUDE_ISO";
/// A shared broker's socket (`--broker`): the launch reads no token.
pub const BROKER_VAR: &str = "CLAUDE_ISO_BROKER";
/// The systemd credential name (`LoadCredential=claude-oauth-token:…`).
pub const CREDENTIAL_NAME: &str = "claude-oauth-token";
/// `1` turns the init on, `0` off; unset or empty: on when claude-iso is PID 1.
pub const INIT_VAR: &str = "CLAUDE_ISO_INIT";
/// Seconds between SIGTERM and SIGKILL for what the command leaves behind (the init).
pub const INIT_GRACE_VAR: &str = "CLAUDE_ISO_INIT_GRACE";
/// The opt-in of `--allow-project-auth` as a variable (`1` on; unset, empty or `0` off).
pub const ALLOW_PROJECT_AUTH_VAR: &str = "CLAUDE_ISO_ALLOW_PROJECT_AUTH";

/// The empty stubs claude creates in the working directory when
/// `CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1` and bubblewrap is there (measured, per release:
/// `docs/claude-facts.md`; directories end in `/`), besides appending a "scrub-mode
/// stubs" block to `.git/info/exclude`.
pub const SCRUB_STUBS: &[&str] = &[
    ".env",
    ".env.local",
    ".env.development",
    ".env.development.local",
    ".env.test",
    ".env.test.local",
    ".env.production",
    ".env.production.local",
    "package.json",
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bunfig.toml",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".gitmodules",
    "node_modules/.bin/",
    ".claude/agents/",
    ".claude/commands/",
];

/// What the same scrub makes claude create inside a checkout's `.git` (directories end in
/// `/`; which release makes which: `docs/claude-facts.md`), each only where nothing of
/// that name is yet.
pub const SCRUB_GIT_STUBS: &[&str] = &[
    "commondir",
    "config.worktree",
    "modules/",
    "worktrees/",
    "branches/",
    "remotes/",
    "glab-cli/",
    "NOTES_MERGE_WORKTREE/",
    "info/.claude-sandbox-noreplace",
    "objects/info/alternates",
    "objects/info/.claude-sandbox-noreplace",
    "objects/info/commit-graphs/.claude-sandbox-noreplace",
];

/// Fixed files claude reads credentials from when their descriptor variables are unset,
/// outside any HOME (`docs/claude-facts.md`): scrubbing cannot hide them.
pub const REMOTE_CREDENTIALS_DIR: &str = "/home/claude/.claude/remote";
/// The files in [`REMOTE_CREDENTIALS_DIR`] (`.api_key` outranks the OAuth token).
pub const REMOTE_CREDENTIALS: &[&str] = &[".oauth_token", ".api_key", ".session_ingress_token"];
/// Managed settings: their `env` and `apiKeyHelper` apply to every claude on the machine.
pub const MANAGED_SETTINGS: &str = "/etc/claude-code/managed-settings.json";

/// The supported claude releases, `oldest=` and `pinned=` lines (`.ci/claude-code-supported`,
/// the one file CI and the install script read too).
pub const SUPPORTED_CLAUDE: &str = include_str!("../.ci/claude-code-supported");

/// The `oldest` and `pinned` versions of [`SUPPORTED_CLAUDE`].
#[must_use]
pub fn supported_claude() -> (&'static str, &'static str) {
    let field = |key: &str| {
        SUPPORTED_CLAUDE
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map_or("?", str::trim)
    };
    (field("oldest"), field("pinned"))
}

#[cfg(test)]
mod tests {
    /// CI installs the `dialogs=` release before the suite runs; it must be the one the
    /// code and the dialogs suite name.
    #[test]
    fn the_dialogs_release_is_the_one_ci_installs() {
        let line = super::SUPPORTED_CLAUDE
            .lines()
            .find_map(|l| l.trim().strip_prefix("dialogs="))
            .map(str::trim);
        assert_eq!(line, Some(super::DIALOGS_MEASURED));
    }
}
