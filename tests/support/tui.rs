//! A small tmux driver: a private server (its own socket file), one detached session of
//! fixed size running one command, keys in, screen out. Dropping it kills the server.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: PathBuf,
    env: Vec<(String, String)>,
    /// The tmux server's and the pane command's (pid, start time), waited for on drop.
    pids: Vec<(u32, String)>,
}

/// What a pane looks like now.
pub struct Screen {
    pub text: String,
    /// `Some(status)` once the command in the pane has exited.
    pub exited: Option<i32>,
}

const SESSION: &str = "t";

impl Tmux {
    /// Start `argv` in a new detached session of `cols`x`rows` in `cwd`.
    ///
    /// The tmux server (and so the command) gets exactly `env` (the caller's environment
    /// is not inherited). The socket and config live in `dir`.
    pub fn start(
        dir: &Path,
        env: &[(String, String)],
        cwd: &Path,
        argv: &[impl AsRef<OsStr>],
        cols: u16,
        rows: u16,
    ) -> Tmux {
        std::fs::create_dir_all(dir).expect("tmux dir");
        let conf = dir.join("tmux.conf");
        std::fs::write(
            &conf,
            "set -g remain-on-exit on\nset -g history-limit 5000\nset -g status off\n",
        )
        .expect("write tmux.conf");
        let mut tmux = Tmux {
            socket: dir.join("tmux.sock"),
            env: env.to_vec(),
            pids: Vec::new(),
        };
        let mut cmd = tmux.command();
        cmd.arg("-f").arg(&conf).args([
            "new-session",
            "-d",
            "-s",
            SESSION,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            "-c",
        ]);
        cmd.arg(cwd).arg("--").args(argv);
        let out = run(cmd);
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pids = tmux.tmux(&["display-message", "-p", "-t", SESSION, "#{pid} #{pane_pid}"]);
        tmux.pids = String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter_map(|p| running_since(p).map(|since| (p, since)))
            .collect();
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .stdin(Stdio::null());
        cmd
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run(cmd)
    }

    /// The PID of the pane's process (the command tmux started, after any `execve`).
    pub fn pane_pid(&self) -> Option<u32> {
        self.pids.get(1).map(|(pid, _)| *pid)
    }

    /// Type `text` literally (no key-name interpretation).
    pub fn type_text(&self, text: &str) {
        let out = self.tmux(&["send-keys", "-t", SESSION, "-l", "--", text]);
        assert!(out.status.success(), "tmux send-keys -l failed");
    }

    /// Send key names, e.g. `Enter`, `C-c`, `Escape`.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", SESSION];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "tmux send-keys {keys:?} failed");
    }

    pub fn screen(&self) -> Screen {
        let out = self.tmux(&["capture-pane", "-p", "-t", SESSION]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let state = self.tmux(&[
            "display-message",
            "-p",
            "-t",
            SESSION,
            "#{pane_dead} #{pane_dead_status}",
        ]);
        let state = String::from_utf8_lossy(&state.stdout);
        let mut it = state.split_whitespace();
        let exited = match it.next() {
            Some("1") => Some(it.next().and_then(|s| s.parse().ok()).unwrap_or(-1)),
            _ => None,
        };
        Screen { text, exited }
    }

    /// Poll the screen until `done` holds (Ok with that screen), or fail (Err with the
    /// last screen) once `timeout` passes or the command has exited without it.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if done(&screen.text) {
                return Ok(screen.text);
            }
            if let Some(status) = screen.exited {
                // The screen was read before the pane was seen dead: what the command
                // wrote as it ended may be missing from it. A dead pane's screen is final.
                let last = self.screen();
                if done(&last.text) {
                    return Ok(last.text);
                }
                return Err(format!(
                    "command exited with status {status}; screen:\n{}",
                    last.text
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?}; screen:\n{}",
                    screen.text
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    /// Kill the server (it hangs up the command) and wait until both are gone, so that
    /// nothing writes into the test's directories after they are removed.
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let deadline = Instant::now() + Duration::from_secs(15);
        let alive = |(pid, since): &&(u32, String)| running_since(*pid).as_ref() == Some(since);
        while self.pids.iter().any(|p| alive(&p)) {
            if Instant::now() >= deadline {
                for (pid, _) in self.pids.iter().filter(alive) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The start time of `pid` (which tells it apart from a later process with the same
/// id), while it runs and is not a zombie.
fn running_since(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is the 3rd field of the
    // line, start time the 22nd.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state.starts_with(['Z', 'X']) {
        return None;
    }
    fields.nth(18).map(str::to_string)
}

/// Run a tmux client command with a bound on its run time.
fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tmux (is it installed?)");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait_with_output().expect("tmux output")
}
