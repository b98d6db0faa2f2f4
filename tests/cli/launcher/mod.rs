//! The core launcher (issue 2), end to end: the built binary, a cleared environment, a
//! sandbox per test, and a probe command that records exactly what it received.

mod inputs;

use crate::support::sandbox::{
    BIN, TOKEN, TOKEN_B, TOKEN_C, TOKEN_D, TOKEN_E, Test, chmod, claude_json, is_root, mkdir,
    mode_of, names_with_prefix, redacted, status_of, temp_files, tree, trusts, write_executable,
    write_mode,
};

use crate::support::sandbox::{
    API_KEY, HeldClaudeLock, NOBODY, REFRESH, TOKEN_LINE, as_runner, mkdir_mode, own,
    wait_for_flock,
};
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

// ---------------------------------------------------------------------------------------
// Token sources and their order
// ---------------------------------------------------------------------------------------

#[test]
fn env_file_flag_gives_the_child_exactly_the_token() {
    let t = Test::new();
    let out = t.run();
    out.success().stderr("").stdout("").no_secrets();
    out.probe().assert_token(TOKEN);
}

#[test]
fn claude_iso_env_file_variable_names_the_env_file() {
    let t = Test::new().no_env_file();
    write_mode(
        &t.path("other.env"),
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_B}\n"),
        0o600,
    );
    let other = t.path("other.env");
    let t = t.env("CLAUDE_ISO_ENV_FILE", other);
    let out = t.run();
    out.success().no_secrets();
    out.probe().assert_token(TOKEN_B);
}

#[test]
fn env_file_flag_beats_the_variable() {
    let t = Test::new();
    let missing = t.path("missing.env");
    let t = t.env("CLAUDE_ISO_ENV_FILE", missing);
    t.run().success().probe().assert_token(TOKEN);
}

#[test]
fn an_explicit_env_file_that_is_missing_does_not_fall_back() {
    let t = Test::new()
        .no_env_file()
        .env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN_B);
    let missing = t.path("missing.env");
    let t = t.arg("--env-file").arg(missing);
    t.run()
        .status(125)
        .one_line_error("missing.env: cannot open: No such file or directory")
        .probe_not_run();
    assert!(
        !t.home().exists(),
        "nothing is created before the token is known"
    );
}

/// Every source holds a different token; removing them one by one shows the order:
/// `--env-file`, `$CREDENTIALS_DIRECTORY/claude-oauth-token` (a bare token),
/// `$CLAUDE_CODE_OAUTH_TOKEN`, `$XDG_CONFIG_HOME/claude-iso/token.env`,
/// `~/.config/claude-auth-sync/claude-oauth.env`; then none: 125 naming every place.
#[test]
fn token_sources_are_tried_in_order() {
    let t = Test::new();
    let creds = mkdir(&t.path("creds"));
    let creds_file = creds.join("claude-oauth-token");
    write_mode(&creds_file, format!("{TOKEN_B}\n"), 0o400);
    let xdg = mkdir(&t.path("xdg"));
    let xdg_file = mkdir(&xdg.join("claude-iso")).join("token.env");
    write_mode(
        &xdg_file,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_D}\n"),
        0o600,
    );
    let sync_file = mkdir(&t.real_home().join(".config/claude-auth-sync")).join("claude-oauth.env");
    write_mode(
        &sync_file,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_E}\n"),
        0o600,
    );
    let t = t
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN_C)
        .env("XDG_CONFIG_HOME", &xdg)
        .arg("-v")
        .secret(TOKEN_B)
        .secret(TOKEN_C)
        .secret(TOKEN_D)
        .secret(TOKEN_E);

    let step = |t: &Test, token: &str, source: String| {
        t.reset_probe();
        let out = t.run();
        out.success()
            .stderr_contains(&format!("token {} from {source}\n", redacted(token)))
            .no_secrets();
        out.probe().assert_token(token);
    };

    step(&t, TOKEN, t.env_file().display().to_string());
    let t = t.no_env_file();
    step(
        &t,
        TOKEN_B,
        format!("credentials-directory ({})", creds_file.display()),
    );
    let t = t.env_remove("CREDENTIALS_DIRECTORY");
    step(
        &t,
        TOKEN_C,
        "environment (CLAUDE_CODE_OAUTH_TOKEN)".to_owned(),
    );
    let t = t.env_remove("CLAUDE_CODE_OAUTH_TOKEN");
    step(&t, TOKEN_D, xdg_file.display().to_string());
    let t = t.env_remove("XDG_CONFIG_HOME");
    step(&t, TOKEN_E, sync_file.display().to_string());

    fs::remove_file(&sync_file).unwrap();
    t.reset_probe();
    t.run()
        .status(125)
        .one_line_error("no token found; looked in ")
        .stderr_contains("$CLAUDE_CODE_OAUTH_TOKEN")
        .stderr_contains(
            &t.real_home()
                .join(".config/claude-iso/token.env")
                .display()
                .to_string(),
        )
        .stderr_contains(&sync_file.display().to_string())
        .probe_not_run();
}

#[test]
fn no_token_anywhere_names_every_place_looked() {
    let t = Test::new().no_env_file();
    let creds = mkdir(&t.path("creds"));
    let xdg = mkdir(&t.path("xdg"));
    let t = t
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("XDG_CONFIG_HOME", &xdg)
        .env("CLAUDE_CODE_OAUTH_TOKEN", "");
    t.run()
        .status(125)
        .stderr(&format!(
            "claude-iso: no token found; looked in credentials-directory ({}), \
             $CLAUDE_CODE_OAUTH_TOKEN, {}, {}; run: claude-iso token set (it stores the \
             token `claude setup-token` prints)\n",
            creds.join("claude-oauth-token").display(),
            xdg.join("claude-iso/token.env").display(),
            t.real_home()
                .join(".config/claude-auth-sync/claude-oauth.env")
                .display(),
        ))
        .stdout("")
        .probe_not_run();
    assert!(!t.home().exists());
}

#[test]
fn credentials_directory_holds_a_bare_token() {
    for (name, text) in [
        ("newline", format!("{TOKEN}\n")),
        ("no newline", TOKEN.to_owned()),
        ("crlf", format!("{TOKEN}\r\n")),
        (
            "env-file form",
            format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"),
        ),
    ] {
        let t = Test::new().no_env_file();
        let creds = mkdir(&t.path("creds"));
        // systemd makes the file 0400/0440 (with an ACL) in a 0500 directory; a mode
        // like that is not held against a file there.
        write_mode(&creds.join("claude-oauth-token"), &text, 0o444);
        chmod(&creds, 0o500);
        let t = t.env("CREDENTIALS_DIRECTORY", &creds);
        let out = t.run();
        out.success().no_secrets();
        assert!(
            out.probe().fd_token.is_some(),
            "{name}: claude gets the token on a pipe"
        );
        out.probe().assert_token(TOKEN);
    }
}

#[test]
fn environment_token_is_used_when_no_file_is_given() {
    let t = Test::new()
        .no_env_file()
        .env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN_B)
        .arg("--verbose")
        .secret(TOKEN_B);
    let out = t.run();
    out.success()
        .stderr_contains("from environment (CLAUDE_CODE_OAUTH_TOKEN)")
        .no_secrets();
    out.probe().assert_token(TOKEN_B);
}

#[test]
fn xdg_config_home_defaults_to_real_home_config() {
    let t = Test::new().no_env_file();
    let file = mkdir(&t.real_home().join(".config/claude-iso")).join("token.env");
    write_mode(&file, format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN_D}\n"), 0o600);
    let t = t.secret(TOKEN_D);
    t.run().success().no_secrets().probe().assert_token(TOKEN_D);
}

// ---------------------------------------------------------------------------------------
// The scratch home
// ---------------------------------------------------------------------------------------

#[test]
fn home_and_its_parents_are_created_0700_whatever_the_umask() {
    for mask in [0o000, 0o002, 0o022, 0o077] {
        let t = Test::new().umask(mask).no_home();
        let home = t.path("state/deeper/home");
        let t = t.arg("--home").arg(&home);
        let out = t.run();
        out.success().stderr("");
        assert_eq!(mode_of(&home), 0o700, "home, umask {mask:03o}");
        assert_eq!(mode_of(&t.path("state")), 0o700, "parent, umask {mask:03o}");
        assert_eq!(
            mode_of(&t.path("state/deeper")),
            0o700,
            "parent, umask {mask:03o}"
        );
        assert_eq!(
            mode_of(&home.join(".claude.json")),
            0o600,
            "umask {mask:03o}"
        );
        assert_eq!(
            mode_of(&home.join(".claude-iso.lock")),
            0o600,
            "umask {mask:03o}"
        );
        assert_eq!(out.probe().var("HOME"), Some(home.into()));
    }
}

#[test]
fn default_home_is_under_xdg_state_home() {
    let t = Test::new().no_home();
    let state = mkdir(&t.path("state"));
    let t = t.env("XDG_STATE_HOME", &state);
    let out = t.run();
    out.success();
    let home = state.join("claude-iso/home");
    assert_eq!(out.probe().var("HOME"), Some(home.clone().into()));
    assert_eq!(mode_of(&home), 0o700);
    assert!(trusts(&claude_json(&home), &t.work()));
}

#[test]
fn default_home_is_under_home_local_state() {
    let t = Test::new().no_home();
    let out = t.run();
    out.success();
    let home = t.real_home().join(".local/state/claude-iso/home");
    assert_eq!(out.probe().var("HOME"), Some(home.clone().into()));
    assert_eq!(mode_of(&home), 0o700);
}

#[test]
fn claude_iso_home_variable_names_the_home() {
    let t = Test::new().no_home();
    let home = t.path("elsewhere");
    let t = t.env("CLAUDE_ISO_HOME", &home);
    let out = t.run();
    out.success();
    assert_eq!(out.probe().var("HOME"), Some(home.clone().into()));
    assert_eq!(mode_of(&home), 0o700);
}

// ---------------------------------------------------------------------------------------
// Quarantine of a credentials file
// ---------------------------------------------------------------------------------------

const DECOY_ACCESS: &str = "sk-ant-oat01-Dc7Yx2Wq9_Lk4Mz8Pn3Rv6Ts1Uo5-Ae0Ib";
const DECOY_REFRESH: &str = "sk-ant-ort01-Rf3Gh8Jk1_Qw6Er2Ty9Ui4Op7As-Df5Zx";

fn credentials_json() -> String {
    format!(
        r#"{{"claudeAiOauth":{{"accessToken":"{DECOY_ACCESS}","refreshToken":"{DECOY_REFRESH}","expiresAt":4102444800000}}}}"#
    )
}

/// The one `.credentials.json.quarantined-<time>-<n>` name in `dir`.
#[track_caller]
fn quarantined(dir: &Path) -> Vec<String> {
    let names = names_with_prefix(dir, ".credentials.json.quarantined-");
    for name in &names {
        let rest = &name[".credentials.json.quarantined-".len()..];
        let parts: Vec<&str> = rest.split('-').collect();
        assert!(
            parts.len() == 2 && parts.iter().all(|p| p.parse::<u64>().is_ok()),
            "unexpected quarantine name {name}"
        );
    }
    names
}

#[test]
fn a_credentials_file_is_quarantined_and_kept() {
    let t = Test::new().secret(DECOY_ACCESS).secret(DECOY_REFRESH);
    let claude_dir = mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o700);
    write_mode(
        &claude_dir.join(".credentials.json"),
        credentials_json(),
        0o644,
    );
    let out = t.run();
    out.success()
        .stderr_contains("claude-iso: warning: moved ")
        .stderr_contains(".credentials.json")
        .no_secrets();
    assert!(!claude_dir.join(".credentials.json").exists());
    let names = quarantined(&claude_dir);
    assert_eq!(names.len(), 1, "{names:?}");
    let kept = claude_dir.join(&names[0]);
    assert_eq!(fs::read_to_string(&kept).unwrap(), credentials_json());
    assert_eq!(mode_of(&kept), 0o600, "a displaced file is made 0600");
    assert!(
        out.stderr_text().contains(&names[0]),
        "the warning names the new file"
    );
    assert_eq!(out.stderr_text().lines().count(), 1);

    // A second stray file gets its own name; the first is still kept.
    write_mode(&claude_dir.join(".credentials.json"), "{}", 0o600);
    t.reset_probe();
    t.run().success();
    let names = quarantined(&claude_dir);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!claude_dir.join(".credentials.json").exists());
}

#[test]
fn a_credentials_symlink_is_quarantined_and_its_target_untouched() {
    let t = Test::new().secret(DECOY_ACCESS).secret(DECOY_REFRESH);
    let claude_dir = mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o700);
    let shared = mkdir(&t.path("real-claude"));
    let target = shared.join(".credentials.json");
    write_mode(&target, credentials_json(), 0o644);
    symlink(&target, claude_dir.join(".credentials.json")).unwrap();
    let before = tree(&shared);

    let out = t.run();
    out.success()
        .stderr_contains("claude-iso: warning: moved ")
        .no_secrets();
    assert!(fs::symlink_metadata(claude_dir.join(".credentials.json")).is_err());
    let names = quarantined(&claude_dir);
    assert_eq!(names.len(), 1, "{names:?}");
    let kept = claude_dir.join(&names[0]);
    assert!(
        fs::symlink_metadata(&kept)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_link(&kept).unwrap(), target);
    assert_eq!(
        tree(&shared),
        before,
        "the symlink's target must not change at all"
    );
}

// ---------------------------------------------------------------------------------------
// Seeding .claude.json
// ---------------------------------------------------------------------------------------

#[test]
fn seeds_onboarding_and_trust_for_the_working_directory() {
    let t = Test::new();
    t.run().success();
    let work = t.work().to_str().unwrap().to_owned();
    assert_eq!(
        claude_json(&t.home()),
        json!({"hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true, "projects": {work: {"hasTrustDialogAccepted": true}}})
    );
    assert_eq!(mode_of(&t.home().join(".claude.json")), 0o600);
    assert_eq!(temp_files(&t.home()), Vec::<String>::new());
}

#[test]
fn a_working_directory_reached_through_a_symlink_is_trusted_by_its_realpath() {
    let t = Test::new();
    let link = t.path("link-to-work");
    symlink(t.work(), &link).unwrap();
    let t = t.cwd(&link);
    let out = t.run();
    out.success();
    assert_eq!(out.probe().cwd, t.work());
    let doc = claude_json(&t.home());
    assert!(trusts(&doc, &t.work()), "{doc}");
    assert_eq!(doc["projects"].as_object().unwrap().len(), 1, "{doc}");
}

#[test]
fn dash_c_changes_directory_sets_pwd_and_is_what_gets_trusted() {
    let t = Test::new().env("PWD", "/stale/caller/pwd");
    let project = mkdir(&t.path("project"));
    let link = t.path("project-link");
    symlink(&project, &link).unwrap();
    let t = t.arg("-C").arg(&link);
    let out = t.run();
    out.success();
    let probe = out.probe();
    assert_eq!(probe.cwd, project);
    assert_eq!(probe.var("PWD"), Some(project.clone().into()));
    let doc = claude_json(&t.home());
    assert!(trusts(&doc, &project), "{doc}");
    assert_eq!(
        doc["projects"].as_object().unwrap().len(),
        1,
        "only -C DIR: {doc}"
    );
}

#[test]
fn every_trust_dir_is_realpathed_and_trusted() {
    let t = Test::new();
    let a = mkdir(&t.path("a"));
    let b = mkdir(&t.path("b"));
    symlink(&b, t.path("b-link")).unwrap();
    let (b_link, b_dot) = (t.path("b-link"), t.path("b/./"));
    let t = t
        .args(["--trust", "../a"]) // relative to the starting directory
        .arg("--trust")
        .arg(b_link)
        .arg("--trust")
        .arg(b_dot);
    t.run().success();
    let doc = claude_json(&t.home());
    for dir in [t.work(), a, b] {
        assert!(trusts(&doc, &dir), "{} in {doc}", dir.display());
    }
    assert_eq!(doc["projects"].as_object().unwrap().len(), 3, "{doc}");
}

#[test]
fn every_existing_key_and_value_is_preserved() {
    let t = Test::new();
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let work = t.work().to_str().unwrap().to_owned();
    let original = json!({
        "numStartups": 12,
        "firstStartTime": "2025-01-01T00:00:00.000Z",
        "userID": "abc123",
        "tipsHistory": {"tip-a": 3, "tip-b": 7},
        "customApiKeyResponses": {"approved": ["x"], "rejected": []},
        "hasCompletedOnboarding": false,
        "mcpServers": {"s": {"command": "srv", "args": ["--x", ""]}},
        "nested": {"deep": [1, {"deeper": null}, 2.5, "s"]},
        "projects": {
            "/somewhere/else": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": false},
            work.clone(): {"lastGracefulShutdown": true, "history": [{"display": "hi"}], "hasTrustDialogAccepted": false},
        },
        "unicode": "héllo ☃",
    });
    fs::write(
        t.home().join(".claude.json"),
        serde_json::to_vec_pretty(&original).unwrap(),
    )
    .unwrap();
    t.run().success();
    let mut expected = original.clone();
    expected["hasCompletedOnboarding"] = json!(true);
    expected["fullscreenUpsellSeenCount"] = json!(3);
    expected["hasSeenAutoDefaultNudge"] = json!(true);
    expected["projects"][&work]["hasTrustDialogAccepted"] = json!(true);
    assert_eq!(claude_json(&t.home()), expected);
    assert_eq!(temp_files(&t.home()), Vec::<String>::new());
}

/// Issue 27: a home claude has used for a while, with the fullscreen question's counter
/// below claude's limit, gets it raised to the limit and nothing else changed; a counter
/// already past the limit is never lowered (nor the file written for it).
#[test]
fn dialog_counters_are_raised_to_the_limit_and_never_lowered() {
    for (count, want) in [(json!(1), json!(3)), (json!(7), json!(7))] {
        let t = Test::new();
        mkdir(&t.home());
        chmod(&t.home(), 0o700);
        let work = t.work().to_str().unwrap().to_owned();
        let original = json!({
            "numStartups": 412,
            "firstStartTime": "2026-01-01T00:00:00.000Z",
            "lastReleaseNotesSeen": "2.1.197",
            "tipsHistory": {"tip-a": 300},
            "hasCompletedOnboarding": true,
            "fullscreenUpsellSeenCount": count,
            "hasSeenAutoDefaultNudge": true,
            "passesUpsellSeenCount": 1,
            "projects": {work.clone(): {"hasTrustDialogAccepted": true, "lastSessionId": "s"}},
        });
        let text = serde_json::to_string_pretty(&original).unwrap();
        write_mode(&t.home().join(".claude.json"), &text, 0o600);
        let ino = fs::metadata(t.home().join(".claude.json")).unwrap().ino();
        t.run().success();
        let mut expected = original.clone();
        expected["fullscreenUpsellSeenCount"] = want.clone();
        assert_eq!(claude_json(&t.home()), expected, "count {count}");
        let written = fs::metadata(t.home().join(".claude.json")).unwrap().ino() != ino;
        assert_eq!(written, count != want, "count {count}: written {written}");
        if !written {
            assert_eq!(
                fs::read_to_string(t.home().join(".claude.json")).unwrap(),
                text
            );
        }
    }
}

#[test]
fn nothing_to_seed_means_no_write_at_all() {
    // Pre-seeded by hand.
    let t = Test::new();
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let work = t.work().to_str().unwrap().to_owned();
    write_mode(
        &t.home().join(".claude.json"),
        json!({"other": 1, "hasCompletedOnboarding": true, "fullscreenUpsellSeenCount": 3, "hasSeenAutoDefaultNudge": true, "projects": {work: {"hasTrustDialogAccepted": true}}})
            .to_string(),
        0o600,
    );
    let mut before = tree(&t.home());
    let ino = fs::metadata(t.home().join(".claude.json")).unwrap().ino();
    t.run().success();
    // The one change: the home is marked as a scratch home (our lock file, empty, 0600)
    // when it is first prepared, so a nested claude-iso recognises it.
    let after = tree(&t.home());
    let lock = after
        .iter()
        .find(|(name, _)| name.ends_with(".claude-iso.lock"))
        .expect("the home is marked");
    before.insert(lock.0.clone(), lock.1.clone());
    // ... which changes the directory's own time stamps, and nothing else.
    let dir = after.get(Path::new("")).expect("the home itself");
    before.insert(PathBuf::new(), dir.clone());
    assert_eq!(
        after, before,
        "home changed although nothing needed seeding"
    );
    assert_eq!(mode_of(&t.home().join(".claude-iso.lock")), 0o600);
    assert_eq!(
        fs::metadata(t.home().join(".claude.json")).unwrap().ino(),
        ino
    );

    // Seeded by a first launch: a second one does not rewrite it either.
    let t = Test::new();
    t.run().success();
    let before = tree(&t.home());
    t.reset_probe();
    t.run().success();
    assert_eq!(
        tree(&t.home()),
        before,
        "the second launch rewrote the home"
    );
    assert_eq!(temp_files(&t.home()), Vec::<String>::new());
}

#[test]
fn a_folder_name_that_needs_json_escaping_is_trusted_once() {
    let t = Test::new();
    let odd = mkdir(&t.path("we\"ird\\name\twith ☃ and \u{1}"));
    let t = t.arg("-C").arg(&odd);
    t.run().success();
    let doc = claude_json(&t.home());
    assert!(trusts(&doc, &odd), "{doc}");
    let before = tree(&t.home());
    t.reset_probe();
    t.run().success();
    assert_eq!(tree(&t.home()), before, "already seeded, yet rewritten");
}

/// Valid JSON is never mistaken for a corrupt file, however deeply a value the
/// launcher does not own is nested (JSON.parse, which claude uses, has no such limit
/// at this depth).
#[test]
fn deeply_nested_values_are_preserved() {
    let t = Test::new();
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let depth = 300;
    let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let original = format!("{{\"deep\": {deep}, \"keep\": 1}}");
    write_mode(&t.home().join(".claude.json"), &original, 0o600);
    let out = t.run();
    out.success().stderr("");
    assert_eq!(
        names_with_prefix(&t.home(), ".claude.json.corrupt-"),
        Vec::<String>::new(),
        "valid JSON was put aside as corrupt"
    );
    let bytes = fs::read(t.home().join(".claude.json")).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(&format!("\"deep\":{deep}")), "{compact}");
    assert!(compact.contains("\"keep\":1"), "{compact}");
    assert!(
        compact.contains("\"hasCompletedOnboarding\":true"),
        "{compact}"
    );
}

#[test]
fn an_unusable_claude_json_is_kept_aside_and_a_fresh_one_seeded() {
    for (name, bytes) in [
        ("truncated", &b"{\"numStartups\": 3, \"proj"[..]),
        ("not json", b"hello\n"),
        ("empty", b""),
        ("array", b"[1, 2, 3]\n"),
        ("string", b"\"x\"\n"),
    ] {
        let t = Test::new();
        mkdir(&t.home());
        chmod(&t.home(), 0o700);
        write_mode(&t.home().join(".claude.json"), bytes, 0o644);
        let out = t.run();
        out.success()
            .stderr_contains("claude-iso: warning: ")
            .stderr_contains("was not a JSON object");
        let doc = claude_json(&t.home());
        assert_eq!(doc["hasCompletedOnboarding"], json!(true), "{name}");
        assert!(trusts(&doc, &t.work()), "{name}");
        let kept = names_with_prefix(&t.home(), ".claude.json.corrupt-");
        assert_eq!(kept.len(), 1, "{name}: {kept:?}");
        assert!(
            out.stderr_text().contains(&kept[0]),
            "{name}: warning names it"
        );
        let kept = t.home().join(&kept[0]);
        assert_eq!(
            fs::read(&kept).unwrap(),
            bytes,
            "{name}: kept byte for byte"
        );
        assert_eq!(
            mode_of(&kept),
            0o600,
            "{name}: a displaced file is made 0600"
        );
        assert_eq!(temp_files(&t.home()), Vec::<String>::new(), "{name}");
    }
}

#[test]
fn projects_of_the_wrong_type_are_replaced_and_the_original_kept() {
    let t = Test::new();
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let original = br#"{"keep": "me", "projects": 3}"#;
    write_mode(&t.home().join(".claude.json"), original, 0o600);
    let out = t.run();
    out.success().stderr_contains("claude-iso: warning: ");
    let doc = claude_json(&t.home());
    assert_eq!(doc["keep"], json!("me"));
    assert!(trusts(&doc, &t.work()));
    let kept = names_with_prefix(&t.home(), ".claude.json.replaced-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(t.home().join(&kept[0])).unwrap(), original);
}

// ---------------------------------------------------------------------------------------
// The child's environment
// ---------------------------------------------------------------------------------------

/// Every credential variable known by name (the library's one list: the releases' names
/// a rule removes, and the listed ones, `XDG_CONFIG_HOME` among them).
fn scrubbed_names() -> Vec<&'static str> {
    claude_iso::scrub::known_credentials().collect()
}

/// A distinct secret-looking value per variable (its 13-byte head is the "public" part
/// the secret check skips, so the rest must not contain the name).
fn secret_value(i: usize) -> String {
    format!("sk-ant-api03-Qv{i:02}zWx8Ly{i:02}Pt5Mn{i:02}")
}

#[test]
fn child_environment_is_the_callers_minus_credentials_plus_home_and_token() {
    let names = scrubbed_names();
    let mut t = Test::new()
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm-256color")
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
        .env("WITH_EQUALS", "a=b c=d")
        .env("EMPTY", "")
        .env("BYTES", OsString::from_vec(b"\xff\xfe raw".to_vec()))
        .env("PWD", "/caller/pwd")
        .env("CLAUDE_CODE_OAUTH_TOKEN", TOKEN_B)
        .env("CLAUDE_ISO", "")
        // The pipe (the harness's pin, made part of the caller's environment here, which
        // the command inherits like any of claude-iso's own variables).
        .env("CLAUDE_ISO_TOKEN_VIA", "fd")
        .secret(TOKEN_B);
    for (i, name) in names.iter().enumerate() {
        t = t.env(*name, secret_value(i)).secret(secret_value(i));
    }
    let out = t.run();
    out.success().no_secrets();

    let mut expected: std::collections::BTreeMap<OsString, OsString> = t
        .env_vars()
        .iter()
        .filter(|(k, _)| !names.iter().any(|n| k == n) && k != "CLAUDE_CODE_OAUTH_TOKEN")
        .cloned()
        .collect();
    expected.insert("HOME".into(), t.home().into());
    // The command is claude (the probe stands in): the token comes on a pipe.
    let fd = out
        .probe()
        .all("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR")
        .pop()
        .expect("the descriptor is named");
    expected.insert("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR".into(), fd);
    expected.insert("CLAUDE_ISO".into(), "1".into());
    // Issue 21 §6: `--scrub-tools` is off by default (bubblewrap or not): claude's
    // subprocess scrub is not turned on (it writes stubs into the working directory).
    assert_eq!(out.probe().env_map(), expected);
    out.probe().assert_token(TOKEN);
    assert!(expected.contains_key(&OsString::from("PATH")));

    // One warning line, naming every removed variable and none of their values.
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("claude-iso: warning: "), "{err}");
    for name in &names {
        assert!(err.contains(name), "the warning lacks {name}: {err}");
    }
}

#[test]
fn keep_env_lets_one_through_and_unset_drops_more() {
    let t = Test::new()
        .env("ANTHROPIC_API_KEY", secret_value(1))
        .env("ANTHROPIC_AUTH_TOKEN", secret_value(2))
        .env("FOO", "foo-value")
        .env("KEPT", "kept-value")
        .args([
            "--keep-env",
            "ANTHROPIC_API_KEY",
            "--unset",
            "FOO",
            "--unset",
            "NOT_SET",
        ])
        .secret(secret_value(2));
    let out = t.run();
    out.success().no_secrets();
    let probe = out.probe();
    assert_eq!(probe.var("ANTHROPIC_API_KEY"), Some(secret_value(1).into()));
    assert_eq!(probe.var("ANTHROPIC_AUTH_TOKEN"), None);
    assert_eq!(probe.var("FOO"), None);
    assert_eq!(probe.var("KEPT"), Some("kept-value".into()));
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("ANTHROPIC_AUTH_TOKEN"), "{err}");
    assert!(!err.contains("ANTHROPIC_API_KEY"), "kept on purpose: {err}");
    // Removed on request: acknowledged, not warned about (issue 24).
    assert!(!err.contains("FOO"), "unset on purpose: {err}");
    assert!(
        !err.contains("NOT_SET") && !err.contains("foo-value"),
        "{err}"
    );
}

#[test]
fn quiet_suppresses_the_warning_but_still_scrubs() {
    let t = Test::new()
        .env("ANTHROPIC_API_KEY", secret_value(1))
        .arg("--quiet");
    let out = t.run();
    out.success().stderr("");
    assert_eq!(out.probe().var("ANTHROPIC_API_KEY"), None);
}

// ---------------------------------------------------------------------------------------
// Exec
// ---------------------------------------------------------------------------------------

#[test]
fn the_command_replaces_claude_iso_same_pid() {
    let t = Test::new();
    let running = t.spawn();
    let pid = running.id();
    let out = running.wait();
    out.success();
    assert_eq!(out.probe().pid, pid);
}

#[test]
fn argv_is_passed_verbatim() {
    let args: Vec<OsString> = vec![
        "".into(),
        "--".into(),
        "-x".into(),
        "--env-file".into(),
        "/etc/passwd".into(),
        "-C".into(),
        "--home=/".into(),
        "a b\tc\nd".into(),
        "$HOME".into(),
        "*".into(),
        "'\"\\".into(),
        OsString::from_vec(b"\xff\xfe\x80 not utf-8".to_vec()),
        "".into(),
        "--".into(),
    ];
    let mut argv: Vec<OsString> = vec!["probe".into()];
    argv.extend(args.iter().cloned());
    let t = Test::new().command(argv);
    let out = t.run();
    out.success();
    let probe = out.probe();
    assert_eq!(probe.args(), args);
    // Resolved on PATH; the kernel shows the path it executed.
    assert_eq!(probe.cmdline[1], t.probe_path().into_os_string().into_vec());
}

#[test]
fn argv0_is_passed_as_typed() {
    let t = Test::new();
    let out_file = t.path("probe/argv0");
    let t = t.command([
        "sh".to_owned(),
        "-c".to_owned(),
        format!("/bin/cat /proc/$$/cmdline > '{}'", out_file.display()),
    ]);
    t.run().status(0);
    let cmdline = fs::read(&out_file).unwrap();
    assert!(cmdline.starts_with(b"sh\0-c\0"), "{cmdline:?}");
}

#[test]
fn default_command_is_claude_on_path() {
    let t = Test::new();
    let out = t.run();
    out.success();
    assert_eq!(
        out.probe().cmdline[1],
        t.path("bin/claude").into_os_string().into_vec()
    );
}

#[test]
fn command_is_resolved_on_the_callers_path_before_changing_directory() {
    // A relative PATH entry means the directory claude-iso started in, not -C DIR.
    let t = Test::new().env("PATH", "bin:/usr/bin:/bin");
    let (root, work) = (t.root().to_owned(), t.work());
    let t = t.cwd(root).arg("-C").arg(work).command(["probe"]);
    let out = t.run();
    out.success();
    assert_eq!(out.probe().cwd, t.work());
    assert_eq!(
        out.probe().cmdline[1],
        t.probe_path().into_os_string().into_vec()
    );
}

#[test]
fn exit_status_is_the_commands() {
    let t = Test::new().command(["sh", "-c", "exit 42"]);
    t.run().status(42).stderr("");
}

#[test]
fn death_by_sigterm_is_the_callers() {
    let t = Test::new().command(["sh", "-c", "kill -TERM $$"]);
    let out = t.run();
    out.signal(15);
    assert_eq!(out.status.code(), None);

    // As a shell sees it: 143.
    let t = Test::new()
        .command(["sh", "-c", "kill -TERM $$"])
        .wrap("\"$0\" \"$@\"; echo $?");
    t.run().status(0).stdout("143\n");
}

#[test]
fn command_not_found_is_127() {
    let t = Test::new().command(["no-such-command-xyz", "arg"]);
    t.run()
        .status(127)
        .stderr("claude-iso: no-such-command-xyz: command not found on PATH\n")
        .stdout("");
    let t = Test::new();
    let nope = t.path("bin/nope");
    let t = t.command([nope]);
    t.run()
        .status(127)
        .one_line_error("command not found")
        .probe_not_run();
}

#[test]
fn command_not_executable_is_126() {
    // On PATH.
    let t = Test::new();
    write_mode(&t.path("bin/plain"), "#!/bin/sh\necho ran\n", 0o644);
    let t = t.command(["plain"]);
    t.run()
        .status(126)
        .one_line_error("plain: ")
        .stderr_contains("not executable");
    // By path.
    let t = Test::new();
    let plain = t.path("bin/plain");
    write_mode(&plain, "#!/bin/sh\necho ran\n", 0o644);
    let t = t.command([plain]);
    t.run().status(126).one_line_error("plain: ");
    // A directory.
    let t = Test::new();
    let bin = t.path("bin");
    let t = t.command([bin]);
    t.run().status(126).one_line_error("is a directory");
}

#[test]
fn usage_errors_are_one_line_and_125() {
    let t = Test::new().arg("--no-such-option");
    t.run()
        .status(125)
        .one_line_error("--no-such-option")
        .probe_not_run();
}

#[test]
fn no_descriptor_leaks_into_the_command() {
    // Seeding (both locks) and a quarantine happen in this launch.
    let t = Test::new();
    mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o700);
    write_mode(&t.home().join(".claude/.credentials.json"), "{}", 0o600);
    let out = t.run();
    out.success();
    let mut through = out.probe().fds;
    assert!(through.starts_with(&[0, 1, 2]), "{through:?}");
    // The one descriptor claude-iso adds on purpose: the token pipe (the command is
    // claude), named by CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR and already read empty.
    let token_fd: u32 = out
        .probe()
        .all("CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR")
        .pop()
        .expect("token on a pipe")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    out.probe().assert_token(TOKEN);
    through.retain(|fd| *fd != token_fd);
    t.reset_probe();
    let direct = t.run_probe_directly().fds;
    assert_eq!(
        through, direct,
        "descriptors of the probe under claude-iso (but the token pipe) vs run directly"
    );
    // With the token in the environment, nothing at all is added.
    let t = t.arg("--token-via").arg("env");
    t.reset_probe();
    let out = t.run();
    out.success();
    assert_eq!(
        out.probe().fds,
        direct,
        "--token-via env adds no descriptor"
    );

    // Control: a descriptor that does reach the command shows up in the probe's list.
    let t = t.wrap("exec 7</dev/null && exec \"$0\" \"$@\"");
    t.reset_probe();
    let out = t.run();
    out.success();
    let with_seven = out.probe().fds;
    assert!(
        with_seven.contains(&7) && !direct.contains(&7),
        "{with_seven:?}"
    );
}

// ---------------------------------------------------------------------------------------
// --dry-run
// ---------------------------------------------------------------------------------------

#[test]
fn dry_run_changes_nothing_prints_the_plan_and_never_the_token() {
    let t = Test::new()
        .env("ANTHROPIC_API_KEY", secret_value(7))
        .secret(secret_value(7))
        .arg("--dry-run");
    // A home that needs every kind of change: tighten, quarantine, seed.
    mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o750);
    write_mode(&t.home().join(".claude/.credentials.json"), "{}", 0o644);
    write_mode(&t.home().join(".claude.json"), "{\"a\": 1}", 0o600);
    let t = t.command(["probe".to_owned(), "x".to_owned(), TOKEN.to_owned()]);
    let before = tree(t.root());
    let out = t.run();
    out.status(0).probe_not_run().no_secrets();
    let mut after = tree(t.root());
    after.retain(|p, _| !p.starts_with(".runs"));
    let mut before = before;
    before.retain(|p, _| !p.starts_with(".runs"));
    assert_eq!(after, before, "--dry-run changed the sandbox");

    let home = t.home().display().to_string();
    for line in [
        format!("token: {} from {}", redacted(TOKEN), t.env_file().display()),
        format!("cwd: {}", t.work().display()),
        format!("command: {}", t.probe_path().display()),
        format!("env: set HOME={home}"),
        format!("env: set CLAUDE_CODE_OAUTH_TOKEN={}", redacted(TOKEN)),
        "env: unset ANTHROPIC_API_KEY".to_owned(),
        "dry run: nothing changed, nothing run".to_owned(),
    ] {
        out.stdout_contains(&format!("{line}\n"));
    }
    let plan = out.stdout_text();
    assert!(plan.contains("argv: probe x "), "{plan}");
    assert!(plan.contains("quarantine: would move"), "{plan}");
    assert!(plan.contains("would tighten mode 0750"), "{plan}");
    assert!(plan.contains("seed: would set"), "{plan}");
}

#[test]
fn dry_run_creates_no_home() {
    let t = Test::new().arg("-n").no_home();
    let home = t.path("new/home");
    let t = t.arg("--home").arg(home);
    let before = tree(t.root());
    let out = t.run();
    out.status(0).probe_not_run().no_secrets();
    out.stdout_contains("would be created");
    assert!(!t.path("new").exists());
    let mut after = tree(t.root());
    after.retain(|p, _| !p.starts_with(".runs"));
    let mut before = before;
    before.retain(|p, _| !p.starts_with(".runs"));
    assert_eq!(after, before);
}

// ---------------------------------------------------------------------------------------
// Concurrency and claude's lock
// ---------------------------------------------------------------------------------------

#[test]
fn sixty_four_concurrent_launches_into_one_home() {
    let t = Test::new()
        .command(["true"])
        .timeout(Duration::from_secs(60));
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    write_mode(
        &t.home().join(".claude.json"),
        json!({"unrelated": {"keep": [1, 2, 3]}, "numStartups": 7}).to_string(),
        0o600,
    );
    let dirs: Vec<PathBuf> = (0..64)
        .map(|i| mkdir(&t.path(format!("projects/p{i:02}"))))
        .collect();
    let running: Vec<_> = dirs
        .iter()
        .map(|d| t.spawn_with(["-C".into(), d.clone().into_os_string()]))
        .collect();
    for r in running {
        r.wait().status(0).stderr("");
    }
    let doc = claude_json(&t.home());
    for d in &dirs {
        assert!(trusts(&doc, d), "{} not trusted", d.display());
    }
    assert_eq!(doc["hasCompletedOnboarding"], json!(true));
    assert_eq!(doc["unrelated"], json!({"keep": [1, 2, 3]}));
    assert_eq!(doc["numStartups"], json!(7));
    assert_eq!(doc["projects"].as_object().unwrap().len(), 64);
    assert_eq!(temp_files(&t.home()), Vec::<String>::new());
    assert!(!t.home().join(".claude.json.lock").exists());
}

#[test]
fn a_live_claude_lock_makes_it_wait() {
    let t = Test::new().timeout(Duration::from_secs(15));
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let lock = mkdir(&t.home().join(".claude.json.lock"));
    let mut running = t.spawn();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !running.exited(),
        "claude-iso did not wait for claude's lock"
    );
    assert!(
        !t.home().join(".claude.json").exists(),
        "wrote under claude's lock"
    );
    fs::remove_dir(&lock).unwrap();
    let removed = Instant::now();
    let out = running.wait();
    out.success();
    assert!(
        removed.elapsed() < Duration::from_secs(3),
        "took {:?} after the lock went",
        removed.elapsed()
    );
    assert!(trusts(&claude_json(&t.home()), &t.work()));
    assert!(!lock.exists(), "its own lock is released");
}

#[test]
fn a_stale_claude_lock_is_broken() {
    let t = Test::new().timeout(Duration::from_secs(15));
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let lock = mkdir(&t.home().join(".claude.json.lock"));
    fs::File::open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    let started = Instant::now();
    let out = t.run();
    out.success().stderr_contains("stale");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(trusts(&claude_json(&t.home()), &t.work()));
    assert!(!lock.exists());
    assert_eq!(temp_files(&t.home()), Vec::<String>::new());
}

// ---- regressions found in review ------------------------------------------------------

#[test]
fn the_command_starts_with_sigpipe_at_its_default() {
    // Rust ignores SIGPIPE at start; an ignored signal survives execve. The command must
    // see what it would see run directly: `yes | head -1` kills `yes` with SIGPIPE.
    let t = Test::new().command(["sh", "-c", "grep '^SigIgn' /proc/self/status"]);
    let out = t.run();
    out.status(0);
    let ignored = out.stdout_text();
    let mask = u64::from_str_radix(ignored.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|e| panic!("unparsable {ignored:?}: {e}"));
    assert_eq!(
        mask & (1 << (13 - 1)),
        0,
        "SIGPIPE ignored in the command: {ignored}"
    );
}

#[test]
fn a_script_without_a_shebang_runs_under_sh_like_execvp() {
    let t = Test::new();
    crate::support::sandbox::write_executable(
        &t.path("bin/noshebang"),
        "echo \"hi $1\"; exit 42\n",
    );
    let t = t.command(["noshebang", "there"]);
    t.run().status(42).stdout("hi there\n");
}

#[test]
fn a_home_holding_the_callers_config_dir_as_its_dot_claude_is_refused() {
    let t = Test::new();
    let agent = mkdir(&t.path("agent"));
    chmod(&agent, 0o700);
    let config = mkdir(&agent.join(".claude"));
    let creds = config.join(".credentials.json");
    write_mode(&creds, "{\"claudeAiOauth\":{}}", 0o600);
    let t = t
        .no_home()
        .arg("--home")
        .arg(&agent)
        .env("CLAUDE_CONFIG_DIR", &config);
    t.run()
        .status(125)
        .one_line_error("a real claude config directory")
        .probe_not_run();
    assert!(
        creds.exists(),
        "the caller's live credentials file was moved"
    );
}

#[test]
fn an_ancestor_of_a_symlinked_homes_target_is_refused() {
    let t = Test::new();
    let target = mkdir(&t.path("real/u"));
    chmod(&t.path("real"), 0o700);
    std::os::unix::fs::symlink(&target, t.path("link")).unwrap();
    let link = t.path("link");
    let real = t.path("real");
    let t = t.no_home().arg("--home").arg(&real).env("HOME", &link);
    t.run()
        .status(125)
        .one_line_error("is an ancestor of your real home")
        .probe_not_run();
}

#[test]
fn a_newline_in_a_path_cannot_make_a_second_error_line() {
    let t = Test::new().no_env_file();
    let bad = t.path("no\nFAKE: spoofed");
    let t = t.arg("--env-file").arg(&bad);
    t.run()
        .status(125)
        .one_line_error("cannot open")
        .probe_not_run();
}

#[test]
fn a_lone_surrogate_written_by_javascript_is_kept_on_rewrite() {
    let t = Test::new();
    let home = mkdir(&t.home());
    chmod(&home, 0o700);
    let original =
        "{\n  \"userID\": \"abc\",\n  \"lastPrompt\": \"emoji \\ud83d\",\n  \"projects\": {}\n}\n";
    write_mode(&home.join(".claude.json"), original, 0o600);
    t.run().success();
    let text = std::fs::read_to_string(home.join(".claude.json")).unwrap();
    assert!(text.contains("\"emoji \\ud83d\""), "lost: {text}");
    assert!(text.contains("\"userID\": \"abc\""), "lost: {text}");
    assert!(
        text.contains("hasTrustDialogAccepted"),
        "not seeded: {text}"
    );
    let aside: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert!(aside.is_empty(), "a valid file was put aside as corrupt");
}

#[test]
fn a_home_under_a_world_writable_parent_is_refused_before_anything_is_created() {
    let t = Test::new();
    let open_dir = mkdir(&t.path("open"));
    chmod(&open_dir, 0o777);
    let home = open_dir.join("a/home");
    let t = t.no_home().arg("--home").arg(&home);
    t.run()
        .status(125)
        .one_line_error("writable by group or others (mode 0777, not sticky)")
        .probe_not_run();
    assert!(
        !open_dir.join("a").exists(),
        "created inside a refused parent"
    );
}

#[test]
fn a_refused_home_under_a_symlinked_real_home_creates_nothing() {
    let t = Test::new();
    let real = mkdir(&t.path("real"));
    std::os::unix::fs::symlink(&real, t.path("link")).unwrap();
    let home = t.path("link/.claude/iso");
    let link = t.path("link");
    let t = t.no_home().arg("--home").arg(&home).env("HOME", &link);
    t.run()
        .status(125)
        .one_line_error("a real claude config directory")
        .probe_not_run();
    assert!(!real.join(".claude").exists(), "created in the real home");
}

#[test]
fn a_new_home_at_or_above_a_real_home_not_made_yet_is_refused() {
    // `$HOME` names a directory that does not exist yet, as it is or through a dangling
    // symlink: a home about to be created there, or above it, is still the real home or
    // an ancestor of it, and nothing is made.
    for through_link in [false, true] {
        for (above, error) in [
            (false, "is your real home"),
            (true, "is an ancestor of your real home"),
        ] {
            let t = Test::new();
            let real = t.path("gone/home");
            let home_var = if through_link {
                let link = t.path("hlink");
                std::os::unix::fs::symlink(&real, &link).unwrap();
                link
            } else {
                real.clone()
            };
            let home = if above { t.path("gone") } else { real.clone() };
            let t = t.no_home().env("HOME", &home_var).arg("--home").arg(&home);
            t.run().status(125).one_line_error(error).probe_not_run();
            assert!(
                !home.exists(),
                "created the refused home {} (HOME through a link: {through_link})",
                home.display()
            );
        }
    }
}

#[test]
fn a_stderr_pipe_nobody_reads_does_not_stop_the_launch() {
    // The warning about a removed variable hits EPIPE; the command must still run
    // (SIGPIPE goes back to its default only for the command, right before execve).
    let t = Test::new().env("ANTHROPIC_API_KEY", "sk-ant-api03-x");
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let status = std::process::Command::new(crate::support::sandbox::BIN)
        .args(t.argv())
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(write))
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(t.probe().is_some(), "the command never ran");
}

#[test]
fn invalid_utf8_is_read_as_claude_reads_it_and_the_original_kept() {
    // Node decodes invalid UTF-8 as U+FFFD and keeps every key: so do we, and the
    // original bytes are kept aside because the rewrite cannot reproduce them.
    let t = Test::new();
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    let original = b"{\"numStartups\": 9, \"a\": \"caf\xe9\"}";
    write_mode(&t.home().join(".claude.json"), original, 0o600);
    let out = t.run();
    out.success().stderr_contains("invalid UTF-8");
    let doc = claude_json(&t.home());
    assert_eq!(doc["numStartups"], json!(9));
    assert_eq!(doc["a"], json!("caf\u{fffd}"));
    assert!(trusts(&doc, &t.work()));
    let kept = names_with_prefix(&t.home(), ".claude.json.replaced-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(fs::read(t.home().join(&kept[0])).unwrap(), original);
}

#[test]
fn the_seed_plan_lists_exactly_what_would_change() {
    // Onboarding already done: only the trust is missing, and only it is named.
    let t = Test::new().arg("--dry-run");
    mkdir(&t.home());
    chmod(&t.home(), 0o700);
    write_mode(
        &t.home().join(".claude.json"),
        json!({"hasCompletedOnboarding": true, "numStartups": 3}).to_string(),
        0o600,
    );
    let out = t.run();
    out.status(0);
    let plan = out.stdout_text();
    let seed = plan
        .lines()
        .find(|l| l.starts_with("seed: "))
        .unwrap_or_else(|| panic!("no seed line: {plan}"));
    assert!(seed.contains("trust for"), "{seed}");
    assert!(!seed.contains("hasCompletedOnboarding"), "{seed}");
    // And the other way round.
    let work = t.work().to_str().unwrap().to_owned();
    write_mode(
        &t.home().join(".claude.json"),
        json!({"projects": {work: {"hasTrustDialogAccepted": true}}}).to_string(),
        0o600,
    );
    let out = t.run();
    let plan = out.stdout_text();
    let seed = plan.lines().find(|l| l.starts_with("seed: ")).unwrap();
    assert!(seed.contains("hasCompletedOnboarding=true"), "{seed}");
    assert!(!seed.contains("trust for"), "{seed}");
}

#[test]
fn a_loose_parent_is_named_in_the_error() {
    let t = Test::new();
    let loose = mkdir(&t.path("shared"));
    chmod(&loose, 0o777);
    let t = t.no_home().arg("--home").arg(loose.join("agent/home"));
    t.run()
        .status(125)
        .one_line_error(&format!(
            "its parent directory {} is writable by group or others (mode 0777, not sticky)",
            loose.display()
        ))
        .probe_not_run();
    assert!(
        !loose.join("agent").exists(),
        "created something before refusing"
    );
}

/// Found by review: the widened scrub rules removed claude-iso's own variables
/// (`CLAUDE_ISO_ALLOW_PROJECT_AUTH` by its `AUTH` word, `CLAUDE_ISO_HOME` by `*_HOME`),
/// with a warning that they "would override or relocate the token". They are claude-iso's
/// options, which claude does not read: passed on (a nested claude-iso inherits them),
/// silently.
#[test]
fn claude_isos_own_variables_reach_the_command_without_a_warning() {
    let t = Test::new()
        .env("CLAUDE_ISO_ALLOW_PROJECT_AUTH", "1")
        .env("CLAUDE_ISO_TOKEN_VIA", "env")
        .env("CLAUDE_ISO_SCRUB_TOOLS", "off");
    let out = t.run();
    out.success();
    assert!(
        !out.stderr_text().contains("not passing"),
        "{}",
        out.stderr_text()
    );
    // Only claude-iso's real option names: another name of that shape is judged as any.
    let t2 = Test::new().env("CLAUDE_ISO_ANTHROPIC_API_KEY", "sk-ant-api03-made-up");
    let other = t2.run();
    other.success();
    assert_eq!(other.probe().var("CLAUDE_ISO_ANTHROPIC_API_KEY"), None);
    for (k, v) in [
        ("CLAUDE_ISO_ALLOW_PROJECT_AUTH", "1"),
        ("CLAUDE_ISO_TOKEN_VIA", "env"),
        ("CLAUDE_ISO_SCRUB_TOOLS", "off"),
    ] {
        assert_eq!(
            out.probe().var(k).as_deref(),
            Some(std::ffi::OsStr::new(v)),
            "{k}"
        );
    }
}

#[test]
fn an_env_file_holding_the_token_alone_is_accepted() {
    // What a systemd credential or a Kubernetes Secret holds: the token, nothing else.
    for (name, text) in [
        ("newline", format!("{TOKEN}\n")),
        ("no newline", TOKEN.to_owned()),
        ("crlf", format!("{TOKEN}\r\n")),
        (
            "a comment first",
            format!("# from claude setup-token\n{TOKEN}\n"),
        ),
    ] {
        let t = Test::new().env_file_text(text.as_bytes());
        let out = t.run();
        out.success().no_secrets();
        assert!(
            out.stderr_text().is_empty(),
            "{name}: {}",
            out.stderr_text()
        );
        out.probe().assert_token(TOKEN);
    }
    // Words that are no token: the way out, in one line.
    for text in ["my token\n", "one\ntwo\n"] {
        let t = Test::new().env_file_text(text.as_bytes());
        t.run()
            .status(125)
            .one_line_error(
                "token.env: holds no CLAUDE_CODE_OAUTH_TOKEN= line and is not a token alone; write CLAUDE_CODE_OAUTH_TOKEN=<token printed by `claude setup-token`>, or run `claude-iso token set`",
            )
            .probe_not_run();
    }
}

/// A warning a unit would repeat on every start is said once a day per home: the second
/// launch into the same home says nothing, another home hears it again, `-v` always
/// does, and the record holds no words of it.
#[test]
fn a_repeating_warning_is_said_once_a_day_per_home() {
    let t = Test::new().env("XDG_CONFIG_HOME", "/etc/xdg-elsewhere");
    t.run()
        .success()
        .stderr_contains("claude-iso: warning: not passing XDG_CONFIG_HOME");
    t.reset_probe();
    let again = t.run();
    again.success().stderr("");
    assert_eq!(again.probe().var("XDG_CONFIG_HOME"), None, "still removed");
    let record = fs::read_to_string(t.home().join(".claude-iso.warned")).unwrap();
    assert!(!record.contains("XDG"), "{record}");
    t.reset_probe();
    t.spawn_with(["-v"])
        .wait()
        .success()
        .stderr_contains("claude-iso: warning: not passing XDG_CONFIG_HOME");
    let other = t.path("other-home");
    let t = t.no_home().args([OsString::from("--home"), other.into()]);
    t.reset_probe();
    t.run()
        .success()
        .stderr_contains("claude-iso: warning: not passing XDG_CONFIG_HOME");
}

/// `--unset NAME` acknowledges a variable the launch would warn about on every start
/// (a unit's `XDG_CONFIG_HOME`): it is still removed, and no warning is printed.
#[test]
fn unset_silences_the_warning_about_a_variable_it_names() {
    let t = Test::new().env("XDG_CONFIG_HOME", "/etc/xdg-elsewhere");
    let out = t.run();
    out.success()
        .stderr_contains("claude-iso: warning: not passing XDG_CONFIG_HOME")
        .stderr_contains("--unset NAME removes it without this warning");
    assert_eq!(out.probe().var("XDG_CONFIG_HOME"), None);
    let t = t.args(["--unset", "XDG_CONFIG_HOME"]);
    t.reset_probe();
    let out = t.run();
    out.success().stderr("");
    assert_eq!(out.probe().var("XDG_CONFIG_HOME"), None);
    // -v still says it, and a dry run lists it.
    let out = t.spawn_with(["-v"]).wait();
    out.success()
        .stderr_contains("--unset: not passing XDG_CONFIG_HOME");
    let out = t.spawn_with(["--dry-run"]).wait();
    out.success()
        .stdout_contains("env: unset XDG_CONFIG_HOME\n");
}

/// A usage error keeps clap's detail in its one line: the missing argument's name, the
/// possible values, a similar option, the subcommands to choose from (issue 24).
#[test]
fn usage_errors_keep_clap_detail_in_one_line() {
    for (args, needles) in [
        (
            vec!["--token-via"],
            vec!["'--token-via <WAY>'", "[possible values: broker, fd, env]"],
        ),
        (
            vec!["--mask", "bogus"],
            vec!["invalid value 'bogus' for '--mask <WHEN>' [possible values: auto, on, off]"],
        ),
        (
            vec!["completions"],
            vec!["the following required arguments were not provided: <SHELL>"],
        ),
        (
            vec!["token"],
            vec!["token: a subcommand is required, one of: set, status"],
        ),
        (
            vec!["broker"],
            vec!["broker: a subcommand is required, one of: serve, status"],
        ),
        (
            vec!["doctor", "--li"],
            vec!["unexpected argument '--li' found; tip: a similar argument exists: '--live'"],
        ),
    ] {
        let t = Test::new()
            .no_env_file()
            .no_home()
            .args(args.iter().copied());
        let out = t.run();
        out.status(125).probe_not_run();
        for needle in needles {
            out.one_line_error(needle);
        }
        out.stderr_lacks("For more information")
            .stderr_lacks("Usage:");
    }
}

/// `--verbose` says more, but never a secret — on success, in a dry run and on refusal.
#[test]
fn verbose_output_never_shows_a_secret() {
    let decoy = "sk-ant-oat01-Wd4Ks7Hn2_Jq9Lx3Bv8Mc1Tz6-Pr5Gy0Ef";
    let t = Test::new()
        .arg("--verbose")
        .env("ANTHROPIC_API_KEY", API_KEY)
        .env("CLAUDE_CODE_OAUTH_REFRESH_TOKEN", REFRESH)
        .secret(API_KEY)
        .secret(REFRESH)
        .secret(decoy);
    let claude_dir = mkdir(&t.home().join(".claude"));
    chmod(&t.home(), 0o750);
    write_mode(
        &claude_dir.join(".credentials.json"),
        format!("{{\"claudeAiOauth\":{{\"accessToken\":\"{decoy}\"}}}}"),
        0o600,
    );
    write_mode(&t.home().join(".claude.json"), "{oops", 0o600);
    let out = t.run();
    out.success().no_secrets();
    out.stderr_contains(&format!(
        "claude-iso: token {} from {}\n",
        crate::support::sandbox::redacted(TOKEN),
        t.env_file().display()
    ))
    .stderr_contains("claude-iso: warning: moved ")
    .stderr_contains("was not a JSON object")
    .stderr_contains("claude-iso: seeded ")
    .stderr_contains("ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_REFRESH_TOKEN");

    let t = t.arg("--dry-run");
    t.reset_probe();
    t.run().status(0).probe_not_run().no_secrets();

    let t = t.env_file_text(format!("{TOKEN_LINE}{TOKEN}\n{TOKEN_LINE}{TOKEN}\n"));
    t.run().status(125).one_line_error("set twice").no_secrets();
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The uid claude-iso runs as under [`as_runner`].
fn runner_uid() -> u32 {
    if is_root() {
        NOBODY
    } else {
        nix::unistd::geteuid().as_raw()
    }
}

/// Runs a helper command as the runner (for reads that must be refused to it).
fn runner_command(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
        c
    } else {
        Command::new(program)
    }
}

// ---------------------------------------------------------------------------------------
// A closed or broken stderr; non-dumpable while holding the token
// ---------------------------------------------------------------------------------------

/// Runs claude-iso with `t`'s argv and environment but stderr (and, with `stdout_too`,
/// stdout) a pipe whose read end is already closed. Returns the wait status.
fn run_with_broken_pipe(t: &Test, stdout_too: bool) -> std::process::ExitStatus {
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let (r2, w2) = nix::unistd::pipe().unwrap();
    drop(r2);
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "30", BIN])
        .args(t.argv())
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .stderr(Stdio::from(w));
    if stdout_too {
        cmd.stdout(Stdio::from(w2));
    } else {
        cmd.stdout(Stdio::null());
    }
    status_of(&mut cmd).unwrap()
}

/// Errors, warnings and a dry-run plan written to a pipe nobody reads: the exit status
/// is still 125/127/0, never 134 (SIGABRT), and no core file appears.
#[test]
fn a_broken_stderr_never_aborts() {
    struct Row {
        name: &'static str,
        build: fn() -> Test,
        code: i32,
        probe_runs: bool,
    }
    let rows = [
        Row {
            name: "no token (125)",
            build: || Test::new().no_env_file(),
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "usage error (125)",
            build: || Test::new().arg("--no-such-option"),
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "home refused (125)",
            build: || {
                let t = Test::new();
                mkdir_mode(&t.home(), 0o777);
                t
            },
            code: 125,
            probe_runs: false,
        },
        Row {
            name: "command not found (127)",
            build: || Test::new().command(["no-such-command-here"]),
            code: 127,
            probe_runs: false,
        },
        Row {
            name: "cannot run (126)",
            build: || Test::new().command(["/etc/passwd"]),
            code: 126,
            probe_runs: false,
        },
        Row {
            name: "quarantine and tightening warnings, then the command (0)",
            build: || {
                let t = Test::new().env("ANTHROPIC_API_KEY", "sk-ant-api03-x");
                let claude = mkdir(&t.home().join(".claude"));
                chmod(&t.home(), 0o755);
                write_mode(&claude.join(".credentials.json"), "{}", 0o600);
                write_mode(&t.home().join(".claude.json"), "{oops", 0o600);
                t
            },
            code: 0,
            probe_runs: true,
        },
        Row {
            name: "dry run, verbose (0)",
            build: || Test::new().arg("--dry-run").arg("--verbose"),
            code: 0,
            probe_runs: false,
        },
        Row {
            name: "doctor (1: no claude on PATH)",
            build: || {
                let t = Test::new().no_env_file().no_home();
                fs::remove_file(t.path("bin/claude")).unwrap();
                let (env_file, home) = (t.env_file(), t.home());
                t.arg("doctor")
                    .arg("--env-file")
                    .arg(env_file)
                    .arg("--home")
                    .arg(home)
            },
            code: 1,
            probe_runs: false,
        },
    ];
    for row in rows {
        for stdout_too in [false, true] {
            let t = (row.build)();
            let status = run_with_broken_pipe(&t, stdout_too);
            assert_eq!(
                (status.code(), status.signal()),
                (Some(row.code), None),
                "[{}, stdout broken too: {stdout_too}] status {status}",
                row.name
            );
            assert_eq!(
                t.probe().is_some(),
                row.probe_runs,
                "[{}] the probe ran: {}",
                row.name,
                t.probe().is_some()
            );
            let cores: Vec<_> = fs::read_dir(t.work())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("core"))
                .collect();
            assert!(cores.is_empty(), "[{}] core files: {cores:?}", row.name);
        }
    }
}

/// stderr closed outright (fd 2 not open) behaves like a broken pipe: same statuses.
#[test]
fn a_closed_stderr_never_aborts() {
    let close = "exec 2>&- && exec \"$0\" \"$@\"";
    Test::new().no_env_file().wrap(close).run().status(125);
    Test::new()
        .command(["no-such-command-here"])
        .wrap(close)
        .run()
        .status(127);
    let t = Test::new().wrap(close);
    chmod(&mkdir(&t.home()), 0o750);
    t.run().success();
}

/// claude-iso is not dumpable while it holds the token: run unprivileged and kept
/// waiting on claude's lock, its `/proc/<pid>` is root's and its environ cannot be read
/// by its own user. The command, after `execve`, is dumpable again.
#[test]
fn claude_iso_is_not_dumpable_but_the_command_is() {
    let t = Test::new().arg("-v");
    let home = mkdir_mode(&t.home(), 0o700);
    let record = t.path("probe/owner");
    write_executable(
        &t.path("bin/owner-probe"),
        &format!(
            "#!/bin/sh\nstat -c %u /proc/$$/environ > '{}'\nexec '{}'\n",
            record.display(),
            t.probe_path().display()
        ),
    );
    let t = t.command(["owner-probe"]);
    own(&home);
    let t = as_runner(t);
    let lock = HeldClaudeLock::new(&home);
    let mut running = t.spawn();
    let pid = running.id();
    wait_for_flock(pid, &mut running.child);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(2),
        Some(runner_uid().to_string().as_str()),
        "claude-iso does not run as the runner: {uid_line}"
    );
    // (The /proc/<pid> directory itself, mode 0555, keeps the task's owner; the files
    // that reveal memory and environment become root's.)
    for file in ["environ", "mem", "maps"] {
        let uid = fs::metadata(format!("/proc/{pid}/{file}")).unwrap().uid();
        assert_eq!(
            uid, 0,
            "/proc/{pid}/{file} of a non-dumpable process is root's, got uid {uid}"
        );
    }
    let read = status_of(
        runner_command("cat")
            .arg(format!("/proc/{pid}/environ"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    assert!(
        !read.success(),
        "its own user read claude-iso's environ (the token)"
    );
    drop(lock);
    let out = running.wait();
    out.success();
    let owner = fs::read_to_string(&record).unwrap();
    assert_eq!(
        owner.trim(),
        runner_uid().to_string(),
        "the command's /proc entry is not its own: not dumpable after execve"
    );
    out.probe().assert_token(TOKEN);
}

// ---------------------------------------------------------------------------------------
// Small ones
// ---------------------------------------------------------------------------------------

/// 100 000 caller variables: the launch (and a dry run) complete within the harness
/// bound, and the command gets every one of them.
#[test]
fn a_hundred_thousand_variables() {
    let t = Test::new();
    let record = t.path("probe/environ");
    let t = t.command(["/bin/cp", "/proc/self/environ", record.to_str().unwrap()]);
    let vars: Vec<(String, String)> = (0..100_000)
        .map(|i| (format!("V{i:06}"), "x".to_owned()))
        .collect();
    for dry in [false, true] {
        let mut cmd = Command::new("timeout");
        cmd.args(["-s", "KILL", "20", BIN]);
        if dry {
            cmd.arg("--dry-run");
        }
        cmd.args(t.argv())
            .env_clear()
            .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir(t.work())
            .stdout(Stdio::null());
        let status = status_of(&mut cmd).unwrap();
        assert_eq!(status.code(), Some(0), "dry run: {dry}: {status}");
    }
    let environ = fs::read(&record).unwrap();
    let names: std::collections::HashSet<&[u8]> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| kv.split(|b| *b == b'=').next())
        .collect();
    let missing = vars
        .iter()
        .filter(|(k, _)| !names.contains(k.as_bytes()))
        .count();
    assert_eq!(missing, 0, "{missing} variables did not reach the command");
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|kv| kv == format!("HOME={}", t.home().display()).as_bytes())
    );
}

// ---------------------------------------------------------------------------------------
// Issue 15 §4: one test per bug
// ---------------------------------------------------------------------------------------

/// A path with a slash whose lookup fails other than by a missing file is found but
/// cannot run (126), as execvp reports it; a missing one is 127.
#[test]
fn a_slash_path_that_cannot_be_looked_up_is_126() {
    let t = Test::new();
    symlink("loop-b", t.path("loop-a")).unwrap();
    symlink("loop-a", t.path("loop-b")).unwrap();
    let loop_a = t.path("loop-a");
    for (cmd, code, needle) in [
        ("/etc/passwd/x".to_owned(), 126, "Not a directory"),
        (loop_a.display().to_string(), 126, "symbolic links"),
        (format!("{}/x", loop_a.display()), 126, "symbolic links"),
        ("/no/such/dir/x".to_owned(), 127, "not found"),
    ] {
        let t = Test::new().command([&cmd]);
        t.run().status(code).one_line_error(needle).probe_not_run();
    }
    // A directory the runner cannot search: EACCES, 126.
    let t = Test::new();
    let shut = mkdir_mode(&t.path("shut"), 0o700);
    fs::copy(t.probe_path(), shut.join("probe")).unwrap();
    // No search permission for the runner (its own directory without x, or root's).
    chmod(&shut, 0o600);
    let t = as_runner(t.command([shut.join("probe")]));
    t.run()
        .status(126)
        .one_line_error("Permission denied")
        .probe_not_run();
    chmod(&shut, 0o700);
}

/// A home seeded by hand (no lock file of ours): a nested claude-iso run inside it knows
/// `HOME` is a scratch home and plans the real (passwd) home's default, not one inside.
#[test]
fn a_nested_run_in_a_hand_seeded_home_knows_it_is_nested() {
    let t = Test::new();
    let home = mkdir_mode(&t.home(), 0o700);
    write_mode(
        &home.join(".claude.json"),
        format!(
            "{{\"hasCompletedOnboarding\": true, \"projects\": {{\"{}\": {{\"hasTrustDialogAccepted\": true}}}}}}",
            t.work().display()
        ),
        0o600,
    );
    let passwd = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .dir;
    // The outer run unmasked: under the mask the real homes are views whose top level
    // cannot gain entries, so the passwd home's default home (whose `.local` may not
    // exist) could not be planned as creatable; this test is about nesting, not the mask.
    let t = t
        .args(["--mask", "off"])
        .command([BIN, "--dry-run", "--", "probe"]);
    let out = t.run();
    out.status(0);
    let plan = out.stdout_text();
    let line = plan
        .lines()
        .find(|l| l.starts_with("home: "))
        .unwrap_or_else(|| panic!("no home line in {plan}"));
    assert!(
        !line.contains(&home.display().to_string()),
        "the nested run took the scratch HOME for the real home: {line}"
    );
    assert!(
        line.contains(
            &passwd
                .join(".local/state/claude-iso/home")
                .display()
                .to_string()
        ) || line.contains(".local/state/claude-iso/home"),
        "{line}"
    );
    assert!(
        home.join(".claude-iso.lock").is_file(),
        "the home is not marked"
    );
}
