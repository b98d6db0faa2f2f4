//! The per-launch broker: a process forked before the exec that holds the token and
//! serves claude's API requests on a Unix socket (the forwarding is [`crate::isolate::proxy`]).
//!
//! The command is still exec'd: it keeps the PID the caller started, and its exit
//! status. The broker is its child, and lives exactly as long as it:
//! - its parent-death signal is SIGTERM, sent by the kernel when the command (the
//!   process that forked it, after its exec) ends, however it ends; the broker then
//!   removes its socket and exits;
//! - it checks right after setting that signal that its parent is still the launcher
//!   (a launcher that failed in between is gone, and so is the broker);
//! - it runs in its own process group, so the terminal's Ctrl-C, Ctrl-Z and hang-up go
//!   to the command alone, and never to the broker.
//!
//! It holds the only copy of the token: the command gets `ssh-placeholder` (claude's own
//! placeholder for a credential held by a proxy) and the socket's path. The broker is
//! non-dumpable (inherited from the launcher, which is from its first instruction), so
//! neither the command nor a tool it runs can read its memory or `/proc/<pid>/environ`;
//! it is forked before the mask, so it stays outside the command's namespaces; it keeps
//! no descriptor but its socket and `/dev/null`; and it answers only connections whose
//! peer is the launching user (`SO_PEERCRED`).
//!
//! The socket lives in `$XDG_RUNTIME_DIR/claude-iso/` when that is the user's private
//! runtime directory, else in `/tmp/claude-iso-<uid>/` (made 0700; refused when it is
//! anyone else's or open to others), as `broker.<pid>.sock`, mode 0600.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, Pid};

use crate::caller::CallerEnv;
use crate::error::{Error, Result, error_text};
use crate::isolate::proxy::Upstream;
use crate::sys;
use crate::token::Token;

/// The placeholder claude gets instead of the token. claude's bundle checks for exactly
/// this value together with `ANTHROPIC_UNIX_SOCKET`: it then knows it holds no real
/// credential (per release: `docs/claude-facts.md`).
pub(crate) const PLACEHOLDER: &str = "ssh-placeholder";
/// The variable that sends claude's API requests over a Unix socket.
pub(crate) const SOCKET_VAR: &str = "ANTHROPIC_UNIX_SOCKET";
/// The base URL claude is given: plain HTTP over the socket (with `https://` claude
/// would speak TLS on the socket).
pub(crate) const SOCKET_BASE_URL: &str = "http://localhost";
/// The destination without `ANTHROPIC_BASE_URL`.
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The longest path a Unix socket address holds (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where the broker listens and where it forwards, worked out before anything changes.
#[derive(Debug, Clone)]
pub(crate) struct BrokerPlan {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub upstream: Upstream,
    /// Who chose the destination: `ANTHROPIC_BASE_URL in the caller's environment` or
    /// `the default`.
    pub chosen_by: &'static str,
}

impl BrokerPlan {
    /// `https://api.anthropic.com (the default)[, through the proxy P]`.
    #[must_use]
    pub(crate) fn destination_line(&self) -> String {
        destination_line(&self.upstream, self.chosen_by)
    }
}

/// `BASE (chosen by WHO)[, through the proxy P]`, the proxy without its userinfo.
fn destination_line(upstream: &Upstream, chosen_by: &str) -> String {
    let mut s = format!("{} (chosen by {chosen_by})", upstream.base);
    if let Some(p) = &upstream.proxy {
        s.push_str(&format!(", through the proxy {}", shown_proxy(p)));
    }
    s
}

/// A proxy URL without its userinfo (which may hold a password).
fn shown_proxy(p: &str) -> String {
    let (scheme, rest) = p.split_once("://").unwrap_or(("", p));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("…@{}", &rest[at + 1..]),
        Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
        None => p.to_owned(),
    }
}

/// The directory for broker sockets: the user's runtime directory when it is a private
/// directory of theirs, else `/tmp/claude-iso-<uid>`.
#[must_use]
pub(crate) fn socket_dir(env: &CallerEnv) -> PathBuf {
    let uid = nix::unistd::geteuid().as_raw();
    if let Some(run) = env.absolute_path("XDG_RUNTIME_DIR") {
        if let Ok(m) = std::fs::metadata(run) {
            if m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0 {
                return run.join(crate::layout::STATE_DIR);
            }
        }
    }
    PathBuf::from(format!("/tmp/claude-iso-{uid}"))
}

/// Works out the broker's socket and destination from the caller's environment.
///
/// # Errors
/// `ANTHROPIC_BASE_URL` that is not an http(s) URL, or a socket path too long.
pub(crate) fn plan(env: &CallerEnv) -> Result<BrokerPlan> {
    let (upstream, chosen_by) = destination(env)?;
    let dir = socket_dir(env);
    // An existing directory is judged now, before the launch changes anything; one that
    // does not exist yet is made (0700) when the broker starts.
    if std::fs::symlink_metadata(&dir).is_ok() {
        check_private(&dir)?;
    }
    let socket = dir.join(format!("broker.{}.sock", std::process::id()));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error::Usage(format!(
            "the broker's socket path {} is longer than a Unix socket allows ({MAX_SOCKET_PATH} bytes); set XDG_RUNTIME_DIR to a shorter private directory",
            socket.display()
        )));
    }
    Ok(BrokerPlan {
        dir,
        socket,
        upstream,
        chosen_by,
    })
}

/// Where a broker forwards (the caller's `ANTHROPIC_BASE_URL` or the default), with
/// the caller's proxy and extra CA file, and who chose it.
///
/// # Errors
/// `ANTHROPIC_BASE_URL` that is not an http(s) URL.
fn destination(env: &CallerEnv) -> Result<(Upstream, &'static str)> {
    let get = |name: &str| {
        env.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string_lossy().into_owned())
    };
    let (base, chosen_by) = match get("ANTHROPIC_BASE_URL") {
        Some(url) => (
            Upstream::base_url(&url).map_err(|why| {
                Error::Usage(format!(
                    "ANTHROPIC_BASE_URL {why}; set it to the API's base URL (for example https://api.anthropic.com) or unset it"
                ))
            })?,
            "ANTHROPIC_BASE_URL in the caller's environment",
        ),
        None => (DEFAULT_BASE_URL.to_owned(), "the default"),
    };
    let https = base.starts_with("https://");
    // A plain-http destination on this machine never goes through a proxy: the token
    // would cross to the proxy host in clear text.
    let loopback = !https && {
        let host = base
            .trim_start_matches("http://")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        host == "localhost" || host.starts_with("127.") || base.starts_with("http://[::1]")
    };
    let proxy = if loopback {
        None
    } else if https {
        get("HTTPS_PROXY")
            .or_else(|| get("https_proxy"))
            .or_else(|| get("ALL_PROXY"))
            .or_else(|| get("all_proxy"))
    } else {
        get("HTTP_PROXY")
            .or_else(|| get("http_proxy"))
            .or_else(|| get("ALL_PROXY"))
            .or_else(|| get("all_proxy"))
    };
    Ok((
        Upstream {
            base,
            proxy,
            no_proxy: get("NO_PROXY").or_else(|| get("no_proxy")),
            extra_ca: env
                .get("NODE_EXTRA_CA_CERTS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        },
        chosen_by,
    ))
}

/// The variables the command gets instead of any token.
#[must_use]
pub(crate) fn child_vars(socket: &Path) -> [(&'static str, OsString); 3] {
    [
        (SOCKET_VAR, socket.as_os_str().to_owned()),
        ("ANTHROPIC_BASE_URL", OsString::from(SOCKET_BASE_URL)),
        (crate::layout::TOKEN_VAR, OsString::from(PLACEHOLDER)),
    ]
}

/// Checks that a shared broker's socket answers a connection, before anything changes.
///
/// # Errors
/// Nothing listens there, or this user may not connect.
pub(crate) fn check_shared(socket: &Path) -> Result<()> {
    std::os::unix::net::UnixStream::connect(socket)
        .map(drop)
        .map_err(|e| {
            Error::Usage(format!(
                "cannot connect to the broker at {}: {}; start it (claude-iso broker serve) or check --broker / CLAUDE_ISO_BROKER",
                socket.display(),
                error_text(&e)
            ))
        })
}

/// Makes (or checks) the private socket directory.
fn private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::Usage(format!(
                "cannot create the broker's socket directory {}: {}",
                dir.display(),
                error_text(&e)
            )));
        }
    }
    check_private(dir)
}

/// Refuses a socket directory that is not a directory of ours closed to others.
fn check_private(dir: &Path) -> Result<()> {
    let uid = nix::unistd::geteuid().as_raw();
    let refuse = |why: String| {
        Error::Usage(format!(
            "the broker's socket directory {} {why}; remove it (or set XDG_RUNTIME_DIR to a private directory of yours)",
            dir.display()
        ))
    };
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| refuse(format!("cannot be examined ({})", error_text(&e))))?;
    if !m.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    if m.uid() != uid {
        return Err(refuse(format!("belongs to uid {}, not to you", m.uid())));
    }
    if m.mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "is open to others (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// Binds a Unix socket at `path` whose file gets mode `0o777 & !umask`.
fn bind_with_umask(path: &Path, umask: u32) -> std::io::Result<UnixListener> {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    bound
}

/// Removes sockets of brokers that are gone (a broker killed with SIGKILL cannot).
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("broker."))
            .and_then(|n| n.strip_suffix(".sock"))
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        // Gone in our PID namespace and nobody answering on it (another namespace that
        // shares the directory may have a live broker with that number).
        if gone && std::os::unix::net::UnixStream::connect(entry.path()).is_err() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Starts the broker: binds the socket (so claude can connect as soon as it starts),
/// forks, and returns in the launcher. The broker never returns.
///
/// # Errors
/// The directory or the socket cannot be made, or the fork fails.
pub(crate) fn start(plan: &BrokerPlan, token: &Token) -> Result<()> {
    private_dir(&plan.dir)?;
    remove_stale(&plan.dir);
    // A leftover of an earlier process with our PID; one that answers is a live broker
    // of another PID namespace sharing the directory, and stays.
    if plan.socket.exists() {
        if std::os::unix::net::UnixStream::connect(&plan.socket).is_ok() {
            return Err(Error::Usage(format!(
                "a live broker already listens at {}; set XDG_RUNTIME_DIR to a directory of this launch's own",
                plan.socket.display()
            )));
        }
        let _ = std::fs::remove_file(&plan.socket);
    }
    let bind_error = |e: std::io::Error| {
        Error::Usage(format!(
            "cannot listen on the broker's socket {}: {}",
            plan.socket.display(),
            error_text(&e)
        ))
    };
    // 0600 from the start: bind under a umask that leaves the socket to the user alone
    // (no chmod after the fact, which would follow a symlink swapped in meanwhile).
    let listener = bind_with_umask(&plan.socket, 0o177).map_err(bind_error)?;
    let launcher = nix::unistd::getpid();
    match sys::fork() {
        Ok(ForkResult::Parent { child }) => {
            // Its own process group from the parent's side too, so that no terminal signal
            // can reach it between the fork and its own setpgid.
            let _ = nix::unistd::setpgid(child, child);
            // The command must not hold the listener (it is close-on-exec too).
            drop(listener);
            Ok(())
        }
        Ok(ForkResult::Child) => {
            let status = run(plan, token, listener, launcher);
            sys::exit_now(status)
        }
        Err(e) => Err(Error::Usage(format!(
            "cannot start the broker: fork failed: {}",
            error_text(&std::io::Error::from(e))
        ))),
    }
}

/// The broker process: detach from the terminal's signals and descriptors, then serve
/// until the command ends.
fn run(plan: &BrokerPlan, token: &Token, listener: UnixListener, launcher: Pid) -> i32 {
    use std::os::fd::AsRawFd;
    // SIGTERM waits (blocked) until the forwarder handles it: a command that ends while
    // the broker still starts must not kill it before it removes its socket.
    let mut term = nix::sys::signal::SigSet::empty();
    term.add(nix::sys::signal::Signal::SIGTERM);
    let _ = term.thread_block();
    if nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).is_err()
        || nix::unistd::getppid() != launcher
    {
        let _ = std::fs::remove_file(&plan.socket);
        return 0;
    }
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // Nothing of the caller's: stdio to /dev/null, every other descriptor closed but the
    // listener.
    sys::detach_stdio();
    sys::close_all_but(listener.as_raw_fd());
    // The token is held once, in the proxy's header; a token that came in our
    // environment is overwritten there (the launcher's block, copied at the fork).
    sys::wipe_environ_values(&[crate::layout::TOKEN_VAR.as_bytes()]);
    let uid = nix::unistd::geteuid().as_raw();
    let options = crate::isolate::proxy::Options {
        allowed: Box::new(move |peer, _| peer == uid),
        admin_uid: uid,
        log: false,
        reload: None,
        grace: std::time::Duration::ZERO,
        ready: None,
    };
    let served = crate::isolate::proxy::serve(listener, plan.upstream.clone(), token, options);
    let _ = std::fs::remove_file(&plan.socket);
    i32::from(served.is_err())
}

// ---- `claude-iso broker serve` and `broker status` -------------------------------

/// Resolves `--allow-user` names or uids.
fn allowed_uids(names: &[String]) -> Result<Vec<u32>> {
    resolve_ids(names, "--allow-user", "user", |n| {
        nix::unistd::User::from_name(n)
            .ok()
            .flatten()
            .map(|u| u.uid.as_raw())
    })
}

/// Resolves `--allow-group` names or gids.
fn allowed_gids(names: &[String]) -> Result<Vec<u32>> {
    resolve_ids(names, "--allow-group", "group", |n| {
        nix::unistd::Group::from_name(n)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    })
}

/// Each of `names` as a number, or looked up by name; an unknown name is a usage error
/// naming the option.
fn resolve_ids(
    names: &[String],
    option: &str,
    what: &str,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<u32>> {
    names
        .iter()
        .map(|n| {
            n.parse::<u32>().ok().or_else(|| lookup(n)).ok_or_else(|| {
                Error::Usage(format!(
                    "{option} {n}: no such {what}; give a {what} name or a numeric id"
                ))
            })
        })
        .collect()
}

/// Whether a peer (uid, primary gid) is a member of one of `gids`: its primary group, or
/// a supplementary one of its user (`getgrouplist`).
fn in_groups(uid: u32, gid: u32, gids: &[u32]) -> bool {
    if gids.contains(&gid) {
        return true;
    }
    let Some(user) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
    else {
        return false;
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|groups| groups.iter().any(|g| gids.contains(&g.as_raw())))
        .unwrap_or(false)
}

/// The socket `broker serve` listens on: made at `path`, or passed by systemd.
fn service_listener(
    path: Option<&Path>,
    open_to_others: bool,
    env: &CallerEnv,
) -> Result<(UnixListener, Option<PathBuf>)> {
    let Some(path) = path else {
        return sys::systemd_listener(env.get("LISTEN_PID"), env.get("LISTEN_FDS"))
            .map(|l| (l, None))
            .ok_or_else(|| {
                Error::Usage(
                    "broker serve: no --socket given and no socket passed by systemd (LISTEN_FDS); pass --socket PATH or run it from a .socket unit".into(),
                )
            });
    };
    let refuse =
        |why: String| Error::Usage(format!("broker serve: --socket {}: {why}", path.display()));
    match std::fs::symlink_metadata(path) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if !m.file_type().is_socket() {
                return Err(refuse(
                    "exists and is not a socket; remove it or choose another path".into(),
                ));
            }
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(refuse(
                    "a broker already listens there; stop it first or choose another path".into(),
                ));
            }
            // A socket nobody listens on: a broker that was killed left it.
            std::fs::remove_file(path).map_err(|e| refuse(error_text(&e)))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(refuse(error_text(&e))),
    }
    // The mode comes from the umask at bind time: a chmod afterwards would follow a
    // symlink swapped in meanwhile.
    let umask = if open_to_others { 0o111 } else { 0o177 };
    let listener = bind_with_umask(path, umask).map_err(|e| refuse(error_text(&e)))?;
    Ok((listener, Some(path.to_path_buf())))
}

/// Tells systemd the service is ready (`Type=notify`), when it asked (`NOTIFY_SOCKET`).
fn sd_notify(env: &CallerEnv, message: &str) {
    let Some(target) = env.get("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
            let _ = sock.send_to_addr(message.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(message.as_bytes(), Path::new(target));
    }
}

/// `claude-iso broker serve`: holds the token and forwards the requests of every allowed
/// client, until SIGTERM.
///
/// # Errors
/// No token, a bad destination, an unknown user or group, a socket that cannot be made.
pub(crate) fn serve_main(args: &crate::cli::BrokerServeArgs) -> Result<crate::error::Outcome> {
    let launch = crate::cli::LaunchArgs {
        env_file: args.env_file.clone(),
        ..Default::default()
    };
    let config = crate::config::Config::new(&launch, CallerEnv::from_process())?;
    let (upstream, chosen_by) = destination(&config.env)?;
    let uids = allowed_uids(&args.allow_user)?;
    let gids = allowed_gids(&args.allow_group)?;
    let (token, source) = crate::token::load(&config)?;
    let (listener, made) = service_listener(
        args.socket.as_deref(),
        !uids.is_empty() || !gids.is_empty(),
        &config.env,
    )?;
    let me = nix::unistd::geteuid().as_raw();
    let shown = made.as_ref().map_or_else(
        || "the socket systemd passed".to_owned(),
        |p| p.display().to_string(),
    );
    println!(
        "claude-iso broker: token {} from {source}; forwarding to {}; listening on {shown}",
        token.redacted(),
        destination_line(&upstream, chosen_by)
    );
    // The token is held once, in the forwarder's header.
    sys::wipe_environ_values(&[crate::layout::TOKEN_VAR.as_bytes()]);
    let reload_args = launch.clone();
    let env = config.env.clone();
    let options = crate::isolate::proxy::Options {
        allowed: Box::new(move |uid, gid| {
            uid == me || uids.contains(&uid) || (!gids.is_empty() && in_groups(uid, gid, &gids))
        }),
        admin_uid: me,
        log: true,
        reload: Some(Box::new(move || {
            let config = crate::config::Config::new(&reload_args, CallerEnv::from_process())
                .map_err(|e| e.to_string())?;
            crate::token::load(&config)
                .map(|(t, _)| t)
                .map_err(|e| e.to_string())
        })),
        grace: std::time::Duration::from_secs(args.grace.unwrap_or(30)),
        ready: Some(Box::new(move || {
            sd_notify(&env, "READY=1\nSTATUS=forwarding");
        })),
    };
    let served = crate::isolate::proxy::serve(listener, upstream, &token, options);
    drop(token);
    if let Some(path) = made {
        let _ = std::fs::remove_file(path);
    }
    served.map_err(|e| Error::Usage(format!("broker serve: {}", error_text(&e))))?;
    println!("claude-iso broker: stopped");
    Ok(crate::error::Outcome::Success)
}

/// Asks a broker for its status over its socket (an HTTP/1.1 `GET`, through hyper).
///
/// # Errors
/// Nothing listens, the broker closed the connection unanswered (this user is not
/// allowed), or the answer is not the status.
pub(crate) fn fetch_status(socket: &Path) -> std::result::Result<serde_json::Value, String> {
    use http_body_util::{BodyExt, Empty};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| error_text(&e))?;
    rt.block_on(async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot connect to the broker at {}: {}", socket.display(), error_text(&e)))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(crate::isolate::proxy::STATUS_PATH)
            .header(hyper::header::HOST, "localhost")
            .body(Empty::<hyper::body::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(std::time::Duration::from_secs(10), sender.send_request(req))
            .await
            .map_err(|_| "the broker did not answer within 10 s".to_owned())?
            .map_err(|_| {
                format!(
                    "the broker at {} closed the connection unanswered: this user (uid {}) is not allowed (--allow-user, --allow-group)",
                    socket.display(),
                    nix::unistd::geteuid()
                )
            })?;
        let body = answer
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|_| "the answer is not a broker's status".to_owned())
    })
}

/// `claude-iso broker status`: requests and usage per client since the broker started.
///
/// # Errors
/// No socket given, or the broker cannot be asked.
pub(crate) fn status_main(args: &crate::cli::BrokerStatusArgs) -> Result<crate::error::Outcome> {
    let env = CallerEnv::from_process();
    let socket = args
        .socket
        .clone()
        .or_else(|| {
            env.get(crate::layout::BROKER_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .ok_or_else(|| {
            Error::Usage(
                "broker status: which broker? pass --socket PATH (or set CLAUDE_ISO_BROKER)".into(),
            )
        })?;
    let status = fetch_status(&socket).map_err(|e| Error::Usage(format!("broker status: {e}")))?;
    if args.json {
        crate::report::stdout_bytes(format!("{status:#}\n").as_bytes());
        return Ok(crate::error::Outcome::Success);
    }
    let mut out = format!(
        "destination {}\nuptime      {}s\n{:<16} {:>9} {:>7} {:>14} {:>14} {:>12}\n",
        status["destination"].as_str().unwrap_or("?"),
        status["uptime_seconds"],
        "client",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "bytes"
    );
    if let Some(clients) = status["clients"].as_object() {
        for (uid, c) in clients {
            let name = uid
                .parse::<u32>()
                .ok()
                .and_then(|u| {
                    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u))
                        .ok()
                        .flatten()
                })
                .map_or_else(|| format!("uid {uid}"), |u| format!("{} ({uid})", u.name));
            out.push_str(&format!(
                "{:<16} {:>9} {:>7} {:>14} {:>14} {:>12}\n",
                name, c["requests"], c["errors"], c["input_tokens"], c["output_tokens"], c["bytes"]
            ));
        }
    }
    crate::report::stdout_bytes(out.as_bytes());
    Ok(crate::error::Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CallerEnv {
        pairs.iter().copied().collect()
    }

    #[test]
    fn destination_is_the_callers_or_the_default() {
        let p = plan(&env(&[])).unwrap();
        assert_eq!(p.upstream.base, DEFAULT_BASE_URL);
        assert_eq!(p.chosen_by, "the default");
        let p = plan(&env(&[
            ("ANTHROPIC_BASE_URL", "http://gateway.example:9/"),
            ("HTTP_PROXY", "http://u:pw@proxy:3128"),
            ("NO_PROXY", "localhost"),
        ]))
        .unwrap();
        assert_eq!(p.upstream.base, "http://gateway.example:9");
        assert_eq!(p.upstream.no_proxy.as_deref(), Some("localhost"));
        assert!(p.destination_line().contains("http://…@proxy:3128"));
        assert!(!p.destination_line().contains("pw"));
        assert!(plan(&env(&[("ANTHROPIC_BASE_URL", "api.example")])).is_err());
        assert_eq!(
            shown_proxy("http://u:pw@proxy:3128/x"),
            "http://…@proxy:3128/x"
        );
        assert_eq!(shown_proxy("u:pw@proxy:3128"), "…@proxy:3128");
        assert_eq!(
            shown_proxy("http://proxy:3128/a@b"),
            "http://proxy:3128/a@b"
        );
        // Plain http on this machine never goes through a proxy (the token in clear).
        for local in [
            "http://127.0.0.1:9",
            "http://localhost:8080/x",
            "http://[::1]:9",
        ] {
            let p = plan(&env(&[
                ("ANTHROPIC_BASE_URL", local),
                ("HTTP_PROXY", "http://proxy:3128"),
            ]))
            .unwrap();
            assert_eq!(p.upstream.proxy, None, "{local}");
        }
    }

    #[test]
    fn socket_dir_falls_back_to_tmp() {
        let d = socket_dir(&env(&[("XDG_RUNTIME_DIR", "/nonexistent-run")]));
        assert_eq!(
            d,
            PathBuf::from(format!("/tmp/claude-iso-{}", nix::unistd::geteuid()))
        );
    }
}
