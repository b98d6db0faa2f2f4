//! End-to-end (issue 10): the mask and `--scrub-tools` in front of the real claude CLI
//! (`CLAUDE_ISO_TEST_CLAUDE`), against the fake Messages API.
//!
//! 1. A project's settings point `CLAUDE_CONFIG_DIR` back at the decoy real `~/.claude`
//!    (which holds a credentials file) and the API answers 401: only the env file's
//!    token is ever sent, and the decoy is byte-for-byte unchanged with no new files.
//!    (claude 2.1.197 would fall back to that file's token; later versions would still
//!    write `backups/`, `projects/`, `sessions/` there.)
//! 2. The API asks for a Bash tool call that prints its environment: with bubblewrap
//!    on PATH, the tool result sent back does not contain the token.
//! 3. Without bubblewrap on PATH, `--scrub-tools auto` still launches claude.
//! 4. Issue 21 §6: a default launch, bubblewrap installed, leaves the working directory
//!    exactly as it was (the scrub is off); with `--scrub-tools on` claude writes the
//!    stubs `layout::SCRUB_STUBS` names, and nothing else.

use std::fs;
use std::process::Command;

use crate::support::fake_api::{FakeApi, Mode};
use crate::support::world::{CLAUDE_ISO, DECOY_MARK, PRINT_TIMEOUT, World, run_timed, run_watched};

/// `--allow-project-auth` when this claude-iso has it (the project-settings guard of
/// issue 10 refuses this case without it).
fn allow_project_auth() -> Vec<&'static str> {
    let help = Command::new(CLAUDE_ISO).arg("--help").output().unwrap();
    if String::from_utf8_lossy(&help.stdout).contains("--allow-project-auth") {
        vec!["--allow-project-auth"]
    } else {
        Vec::new()
    }
}

#[test]
fn project_settings_pointing_at_the_real_config_dir_reach_nothing() {
    let Some(w) = World::new("project_settings_pointing_at_the_real_config_dir_reach_nothing")
    else {
        return;
    };
    let api = FakeApi::unauthorized();
    let work = w.dir("project");
    let settings = w.dir("project/.claude").join("settings.json");
    fs::write(
        &settings,
        serde_json::json!({"env": {"CLAUDE_CONFIG_DIR": w.decoy.join(".claude")}}).to_string(),
    )
    .unwrap();
    let mut pre = allow_project_auth();
    pre.push("--mask");
    pre.push("on");
    let run = w.print(&api, &work, &pre, "say pong");
    assert!(
        !run.status.success(),
        "claude succeeded against an API that refuses everything: {run}"
    );
    assert!(
        !api.requests().is_empty(),
        "claude sent nothing: {run}\n{}",
        api.summary()
    );
    // Every request carried exactly the env file's token, nothing of the decoy's.
    w.assert_only_token(&api);
    // Nothing written, nothing created, nothing even read in the decoy real home.
    w.assert_decoy_unchanged();
}

#[test]
fn the_bash_tool_does_not_see_the_token() {
    let Some(w) = World::new("the_bash_tool_does_not_see_the_token") else {
        return;
    };
    assert!(
        ["/usr/bin/bwrap", "/bin/bwrap"]
            .iter()
            .any(|p| std::path::Path::new(p).exists()),
        "bubblewrap is not installed: apt-get install bubblewrap (.ci/run does)"
    );
    let api = FakeApi::with_mode(Mode::BashTool {
        command: "echo TOOL-RAN; env".into(),
        then: "done".into(),
    });
    let work = w.dir("work");
    let mut cmd = w.launcher(
        &api,
        &work,
        &["--scrub-tools", "on"],
        &["--print", "print the environment", "--allowedTools", "Bash"],
    );
    // A credential claude withholds from its tools only when told to scrub (claude-iso
    // passes it: it is not an Anthropic credential). The token itself is withheld by
    // claude 2.1.197 and 2.1.330 even without the switch (measured).
    cmd.env(
        "AZURE_CLIENT_SECRET",
        format!("{DECOY_MARK}-azure-client-secret"),
    );
    let run = run_watched(&mut cmd, PRINT_TIMEOUT, &w.logs, || {
        w.foreign_request(&api).is_some()
    });
    assert!(run.status.success(), "claude-iso failed: {run}");
    w.assert_only_token(&api);
    let bodies: Vec<String> = api
        .message_requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("tool_result") && b.contains("TOOL-RAN")),
        "the Bash tool did not run (no tool result came back):\n{}",
        api.summary()
    );
    let secret = &w.token[13..];
    for b in &bodies {
        assert!(
            !b.contains(secret),
            "the token reached the Bash tool's environment and was sent back to the API"
        );
    }
    w.assert_decoy_unchanged();
}

#[test]
fn without_bubblewrap_scrub_tools_auto_still_launches_claude() {
    let Some(w) = World::new("without_bubblewrap_scrub_tools_auto_still_launches_claude") else {
        return;
    };
    let api = FakeApi::start("pong");
    let work = w.dir("work");
    // PATH: only the test's bin (claude), so no bwrap is found.
    let mut cmd = w.launcher(
        &api,
        &work,
        &["-v", "--scrub-tools", "auto"],
        &["--print", "say pong"],
    );
    cmd.env("PATH", &w.bin)
        .env("CLAUDE_CODE_SUBPROCESS_ENV_SCRUB", "1");
    let run = run_timed(&mut cmd, PRINT_TIMEOUT, &w.logs);
    assert!(run.status.success(), "claude-iso failed: {run}");
    assert!(run.stdout.contains("pong"), "no answer: {run}");
    assert!(
        run.stderr.contains("bubblewrap was not found"),
        "-v does not say why: {run}"
    );
    w.assert_only_token(&api);
    w.assert_decoy_unchanged();
}

fn bubblewrap_installed() {
    assert!(
        ["/usr/bin/bwrap", "/bin/bwrap"]
            .iter()
            .any(|p| std::path::Path::new(p).exists()),
        "bubblewrap is not installed: apt-get install bubblewrap (.ci/run does)"
    );
}

/// A working directory that is a git checkout (made by hand, as `git init` makes the
/// part claude writes to: `.git/info/exclude`).
fn checkout(w: &World, name: &str) -> std::path::PathBuf {
    let work = w.dir(name);
    fs::create_dir_all(work.join(".git/info")).unwrap();
    fs::write(work.join(".git/info/exclude"), "# git ls-files --others\n").unwrap();
    fs::write(work.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    work
}

/// Issue 21 §6: with bubblewrap installed, `--scrub-tools auto` (the old default) made
/// claude create about twenty empty stubs in the working directory and append to
/// `.git/info/exclude` on every start. The default is `off` now: a default launch of
/// `claude --print` leaves the working directory exactly as it was.
#[test]
fn a_default_launch_creates_nothing_in_the_working_directory() {
    let Some(w) = World::new("a_default_launch_creates_nothing_in_the_working_directory") else {
        return;
    };
    bubblewrap_installed();
    let api = FakeApi::start("pong");
    let work = checkout(&w, "work");
    let before = crate::support::world::snapshot(&work);
    let run = w.print(&api, &work, &[], "say pong");
    assert!(run.status.success(), "claude-iso failed: {run}");
    assert!(run.stdout.contains("pong"), "no answer: {run}");
    w.assert_only_token(&api);
    let after = crate::support::world::snapshot(&work);
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
        .collect();
    assert!(
        changed.is_empty(),
        "a default launch changed the working directory: {changed:?}"
    );
    w.assert_decoy_unchanged();
}

/// Issue 21 §6: what `--scrub-tools on` documents is what claude does: the stubs of
/// `layout::SCRUB_STUBS` (empty files, directories) and their parents, some of
/// `layout::SCRUB_GIT_STUBS` in `.git` (which depends on the version), and a block
/// appended to `.git/info/exclude`; nothing else.
#[test]
fn with_the_scrub_on_claude_writes_the_documented_stubs() {
    let Some(w) = World::new("with_the_scrub_on_claude_writes_the_documented_stubs") else {
        return;
    };
    bubblewrap_installed();
    let api = FakeApi::start("pong");
    let work = checkout(&w, "work");
    let before = crate::support::world::snapshot(&work);
    let run = w.print(&api, &work, &["--scrub-tools", "on"], "say pong");
    assert!(run.status.success(), "claude-iso failed: {run}");
    let after = crate::support::world::snapshot(&work);
    let mut documented: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for stub in claude_iso::layout::SCRUB_STUBS {
        let path = format!("/{}", stub.trim_end_matches('/'));
        let mut p = std::path::Path::new(&path);
        while let Some(parent) = p.parent() {
            documented.insert(p.display().to_string());
            p = parent;
        }
    }
    let created: std::collections::BTreeSet<String> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let mut in_git: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for stub in claude_iso::layout::SCRUB_GIT_STUBS {
        let path = format!("/.git/{}", stub.trim_end_matches('/'));
        let mut p = std::path::Path::new(&path);
        while let Some(parent) = p.parent() {
            in_git.insert(p.display().to_string());
            p = parent;
        }
    }
    let undocumented: Vec<_> = created
        .iter()
        .filter(|c| !documented.contains(*c) && !in_git.contains(*c))
        .collect();
    assert!(
        undocumented.is_empty(),
        "claude created stubs the documentation lacks: {undocumented:?}"
    );
    let missing: Vec<_> = documented.difference(&created).collect();
    assert!(
        missing.is_empty(),
        "the documented stubs were not all created (has claude changed?): {missing:?}"
    );
    for stub in claude_iso::layout::SCRUB_STUBS {
        if !stub.ends_with('/') {
            assert_eq!(
                fs::metadata(work.join(stub)).unwrap().len(),
                0,
                "{stub} is not empty"
            );
        }
    }
    let exclude = fs::read_to_string(work.join(".git/info/exclude")).unwrap();
    assert!(
        exclude.starts_with("# git ls-files --others\n") && exclude.contains("/package.json"),
        "{exclude}"
    );
    w.assert_decoy_unchanged();
}
