//! `--token-via fd|env`: the token on a pipe that claude reads once, or in the
//! environment; fd is the default for claude itself, env for anything else.

mod common;

use std::fs;

use common::{TOKEN, Test, write_executable};

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
        .one_line_error("CLAUDE_ISO_TOKEN_VIA=pipe: expected fd or env")
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
    let t = Test::new().arg("--dry-run");
    let out = t.run();
    out.status(0).no_secrets();
    out.stdout_contains("token via: fd (a pipe on the lowest free descriptor from 3 on");
    let t = Test::new().arg("--dry-run").command(["probe"]);
    t.run()
        .status(0)
        .stdout_contains("token via: env (CLAUDE_CODE_OAUTH_TOKEN)");
}
