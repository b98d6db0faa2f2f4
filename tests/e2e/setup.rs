//! End-to-end (issue 13): README's "Set up", walked through on a fresh machine — a new,
//! empty HOME and only the commands README gives, in its order — ending in an isolated
//! `claude --print` answered by a fake Messages API on 127.0.0.1.
//!
//! Every command of the README block is run as written, with three stand-ins, each
//! named where it is used: `npm install -g @anthropic-ai/claude-code` links the claude
//! under test (`CLAUDE_ISO_TEST_CLAUDE`) into npm's global bin directory instead of
//! downloading it; `cargo install --locked --path .` copies the claude-iso this test
//! suite built into `~/.cargo/bin` instead of a second release build (minutes on a
//! small machine); `claude setup-token` needs a browser and an account, so the token
//! it would print is the test's. The final bare `claude-iso` (the TUI) is run as
//! `claude-iso -- claude --print …` (the TUI is covered by tests/e2e/launch.rs).
//! `./scripts/test` is this suite and is not run again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::fake_api::FakeApi;
use crate::support::world::{CLAUDE_ISO, PRINT_TIMEOUT, Run, World, quiet_env, run_timed};

const REPLY: &str = "pong from a fresh machine";

/// The commands of README's first ```sh block under "## Set up", comments dropped.
fn readme_setup_commands() -> Vec<String> {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = &readme[readme.find("\n## Set up").expect("a Set up section")..];
    let block = &section[section.find("```sh\n").expect("a sh block") + 6..];
    let block = &block[..block.find("```").expect("the block ends")];
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

struct Machine {
    home: PathBuf,
    path: String,
    api_url: String,
    tmpdir: PathBuf,
    repo: PathBuf,
    logs: PathBuf,
}

impl Machine {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", &self.tmpdir)
            // The one concession to the test machine: the API is the fake one.
            .env("ANTHROPIC_BASE_URL", &self.api_url)
            .envs(quiet_env())
            .current_dir(&self.repo);
        cmd
    }

    /// One README line, as a user's shell runs it, from the checkout.
    fn sh(&self, line: &str) -> Run {
        let mut cmd = self.command("/bin/sh");
        cmd.arg("-c").arg(line);
        run_timed(&mut cmd, Duration::from_secs(60), &self.logs)
    }

    /// `claude-iso ARGS` as the user types it, found on `PATH` like any command.
    fn claude_iso(&self, args: &[&str], stdin: Option<&str>, cwd: &Path) -> Run {
        let mut cmd = self.command("/bin/sh");
        cmd.arg("-c")
            .arg("exec claude-iso \"$@\"")
            .arg("sh")
            .args(args)
            .current_dir(cwd);
        match stdin {
            None => run_timed(&mut cmd, PRINT_TIMEOUT, &self.logs),
            Some(text) => {
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                let start = std::time::Instant::now();
                let out = child.wait_with_output().unwrap();
                Run {
                    status: out.status,
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    elapsed: start.elapsed(),
                }
            }
        }
    }
}

fn stand_in(path: &Path, script: &str) {
    fs::write(path, script).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn readme_set_up_works_on_a_fresh_machine() {
    let Some(w) = World::new("readme_set_up_works_on_a_fresh_machine") else {
        return;
    };
    let api = FakeApi::start(REPLY);
    let home = w.dir("fresh-home");
    let npm_bin = w.dir("npm-global/bin");
    let stand_ins = w.dir("stand-ins");
    stand_in(
        &stand_ins.join("npm"),
        &format!(
            "#!/bin/sh\n[ \"$*\" = 'install -g @anthropic-ai/claude-code' ] || {{ echo \"npm stand-in: $*\" >&2; exit 2; }}\nexec ln -sf '{}' '{}/claude'\n",
            w.claude.display(),
            npm_bin.display()
        ),
    );
    stand_in(
        &stand_ins.join("cargo"),
        &format!(
            "#!/bin/sh\n[ \"$*\" = 'install --locked --path .' ] && [ -f Cargo.toml ] || {{ echo \"cargo stand-in: $*\" >&2; exit 2; }}\nmkdir -p \"$HOME/.cargo/bin\" && exec cp '{CLAUDE_ISO}' \"$HOME/.cargo/bin/claude-iso\"\n"
        ),
    );
    let m = Machine {
        path: format!(
            "{}:{}:{}:/usr/local/bin:/usr/bin:/bin",
            home.join(".cargo/bin").display(),
            npm_bin.display(),
            stand_ins.display()
        ),
        home: home.clone(),
        api_url: api.base_url(),
        tmpdir: w.tmpdir.clone(),
        repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        logs: w.logs.clone(),
    };
    let project = w.dir("project");
    let mut answered = false;
    let mut ran = Vec::new();
    for line in readme_setup_commands() {
        match line.as_str() {
            "claude setup-token" => {
                // A browser and an account: the token is the test's (w.token).
            }
            "./scripts/test" => {
                // This suite.
            }
            chain if chain.starts_with("cargo install") => {
                for step in chain.split(" && ") {
                    match step {
                        "claude-iso token set" => {
                            // The newcomer who runs claude-iso before storing a token is
                            // told the one next step.
                            let unchanged = w.unchanged();
                            let early = m.claude_iso(&[], None, &project);
                            assert_eq!(early.status.code(), Some(125), "{early}");
                            unchanged.assert("the refused launch");
                            assert!(
                                early.stderr.contains("run: claude-iso token set"),
                                "{early}"
                            );
                            let run = m.claude_iso(
                                &["token", "set"],
                                Some(&format!("{}\n", w.token)),
                                &project,
                            );
                            assert!(run.status.success(), "token set: {run}");
                            assert!(!run.stderr.contains(&w.token[13..40]), "{run}");
                        }
                        "claude-iso" => {
                            let run = m.claude_iso(
                                &["--", "claude", "--print", "say pong"],
                                None,
                                &project,
                            );
                            assert!(run.status.success(), "claude-iso: {run}");
                            assert!(run.stdout.contains(REPLY), "no answer: {run}");
                            answered = true;
                        }
                        other => {
                            let run = m.sh(other);
                            assert!(run.status.success(), "`{other}`: {run}");
                        }
                    }
                }
            }
            other => {
                let run = m.sh(other);
                assert!(run.status.success(), "`{other}`: {run}");
            }
        }
        ran.push(line);
    }
    assert!(answered, "README's Set up never ran claude: {ran:?}");
    w.assert_only_token(&api);
    assert!(
        !api.message_requests().is_empty(),
        "no POST /v1/messages:\n{}",
        api.summary()
    );

    // Where README says things end up.
    let token_file = home.join(".config/claude-iso/token.env");
    assert_eq!(
        fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(home.join(".cargo/share/man/man1/claude-iso.1").is_file());
    let completion = home.join(".local/share/bash-completion/completions/claude-iso");
    assert!(
        fs::read_to_string(&completion)
            .unwrap()
            .contains("claude-iso"),
        "bash completions not installed"
    );
    if Path::new("/usr/bin/man").exists() {
        let run = m.sh("man -w claude-iso");
        assert_eq!(
            run.stdout.trim(),
            home.join(".cargo/share/man/man1/claude-iso.1")
                .display()
                .to_string(),
            "`man claude-iso` does not find the installed page: {run}"
        );
    }
    // No credentials file anywhere in the new HOME: the token is the only credential.
    let found = crate::support::world::snapshot(&home)
        .into_keys()
        .filter(|p| p.ends_with(".credentials.json"))
        .collect::<Vec<_>>();
    assert!(found.is_empty(), "{found:?}");
}
