//! The broker's forwarder: HTTP/1.1 on a Unix socket in, HTTPS (or HTTP) to the one
//! destination the caller chose out, with the token added by us and by nothing else.
//!
//! claude, started with `ANTHROPIC_UNIX_SOCKET`, `ANTHROPIC_BASE_URL=http://localhost`
//! and the placeholder credential `ssh-placeholder`, sends every API request over the
//! socket as plain HTTP/1.1 (claude's own remote mode; per release:
//! `docs/claude-facts.md`). Each request is forwarded as it arrives: every credential
//! header it carries is removed, `Authorization: Bearer <token>` is set, the method, path,
//! query and other headers pass unchanged, and both bodies stream (server-sent events
//! reach claude as the API sends them).
//!
//! Built on hyper (the server side) and reqwest with rustls (the client side, with the
//! system's trust store, `SSL_CERT_FILE`/`SSL_CERT_DIR`, `NODE_EXTRA_CA_CERTS` and the
//! caller's `HTTPS_PROXY`/`NO_PROXY`). The async runtime lives only here, started in the
//! broker process after the fork: the plain exec path never starts it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use crate::token::Token;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// Headers that carry a credential or a session: never forwarded from the client, so
/// whatever claude (or a tool using the socket) sends, only the token leaves the broker.
pub(crate) const CREDENTIAL_HEADERS: &[&str] = &[
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
pub(crate) struct Upstream {
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
    pub(crate) fn base_url(value: &str) -> Result<String, &'static str> {
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
/// (replaced on a reload), the destination, and what it has served.
struct State {
    upstream: Upstream,
    auth: RwLock<HeaderValue>,
    client: OnceLock<Result<reqwest::Client, String>>,
    options: Options,
    clients: Mutex<BTreeMap<u32, ClientStats>>,
    started: Instant,
}

impl State {
    fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| client(&self.upstream))
            .as_ref()
            .map_err(String::as_str)
    }

    fn auth(&self) -> HeaderValue {
        self.auth
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// How a broker serves: who may connect, whether it logs, reloads and reports.
pub(crate) struct Options {
    /// Whether a connection's peer may use the broker (its uid, gid).
    pub allowed: Box<dyn Fn(u32, u32) -> bool + Send + Sync>,
    /// The uids that may read the full status (`GET /_claude-iso/status`): the broker's
    /// own user, and root.
    pub admin_uid: u32,
    /// One line per request (and per refused connection) on stdout, for the journal.
    pub log: bool,
    /// Reads the token again on SIGHUP (a rotated token takes effect for the next
    /// request, while requests in flight finish with the old one).
    pub reload: Option<Box<dyn Fn() -> Result<Token, String> + Send + Sync>>,
    /// On SIGTERM: stop accepting, and let requests in flight finish for this long. Zero:
    /// stop at once (the per-launch broker, whose command is gone).
    pub grace: Duration,
    /// Called once the broker listens and its client is set up (`sd_notify` READY=1).
    pub ready: Option<Box<dyn FnOnce() + Send + Sync>>,
}

/// Requests and the API's usage figures per client uid, since start.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct ClientStats {
    pub requests: u64,
    pub errors: u64,
    pub bytes: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

/// The path a broker answers itself (never forwarded): its status.
pub(crate) const STATUS_PATH: &str = "/_claude-iso/status";

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
    json_response(
        StatusCode::BAD_GATEWAY,
        &serde_json::json!({
            "type": "error",
            "error": {"type": "api_error", "message": format!("claude-iso broker: {message}")},
        }),
    )
}

/// A JSON answer of the broker's own.
fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
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

async fn forward(
    state: Arc<State>,
    peer: u32,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if req.uri().path() == STATUS_PATH {
        return Ok(status_response(&state, peer));
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
    let record = Record {
        state: Arc::clone(&state),
        peer,
        method: method.to_string(),
        path: path.clone(),
        status: 502,
        started,
        bytes: 0,
        usage: Usage::default(),
        tail: Vec::new(),
        done: false,
    };
    let client = match state.client() {
        Ok(c) => c,
        Err(e) => return Ok(tapped(bad_gateway(e), record)),
    };
    let (parts, body) = req.into_parts();
    let url = format!("{}{path}", state.upstream.base);
    let headers = outgoing_headers(parts.headers, &state.auth());
    let sent = client
        .request(parts.method, url)
        .headers(headers)
        .body(reqwest::Body::wrap(body))
        .send()
        .await;
    let resp = match sent {
        Ok(resp) => {
            let resp: Response<reqwest::Body> = resp.into();
            let (mut parts, body) = resp.into_parts();
            strip_hop(&mut parts.headers);
            Response::from_parts(parts, body.map_err(|e| Box::new(e) as BoxError).boxed())
        }
        Err(e) => bad_gateway(&format!(
            "cannot forward the request to {}: {}",
            state.upstream.base,
            chain(&e)
        )),
    };
    Ok(tapped(resp, record))
}

/// `GET /_claude-iso/status`: the broker's own user (and root) get every client's
/// figures; anyone else allowed gets their own.
fn status_response(state: &State, peer: u32) -> Response<Body> {
    let clients = state
        .clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let shown: BTreeMap<String, ClientStats> = clients
        .into_iter()
        .filter(|(uid, _)| peer == state.options.admin_uid || peer == 0 || *uid == peer)
        .map(|(uid, s)| (uid.to_string(), s))
        .collect();
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "destination": state.upstream.base,
            "uptime_seconds": state.started.elapsed().as_secs(),
            "clients": shown,
        }),
    )
}

/// The API's usage figures seen in a response body (the largest of each: a stream
/// repeats them cumulatively).
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_creation: u64,
}

impl Usage {
    fn scan(&mut self, data: &[u8]) {
        for (key, slot) in [
            (&b"\"input_tokens\":"[..], &mut self.input),
            (b"\"output_tokens\":", &mut self.output),
            (b"\"cache_read_input_tokens\":", &mut self.cache_read),
            (
                b"\"cache_creation_input_tokens\":",
                &mut self.cache_creation,
            ),
        ] {
            for at in memchr::memmem::find_iter(data, key) {
                let digits: Vec<u8> = data[at + key.len()..]
                    .iter()
                    .skip_while(|b| **b == b' ')
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                if let Some(n) = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse::<u64>().ok())
                {
                    *slot = (*slot).max(n);
                }
            }
        }
    }
}

/// One request, accounted when its response body ends (or is dropped: a client that
/// went away).
struct Record {
    state: Arc<State>,
    peer: u32,
    method: String,
    path: String,
    status: u16,
    started: Instant,
    bytes: u64,
    usage: Usage,
    /// The end of the previous frame, so a figure split between frames is still seen.
    tail: Vec<u8>,
    done: bool,
}

impl Record {
    fn observe(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(data);
        self.usage.scan(&window);
        let keep = window.len().min(64);
        self.tail = window[window.len() - keep..].to_vec();
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        {
            let mut clients = self
                .state
                .clients
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let c = clients.entry(self.peer).or_default();
            c.requests += 1;
            c.errors += u64::from(self.status >= 500);
            c.bytes += self.bytes;
            c.input_tokens += self.usage.input;
            c.output_tokens += self.usage.output;
            c.cache_read_input_tokens += self.usage.cache_read;
            c.cache_creation_input_tokens += self.usage.cache_creation;
        }
        if self.state.options.log {
            // Never headers or bodies: who, what, how it went, how much.
            println!(
                "uid={} {} {} {} {}ms {}B input_tokens={} output_tokens={} cache_read={} cache_creation={}",
                self.peer,
                self.method,
                self.path,
                self.status,
                self.started.elapsed().as_millis(),
                self.bytes,
                self.usage.input,
                self.usage.output,
                self.usage.cache_read,
                self.usage.cache_creation
            );
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A response body that accounts for itself as it streams.
struct Tapped {
    inner: Body,
    record: Record,
}

impl hyper::body::Body for Tapped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.record.observe(data);
                }
            }
            std::task::Poll::Ready(None | Some(Err(_))) => this.record.finish(),
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn tapped(resp: Response<Body>, mut record: Record) -> Response<Body> {
    record.status = resp.status().as_u16();
    resp.map(|inner| Tapped { inner, record }.boxed())
}

/// Serves `listener` until SIGTERM: for the per-launch broker, sent by the kernel when
/// the command ends (its parent-death signal); for `broker serve`, by the service
/// manager. Connections whose peer `options.allowed` refuses are closed unanswered.
///
/// # Errors
/// The runtime or the listener could not be set up.
pub(crate) fn serve(
    listener: std::os::unix::net::UnixListener,
    upstream: Upstream,
    token: &Token,
    options: Options,
) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let mut options = options;
    let ready = options.ready.take();
    let state = Arc::new(State {
        upstream,
        auth: RwLock::new(auth_header(token)?),
        client: OnceLock::new(),
        options,
        clients: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
    });
    rt.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        // Handled from here on: a SIGTERM the caller held back until now is delivered.
        let mut handled = nix::sys::signal::SigSet::empty();
        handled.add(nix::sys::signal::Signal::SIGTERM);
        handled.add(nix::sys::signal::Signal::SIGHUP);
        let _ = handled.thread_unblock();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        if let Some(ready) = ready {
            ready();
        }
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let Ok(cred) = stream.peer_cred() else { continue };
                    if !(state.options.allowed)(cred.uid(), cred.gid()) {
                        if state.options.log {
                            println!("refused a connection from uid={}", cred.uid());
                        }
                        continue;
                    }
                    let state = Arc::clone(&state);
                    let peer = cred.uid();
                    let service = hyper::service::service_fn(move |req| {
                        forward(Arc::clone(&state), peer, req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                _ = hup.recv() => reload_token(&state),
                _ = term.recv() => break,
            }
        }
        drop(listener);
        let grace = state.options.grace;
        if !grace.is_zero()
            && tokio::time::timeout(grace, graceful.shutdown())
                .await
                .is_err()
            && state.options.log
        {
            println!(
                "stopped with requests still in flight after {}s",
                grace.as_secs()
            );
        }
        Ok(())
    })
}

/// On SIGHUP: reads the token again (`options.reload`) and sends it from the next request
/// on; when that fails, the token in use stays.
fn reload_token(state: &State) {
    let Some(reload) = &state.options.reload else {
        return;
    };
    match reload().and_then(|t| auth_header(&t).map_err(|e| e.to_string())) {
        Ok(h) => {
            *state
                .auth
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = h;
            if state.options.log {
                println!("reloaded the token");
            }
        }
        Err(e) => {
            if state.options.log {
                println!("reload failed, keeping the token in use: {e}");
            }
        }
    }
}

fn auth_header(token: &Token) -> std::io::Result<HeaderValue> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| std::io::Error::other("the token is not a valid header value"))?;
    auth.set_sensitive(true);
    Ok(auth)
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
