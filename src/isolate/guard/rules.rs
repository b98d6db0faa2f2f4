//! The rules: which settings keys and `env` entries bring another credential, change
//! where or how the token travels, make something write secrets, or send telemetry
//! elsewhere; the pure judge of one settings document.

#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::shown;
use super::url::{destination_of, origin, same_url};
use crate::caller::CallerEnv;
use crate::layout::TOKEN_VAR;
use crate::scrub;

/// Settings keys that make claude fetch or use a credential other than the token:
/// claude's own list of "the credential helpers" (2.1.332).
pub const CREDENTIAL_KEYS: &[&str] = &[
    "apiKeyHelper",
    "awsAuthRefresh",
    "awsCredentialExport",
    "gcpAuthRefresh",
    "otelHeadersHelper",
    "proxyAuthHelper",
];

/// `env` entries that change where or how requests travel, by exact name. Patterns
/// cover the rest (see [`route_rule`]): every `*_BASE_URL`, every `ANTHROPIC_*_URL` /
/// `CLAUDE_*_URL`, every `*_PROXY` (any case), `ANTHROPIC_*_HEADERS` / `CLAUDE_*_HEADERS`.
pub const ROUTE_VARS: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_USE_SYSTEM_CA",
    "NODE_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "ANTHROPIC_UNIX_SOCKET",
    "CLAUDE_CODE_CERT_STORE",
    "CLAUDE_CODE_CLIENT_CERT",
    "CLAUDE_CODE_CLIENT_KEY",
    "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE",
    // TLS trust and the transport of claude's requests: claude 2.1.330+ list these with
    // the proxy and certificate variables (found by tests/e2e/drift.rs).
    "CLAUDE_CODE_DISABLE_LOOPED_CROSS_CERT_DROP",
    "CLAUDE_CODE_DISABLE_SELF_NAMED_CERT_DROP",
    "CLAUDE_CODE_PROXY_RESOLVES_HOSTS",
    "CLAUDE_CODE_DISABLE_PROXY_SCHEME_REPAIR",
    "CLAUDE_CODE_RUNNER_MODEL_SOCKET",
    // Name resolution: each can make the API's host name resolve to another host
    // (claude 2.1.332 keeps them, with `SSLKEYLOGFILE`, from settings a host does not own).
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
];

/// `env` entries that make claude's runtime or TLS stack, or the programs claude runs
/// (they inherit the settings' `env`), write secrets somewhere, by exact name; every
/// `BUN_*` and `NODE_*` variable not in [`ROUTE_VARS`] is of this family too (claude
/// 2.1.332's own rule for what settings a host does not own may not set:
/// `/^(?:BUN|NODE)_/` next to `SSLKEYLOGFILE`). Measured: `BUN_CONFIG_VERBOSE_FETCH=curl`
/// in a project's settings made claude 2.1.332 print every request, the
/// `Authorization: Bearer` token included, on its stderr.
pub const LEAK_VARS: &[&str] = &["SSLKEYLOGFILE"];
/// The prefixes of the runtime's variables (bun, node) in the same family.
pub const LEAK_PREFIXES: &[&str] = &["BUN_", "NODE_"];

/// The base-URL variables found in the real CLI (`grep -o '[A-Z_]*_BASE_URL'` of the
/// 2.1.197 and 2.1.332 binaries); all are caught by the `*_BASE_URL` pattern, listed for
/// the documentation.
pub const BASE_URL_VARS: &[&str] = &[
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AWS_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_GOOGLE_CLOUD_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "CLAUDE_BRIDGE_BASE_URL",
    "CLAUDE_CODE_API_BASE_URL",
    "CLAUDE_CODE_ARTIFACTS_API_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_ASSET_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_LIVE_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_SYNC_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_VIEWER_BASE_URL",
    "CLAUDE_CODE_GB_BASE_URL",
    "CLAUDE_CODE_MEMORY_API_BASE_URL",
    "CLAUDE_RUNNER_API_BASE_URL",
    "VOICE_STREAM_BASE_URL",
];

/// Why an entry is refused. Every variant names where the token would go (`to`: the
/// effective destination of the launch, scheme and host only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A settings key that brings its own credential (`apiKeyHelper`, …).
    Credential { to: String },
    /// An `env` entry claude-iso removes from the environment (or the token itself).
    Scrubbed { to: String },
    /// An `env` entry that changes where the token goes; the origin it names.
    Destination(String),
    /// An `env` proxy: requests, the token included, pass through this origin.
    Proxy(String),
    /// `NO_PROXY` that lets more hosts bypass the caller's proxy.
    NoProxyWidened { to: String },
    /// TLS trust, client certificates, custom headers, the API socket, name resolution.
    Transport { to: String },
    /// The runtime, its TLS stack or what claude runs would write secrets (TLS keys,
    /// requests with the token) somewhere (`SSLKEYLOGFILE`, `BUN_*`, `NODE_*`).
    Leak { to: String },
    /// Telemetry (with prompts and tool output when `OTEL_LOG_*` ask) goes to this origin.
    Telemetry(String),
    /// The file cannot be judged (not valid JSON, not a regular file, too large, …):
    /// why, and where the token goes as far as the other layers say.
    Unjudgeable { reason: String, to: String },
}

impl Why {
    /// A file that cannot be judged, for a caller that knows no other layer: the token
    /// goes where `caller` (the command's environment) sends it, as far as anyone can say.
    #[must_use]
    pub fn unjudgeable(reason: String, caller: &CallerEnv) -> Why {
        Why::Unjudgeable {
            reason,
            to: destination_of(&[], caller).origin,
        }
    }

    /// Names `to` as where the token goes (the launch's effective destination, known
    /// once every layer is read).
    pub(super) fn send_to(&mut self, origin: &str) {
        match self {
            Why::Credential { to }
            | Why::Scrubbed { to }
            | Why::NoProxyWidened { to }
            | Why::Transport { to }
            | Why::Leak { to }
            | Why::Unjudgeable { to, .. } => origin.clone_into(to),
            Why::Destination(_) | Why::Proxy(_) | Why::Telemetry(_) => {}
        }
    }
}

/// One refused entry of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file as claude would open it.
    pub path: PathBuf,
    /// Where the path leads when a symlink is on the way.
    pub target: Option<PathBuf>,
    /// `apiKeyHelper`, `env.ANTHROPIC_BASE_URL`, … (empty for an unjudgeable file).
    pub key: String,
    pub why: Why,
}

impl Finding {
    /// One line: the file, the key, and what it would do.
    #[must_use]
    pub fn line(&self) -> String {
        let file = match &self.target {
            Some(t) => format!(
                "{} (a symlink to {})",
                shown(&self.path.to_string_lossy()),
                shown(&t.to_string_lossy())
            ),
            None => shown(&self.path.to_string_lossy()),
        };
        let key = shown(&self.key);
        match &self.why {
            Why::Credential { to } => format!(
                "{file} sets {key}: claude would use that credential instead of the token (requests go to {to})"
            ),
            Why::Scrubbed { to } => format!(
                "{file} sets {key}: a variable claude-iso removes (it carries or relocates a credential; the token goes to {to})"
            ),
            Why::Destination(to) => {
                format!("{file} sets {key}: claude would send the token to {to}")
            }
            Why::Proxy(to) => format!(
                "{file} sets {key}: claude would send its requests, the token included, through the proxy {to}"
            ),
            Why::NoProxyWidened { to } => format!(
                "{file} sets {key}: more hosts would bypass the caller's proxy (the token goes to {to})"
            ),
            Why::Transport { to } => format!(
                "{file} sets {key}: it changes how requests carrying the token to {to} travel (TLS trust, certificates, headers, socket or name resolution)"
            ),
            Why::Leak { to } => format!(
                "{file} sets {key}: claude's runtime or TLS stack, or a program claude runs, would write secrets somewhere (TLS session keys, requests carrying the token to {to})"
            ),
            Why::Telemetry(to) => format!(
                "{file} sets {key}: claude would send its telemetry (prompts and tool output when OTEL_LOG_* ask for them) to {to}"
            ),
            Why::Unjudgeable { reason, to } => format!(
                "{file}: {reason}; claude-iso cannot tell what claude would apply from it (it could send the token elsewhere; otherwise the token goes to {to})"
            ),
        }
    }
}

/// How [`parse`]'s reasons begin: `not valid JSON (line …)`, `not a JSON object`.
pub(super) const NOT_JSON: &str = "not valid JSON";
pub(super) const NOT_OBJECT: &str = "not a JSON object";

/// A settings document: a JSON object, after an optional UTF-8 byte-order mark (claude
/// accepts one; measured).
///
/// # Errors
/// Not JSON, or not an object.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(NOT_OBJECT.into()),
        Err(e) => Err(format!(
            "{NOT_JSON} (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

/// The pure core: what in one settings document would bring another credential or
/// change where or how the token travels. `caller` is the caller's own environment
/// (an entry equal to the caller's own value changes nothing and is not a finding).
#[must_use]
pub fn judge(doc: &Map<String, Value>, caller: &CallerEnv) -> Vec<(String, Why)> {
    let mut out = judge_entries(doc, caller);
    // Where the token goes as far as this document and the caller say (the launch
    // names the destination of every layer together: `Why::send_to`).
    if !out.is_empty() {
        let to = destination_of(&[(String::new(), doc)], caller).origin;
        for (_, why) in &mut out {
            why.send_to(&to);
        }
    }
    out
}

/// The refused entries of one document, each with its reason (destinations not filled).
fn judge_entries(doc: &Map<String, Value>, caller: &CallerEnv) -> Vec<(String, Why)> {
    let mut out = Vec::new();
    for key in CREDENTIAL_KEYS {
        match doc.get(*key) {
            // JS-falsy (absent, `null`, `false`, `0`, `""`): no helper, no credential
            // (claude 2.1.197 and 2.1.332 both test the value for truthiness before
            // running a helper). `" "`, `true`, `1`, objects are truthy: refused.
            Some(v) if is_truthy(v) => {
                out.push(((*key).to_owned(), Why::Credential { to: String::new() }));
            }
            _ => {}
        }
    }
    let Some(env) = doc.get("env") else {
        return out;
    };
    let Value::Object(env) = env else {
        // Not an object: claude would not apply it; nothing to judge.
        return out;
    };
    for (name, value) in env {
        let key = format!("env.{name}");
        if scrub::is_scrubbed(OsStr::new(name)) || name == TOKEN_VAR {
            out.push((key, Why::Scrubbed { to: String::new() }));
            continue;
        }
        let Some(rule) = route_rule(name) else {
            continue;
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let caller_value = caller.get(name);
        if caller_value == Some(OsStr::new(&text)) {
            continue;
        }
        // The same URL written another way (`/` at the end, the default port, the case
        // of scheme or host) is the caller's own value too.
        if matches!(rule, Rule::Url | Rule::Proxy | Rule::Telemetry)
            && caller_value
                .and_then(OsStr::to_str)
                .is_some_and(|c| same_url(c, &text))
        {
            continue;
        }
        let why = match rule {
            Rule::Url => Why::Destination(origin(&text)),
            Rule::Proxy => Why::Proxy(origin(&text)),
            Rule::NoProxy => {
                if !widens_no_proxy(&text, caller) {
                    continue;
                }
                Why::NoProxyWidened { to: String::new() }
            }
            Rule::Transport => Why::Transport { to: String::new() },
            Rule::Leak => Why::Leak { to: String::new() },
            Rule::Telemetry => Why::Telemetry(origin(&text)),
        };
        out.push((key, why));
    }
    out
}

/// JavaScript's truthiness of a JSON value: `null`, `false`, `0` and `""` are false.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Url,
    Proxy,
    NoProxy,
    Transport,
    Leak,
    Telemetry,
}

/// Whether an `env` name changes where or how requests travel, makes something write
/// secrets, or sends telemetry elsewhere, and how.
fn route_rule(name: &str) -> Option<Rule> {
    let upper = name.to_ascii_uppercase();
    let ours = upper.starts_with("ANTHROPIC_") || upper.starts_with("CLAUDE_");
    if upper.ends_with("NO_PROXY") {
        Some(Rule::NoProxy)
    } else if upper.ends_with("_PROXY") || upper == "PROXY" {
        Some(Rule::Proxy)
    } else if upper.ends_with("_BASE_URL") || (ours && upper.ends_with("_URL")) {
        Some(Rule::Url)
    } else if ROUTE_VARS.contains(&upper.as_str()) || (ours && upper.ends_with("_HEADERS")) {
        Some(Rule::Transport)
    } else if LEAK_VARS.contains(&upper.as_str())
        || LEAK_PREFIXES.iter().any(|p| upper.starts_with(p))
    {
        Some(Rule::Leak)
    } else if upper.starts_with("OTEL_EXPORTER_OTLP") && upper.ends_with("ENDPOINT") {
        Some(Rule::Telemetry)
    } else {
        None
    }
}

/// Whether a `NO_PROXY` value names a host the caller's own `NO_PROXY`/`no_proxy` does
/// not (narrowing is fine; widening lets requests bypass the caller's proxy).
fn widens_no_proxy(value: &str, caller: &CallerEnv) -> bool {
    let norm = |s: &str| -> Vec<String> {
        s.split([',', ' '])
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    };
    let mut allowed = Vec::new();
    for name in ["NO_PROXY", "no_proxy"] {
        if let Some(v) = caller.get(name).and_then(OsStr::to_str) {
            allowed.extend(norm(v));
        }
    }
    norm(value).iter().any(|h| !allowed.contains(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolate::guard::DEFAULT_DESTINATION;

    fn env(pairs: &[(&str, &str)]) -> CallerEnv {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    fn judged(json: &str, caller: &CallerEnv) -> Vec<(String, Why)> {
        judge(&parse(json.as_bytes()).unwrap(), caller)
    }

    #[test]
    fn credential_keys_and_scrubbed_env() {
        let none = CallerEnv::default();
        let found = judged(
            r#"{"apiKeyHelper":"x","awsAuthRefresh":"y","env":{"CLAUDE_CONFIG_DIR":"/r","CLAUDE_CODE_OAUTH_TOKEN":"t","FOO":"1"}}"#,
            &none,
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "apiKeyHelper",
                "awsAuthRefresh",
                "env.CLAUDE_CONFIG_DIR",
                "env.CLAUDE_CODE_OAUTH_TOKEN"
            ]
        );
    }

    #[test]
    fn destinations_proxies_and_transport() {
        let none = CallerEnv::default();
        let found = judged(
            r#"{"env":{"ANTHROPIC_BASE_URL":"http://u:pw@evil:9/v1","https_proxy":"http://p:1","NODE_TLS_REJECT_UNAUTHORIZED":"0","ANTHROPIC_CUSTOM_HEADERS":"x-api-key: k","CLAUDE_CODE_API_BASE_URL":"https://e","DISABLE_TELEMETRY":"1","CLAUDE_CODE_MAX_OUTPUT_TOKENS":"9"}}"#,
            &none,
        );
        assert_eq!(
            found,
            [
                (
                    "env.ANTHROPIC_BASE_URL".into(),
                    Why::Destination("http://evil:9".into())
                ),
                ("env.https_proxy".into(), Why::Proxy("http://p:1".into())),
                (
                    "env.NODE_TLS_REJECT_UNAUTHORIZED".into(),
                    Why::Transport {
                        to: "http://evil:9".into()
                    }
                ),
                // Issue 11: a scrubbed credential variable now (it can hold an x-api-key line).
                (
                    "env.ANTHROPIC_CUSTOM_HEADERS".into(),
                    Why::Scrubbed {
                        to: "http://evil:9".into()
                    }
                ),
                (
                    "env.CLAUDE_CODE_API_BASE_URL".into(),
                    Why::Destination("https://e".into())
                ),
            ]
        );
        // Non-string values are judged too (claude 2.1.197 applied a number).
        assert_eq!(
            judged(r#"{"env":{"ANTHROPIC_BASE_URL":18701}}"#, &none).len(),
            1
        );
    }

    #[test]
    fn the_callers_own_value_and_narrower_no_proxy_pass() {
        let caller = env(&[
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("NO_PROXY", "localhost,.corp"),
        ]);
        assert!(
            judged(
                r#"{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:1","NO_PROXY":".corp"}}"#,
                &caller
            )
            .is_empty()
        );
        assert_eq!(
            judged(
                r#"{"env":{"no_proxy":"localhost,api.anthropic.com"}}"#,
                &caller
            ),
            [(
                "env.no_proxy".into(),
                Why::NoProxyWidened {
                    to: "http://127.0.0.1:1".into()
                }
            )]
        );
    }

    /// Second review: the caller's own URL written another way is still the caller's.
    #[test]
    fn the_callers_url_written_another_way_passes() {
        let caller = env(&[
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:18761"),
            ("HTTPS_PROXY", "https://Proxy.example"),
        ]);
        for same in [
            "http://127.0.0.1:18761/",
            "HTTP://127.0.0.1:18761",
            " http://127.0.0.1:18761// ",
        ] {
            let json = format!(r#"{{"env":{{"ANTHROPIC_BASE_URL":"{same}"}}}}"#);
            assert!(judged(&json, &caller).is_empty(), "{json}");
        }
        for same in ["https://proxy.example:443/", "HTTPS://PROXY.EXAMPLE"] {
            let json = format!(r#"{{"env":{{"HTTPS_PROXY":"{same}"}}}}"#);
            assert!(judged(&json, &caller).is_empty(), "{json}");
        }
        for other in [
            "http://127.0.0.1:18762",
            "https://127.0.0.1:18761",
            "http://127.0.0.1:18761/v2",
            "http://u:p@127.0.0.1:18761",
            "http://127.0.0.1.evil:18761",
            "127.0.0.1:18761",
        ] {
            let json = format!(r#"{{"env":{{"ANTHROPIC_BASE_URL":"{other}"}}}}"#);
            assert_eq!(judged(&json, &caller).len(), 1, "{json}");
        }
        let caller = env(&[("ANTHROPIC_BASE_URL", "https://api.example")]);
        assert!(
            judged(
                r#"{"env":{"ANTHROPIC_BASE_URL":"https://api.example:443/"}}"#,
                &caller
            )
            .is_empty()
        );
    }

    #[test]
    fn every_base_url_variable_is_caught() {
        for name in BASE_URL_VARS {
            assert_eq!(route_rule(name), Some(Rule::Url), "{name}");
        }
        for name in ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            assert_eq!(route_rule(name), Some(Rule::Proxy), "{name}");
        }
        for name in ["NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED"] {
            assert_eq!(route_rule(name), Some(Rule::Transport), "{name}");
        }
        assert_eq!(route_rule("PATH"), None);
        assert_eq!(route_rule("CLAUDE_CODE_MAX_OUTPUT_TOKENS"), None);
    }

    #[test]
    fn runtime_tls_and_name_resolution_variables_are_caught() {
        for name in [
            "SSLKEYLOGFILE",
            "BUN_CONFIG_VERBOSE_FETCH",
            "NODE_DEBUG",
            "bun_options",
        ] {
            assert_eq!(route_rule(name), Some(Rule::Leak), "{name}");
        }
        for name in ["HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NODE_OPTIONS"] {
            assert_eq!(route_rule(name), Some(Rule::Transport), "{name}");
        }
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ] {
            assert_eq!(route_rule(name), Some(Rule::Telemetry), "{name}");
        }
        assert_eq!(route_rule("BUNDLE"), None);
        let none = CallerEnv::default();
        let found = judged(
            r#"{"env":{"SSLKEYLOGFILE":"/tmp/k","OTEL_EXPORTER_OTLP_ENDPOINT":"http://u:p@otel.example:4318/v1"}}"#,
            &none,
        );
        assert_eq!(
            found,
            [
                (
                    "env.SSLKEYLOGFILE".into(),
                    Why::Leak {
                        to: DEFAULT_DESTINATION.into()
                    }
                ),
                (
                    "env.OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    Why::Telemetry("http://otel.example:4318".into())
                ),
            ]
        );
        // The caller's own value changes nothing.
        let caller = env(&[("SSLKEYLOGFILE", "/k")]);
        assert!(judged(r#"{"env":{"SSLKEYLOGFILE":"/k"}}"#, &caller).is_empty());
    }

    #[test]
    fn parse_accepts_a_bom_and_refuses_the_rest() {
        assert!(parse(b"\xEF\xBB\xBF{}").is_ok());
        assert!(parse(b"// c\n{}").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(b"{\"a\":1,}").is_err());
    }

    #[test]
    fn null_or_empty_helpers_bring_nothing() {
        let none = CallerEnv::default();
        assert!(judged(r#"{"apiKeyHelper":null,"awsAuthRefresh":""}"#, &none).is_empty());
        // Second review: claude tests truthiness, so `false` and `0` run no helper.
        for falsy in ["false", "0", "0.0", "-0", "\"\"", "null"] {
            let json = format!(r#"{{"apiKeyHelper":{falsy},"proxyAuthHelper":{falsy}}}"#);
            assert!(judged(&json, &none).is_empty(), "{json}");
        }
        for truthy in [
            "\" \"",
            "true",
            "1",
            "-1",
            "0.5",
            "{}",
            "[]",
            "\"0\"",
            "\"false\"",
        ] {
            let json = format!(r#"{{"apiKeyHelper":{truthy}}}"#);
            assert_eq!(judged(&json, &none).len(), 1, "{json}");
        }
    }
}
