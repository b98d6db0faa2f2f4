//! End-to-end (issue 17): the token on a pipe, in front of the real claude CLI
//! (`CLAUDE_ISO_TEST_CLAUDE`) and the fake Messages API.
//!
//! `--print` answering with only the token sent is what every case of `tests/e2e/launch.rs`
//! checks (the command there is claude, so the token goes on a pipe by default), and the
//! TUI cases there read the interactive claude's `/proc/<pid>/environ`. This file asks
//! the one question left: does claude, having read the token from a descriptor, put it
//! back into the environment of the tools it starts? A Bash tool call prints its
//! environment, with claude's own subprocess scrub off, and the tool result claude sends
//! back must not hold the token. The same run with `--token-via env` is recorded for
//! comparison (what claude itself withholds varies by release).

use crate::support::fake_api::{FakeApi, Mode};
use crate::support::world::{PRINT_TIMEOUT, World, run_watched};

const REPLY: &str = "pong from the fake API";

/// Runs a Bash tool call that prints its environment; returns what the tool result sent
/// back to the API said about the token: (token present, CLAUDE_CODE_OAUTH_TOKEN
/// present, descriptor variable present).
fn tool_env(w: &World, via: &str) -> (bool, bool, bool) {
    let api = FakeApi::with_mode(Mode::BashTool {
        command: "echo TOOL-RAN; env".into(),
        then: "done".into(),
    });
    let work = w.dir(&format!("work-{via}"));
    let mut cmd = w.launcher(
        &api,
        &work,
        &["--token-via", via, "--scrub-tools", "off", "--mask", "off"],
        &["--print", "print the environment", "--allowedTools", "Bash"],
    );
    let run = run_watched(&mut cmd, PRINT_TIMEOUT, &w.logs, || {
        w.foreign_request(&api).is_some()
    });
    assert!(run.status.success(), "claude-iso ({via}) failed: {run}");
    w.assert_only_token(&api);
    // Per release: talking to the API directly, 2.1.197 probes the base URL with a
    // credential-free `HEAD /` at start (not a leak: it carries nothing); 2.1.330 and
    // 2.1.332 do not; through the broker no release's probe reaches the API.
    let probes = api.requests().iter().filter(|r| r.method == "HEAD").count();
    match (via, crate::support::world::sends_head_probe()) {
        ("broker", _) | (_, Some(false)) => assert_eq!(
            probes,
            0,
            "a HEAD probe from claude {:?} ({via}):\n{}",
            crate::support::world::claude_version(),
            api.summary()
        ),
        (_, Some(true)) => assert!(
            probes > 0,
            "no HEAD probe from claude {:?} ({via}):\n{}",
            crate::support::world::claude_version(),
            api.summary()
        ),
        (_, None) => eprintln!(
            "e2e: claude {:?} sent {probes} HEAD probe(s) (not asserted for this release)",
            crate::support::world::claude_version()
        ),
    }
    let results: Vec<String> = api
        .message_requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("tool_result") && b.contains("TOOL-RAN"))
        .collect();
    assert!(
        !results.is_empty(),
        "the Bash tool did not run (no tool result came back):\n{}",
        api.summary()
    );
    let secret = &w.token[13..];
    let any = |needle: &str| results.iter().any(|b| b.contains(needle));
    (
        any(secret),
        any("CLAUDE_CODE_OAUTH_TOKEN="),
        any("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR="),
    )
}

#[test]
fn claude_does_not_hand_the_token_from_the_pipe_to_its_tools() {
    let Some(w) = World::new("claude_does_not_hand_the_token_from_the_pipe_to_its_tools") else {
        return;
    };
    let (token, var, fd_var) = tool_env(&w, "fd");
    eprintln!(
        "claude {}: --token-via fd, scrub off: tool env has token={token} CLAUDE_CODE_OAUTH_TOKEN={var} descriptor variable={fd_var}",
        crate::support::world::claude_version().unwrap_or("?")
    );
    assert!(
        !token,
        "the token from the pipe reached the Bash tool's environment"
    );
    assert!(!var, "claude set CLAUDE_CODE_OAUTH_TOKEN for its Bash tool");

    // For comparison (recorded, not asserted: it is claude's own behaviour per release).
    let (token, var, _) = tool_env(&w, "env");
    eprintln!(
        "claude {}: --token-via env, scrub off: tool env has token={token} CLAUDE_CODE_OAUTH_TOKEN={var}",
        crate::support::world::claude_version().unwrap_or("?")
    );
    w.assert_decoy_unchanged();
}

#[test]
fn through_the_broker_claudes_tools_find_no_token() {
    let Some(w) = World::new("through_the_broker_claudes_tools_find_no_token") else {
        return;
    };
    // The Bash tool runs `env` (scrub off: claude hands its own environment on); the
    // tool can reach the API through the socket, but no piece of the token is there.
    let (token, _, fd_var) = tool_env(&w, "broker");
    assert!(!token, "the token reached the Bash tool's environment");
    assert!(!fd_var, "a token descriptor variable reached the Bash tool");
    w.assert_decoy_unchanged();
}

/// Issue 25: an agent that has no token at all, through a shared `claude-iso broker
/// serve`, gets answers from the real claude; the API sees only the broker's token. As
/// root the agent runs as another user (65534) that cannot read the token file; without
/// root, as the same user, with no token anywhere in its environment or env file.
#[test]
fn an_agent_without_a_token_answers_through_a_shared_broker() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let Some(w) = World::new("an_agent_without_a_token_answers_through_a_shared_broker") else {
        return;
    };
    let api = FakeApi::start(REPLY);
    let root = nix::unistd::geteuid().is_root();
    let agent_uid = if root {
        65534
    } else {
        nix::unistd::geteuid().as_raw()
    };
    let agent_gid = if root {
        65534
    } else {
        nix::unistd::getegid().as_raw()
    };
    // A directory others can traverse: the socket, and the agent's own home and work.
    let shared = tempfile::Builder::new()
        .prefix("claude-iso-fleet.")
        .tempdir()
        .unwrap();
    let shared = std::fs::canonicalize(shared.keep()).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.join("api.sock");
    let agent = shared.join("agent");
    std::fs::create_dir(&agent).unwrap();
    std::fs::create_dir(agent.join("work")).unwrap();
    nix::unistd::chown(&agent, Some(agent_uid.into()), Some(agent_gid.into())).unwrap();
    nix::unistd::chown(
        &agent.join("work"),
        Some(agent_uid.into()),
        Some(agent_gid.into()),
    )
    .unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o700)).unwrap();

    let log = w.logs.join("broker.log");
    let mut broker = std::process::Command::new(crate::support::world::CLAUDE_ISO)
        .env_clear()
        .env("PATH", crate::support::world::base_path())
        .env("ANTHROPIC_BASE_URL", api.base_url())
        .args(["broker", "serve", "--env-file"])
        .arg(&w.env_file)
        .arg("--socket")
        .arg(&socket)
        .args(["--allow-user", &agent_uid.to_string()])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no broker socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let claude_dir = w.claude.parent().unwrap().to_path_buf();
    let as_agent = |cmd: &mut std::process::Command| {
        cmd.env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    claude_dir.display(),
                    crate::support::world::base_path()
                ),
            )
            .env("HOME", &agent)
            .env("LANG", "C.UTF-8")
            .envs(crate::support::world::quiet_env())
            .current_dir(agent.join("work"));
        if root {
            cmd.uid(agent_uid).gid(agent_gid);
        }
    };
    if root {
        // The agent's user cannot read the token the broker holds.
        let mut cat = std::process::Command::new("/bin/cat");
        cat.arg(&w.env_file);
        as_agent(&mut cat);
        assert!(
            !cat.output().unwrap().status.success(),
            "the agent can read the token file"
        );
    }
    let mut cmd = std::process::Command::new(crate::support::world::CLAUDE_ISO);
    cmd.arg("--broker")
        .arg(&socket)
        .arg("--home")
        .arg(agent.join("home"))
        .args(["--", "claude", "--print", "say pong"]);
    as_agent(&mut cmd);
    let run = crate::support::world::run_timed(&mut cmd, PRINT_TIMEOUT, &w.logs);
    let _ = broker.kill();
    let _ = broker.wait();
    assert!(run.status.success(), "the agent's claude failed: {run}");
    assert!(run.stdout.contains(REPLY), "no answer: {run}");
    w.assert_only_token(&api);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains(&format!("uid={agent_uid} POST /v1/messages")),
        "the broker did not log the agent's request:\n{logged}"
    );
    assert!(!logged.contains(&w.token[13..]));
    let _ = std::fs::remove_dir_all(&shared);
}
