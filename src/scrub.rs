//! What is removed from the command's environment. A leaf: the launcher, the env-file
//! reader, `--dry-run`, `doctor`, the man page and README all read this one table.

#![forbid(unsafe_code)]

use std::ffi::OsStr;

/// Variables that carry a credential other than our token, or relocate where claude
/// looks for one. Each outranks or sidesteps `CLAUDE_CODE_OAUTH_TOKEN` (observed on the
/// real CLI, see `claude-code-facts.md`), so the child never sees them.
pub const SCRUBBED: &[&str] = &[
    // Credentials that outrank the OAuth token.
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
    "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR",
    "CLAUDE_CODE_SESSION_ACCESS_TOKEN",
    "CLAUDE_CODE_OAUTH_REFRESH_TOKEN",
    "CLAUDE_BG_AUTH_SNAPSHOT_PATH",
    // Switch claude to another provider's credentials.
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
    // Relocate the config or credentials store out of the scratch home.
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_SECURESTORAGE_CONFIG_DIR",
    "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_PROFILE",
    // claude reads `$XDG_CONFIG_HOME/anthropic`; unset, that falls inside the scratch home.
    "XDG_CONFIG_HOME",
];

/// Whether `name` is on the scrub list.
#[must_use]
pub fn is_scrubbed(name: &OsStr) -> bool {
    SCRUBBED.iter().any(|s| OsStr::new(s) == name)
}
