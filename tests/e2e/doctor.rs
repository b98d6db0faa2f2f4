//! End-to-end: `claude-iso doctor --live` in front of the real claude CLI (found through
//! `CLAUDE_ISO_TEST_CLAUDE`) and a fake Messages API on 127.0.0.1, in the same hostile
//! caller environment as `tests/e2e/launch.rs` (issue 5: `--live` passes against a working API
//! and fails against one answering 401; the token never appears in the output; doctor
//! changes nothing).

use std::process::Command;
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use crate::support::world::{CLAUDE_ISO, World, run_timed};
use serde_json::Value;

const DOCTOR_TIMEOUT: Duration = Duration::from_secs(150);

fn doctor(w: &World, api: &FakeApi) -> (crate::support::world::Run, Value) {
    let project = w.dir("project");
    let mut cmd = Command::new(CLAUDE_ISO);
    cmd.env_clear()
        .envs(w.caller_env(api))
        .current_dir(&project)
        .args(["doctor", "--live", "--json", "--env-file"])
        .arg(&w.env_file)
        .arg("--home")
        .arg(&w.home);
    let run = run_timed(&mut cmd, DOCTOR_TIMEOUT, &w.logs);
    let json: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {run}"));
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(&w.token), "the token leaked: {run}");
    }
    assert!(
        std::fs::symlink_metadata(&w.home).is_err(),
        "doctor created the scratch home: {run}"
    );
    w.assert_decoy_unchanged();
    (run, json)
}

fn check<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} check in {json:#}"))
}

#[test]
fn live_check_passes_with_the_token_alone() {
    let Some(w) = World::new("live_check_passes_with_the_token_alone") else {
        return;
    };
    let api = FakeApi::start("AUTH_OK");
    let (run, json) = doctor(&w, &api);
    assert_eq!(check(&json, "live")["status"], "ok", "{run}");
    assert_eq!(check(&json, "command")["status"], "ok", "{run}");
    assert_eq!(json["ok"], true, "{run}");
    assert_eq!(run.status.code(), Some(0), "{run}");
    assert!(
        !api.message_requests().is_empty(),
        "the live check sent no request:\n{}",
        api.summary()
    );
    w.assert_only_token(&api);
    // The hostile caller environment is reported, by name only.
    let env = check(&json, "environment");
    assert_eq!(env["status"], "warn", "{run}");
    let detail = env["detail"].as_str().unwrap();
    for name in ["ANTHROPIC_API_KEY", "CLAUDE_CONFIG_DIR", "127.0.0.1"] {
        assert!(detail.contains(name), "{name} not named: {detail}");
    }
    assert!(!detail.contains("env-api-key"), "a value leaked: {detail}");
}

#[test]
fn live_check_fails_against_a_401() {
    let Some(w) = World::new("live_check_fails_against_a_401") else {
        return;
    };
    let api = FakeApi::unauthorized();
    let (run, json) = doctor(&w, &api);
    assert_eq!(check(&json, "live")["status"], "fail", "{run}");
    assert_eq!(json["ok"], false, "{run}");
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(
        !api.message_requests().is_empty(),
        "the live check sent no request:\n{}",
        api.summary()
    );
    w.assert_only_token(&api);
}
