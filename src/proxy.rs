//! The broker's forwarder: HTTP/1.1 on a Unix socket in, HTTPS (or HTTP) to the one
//! destination the caller chose out, with the token added by us and by nothing else.
//!
//! claude, started with `ANTHROPIC_UNIX_SOCKET`, `ANTHROPIC_BASE_URL=http://localhost`
//! and the placeholder credential `ssh-placeholder`, sends every API request over the
//! socket as plain HTTP/1.1 (claude's own remote mode; measured on 2.1.197 and 2.1.332,
//! see `docs/claude-facts.md`). Each request is forwarded as it arrives: every credential
//! header it carries is removed, `Authorization: Bearer <token>` is set, the method, path,
//! query and other headers pass unchanged, and both bodies stream (server-sent events
//! reach claude as the API sends them).
//!
//! Built on hyper (the server side) and reqwest with rustls (the client side, with the
//! system's trust store, `SSL_CERT_FILE`/`SSL_CERT_DIR`, `NODE_EXTRA_CA_CERTS` and the
//! caller's `HTTPS_PROXY`/`NO_PROXY`). The async runtime lives only here, started in the
//! broker process after the fork: the plain exec path never starts it.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::token::Token;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Headers that carry a credential or a session: never forwarded from the client, so
/// whatever claude (or a tool using the socket) sends, only the token leaves the broker.
pub const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
    "cookie2",
];

/// Hop-by-hop headers (RFC 9110 7.6.1) and `host`: they describe one connection, not
/// the request, and the client sets its own.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Where requests go, and how the outgoing leg is set up. Everything from the caller's
/// environment, resolved before the fork.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `scheme://host[:port][/prefix]`, no trailing slash, no userinfo, no query.
    pub base: String,
    /// `HTTPS_PROXY` (or `https_proxy`, `ALL_PROXY`) for an `https` base; `HTTP_PROXY`
    /// for an `http` one.
    pub proxy: Option<String>,
    /// `NO_PROXY` / `no_proxy`.
    pub no_proxy: Option<String>,
    /// `NODE_EXTRA_CA_CERTS`: a PEM file whose certificates are trusted besides the
    /// system's (claude users behind a TLS-inspecting proxy set it).
    pub extra_ca: Option<PathBuf>,
}

impl Upstream {
    /// Checks and normalises a base URL (`ANTHROPIC_BASE_URL`): `http` or `https`, a
    /// host, no userinfo, query or fragment.
    ///
    /// # Errors
    /// What is wrong with it, in words (never the value: it may hold a secret).
    pub fn base_url(value: &str) -> Result<String, &'static str> {
        let (scheme, rest) = value
            .split_once("://")
            .ok_or("is not a URL (expected https://host[:port][/path])")?;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return Err("is not an http or https URL");
        }
        if rest.contains(['?', '#']) {
            return Err("has a query or fragment; give the base URL alone");
        }
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err(
                "holds a user name or password, which the broker would not send (it sends the token); remove them, or pass --token-via fd",
            );
        }
        if authority.is_empty() {
            return Err("names no host");
        }
        let parsed: hyper::Uri = value.parse().map_err(|_| "is not a valid URL")?;
        if parsed.host().is_none_or(str::is_empty) {
            return Err("names no host");
        }
        Ok(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            rest.trim_end_matches('/')
        ))
    }
}

/// What the broker serves with: the outgoing client (built at the first request, so the
/// trust store is read while claude starts, not before the exec), the credential header
/// and the destination.
struct State {
    upstream: Upstream,
    auth: HeaderValue,
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl State {
    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| client(&self.upstream))
            .as_ref()
            .map_err(String::as_str)
    }
}

/// The outgoing client: rustls with the system's roots (and the caller's extra CA file),
/// no redirects followed (a redirect must not carry the token anywhere), the caller's
/// proxy only, no decompression (bodies pass as the API sent them).
fn client(up: &Upstream) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Honours SSL_CERT_FILE and SSL_CERT_DIR (the broker's environment is the caller's).
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = &up.extra_ca {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
            format!(
                "cannot read NODE_EXTRA_CA_CERTS {}: {e}",
                path.to_string_lossy()
            )
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                format!(
                    "NODE_EXTRA_CA_CERTS {}: not a PEM certificate file: {e}",
                    path.to_string_lossy()
                )
            })?;
            roots
                .add(cert)
                .map_err(|e| format!("NODE_EXTRA_CA_CERTS {}: {e}", path.to_string_lossy()))?;
        }
    }
    // ring, not aws-lc-rs: it builds with the C compiler alone (no cmake), in a fraction
    // of the time; rustls marks it deprecated only for its lack of post-quantum key
    // exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .http1_only()
        .connect_timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    if let Some(p) = &up.proxy {
        let proxy = reqwest::Proxy::all(p.as_str())
            .map_err(|_| "the proxy variable is not a valid URL".to_owned())?
            .no_proxy(
                up.no_proxy
                    .as_deref()
                    .and_then(reqwest::NoProxy::from_string),
            );
        builder = builder.proxy(proxy);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))
}

/// An error and its causes on one line (`a: b: c`), without repeats.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The response to a request the broker could not forward: 502 with an Anthropic-style
/// JSON error whose message says, in one line, what failed.
fn bad_gateway(message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error", "message": format!("claude-iso broker: {message}")},
    });
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Removes the hop-by-hop headers, and those named in `Connection`.
fn strip_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_HEADERS {
        headers.remove(*name);
    }
}

/// The request headers that go out: the client's, less credentials and hop-by-hop
/// headers, with our `Authorization`.
fn outgoing_headers(mut headers: HeaderMap, auth: &HeaderValue) -> HeaderMap {
    strip_hop(&mut headers);
    for name in CREDENTIAL_HEADERS {
        headers.remove(*name);
    }
    headers.insert(header::AUTHORIZATION, auth.clone());
    headers
}

async fn forward(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let client = match state.client() {
        Ok(c) => c,
        Err(e) => return Ok(bad_gateway(e)),
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", state.upstream.base);
    let headers = outgoing_headers(parts.headers, &state.auth);
    let sent = client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap(body))
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let resp: Response<reqwest::Body> = resp.into();
            let (mut parts, body) = resp.into_parts();
            strip_hop(&mut parts.headers);
            Ok(Response::from_parts(
                parts,
                body.map_err(|e| Box::new(e) as BoxError).boxed(),
            ))
        }
        Err(e) => Ok(bad_gateway(&format!(
            "cannot forward the request to {}: {}",
            state.upstream.base,
            chain(&e)
        ))),
    }
}

/// Serves `listener` until SIGTERM (sent by the kernel when the command ends: the
/// broker's parent-death signal) or until `stop` resolves. Connections from another
/// user than ours are closed unanswered.
///
/// # Errors
/// The runtime or the listener could not be set up.
pub fn serve(
    listener: std::os::unix::net::UnixListener,
    upstream: Upstream,
    token: &Token,
    allowed_uid: u32,
) -> std::io::Result<()> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| std::io::Error::other("the token is not a valid header value"))?;
    auth.set_sensitive(true);
    let state = Arc::new(State {
        upstream,
        auth,
        client: OnceLock::new(),
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    match stream.peer_cred() {
                        Ok(cred) if cred.uid() == allowed_uid => {}
                        _ => continue,
                    }
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            forward(Arc::clone(&state), req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
                _ = term.recv() => return Ok(()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            Upstream::base_url("https://api.anthropic.com").unwrap(),
            "https://api.anthropic.com"
        );
        assert_eq!(
            Upstream::base_url("HTTP://127.0.0.1:8080/prefix/").unwrap(),
            "http://127.0.0.1:8080/prefix"
        );
        for bad in [
            "api.anthropic.com",
            "ftp://x",
            "https://user:pw@host",
            "https://host/?a=b",
            "https://",
            "https:///path",
        ] {
            assert!(Upstream::base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_and_hops_never_pass() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer ssh-placeholder"),
            ("x-api-key", "sk-ant-api03-x"),
            ("proxy-authorization", "Basic x"),
            ("cookie", "a=b"),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("host", "localhost"),
            ("transfer-encoding", "chunked"),
            ("anthropic-version", "2023-06-01"),
            ("content-length", "12"),
        ] {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let out = outgoing_headers(h, &HeaderValue::from_static("Bearer T"));
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["anthropic-version", "authorization", "content-length"]
        );
        assert_eq!(out.get_all("authorization").iter().count(), 1);
        assert_eq!(out["authorization"], "Bearer T");
    }

    #[test]
    fn bad_gateway_is_one_json_line() {
        let r = bad_gateway("cannot forward: connection refused");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    }
}
