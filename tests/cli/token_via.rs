//! `--token-via broker|fd|env`: a broker beside the command that holds the token and
//! forwards the command's API requests from a Unix socket (the default for claude
//! itself), the token on a pipe that claude reads once, or in the environment (the
//! default for anything else).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::fake_api::FakeApi;
use crate::support::http1::exchange;
use crate::support::sandbox::{TOKEN, Test, write_executable};

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
        .env("CLAUDE_CODE_OAUTH_TOKEN", crate::support::sandbox::TOKEN_B)
        .secret(crate::support::sandbox::TOKEN_B);
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

/// The broker's socket directory is judged before the launch changes anything: one open
/// to others is refused with nothing created (the home included).
#[test]
fn a_socket_directory_open_to_others_is_refused_before_any_change() {
    let t = Test::new().default_token_via().no_home();
    let run_dir = t.path("run");
    fs::create_dir(&run_dir).unwrap();
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let sockets = run_dir.join("claude-iso");
    fs::create_dir(&sockets).unwrap();
    fs::set_permissions(&sockets, fs::Permissions::from_mode(0o777)).unwrap();
    let home = t.path("new-home");
    let t = t
        .env("XDG_RUNTIME_DIR", &run_dir)
        .args([std::ffi::OsString::from("--home"), home.clone().into()]);
    t.run()
        .status(125)
        .one_line_error("socket directory")
        .probe_not_run();
    assert!(fs::symlink_metadata(&home).is_err(), "the home was created");
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

/// Starts claude-iso with [`waiting_claude`] as the command, waits until it runs, and
/// returns it with the broker's socket it was given.
fn start_waiting(t: &Test) -> (crate::support::sandbox::Running<'_>, PathBuf) {
    waiting_claude(t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let socket = PathBuf::from(var(&environ(t), "ANTHROPIC_UNIX_SOCKET").unwrap());
    (running, socket)
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

/// A connection to the broker, with a read timeout (a broker that never answers fails
/// the test instead of hanging it).
fn connect(socket: &Path) -> UnixStream {
    let conn = UnixStream::connect(socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn
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
    let mut conn = connect(&socket);
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
    for (path, entry) in crate::support::sandbox::tree(&t.home()) {
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
    let (running, socket) = start_waiting(&t);
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
    let (running, socket) = start_waiting(&t);
    let mut conn = connect(&socket);
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

/// An upstream on 127.0.0.1 that answers the first request with one server-sent event,
/// then holds the rest of the response until the test sends on the returned channel.
/// Returns its port, that channel, and the thread (which ends once it has sent all).
fn held_upstream() -> (
    u16,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
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
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 40\r\n\r\nevent: one\ndata: {}\n\n").unwrap();
        go_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        s.write_all(b"event: two\ndata: {}\n\n").unwrap();
    });
    (port, go_tx, server)
}

#[test]
fn the_broker_streams_events_as_they_come() {
    let (port, go_tx, server) = held_upstream();
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{port}"));
    let (running, socket) = start_waiting(&t);
    let mut conn = connect(&socket);
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
    let (running, socket) = start_waiting(&t);
    if !crate::support::sandbox::is_root() {
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
    let mut conn = connect(&socket);
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
            bin = crate::support::sandbox::BIN,
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

// ---- The broker service (`claude-iso broker serve`) ------------------------------------

/// A running `claude-iso broker serve`, stopped (SIGKILL) when dropped.
struct Service {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the broker never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }
}

/// Starts `broker serve` in `t`'s sandbox with the env file of `t` and `args`, stdout and
/// stderr to a log; `wrap` runs it through `/bin/sh -c` (for socket activation).
fn serve(t: &Test, base: &str, args: &[&str], wrap: Option<(&str, i32)>) -> Service {
    let log = t.path(format!("broker-{}.log", args.len()));
    let out = fs::File::create(&log).unwrap();
    let mut cmd = match wrap {
        Some((script, fd)) => {
            use std::os::unix::process::CommandExt;
            let mut c = std::process::Command::new("/bin/sh");
            c.arg("-c").arg(script).arg(crate::support::sandbox::BIN);
            // SAFETY: dup2 is async-signal-safe and touches only descriptors.
            unsafe {
                c.pre_exec(move || {
                    if nix::libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            c
        }
        None => std::process::Command::new(crate::support::sandbox::BIN),
    };
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", t.path("realhome"))
        .env("ANTHROPIC_BASE_URL", base)
        .args(["broker", "serve", "--env-file"])
        .arg(t.env_file())
        .args(args)
        .current_dir(t.root())
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    Service {
        child: cmd.spawn().unwrap(),
        log,
    }
}

#[test]
fn a_broker_service_serves_allowed_users_reloads_and_drains() {
    let api = FakeApi::start("pong");
    let t = Test::new();
    let socket = t.path("api.sock");
    let s = serve(
        &t,
        &api.base_url(),
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--allow-user",
            "65534",
            "--grace",
            "20",
        ],
        None,
    );
    s.wait_log("listening on");
    let log = s.log();
    assert!(
        !log.contains(&TOKEN[13..]),
        "the token is in the log:\n{log}"
    );
    assert!(
        log.contains("forwarding to http://127.0.0.1:")
            && log.contains("token sk-ant-oat01-… (108 chars) from "),
        "{log}"
    );
    // With an allow-list the socket is connectable by others; the peer check decides.
    assert_eq!(
        fs::symlink_metadata(&socket).unwrap().permissions().mode() & 0o777,
        0o666
    );

    // 32 clients at once, 8 requests each on one connection: none is lost, all carry
    // only the token.
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut conn = connect(&socket);
                for _ in 0..8 {
                    let (status, _, body) = exchange(
                        &mut conn,
                        "POST /v1/messages HTTP/1.1\r\nAuthorization: Bearer ssh-placeholder\r\nContent-Type: application/json",
                        br#"{"stream":true,"messages":[]}"#,
                    );
                    assert_eq!(status, 200);
                    assert!(String::from_utf8_lossy(&body).contains("message_stop"));
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    let seen = api.requests();
    assert_eq!(seen.len(), 256, "{}", api.summary());
    assert!(
        seen.iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}")))
    );

    // One log line per request: who, what, status, time, bytes, usage; never a header.
    let log = s.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" POST /v1/messages "))
        .collect();
    assert_eq!(lines.len(), 256, "{log}");
    let me = nix::unistd::geteuid().as_raw();
    assert!(
        lines[0].starts_with(&format!("uid={me} POST /v1/messages 200 "))
            && lines[0].contains("input_tokens="),
        "{}",
        lines[0]
    );
    assert!(!log.contains("ssh-placeholder") && !log.contains(&TOKEN[13..]));

    // broker status: per-client counts since start.
    let out = std::process::Command::new(crate::support::sandbox::BIN)
        .args(["broker", "status", "--json", "--socket"])
        .arg(&socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["clients"][me.to_string()]["requests"],
        256,
        "{status:#}"
    );
    assert!(
        status["clients"][me.to_string()]["output_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{status:#}"
    );

    if crate::support::sandbox::is_root() {
        // The allowed second user is answered; a third user is refused at connect, and
        // only its uid is logged.
        assert_eq!(connect_as(65534, &socket), Ok(true));
        assert_eq!(connect_as(4242, &socket), Ok(false));
        s.wait_log("refused a connection from uid=4242");
    }

    // SIGHUP with a new token file: the next request carries the new token, while a
    // stream in flight completes.
    api.set_mode(crate::support::fake_api::Mode::Reply("pong".into()));
    let mut slow = connect(&socket);
    fs::write(
        t.env_file(),
        format!(
            "CLAUDE_CODE_OAUTH_TOKEN={}\n",
            crate::support::sandbox::TOKEN_B
        ),
    )
    .unwrap();
    s.signal(nix::sys::signal::Signal::SIGHUP);
    s.wait_log("reloaded the token");
    let before = api.requests().len();
    let (status, _, _) = exchange(
        &mut slow,
        "POST /v1/messages HTTP/1.1",
        br#"{"messages":[]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.requests()[before].authorization.as_deref(),
        Some(&*format!("Bearer {}", crate::support::sandbox::TOKEN_B))
    );

    // TERM: the broker stops accepting, lets what is in flight finish, removes its
    // socket and exits 0.
    s.signal(nix::sys::signal::Signal::SIGTERM);
    let mut s = s;
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "the broker did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}\n{}", s.log());
    eprintln!("the broker stopped {:?} after TERM", start.elapsed());
    assert!(!socket.exists());
}

#[test]
fn a_broker_service_takes_the_socket_systemd_passes() {
    let api = FakeApi::start("pong");
    let t = Test::new();
    let socket = t.path("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // What systemd-socket-activate does: descriptor 3, LISTEN_FDS=1, LISTEN_PID of the
    // broker's own process (the shell's PID, which exec keeps).
    let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
    let s = serve(
        &t,
        &api.base_url(),
        &[],
        Some(("LISTEN_FDS=1 LISTEN_PID=$$ exec \"$0\" \"$@\"", fd)),
    );
    s.wait_log("listening on the socket systemd passed");
    drop(listener);
    let mut conn = connect(&socket);
    let (status, _, _) = exchange(
        &mut conn,
        "POST /v1/messages HTTP/1.1",
        br#"{"messages":[]}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.requests()[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );

    // Without a socket of either kind: one line, 125.
    let unchanged = t.unchanged();
    let out = std::process::Command::new(crate::support::sandbox::BIN)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["broker", "serve", "--env-file"])
        .arg(t.env_file())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    unchanged.assert("the refused broker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no --socket given and no socket passed by systemd (LISTEN_FDS)"),
        "{err}"
    );
}

#[test]
fn an_agent_launch_through_a_shared_broker_reads_no_token() {
    let api = FakeApi::start("pong");
    let service_side = Test::new();
    let socket = service_side.path("api.sock");
    let s = serve(
        &service_side,
        &api.base_url(),
        &["--socket", socket.to_str().unwrap()],
        None,
    );
    s.wait_log("listening on");
    // The agent has no token at all: no env file, nothing in its environment.
    let t = Test::new()
        .no_env_file()
        .default_token_via()
        .args(["--broker"])
        .arg(&socket);
    fs::remove_file(t.env_file()).unwrap();
    waiting_claude(&t);
    let running = t.spawn();
    wait_for(&t.path("probe/ran"));
    let env = environ(&t);
    assert_eq!(
        var(&env, "ANTHROPIC_UNIX_SOCKET").as_deref(),
        socket.to_str()
    );
    assert_eq!(
        var(&env, "CLAUDE_CODE_OAUTH_TOKEN").as_deref(),
        Some("ssh-placeholder")
    );
    let mut conn = connect(&socket);
    let (status, _, _) = exchange(
        &mut conn,
        "POST /v1/messages HTTP/1.1",
        br#"{"messages":[]}"#,
    );
    assert_eq!(status, 200);
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(0).no_secrets();
    // A broker that is not there: refused before anything is created.
    let t = Test::new()
        .no_env_file()
        .default_token_via()
        .args(["--broker"])
        .arg(t.path("none.sock"));
    let out = t.run();
    out.status(125).probe_not_run();
    assert!(
        out.stderr_text()
            .contains("cannot connect to the broker at "),
        "{}",
        out.stderr_text()
    );
    assert!(
        !t.home().exists(),
        "a home was created for a refused launch"
    );
}

#[test]
fn term_lets_a_stream_in_flight_finish() {
    let (port, go_tx, upstream) = held_upstream();
    let t = Test::new();
    let socket = t.path("api.sock");
    let base = format!("http://127.0.0.1:{port}");
    let mut s = serve(
        &t,
        &base,
        &["--grace", "20", "--socket", socket.to_str().unwrap()],
        None,
    );
    s.wait_log("listening on");
    let mut conn = connect(&socket);
    conn.write_all(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(10).any(|w| w == b"event: one") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    s.signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        s.child.try_wait().unwrap().is_none(),
        "the broker quit with a stream in flight"
    );
    // A new connection is no longer accepted.
    assert!(
        UnixStream::connect(&socket).is_err(),
        "still accepting after TERM"
    );
    go_tx.send(()).unwrap();
    while !got.windows(10).any(|w| w == b"event: two") {
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream was cut: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    upstream.join().unwrap();
    drop(conn);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no exit after the stream ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

#[test]
fn a_command_that_ends_at_once_leaves_no_socket_behind() {
    // The broker may still be starting when the command is already gone: its socket must
    // go all the same (it did not, before SIGTERM was held during the broker's start).
    let t = Test::new().default_token_via();
    let dir = PathBuf::from(format!("/tmp/claude-iso-{}", nix::unistd::geteuid()));
    for _ in 0..10 {
        let running = t.spawn();
        let pid = running.id();
        running.wait().success();
        wait_gone(&t.home(), &dir.join(format!("broker.{pid}.sock")));
    }
}

// ---- TLS to the destination --------------------------------------------------------

/// A test CA, and a certificate it signed for 127.0.0.1 and localhost: (CA PEM, leaf
/// DER, leaf key DER).
fn test_ca() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "claude-iso test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (ca.pem(), leaf.der().to_vec(), leaf_key.serialize_der())
}

/// An https fake API on 127.0.0.1 (rustls), answering each connection's one request with
/// a small JSON message and recording its `Authorization` header. Returns the port.
fn tls_api(
    leaf: Vec<u8>,
    key: Vec<u8>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> u16 {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf)],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
            )
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            let conn = rustls::ServerConnection::new(std::sync::Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&got).to_string();
            if let Some(auth) = head.lines().find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            }) {
                seen.lock().unwrap().push(auth.to_owned());
            }
            let body = r#"{"type":"message","content":[]}"#;
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

#[test]
fn the_broker_speaks_tls_with_the_callers_extra_ca() {
    let (ca_pem, leaf, key) = test_ca();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = tls_api(leaf, key, std::sync::Arc::clone(&seen));
    let t = Test::new();
    let ca = t.path("test-ca.pem");
    fs::write(&ca, &ca_pem).unwrap();
    let ask = |extra: &[(&str, &Path)]| -> (u16, String) {
        let mut t2 = Test::new()
            .default_token_via()
            .env("ANTHROPIC_BASE_URL", format!("https://127.0.0.1:{port}"));
        for (k, v) in extra {
            t2 = t2.env(*k, v.as_os_str());
        }
        let (running, socket) = start_waiting(&t2);
        let mut conn = connect(&socket);
        let (status, _, body) = exchange(
            &mut conn,
            "POST /v1/messages HTTP/1.1",
            br#"{"messages":[]}"#,
        );
        fs::write(t2.path("probe/done"), "").unwrap();
        running.wait().status(0);
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    // Not trusted by the system's store: a 502 that says why.
    let (status, body) = ask(&[]);
    assert_eq!(status, 502, "{body}");
    assert!(body.to_ascii_lowercase().contains("certificate"), "{body}");
    assert!(seen.lock().unwrap().is_empty());
    // NODE_EXTRA_CA_CERTS (what claude users behind a TLS-inspecting proxy set).
    let (status, body) = ask(&[("NODE_EXTRA_CA_CERTS", &ca)]);
    assert_eq!(status, 200, "{body}");
    // SSL_CERT_FILE replaces the system's store.
    let (status, body) = ask(&[("SSL_CERT_FILE", &ca)]);
    assert_eq!(status, 200, "{body}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, vec![format!("Bearer {TOKEN}"); 2]);
}

/// An HTTP CONNECT proxy on 127.0.0.1 that records each tunnel's target and splices it
/// through. Returns the port.
fn connect_proxy(targets: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().take(8) {
            let Ok(mut client) = client else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            let target = line
                .strip_prefix("CONNECT ")
                .and_then(|r| r.split(' ').next())
                .unwrap_or("")
                .to_owned();
            targets.lock().unwrap().push(target.clone());
            let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let (mut c1, mut u1) = (client, upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u1, &mut c1);
                let _ = c1.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn the_brokers_leg_goes_through_the_callers_https_proxy() {
    let (ca_pem, leaf, key) = test_ca();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = tls_api(leaf, key, std::sync::Arc::clone(&seen));
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = connect_proxy(std::sync::Arc::clone(&targets));
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", format!("https://127.0.0.1:{port}"))
        .env("HTTPS_PROXY", format!("http://127.0.0.1:{proxy}"));
    let ca = t.path("ca.pem");
    fs::write(&ca, &ca_pem).unwrap();
    let t = t.env("NODE_EXTRA_CA_CERTS", ca);
    let (running, socket) = start_waiting(&t);
    let mut conn = connect(&socket);
    let (status, _, body) = exchange(&mut conn, "POST /v1/messages HTTP/1.1", b"{}");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    fs::write(t.path("probe/done"), "").unwrap();
    running.wait().status(0);
    assert_eq!(*targets.lock().unwrap(), vec![format!("127.0.0.1:{port}")]);
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {TOKEN}")]);
}

#[test]
fn the_command_cannot_read_the_brokers_memory_or_environment() {
    // The token comes in the caller's environment (the broker inherits that block, and
    // overwrites the value); the command, masked where the kernel allows, tries the
    // broker's /proc files: its own child's.
    let api = FakeApi::start("pong");
    let t = Test::new()
        .default_token_via()
        .no_env_file()
        .env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)
        .env("ANTHROPIC_BASE_URL", api.base_url());
    let out_dir = t.path("probe");
    write_executable(
        &t.path("bin/claude"),
        &format!(
            r#"#!/bin/sh
d='{out}'
kids=$(/bin/cat /proc/$$/task/$$/children)
for k in $kids; do
    if /bin/grep -q claude-iso /proc/$k/cmdline 2>/dev/null; then
        echo "$k" > "$d/broker_pid"
        /bin/cat /proc/$k/environ > "$d/environ_read" 2>/dev/null && echo yes > "$d/environ_ok"
        /bin/dd if=/proc/$k/mem bs=4096 count=1 skip=1 of="$d/mem_read" 2>/dev/null && echo yes > "$d/mem_ok"
        for f in /proc/$k/fd/*; do /bin/readlink "$f"; done > "$d/fds_read" 2>/dev/null
        [ -s "$d/fds_read" ] && echo yes > "$d/fd_ok"
    fi
done
: > "$d/ran"
"#,
            out = out_dir.display()
        ),
    );
    t.run().status(0).no_secrets();
    assert!(
        t.path("probe/broker_pid").exists(),
        "the command did not find the broker among its children"
    );
    for what in ["environ_ok", "mem_ok", "fd_ok"] {
        assert!(
            !t.path("probe").join(what).exists(),
            "the command could read the broker's {what}"
        );
    }
    if let Ok(env) = fs::read(t.path("probe/environ_read")) {
        assert!(
            !env.windows(20)
                .any(|w| TOKEN.as_bytes()[13..].windows(20).any(|x| x == w))
        );
    }
}
