//! Destinations: where the token goes (the base URL, other API base URLs, the proxy),
//! judged from the layers' `env` and the command's environment; URL origins shown without
//! userinfo, and which hosts are Anthropic's.

#![forbid(unsafe_code)]

use serde_json::{Map, Value};

use crate::caller::CallerEnv;

/// Where claude sends the token when nothing says otherwise.
pub const DEFAULT_DESTINATION: &str = "https://api.anthropic.com";
/// Where the token goes, and which layer chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `scheme://host[:port]`, never userinfo.
    pub origin: String,
    /// `the default`, `ANTHROPIC_BASE_URL in the caller's environment`, or
    /// `env.ANTHROPIC_BASE_URL in <layer> <file>`.
    pub chosen_by: String,
    /// A proxy the requests go through, with who set it.
    pub proxy: Option<(String, String)>,
    /// Other API base URLs claude may send the token to (`CLAUDE_CODE_API_BASE_URL`),
    /// with who set each; only those whose origin differs from [`Self::origin`].
    pub also: Vec<(String, String)>,
}

impl Destination {
    /// Whether the origin, and every other base URL set, is an Anthropic host reached
    /// over https.
    #[must_use]
    pub fn is_anthropic(&self) -> bool {
        anthropic_origin(&self.origin) && self.also.iter().all(|(o, _)| anthropic_origin(o))
    }

    /// `the token goes to ORIGIN (chosen by …)[, or to O (set by …)][, through proxy P (set by …)]`.
    #[must_use]
    pub fn line(&self) -> String {
        let mut s = format!("{} (chosen by {})", self.origin, self.chosen_by);
        for (origin, by) in &self.also {
            s.push_str(&format!(", or to {origin} (set by {by})"));
        }
        if let Some((proxy, by)) = &self.proxy {
            s.push_str(&format!(", through the proxy {proxy} (set by {by})"));
        }
        s
    }
}

/// Whether `origin` (`scheme://host[:port]`) is an Anthropic host reached over https.
fn anthropic_origin(origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("https://") else {
        return false;
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    ["anthropic.com", "claude.ai", "claude.com"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Whether two URLs name the same place: scheme and host compared in any case, the
/// default port (`80` for http, `443` for https) as no port, a path of `/` as none and a
/// `/` at the end of a path as none; userinfo, path and query otherwise compared as
/// written. Not URLs (no `scheme://`): never the same unless equal.
pub(super) fn same_url(a: &str, b: &str) -> bool {
    match (normal_url(a), normal_url(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normal_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut host = host.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port {
        if let Some(h) = host.strip_suffix(port) {
            host = h.to_owned();
        }
    }
    let (path, query) = match tail.find(['?', '#']) {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let path = path.trim_end_matches('/');
    Some(format!(
        "{scheme}://{}{host}{path}{query}",
        userinfo.map(|u| format!("{u}@")).unwrap_or_default()
    ))
}

/// The base-URL variable that chooses where the token goes.
pub const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";
/// Other base URLs of claude's API that the token can be sent to.
pub const OTHER_API_URL_VARS: &[&str] = &["CLAUDE_CODE_API_BASE_URL"];
/// The proxy variables claude's HTTP client honours for an `https` destination, first
/// set wins (it falls back to the `http` one; `ALL_PROXY` last).
pub const HTTPS_PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "CLAUDE_CODE_HTTPS_PROXY",
    "HTTP_PROXY",
    "http_proxy",
    "CLAUDE_CODE_HTTP_PROXY",
    "ALL_PROXY",
    "all_proxy",
];
/// The same for an `http` destination.
pub const HTTP_PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "CLAUDE_CODE_HTTP_PROXY",
    "ALL_PROXY",
    "all_proxy",
];

/// [`destination`](super::destination) over documents named by who they are.
pub(super) fn destination_of(
    layers: &[(String, &Map<String, Value>)],
    caller: &CallerEnv,
) -> Destination {
    let pick = |name: &str| -> Option<(String, String)> {
        layers
            .iter()
            .find_map(|(who, doc)| {
                let v = doc.get("env")?.as_object()?.get(name)?;
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                Some((v, format!("env.{name} in {who}")))
            })
            .filter(|(v, _)| !v.is_empty())
            .or_else(|| {
                let v = caller.get(name).filter(|v| !v.is_empty())?;
                Some((
                    v.to_string_lossy().into_owned(),
                    format!("{name} in the caller's environment"),
                ))
            })
    };
    let (origin_of, chosen_by) = pick(BASE_URL_VAR).map_or_else(
        || (DEFAULT_DESTINATION.to_owned(), "the default".to_owned()),
        |(v, by)| (origin(&v), by),
    );
    let also = OTHER_API_URL_VARS
        .iter()
        .filter_map(|n| pick(n))
        .map(|(v, by)| (origin(&v), by))
        .filter(|(o, _)| *o != origin_of)
        .collect();
    let proxies = if origin_of.starts_with("http://") {
        HTTP_PROXY_VARS
    } else {
        HTTPS_PROXY_VARS
    };
    let proxy = proxies
        .iter()
        .find_map(|n| pick(n))
        .map(|(v, by)| (origin(&v), by));
    Destination {
        origin: origin_of,
        chosen_by,
        proxy,
        also,
    }
}

/// `scheme://host[:port]` of a URL, never its userinfo (which may hold a password), path
/// or query; characters outside a host's alphabet are shown as `?`. The authority ends
/// at the first `/`, `?`, `#` or `\`, and userinfo at its last `@`, as WHATWG URL parsing
/// (node's, bun's) has it.
#[must_use]
pub fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r))
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (Some(s.to_ascii_lowercase()), r)
        }
        _ => (None, url),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // A port that is not a number is no URL a client would send to: it is what is left
    // of a password holding an unencoded '/', '?', '#' or '\\' (`user:pa/ss@host`), and
    // must not be shown.
    if host.is_empty() || !port_is_numeric(host) {
        return "an unparsable URL".into();
    }
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]%".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '?'
            }
        })
        .collect();
    match scheme {
        Some(s) => format!("{s}://{host}"),
        None => host,
    }
}

/// Whether `host` (`name`, `name:port`, `[v6]` or `[v6]:port`) has no port or a
/// numeric one.
fn port_is_numeric(host: &str) -> bool {
    let port = if host.starts_with('[') {
        match host.find(']') {
            Some(i) => match &host[i + 1..] {
                "" => return true,
                rest => match rest.strip_prefix(':') {
                    Some(port) => port,
                    None => return false,
                },
            },
            None => return false,
        }
    } else {
        match host.split_once(':') {
            None => return true,
            Some((_, port)) => port,
        }
    };
    port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_without_userinfo() {
        assert_eq!(origin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
        assert_eq!(
            origin("https://user:pw@api.example.com"),
            "https://api.example.com"
        );
        assert_eq!(
            origin("https://u:p@w@Evil.example/a@b"),
            "https://evil.example"
        );
        assert_eq!(origin("http://h\\@x.example"), "http://h");
        assert_eq!(origin("api.example.com/v1"), "api.example.com");
        assert_eq!(origin("http://"), "an unparsable URL");
        assert_eq!(origin("http://a\x1b[31mb"), "http://a?[31mb");
        for leaky in [
            "http://user:Zq/7@host",
            "user:Zq/7@host",
            "http://user:Zq?7@h",
            "http://user:Zq#7@h",
            "http://user:Zq\\7@h",
        ] {
            let shown = origin(leaky);
            assert!(
                !shown.contains("Zq") && !shown.contains("user"),
                "{leaky}: {shown}"
            );
        }
    }

    #[test]
    fn anthropic_hosts() {
        let d = |o: &str| Destination {
            origin: o.into(),
            chosen_by: String::new(),
            proxy: None,
            also: Vec::new(),
        };
        assert!(d("https://api.anthropic.com").is_anthropic());
        assert!(d("https://api.anthropic.com:443").is_anthropic());
        assert!(!d("http://api.anthropic.com").is_anthropic());
        assert!(!d("https://api.anthropic.com.evil").is_anthropic());
        assert!(!d("https://evilanthropic.com").is_anthropic());
    }
}
