//! `--token-via broker|fd|env`: a broker beside the command that holds the token and
//! forwards the command's API requests from a Unix socket (the default for claude
//! itself), the token on a pipe that claude reads once, or in the environment (the
//! default for anything else).

mod common;
#[allow(dead_code)]
mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TOKEN, Test, write_executable};
use support::fake_api::FakeApi;

/// A stand-in `claude` that records the token pipe's number and its content (read twice)
/// and the content of descriptors 3 and 4.
fn fd_reader(t: &Test) {
    let out = t.path("probe");
    write_executable(
        &t.path("bin/claude"),
        &format!(
            r#"#!/bin/sh
d='{out}'
: > "$d/ran"
printf '%s' "${{CLAUDE_CODE_OAUTH_TOKEN-unset}}" > "$d/env_token"
printf '%s' "$CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR" > "$d/fd"
fd=$CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR
/bin/cat <&"$fd" > "$d/first"
/bin/cat <&"$fd" > "$d/second"
/bin/cat <&3 > "$d/three" 2>/dev/null
/bin/cat <&4 > "$d/four" 2>/dev/null
/bin/ls /proc/$$/fd > "$d/fds"
"#,
            out = out.display()
        ),
    );
}

fn read(t: &Test, name: &str) -> String {
    fs::read_to_string(t.path("probe").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn claude_gets_the_token_on_a_pipe_readable_once() {
    let t = Test::new()
        .env("CLAUDE_CODE_OAUTH_TOKEN", common::TOKEN_B)
        .secret(common::TOKEN_B);
    // The caller's variable is a token source only without --env-file: here the env file
    // wins, and the caller's value must not reach the command either.
    fd_reader(&t);
    t.run().status(0).no_secrets();
    assert_eq!(
        read(&t, "env_token"),
        "unset",
        "CLAUDE_CODE_OAUTH_TOKEN must not be set"
    );
    let fd: u32 = read(&t, "fd").parse().expect("a descriptor number");
    assert!(fd >= 3, "{fd}");
    assert_eq!(read(&t, "first"), TOKEN);
    assert_eq!(read(&t, "second"), "", "the pipe is empty once read");
}

#[test]
fn other_commands_get_the_variable_as_before() {
    let t = Test::new().command(["probe", "x"]);
    let out = t.run();
    out.success();
    assert_eq!(out.probe().token_via(), "env");
    out.probe().assert_token(TOKEN);
    assert_eq!(
        out.probe().all("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"),
        Vec::<std::ffi::OsString>::new()
    );
}

#[test]
fn the_choice_can_be_forced_either_way() {
    // env for claude.
    let t = Test::new().arg("--token-via").arg("env");
    let out = t.run();
    out.success();
    assert_eq!(out.probe().token_via(), "env");
    out.probe().assert_token(TOKEN);
    // fd for another command, through the variable.
    let t = Test::new()
        .command(["probe"])
        .env("CLAUDE_ISO_TOKEN_VIA", "fd");
    let out = t.run();
    out.success();
    assert_eq!(out.probe().token_via(), "fd");
    out.probe().assert_token(TOKEN);
    // The option beats the variable.
    let t = Test::new()
        .env("CLAUDE_ISO_TOKEN_VIA", "fd")
        .args(["--token-via", "env"]);
    assert_eq!(t.run().success().probe().token_via(), "env");
    // Nonsense is a usage error naming the variable.
    let t = Test::new().env("CLAUDE_ISO_TOKEN_VIA", "pipe");
    t.run()
        .status(125)
        .one_line_error("CLAUDE_ISO_TOKEN_VIA=pipe: expected broker, fd or env")
        .probe_not_run();
    let t = Test::new().args(["--token-via", "pipe"]);
    t.run().status(125).probe_not_run();
}

#[test]
fn descriptors_the_caller_passes_are_untouched() {
    let t = Test::new();
    fs::write(t.path("three.txt"), "three").unwrap();
    fs::write(t.path("four.txt"), "four").unwrap();
    fd_reader(&t);
    let script = format!(
        "exec 3<'{}' 4<'{}'; exec \"$0\" \"$@\"",
        t.path("three.txt").display(),
        t.path("four.txt").display()
    );
    let t = t.wrap(&script);
    t.run().status(0);
    assert_eq!(read(&t, "three"), "three");
    assert_eq!(read(&t, "four"), "four");
    let fd: u32 = read(&t, "fd").parse().unwrap();
    assert!(
        fd != 3 && fd != 4,
        "took a descriptor the caller passed: {fd}"
    );
    assert_eq!(read(&t, "first"), TOKEN);
}

#[test]
fn systemd_sockets_are_never_taken() {
    // LISTEN_FDS=3: descriptors 3, 4 and 5 are sockets systemd passed, even when one of
    // them is not open (yet) in this process.
    let t = Test::new().env("LISTEN_FDS", "3").env("LISTEN_PID", "1");
    fd_reader(&t);
    let script = format!(
        "exec 3<'{}'; exec \"$0\" \"$@\"",
        t.path("token.env").display()
    );
    let t = t.wrap(&script);
    t.run().status(0);
    let fd: u32 = read(&t, "fd").parse().unwrap();
    assert!(fd >= 6, "the token pipe took systemd's descriptor {fd}");
    assert_eq!(read(&t, "first"), TOKEN);
}

#[test]
fn dry_run_says_which_way() {
    let t = Test::new().arg("--dry-run").default_token_via();
    let out = t.run();
    out.status(0).no_secrets();
    out.stdout_contains("token via: broker (a process beside the command holds the token and forwards its API requests from ");
    out.stdout_contains(" to https://api.anthropic.com (chosen by the default); the command gets CLAUDE_CODE_OAUTH_TOKEN=ssh-placeholder)\n");
    out.stdout_contains(
        "destination: https://api.anthropic.com (chosen by the default) through the broker\n",
    );
    out.stdout_contains("env: set CLAUDE_CODE_OAUTH_TOKEN=ssh-placeholder\n");
    out.stdout_contains("env: set ANTHROPIC_BASE_URL=http://localhost\n");
    let t = Test::new().args(["--dry-run", "--token-via", "fd"]);
    let out = t.run();
    out.status(0).no_secrets();
    out.stdout_contains("token via: fd (a pipe on the lowest free descriptor from 3 on");
    let t = Test::new().arg("--dry-run").command(["probe"]);
    t.run()
        .status(0)
        .stdout_contains("token via: env (CLAUDE_CODE_OAUTH_TOKEN)");
}

// ---- The broker ----------------------------------------------------------------------

/// A stand-in `claude` that records its environment and descriptors, then waits (at
/// most 30 s) until the test creates `probe/done`, so the test can talk to the broker
/// meanwhile; it then exits with the status in `probe/status` (0 if empty).
fn waiting_claude(t: &Test) {
    let out = t.path("probe");
    write_executable(
        &t.path("bin/claude"),
        &format!(
            r#"#!/bin/sh
d='{out}'
/bin/cat /proc/$$/environ > "$d/environ"
for f in /proc/$$/fd/*; do /bin/readlink "$f"; done > "$d/fd_targets" 2>/dev/null
echo $$ > "$d/pid"
: > "$d/ran"
i=0
while [ ! -e "$d/done" ] && [ $i -lt 600 ]; do /bin/sleep 0.05; i=$((i+1)); done
exit $(/bin/cat "$d/status" 2>/dev/null || echo 0)
"#,
            out = out.display()
        ),
    );
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn environ(t: &Test) -> Vec<(String, String)> {
    fs::read(t.path("probe/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let v = String::from_utf8_lossy(v);
            let (k, v) = v.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn var(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// One HTTP/1.1 exchange on `stream` (which stays open for the next one): the status,
/// the headers (names lower-cased) and the body.
fn exchange(
    stream: &mut UnixStream,
    head: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!(
        "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    stream.write_all(&req).unwrap();
    // Read the head byte by byte (small), then the body by its length or chunks.
    let mut headbuf = Vec::new();
    let mut byte = [0u8; 1];
    while !headbuf.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "connection closed early"
        );
        headbuf.push(byte[0]);
    }
    let text = String::from_utf8(headbuf).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length") {
        body.resize(len.parse().unwrap(), 0);
        stream.read_exact(&mut body).unwrap();
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = Vec::new();
            while !line.ends_with(b"\r\n") {
                stream.read_exact(&mut byte).unwrap();
                line.push(byte[0]);
            }
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap();
            let mut chunk = vec![0u8; size + 2];
            stream.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    (status, headers, body)
}

/// The processes whose command line holds `needle` (the broker is a fork of claude-iso:
/// its command line names the test's home).
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            if cmd.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                out.push(pid);
            }
        }
    }
    out
}

fn wait_gone(home: &Path, socket: &Path) {
    let start = Instant::now();
    let needle = home.to_string_lossy().into_owned();
    loop {
        let left = processes_naming(&needle);
        if left.is_empty() && !socket.exists() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the broker outlived the command by a second: processes {left:?}, socket there: {}",
            socket.exists()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn claude_talks_through_the_broker_and_only_the_token_reaches_the_api() {
    let api = FakeApi::start("pong");
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", api.base_url())
        // The caller's own credentials are scrubbed as ever; and if one did reach the
        // command, the broker would strip it.
        .env(
            "ANTHROPIC_API_KEY",
            "sk-ant-api03-caller-key-that-must-not-leave",
        )
        .secret("sk-ant-api03-caller-key-that-must-not-leave");
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));

    // What the command holds: the socket, the placeholder, plain HTTP; no token, no
    // descriptor variable, no descriptor that leads to a token file.
    let env = environ(&t);
    let socket = PathBuf::from(var(&env, "ANTHROPIC_UNIX_SOCKET").expect("ANTHROPIC_UNIX_SOCKET"));
    assert_eq!(
        var(&env, "CLAUDE_CODE_OAUTH_TOKEN").as_deref(),
        Some("ssh-placeholder")
    );
    assert_eq!(
        var(&env, "ANTHROPIC_BASE_URL").as_deref(),
        Some("http://localhost")
    );
    assert_eq!(var(&env, "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"), None);
    assert_eq!(var(&env, "ANTHROPIC_API_KEY"), None);
    let raw = fs::read(t.path("probe/environ")).unwrap();
    assert!(
        !raw.windows(20)
            .any(|w| TOKEN.as_bytes()[13..].windows(20).any(|x| x == w)),
        "a piece of the token is in the command's environment"
    );
    let fds = fs::read_to_string(t.path("probe/fd_targets")).unwrap();
    assert!(
        !fds.contains("token.env") && !fds.contains("socket:"),
        "descriptors of the command: {fds}"
    );

    // The socket: 0600 in a 0700 directory of the user's.
    let uid = nix::unistd::geteuid().as_raw();
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), uid);
    let dir = fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    assert_eq!(dir.uid(), uid);

    // Two requests on one connection (keep-alive), each with credentials of its own that
    // must be replaced; the path and query, other headers and the body pass unchanged.
    let mut conn = UnixStream::connect(&socket).unwrap();
    let body = br#"{"model":"claude-x","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"ping"}]}"#;
    let (status, headers, reply) = exchange(
        &mut conn,
        "POST /v1/messages?beta=true HTTP/1.1\r\nAuthorization: Bearer ssh-placeholder\r\nX-Api-Key: sk-ant-api03-caller-key-that-must-not-leave\r\nCookie: session=abc\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nAnthropic-Version: 2023-06-01\r\nContent-Type: application/json",
        body,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/event-stream"))
    );
    assert!(String::from_utf8_lossy(&reply).contains("pong"));
    let (status, _, _) = exchange(
        &mut conn,
        "POST /v1/messages/count_tokens HTTP/1.1\r\nContent-Type: application/json",
        br#"{"messages":[]}"#,
    );
    assert_eq!(status, 200);
    let seen = api.requests();
    assert_eq!(seen.len(), 2, "{}", api.summary());
    for r in &seen {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str()),
            "{}",
            api.summary()
        );
        assert_eq!(r.x_api_key, None);
        assert_eq!(r.header("cookie"), None);
        assert_eq!(r.header("proxy-authorization"), None);
    }
    assert_eq!(seen[0].path, "/v1/messages?beta=true");
    assert_eq!(seen[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen[0].body, body);
    assert_eq!(seen[1].path, "/v1/messages/count_tokens");
    drop(conn);

    // The command's exit status is ours; the broker and its socket are gone within a
    // second of the command's end; nothing in the home holds the token.
    fs::write(t.path("probe/status"), "7").unwrap();
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(7).no_secrets();
    wait_gone(&t.home(), &socket);
    for (path, entry) in common::tree(&t.home()) {
        assert!(
            !entry
                .content
                .windows(TOKEN.len())
                .any(|w| w == TOKEN.as_bytes()),
            "the token is in {}",
            path.display()
        );
    }
}

#[test]
fn the_broker_ends_with_the_command_even_when_it_is_killed() {
    let api = FakeApi::start("pong");
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", api.base_url());
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let socket = PathBuf::from(var(&environ(&t), "ANTHROPIC_UNIX_SOCKET").unwrap());
    assert!(socket.exists());
    // The command is claude-iso's own process (exec'd: same PID).
    let pid: i32 = fs::read_to_string(t.path("probe/pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        pid as u32,
        running.id(),
        "the command does not keep claude-iso's PID"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    running.wait().signal(9);
    wait_gone(&t.home(), &socket);
}

#[test]
fn an_unreachable_destination_is_a_502_that_says_why() {
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"));
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let socket = PathBuf::from(var(&environ(&t), "ANTHROPIC_UNIX_SOCKET").unwrap());
    let mut conn = UnixStream::connect(&socket).unwrap();
    let (status, headers, body) = exchange(&mut conn, "POST /v1/messages HTTP/1.1", b"{}");
    assert_eq!(status, 502);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/json")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains('\n'), "{text}");
    assert!(!text.contains(&TOKEN[13..]), "the token is in the 502");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "claude-iso broker: cannot forward the request to http://127.0.0.1:{port}: "
        )),
        "{message}"
    );
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(0);
}

#[test]
fn the_broker_streams_events_as_they_come() {
    // An upstream that sends one event, then waits for the test's go before the rest.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        let first = b"event: one\ndata: {}\n\n";
        s.write_all(format!("{:x}\r\n", first.len()).as_bytes())
            .unwrap();
        s.write_all(first).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        s.write_all(b"0\r\n\r\n").unwrap();
    });
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"));
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let socket = PathBuf::from(var(&environ(&t), "ANTHROPIC_UNIX_SOCKET").unwrap());
    let mut conn = UnixStream::connect(&socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    // The first event arrives while the upstream still holds the rest back.
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(10).any(|w| w == b"event: one") {
        let n = conn
            .read(&mut buf)
            .expect("the first event did not arrive before the end of the response");
        assert!(n > 0, "connection closed");
        got.extend_from_slice(&buf[..n]);
    }
    go_tx.send(()).unwrap();
    server.join().unwrap();
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(0);
}

#[test]
fn another_user_cannot_connect() {
    let api = FakeApi::start("pong");
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", api.base_url());
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let socket = PathBuf::from(var(&environ(&t), "ANTHROPIC_UNIX_SOCKET").unwrap());
    if !common::is_root() {
        // Without root the test cannot act as another user: what keeps others out is
        // then the socket's mode and its directory's, both the user's alone.
        let dir = fs::metadata(socket.parent().unwrap()).unwrap();
        assert_eq!(dir.permissions().mode() & 0o077, 0);
        assert_eq!(
            fs::symlink_metadata(&socket).unwrap().permissions().mode() & 0o077,
            0
        );
        fs::write(t.path("probe/done"), "").unwrap();
        running.wait().status(0);
        return;
    }
    // Even with the directory and the socket opened up by mistake, the peer check of the
    // broker refuses a connection of another uid: it is closed unanswered.
    let dir = socket.parent().unwrap().to_path_buf();
    let dir_mode = fs::metadata(&dir).unwrap().permissions().mode();
    let denied_by_mode = connect_as(65534, &socket);
    assert_eq!(denied_by_mode, Err(nix::errno::Errno::EACCES));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    let answered = connect_as(65534, &socket);
    fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        answered,
        Ok(false),
        "a connection of another uid was answered"
    );
    assert!(api.requests().is_empty(), "{}", api.summary());
    // The launching user still is.
    let mut conn = UnixStream::connect(&socket).unwrap();
    let (status, _, _) = exchange(&mut conn, "POST /v1/messages HTTP/1.1", b"{}");
    assert_eq!(status, 200);
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(0);
}

/// Connects to `socket` as `uid` from a forked child, sends a request and reports
/// whether any answer came (`Ok(true)`), the connection was closed unanswered
/// (`Ok(false)`), or the connect failed (`Err`).
fn connect_as(uid: u32, socket: &Path) -> Result<bool, nix::errno::Errno> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, UnixAddr, connect, socket as mksock,
    };
    use nix::sys::wait::{WaitStatus, waitpid};
    let addr = UnixAddr::new(socket).unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    // SAFETY: the child only makes system calls (setgid, setuid, socket, connect, write,
    // read, _exit) on memory prepared before the fork: no allocation, no locks.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = (|| -> i32 {
                if nix::unistd::setgid(nix::unistd::Gid::from_raw(uid)).is_err()
                    || nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).is_err()
                {
                    return 100;
                }
                let Ok(fd) = mksock(
                    AddressFamily::Unix,
                    SockType::Stream,
                    SockFlag::empty(),
                    None,
                ) else {
                    return 101;
                };
                if let Err(e) = connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
                    return 10 + e as i32;
                }
                let _ = nix::unistd::write(&fd, request);
                let mut buf = [0u8; 16];
                match nix::unistd::read(&fd, &mut buf) {
                    Ok(n) if n > 0 => 1,
                    _ => 0,
                }
            })();
            // SAFETY: ends the forked child without running the test harness's exit code.
            unsafe { nix::libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
            WaitStatus::Exited(_, 0) => Ok(false),
            WaitStatus::Exited(_, 1) => Ok(true),
            WaitStatus::Exited(_, c) if (10..100).contains(&c) => {
                Err(nix::errno::Errno::from_raw(c - 10))
            }
            other => panic!("the connecting child: {other:?}"),
        },
    }
}

#[test]
fn a_nested_launch_uses_the_sessions_broker_and_reads_no_token() {
    let api = FakeApi::start("pong");
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", api.base_url());
    // The outer "claude" (so the outer launch runs through a broker) runs claude-iso
    // again, with no token anywhere it could read: the inner dry run uses the session's
    // broker and reads no token.
    write_executable(
        &t.path("bin/claude"),
        &format!(
            "#!/bin/sh\nexec {bin} --env-file /nonexistent/token.env --home {home}2 --dry-run -- claude\n",
            bin = common::BIN,
            home = t.home().display()
        ),
    );
    let out = t.run();
    out.status(0).no_secrets();
    out.stdout_contains("token: none read (the shared broker at ");
    out.stdout_contains("token via: the shared broker at ");
    out.stderr("");
    assert!(
        !out.stdout_text().contains("env: unset"),
        "{}",
        out.stdout_text()
    );
}
