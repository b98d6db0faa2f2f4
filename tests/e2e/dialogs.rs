//! End-to-end (issue 27): the interactive claude never waits on a start-up question in a
//! home that is not fresh — one used by every supported claude in turn (oldest, pinned,
//! the newest whose dialogs were measured: an ordinary upgrade), started again and again
//! in each permission mode, and one with hundreds of recorded startups. Each start types
//! one prompt into the tmux pane: the fake API must receive it and the reply must be on
//! screen, with no question on screen at any point. Between starts, claude-iso's own
//! seed may change only the keys it owns in `.claude.json` (the rest is claude's).
//!
//! The versions: the claude of `CLAUDE_ISO_TEST_CLAUDE` when it is the one wanted, else
//! the same version next to it (`.cache/claude-code/<version>/…`, where
//! `scripts/install-test-deps` puts each), else installed there by
//! `scripts/install-test-deps`. A version that cannot be found or installed fails the
//! test. The per-version facts are in `docs/claude-dialogs.md`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use crate::support::tui::Tmux;
use crate::support::world::{World, run_timed};
use claude_iso::layout::{DIALOG_COUNTERS, DIALOG_FLAGS, DIALOGS_MEASURED, supported_claude};
use serde_json::{Value, json};

const REPLY: &str = "pong from the fake API";

/// What a question on claude's screen looks like: every select dialog ends in "Enter to
/// confirm · Esc to cancel"; the rest are the texts of the questions measured so far
/// (docs/claude-dialogs.md) and of the first-run dialogs.
const QUESTION_MARKERS: &[&str] = &[
    "Enter to confirm",
    "Esc to cancel",
    "Try the new fullscreen renderer",
    "Yes, try it",
    "Not now",
    "Teach auto mode",
    "Do you trust",
    "trust this folder",
    "Quick safety check",
    "Choose the text style",
    "Select login method",
    "Let's get started",
    "Unable to connect to Anthropic services",
    "Detected a custom API key",
    "Bypass Permissions mode",
    "(y/n)",
];

fn question(screen: &str) -> Option<&'static str> {
    QUESTION_MARKERS
        .iter()
        .copied()
        .find(|m| screen.contains(m))
}

/// The input line of claude's prompt box (as in `tests/e2e/launch.rs`): `❯` or the older `>`,
/// not a `❯ 1.` selection.
fn prompt_line(screen: &str) -> Option<&str> {
    screen.lines().rev().find(|l| {
        let l = l.trim_start().trim_start_matches('│').trim_start();
        (l.starts_with('❯') && !l.starts_with("❯ 1.")) || l == ">" || l.starts_with("> ")
    })
}

/// Runs `claude --version`; its version word.
fn version_of(claude: &Path, scratch: &Path) -> Option<String> {
    let mut cmd = Command::new(claude);
    cmd.arg("--version")
        .env_clear()
        .env("PATH", crate::support::world::base_path())
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .envs(crate::support::world::quiet_env())
        .current_dir(scratch);
    let run = run_timed(&mut cmd, Duration::from_secs(60), scratch);
    run.status
        .success()
        .then(|| run.stdout.split_whitespace().next().map(str::to_owned))
        .flatten()
}

/// The claude CLI of `version`: the tested one, the same version next to it, or installed
/// by `scripts/install-test-deps`. Panics when none works.
fn claude_of(version: &str, tested: &Path, scratch: &Path) -> PathBuf {
    // <cache>/<version>/node_modules/.bin/claude
    let mut candidates = vec![tested.to_path_buf()];
    if let Some(cache) = tested.ancestors().nth(4) {
        candidates.push(cache.join(version).join("node_modules/.bin/claude"));
    }
    for c in &candidates {
        if c.is_file() && version_of(c, scratch).as_deref() == Some(version) {
            return c.clone();
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-test-deps");
    let out = Command::new(&script)
        .env("CLAUDE_CODE_VERSION", version)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success() && version_of(&path, scratch).as_deref() == Some(version),
        "claude {version} is needed (a supported release) and was neither next to {} nor \
         installed by {} (CLAUDE_CODE_VERSION={version}): {}",
        tested.display(),
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// The supported releases, oldest first: oldest, pinned, and the newest whose dialogs were
/// measured.
fn supported_versions() -> Vec<&'static str> {
    let (oldest, pinned) = supported_claude();
    let mut v = vec![oldest, pinned, DIALOGS_MEASURED];
    v.dedup();
    v
}

/// The permission modes a start cycles through (`None`: claude's default). A start with a
/// mode passes `--scrub-tools off`: with claude's subprocess scrub on, claude forces every
/// mode to the default (measured, 2.1.197 to 2.1.332). `bypassPermissions` is not here:
/// claude refuses it as root, and its warning is claude's own consent question, which
/// claude-iso does not answer (docs/claude-dialogs.md).
const MODES: &[Option<&str>] = &[
    None,
    Some("plan"),
    Some("acceptEdits"),
    Some("auto"),
    Some("dontAsk"),
];

struct Aging<'a> {
    w: &'a World,
    api: FakeApi,
    project: PathBuf,
    starts: usize,
}

impl Aging<'_> {
    /// Points the world's `claude` at `claude`.
    fn use_claude(&self, claude: &Path) {
        let link = self.w.bin.join("claude");
        fs::remove_file(&link).unwrap();
        symlink(claude, &link).unwrap();
    }

    fn claude_json(&self) -> Option<Value> {
        let text = fs::read_to_string(self.w.home.join(".claude.json")).ok()?;
        Some(serde_json::from_str(&text).expect(".claude.json is JSON"))
    }

    /// claude-iso's seed alone (the command is `true`): only the keys claude-iso owns may
    /// change, and they hold what it seeds afterwards.
    fn seed_changes_only_owned_keys(&self, label: &str) {
        let before = self.claude_json();
        let project = fs::canonicalize(&self.project).unwrap();
        let project = project.to_str().unwrap();
        let mut cmd = Command::new(crate::support::world::CLAUDE_ISO);
        cmd.env_clear()
            .envs(self.w.caller_env(&self.api))
            .current_dir(&self.w.root)
            .arg("--env-file")
            .arg(&self.w.env_file)
            .arg("--home")
            .arg(&self.w.home)
            .args(["-q", "-C", project, "--", "true"]);
        let run = run_timed(&mut cmd, Duration::from_secs(60), &self.w.logs);
        assert!(run.status.success(), "{label}: seeding failed: {run}");
        let after = self.claude_json().expect("seeded .claude.json");
        assert_eq!(after["hasCompletedOnboarding"], json!(true), "{label}");
        assert_eq!(
            after["projects"][project]["hasTrustDialogAccepted"],
            json!(true),
            "{label}"
        );
        for (key, limit) in DIALOG_COUNTERS {
            let n = after[*key].as_f64().unwrap_or(0.0);
            assert!(n >= *limit as f64, "{label}: {key} is {n} after the seed");
        }
        for key in DIALOG_FLAGS {
            assert_eq!(after[*key], json!(true), "{label}: {key} after the seed");
        }
        let Some(before) = before else { return };
        let strip = |doc: &Value| {
            let mut doc = doc.clone();
            let top = doc.as_object_mut().unwrap();
            top.remove("hasCompletedOnboarding");
            for (key, _) in DIALOG_COUNTERS {
                top.remove(*key);
            }
            for key in DIALOG_FLAGS {
                top.remove(*key);
            }
            if let Some(Value::Object(entry)) = top
                .get_mut("projects")
                .and_then(|p| p.as_object_mut())
                .and_then(|p| p.get_mut(project))
            {
                entry.remove("hasTrustDialogAccepted");
                if entry.is_empty() {
                    top["projects"].as_object_mut().unwrap().remove(project);
                }
            }
            doc
        };
        assert_eq!(
            strip(&after),
            strip(&before),
            "{label}: claude-iso changed .claude.json outside the keys it owns"
        );
        // Counters are raised, never lowered.
        for (key, _) in DIALOG_COUNTERS {
            if let (Some(a), Some(b)) = (after[*key].as_f64(), before[*key].as_f64()) {
                assert!(a >= b, "{label}: {key} lowered from {b} to {a}");
            }
        }
    }

    /// One interactive start of `version` under claude-iso: the first typed prompt
    /// reaches the API and its answer is on screen, and no question ever shows.
    fn start(&mut self, version: &str, mode: Option<&str>) {
        self.starts += 1;
        let n = self.starts;
        let label = format!("start {n} (claude {version}, mode {mode:?})");
        self.seed_changes_only_owned_keys(&label);
        let mut argv: Vec<String> = vec![
            crate::support::world::CLAUDE_ISO.into(),
            "--env-file".into(),
            self.w.env_file.to_string_lossy().into_owned(),
            "--home".into(),
            self.w.home.to_string_lossy().into_owned(),
        ];
        if mode.is_some() {
            argv.extend(["--scrub-tools".into(), "off".into()]);
        }
        argv.extend(["--".into(), "claude".into()]);
        if let Some(mode) = mode {
            argv.extend(["--permission-mode".into(), mode.into()]);
        }
        let mut env = self.w.caller_env(&self.api);
        env.push(("PWD".into(), self.project.to_string_lossy().into_owned()));
        let tmux = Tmux::start(
            &self.w.root.join(format!("tmux{n}")),
            &env,
            &self.project,
            &argv,
            120,
            40,
        );
        let no_question = |s: &str| {
            if let Some(q) = question(s) {
                panic!("{label}: a question is on screen ({q:?}):\n{s}");
            }
        };
        let ready = tmux
            .wait_for(Duration::from_secs(90), |s| {
                question(s).is_some() || (s.contains("Claude Code") && prompt_line(s).is_some())
            })
            .unwrap_or_else(|e| panic!("{label}: claude never reached its prompt: {e}"));
        no_question(&ready);
        // Questions come up a moment after the prompt box: give one the time to show
        // (a bound, not a measurement: a question later than this still eats the prompt
        // below, and the API then never receives it).
        if let Ok(s) = tmux.wait_for(Duration::from_secs(3), |s| question(s).is_some()) {
            no_question(&s);
        }

        let prompt = format!("say pong {n} please");
        let has_prompt = |s: &str| prompt_line(s).is_some_and(|l| l.contains(&prompt));
        let mut typed = Err(String::new());
        for _ in 0..3 {
            tmux.type_text(&prompt);
            typed = tmux.wait_for(Duration::from_secs(15), |s| {
                question(s).is_some() || has_prompt(s)
            });
            if typed.is_ok() {
                break;
            }
        }
        let typed = typed.unwrap_or_else(|e| panic!("{label}: the typed prompt never showed: {e}"));
        no_question(&typed);

        let answer = format!("● {REPLY}");
        let received = |api: &FakeApi| {
            api.message_requests()
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains(&prompt))
        };
        let mut answered = Err(String::new());
        for _ in 0..3 {
            tmux.keys(&["Enter"]);
            answered = tmux.wait_for(Duration::from_secs(60), |s| {
                question(s).is_some() || (s.contains(&answer) && received(&self.api))
            });
            if answered.is_ok() || !has_prompt(&tmux.screen().text) {
                break;
            }
        }
        let screen = answered.unwrap_or_else(|e| {
            panic!(
                "{label}: the prompt was not answered: {e}\nrequests:\n{}",
                self.api.summary()
            )
        });
        no_question(&screen);
        assert!(
            received(&self.api),
            "{label}: the API never received the prompt"
        );
        if let Some(bad) = self.w.foreign_request(&self.api) {
            panic!("{label}: credential isolation broken: {bad}");
        }

        // Leave as a person would (Ctrl-C twice), so claude records its shutdown; not
        // asserted (the server is killed on drop either way).
        tmux.keys(&["C-c"]);
        std::thread::sleep(Duration::from_millis(300));
        tmux.keys(&["C-c"]);
        let _ = tmux.wait_for(Duration::from_secs(20), |_| false);
        eprintln!("{label}: answered, no question");
    }
}

/// The home of an ordinary upgrade path: oldest, then pinned, then the newest measured
/// release, each started several times in turn, every start answering its first prompt.
#[test]
fn a_home_aged_by_every_supported_version_answers_the_first_prompt() {
    let Some(w) = World::new("a_home_aged_by_every_supported_version_answers_the_first_prompt")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let tested = w.claude.clone();
    let claudes: Vec<(&str, PathBuf)> = supported_versions()
        .into_iter()
        .map(|v| (v, claude_of(v, &tested, scratch.path())))
        .collect();
    let mut aging = Aging {
        project: w.dir("work/project"),
        api: FakeApi::start(REPLY),
        w: &w,
        starts: 0,
    };
    let mut mode = MODES.iter().cycle();
    for (version, claude) in &claudes {
        aging.use_claude(claude);
        // Three starts each: the fullscreen question counts its showings up to three.
        for _ in 0..3 {
            aging.start(version, *mode.next().unwrap());
        }
    }
    // And back down to the oldest (a pinned install on another machine sharing the home).
    let (version, claude) = &claudes[0];
    aging.use_claude(claude);
    aging.start(version, None);
    let json = aging.claude_json().unwrap();
    assert!(
        json["numStartups"].as_u64().unwrap_or(0) >= 3,
        "claude recorded its startups: {json}"
    );
    drop(aging);
    w.assert_decoy_unchanged();
}

/// The upgrade the issue reports: a home used by the oldest supported release, then by the
/// newest measured one (no release between), started again and again.
#[test]
fn a_home_used_by_the_oldest_then_the_newest_answers_every_start() {
    let Some(w) = World::new("a_home_used_by_the_oldest_then_the_newest_answers_every_start")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let tested = w.claude.clone();
    let versions = supported_versions();
    let (oldest, newest) = (versions[0], versions[versions.len() - 1]);
    let mut aging = Aging {
        project: w.dir("work/project"),
        api: FakeApi::start(REPLY),
        w: &w,
        starts: 0,
    };
    aging.use_claude(&claude_of(oldest, &tested, scratch.path()));
    aging.start(oldest, None);
    aging.start(oldest, None);
    aging.use_claude(&claude_of(newest, &tested, scratch.path()));
    for _ in 0..4 {
        aging.start(newest, None);
    }
    drop(aging);
    w.assert_decoy_unchanged();
}

/// A home with hundreds of recorded startups, first started long ago, release notes last
/// seen many releases back, and the project opened before: every supported version
/// answers the first prompt with no question.
#[test]
fn a_home_with_hundreds_of_startups_answers_the_first_prompt() {
    let Some(w) = World::new("a_home_with_hundreds_of_startups_answers_the_first_prompt") else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let tested = w.claude.clone();
    let project = w.dir("work/old-project");
    let real = fs::canonicalize(&project).unwrap();
    w.precreate_home();
    let long_ago = "2026-01-15T09:00:00.000Z";
    let doc = json!({
        "numStartups": 734,
        "installMethod": "global",
        "autoUpdates": false,
        "firstStartTime": long_ago,
        "hasCompletedOnboarding": true,
        "lastOnboardingVersion": "2.1.100",
        "lastReleaseNotesSeen": "2.1.100",
        "tipsHistory": {"new-user-warmup": 3, "memory-command": 412},
        "promptQueueUseCount": 57,
        "fullscreenUpsellSeenCount": 1,
        "passesUpsellSeenCount": 2,
        "subscriptionNoticeCount": 0,
        "projects": {real.to_str().unwrap(): {
            "allowedTools": [],
            "history": [{"display": "an old prompt", "pastedContents": {}}],
            "hasTrustDialogAccepted": true,
            "projectOnboardingSeenCount": 4,
            "lastSessionId": "00000000-0000-4000-8000-000000000000",
            "lastCost": 1.25,
            "lastDuration": 600000,
            "lastGracefulShutdown": true,
        }},
    });
    fs::write(
        w.home.join(".claude.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
    let mut aging = Aging {
        project,
        api: FakeApi::start(REPLY),
        w: &w,
        starts: 0,
    };
    for version in supported_versions().into_iter().rev() {
        let claude = claude_of(version, &tested, scratch.path());
        aging.use_claude(&claude);
        aging.start(version, None);
        aging.start(version, Some("acceptEdits"));
    }
    let json = aging.claude_json().unwrap();
    assert!(
        json["numStartups"].as_u64().unwrap_or(0) >= 734,
        "numStartups went back: {json}"
    );
    drop(aging);
    w.assert_decoy_unchanged();
}

/// A home whose user settings choose a permission mode (`permissions.defaultMode`):
/// claude 2.1.330 and 2.1.332 ask "Make auto mode your default permission mode?" at every
/// start until it is answered; claude-iso's seed answers "No" (`hasSeenAutoDefaultNudge`).
#[test]
fn a_home_whose_settings_choose_a_permission_mode_answers_the_first_prompt() {
    let Some(w) =
        World::new("a_home_whose_settings_choose_a_permission_mode_answers_the_first_prompt")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let tested = w.claude.clone();
    let dot_claude = w.precreate_home();
    fs::write(
        dot_claude.join("settings.json"),
        json!({"permissions": {"defaultMode": "acceptEdits"}}).to_string(),
    )
    .unwrap();
    let mut aging = Aging {
        project: w.dir("work/project"),
        api: FakeApi::start(REPLY),
        w: &w,
        starts: 0,
    };
    for version in supported_versions() {
        let claude = claude_of(version, &tested, scratch.path());
        aging.use_claude(&claude);
        aging.start(version, None);
        // The mode the settings chose is the one claude runs in.
        aging.start(version, Some("acceptEdits"));
    }
    drop(aging);
    w.assert_decoy_unchanged();
}
