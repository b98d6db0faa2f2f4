//! `--share` refusals by what a shared file really is (issue 14, second review): a hard
//! link of a credential, a kernel file or a FIFO, an unreadable file, claude-iso's own
//! bookkeeping names; and `homes` listing what a share set aside anywhere in its trees.
//! The built binary, a sandbox per test, as root and as an unprivileged user.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::support::sandbox::{
    Test, chmod, is_root, mkdir, named, sh, state_dir, state_test, tree, write_mode,
};
use serde_json::Value;

/// The real credentials, with a secret that must never show.
const OAUTH: &str = "sk-ant-oat01-Xq7Jw2Pz9Kv_Lr4Tn8Yb3Mc6Hd1Gf5Se0Wa-Qu2Io9Ep7Zx4Cv1Bn8Mk3Jh6Gl5Fd0Sa9Qw2Er7Ty4Ui1Op8As3Df6Gh5Jk0LA";

/// A real home with the user's own claude and git config, and real credentials.
fn real_config(t: &Test) {
    let real = t.real_home();
    mkdir(&real.join(".claude/agents"));
    mkdir(&real.join(".config/git"));
    write_mode(&real.join(".claude/CLAUDE.md"), "# Haiku.\n", 0o644);
    write_mode(&real.join(".claude/agents/reviewer.md"), "Review.\n", 0o644);
    write_mode(
        &real.join(".claude/.credentials.json"),
        format!("{{\"claudeAiOauth\":{{\"accessToken\":\"{OAUTH}\"}}}}"),
        0o600,
    );
    write_mode(&real.join(".gitconfig"), "[user]\n\tname = Me\n", 0o644);
    write_mode(&real.join(".config/git/ignore"), "*.swp\n", 0o644);
}

/// Refused before anything is created: 125, one line naming each of `needles`, no
/// command run, nothing of the state directory made, no secret shown.
#[track_caller]
fn refused(t: &Test, args: &[&str], needles: &[&str]) {
    let mut all = vec!["--name", "c"];
    all.extend_from_slice(args);
    for dry in [true, false] {
        let mut argv = all.clone();
        if dry {
            argv.push("--dry-run");
        }
        let out = t.spawn_with(&argv).wait();
        out.status(125).probe_not_run().no_secrets();
        for n in needles {
            out.one_line_error(n);
        }
        assert!(!state_dir(t).exists(), "a refused share created {argv:?}");
    }
}

fn hard_link(from: &Path, to: &Path) {
    mkdir(to.parent().unwrap());
    fs::hard_link(from, to).unwrap();
}

// ---------------------------------------------------------------------------------------
// D1: a hard link is judged by its other names
// ---------------------------------------------------------------------------------------

#[test]
fn a_hard_link_of_the_real_credentials_is_refused() {
    let t = state_test().secret(OAUTH);
    real_config(&t);
    let real = t.real_home();
    let creds = real.join(".claude/.credentials.json");
    let link = real.join(".claude/agents/hard.md");
    hard_link(&creds, &link);
    let before = tree(&real);
    refused(
        &t,
        &["--share", "default"],
        &[link.to_str().unwrap(), "hard link", creds.to_str().unwrap()],
    );
    assert_eq!(tree(&real), before);
    // Named on its own, at the top of the home, or deep in another shared tree.
    fs::remove_file(&link).unwrap();
    hard_link(&creds, &real.join("notes.md"));
    refused(
        &t,
        &["--share", "notes.md"],
        &["notes.md", ".credentials.json"],
    );
    fs::remove_file(real.join("notes.md")).unwrap();
    hard_link(&creds, &real.join(".config/git/deep/er/x"));
    refused(&t, &["--share", ".config/git"], &["/.config/git/deep/er/x"]);
}

#[test]
fn a_hard_link_of_any_credential_claude_iso_knows_is_refused() {
    // (what to link, where it is relative to the sandbox, variable naming a dir of it)
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("realhome/.claude/.device-keys.json", None),
        ("realhome/.claude.json", None),
        ("realhome/.config/anthropic/credentials/default.json", None),
        (
            "anthropic-cfg/profiles.json",
            Some(("ANTHROPIC_CONFIG_DIR", "anthropic-cfg")),
        ),
        (
            "cfgdir/.credentials.json",
            Some(("CLAUDE_CONFIG_DIR", "cfgdir")),
        ),
        (
            "cfgdir/settings.json",
            Some(("CLAUDE_CONFIG_DIR", "cfgdir")),
        ),
        ("realhome/.config/claude-iso/token.env", None),
        ("realhome/.netrc", None),
        ("realhome/.ssh/id_ed25519", None),
    ];
    for (file, var) in cases {
        let t = state_test().secret(OAUTH);
        real_config(&t);
        let t = match var {
            Some((v, dir)) => {
                let at = t.path(dir);
                t.env(*v, at)
            }
            None => t,
        };
        let target = t.path(file);
        mkdir(target.parent().unwrap());
        write_mode(&target, format!("{{\"k\":\"{OAUTH}\"}}"), 0o600);
        let link = t.real_home().join(".claude/agents/linked.md");
        hard_link(&target, &link);
        refused(
            &t,
            &["--share", "default"],
            &["agents/linked.md", "hard link", target.to_str().unwrap()],
        );
    }
}

#[test]
fn a_hard_link_of_the_env_file_in_a_shared_directory_is_refused() {
    let t = state_test();
    real_config(&t);
    let stuff = mkdir(&t.real_home().join("stuff"));
    write_mode(&stuff.join("readme.txt"), "hi\n", 0o644);
    hard_link(&t.env_file(), &stuff.join("notes.txt"));
    refused(
        &t,
        &["--share", "stuff"],
        &["stuff/notes.txt", "token file"],
    );
    // The token file claude-iso would find by itself, and one set aside by `token set`.
    fs::remove_file(stuff.join("notes.txt")).unwrap();
    let own = mkdir(&t.real_home().join(".config/claude-iso")).join("token.env");
    write_mode(
        &own,
        format!(
            "CLAUDE_CODE_OAUTH_TOKEN={}\n",
            crate::support::sandbox::TOKEN_B
        ),
        0o600,
    );
    hard_link(&own, &stuff.join("notes.txt"));
    let t = t.secret(crate::support::sandbox::TOKEN_B);
    refused(&t, &["--share", "stuff"], &["stuff/notes.txt", "token.env"]);
    fs::remove_file(stuff.join("notes.txt")).unwrap();
    let replaced = own.with_file_name("token.env.replaced-1700000000-1");
    write_mode(
        &replaced,
        format!(
            "CLAUDE_CODE_OAUTH_TOKEN={}\n",
            crate::support::sandbox::TOKEN_C
        ),
        0o600,
    );
    hard_link(&replaced, &stuff.join("old.txt"));
    let t = t.secret(crate::support::sandbox::TOKEN_C);
    refused(&t, &["--share", "stuff"], &["stuff/old.txt", "replaced-"]);
}

#[test]
fn a_hard_link_of_a_quarantined_credentials_file_is_refused() {
    let t = state_test().secret(OAUTH);
    real_config(&t);
    t.spawn_with(["--name", "q"]).wait().success();
    let q = named(&t, "q").join(".claude/.credentials.json.quarantined-1700000000-1");
    mkdir(q.parent().unwrap());
    write_mode(&q, format!("{{\"k\":\"{OAUTH}\"}}"), 0o600);
    hard_link(&q, &t.real_home().join(".claude/agents/q.md"));
    t.reset_probe();
    t.spawn_with(["--name", "q", "--share", "default"])
        .wait()
        .status(125)
        .one_line_error("quarantined-")
        .probe_not_run()
        .no_secrets();
    assert!(!named(&t, "q").join(".claude/agents").exists());
}

#[test]
fn a_hard_link_into_what_the_mask_hides_is_refused_unless_shared_too() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    write_mode(
        &real.join(".claude/history.jsonl"),
        "{\"p\":\"secret project\"}\n",
        0o600,
    );
    hard_link(
        &real.join(".claude/history.jsonl"),
        &real.join(".config/git/hist"),
    );
    refused(
        &t,
        &["--share", ".config/git"],
        &["/.config/git/hist", "history.jsonl", "which the mask hides"],
    );
    fs::remove_file(real.join(".config/git/hist")).unwrap();
    // A second name of a file that is shared itself, and of one outside what the mask
    // hides, come in as they are.
    hard_link(
        &real.join(".claude/CLAUDE.md"),
        &real.join(".claude/agents/haiku.md"),
    );
    let elsewhere = mkdir(&t.path("elsewhere")).join("notes.md");
    write_mode(&elsewhere, "notes\n", 0o644);
    hard_link(&elsewhere, &real.join(".config/git/notes.md"));
    let out_file = t.path("out");
    let script = format!(
        "cat \"$HOME/.claude/agents/haiku.md\" \"$HOME/.config/git/notes.md\" > '{}'",
        out_file.display()
    );
    t.spawn_with([
        "--name",
        "s",
        "--share",
        "default",
        "--",
        "/bin/sh",
        "-c",
        script.as_str(),
    ])
    .wait()
    .status(0)
    .stderr("");
    assert_eq!(fs::read_to_string(&out_file).unwrap(), "# Haiku.\nnotes\n");
}

// ---------------------------------------------------------------------------------------
// D2: kernel files and special files are never read
// ---------------------------------------------------------------------------------------

#[test]
fn a_link_to_a_kernel_file_is_refused_and_never_read() {
    let api_key = "sk-ant-api03-ScrubbedFromTheChildButInClaudeIsoOwnEnviron0123456789abcdef";
    let t = state_test()
        .secret(api_key)
        .env("ANTHROPIC_API_KEY", api_key);
    real_config(&t);
    let real = t.real_home();
    let agents = real.join(".claude/agents");
    for (target, needle) in [
        ("/proc/self/environ", "/proc/"),
        ("/proc/self", "/proc/"),
        ("/proc/version", "/proc/version"),
        ("/sys/kernel", "/sys/kernel"),
        ("/dev/null", "/dev/null"),
    ] {
        let link = agents.join("env.md");
        symlink(target, &link).unwrap();
        refused(
            &t,
            &["--share", "default"],
            &[link.to_str().unwrap(), needle],
        );
        refused(
            &t,
            &["--share", ".claude/agents/env.md"],
            &["env.md", needle],
        );
        fs::remove_file(&link).unwrap();
    }
}

#[test]
fn a_fifo_in_a_shared_directory_is_refused_without_blocking() {
    let t = state_test();
    real_config(&t);
    let fifo = t.real_home().join(".config/git/pipe");
    sh(&format!("mkfifo '{}'", fifo.display()));
    refused(
        &t,
        &["--share", "default"],
        &[fifo.to_str().unwrap(), "FIFO"],
    );
    refused(&t, &["--share", ".config/git/pipe"], &["pipe", "FIFO"]);
}

// ---------------------------------------------------------------------------------------
// D4: dry run and launch agree, and a refusal creates nothing
// ---------------------------------------------------------------------------------------

#[test]
fn an_unreadable_shared_file_is_refused_by_dry_run_and_launch_alike() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    if is_root() {
        // Root reads any mode: what the dry run accepts, the launch copies.
        chmod(&real.join(".claude/CLAUDE.md"), 0o000);
        t.spawn_with(["--name", "c", "--share", "default", "--dry-run"])
            .wait()
            .status(0);
        t.spawn_with(["--name", "c", "--share", "default"])
            .wait()
            .success();
        assert_eq!(
            fs::read_to_string(named(&t, "c").join(".claude/CLAUDE.md")).unwrap(),
            "# Haiku.\n"
        );
        return;
    }
    let md = real.join(".claude/CLAUDE.md");
    chmod(&md, 0o000);
    refused(
        &t,
        &["--share", "default"],
        &[md.to_str().unwrap(), "cannot read", "chmod"],
    );
    refused(
        &t,
        &["--share", ".claude/CLAUDE.md"],
        &["CLAUDE.md", "cannot read"],
    );
    chmod(&md, 0o644);
    // A directory that cannot be listed, or entered.
    let agents = real.join(".claude/agents");
    for mode in [0o000, 0o600] {
        chmod(&agents, mode);
        refused(&t, &["--share", "default"], &["agents", "cannot read"]);
    }
    chmod(&agents, 0o755);
}

#[test]
fn a_tree_too_deep_is_refused_by_dry_run_and_launch_alike() {
    let t = state_test();
    real_config(&t);
    let mut deep = t.real_home().join(".config/git");
    for _ in 0..40 {
        deep = deep.join("d");
    }
    mkdir(&deep);
    write_mode(&deep.join("f"), "x\n", 0o644);
    refused(&t, &["--share", "default"], &["too deep"]);
}

// ---------------------------------------------------------------------------------------
// D7: claude-iso's own names
// ---------------------------------------------------------------------------------------

#[test]
fn claude_iso_bookkeeping_names_are_never_shared() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    for name in [
        ".claude-iso.lock",
        ".claude-iso.shared",
        ".claude-iso-share.1.0.tmp",
    ] {
        write_mode(&real.join(name), "mine\n", 0o644);
        let before = tree(&real);
        refused(&t, &["--share", name], &[name, "claude-iso"]);
        let tilde = format!("~/{name}");
        refused(&t, &["--share", tilde.as_str()], &[name]);
        assert_eq!(tree(&real), before);
    }
}

// ---------------------------------------------------------------------------------------
// D5: homes lists what a share set aside anywhere in its trees
// ---------------------------------------------------------------------------------------

fn homes_json(t: &Test) -> Value {
    let out = std::process::Command::new(crate::support::sandbox::BIN)
        .args(["homes", "--json"])
        .env_clear()
        .envs(t.env_vars().iter().map(|(k, v)| (k, v)))
        .current_dir(t.work())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn homes_lists_copies_set_aside_deep_in_shared_trees() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    mkdir(&real.join(".claude/agents/team"));
    write_mode(&real.join(".claude/agents/team/a.md"), "A\n", 0o644);
    mkdir(&real.join("stuff/sub"));
    write_mode(&real.join("stuff/sub/n.txt"), "N\n", 0o644);
    let t = t.args(["--name", "s", "--share", "default", "--share", "stuff"]);
    t.run().success();
    let home = named(&t, "s");
    // The command changes three copies (the owner can make them writable again).
    for rel in [
        ".claude/agents/team/a.md",
        ".config/git/ignore",
        "stuff/sub/n.txt",
    ] {
        let file = home.join(rel);
        chmod(file.parent().unwrap(), 0o755);
        chmod(&file, 0o644);
        fs::write(&file, "changed\n").unwrap();
    }
    t.reset_probe();
    t.run().success();
    let json = homes_json(&t);
    let info = json["homes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "s")
        .unwrap()
        .clone();
    let aside: Vec<&str> = info["set_aside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for prefix in [
        ".claude/agents/team/a.md.unshared-",
        ".config/git/ignore.unshared-",
        "stuff/sub/n.txt.unshared-",
    ] {
        assert_eq!(
            aside.iter().filter(|a| a.starts_with(prefix)).count(),
            1,
            "{prefix} in {aside:?}"
        );
    }
    assert_eq!(aside.len(), 3, "{aside:?}");
}

// ---------------------------------------------------------------------------------------
// Third review: another home's credentials, by a hard link, a symlink or a name
// ---------------------------------------------------------------------------------------

/// The default scratch home (`$XDG_STATE_HOME/claude-iso/home`).
fn default_home(t: &Test) -> PathBuf {
    state_dir(t).join("home")
}

/// A named home `name`, made by a launch, holding a quarantined credentials file;
/// returns that file.
fn home_with_quarantined(t: &Test, name: &str) -> PathBuf {
    t.spawn_with(["--name", name]).wait().success();
    t.reset_probe();
    let q = named(t, name).join(".claude/.credentials.json.quarantined-1700000000-1");
    mkdir(q.parent().unwrap());
    write_mode(&q, format!("{{\"k\":\"{OAUTH}\"}}"), 0o600);
    q
}

/// 125 with one line naming each of `needles`, dry run and launch alike, the command
/// not run, no secret shown, and the scratch home unchanged (`home`, which may exist).
#[track_caller]
fn refused_in(t: &Test, home: &Path, args: &[&str], needles: &[&str]) {
    let before = home.exists().then(|| tree(home));
    for dry in [true, false] {
        let mut argv = args.to_vec();
        if dry {
            argv.push("--dry-run");
        }
        let out = t.spawn_with(&argv).wait();
        out.status(125).probe_not_run().no_secrets();
        for n in needles {
            out.one_line_error(n);
        }
        assert_eq!(home.exists().then(|| tree(home)), before, "{argv:?}");
    }
}

/// Every file below `dir` whose name holds `needle`.
fn named_like(dir: &Path, needle: &str) -> Vec<PathBuf> {
    tree(dir)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(needle))
        .collect()
}

#[test]
fn a_hard_link_of_another_homes_quarantined_credentials_is_refused() {
    let t = state_test().secret(OAUTH);
    real_config(&t);
    let q = home_with_quarantined(&t, "n1");
    let shared = mkdir(&t.real_home().join("shared"));
    hard_link(&q, &shared.join("f"));
    write_mode(&shared.join("ok.txt"), "ok\n", 0o644);
    // From the default home, and from another named home; the file and its directory.
    for (home, name) in [(default_home(&t), None), (named(&t, "n2"), Some("n2"))] {
        for share in ["shared/f", "shared"] {
            let mut args = vec!["--share", share];
            if let Some(n) = name {
                args.extend(["--name", n]);
            }
            refused_in(
                &t,
                &home,
                &args,
                &["shared/f", "hard link", q.to_str().unwrap(), "quarantined"],
            );
        }
        assert!(named_like(&home, "quarantined").is_empty());
    }
}

#[test]
fn a_quarantined_file_of_this_home_linked_to_a_shared_file_is_refused_and_labelled() {
    // The reverse: the shared file came first; a quarantined credentials file of the
    // home being launched (whose label comes from the mask's list) is its other name.
    let t = state_test().secret(OAUTH);
    real_config(&t);
    t.spawn_with(["--name", "h"]).wait().success();
    t.reset_probe();
    let shared = mkdir(&t.real_home().join("shared"));
    write_mode(&shared.join("f"), format!("{{\"k\":\"{OAUTH}\"}}"), 0o600);
    let q = named(&t, "h").join(".claude/.credentials.json.quarantined-1700000000-2");
    mkdir(q.parent().unwrap());
    fs::hard_link(shared.join("f"), &q).unwrap();
    for home in ["h", "other"] {
        let out = t.spawn_with(["--name", home, "--share", "shared/f"]).wait();
        out.status(125)
            .one_line_error("quarantined")
            .probe_not_run()
            .no_secrets();
        out.stderr_lacks("(a token file)");
    }
}

#[test]
fn a_symlink_into_claude_isos_homes_is_refused() {
    let t = state_test().secret(OAUTH);
    real_config(&t);
    let q = home_with_quarantined(&t, "n1");
    let real = t.real_home();
    let claude = named(&t, "n1").join(".claude");
    // A link to another home's .claude, to a home, to the homes, to the state directory,
    // to the quarantined file itself; at the top of a share or inside a shared directory.
    let targets = [
        claude.clone(),
        named(&t, "n1"),
        state_dir(&t).join("homes"),
        state_dir(&t),
        q.clone(),
    ];
    for target in &targets {
        symlink(target, real.join("n1c")).unwrap();
        refused_in(
            &t,
            &default_home(&t),
            &["--share", "n1c"],
            &["n1c", "never shared"],
        );
        fs::remove_file(real.join("n1c")).unwrap();
        let dd = mkdir(&real.join("dd"));
        symlink(target, dd.join("l")).unwrap();
        refused_in(
            &t,
            &default_home(&t),
            &["--share", "dd"],
            &["dd/l", "never shared"],
        );
        fs::remove_dir_all(&dd).unwrap();
    }
    // Nor the default home from a named one, nor the home being launched itself.
    t.run().success();
    t.reset_probe();
    symlink(default_home(&t), real.join("dh")).unwrap();
    symlink(named(&t, "n1"), real.join("self")).unwrap();
    for share in ["dh", "self"] {
        refused_in(
            &t,
            &named(&t, "n1"),
            &["--name", "n1", "--share", share],
            &[share, "scratch home"],
        );
    }
    assert!(named_like(&default_home(&t), "quarantined").is_empty());
}

#[test]
fn a_share_that_holds_claude_isos_homes_is_refused() {
    // $XDG_STATE_HOME inside the real home (its usual place): sharing a directory above
    // it would carry every scratch home in.
    let t = Test::new().no_home();
    let state = t.real_home().join(".local/state");
    let t = t.env("XDG_STATE_HOME", &state).secret(OAUTH);
    real_config(&t);
    t.spawn_with(["--name", "n1"]).wait().success();
    t.reset_probe();
    let home = state.join("claude-iso/home");
    for share in [".local", ".local/state", ".local/state/claude-iso/homes/n1"] {
        refused_in(&t, &home, &["--share", share], &[share, "scratch home"]);
    }
}

#[test]
fn files_named_like_credentials_are_refused_anywhere_in_a_share() {
    let t = state_test().secret(OAUTH);
    real_config(&t);
    let real = t.real_home();
    for name in [
        ".credentials.json.quarantined-1700000000-1",
        ".credentials.json.bak",
        ".device-keys.json.old",
        "token.env.replaced-1700000000-3",
        "claude-oauth.env.replaced-1700000000-0",
    ] {
        // A plain file (not a link of anything), deep in a shared directory, or named.
        let deep = mkdir(&real.join("stuff/sub"));
        write_mode(&deep.join(name), format!("{{\"k\":\"{OAUTH}\"}}"), 0o600);
        refused(&t, &["--share", "stuff"], &[name, "never shared"]);
        let named_path = format!("stuff/sub/{name}");
        refused(
            &t,
            &["--share", named_path.as_str()],
            &[name, "never shared"],
        );
        fs::remove_dir_all(real.join("stuff")).unwrap();
    }
}

#[test]
fn claude_iso_names_are_refused_at_any_depth_of_a_share() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    for name in [".claude-iso.shared", ".claude-iso.lock", ".claude-iso-x"] {
        let sub = mkdir(&real.join("dd/sub"));
        write_mode(&sub.join(name), "mine\n", 0o644);
        refused(&t, &["--share", "dd"], &[name, "claude-iso's own"]);
        let deep = format!("dd/sub/{name}");
        refused(&t, &["--share", deep.as_str()], &[name, "claude-iso's own"]);
        fs::remove_dir_all(real.join("dd")).unwrap();
    }
}

#[test]
fn a_dropped_share_takes_every_copy_of_ours_with_it() {
    // A copy whose name looks set aside (`*.<tag>-<time>-<n>`) is still ours: dropping
    // the share removes it with the rest (it was kept, and its record lost, before).
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    let dd = mkdir(&real.join("dd"));
    write_mode(&dd.join("notes.unshared-1700000000-1"), "n\n", 0o644);
    write_mode(&dd.join("plain.txt"), "p\n", 0o644);
    let home = default_home(&t);
    t.spawn_with(["--share", "dd"]).wait().success();
    assert!(home.join("dd/notes.unshared-1700000000-1").is_file());
    t.reset_probe();
    t.spawn_with(["--share", ".gitconfig"]).wait().success();
    assert!(!home.join("dd").exists(), "{:?}", tree(&home.join("dd")));
    let record = fs::read_to_string(home.join(".claude-iso.shared")).unwrap();
    assert!(!record.contains("dd"), "{record}");
}

/// A shared settings file is compared with the environment the command will get: a
/// destination equal to a caller's value that `--unset` removes is not the caller's own
/// any more, and is refused like any other.
#[test]
fn a_shared_settings_file_is_judged_against_the_commands_environment() {
    let sandbox = || {
        let t = state_test().env("ANTHROPIC_BASE_URL", "http://127.0.0.1:18761");
        real_config(&t);
        write_mode(
            &t.real_home().join(".claude/settings.json"),
            r#"{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:18761"}}"#,
            0o644,
        );
        t
    };
    // The caller's own destination, kept: allowed.
    sandbox()
        .spawn_with(["--name", "c", "--share", ".claude/settings.json"])
        .wait()
        .success();
    // Removed from the command's environment: the file's entry is a redirect now.
    refused(
        &sandbox(),
        &[
            "--share",
            ".claude/settings.json",
            "--unset",
            "ANTHROPIC_BASE_URL",
        ],
        &["settings.json", "ANTHROPIC_BASE_URL", "127.0.0.1:18761"],
    );
}

/// Found by the third review: a settings copy an earlier `--share` launch left (allowed
/// on purpose) made every later launch without it exit 125, though the launch removes
/// that copy before the command runs. claude-iso's own unchanged copies are not judged
/// as the scratch home's settings; dry run and launch agree.
#[test]
fn a_settings_copy_the_launch_removes_does_not_block_it() {
    let t = state_test();
    real_config(&t);
    write_mode(
        &t.real_home().join(".claude/settings.json"),
        r#"{"apiKeyHelper":"echo k"}"#,
        0o644,
    );
    t.spawn_with(["--name", "c", "--share", "default", "--allow-project-auth"])
        .wait()
        .success();
    let copy = named(&t, "c").join(".claude/settings.json");
    assert!(copy.exists(), "the shared copy was not made");
    for dry in [true, false] {
        let mut argv = vec!["--name", "c"];
        if dry {
            argv.push("--dry-run");
        }
        t.spawn_with(&argv).wait().status(0);
    }
    assert!(!copy.exists(), "the launch without --share kept the copy");
    // Shared again without the opt-in: the source is judged, and refused.
    // Found by the same review: the line named no host ("requests go to )").
    t.spawn_with(["--name", "c", "--share", "default"])
        .wait()
        .status(125)
        .one_line_error("apiKeyHelper")
        .one_line_error("requests go to https://api.anthropic.com");
}

/// Found by the third review: the shared copies could be changed during the session
/// (`sed -i` renames over one, `chmod u+w` then a write; root ignores modes; `git config
/// --global` writes a new file and renames it over `.gitconfig`, done here by hand so that
/// no missing tool can make the check pass). Under the
/// mask each copy is bound read-only onto itself: every change fails, as root too.
#[test]
fn under_the_mask_shared_copies_cannot_be_changed() {
    let t = state_test();
    real_config(&t);
    let script = t.path("try.sh");
    crate::support::sandbox::write_executable(
        &script,
        "#!/bin/sh\nc=\"$HOME/.claude\"\n\
         (sed -i s/Haiku/EVIL/ \"$c/CLAUDE.md\") 2>/dev/null && echo SED-OK || echo SED-REFUSED\n\
         (chmod u+w \"$c/CLAUDE.md\" && echo x >> \"$c/CLAUDE.md\") 2>/dev/null && echo APPEND-OK || echo APPEND-REFUSED\n\
         (echo x > \"$c/agents/new.md\") 2>/dev/null && echo CREATE-OK || echo CREATE-REFUSED\n\
         (mv \"$c/CLAUDE.md\" \"$c/moved.md\") 2>/dev/null && echo MOVE-OK || echo MOVE-REFUSED\n\
         (echo '[user]' > \"$HOME/.gitconfig.new\" && mv \"$HOME/.gitconfig.new\" \"$HOME/.gitconfig\") 2>/dev/null && echo GIT-OK || echo GIT-REFUSED\n\
         cat \"$c/CLAUDE.md\"\n",
    );
    let t = t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.spawn_with(["--name", "c", "--share", "default"]).wait();
    out.status(0);
    let said = out.stdout_text();
    for refused in [
        "SED-REFUSED",
        "APPEND-REFUSED",
        "CREATE-REFUSED",
        "MOVE-REFUSED",
        "GIT-REFUSED",
    ] {
        assert!(said.contains(refused), "{refused}: {said}");
    }
    assert!(said.contains("# Haiku."), "{said}");
    assert_eq!(
        fs::read_to_string(t.real_home().join(".claude/CLAUDE.md")).unwrap(),
        "# Haiku.\n"
    );
    assert_eq!(
        fs::read_to_string(named(&t, "c").join(".claude/CLAUDE.md")).unwrap(),
        "# Haiku.\n"
    );
}

/// Found by the fourth review: a claude-iso started inside a session that shares files,
/// in that session's own home (the default home, inherited), tried to remove the outer
/// run's copies — read-only mounts under its mask — and exited 125. It leaves them as
/// they are (and says so when it was asked to share).
#[test]
fn a_nested_run_in_the_outer_home_leaves_its_shares_alone() {
    let t = state_test();
    real_config(&t);
    let inner_token = t.path("inner.env");
    write_mode(
        &inner_token,
        format!(
            "CLAUDE_CODE_OAUTH_TOKEN={}\n",
            crate::support::sandbox::TOKEN
        ),
        0o600,
    );
    let script = t.path("nested.sh");
    crate::support::sandbox::write_executable(
        &script,
        &format!(
            "#!/bin/sh\n'{bin}' --env-file '{tok}' -q -- /bin/true\necho \"inner: $?\"\n'{bin}' --env-file '{tok}' --share .claude/CLAUDE.md -- /bin/true\necho \"inner shared: $?\"\ncat \"$HOME/.claude/CLAUDE.md\"\n",
            bin = crate::support::sandbox::BIN,
            tok = inner_token.display(),
        ),
    );
    let t = t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.spawn_with(["--share", ".claude/CLAUDE.md"]).wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(
        said.contains("inner: 0") && said.contains("inner shared: 0"),
        "{said}\n{}",
        out.stderr_text()
    );
    assert!(said.contains("# Haiku."), "{said}");
    assert!(
        out.stderr_text().contains("in use"),
        "{}",
        out.stderr_text()
    );
}

/// Found by the fourth review: one share inside another (`--share .claude/agents
/// --share .claude/agents/a.md`, or `default` and a file it carries) left the home in a
/// state every later launch refused. It is refused at once, before anything is made.
#[test]
fn a_share_inside_another_is_refused() {
    let t = state_test();
    real_config(&t);
    refused(
        &t,
        &[
            "--share",
            ".claude/agents",
            "--share",
            ".claude/agents/reviewer.md",
        ],
        &["inside .claude/agents", "shared already"],
    );
    refused(
        &t,
        &[
            "--share",
            "default",
            "--share",
            ".claude/agents/reviewer.md",
        ],
        &["inside .claude/agents", "by default"],
    );
}

/// `--share default` where claude left an empty `.gitconfig` (a launch without the share
/// ran in between): the empty file holds nothing, so the copy replaces it without a
/// warning and without a set-aside file, launch after launch. A file with content in
/// the way is still kept aside (issue 24).
#[test]
fn an_empty_file_in_the_way_of_a_shared_copy_is_replaced_silently() {
    let t = state_test();
    real_config(&t);
    let home = default_home(&t);
    t.spawn_with(["--share", "default"]).wait().success();
    for _ in 0..2 {
        // Claude, without the share, leaves an empty .gitconfig behind.
        t.spawn_with(Vec::<&str>::new()).wait().success();
        assert!(!home.join(".gitconfig").exists());
        write_mode(&home.join(".gitconfig"), "", 0o644);
        t.reset_probe();
        let out = t.spawn_with(["--share", "default"]).wait();
        out.success().stderr("");
        assert_eq!(
            fs::read_to_string(home.join(".gitconfig")).unwrap(),
            "[user]\n\tname = Me\n"
        );
        let aside: Vec<String> = crate::support::sandbox::names_with_prefix(&home, ".gitconfig.");
        assert!(aside.is_empty(), "{aside:?}");
    }
    // Content in the way is kept.
    fs::remove_file(home.join(".gitconfig")).unwrap();
    write_mode(&home.join(".gitconfig"), "[user]\n\tname = Other\n", 0o644);
    let out = t.spawn_with(["--share", "default"]).wait();
    out.success()
        .stderr_contains("was in the way of a shared copy");
    assert_eq!(
        crate::support::sandbox::names_with_prefix(&home, ".gitconfig.unshared-").len(),
        1
    );
}
