//! The broker's cost, side by side in one run: requests straight to a loopback fake
//! Messages API against the same requests through a claude-iso broker in front of it.
//!
//!     cargo run --release --example broker-bench [-- path/to/claude-iso [N]]
//!
//! Starts `claude-iso --token-via broker --mask off -- /bin/sh …` (the shell records the
//! socket and waits), then measures, alternating direct and brokered requests so both see
//! the same machine: the latency of N small non-streaming requests on one keep-alive
//! connection (p50, p99), a 2 MB request body, 64 concurrent streaming requests on 64
//! connections, and the broker's peak RSS (`VmHWM`) at the end. Prints a Markdown table.
//! Talks to 127.0.0.1 and a Unix socket only.

// A benchmark program, not the library (crate-wide lints of Cargo.toml are for it).
#![allow(unreachable_pub, unsafe_code, clippy::undocumented_unsafe_blocks)]

#[allow(dead_code)]
#[path = "../tests/support/fake_api.rs"]
mod fake_api;
#[allow(dead_code)]
#[path = "../tests/support/http1.rs"]
mod http1;

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_api::FakeApi;
use http1::exchange;

const TOKEN_HEAD: &str = "sk-ant-oat01-";

fn main() {
    let mut args = std::env::args().skip(1);
    let bin = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/release/claude-iso".to_owned()),
    );
    let n: usize = args.next().map_or(3000, |a| a.parse().expect("N"));
    let api = FakeApi::start("pong");
    let addr = api.base_url().trim_start_matches("http://").to_owned();

    let dir = tempfile::Builder::new()
        .prefix("claude-iso-broker-bench.")
        .tempdir()
        .unwrap();
    let env_file = dir.path().join("token.env");
    fs::write(
        &env_file,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_HEAD}{}\n", "B".repeat(95)),
    )
    .unwrap();
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o600)).unwrap();
    let socket_file = dir.path().join("socket");
    let mut launcher = Command::new(&bin)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .arg("--env-file")
        .arg(&env_file)
        .arg("--home")
        .arg(dir.path().join("home"))
        .args(["--mask", "off", "--token-via", "broker", "-q", "--"])
        .args([
            "/bin/sh",
            "-c",
            "printf %s \"$ANTHROPIC_UNIX_SOCKET\" > \"$0\"; exec sleep 3600",
        ])
        .arg(&socket_file)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("start claude-iso");
    let started = Instant::now();
    while fs::read_to_string(&socket_file).map_or(true, |s| s.is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "claude-iso did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let socket = PathBuf::from(fs::read_to_string(&socket_file).unwrap());
    let pid = launcher.id();
    let broker = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap()
        .split_whitespace()
        .next()
        .expect("the broker is the command's child")
        .to_owned();

    let small =
        br#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":"ping"}]}"#;
    let head = "POST /v1/messages HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer ssh-placeholder";
    let mut direct = TcpStream::connect(&addr).unwrap();
    direct.set_nodelay(true).unwrap();
    let mut via = UnixStream::connect(&socket).unwrap();
    for _ in 0..200 {
        exchange(&mut direct, head, small);
        exchange(&mut via, head, small);
    }
    let (mut d, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        d.push(timed(|| check(exchange(&mut direct, head, small))));
        v.push(timed(|| check(exchange(&mut via, head, small))));
    }

    let big_body = {
        let mut b = br#"{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":""#
            .to_vec();
        b.extend(std::iter::repeat_n(b'x', 2 << 20));
        b.extend_from_slice(br#""}]}"#);
        b
    };
    let (mut bd, mut bv) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        bd.push(timed(|| check(exchange(&mut direct, head, &big_body))));
        bv.push(timed(|| check(exchange(&mut via, head, &big_body))));
    }

    let stream_body = br#"{"model":"claude-x","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"ping"}]}"#;
    let concurrent = |brokered: bool| -> Duration {
        let t = Instant::now();
        let threads: Vec<_> = (0..64)
            .map(|_| {
                let socket = socket.clone();
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let (status, _, body) = if brokered {
                        let mut s = UnixStream::connect(&socket).unwrap();
                        exchange(&mut s, head, stream_body)
                    } else {
                        let mut s = TcpStream::connect(&addr).unwrap();
                        exchange(&mut s, head, stream_body)
                    };
                    assert_eq!(status, 200);
                    assert!(
                        String::from_utf8_lossy(&body).contains("message_stop"),
                        "a stream ended early"
                    );
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        t.elapsed()
    };
    let mut cd = Vec::new();
    let mut cv = Vec::new();
    for _ in 0..5 {
        cd.push(concurrent(false));
        cv.push(concurrent(true));
    }
    let hwm = fs::read_to_string(format!("/proc/{broker}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unreadable".to_owned());

    // Every request the API saw carried the token and nothing else.
    let seen = api.requests();
    let bad = seen
        .iter()
        .filter(|r| {
            !r.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with(&format!("Bearer {TOKEN_HEAD}B")))
                && r.authorization.as_deref() != Some("Bearer ssh-placeholder")
        })
        .count();
    assert_eq!(bad, 0, "requests with an unexpected credential");

    // `broker serve`: 32 clients at once, 50 small requests each on their own
    // connection, against the same 32 straight to the API; then the service's peak RSS.
    let serve_sock = dir.path().join("serve.sock");
    let serve_log = fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut service = Command::new(&bin)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .args(["broker", "serve", "--env-file"])
        .arg(&env_file)
        .arg("--socket")
        .arg(&serve_sock)
        .stdout(serve_log)
        .stdin(Stdio::null())
        .spawn()
        .expect("start broker serve");
    let started = Instant::now();
    while !serve_sock.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "broker serve did not start"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let fleet = |brokered: bool| -> Vec<Duration> {
        let threads: Vec<_> = (0..32)
            .map(|_| {
                let (serve_sock, addr) = (serve_sock.clone(), addr.clone());
                std::thread::spawn(move || {
                    let mut times = Vec::with_capacity(50);
                    if brokered {
                        let mut s = UnixStream::connect(&serve_sock).unwrap();
                        for _ in 0..50 {
                            times.push(timed(|| check(exchange(&mut s, head, small))));
                        }
                    } else {
                        let mut s = TcpStream::connect(&addr).unwrap();
                        for _ in 0..50 {
                            times.push(timed(|| check(exchange(&mut s, head, small))));
                        }
                    }
                    times
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    };
    let (mut fd, mut fv) = (fleet(false), fleet(true));
    let serve_hwm = fs::read_to_string(format!("/proc/{}/status", service.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unreadable".to_owned());
    let _ = Command::new("kill").arg(service.id().to_string()).status();
    let _ = service.wait();

    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = launcher.wait();
    let gone = wait_gone(&socket);

    let ms = |x: Duration| x.as_secs_f64() * 1000.0;
    let (d50, d99) = (pct(&mut d, 50.0), pct(&mut d, 99.0));
    let (v50, v99) = (pct(&mut v, 50.0), pct(&mut v, 99.0));
    let (b50d, b50v) = (pct(&mut bd, 50.0), pct(&mut bv, 50.0));
    let (c50d, c50v) = (pct(&mut cd, 50.0), pct(&mut cv, 50.0));
    println!("| broker case | direct | through the broker | added | target |");
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| small request, p50 ({n} on one connection) | {:.3} ms | {:.3} ms | {:.3} ms | ≤ 0.3 ms: {} |",
        ms(d50),
        ms(v50),
        ms(v50) - ms(d50),
        met(ms(v50) - ms(d50) <= 0.3)
    );
    println!(
        "| small request, p99 | {:.3} ms | {:.3} ms | {:.3} ms | ≤ 1 ms: {} |",
        ms(d99),
        ms(v99),
        ms(v99) - ms(d99),
        met(ms(v99) - ms(d99) <= 1.0)
    );
    println!(
        "| 2 MB request body, median of 30 | {:.2} ms | {:.2} ms | {:.2} ms | ≤ 2 ms: {} |",
        ms(b50d),
        ms(b50v),
        ms(b50v) - ms(b50d),
        met(ms(b50v) - ms(b50d) <= 2.0)
    );
    println!(
        "| 64 concurrent streams, median of 5 | {:.1} ms | {:.1} ms | {:.1} ms | all complete |",
        ms(c50d),
        ms(c50v),
        ms(c50v) - ms(c50d)
    );
    println!("| broker peak RSS (VmHWM) | | {hwm} | | ≤ 12 MB |");
    let (f50d, f50v) = (pct(&mut fd, 50.0), pct(&mut fv, 50.0));
    let (f99d, f99v) = (pct(&mut fd, 99.0), pct(&mut fv, 99.0));
    println!(
        "| `broker serve`, 32 clients × 50 requests, p50 | {:.3} ms | {:.3} ms | {:.3} ms | |",
        ms(f50d),
        ms(f50v),
        ms(f50v) - ms(f50d)
    );
    println!(
        "| `broker serve`, 32 clients × 50 requests, p99 | {:.3} ms | {:.3} ms | {:.3} ms | |",
        ms(f99d),
        ms(f99v),
        ms(f99v) - ms(f99d)
    );
    println!("| `broker serve` peak RSS (VmHWM) with 32 clients | | {serve_hwm} | | |");
    println!(
        "| broker gone after the command ended | | {} | | < 1 s |",
        gone.map_or("no".to_owned(), |t| format!("{:.0} ms", ms(t)))
    );
}

fn timed(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn check((status, _, body): (u16, Vec<(String, String)>, Vec<u8>)) {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn wait_gone(socket: &Path) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if !socket.exists() {
            return Some(t.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}
