//! What is removed from the command's environment: rules, then lists. A leaf: the
//! launcher, the env-file reader, `--dry-run`, `doctor`, the man page and README all read
//! this one table.
//!
//! Inside claude's namespaces ([`NAMESPACES`]) every name that matches a credential
//! pattern ([`RULES`]) is removed, unless it is configuration on the [`KEEP`] list.
//! Names that carry or locate a credential without following a pattern are on
//! [`LISTED`]. The variables claude-iso sets itself ([`REPLACED`]) never pass through
//! from the caller either. Each release of claude adds names: the rules catch the new
//! ones that follow a pattern, and `tests/e2e/drift.rs` fails CI on any new name that looks
//! like a credential ([`looks_like_credential`]) until it is reviewed.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

mod reviewed;
pub use reviewed::REVIEWED;

/// Prefixes of the variables claude reads its credentials and configuration from. The
/// rules apply inside these only (`GITHUB_TOKEN` is the command's business).
pub const NAMESPACES: &[&str] = &["ANTHROPIC_", "CLAUDE_", "CCR_", "AWS_BEARER_TOKEN_"];

/// A credential pattern. Patterns are matched word by word (words are separated by
/// `_`); `*` stands for any number of whole words, none included, and `(A|B)` for one
/// word that is `A` or `B`: `*_TOKEN_*` matches `ANTHROPIC_AUTH_TOKEN` and
/// `CCR_OAUTH_TOKEN_FILE`, not `CLAUDE_CODE_TOKENIZER`. Before matching, a word that
/// holds one of the [`COMPOUND`] words is read as its parts ([`words`]): `APIKEY` as
/// `API_KEY`, `KEYFILE` as `KEY_FILE`, `KEYPAIR` as `KEY_PAIR`, `APIKEYHELPER` as
/// `API_KEY_HELPER`, `OAUTHTOKEN` as `OAUTH_TOKEN`, `CONFIGDIR` as `CONFIG_DIR`, and a
/// plural `S` after it is dropped (`KEYS`, `TOKENS`, `PROFILES` are `KEY`, `TOKEN`,
/// `PROFILE`); a number after any word is dropped (`KEY2`, `DIR2` are `KEY`, `DIR`).
#[derive(Debug)]
pub struct Rule {
    pub patterns: &'static [&'static str],
    /// What names of this shape are, for the man page and the warning.
    pub what: &'static str,
}

/// A variable named on one of the lists, and why.
#[derive(Debug)]
pub struct Entry {
    pub name: &'static str,
    pub why: &'static str,
}

/// The credential patterns, applied inside [`NAMESPACES`].
pub const RULES: &[Rule] = &[
    Rule {
        patterns: &["*_API_KEY_*", "*_KEY_*"],
        what: "an API key, a signing or private key, or where one comes from",
    },
    Rule {
        patterns: &["*_TOKEN_*", "*_JWT_*"],
        what: "a token, or the file or descriptor it is read from",
    },
    Rule {
        patterns: &[
            "*_AUTH_*",
            "*_OAUTH_*",
            "*_BEARER_*",
            "*_AUTHORIZE_*",
            "*_AUTHORIZATION_*",
            "*_AUTHENTICATE_*",
            "*_AUTHENTICATION_*",
        ],
        what: "authentication material, or where claude logs in",
    },
    Rule {
        patterns: &[
            "*_CRED_*",
            "*_CREDS_*",
            "*_CREDENTIAL_*",
            "*_CREDENTIALS_*",
            "*_CREDMAN_*",
        ],
        what: "credentials, or where they are kept",
    },
    Rule {
        patterns: &[
            "*_SECRET_*",
            "*_PASSWORD_*",
            "*_PASSWD_*",
            "*_PASSPHRASE_*",
            "*_COOKIE_*",
        ],
        what: "a secret",
    },
    Rule {
        patterns: &["*_CLIENT_(CERT|CERTIFICATE)_*"],
        what: "an mTLS client identity (certificate, and its key or where they are read from)",
    },
    Rule {
        patterns: &["*_DESCRIPTOR_*"],
        what: "a file descriptor claude reads a credential from",
    },
    Rule {
        patterns: &["CLAUDE_CODE_USE_*"],
        what: "switches claude to another provider and its credentials",
    },
    Rule {
        patterns: &[
            "*_CONFIG_(DIR|DIRECTORY|HOME|PATH|FILE|ROOT)_*",
            "*_SETTINGS_(DIR|DIRECTORY|HOME|PATH|FILE|ROOT)_*",
            "*_HOME",
            "*_HOME_(DIR|DIRECTORY|PATH|ROOT|FILE)_*",
            "*_PROFILE_*",
        ],
        what: "moves claude's config, credential store, profile or settings out of the scratch home",
    },
];

/// Credential words that count inside a longer word too (longest first where one ends
/// another): `APIKEY`, `PRIVATEKEY`, `KEYFILE`, `AUTHTOKEN`, `SETTINGSDIR`, `CLIENTCERT`,
/// `PROFILENAME`.
pub const COMPOUND: &[&str] = &[
    "KEY",
    "TOKEN",
    "JWT",
    "OAUTH",
    "AUTH",
    "BEARER",
    "CREDENTIALS",
    "CREDENTIAL",
    "CREDS",
    "CRED",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "COOKIE",
    "CONFIG",
    "SETTINGS",
    "PROFILE",
    "CERT",
    "CERTIFICATE",
];

/// What may follow a [`COMPOUND`] word inside the same word (`KEYFILE`, `CONFIGDIR`,
/// `KEYRING`, `KEYCHAIN`, `APIKEYHELPER`, `PROFILENAME`, `KEYS`); the plural `S` is
/// dropped.
pub const COMPOUND_TAILS: &[&str] = &[
    "FILE",
    "PATH",
    "DIRECTORY",
    "DIR",
    "HOME",
    "FD",
    "PAIR",
    "RING",
    "CHAIN",
    "STORE",
    "HELPER",
    "NAME",
    "S",
];

/// Removed though they follow no pattern (observed on the real CLI, see
/// `claude-code-facts.md`).
pub const LISTED: &[Entry] = &[
    Entry {
        name: "ANTHROPIC_CUSTOM_HEADERS",
        why: "extra request headers: can hold an authorization or x-api-key line",
    },
    Entry {
        name: "ANTHROPIC_UNIX_SOCKET",
        why: "sends the API over a socket, and re-enables the fallback to a credentials file",
    },
    Entry {
        name: "CLAUDE_CODE_REMOTE_SESSION_ID",
        why: "re-enables the fallback to a credentials file after a 401",
    },
    Entry {
        name: "CLAUDE_CODE_RUNNER_MODEL_SOCKET",
        why: "a socket to the model API (claude withholds it from its own children)",
    },
    Entry {
        name: "ANTHROPIC_FEDERATION_RULE_ID",
        why: "selects workload-identity federation instead of the token",
    },
    Entry {
        name: "ANTHROPIC_SERVICE_ACCOUNT_ID",
        why: "the service account of workload-identity federation",
    },
    Entry {
        name: "CLAUDE_CODE_FEDERATION_CACHE_DIR",
        why: "where federated credentials are cached",
    },
    Entry {
        name: "CLAUDE_CODE_PROVIDER_MANAGED_BY_HOST",
        why: "lets a host supply the credentials instead of the token",
    },
    Entry {
        name: "AGENT_PROXY_AUTH_TOKEN",
        why: "a proxy credential claude withholds from its own children",
    },
    Entry {
        name: "CLAUDE_CODE_MESSAGING_SOCKET",
        why: "a messaging channel claude withholds from its children, with its token",
    },
    Entry {
        name: "CLAUDE_CODE_CCR_WORKER_SOCKET",
        why: "a socket to a remote worker that requests travel over",
    },
    Entry {
        name: "USE_LOCAL_OAUTH",
        why: "sends claude's OAuth traffic (sign-in, account, bridge) to local endpoints",
    },
    Entry {
        name: "USE_STAGING_OAUTH",
        why: "sends claude's OAuth traffic (sign-in, account, bridge) to Anthropic's staging endpoints",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_REDIRECT_CHECK",
        why: "turns off claude's check that a request carrying credentials is not redirected to another origin",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_ADMIN_ENV_UNION",
        why: "changes which administrator settings' env entries apply (claude lists it among its auth-related variables)",
    },
    Entry {
        name: "CLAUDE_CODE_MOCK_REMOTE_SETTINGS",
        why: "feeds claude stand-in remote managed settings, which can set env entries (claude lists it among its auth-related variables)",
    },
    Entry {
        name: "XDG_CONFIG_HOME",
        why: "claude reads the SDK profile chain from $XDG_CONFIG_HOME/anthropic; unset, that falls inside the scratch home",
    },
];

/// Every credential variable known by name, the one list the tests hold the scrub to:
/// the releases' names a rule removes ([`REVIEWED`]), then [`LISTED`].
pub fn known_credentials() -> impl Iterator<Item = &'static str> {
    REVIEWED
        .iter()
        .copied()
        .chain(LISTED.iter().map(|e| e.name))
}

/// Match a pattern (or look like a credential), but are configuration: passed through.
pub const KEEP: &[Entry] = &[
    Entry {
        name: "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_FILE_READ_MAX_OUTPUT_TOKENS",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_MAX_CONTEXT_TOKENS",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_IDLE_COMPACT_MIN_TOKENS",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_IDLE_TOKEN_THRESHOLD",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_RESUME_TOKEN_THRESHOLD",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_TOTAL_TOKENS_REMINDER",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_TOTAL_TOKENS_REMINDER_AFTER_USER_TURN",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_TOTAL_TOKENS_REMINDER_BUDGET",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_WORKFLOW_SIZE_WARNING_TOKENS",
        why: "a budget of model tokens",
    },
    Entry {
        name: "CLAUDE_CODE_ENABLE_TOKEN_USAGE_ATTACHMENT",
        why: "reports model-token usage",
    },
    Entry {
        name: "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_PROXY_AUTH_HELPER_TTL_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_AUTH_FAIL_EXIT_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_OAUTH_401_WAIT_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_HOST_AUTH_REFRESH_TIMEOUT_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_OTEL_HEADERS_HELPER_DEBOUNCE_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_AUTH_REFRESH_LOCK",
        why: "a switch of claude's refresh locking",
    },
    Entry {
        name: "CLAUDE_CODE_USE_CCR_V2",
        why: "a feature switch, not a provider",
    },
    Entry {
        name: "CLAUDE_CODE_USE_COWORK_PLUGINS",
        why: "a feature switch, not a provider",
    },
    Entry {
        name: "CLAUDE_CODE_USE_NATIVE_FILE_SEARCH",
        why: "a feature switch, not a provider",
    },
    Entry {
        name: "CLAUDE_CODE_USE_POWERSHELL_TOOL",
        why: "a feature switch, not a provider",
    },
    Entry {
        name: "CLAUDE_CODE_ARG_KEY_SHAPE",
        why: "input handling, not a key",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_EARLY_KEY_GUARD",
        why: "input handling, not a key",
    },
    Entry {
        name: "CLAUDE_CODE_ARTIFACT_FD",
        why: "a descriptor for output, not a credential",
    },
    Entry {
        name: "CLAUDE_RUNNER_ACTIVITY_FD",
        why: "a descriptor for output, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_ATTRIBUTION_HEADER",
        why: "a switch of the attribution header",
    },
    Entry {
        name: "CLAUDE_CODE_GATEWAY_HINT_HEADERS",
        why: "a switch of gateway hint headers",
    },
    Entry {
        name: "CLAUDE_MOCK_HEADERLESS_429",
        why: "a test switch",
    },
    Entry {
        name: "CLAUDE_CODE_PROFILE_QUERY",
        why: "performance profiling",
    },
    Entry {
        name: "CLAUDE_CODE_PROFILE_STARTUP",
        why: "performance profiling",
    },
    Entry {
        name: "CLAUDE_AI_PROFILE_SCOPE",
        why: "an OAuth scope name",
    },
    Entry {
        name: "CLAUDE_CODE_STOP_ON_UNUSABLE_PROFILE",
        why: "a switch: stop when the selected profile cannot be used (selects none)",
    },
    Entry {
        name: "CCR_SESSION_PROFILE",
        why: "a remote-session mode switch, not a credential profile",
    },
    Entry {
        name: "CLAUDE_CHROME_TAB_GROUP_KEY",
        why: "an identifier of a browser tab group, not a key",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_HOME_SETTINGS_SEED",
        why: "a switch of how claude seeds its own home",
    },
    Entry {
        name: "CLAUDE_CODE_HOME_SEED_HOLD_TIMEOUT_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_HOME_SEED_VERDICT_TIMEOUT_MS",
        why: "a timing",
    },
    Entry {
        name: "CLAUDE_CODE_RELAUNCH_HOME_TRUST",
        why: "a switch of the home folder's trust prompt on relaunch",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_MTLS_RELOAD_ON_STALE_CONNECTION",
        why: "a switch of when the mTLS client identity is reloaded (names none)",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_REDIRECT_DENY_RECHECK",
        why: "a switch of the Bash tool's check of shell redirections (not of HTTP redirects)",
    },
    Entry {
        name: "CLAUDE_CODE_MOCK_TRIAL",
        why: "a test switch",
    },
    Entry {
        name: "CCR_CREDENTIAL_REFUSED_PREFIX",
        why: "the name of a message constant in claude's code, not a variable",
    },
    Entry {
        name: "CLAUDE_CODE_CERT_STORE",
        why: "which CA store to trust (TLS trust, like NODE_EXTRA_CA_CERTS: doctor's business)",
    },
    Entry {
        name: "CCR_AGENT_PROXY_CA_CERT_B64",
        why: "a CA certificate (public; TLS trust, like NODE_EXTRA_CA_CERTS)",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_LOOPED_CROSS_CERT_DROP",
        why: "certificate-chain handling",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_SELF_NAMED_CERT_DROP",
        why: "certificate-chain handling",
    },
    Entry {
        name: "ANTHROPIC_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_BRIDGE_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_CLOUD_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_HOST_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_RUNNER_SESSION_ID",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_LAUNCHED_BY_SESSION_IDS",
        why: "an identifier, not a credential",
    },
    Entry {
        name: "CLAUDE_CODE_DISABLE_NESTED_SESSION_ID",
        why: "a switch",
    },
    Entry {
        name: "CCR_SESSION_ID_RE",
        why: "an identifier pattern",
    },
];

/// Set by claude-iso itself: the caller's values never pass through, they are replaced
/// (the caller's `CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR`, which claude-iso may set too,
/// is removed by rule like any other credential, and reported).
pub const REPLACED: &[Entry] = &[
    Entry {
        name: "HOME",
        why: "the scratch home",
    },
    Entry {
        name: "CLAUDE_CODE_OAUTH_TOKEN",
        why: "the setup-token",
    },
    Entry {
        name: "CLAUDE_ISO",
        why: "marks the scratch home for a nested claude-iso",
    },
];

/// Why a variable of the caller does not reach the command.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// claude-iso sets it.
    Replaced(&'static Entry),
    /// It matches this pattern of this rule.
    Rule(&'static Rule, &'static str),
    /// It is on [`LISTED`].
    Listed(&'static Entry),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Replaced(e) => write!(f, "set by claude-iso: {}", e.why),
            Reason::Rule(r, p) => write!(f, "matches {p}: {}", r.what),
            Reason::Listed(e) => f.write_str(e.why),
        }
    }
}

/// Why `name` is removed from (or replaced in) the command's environment; `None` when
/// the caller's value passes through.
#[must_use]
pub fn why(name: &OsStr) -> Option<Reason> {
    if let Some(e) = find(REPLACED, name) {
        return Some(Reason::Replaced(e));
    }
    credential(name)
}

/// Whether the caller's `name` is removed (and reported as removed): it matches a rule
/// or is listed, and is not one of the [`REPLACED`] variables claude-iso sets.
#[must_use]
pub fn is_scrubbed(name: &OsStr) -> bool {
    matches!(why(name), Some(Reason::Rule(..) | Reason::Listed(_)))
}

/// Whether the command does not get the caller's `name`: scrubbed, or named by
/// `--unset`, unless `--keep-env` names it. The one rule for the launch
/// (`environment::child_env`) and for what the guard judges against (`guard::command_env`).
#[must_use]
pub fn removed(name: &OsStr, keep: &[String], unset: &[String]) -> bool {
    let named = |list: &[String]| list.iter().any(|n| OsStr::new(n) == name);
    (is_scrubbed(name) || named(unset)) && !named(keep)
}

/// Whether `name` carries or locates a credential: it is removed by a rule or listed
/// (whether or not claude-iso also sets it, as it does `CLAUDE_CODE_OAUTH_TOKEN`).
#[must_use]
pub fn is_credential(name: &OsStr) -> bool {
    credential(name).is_some()
}

/// The [`KEEP`] entry of `name`, if it has one.
#[must_use]
pub fn kept(name: &OsStr) -> Option<&'static Entry> {
    find(KEEP, name)
}

/// Whether `name` is in one of claude's [`NAMESPACES`].
#[must_use]
pub fn in_namespace(name: &OsStr) -> bool {
    NAMESPACES
        .iter()
        .any(|ns| name.as_bytes().starts_with(ns.as_bytes()))
}

fn credential(name: &OsStr) -> Option<Reason> {
    if let Some(e) = find(LISTED, name) {
        return Some(Reason::Listed(e));
    }
    if !in_namespace(name) || kept(name).is_some() || is_own(name) {
        return None;
    }
    rule_of(name.as_bytes()).map(|(r, p)| Reason::Rule(r, p))
}

/// claude-iso's own variables: options of claude-iso, which claude does not read, passed
/// on so that a claude-iso the command starts inherits them; no rule applies to them.
/// Only these names: any other `CLAUDE_ISO_…` name is judged like the rest.
pub const OWN: &[&str] = &[
    "CLAUDE_ISO_ALLOW_PROJECT_AUTH",
    "CLAUDE_ISO_BROKER",
    "CLAUDE_ISO_ENV_FILE",
    "CLAUDE_ISO_HOME",
    "CLAUDE_ISO_INIT",
    "CLAUDE_ISO_INIT_GRACE",
    "CLAUDE_ISO_MASK",
    "CLAUDE_ISO_NAME",
    "CLAUDE_ISO_SCRUB_TOOLS",
    "CLAUDE_ISO_TOKEN_VIA",
];

/// Whether `name` is one of claude-iso's own variables ([`OWN`]).
#[must_use]
pub fn is_own(name: &OsStr) -> bool {
    OWN.iter().any(|o| OsStr::new(o) == name)
}

fn find(list: &'static [Entry], name: &OsStr) -> Option<&'static Entry> {
    list.iter().find(|e| OsStr::new(e.name) == name)
}

/// The words of a name as the rules read them: split at `_`, then each word that holds
/// a [`COMPOUND`] word split into its parts — what comes before it, the compound word,
/// and one of [`COMPOUND_TAILS`] after it (a plural `S` dropped) — after a trailing
/// number is dropped. A word that is not of that shape stays as it is
/// (`TOKENIZER`, `KEYBOARD`), without a number after it (`DIR2` is `DIR`).
#[must_use]
pub fn words(name: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    for word in name.split(|b| *b == b'_') {
        match compound_parts(word) {
            Some(parts) => out.extend(parts.into_iter().filter(|p| !p.is_empty())),
            None => out.push(without_number(word)),
        }
    }
    out
}

/// A word without the number after it (`DIR2` is `DIR`); a word that is only a number
/// stays as it is.
fn without_number(word: &[u8]) -> &[u8] {
    let digits = word.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == word.len() {
        word
    } else {
        &word[..word.len() - digits]
    }
}

/// `[before, compound word, tail]` of one word, or `None` when it is not of that shape.
fn compound_parts(word: &[u8]) -> Option<[&[u8]; 3]> {
    let digits = word.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let core = &word[..word.len() - digits];
    if core.is_empty() {
        return None;
    }
    // Where the longest compound word that ends `w` starts.
    let split = |w: &[u8]| -> Option<usize> {
        COMPOUND
            .iter()
            .filter(|c| w.ends_with(c.as_bytes()))
            .map(|c| w.len() - c.len())
            .min()
    };
    if COMPOUND.iter().any(|c| c.as_bytes() == core) {
        return Some([&[], core, &[]]);
    }
    for tail in COMPOUND_TAILS {
        if let Some(rest) = core.strip_suffix(tail.as_bytes()) {
            if let Some(at) = split(rest) {
                let tail: &[u8] = if *tail == "S" {
                    &[]
                } else {
                    &core[rest.len()..]
                };
                return Some([&rest[..at], &rest[at..], tail]);
            }
        }
    }
    let at = split(core)?;
    Some([&core[..at], &core[at..], &[]])
}

fn rule_of(name: &[u8]) -> Option<(&'static Rule, &'static str)> {
    let words = words(name);
    RULES.iter().find_map(|r| {
        r.patterns
            .iter()
            .find(|p| {
                let pat: Vec<&[u8]> = p.as_bytes().split(|b| *b == b'_').collect();
                glob(&pat, &words)
            })
            .map(|p| (r, *p))
    })
}

/// Word glob: `*` matches any number of whole words, `(A|B)` one word of those.
fn glob(pat: &[&[u8]], words: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => words.is_empty(),
        Some((&b"*", rest)) => (0..=words.len()).any(|i| glob(rest, &words[i..])),
        Some((p, rest)) => words.first().is_some_and(|w| word_is(p, w)) && glob(rest, &words[1..]),
    }
}

fn word_is(pattern: &[u8], word: &[u8]) -> bool {
    match pattern
        .strip_prefix(b"(")
        .and_then(|p| p.strip_suffix(b")"))
    {
        Some(alternatives) => alternatives.split(|b| *b == b'|').any(|a| a == word),
        None => pattern == word,
    }
}

/// Fragments that make a name look credential-bearing, for the drift check: wider
/// than [`RULES`] on purpose (a name with one of them is either removed or on [`KEEP`],
/// after a human looked at it).
pub const SUSPICIOUS: &[&str] = &[
    "KEY",
    "TOKEN",
    "AUTH",
    "BEARER",
    "CRED",
    "SECRET",
    "PASSW",
    "PASSPHRASE",
    "COOKIE",
    "DESCRIPTOR",
    "CERT",
    "JWT",
    "SIGNING",
    "IDENTITY",
    "FEDERATION",
    "SOCKET",
    "HEADER",
    "PROFILE",
    "CONFIG_DIR",
    "SETTINGS_PATH",
    "SESSION_ID",
    "CLAUDE_CODE_USE_",
    "HOME",
    "MTLS",
    "_MOCK_",
    "REDIRECT",
];

/// Whether `name`, in one of [`NAMESPACES`], contains one of [`SUSPICIOUS`], is a
/// descriptor number (`…_FD`), or matches a rule (every name a rule removes is looked
/// at, or kept, by a human).
#[must_use]
pub fn looks_like_credential(name: &str) -> bool {
    in_namespace(OsStr::new(name))
        && (SUSPICIOUS.iter().any(|s| name.contains(s))
            || name.ends_with("_FD")
            || rule_of(name.as_bytes()).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubbed(name: &str) -> bool {
        is_scrubbed(OsStr::new(name))
    }

    #[test]
    fn words_not_substrings() {
        assert!(scrubbed("ANTHROPIC_AUTH_TOKEN"));
        assert!(scrubbed("CCR_OAUTH_TOKEN_FILE"));
        assert!(scrubbed("CLAUDE_CODE_FROBNICATE_API_KEY"));
        assert!(scrubbed("AWS_BEARER_TOKEN_BEDROCK"));
        assert!(scrubbed("CLAUDE_CODE_USE_BEDROCK"));
        assert!(!scrubbed("CLAUDE_CODE_TOKENIZER"));
        assert!(!scrubbed("ANTHROPIC_MODEL"));
        assert!(!scrubbed("ANTHROPIC_BASE_URL"));
        assert!(!scrubbed("GITHUB_TOKEN"), "outside claude's namespaces");
        assert!(!scrubbed("DISABLE_AUTOUPDATER"));
        assert!(!scrubbed("CLAUDE_CODE_MAX_OUTPUT_TOKENS"));
        assert!(!scrubbed("CLAUDE_CODE_KEYBOARD_LAYOUT"));
        assert!(!scrubbed("ANTHROPIC_FROBNICATE_SIGNING_SEED"));
        // Bytes, not text: a name that is not UTF-8 is still judged by its words.
        assert!(is_scrubbed(OsStr::from_bytes(b"CLAUDE_\xff_TOKEN")));
    }

    /// Review of main: names of the same families, in other shapes, reached the command.
    #[test]
    fn compound_plural_and_numbered_words() {
        for name in [
            "ANTHROPIC_API_KEYS",
            "ANTHROPIC_API_KEY2",
            "ANTHROPIC_API_KEY_2",
            "ANTHROPIC_KEY_FILE",
            "ANTHROPIC_APIKEY",
            "CLAUDE_CODE_PRIVATE_KEY_PATH",
            "CLAUDE_CODE_PRIVATEKEY",
            "CLAUDE_CODE_KEYFILE",
            "CLAUDE_CODE_AUTHTOKEN",
            "CLAUDE_CODE_OAUTHTOKEN",
            "CLAUDE_CODE_TOKENFILE",
            "CLAUDE_CODE_ACCESSTOKEN",
            "ANTHROPIC_APITOKEN",
            "ANTHROPIC_JWT",
            "ANTHROPIC_JWT_FILE",
            "ANTHROPIC_SECRETS",
            "ANTHROPIC_CREDFILE",
            "ANTHROPIC_CONFIG_HOME",
            "ANTHROPIC_CONFIGDIR",
            "CLAUDE_CODE_CONFIG_PATH",
            "CLAUDE_CODE_CONFIG_FILE",
            "CLAUDE_CODE_CONFIG_DIRECTORY",
            "CLAUDE_CODE_SETTINGS_DIR",
            "CLAUDE_SETTINGS_FILE",
            "CLAUDE_HOME",
            "ANTHROPIC_HOME",
        ] {
            assert!(scrubbed(name), "{name}");
        }
        assert_eq!(
            words(b"CLAUDE_CODE_OAUTHTOKEN2"),
            [&b"CLAUDE"[..], b"CODE", b"OAUTH", b"TOKEN"]
        );
        assert_eq!(
            words(b"X_KEYS_KEYFILE"),
            [&b"X"[..], b"KEY", b"KEY", b"FILE"]
        );
        assert_eq!(
            words(b"X_TOKENIZER_BYPASS"),
            [&b"X"[..], b"TOKENIZER", b"BYPASS"]
        );
    }

    #[test]
    fn replaced_names_are_replaced_not_removed() {
        for e in REPLACED {
            assert!(!scrubbed(e.name), "{}", e.name);
            assert!(matches!(why(OsStr::new(e.name)), Some(Reason::Replaced(_))));
        }
        assert!(scrubbed("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"));
        assert!(is_credential(OsStr::new("CLAUDE_CODE_OAUTH_TOKEN")));
        assert!(is_credential(OsStr::new(
            "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"
        )));
        assert!(!is_credential(OsStr::new("HOME")));
        assert!(!is_credential(OsStr::new("CLAUDE_ISO")));
    }

    #[test]
    fn the_lists_are_minimal_and_disjoint() {
        for e in LISTED {
            assert!(
                !in_namespace(OsStr::new(e.name)) || rule_of(e.name.as_bytes()).is_none(),
                "{} follows a rule: it does not belong on LISTED",
                e.name
            );
            assert!(kept(OsStr::new(e.name)).is_none(), "{}", e.name);
        }
        for e in KEEP {
            assert!(
                looks_like_credential(e.name),
                "{} does not look like a credential: it does not belong on KEEP",
                e.name
            );
            assert!(!is_credential(OsStr::new(e.name)), "{}", e.name);
        }
        let mut all: Vec<&str> = LISTED
            .iter()
            .chain(KEEP)
            .chain(REPLACED)
            .map(|e| e.name)
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a name is on two lists");
    }

    #[test]
    fn every_pattern_is_well_formed() {
        for r in RULES {
            for p in r.patterns {
                assert!(
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_uppercase() || b"_*(|)".contains(&b)),
                    "{p}"
                );
                // A pattern matches the name it spells (with `*` as one word, and each
                // alternative of a `(A|B)`).
                for alternative in alternatives(p) {
                    let example = alternative.replace('*', "X");
                    let example = if example.starts_with("X_") {
                        format!("CLAUDE_{example}")
                    } else {
                        example
                    };
                    assert!(
                        rule_of(example.as_bytes()).is_some(),
                        "{p} does not match {example}"
                    );
                }
            }
        }
    }

    /// `A_(B|C)_D` spelled out: `A_B_D`, `A_C_D`.
    fn alternatives(p: &str) -> Vec<String> {
        match (p.find('('), p.find(')')) {
            (Some(open), Some(close)) => p[open + 1..close]
                .split('|')
                .flat_map(|a| alternatives(&format!("{}{a}{}", &p[..open], &p[close + 1..])))
                .collect(),
            _ => vec![p.to_owned()],
        }
    }
}
