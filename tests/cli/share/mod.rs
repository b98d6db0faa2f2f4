//! `--share` (issue 14): the real home's configuration read as it is there and never
//! changed, copies that follow it and go when unshared, credential files and settings
//! that bring their own credential refused, `--dry-run` listing what would be shared.
//! The refusals by what a shared file really is are in [`refusals`].

mod refusals;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::support::sandbox::{
    Test, is_root, mkdir, mode_of, named, state_dir, state_test, tree, write_mode,
};

// ---------------------------------------------------------------------------------------
// --share
// ---------------------------------------------------------------------------------------

/// A real home with the user's own claude and git config.
fn real_config(t: &Test) {
    let real = t.real_home();
    mkdir(&real.join(".claude/agents"));
    mkdir(&real.join(".claude/commands/team"));
    mkdir(&real.join(".config/git"));
    write_mode(
        &real.join(".claude/CLAUDE.md"),
        "# Always answer in haiku.\n",
        0o644,
    );
    write_mode(
        &real.join(".claude/agents/reviewer.md"),
        "---\nname: reviewer\n---\nReview.\n",
        0o644,
    );
    write_mode(
        &real.join(".claude/commands/team/hello.md"),
        "Say hello.\n",
        0o644,
    );
    write_mode(
        &real.join(".claude/settings.json"),
        "{\"theme\":\"dark\"}\n",
        0o644,
    );
    write_mode(
        &real.join(".claude/.credentials.json"),
        "{\"claudeAiOauth\":{}}",
        0o600,
    );
    write_mode(&real.join(".gitconfig"), "[user]\n\tname = Me\n", 0o644);
    write_mode(&real.join(".config/git/ignore"), "*.swp\n", 0o644);
}

/// A command that reads the shared files, then tries every way to change them through
/// the scratch home, recording what happened.
const TAMPER: &str = r#"
o="$1"; c="$HOME/.claude"
cat "$c/CLAUDE.md" > "$o/claude-md"
cat "$c/agents/reviewer.md" > "$o/agent"
cat "$c/commands/team/hello.md" > "$o/command"
cat "$HOME/.gitconfig" > "$o/gitconfig"
cat "$HOME/.config/git/ignore" > "$o/gitignore"
ls -a "$c" > "$o/claude-dir"
{
  (echo evil >> "$c/CLAUDE.md") 2>/dev/null; echo "append $?"
  (echo evil > "$c/agents/reviewer.md") 2>/dev/null; echo "truncate $?"
  (echo evil > "$c/agents/new.md") 2>/dev/null; echo "create $?"
  rm -f "$c/agents/reviewer.md" 2>/dev/null; echo "rm $?"
  (echo evil > "$HOME/.gitconfig") 2>/dev/null; echo "gitconfig $?"
  (echo '{"apiKeyHelper":"x"}' > "$c/settings.json") 2>/dev/null; echo "settings $?"
} > "$o/writes"
exit 0
"#;

#[test]
fn shared_config_is_read_as_in_the_real_home_and_never_changed() {
    let t = state_test();
    real_config(&t);
    let out_dir = mkdir(&t.path("out"));
    let tamper = t.path("bin/tamper");
    fs::write(&tamper, TAMPER).unwrap();
    let real_before = tree(&t.real_home());
    let t = t.args(["--name", "s", "--share", "default"]).command([
        "/bin/sh",
        tamper.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    ]);
    let out = t.run();
    out.status(0);
    let read = |n: &str| fs::read_to_string(out_dir.join(n)).unwrap();
    assert_eq!(read("claude-md"), "# Always answer in haiku.\n");
    assert_eq!(read("agent"), "---\nname: reviewer\n---\nReview.\n");
    assert_eq!(read("command"), "Say hello.\n");
    assert_eq!(read("gitconfig"), "[user]\n\tname = Me\n");
    assert_eq!(read("gitignore"), "*.swp\n");
    assert!(
        !read("claude-dir").contains(".credentials.json"),
        "{}",
        read("claude-dir")
    );
    let writes = read("writes");
    if !is_root() {
        // Every write through the scratch home fails.
        for line in writes.lines() {
            assert!(!line.ends_with(" 0"), "a write succeeded: {writes}");
        }
    }
    // Whatever happened in the scratch home, the real files are byte for byte, mode and
    // inode the same.
    assert_eq!(tree(&t.real_home()), real_before, "writes: {writes}");

    // The next launch shows the real content again (a changed copy is kept aside).
    t.run().status(0);
    assert_eq!(read("claude-md"), "# Always answer in haiku.\n");
    assert_eq!(read("agent"), "---\nname: reviewer\n---\nReview.\n");
    assert_eq!(tree(&t.real_home()), real_before);
    let home = named(&t, "s");
    assert_eq!(mode_of(&home.join(".claude/CLAUDE.md")), 0o444);
    assert_eq!(mode_of(&home.join(".claude/agents")), 0o555);
    assert!(!home.join(".claude/.credentials.json").exists());
}

/// A first launch into a new named home with a share, under `--mask on`: the mask's
/// probe comes before the copy is made, and does not count the copy's view that is not
/// there yet as the kernel's refusal. The dry run says the mask is possible too.
#[test]
fn a_new_share_under_mask_on_is_not_refused() {
    let t = state_test();
    real_config(&t);
    let t = t.args([
        "--mask",
        "on",
        "--name",
        "fresh",
        "--share",
        ".claude/settings.json",
    ]);
    let dry = t.spawn_with(["--dry-run"]).wait();
    dry.status(0).stdout_contains("mask: possible here");
    let out = t.run();
    out.success();
    let home = named(&t, "fresh");
    assert_eq!(
        fs::read_to_string(home.join(".claude/settings.json")).unwrap(),
        "{\"theme\":\"dark\"}\n"
    );
}

#[test]
fn a_change_in_the_real_home_reaches_the_next_launch_and_unshared_copies_go() {
    let t = state_test();
    real_config(&t);
    let t = t.args(["--name", "s"]);
    t.spawn_with(["--share", "default"]).wait().success();
    let home = named(&t, "s");
    write_mode(&t.real_home().join(".claude/CLAUDE.md"), "v2\n", 0o644);
    fs::remove_file(t.real_home().join(".claude/agents/reviewer.md")).unwrap();
    t.reset_probe();
    let out = t.spawn_with(["--share", "default"]).wait();
    out.success().stderr("");
    assert_eq!(
        fs::read_to_string(home.join(".claude/CLAUDE.md")).unwrap(),
        "v2\n"
    );
    assert!(!home.join(".claude/agents/reviewer.md").exists());
    // A launch without --share sees none of it.
    t.reset_probe();
    t.run().success().stderr("");
    assert!(!home.join(".claude/CLAUDE.md").exists());
    assert!(!home.join(".claude/agents").exists());
    assert!(!home.join(".gitconfig").exists());
    assert!(home.join(".claude.json").exists());
}

#[test]
fn a_file_of_the_scratch_home_in_the_way_is_kept_aside() {
    let t = state_test();
    real_config(&t);
    t.spawn_with(["--name", "s"]).wait().success();
    let home = named(&t, "s");
    mkdir(&home.join(".claude"));
    write_mode(&home.join(".claude/CLAUDE.md"), "mine\n", 0o600);
    t.reset_probe();
    let out = t
        .spawn_with(["--name", "s", "--share", ".claude/CLAUDE.md"])
        .wait();
    out.success()
        .stderr_contains("kept it as CLAUDE.md.unshared-");
    let aside =
        crate::support::sandbox::names_with_prefix(&home.join(".claude"), "CLAUDE.md.unshared-");
    assert_eq!(aside.len(), 1);
    assert_eq!(
        fs::read_to_string(home.join(".claude").join(&aside[0])).unwrap(),
        "mine\n"
    );
}

#[test]
fn credential_files_are_never_shared() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    mkdir(&real.join(".config/anthropic"));
    write_mode(&real.join(".claude.json"), "{}", 0o600);
    write_mode(&real.join(".claude/.device-keys.json"), "{}", 0o600);
    mkdir(&real.join(".config/claude-iso"));
    write_mode(&real.join(".config/claude-iso/token.env"), "X=1\n", 0o600);
    let real_s = real.to_str().unwrap().to_owned();
    for bad in [
        ".claude/.credentials.json".to_owned(),
        "~/.claude/.credentials.json".to_owned(),
        format!("{real_s}/.claude/.credentials.json"),
        ".claude/.device-keys.json".to_owned(),
        ".claude.json".to_owned(),
        ".config/anthropic".to_owned(),
        ".config/claude-iso/token.env".to_owned(),
        ".claude".to_owned(),
        ".config".to_owned(),
        ".".to_owned(),
        "../realhome/.claude/.credentials.json".to_owned(),
        t.env_file().to_str().unwrap().to_owned(),
    ] {
        let out = t
            .spawn_with(["--name", "c", "--share", bad.as_str()])
            .wait();
        out.status(125).one_line_error("--share").probe_not_run();
    }
    // Through a symlink, at the top or inside a shared directory.
    symlink(
        real.join(".claude/.credentials.json"),
        real.join("innocent.json"),
    )
    .unwrap();
    t.spawn_with(["--name", "c", "--share", "innocent.json"])
        .wait()
        .status(125)
        .one_line_error("credential")
        .probe_not_run();
    symlink("../.credentials.json", real.join(".claude/agents/x.md")).unwrap();
    t.spawn_with(["--name", "c", "--share", "default"])
        .wait()
        .status(125)
        .one_line_error("credential")
        .probe_not_run();
    assert!(!named(&t, "c").exists(), "a refused share created the home");
}

#[test]
fn settings_with_their_own_credential_are_refused_unless_allowed() {
    for (settings, key) in [
        (r#"{"apiKeyHelper":"/bin/echo sk"}"#, "apiKeyHelper"),
        (
            r#"{"env":{"ANTHROPIC_API_KEY":"x"}}"#,
            "env.ANTHROPIC_API_KEY",
        ),
        (
            r#"{"env":{"CLAUDE_CODE_OAUTH_TOKEN":"x"}}"#,
            "env.CLAUDE_CODE_OAUTH_TOKEN",
        ),
        // The same rule as a project's settings (the guard): where the token goes.
        (
            r#"{"env":{"ANTHROPIC_BASE_URL":"http://collector.example:8080"}}"#,
            "env.ANTHROPIC_BASE_URL",
        ),
        (r#"{"proxyAuthHelper":"/bin/true"}"#, "proxyAuthHelper"),
        (
            r#"{"env":{"HTTPS_PROXY":"http://p.example"}}"#,
            "env.HTTPS_PROXY",
        ),
    ] {
        let t = state_test();
        real_config(&t);
        write_mode(
            &t.real_home().join(".claude/settings.json"),
            settings,
            0o644,
        );
        t.spawn_with(["--share", "default"])
            .wait()
            .status(125)
            .one_line_error(key)
            .probe_not_run();
        let out = t
            .spawn_with(["--share", "default", "--allow-project-auth"])
            .wait();
        out.success();
        let home = state_dir(&t).join("home");
        assert_eq!(
            fs::read_to_string(home.join(".claude/settings.json")).unwrap(),
            settings
        );
    }
}

#[test]
fn dry_run_lists_what_would_be_shared_and_changes_nothing() {
    let t = state_test();
    real_config(&t);
    let out = t
        .spawn_with(["--name", "d", "--share", "default", "--dry-run"])
        .wait();
    out.status(0);
    let home = named(&t, "d");
    for rel in [
        ".claude/CLAUDE.md",
        ".claude/agents",
        ".gitconfig",
        ".config/git",
    ] {
        out.stdout_contains(&format!(
            "share: {} -> {} (read-only copy)",
            t.real_home().join(rel).display(),
            home.join(rel).display()
        ));
    }
    // Not there in the real home: not listed.
    assert!(!out.stdout_text().contains("skills"));
    assert!(!state_dir(&t).exists());
    // An explicit one that does not exist is an error.
    t.spawn_with(["--share", ".claude/nothing-here", "--dry-run"])
        .wait()
        .status(125)
        .one_line_error("does not exist");
}

/// A symlink `.config/git/NAME` in the real home that leads to `target`.
fn link_in_git_config(t: &Test, name: &str, target: &Path) -> PathBuf {
    let link = t.real_home().join(".config/git").join(name);
    symlink(target, &link).unwrap();
    link
}

/// Refused before anything is created: 125, one line naming `needle`, no command.
#[track_caller]
fn refused_share(t: &Test, args: &[&str], needle: &str) {
    let mut all = vec!["--name", "c"];
    all.extend_from_slice(args);
    t.spawn_with(all)
        .wait()
        .status(125)
        .one_line_error(needle)
        .probe_not_run()
        .no_secrets();
    assert!(!state_dir(t).exists(), "a refused share created {args:?}");
}

#[test]
fn a_symlink_into_the_hidden_claude_dir_is_refused() {
    // The review's reproduction: a link in a shared directory to the real settings.json,
    // which the mask hides and which can hold an API key.
    let key = "sk-ant-api03-LeakedThroughASymlinkInGitConfig0123456789abcdef";
    let t = state_test().secret(key);
    real_config(&t);
    let real = t.real_home();
    write_mode(
        &real.join(".claude/settings.json"),
        format!("{{\"env\":{{\"ANTHROPIC_API_KEY\":\"{key}\"}}}}"),
        0o644,
    );
    let leak = link_in_git_config(&t, "leak", &real.join(".claude/settings.json"));
    refused_share(&t, &["--share", ".config/git"], "which the mask hides");
    refused_share(&t, &["--share", ".config/git"], leak.to_str().unwrap());
    // Without a key in it, still: nothing of the hidden ~/.claude but what a share names.
    write_mode(
        &real.join(".claude/settings.json"),
        "{\"theme\":\"dark\"}\n",
        0o644,
    );
    refused_share(&t, &["--share", ".config/git"], "leak");
    fs::remove_file(&leak).unwrap();
    write_mode(&real.join(".claude/history.jsonl"), "{}\n", 0o600);
    link_in_git_config(&t, "hist", &real.join(".claude/history.jsonl"));
    refused_share(&t, &["--share", "default"], "history.jsonl");
    fs::remove_file(real.join(".config/git/hist")).unwrap();
    // An agent leading elsewhere in ~/.claude; a share that is itself such a link.
    mkdir(&real.join(".claude/projects/p"));
    symlink("../projects/p", real.join(".claude/agents/p")).unwrap();
    refused_share(&t, &["--share", "default"], ".claude/projects/p");
    fs::remove_file(real.join(".claude/agents/p")).unwrap();
    symlink(real.join(".claude/projects"), real.join("notes")).unwrap();
    refused_share(&t, &["--share", "notes"], "which the mask hides");
    // Named by its own path, a part of ~/.claude is shared.
    t.spawn_with(["--name", "c", "--share", ".claude/projects"])
        .wait()
        .success();
    assert!(named(&t, "c").join(".claude/projects/p").is_dir());
}

#[test]
fn every_store_the_mask_hides_is_refused_through_a_symlink() {
    // (variable naming it, where it is, a file in it)
    let cases: &[(Option<&str>, &str, &str)] = &[
        (
            Some("ANTHROPIC_CONFIG_DIR"),
            "anthropic-cfg",
            "profiles.json",
        ),
        (
            Some("XDG_CONFIG_HOME"),
            "xdg",
            "anthropic/credentials/default.json",
        ),
        (
            Some("CLAUDE_SECURESTORAGE_CONFIG_DIR"),
            "secure",
            "store.json",
        ),
        (Some("CLAUDE_CONFIG_DIR"), "cfgdir", "settings.json"),
        (
            Some("CLAUDE_CONFIG_DIR"),
            "realhome/.claude-work",
            "CLAUDE.md",
        ),
        (None, "realhome/.config/anthropic", "profiles.json"),
        (None, "realhome/.claude/remote", ".api_key"),
        (None, "realhome", ".claude.json"),
        (None, "realhome/.claude", ".credentials.json"),
        (None, "", "token.env"),
    ];
    for (var, dir, file) in cases {
        let t = state_test();
        real_config(&t);
        let t = match var {
            Some(v) => {
                let at = t.path(dir);
                t.env(*v, at)
            }
            None => t,
        };
        let target = t.path(dir).join(file);
        mkdir(target.parent().unwrap());
        if !target.exists() {
            write_mode(&target, "{}", 0o600);
        }
        link_in_git_config(&t, "x", &target);
        refused_share(&t, &["--share", ".config/git"], "/.config/git/x");
        if *var != Some("XDG_CONFIG_HOME") {
            refused_share(&t, &["--share", "default"], "/.config/git/x");
        }
        // A link to the directory itself, and one holding it.
        fs::remove_file(t.real_home().join(".config/git/x")).unwrap();
        link_in_git_config(&t, "x", target.parent().unwrap());
        refused_share(&t, &["--share", ".config/git"], "/.config/git/x");
    }
    // A config dir named by a variable is never shared, even by its own path.
    let t = state_test();
    real_config(&t);
    let work = t.real_home().join(".claude-work");
    let t = t.env("CLAUDE_CONFIG_DIR", work);
    mkdir(&t.real_home().join(".claude-work/agents"));
    refused_share(&t, &["--share", ".claude-work/agents"], "CLAUDE_CONFIG_DIR");
}

#[test]
fn share_default_reads_the_real_claude_dir_through_its_symlinks() {
    // ~/.claude a link into a dotfiles checkout, CLAUDE_CONFIG_DIR naming it too, an
    // agent that links to the shared CLAUDE.md: all of it is what --share default names.
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    let dots = mkdir(&real.join("dotfiles"));
    fs::rename(real.join(".claude"), dots.join("claude")).unwrap();
    symlink("dotfiles/claude", real.join(".claude")).unwrap();
    symlink("../CLAUDE.md", dots.join("claude/agents/haiku.md")).unwrap();
    let out_file = t.path("out");
    let script = format!(
        "cat \"$HOME/.claude/CLAUDE.md\" \"$HOME/.claude/agents/reviewer.md\" \
         \"$HOME/.claude/agents/haiku.md\" \"$HOME/.claude/settings.json\" > '{}'",
        out_file.display()
    );
    let t = t
        .env("CLAUDE_CONFIG_DIR", real.join(".claude"))
        .args(["--name", "s", "--share", "default"])
        .command(["/bin/sh", "-c", script.as_str()]);
    let before = tree(&real);
    t.run().status(0);
    assert_eq!(
        fs::read_to_string(&out_file).unwrap(),
        "# Always answer in haiku.\n---\nname: reviewer\n---\nReview.\n\
         # Always answer in haiku.\n{\"theme\":\"dark\"}\n"
    );
    assert_eq!(tree(&real), before);
    assert!(!named(&t, "s").join(".claude/.credentials.json").exists());
}

#[test]
fn every_settings_file_carried_in_is_judged() {
    let t = state_test();
    real_config(&t);
    let real = t.real_home();
    write_mode(
        &real.join(".config/git/settings.local.json"),
        r#"{"apiKeyHelper":"/bin/echo sk"}"#,
        0o644,
    );
    refused_share(&t, &["--share", ".config/git"], "apiKeyHelper");
    t.spawn_with([
        "--name",
        "c",
        "--share",
        ".config/git",
        "--allow-project-auth",
    ])
    .wait()
    .success();
    assert!(
        named(&t, "c")
            .join(".config/git/settings.local.json")
            .is_file()
    );

    // A link of another name that leads to a settings file outside ~/.claude.
    let key = "sk-ant-api03-ASettingsFileOutsideTheClaudeDir0123456789abcdef";
    let t = state_test().secret(key);
    real_config(&t);
    let real = t.real_home();
    let dots = mkdir(&real.join("dotfiles"));
    write_mode(
        &dots.join("settings.json"),
        format!("{{\"env\":{{\"ANTHROPIC_API_KEY\":\"{key}\"}}}}"),
        0o644,
    );
    link_in_git_config(&t, "notes", &dots.join("settings.json"));
    refused_share(&t, &["--share", ".config/git"], "env.ANTHROPIC_API_KEY");
}
