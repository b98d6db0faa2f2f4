//! `claude-iso doctor`: its JSON tells the truth in each situation, it never prints the
//! token and it changes nothing (issue 5). `--live` against the real claude is in
//! `tests/e2e/doctor.rs`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::sandbox::{
    Test, bind_wrap, chmod, kill, mkdir, mkdir_mode, tree, write_executable, write_mode,
};
use serde_json::Value;

// Issue 11 adds `unscrubbable` (what scrubbing cannot remove).
// Round three adds `token_via` (the broker, the pipe or the environment).
const NAMES: [&str; 13] = [
    "token",
    "env_file",
    "home",
    "credentials",
    "seed",
    "command",
    "environment",
    "project_settings",
    "token_via",
    "destination",
    "mask",
    "scrub_tools",
    "unscrubbable",
];

/// Runs `doctor --json` with the sandbox's env file and home; returns (exit, JSON) and
/// the sandbox (which is deleted when dropped).
fn doctor(t: Test) -> (i32, Value, Test) {
    let env_file = t.env_file();
    let home = t.home();
    let t = t
        .no_env_file()
        .no_home()
        .args(["doctor", "--json", "--env-file"])
        .arg(env_file)
        .arg("--home")
        .arg(home);
    let out = t.run();
    out.no_secrets();
    let json: Value = serde_json::from_str(&out.stdout_text())
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", out.stdout_text()));
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, NAMES, "{json:#}");
    let code = out.status.code().expect("exited");
    assert_eq!(json["ok"], code == 0, "{json:#}");
    drop(out);
    (code, json, t)
}

fn check<'a>(json: &'a Value, name: &str) -> (&'a str, &'a str) {
    let c = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap();
    (c["status"].as_str().unwrap(), c["detail"].as_str().unwrap())
}

fn seeded_home(t: &Test) -> std::path::PathBuf {
    let home = mkdir(&t.home());
    chmod(&home, 0o700);
    home
}

#[test]
fn all_ok_exits_0_and_changes_nothing() {
    let t = Test::new();
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 0, "{json:#}");
    for name in NAMES {
        assert_eq!(check(&json, name).0, "ok", "{name}: {json:#}");
    }
    assert!(
        check(&json, "token").1.contains("sk-ant-oat01-… ("),
        "{json:#}"
    );
}

#[test]
fn a_0644_env_file_fails_env_file_and_exits_1() {
    let t = Test::new();
    chmod(&t.env_file(), 0o644);
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 1);
    let (status, detail) = check(&json, "env_file");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("0644") && detail.contains("chmod 600"),
        "{detail}"
    );
}

#[test]
fn an_api_key_in_the_environment_is_a_named_warning() {
    let t = Test::new()
        .env("ANTHROPIC_API_KEY", "sk-ant-api03-SECRETSECRETSECRET")
        .env("ANTHROPIC_BASE_URL", "http://user:pw@127.0.0.1:9/v1")
        .secret("sk-ant-api03-SECRETSECRETSECRET");
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 0, "{json:#}");
    let (status, detail) = check(&json, "environment");
    assert_eq!(status, "warn");
    assert!(detail.contains("ANTHROPIC_API_KEY"), "{detail}");
    assert!(
        detail.contains("127.0.0.1:9") && !detail.contains("pw"),
        "{detail}"
    );
}

/// Issue 11: variables of newer releases, removed by rule or by name, are named; nothing
/// claims "no credential-bearing variables set" while one is.
#[test]
fn newer_credential_variables_are_named_too() {
    let t = Test::new()
        .env("CLAUDE_CODE_USE_FOUNDRY", "1")
        .env("ANTHROPIC_FOUNDRY_API_KEY", "foundry-SECRETSECRETSECRET")
        .env("CLAUDE_CODE_REMOTE_SESSION_ID", "session")
        .env(
            "ANTHROPIC_CUSTOM_HEADERS",
            "x-api-key: hdr-SECRETSECRETSECRET",
        )
        .env("CLAUDE_CODE_MAX_OUTPUT_TOKENS", "9000")
        .secret("foundry-SECRETSECRETSECRET")
        .secret("hdr-SECRETSECRETSECRET");
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 0, "{json:#}");
    let (status, detail) = check(&json, "environment");
    assert_eq!(status, "warn", "{detail}");
    for name in [
        "CLAUDE_CODE_USE_FOUNDRY",
        "ANTHROPIC_FOUNDRY_API_KEY",
        "CLAUDE_CODE_REMOTE_SESSION_ID",
        "ANTHROPIC_CUSTOM_HEADERS",
    ] {
        assert!(detail.contains(name), "{name}: {detail}");
    }
    assert!(
        !detail.contains("MAX_OUTPUT_TOKENS"),
        "configuration: {detail}"
    );
    assert!(!detail.contains("no credential-bearing"), "{detail}");
}

#[test]
fn a_stray_credentials_file_is_reported_and_left_in_place() {
    let t = Test::new();
    let home = seeded_home(&t);
    let creds = mkdir(&home.join(".claude")).join(".credentials.json");
    write_mode(&creds, "{}", 0o600);
    let (_, json, _t) = doctor(t);
    assert_ne!(check(&json, "credentials").0, "ok", "{json:#}");
    assert!(creds.exists(), "doctor moved the credentials file");
    assert!(
        !home.join(".claude.json").exists(),
        "doctor seeded the home"
    );
}

/// Issue 16 changed this contract: the launcher now refuses such a folder, so doctor
/// fails the check (it warned before); allowed on purpose, it warns.
#[test]
fn project_settings_with_an_api_key_helper_fail() {
    let t = Test::new();
    let settings = mkdir(&t.work().join(".claude")).join("settings.json");
    write_mode(&settings, r#"{"apiKeyHelper": "echo key"}"#, 0o644);
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 1, "{json:#}");
    let (status, detail) = check(&json, "project_settings");
    assert_eq!(status, "fail");
    assert!(detail.contains("apiKeyHelper"), "{detail}");

    let t = Test::new().env("CLAUDE_ISO_ALLOW_PROJECT_AUTH", "1");
    let settings = mkdir(&t.work().join(".claude")).join("settings.json");
    write_mode(&settings, r#"{"apiKeyHelper": "echo key"}"#, 0o644);
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 0, "{json:#}");
    let (status, detail) = check(&json, "project_settings");
    assert_eq!(status, "warn");
    assert!(detail.contains("apiKeyHelper"), "{detail}");
}

/// Issue 16 / issue 10 §3: the scratch home's own user settings are judged too.
#[test]
fn a_redirect_in_the_scratch_homes_user_settings_fails_project_settings() {
    let t = Test::new();
    let home = mkdir(&t.home());
    crate::support::sandbox::chmod(&home, 0o700);
    let settings = mkdir(&home.join(".claude")).join("settings.json");
    write_mode(
        &settings,
        r#"{"env":{"ANTHROPIC_BASE_URL":"http://evil.example"}}"#,
        0o644,
    );
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 1, "{json:#}");
    let (status, detail) = check(&json, "project_settings");
    assert_eq!(status, "fail");
    assert!(
        detail.contains(&settings.display().to_string())
            && detail.contains("env.ANTHROPIC_BASE_URL")
            && detail.contains("http://evil.example"),
        "{detail}"
    );
    let (status, detail) = check(&json, "destination");
    assert_eq!(status, "warn");
    assert!(
        detail.contains("the scratch home's user settings"),
        "{detail}"
    );
}

#[test]
fn destination_names_the_host_and_who_chose_it_and_warns_off_anthropic() {
    let (_, json, _t) = doctor(Test::new());
    let (status, detail) = check(&json, "destination");
    assert_eq!(status, "ok", "{json:#}");
    assert!(
        detail.contains("https://api.anthropic.com (chosen by the default)"),
        "{detail}"
    );

    let t = Test::new().env("ANTHROPIC_BASE_URL", "http://user:pw-xyz@127.0.0.1:9/v1");
    let (_, json, _t) = doctor(t);
    let (status, detail) = check(&json, "destination");
    assert_eq!(status, "warn", "{json:#}");
    assert!(
        detail.contains(
            "http://127.0.0.1:9 (chosen by ANTHROPIC_BASE_URL in the caller's environment)"
        ),
        "{detail}"
    );
    assert!(
        !detail.contains("pw-xyz") && !detail.contains("user"),
        "{detail}"
    );

    let t = Test::new();
    let settings = mkdir(&t.work().join(".claude")).join("settings.local.json");
    write_mode(
        &settings,
        r#"{"env":{"ANTHROPIC_BASE_URL":"https://evil.example"}}"#,
        0o644,
    );
    let (_, json, _t) = doctor(t);
    let (status, detail) = check(&json, "destination");
    assert_eq!(status, "warn", "{json:#}");
    assert!(
        detail.contains("https://evil.example") && detail.contains("settings.local.json"),
        "{detail}"
    );
}

#[test]
fn a_fifo_in_project_settings_does_not_hang_doctor() {
    let t = Test::new();
    let dir = mkdir(&t.work().join(".claude"));
    let fifo = dir.join("settings.json");
    nix::unistd::mkfifo(
        Path::new(&fifo),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let (_, json, _t) = doctor(t);
    // Issue 16: a settings file the guard cannot judge is refused, so the check fails.
    let (status, detail) = check(&json, "project_settings");
    assert_eq!(status, "fail", "{json:#}");
    assert!(detail.contains("not a regular file"), "{detail}");
}

#[test]
fn seed_reports_what_is_already_there() {
    let t = Test::new();
    let home = seeded_home(&t);
    let work = t.work();
    write_mode(
        &home.join(".claude.json"),
        format!(
            "{{\"hasCompletedOnboarding\": true, \"fullscreenUpsellSeenCount\": 3, \"hasSeenAutoDefaultNudge\": true, \"projects\": {{\"{}\": {{\"hasTrustDialogAccepted\": true}}}}}}",
            work.display()
        ),
        0o600,
    );
    let (_, json, _t) = doctor(t);
    let (status, detail) = check(&json, "seed");
    assert_eq!(status, "ok");
    assert!(detail.contains("already seeded"), "{detail}");
}

/// Found by review: doctor did not take `--share`, so it could not report what a launch
/// with shares would refuse. `doctor --share` judges them as the launcher does: a
/// `share` check, ok with what is copied in, or fail with the launcher's refusal.
#[test]
fn doctor_judges_shares_as_the_launcher_does() {
    let run = |settings: &str| {
        let t = Test::new();
        let claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&claude.join("CLAUDE.md"), "# Notes\n", 0o644);
        write_mode(&claude.join("settings.json"), settings, 0o644);
        let env_file = t.env_file();
        let home = t.home();
        let t = t
            .no_env_file()
            .no_home()
            .args(["doctor", "--json", "--share", "default", "--env-file"])
            .arg(env_file)
            .arg("--home")
            .arg(home);
        let out = t.run();
        out.no_secrets();
        let json: Value = serde_json::from_str(&out.stdout_text())
            .unwrap_or_else(|e| panic!("no JSON ({e}): {}", out.stdout_text()));
        let (status, detail) = check(&json, "share");
        (
            out.status.code().unwrap(),
            status.to_owned(),
            detail.to_owned(),
        )
    };
    let (code, status, detail) = run("{}");
    assert_eq!((code, status.as_str()), (0, "ok"), "{detail}");
    assert!(
        detail.contains(".claude/CLAUDE.md") && detail.contains(".claude/settings.json"),
        "{detail}"
    );
    let (code, status, detail) = run(r#"{"apiKeyHelper":"echo k"}"#);
    assert_eq!((code, status.as_str()), (1, "fail"), "{detail}");
    assert!(
        detail.contains("apiKeyHelper") && detail.contains("exit 125"),
        "{detail}"
    );
}

#[test]
fn the_broker_is_named_with_its_destination() {
    // claude's default: the broker; the destination is the caller's, whatever a
    // repository's settings say (they still fail project_settings).
    let t = Test::new().default_token_via();
    let settings = mkdir(&t.work().join(".claude")).join("settings.local.json");
    write_mode(
        &settings,
        r#"{"env":{"ANTHROPIC_BASE_URL":"https://evil.example"}}"#,
        0o644,
    );
    let (_, json, _t) = doctor(t);
    let (status, detail) = check(&json, "token_via");
    assert_eq!(status, "ok", "{json:#}");
    assert!(
        detail.starts_with("broker: a process beside claude holds the token and forwards its API requests from a socket in ")
            && detail.contains(" to https://api.anthropic.com (chosen by the default); claude gets the placeholder ssh-placeholder"),
        "{detail}"
    );
    let (status, detail) = check(&json, "destination");
    assert_eq!(status, "ok", "{json:#}");
    assert_eq!(
        detail,
        "the token goes to https://api.anthropic.com (chosen by the default) through the broker"
    );
    assert_eq!(check(&json, "project_settings").0, "fail");

    // A base URL the broker cannot forward to fails, naming the variable.
    let t = Test::new()
        .default_token_via()
        .env("ANTHROPIC_BASE_URL", "api.example.com");
    let (code, json, _t) = doctor(t);
    assert_eq!(code, 1);
    let (status, detail) = check(&json, "token_via");
    assert_eq!(status, "fail");
    assert!(
        detail.starts_with("ANTHROPIC_BASE_URL is not a URL"),
        "{detail}"
    );

    // A shared broker: no token needed (no env file checked); a socket nobody listens
    // on fails, named.
    let t = Test::new().default_token_via();
    let socket = t.path("nobody.sock");
    let home = t.home();
    let t = t
        .no_env_file()
        .no_home()
        .args(["doctor", "--json", "--broker"])
        .arg(&socket)
        .arg("--home")
        .arg(home);
    let out = t.run();
    out.status(1).no_secrets();
    let json: Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let names: Vec<&str> = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"env_file"), "{names:?}");
    let (status, detail) = check(&json, "token");
    assert_eq!(status, "ok");
    assert!(
        detail.starts_with("none needed: the shared broker at "),
        "{detail}"
    );
    let (status, detail) = check(&json, "token_via");
    assert_eq!(status, "fail");
    assert!(
        detail.starts_with(&format!(
            "cannot connect to the broker at {}: ",
            socket.display()
        )),
        "{detail}"
    );
}

/// Issue 21 §6: `doctor`'s `scrub_tools` says the scrub is off by default, and with it
/// on names where claude will write its stubs (the working directory).
#[test]
fn scrub_tools_is_off_by_default_and_names_where_stubs_appear_when_on() {
    let (_, json, _t) = doctor(Test::new());
    let (status, detail) = check(&json, "scrub_tools");
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.starts_with("off:"), "{detail}");
    let t = Test::new();
    let work = t.work();
    let (_, json, _t) = doctor(t.env("CLAUDE_ISO_SCRUB_TOOLS", "on"));
    let (_, detail) = check(&json, "scrub_tools");
    assert!(
        detail.contains(&format!(
            "claude creates empty stubs in {} (",
            work.display()
        )) && detail.contains("package.json"),
        "{detail}"
    );
}

/// The command line of every process whose argv contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                out.push(format!("{}: {text}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

/// A marker unique to this test run, for finding processes it left.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}{}{nanos:09}", std::process::id())
}

// ---------------------------------------------------------------------------------------
// doctor honours its timeouts
// ---------------------------------------------------------------------------------------

/// A stand-in `claude` that answers, leaves `sleep <marker> &` holding the pipe, and
/// exits: doctor (with --live) returns promptly and the sleep is gone.
#[test]
fn doctor_does_not_wait_for_a_background_process_holding_the_pipe() {
    let t = Test::new().timeout(Duration::from_secs(20));
    let marker = format!("3000.{}", unique(""));
    write_executable(
        &t.path("bin/claude"),
        &format!(
            "#!/bin/sh\nsleep {marker} &\ncase \"$1\" in\n--version) echo '9.9.9 (Claude Code)' ;;\n-p) echo AUTH_OK ;;\nesac\nexit 0\n"
        ),
    );
    let doctor = doctor_live(&t).timeout(Duration::from_secs(20));
    let started = Instant::now();
    let out = doctor.run();
    let took = started.elapsed();
    out.status(0)
        .stdout_contains("9.9.9 (Claude Code)")
        .stdout_contains("claude answered AUTH_OK");
    std::thread::sleep(Duration::from_millis(300));
    let left = processes_with(&marker);
    for p in &left {
        if let Some(pid) = p.split(':').next().and_then(|s| s.parse::<u32>().ok()) {
            kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    assert!(left.is_empty(), "left running: {left:?}");
    eprintln!("doctor --live took {took:?}");
}

/// doctor never shows a password (or any userinfo) of `ANTHROPIC_BASE_URL`, whatever the
/// password contains — not in its environment check, not in what --live prints of
/// claude's output.
#[test]
fn doctor_never_prints_the_base_url_password() {
    let t = Test::new();
    // claude echoes its base URL back, as an error message might.
    write_executable(
        &t.path("bin/claude"),
        "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) echo \"API Error: cannot reach $ANTHROPIC_BASE_URL\" >&2; exit 1 ;; esac\n",
    );
    let secret = "Pw9x7Secret";
    for url in [
        format!("https://user:{secret}@api.example.com/v1"),
        format!("https://user:{secret}/x@api.example.com"),
        format!("https://user:ab/{secret}@api.example.com"),
        format!("https://user:{secret}?q@api.example.com"),
        format!("https://user:{secret}#f@api.example.com"),
        format!("https://user:{secret}@x@api.example.com"),
        format!("https://user:{secret}\\@api.example.com"),
        format!("user:{secret}/y@api.example.com"),
        format!("https://{secret}@api.example.com"),
        format!("HTTPS://user:{secret}@[::1]:8443/"),
        format!("https://user:{secret}%40@api.example.com"),
    ] {
        let d = doctor_live(&t).env("ANTHROPIC_BASE_URL", &url);
        let out = d.run();
        let all = format!("{}{}", out.stdout_text(), out.stderr_text());
        assert!(
            all.contains("ANTHROPIC_BASE_URL is set"),
            "[{url}] no note: {all}"
        );
        for piece in [secret, &secret[..6], &secret[5..]] {
            assert!(!all.contains(piece), "[{url}] {piece:?} shown:\n{all}");
        }
        assert!(!all.contains("user:"), "[{url}] userinfo shown:\n{all}");
    }
}

/// A stand-in claude for `doctor --live` that records `$HOME` and `$PWD` and answers.
fn recording_claude(t: &Test) -> PathBuf {
    let record = t.path("live-record");
    write_executable(
        &t.path("bin/claude"),
        &format!(
            "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) printf '%s\\n%s\\n%s\\n' \"$HOME\" \"$PWD\" \"$(pwd -P)\" > '{}'; echo AUTH_OK ;; esac\n",
            record.display()
        ),
    );
    record
}

fn doctor_live(t: &Test) -> Test {
    Test::new()
        .no_env_file()
        .no_home()
        .args(["doctor", "--live", "--env-file"])
        .arg(t.env_file())
        .arg("--home")
        .arg(t.home())
        .env("HOME", t.real_home())
        .env("PATH", format!("{}:/usr/bin:/bin", t.path("bin").display()))
}

/// `TMPDIR` inside (or a symlink to) the real `~/.claude` or `CLAUDE_CONFIG_DIR`: the
/// throwaway home of --live goes elsewhere, and the config dir is unchanged.
#[test]
fn doctor_live_never_makes_its_home_in_a_real_config_dir() {
    let t = Test::new();
    let record = recording_claude(&t);
    let real_claude = mkdir(&t.real_home().join(".claude"));
    let inside = mkdir(&real_claude.join("tmp"));
    symlink(&real_claude, t.path("tmp-link")).unwrap();
    let config = mkdir(&t.path("config-dir"));
    let config_tmp = mkdir(&config.join("tmp"));
    for (name, tmpdir, extra) in [
        ("TMPDIR in ~/.claude", inside.clone(), None),
        ("TMPDIR a symlink to ~/.claude", t.path("tmp-link"), None),
        (
            "TMPDIR in CLAUDE_CONFIG_DIR",
            config_tmp.clone(),
            Some(config.clone()),
        ),
    ] {
        // The record exists before the run: with CLAUDE_CONFIG_DIR in the sandbox, the
        // sandbox is a view under the mask, in which no new entry can be made.
        write_mode(&record, "", 0o644);
        let before = (tree(&real_claude), tree(&config));
        let mut d = doctor_live(&t).env("TMPDIR", &tmpdir);
        if let Some(c) = &extra {
            d = d.env("CLAUDE_CONFIG_DIR", c);
        }
        let out = d.run();
        out.stdout_contains("claude answered AUTH_OK");
        let rec = fs::read_to_string(&record).unwrap();
        let home = PathBuf::from(rec.lines().next().unwrap());
        for dir in [&real_claude, &config] {
            assert!(
                !home.starts_with(dir),
                "[{name}] the throwaway home {} is in {}",
                home.display(),
                dir.display()
            );
        }
        assert!(
            (tree(&real_claude), tree(&config)) == before,
            "[{name}] a config dir changed"
        );
        fs::remove_file(&record).unwrap();
    }
}

/// `doctor --live -C DIR` runs claude in DIR with `PWD` = DIR's realpath (the caller's
/// stale `PWD` is not passed on).
#[test]
fn doctor_live_with_cwd_gives_the_command_pwd() {
    let t = Test::new();
    let record = recording_claude(&t);
    let dir = mkdir(&t.path("project"));
    symlink(&dir, t.path("project-link")).unwrap();
    for given in [dir.clone(), t.path("project-link")] {
        let d = doctor_live(&t)
            .env("PWD", "/stale/pwd")
            .arg("-C")
            .arg(&given);
        let out = d.run();
        out.stdout_contains("claude answered AUTH_OK");
        let rec = fs::read_to_string(&record).unwrap();
        let lines: Vec<&str> = rec.lines().collect();
        assert_eq!(
            &lines[1..],
            &[dir.to_str().unwrap(), dir.to_str().unwrap()],
            "-C {}: PWD / pwd -P",
            given.display()
        );
    }
}

/// `.claude` in the home a symlink to (or a bind mount of) the real `~/.claude`: doctor
/// reports the launcher's refusal, and neither "will move it aside" nor "will seed".
#[test]
fn doctor_reports_the_refusal_of_a_home_holding_the_real_config_dir() {
    for bind in [false, true] {
        let t = Test::new().no_env_file().no_home();
        let real_claude = mkdir(&t.real_home().join(".claude"));
        write_mode(&real_claude.join(".credentials.json"), "{}", 0o600);
        let home = mkdir_mode(&t.home(), 0o700);
        let env_file = t.env_file();
        let t = if bind {
            let claude = mkdir(&home.join(".claude"));
            bind_wrap(t, &real_claude, &claude)
        } else {
            symlink(&real_claude, home.join(".claude")).unwrap();
            t
        };
        let t = t
            .args(["doctor", "--env-file"])
            .arg(&env_file)
            .arg("--home")
            .arg(&home);
        let out = t.run();
        out.status(1);
        let text = out.stdout_text();
        let home_line = text
            .lines()
            .find(|l| l.starts_with("fail  home"))
            .unwrap_or_else(|| {
                panic!("[bind: {bind}] doctor does not report the refusal:\n{text}")
            });
        assert!(home_line.contains(".claude"), "{home_line}");
        for wrong in [
            "will move",
            "will seed",
            "will create",
            "would move",
            "would seed",
            "would create",
        ] {
            assert!(
                !text.contains(wrong),
                "[bind: {bind}] doctor says {wrong:?}:\n{text}"
            );
        }
        // And the launcher refuses it the same way.
        // (The same caller: its HOME holds the real ~/.claude.)
        let launch = Test::new()
            .no_env_file()
            .no_home()
            .env("HOME", real_claude.parent().unwrap());
        let launch = if bind {
            bind_wrap(launch, &real_claude, &home.join(".claude"))
        } else {
            launch
        };
        launch
            .arg("--env-file")
            .arg(&env_file)
            .arg("--home")
            .arg(&home)
            .run()
            .status(125)
            .probe_not_run();
        assert!(real_claude.join(".credentials.json").exists());
    }
}

/// `doctor --live` against a claude that gets a 401: the `live` line says what to do
/// ("run `claude setup-token`, then `claude-iso token set`"), and the report ends with
/// its summary line (issue 24).
#[test]
fn doctor_live_failure_names_the_way_out_and_the_report_ends_with_a_summary() {
    let t = Test::new();
    write_executable(
        &t.path("bin/claude"),
        "#!/bin/sh\ncase \"$1\" in --version) echo '9.9.9 (Claude Code)' ;; *) echo 'API Error: 401 {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\"}}'; exit 1 ;; esac\n",
    );
    let doctor = doctor_live(&t).timeout(Duration::from_secs(60));
    let out = doctor.run();
    out.status(1);
    let text = out.stdout_text();
    let live = text
        .lines()
        .find(|l| l.starts_with("fail  live"))
        .unwrap_or_else(|| panic!("no failed live line:\n{text}"));
    assert!(
        live.contains("API Error: 401")
            && live.contains("run `claude setup-token`, then `claude-iso token set`"),
        "{live}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("summary: ") && last.contains(" fail: fix the `fail` lines"),
        "{text}"
    );
}
