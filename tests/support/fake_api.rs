//! A fake Anthropic Messages API on 127.0.0.1, std + serde_json only.
//!
//! One thread accepts, one thread serves each connection (HTTP/1.1 keep-alive,
//! `Content-Length` and chunked request bodies, `Expect: 100-continue`). Every request
//! is recorded (method, path, credential headers, body) before it is answered.
//!
//! - `POST /v1/messages` (any query string): a short text reply, as SSE when the body
//!   has `"stream": true`, else as a JSON `message`.
//! - `POST /v1/messages/count_tokens`: a token count.
//! - anything else: `404` with an Anthropic-style error body (claude treats the
//!   policy/settings/profile fetches as optional and carries on).
//! - [`Mode::Unauthorized`]: `401 authentication_error` to every request.
//!
//! Everything is bounded: header and body sizes, idle keep-alive time, and dropping
//! the [`FakeApi`] shuts every socket down and joins every thread.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 200;
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// A keep-alive connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// At most this many requests on one connection.
const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// At most this many connections over the server's life.
const MAX_CONNECTIONS: usize = 10_000;

/// How the fake answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Answer `/v1/messages` with this text.
    Reply(String),
    /// Answer every request with `401 authentication_error`.
    Unauthorized,
    /// Ask for a Bash tool call running `command` when the request offers the Bash tool
    /// and carries no tool result yet; once the result comes back (or for requests
    /// without tools), answer with the text `then`.
    BashTool { command: String, then: String },
}

/// One recorded request.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path including any query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    pub authorization: Option<String>,
    pub x_api_key: Option<String>,
    /// Every header, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path_only() == "/v1/messages"
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Request>>,
    streams: Mutex<Vec<(u64, TcpStream)>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    stopping: AtomicBool,
    next_id: AtomicU64,
}

/// The running fake. Dropping it stops it.
pub struct FakeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeApi {
    /// Start a fake answering `/v1/messages` with `reply`.
    pub fn start(reply: &str) -> FakeApi {
        FakeApi::with_mode(Mode::Reply(reply.to_string()))
    }

    /// Start a fake answering 401 to everything.
    pub fn unauthorized() -> FakeApi {
        FakeApi::with_mode(Mode::Unauthorized)
    }

    pub fn with_mode(mode: Mode) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake api: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake api: local_addr");
        let shared = Arc::new(Shared {
            mode: Mutex::new(mode),
            requests: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            workers: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fake-api-{}", addr.port()))
                .spawn(move || accept_loop(listener, shared))
                .expect("fake api: spawn acceptor")
        };
        FakeApi {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.shared.mode) = mode;
    }

    /// A snapshot of every request seen so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// `f` over the requests from index `from` on (no copying): how many requests there
    /// are now, and the first `Some` of `f`.
    pub fn scan_from<T>(
        &self,
        from: usize,
        f: impl FnMut(&Request) -> Option<T>,
    ) -> (usize, Option<T>) {
        let requests = lock(&self.shared.requests);
        (requests.len(), requests.iter().skip(from).find_map(f))
    }

    /// Only the `POST /v1/messages` requests.
    pub fn message_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_messages)
            .collect()
    }

    /// One line per request: `METHOD PATH auth=… x-api-key=…`, for failure messages.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for r in self.requests() {
            out.push_str(&format!(
                "  {} {} authorization={:?} x-api-key={:?}\n",
                r.method, r.path, r.authorization, r.x_api_key
            ));
        }
        if out.is_empty() {
            out.push_str("  (no requests)\n");
        }
        out
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for (_, s) in lock(&self.shared.streams).drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let workers: Vec<_> = lock(&self.shared.workers).drain(..).collect();
        for h in workers {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut accepted = 0usize;
    for conn in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        accepted += 1;
        if accepted > MAX_CONNECTIONS {
            break;
        }
        let conn_id = accepted as u64;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.streams).push((conn_id, clone));
        }
        let worker_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("fake-api-conn".into())
            .spawn(move || {
                let _ = serve(stream, &worker_shared);
                // Close our side now rather than when the server is dropped.
                lock(&worker_shared.streams).retain(|(id, _)| *id != conn_id);
            });
        if let Ok(h) = spawned {
            lock(&shared.workers).push(h);
        }
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Read one CRLF- (or LF-) terminated line, bounded by `budget`.
fn read_line(r: &mut impl BufRead, budget: &mut usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(bad("header too large"));
    }
    *budget -= n;
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut budget = MAX_HEADER_BYTES;
        // Request line (skip stray empty lines between requests).
        let request_line = loop {
            match read_line(&mut reader, &mut budget)? {
                None => return Ok(()),
                Some(l) if l.is_empty() => continue,
                Some(l) => break l,
            }
        };
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.0").to_string();
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut reader, &mut budget)?.ok_or_else(|| bad("eof in headers"))?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= MAX_HEADERS {
                return Err(bad("too many headers"));
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let chunked =
            get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if chunked {
            read_chunked(&mut reader)?
        } else {
            let len: usize = match get("content-length") {
                Some(v) => v.parse().map_err(|_| bad("bad content-length"))?,
                None => 0,
            };
            if len > MAX_BODY_BYTES {
                return Err(bad("body too large"));
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body)?;
            body
        };
        let connection = get("connection").unwrap_or_default().to_ascii_lowercase();
        let keep_alive = if version == "HTTP/1.0" {
            connection.contains("keep-alive")
        } else {
            !connection.contains("close")
        };
        let request = Request {
            method,
            path,
            authorization: get("authorization"),
            x_api_key: get("x-api-key"),
            headers,
            body,
        };
        let mode = lock(&shared.mode).clone();
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let response = respond(&request, &mode, id, keep_alive);
        lock(&shared.requests).push(request);
        writer.write_all(&response)?;
        writer.flush()?;
        if !keep_alive {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let line = read_line(r, &mut budget)?.ok_or_else(|| bad("eof in chunk size"))?;
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            let mut budget = MAX_HEADER_BYTES;
            loop {
                match read_line(r, &mut budget)? {
                    None => return Ok(body),
                    Some(l) if l.is_empty() => return Ok(body),
                    Some(_) => {}
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(bad("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut budget = 4;
        let crlf = read_line(r, &mut budget)?;
        if crlf.as_deref() != Some("") {
            return Err(bad("missing CRLF after chunk"));
        }
    }
}

fn http_response(
    status: &str,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    id: u64,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         request-id: req_fake{id:08}\r\nconnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn error_json(kind: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
        .to_string()
        .into_bytes()
}

fn respond(req: &Request, mode: &Mode, id: u64, keep_alive: bool) -> Vec<u8> {
    let text = match mode {
        Mode::Unauthorized => {
            return http_response(
                "401 Unauthorized",
                "application/json",
                &error_json("authentication_error", "invalid x-api-key"),
                keep_alive,
                id,
            );
        }
        Mode::Reply(text) => text,
        Mode::BashTool { command, then } => {
            let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if req.method == "POST" && req.path_only() == "/v1/messages" && wants_bash(&json) {
                let model = json["model"].as_str().unwrap_or("claude-fake").to_string();
                return if json["stream"].as_bool() == Some(true) {
                    http_response(
                        "200 OK",
                        "text/event-stream",
                        sse_tool_use(id, &model, command).as_bytes(),
                        keep_alive,
                        id,
                    )
                } else {
                    http_response(
                        "200 OK",
                        "application/json",
                        tool_use_message(id, &model, command).to_string().as_bytes(),
                        keep_alive,
                        id,
                    )
                };
            }
            then
        }
    };
    let json: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    match (req.method.as_str(), req.path_only()) {
        ("POST", "/v1/messages") => {
            let model = json
                .get("model")
                .and_then(|m| m.as_str())
                .unwrap_or("claude-fake")
                .to_string();
            let stream = json.get("stream").and_then(|s| s.as_bool()) == Some(true);
            if stream {
                http_response(
                    "200 OK",
                    "text/event-stream",
                    sse_message(id, &model, text).as_bytes(),
                    keep_alive,
                    id,
                )
            } else {
                http_response(
                    "200 OK",
                    "application/json",
                    json_message(id, &model, text).to_string().as_bytes(),
                    keep_alive,
                    id,
                )
            }
        }
        ("POST", "/v1/messages/count_tokens") => http_response(
            "200 OK",
            "application/json",
            br#"{"input_tokens":10}"#,
            keep_alive,
            id,
        ),
        _ => http_response(
            "404 Not Found",
            "application/json",
            &error_json("not_found_error", "not found (fake api)"),
            keep_alive,
            id,
        ),
    }
}

/// The request offers the Bash tool and its last message is not a tool result.
fn wants_bash(json: &serde_json::Value) -> bool {
    let offers = json["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"));
    let answered = json["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_array())
        .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"));
    offers && !answered
}

fn tool_use_block(id: u64, command: &str) -> serde_json::Value {
    serde_json::json!({
        "type": "tool_use",
        "id": format!("toolu_fake{id:08}"),
        "name": "Bash",
        "input": {"command": command, "description": "Print the environment"},
    })
}

fn tool_use_message(id: u64, model: &str, command: &str) -> serde_json::Value {
    let mut m = json_message(id, model, "");
    m["content"] = serde_json::json!([tool_use_block(id, command)]);
    m["stop_reason"] = serde_json::json!("tool_use");
    m
}

fn sse_tool_use(id: u64, model: &str, command: &str) -> String {
    let mut start = json_message(id, model, "");
    start["content"] = serde_json::json!([]);
    start["stop_reason"] = serde_json::Value::Null;
    start["usage"] = usage(1);
    let block = tool_use_block(id, command);
    let mut empty = block.clone();
    empty["input"] = serde_json::json!({});
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": start}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0, "content_block": empty}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": block["input"].to_string()}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    out
}

fn usage(output_tokens: u64) -> serde_json::Value {
    serde_json::json!({
        "input_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    })
}

fn json_message(id: u64, model: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": format!("msg_fake{id:08}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": usage(5),
    })
}

fn sse_message(id: u64, model: &str, text: &str) -> String {
    let mut start = json_message(id, model, "");
    start["content"] = serde_json::json!([]);
    start["stop_reason"] = serde_json::Value::Null;
    start["usage"] = usage(1);
    let events = [
        (
            "message_start",
            serde_json::json!({"type": "message_start", "message": start}),
        ),
        (
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": text}}),
        ),
        (
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 5}}),
        ),
        ("message_stop", serde_json::json!({"type": "message_stop"})),
    ];
    let mut out = String::new();
    for (name, data) in events {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    //! The fake itself, over raw sockets (needs no claude).
    use super::*;

    fn read_response(r: &mut BufReader<TcpStream>) -> (String, String) {
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    #[test]
    fn answers_keep_alive_chunked_sse_json_401_and_stops_when_dropped() {
        let api = FakeApi::start("hello there");
        let conn = TcpStream::connect(api.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut w = conn.try_clone().unwrap();
        let mut r = BufReader::new(conn);

        // JSON, Content-Length.
        let body = r#"{"model":"m1","max_tokens":5,"messages":[]}"#;
        write!(
            w,
            "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: k1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let (head, json) = read_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["content"][0]["text"], "hello there");
        assert_eq!(v["model"], "m1");

        // SSE, chunked request body, same connection.
        let body = r#"{"model":"m2","stream": true}"#;
        let (a, b) = body.split_at(7);
        write!(
            w,
            "POST /v1/messages?beta=true HTTP/1.1\r\nAuthorization: Bearer t1\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .unwrap();
        let (head, sse) = read_response(&mut r);
        assert!(head.contains("text/event-stream"), "{head}");
        let names: Vec<&str> = sse
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(sse.contains(r#""text":"hello there""#));

        // Anything else: 404 JSON.
        write!(w, "GET /api/oauth/profile HTTP/1.1\r\n\r\n").unwrap();
        let (head, _) = read_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");

        // 401 mode.
        api.set_mode(Mode::Unauthorized);
        write!(
            w,
            "POST /v1/messages HTTP/1.1\r\nContent-Length: 2\r\n\r\n{{}}"
        )
        .unwrap();
        let (head, json) = read_response(&mut r);
        assert!(head.starts_with("HTTP/1.1 401"), "{head}");
        assert!(json.contains("authentication_error"));

        let seen = api.requests();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0].x_api_key.as_deref(), Some("k1"));
        assert_eq!(seen[1].authorization.as_deref(), Some("Bearer t1"));
        assert_eq!(seen[1].path, "/v1/messages?beta=true");
        assert!(seen[1].is_messages());
        assert_eq!(seen[1].body, body.as_bytes());
        assert_eq!(api.message_requests().len(), 3);

        let addr = api.addr;
        drop(api);
        // The open connection was shut down, and nothing listens any more.
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap_or(0), 0);
        // The port is free again: binding it succeeds only when no socket listens there
        // (std sets SO_REUSEADDR, so the closed connections' TIME_WAIT does not count).
        // A connect() would not prove it: on loopback a connect to a free port in the
        // ephemeral range can pick that very port as its source and connect to itself.
        // Other tests of this binary spawn processes meanwhile, and a child between its
        // fork and its exec holds a copy of every descriptor, the listener's included
        // (close-on-exec closes it only at the exec): allow that moment to pass.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match TcpListener::bind(addr) {
                Ok(_) => break,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("the fake's port is still in use 10 s after drop: {e}"),
            }
        }
    }
}
