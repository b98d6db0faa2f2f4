//! What is removed from the command's environment: rules, then lists. A leaf: the
//! launcher, the env-file reader, `--dry-run`, `doctor`, the man page and README all read
//! this one table.
//!
//! Inside claude's namespaces ([`NAMESPACES`]) every name that matches a credential
//! pattern ([`RULES`]) is removed, unless it is configuration on the [`KEEP`] list.
//! Names that carry or locate a credential without following a pattern are on
//! [`LISTED`]. The variables claude-iso sets itself ([`REPLACED`]) never pass through
//! from the caller either. Each release of claude adds names: the rules catch the new
//! ones that follow a pattern, and `tests/drift.rs` fails CI on any new name that looks
//! like a credential ([`looks_like_credential`]) until it is reviewed.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// Prefixes of the variables claude reads its credentials and configuration from. The
/// rules apply inside these only (`GITHUB_TOKEN` is the command's business).
pub const NAMESPACES: &[&str] = &["ANTHROPIC_", "CLAUDE_", "CCR_", "AWS_BEARER_TOKEN_"];

/// A credential pattern. Patterns are matched word by word (words are separated by
/// `_`); `*` stands for any number of whole words, none included: `*_TOKEN_*` matches
/// `ANTHROPIC_AUTH_TOKEN` and `CCR_OAUTH_TOKEN_FILE`, not `CLAUDE_CODE_MAX_OUTPUT_TOKENS`.
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
        patterns: &["*_API_KEY_*", "*_APIKEY_*", "*_KEY"],
        what: "an API key, a signing key, or where one comes from",
    },
    Rule {
        patterns: &["*_TOKEN_*", "*_TOKENS_*"],
        what: "a token, or the file or descriptor it is read from",
    },
    Rule {
        patterns: &[
            "*_AUTH_*",
            "*_OAUTH_*",
            "*_BEARER_*",
            "*_AUTHORIZE_*",
            "*_AUTHENTICATE_*",
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
        patterns: &["*_DESCRIPTOR_*"],
        what: "a file descriptor claude reads a credential from",
    },
    Rule {
        patterns: &["CLAUDE_CODE_USE_*"],
        what: "switches claude to another provider and its credentials",
    },
    Rule {
        patterns: &["*_CONFIG_DIR", "*_PROFILE", "*_SETTINGS_PATH"],
        what: "moves claude's config, credential store, profile or settings out of the scratch home",
    },
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
        name: "CLAUDE_CODE_CLIENT_CERT",
        why: "the mTLS client identity (with CLAUDE_CODE_CLIENT_KEY)",
    },
    Entry {
        name: "XDG_CONFIG_HOME",
        why: "claude reads the SDK profile chain from $XDG_CONFIG_HOME/anthropic; unset, that falls inside the scratch home",
    },
];

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
    if !in_namespace(name) || kept(name).is_some() {
        return None;
    }
    rule_of(name.as_bytes()).map(|(r, p)| Reason::Rule(r, p))
}

fn find(list: &'static [Entry], name: &OsStr) -> Option<&'static Entry> {
    list.iter().find(|e| OsStr::new(e.name) == name)
}

fn rule_of(name: &[u8]) -> Option<(&'static Rule, &'static str)> {
    let words: Vec<&[u8]> = name.split(|b| *b == b'_').collect();
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

/// Word glob: `*` matches any number of whole words.
fn glob(pat: &[&[u8]], words: &[&[u8]]) -> bool {
    match pat.split_first() {
        None => words.is_empty(),
        Some((&b"*", rest)) => (0..=words.len()).any(|i| glob(rest, &words[i..])),
        Some((w, rest)) => words.first() == Some(w) && glob(rest, &words[1..]),
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
];

/// Whether `name`, in one of [`NAMESPACES`], contains one of [`SUSPICIOUS`] (or is a
/// descriptor number, `…_FD`).
#[must_use]
pub fn looks_like_credential(name: &str) -> bool {
    in_namespace(OsStr::new(name))
        && (SUSPICIOUS.iter().any(|s| name.contains(s)) || name.ends_with("_FD"))
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
        // Bytes, not text: a name that is not UTF-8 is still judged by its words.
        assert!(is_scrubbed(OsStr::from_bytes(b"CLAUDE_\xff_TOKEN")));
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
                            .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'*'),
                    "{p}"
                );
                // A pattern matches the name it spells (with `*` as one word).
                let example = p.replace('*', "X");
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
