//! End-to-end: the built claude-iso in front of the real claude CLI (found through
//! `CLAUDE_ISO_TEST_CLAUDE`), against a fake Messages API on 127.0.0.1, with a caller
//! environment that points every credential variable at a decoy real home.
//!
//! Cases (issue 4):
//! 1. `--print` answers and only the env file's token is sent.
//! 2. API answers 401: only the env token was tried, exit status is claude's own.
//! 3. The decoy real home is byte-for-byte unchanged (checked after every case).
//! 4. The TUI in tmux, in a never-seen folder and through symlinks: no dialog, answers.
//! 5. A stray `.credentials.json` (file, symlink to the decoy's) is quarantined.
//! 6. 16 concurrent launches into one home: all answer, `.claude.json` keeps every trust.
//!
//! Run with `scripts/test` (installs the pinned claude and sets the variable).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::fake_api::{FakeApi, Mode};
use crate::support::tui::Tmux;
use crate::support::world::{World, run_timed};

const REPLY: &str = "pong from the fake API";

/// Case 1 (+3): `--print` answers with the env file's token as the only credential
/// while the caller's environment is full of decoy credentials.
#[test]
fn print_sends_only_the_env_file_token() {
    let Some(w) = World::new("print_sends_only_the_env_file_token") else {
        return;
    };
    let api = FakeApi::start(REPLY);
    let work = w.dir("work");
    let run = w.print(&api, &w.root, &["-C", work.to_str().unwrap()], "say pong");
    assert!(run.status.success(), "claude-iso --print failed: {run}");
    assert!(run.stdout.contains(REPLY), "no answer on stdout: {run}");
    w.assert_answered_in_isolation(&api, &work);
    assert!(
        fs::symlink_metadata(w.home.join(".claude/.credentials.json")).is_err(),
        "a credentials file appeared in the scratch home"
    );
    // Through the broker (the default), no release's start-up probe reaches the API:
    // 2.1.197 probes the base URL with a credential-free `HEAD /` when it talks to the
    // API directly (see `e2e_token_fd`'s fd runs and `crate::support::world::sends_head_probe`), but not
    // over the socket (measured on 2.1.197, 2.1.330 and 2.1.332). Every request the API
    // saw came through the broker, with the token.
    let probes = api.requests().iter().filter(|r| r.method == "HEAD").count();
    assert_eq!(
        probes,
        0,
        "a HEAD probe from claude {:?} through the broker:\n{}",
        crate::support::world::claude_version(),
        api.summary()
    );
}

/// Case 2 (+3): with every request refused, only the env token was ever tried and
/// claude-iso exits with the status claude itself exits with.
#[test]
fn unauthorized_tries_only_the_env_token_and_keeps_claudes_status() {
    let Some(w) = World::new("unauthorized_tries_only_the_env_token_and_keeps_claudes_status")
    else {
        return;
    };
    let api = FakeApi::unauthorized();
    let work = w.dir("work");
    let run = w.print(&api, &work, &[], "say pong");
    assert!(
        !api.requests().is_empty(),
        "claude sent no request at all: {run}"
    );
    w.assert_only_token(&api);
    w.assert_decoy_unchanged();

    // claude on its own, in a clean environment, against its own 401 API.
    let reference_api = FakeApi::unauthorized();
    let ref_home = w.dir("reference-home");
    let ref_work = w.dir("reference-work");
    fs::write(
        ref_home.join(".claude.json"),
        serde_json::json!({
            "hasCompletedOnboarding": true,
            "projects": {ref_work.to_str().unwrap(): {"hasTrustDialogAccepted": true}},
        })
        .to_string(),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(&w.claude);
    cmd.env_clear()
        .env(
            "PATH",
            format!("{}:{}", w.bin.display(), crate::support::world::base_path()),
        )
        .env("HOME", &ref_home)
        .env("TMPDIR", &w.tmpdir)
        .env("LANG", "C.UTF-8")
        .env("CLAUDE_CODE_OAUTH_TOKEN", &w.token)
        .env("ANTHROPIC_BASE_URL", reference_api.base_url())
        .envs(crate::support::world::quiet_env())
        .current_dir(&ref_work)
        .args(["--print", "say pong"]);
    let reference = run_timed(&mut cmd, crate::support::world::PRINT_TIMEOUT, &w.logs);
    assert!(
        !reference.status.success(),
        "claude itself succeeded against a 401 API?\n{reference}"
    );
    assert!(
        !reference_api.requests().is_empty(),
        "reference claude made no request"
    );
    assert_eq!(
        run.status, reference.status,
        "claude-iso's exit status differs from claude's own.\nclaude-iso: {run}\nclaude: {reference}"
    );
}

/// Case 4: the interactive claude in tmux reaches its prompt with no dialog and
/// answers a typed prompt. `via_flag`: enter the folder with `-C`, else start there.
fn tui_case(test: &str, make_project: impl FnOnce(&World) -> PathBuf, via_flag: bool) {
    let Some(w) = World::new(test) else { return };
    let api = FakeApi::start(REPLY);
    let project = make_project(&w);
    let (cwd, pre): (PathBuf, Vec<String>) = if via_flag {
        (
            w.root.clone(),
            vec!["-C".into(), project.to_string_lossy().into_owned()],
        )
    } else {
        (project.clone(), vec![])
    };
    let mut argv: Vec<String> = vec![
        crate::support::world::CLAUDE_ISO.into(),
        "--env-file".into(),
        w.env_file.to_string_lossy().into_owned(),
        "--home".into(),
        w.home.to_string_lossy().into_owned(),
    ];
    argv.extend(pre);
    argv.extend(["--".into(), "claude".into()]);
    let mut env = w.caller_env(&api);
    env.push(("PWD".into(), cwd.to_string_lossy().into_owned()));

    // Stop waiting as soon as a dialog or a foreign credential shows up.
    let stop = |s: &str| has_dialog(s) || w.foreign_request(&api).is_some();
    let check = |s: &str| {
        assert_no_dialog(s);
        if let Some(bad) = w.foreign_request(&api) {
            panic!(
                "credential isolation broken: {bad}\nall requests:\n{}\nscreen:\n{s}",
                api.summary()
            );
        }
    };
    let start = Instant::now();
    let tmux = Tmux::start(&w.root.join("tmux"), &env, &cwd, &argv, 120, 40);
    let ready = tmux
        .wait_for(Duration::from_secs(90), |s| {
            stop(s) || (s.contains("Claude Code v") && prompt_line(s).is_some())
        })
        .unwrap_or_else(|e| panic!("claude never reached its prompt: {e}"));
    check(&ready);
    // The interactive claude talks through the broker: its environment holds the
    // socket and the placeholder, no descriptor variable and no piece of the token.
    let pid = tmux.pane_pid().expect("the pane's pid");
    let environ = fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/environ of claude: {e}"));
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    assert!(
        vars.iter()
            .any(|v| v.starts_with(b"ANTHROPIC_UNIX_SOCKET=/")),
        "claude was not given the broker's socket"
    );
    assert!(
        vars.contains(&&b"CLAUDE_CODE_OAUTH_TOKEN=ssh-placeholder"[..]),
        "claude was not given the placeholder"
    );
    assert!(
        !vars
            .iter()
            .any(|v| v.starts_with(b"CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR=")),
        "claude got a token descriptor"
    );
    assert!(
        token_piece(&environ, &w.token).is_none(),
        "the token is in the interactive claude's /proc/{pid}/environ"
    );
    // Its whole readable memory, read while the TUI runs (as root; as the same user
    // where ptrace allows it), holds no piece of the token either.
    match memory_with_token(pid, &w.token) {
        Some((read, found)) => {
            assert!(read > 16 << 20, "read only {read} bytes of claude's memory");
            assert!(
                found.is_none(),
                "a piece of the token is in the interactive claude's memory, in {found:?} ({read} bytes read)"
            );
        }
        None => assert!(
            nix::unistd::geteuid().as_raw() != 0,
            "root could not read /proc/{pid}/mem of claude"
        ),
    }

    // Keys sent while claude is still starting can be dropped: type again until the
    // input line shows the prompt (bounded; the fake answers whatever arrives).
    let prompt = "say pong please";
    let has_prompt = |s: &str| prompt_line(s).is_some_and(|l| l.contains(prompt));
    let mut typed = Err(String::new());
    for _ in 0..3 {
        tmux.type_text(prompt);
        typed = tmux.wait_for(Duration::from_secs(15), |s| stop(s) || has_prompt(s));
        if typed.is_ok() {
            break;
        }
    }
    let typed = typed
        .unwrap_or_else(|e| panic!("typed prompt never showed (ready screen was:\n{ready}): {e}"));
    check(&typed);

    // Likewise Enter: press it again if the prompt still sits unsent in the input line.
    let answer = format!("● {REPLY}");
    let wait_answer = |secs| {
        tmux.wait_for(Duration::from_secs(secs), |s| {
            stop(s) || s.contains(&answer)
        })
    };
    tmux.keys(&["Enter"]);
    let mut answered = wait_answer(30);
    for _ in 0..2 {
        if answered.is_ok() {
            break;
        }
        if has_prompt(&tmux.screen().text) {
            tmux.keys(&["Enter"]);
        }
        answered = wait_answer(60);
    }
    let screen = answered
        .unwrap_or_else(|e| panic!("no answer on screen: {e}\nrequests:\n{}", api.summary()));
    check(&screen);
    assert!(screen.contains(&answer));
    eprintln!("{test}: answered after {:.1?}", start.elapsed());
    drop(tmux);

    w.assert_answered_in_isolation(&api, &project);
}

/// Where in `hay` a 16-byte piece of the token's secret part (after `sk-ant-oat01-`)
/// appears, if anywhere.
fn token_piece(hay: &[u8], token: &str) -> Option<usize> {
    let secret = &token.as_bytes()[13..];
    secret
        .chunks(16)
        .filter(|c| c.len() == 16)
        .find_map(|piece| memchr::memmem::find(hay, piece))
}

/// Reads every resident page of `pid`'s readable mappings and returns how many bytes
/// were read and the first mapping that holds a piece of the token (`None` when
/// `/proc/<pid>/mem` cannot be opened). Goes by 1 MiB chunks, skipping those whose pages
/// `/proc/<pid>/pagemap` shows neither present nor swapped (node reserves tens of GB it
/// never touches); chunks overlap by 16 bytes so a piece across a boundary is found.
fn memory_with_token(pid: u32, token: &str) -> Option<(usize, Option<String>)> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 1 << 20;
    const PAGE: u64 = 4096;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mem = fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let pagemap = fs::File::open(format!("/proc/{pid}/pagemap")).ok();
    let mut read = 0;
    let mut buf = vec![0u8; (CHUNK + 16) as usize];
    let mut entries = vec![0u8; (CHUNK / PAGE * 8) as usize];
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut at = a;
        while at < b {
            let end = (at + CHUNK).min(b);
            let touched = pagemap.as_ref().is_none_or(|pm| {
                let n = ((end - at) / PAGE * 8) as usize;
                pm.read_exact_at(&mut entries[..n], at / PAGE * 8).is_err()
                    || entries[..n].chunks(8).any(|e| {
                        let v = u64::from_le_bytes(e.try_into().unwrap());
                        v & (0b11 << 62) != 0
                    })
            });
            if touched {
                let len = ((end + 16).min(b) - at) as usize;
                if mem.read_exact_at(&mut buf[..len], at).is_ok() {
                    read += len;
                    if token_piece(&buf[..len], token).is_some() {
                        return Some((read, Some(line.to_owned())));
                    }
                }
            }
            at = end;
        }
    }
    Some((read, None))
}

/// Text of claude's first-run dialogs (onboarding, its offline check, folder trust,
/// custom API key).
const DIALOG_MARKERS: &[&str] = &[
    "Do you trust",
    "trust this folder",
    "Quick safety check",
    "Accessing workspace",
    "Choose the text style",
    "Select login method",
    "Let's get started",
    "Unable to connect to Anthropic services",
    "Detected a custom API key",
    "Do you want to use this API key",
];

fn has_dialog(screen: &str) -> bool {
    DIALOG_MARKERS.iter().any(|m| screen.contains(m))
}

fn assert_no_dialog(screen: &str) {
    assert!(
        !has_dialog(screen),
        "a first-run dialog appeared:\n{screen}"
    );
}

/// The input line of claude's prompt box (the last line starting with its `❯`, or the
/// `>` of older releases, possibly inside a `│` box), if one is on screen.
fn prompt_line(screen: &str) -> Option<&str> {
    screen.lines().rev().find(|l| {
        let l = l.trim_start().trim_start_matches('│').trim_start();
        l.starts_with('❯') || l == ">" || l.starts_with("> ")
    })
}

#[test]
fn tui_in_a_never_seen_folder() {
    tui_case(
        "tui_in_a_never_seen_folder",
        |w| w.dir("fresh/project"),
        false,
    );
}

#[test]
fn tui_in_a_folder_reached_through_a_symlink() {
    tui_case(
        "tui_in_a_folder_reached_through_a_symlink",
        |w| {
            let real = w.dir("elsewhere/real-project");
            let link = w.root.join("link-to-project");
            symlink(&real, &link).unwrap();
            link
        },
        false,
    );
}

#[test]
fn tui_with_dash_c_through_a_symlink() {
    tui_case(
        "tui_with_dash_c_through_a_symlink",
        |w| {
            let real = w.dir("elsewhere/real-project");
            let linkdir = w.dir("links");
            symlink(&real, linkdir.join("project")).unwrap();
            linkdir.join("project")
        },
        true,
    );
}

/// Case 5 (+3): a stray `.credentials.json` in the scratch home is renamed aside before
/// claude starts; claude (even refused by the API) only ever sends the env token; no
/// credentials file comes back.
fn quarantine_case(test: &str, plant: impl FnOnce(&World, &Path) -> Planted) {
    let Some(w) = World::new(test) else { return };
    let dot_claude = w.precreate_home();
    let planted = plant(&w, &dot_claude.join(".credentials.json"));
    let work = w.dir("work");

    // Refused by the API: a reachable credentials file would be a fallback.
    let api = FakeApi::unauthorized();
    let run = w.print(&api, &work, &[], "say pong");
    assert_ne!(
        run.status.code(),
        Some(125),
        "claude-iso refused to run: {run}"
    );
    assert!(
        !api.requests().is_empty(),
        "claude sent no request at all: {run}"
    );
    w.assert_only_token(&api);
    assert!(
        fs::symlink_metadata(dot_claude.join(".credentials.json")).is_err(),
        "the stray .credentials.json is still in the scratch home after the launch: {run}"
    );
    let quarantined = quarantined(&dot_claude);
    assert_eq!(
        quarantined.len(),
        1,
        "expected one .credentials.json.quarantined-* entry, got {quarantined:?}"
    );
    let kept = &quarantined[0];
    match &planted {
        Planted::File(contents) => {
            assert!(!fs::symlink_metadata(kept).unwrap().file_type().is_symlink());
            assert_eq!(
                &fs::read_to_string(kept).unwrap(),
                contents,
                "quarantined file lost its contents"
            );
        }
        Planted::Link(target) => {
            assert_eq!(
                &fs::read_link(kept).expect("quarantined entry is no longer a symlink"),
                target
            );
        }
    }
    w.assert_decoy_unchanged();

    // Now answered: still only the env token, and no credentials file reappears.
    api.set_mode(Mode::Reply(REPLY.into()));
    let run = w.print(&api, &work, &[], "say pong");
    assert!(run.status.success(), "second launch failed: {run}");
    assert!(run.stdout.contains(REPLY), "no answer: {run}");
    w.assert_only_token(&api);
    assert!(
        fs::symlink_metadata(dot_claude.join(".credentials.json")).is_err(),
        "a .credentials.json reappeared in the scratch home"
    );
    assert_eq!(quarantined_count(&dot_claude), 1);
    w.assert_decoy_unchanged();
}

enum Planted {
    File(String),
    Link(PathBuf),
}

fn quarantined(dot_claude: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dot_claude)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".credentials.json.quarantined-"))
        })
        .collect();
    v.sort();
    v
}

fn quarantined_count(dot_claude: &Path) -> usize {
    quarantined(dot_claude).len()
}

#[test]
fn stray_credentials_file_is_quarantined() {
    quarantine_case("stray_credentials_file_is_quarantined", |_, path| {
        let contents = serde_json::json!({"claudeAiOauth": {
            "accessToken": format!("sk-ant-oat01-{}-stray-access", crate::support::world::DECOY_MARK),
            "refreshToken": format!("sk-ant-ort01-{}-stray-refresh", crate::support::world::DECOY_MARK),
            "expiresAt": 4_102_444_800_000u64,
            "scopes": ["user:inference", "user:profile"],
        }})
        .to_string();
        fs::write(path, &contents).unwrap();
        Planted::File(contents)
    });
}

#[test]
fn stray_credentials_symlink_is_quarantined() {
    quarantine_case("stray_credentials_symlink_is_quarantined", |w, path| {
        let target = w.decoy.join(".claude/.credentials.json");
        symlink(&target, path).unwrap();
        Planted::Link(target)
    });
}

/// Case 6 (+3): 16 launches at once into one scratch home, each in its own folder.
#[test]
fn sixteen_concurrent_launches_share_one_home() {
    const N: usize = 16;
    let Some(w) = World::new("sixteen_concurrent_launches_share_one_home") else {
        return;
    };
    let api = FakeApi::start(REPLY);
    // A pre-existing config whose keys must survive.
    w.precreate_home();
    let old = w.dir("old-project");
    fs::write(
        w.home.join(".claude.json"),
        serde_json::json!({
            "e2eMarker": {"kept": [1, 2, 3]},
            "projects": {old.to_str().unwrap(): {"hasTrustDialogAccepted": true, "e2eKey": "x"}},
        })
        .to_string(),
    )
    .unwrap();
    let folders: Vec<PathBuf> = (0..N)
        .map(|i| w.dir(&format!("projects/p{i:02}")))
        .collect();
    let start = Instant::now();
    let runs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = folders
            .iter()
            .map(|f| {
                let (w, api) = (&w, &api);
                s.spawn(move || w.print(api, &w.root, &["-C", f.to_str().unwrap()], "say pong"))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("{N} concurrent launches took {:.1?}", start.elapsed());
    for (f, run) in folders.iter().zip(&runs) {
        assert!(
            run.status.success() && run.stdout.contains(REPLY),
            "launch in {} did not answer: {run}",
            f.display()
        );
    }
    assert!(
        api.message_requests().len() >= N,
        "fewer than {N} POST /v1/messages:\n{}",
        api.summary()
    );
    w.assert_only_token(&api);
    w.assert_decoy_unchanged();
    for f in &folders {
        w.assert_trusted(f);
    }
    let json = w.claude_json();
    assert_eq!(
        json.get("e2eMarker"),
        Some(&serde_json::json!({"kept": [1, 2, 3]})),
        "a pre-existing key was lost"
    );
    let old_entry = &json["projects"][old.to_str().unwrap()];
    assert_eq!(old_entry["hasTrustDialogAccepted"], serde_json::json!(true));
    assert_eq!(old_entry["e2eKey"], serde_json::json!("x"));
}

/// Issue 14: with `--share .claude/commands`, the interactive claude offers a custom
/// slash command from the real home's `commands/` and runs it; nothing else of the real
/// home is read (its credentials, settings and memory stay out) and nothing is changed.
#[test]
fn tui_shows_a_shared_custom_command() {
    let Some(mut w) = World::new("tui_shows_a_shared_custom_command") else {
        return;
    };
    w.add_to_decoy(
        ".claude/commands/iso-hello.md",
        "---\ndescription: Greets from the real home\n---\nReply with ISO-SHARED-COMMAND-BODY.\n",
    );
    let api = FakeApi::start(REPLY);
    let project = w.dir("project");
    let argv: Vec<String> = vec![
        crate::support::world::CLAUDE_ISO.into(),
        "--env-file".into(),
        w.env_file.to_string_lossy().into_owned(),
        "--home".into(),
        w.home.to_string_lossy().into_owned(),
        "--share".into(),
        ".claude/commands".into(),
        "--".into(),
        "claude".into(),
    ];
    let mut env = w.caller_env(&api);
    env.push(("PWD".into(), project.to_string_lossy().into_owned()));
    let tmux = Tmux::start(&w.root.join("tmux"), &env, &project, &argv, 120, 40);
    let ready = tmux
        .wait_for(Duration::from_secs(90), |s| {
            has_dialog(s) || (s.contains("Claude Code v") && prompt_line(s).is_some())
        })
        .unwrap_or_else(|e| panic!("claude never reached its prompt: {e}"));
    assert_no_dialog(&ready);

    let mut listed = Err(String::new());
    for _ in 0..3 {
        tmux.type_text("/iso-hel");
        listed = tmux.wait_for(Duration::from_secs(15), |s| {
            s.contains("Greets from the real home")
        });
        if listed.is_ok() {
            break;
        }
        tmux.keys(&["C-u"]);
    }
    let listed = listed.unwrap_or_else(|e| panic!("the shared command was not offered: {e}"));
    assert!(listed.contains("/iso-hello"), "{listed}");

    // Run it: its body (from the real home's file) reaches the API.
    let answer = format!("● {REPLY}");
    let sent = |api: &FakeApi| {
        api.message_requests()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("ISO-SHARED-COMMAND-BODY"))
    };
    let mut done = Err(String::new());
    for _ in 0..3 {
        tmux.keys(&["Enter"]);
        done = tmux.wait_for(Duration::from_secs(30), |s| {
            s.contains(&answer) && sent(&api)
        });
        if done.is_ok() {
            break;
        }
    }
    done.unwrap_or_else(|e| panic!("the command did not run: {e}\nrequests:\n{}", api.summary()));
    drop(tmux);

    w.assert_only_token(&api);
    w.assert_decoy_unchanged_but_read(&[".claude/commands"]);
    assert!(
        fs::symlink_metadata(w.home.join(".claude/.credentials.json")).is_err(),
        "a credentials file appeared in the scratch home"
    );
}

/// The control for the TUI cases' memory check: it finds a token where there is one (in
/// a child's environment block, on its stack).
#[test]
fn the_memory_check_finds_a_token_where_there_is_one() {
    let token = format!("sk-ant-oat01-{}AA", "MemCheckControl-x7".repeat(5));
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .env_clear()
        .env("SOME_VAR", &token)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let found = memory_with_token(child.id(), &token);
    let _ = child.kill();
    let _ = child.wait();
    let (read, at) = found.expect("cannot open the child's /proc/<pid>/mem");
    assert!(read > 0);
    assert!(
        at.is_some_and(|m| m.ends_with("[stack]")),
        "not found in {read} bytes"
    );
}
