//! A small harness for running the built `claude-iso` binary, in the spirit of
//! casey/just's `Test` builder.
//!
//! Every run:
//! - starts from a **cleared** environment: only `PATH` (a fixed, known value) and
//!   `HOME` (a fake real home inside the sandbox, so nothing ever reads or writes the
//!   developer's home) are set, plus whatever the test adds or removes;
//! - happens in its own temp dir (the sandbox), with a valid 0600 env file passed as
//!   `--env-file` and a `--home` inside the sandbox (both can be turned off);
//! - runs `COMMAND` = the *probe* unless the test says otherwise: a `/bin/sh` script that
//!   records its pid, its exact argv (`/proc/$$/cmdline`), its exact environment
//!   (`/proc/$$/environ`), its working directory and its open descriptors;
//! - has a timeout guard: a hung claude-iso is killed and the test fails.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

// The file helpers of `support`, for the suites that import everything from here (a
// binary that uses only part of them would otherwise be told the rest is unused).
#[allow(unused_imports)]
pub use super::{
    CLAUDE_ISO as BIN, Entry, Unchanged, chmod, is_root, mkdir, mode_of, realpath, tree, write_mode,
};

/// A valid setup-token, shaped like real ones: `sk-ant-oat01-` + 95 URL-safe
/// characters, 108 in all (shorter ones are refused as truncated). The part after the
/// public prefix is what must never be shown.
pub const TOKEN: &str = "sk-ant-oat01-Zq9_Kp3xVw-Lm8LyvoCvi2e4RlaqNp0MIj8UeaOQt_8CALeWusH2BH2ETFK2AS2eOY6lifaNy59XQhL3rsgoVuBNMXLeSAA";
/// How claude-iso may show [`TOKEN`]: prefix and length only.
pub fn redacted(token: &str) -> String {
    format!("sk-ant-oat01-… ({} chars)", token.len())
}

/// A few more valid tokens, to tell sources apart.
pub const TOKEN_B: &str = "sk-ant-oat01-Bbbb_SecondSourceToken-qmU-43fSLqgPvqaFtl9VjSHBgEE4yYggorVYMtMHlVgdvbnIlQ2uLfomNZX8XItt5MadHJAA";
pub const TOKEN_C: &str = "sk-ant-oat01-Cccc_ThirdSourceToken-QCFV1u90Ht77yW8yde9wqnarNk_hB2dcsMtg2GC-cmFOb5RCg2EbmVs7TrSDKlGrqwnhsd7AA";
pub const TOKEN_D: &str = "sk-ant-oat01-Dddd_FourthSourceToken-TW_0i4JRWpAPWj91Md5X09hkGBasPMA3LbAloqiXBOucuxghD3w0k-togSgwl2N1MFHK1KAA";
pub const TOKEN_E: &str = "sk-ant-oat01-Eeee_FifthSourceToken-JBmkugpGtCNmn_4nf1r9D9QUpa-lmI5b1rarFSt23cTUQSynsuv2h3p-0AtWcYYR2ZKkFZvAA";

/// `PATH` every run gets (the sandbox's `bin` is put in front of it).
pub const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// Writing an executable while another thread is between `fork` and `exec` leaves a
/// writable descriptor to it in that child, and executing it then fails with
/// `ETXTBSY`. Writers of executables take this lock exclusively, every spawn shares it.
static SPAWN: RwLock<()> = RwLock::new(());

/// Writes an executable file safely (see [`SPAWN`]).
pub fn write_executable(path: &Path, text: &str) {
    let _guard = SPAWN
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    write_mode(path, text, 0o755);
}

/// Runs a helper command (not claude-iso) to completion; every spawn of the test
/// process goes through here or the builder (see [`SPAWN`]).
pub fn status_of(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let _guard = SPAWN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cmd.stdin(Stdio::null()).status()
}

/// Starts a helper command (not claude-iso) and returns at once (see [`SPAWN`]).
pub fn spawn_helper(cmd: &mut Command) -> Child {
    let _guard = SPAWN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cmd.stdin(Stdio::null()).spawn().expect("spawn a helper")
}

/// Runs a helper command (not claude-iso) and asserts it succeeded.
#[track_caller]
pub fn sh(script: &str) {
    let status = {
        let _guard = SPAWN
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .status()
            .expect("run /bin/sh")
    };
    assert!(status.success(), "`{script}` failed: {status}");
}

/// The probe: records what it received, then exits 0. `ran` is written first, so its
/// absence proves the command never started.
fn probe_script(out: &Path) -> String {
    format!(
        r#"#!/bin/sh
d='{out}'
: > "$d/ran"
echo $$ > "$d/pid"
/bin/cat /proc/$$/cmdline > "$d/cmdline"
/bin/cat /proc/$$/environ > "$d/environ"
pwd -P > "$d/cwd"
/bin/ls /proc/$$/fd > "$d/fds"
fd=$CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR
if [ -n "$fd" ]; then
    # Read the token pipe twice: the second read must find it empty.
    /bin/cat <&"$fd" > "$d/fd_token"
    /bin/cat <&"$fd" > "$d/fd_token_again"
fi
exit 0
"#,
        out = out.display()
    )
}

/// A sandbox and the claude-iso command line to run in it.
pub struct Test {
    dir: tempfile::TempDir,
    root: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: PathBuf,
    env_file_arg: bool,
    home_arg: bool,
    command: Option<Vec<OsString>>,
    wrapper: Option<String>,
    secrets: Vec<String>,
    timeout: Duration,
    stdin: Stdin,
    pin_fd: bool,
}

/// What claude-iso's stdin is.
#[derive(Clone)]
enum Stdin {
    Null,
    /// A pipe the test writes to (`Running::child.stdin`).
    Piped,
    /// A pipe these bytes are written to, then closed.
    Bytes(Vec<u8>),
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// A fresh sandbox: `token.env` (0600, holding [`TOKEN`]), an empty `work/` (the
    /// working directory), `realhome/` (the caller's `HOME`), `bin/probe` and
    /// `bin/claude` (both the probe), `probe/` (where the probe writes).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("claude-iso-test.")
            .tempdir()
            .expect("tempdir");
        // The tests compare realpaths: resolve the sandbox once.
        let root = realpath(dir.path());
        chmod(&root, 0o755);
        for sub in ["work", "realhome", "bin", "probe", ".runs"] {
            mkdir(&root.join(sub));
        }
        let probe = probe_script(&root.join("probe"));
        write_executable(&root.join("bin/probe"), &probe);
        write_executable(&root.join("bin/claude"), &probe);
        write_mode(
            &root.join("token.env"),
            format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"),
            0o600,
        );
        let path = format!("{}:{SYSTEM_PATH}", root.join("bin").display());
        Test {
            cwd: root.join("work"),
            env: vec![
                ("PATH".into(), path.into()),
                ("HOME".into(), root.join("realhome").into()),
            ],
            dir,
            root,
            args: Vec::new(),
            env_file_arg: true,
            home_arg: true,
            command: None,
            wrapper: None,
            secrets: vec![TOKEN.to_owned()],
            timeout: Duration::from_secs(20),
            stdin: Stdin::Null,
            pin_fd: true,
        }
    }

    /// The sandbox (a realpath).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A path inside the sandbox.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// The `--home` passed by default (not created).
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The env file passed by default.
    pub fn env_file(&self) -> PathBuf {
        self.path("token.env")
    }

    /// The caller's `HOME` (the "real home").
    pub fn real_home(&self) -> PathBuf {
        self.path("realhome")
    }

    /// The default working directory.
    pub fn work(&self) -> PathBuf {
        self.path("work")
    }

    /// The probe's path.
    pub fn probe_path(&self) -> PathBuf {
        self.path("bin/probe")
    }

    /// Rewrites the default env file (mode 0600).
    pub fn env_file_text(self, text: impl AsRef<[u8]>) -> Self {
        write_mode(&self.env_file(), text, 0o600);
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// What comes after `--` (default: nothing, so claude-iso runs `claude`, which is
    /// the probe on `PATH`).
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// Sets (or replaces) a variable of claude-iso's environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// Removes a variable (e.g. `HOME`) from claude-iso's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.retain(|(k, _)| k.as_os_str() != key.as_ref());
        self
    }

    /// The environment claude-iso will be started with.
    pub fn env_vars(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    /// Give the probe named `claude` claude's default way to the token (the broker)
    /// instead of the pipe the harness pins for it (see [`Test::build`]).
    pub fn default_token_via(mut self) -> Self {
        self.pin_fd = false;
        self
    }

    /// Do not pass `--env-file`.
    pub fn no_env_file(mut self) -> Self {
        self.env_file_arg = false;
        self
    }

    /// Do not pass `--home`.
    pub fn no_home(mut self) -> Self {
        self.home_arg = false;
        self
    }

    /// Start claude-iso in `dir` (default: `work/`).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = dir.into();
        self
    }

    /// Start claude-iso under this umask (through a `/bin/sh` that `exec`s it, so the
    /// PID stays the same).
    pub fn umask(self, mask: u32) -> Self {
        self.wrap(&format!("umask {mask:03o} && exec \"$0\" \"$@\""))
    }

    /// Start claude-iso through `/bin/sh -c SCRIPT claude-iso ARGS…`: the script runs it
    /// as `"$0" "$@"`.
    pub fn wrap(mut self, script: &str) -> Self {
        self.wrapper = Some(script.to_owned());
        self
    }

    /// Another value that must appear in no output.
    pub fn secret(mut self, s: impl Into<String>) -> Self {
        self.secrets.push(s.into());
        self
    }

    /// Feed `bytes` to claude-iso's stdin (a pipe, closed after them).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Stdin::Bytes(bytes.into());
        self
    }

    /// Give claude-iso a pipe as stdin that the test writes to itself
    /// (`Running::child.stdin`).
    pub fn stdin_piped(mut self) -> Self {
        self.stdin = Stdin::Piped;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// claude-iso's full argv (after the program name).
    pub fn argv(&self) -> Vec<OsString> {
        self.argv_with(&[])
    }

    fn argv_with(&self, extra: &[OsString]) -> Vec<OsString> {
        let mut argv = Vec::new();
        if self.env_file_arg {
            argv.push("--env-file".into());
            argv.push(self.env_file().into());
        }
        if self.home_arg {
            argv.push("--home".into());
            argv.push(self.home().into());
        }
        argv.extend(self.args.iter().cloned());
        argv.extend(extra.iter().cloned());
        if let Some(cmd) = &self.command {
            argv.push("--".into());
            argv.extend(cmd.iter().cloned());
        }
        argv
    }

    fn build(&self, n: usize, extra: &[OsString]) -> (Command, PathBuf, PathBuf) {
        let mut cmd = match &self.wrapper {
            Some(script) => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(script).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let argv = self.argv_with(extra);
        cmd.args(&argv);
        cmd.env_clear();
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        // The probe reads the token itself: when it stands in for claude (whose default
        // is the broker, proven by tests/cli/token_via.rs against a fake API and by the e2e
        // suites against the real claude), the pipe, claude's way before the broker, is
        // pinned, unless the test chooses a way itself or asks for the default.
        let is_claude = self.command.as_ref().is_none_or(|c| {
            c.first()
                .is_some_and(|p| Path::new(p).file_name() == Some(OsStr::new("claude")))
        });
        let chosen = self
            .env
            .iter()
            .any(|(k, _)| k == "CLAUDE_ISO_TOKEN_VIA" || k == "CLAUDE_ISO_BROKER")
            || argv.iter().any(|a| {
                let a = a.to_string_lossy();
                a.starts_with("--token-via") || a.starts_with("--broker")
            });
        if self.pin_fd && is_claude && !chosen {
            cmd.env("CLAUDE_ISO_TOKEN_VIA", "fd");
        }
        cmd.current_dir(&self.cwd);
        let stdout = self.path(format!(".runs/{n}.stdout"));
        let stderr = self.path(format!(".runs/{n}.stderr"));
        cmd.stdin(match self.stdin {
            Stdin::Null => Stdio::null(),
            Stdin::Piped | Stdin::Bytes(_) => Stdio::piped(),
        })
        .stdout(fs::File::create(&stdout).expect("stdout file"))
        .stderr(fs::File::create(&stderr).expect("stderr file"));
        (cmd, stdout, stderr)
    }

    /// Starts claude-iso and returns at once.
    pub fn spawn(&self) -> Running<'_> {
        self.spawn_with(Vec::<OsString>::new())
    }

    /// Starts claude-iso with `extra` options added (before `--`), and returns at once.
    pub fn spawn_with<I, S>(&self, extra: I) -> Running<'_>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let extra: Vec<OsString> = extra.into_iter().map(Into::into).collect();
        let n = next_run();
        let (mut cmd, stdout, stderr) = self.build(n, &extra);
        let child = {
            let _guard = SPAWN
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cmd.spawn().expect("spawn claude-iso")
        };
        let mut child = child;
        if let Stdin::Bytes(bytes) = &self.stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin pipe");
            // claude-iso may exit before reading it all; that is its answer, not ours.
            let _ = pipe.write_all(bytes);
        }
        Running {
            test: self,
            extra,
            child,
            stdout,
            stderr,
            started: Instant::now(),
            before: None,
        }
    }

    /// Runs claude-iso to completion (or fails the test after the timeout). The sandbox
    /// is snapshotted first: a refusal ([`Output::status`] `125`) must leave it as it was.
    #[track_caller]
    pub fn run(&self) -> Output<'_> {
        let before = self.unchanged();
        let mut running = self.spawn();
        running.before = Some(before);
        running.wait()
    }

    /// The sandbox as it is now, without what every run writes (its output files, the
    /// probe's records).
    pub fn unchanged(&self) -> Unchanged {
        Unchanged::skipping(self.root(), &[".runs", "probe"])
    }

    /// Runs the probe directly (no claude-iso), with the same stdio set-up.
    #[track_caller]
    pub fn run_probe_directly(&self) -> Probe {
        let n = next_run();
        let mut cmd = Command::new(self.probe_path());
        cmd.env_clear()
            .env("PATH", SYSTEM_PATH)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(fs::File::create(self.path(format!(".runs/{n}.stdout"))).unwrap())
            .stderr(fs::File::create(self.path(format!(".runs/{n}.stderr"))).unwrap());
        let status = {
            let _guard = SPAWN
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cmd.status().expect("run probe")
        };
        assert!(status.success(), "probe failed: {status}");
        self.probe().expect("the probe ran")
    }

    /// What the probe recorded, if it ran.
    pub fn probe(&self) -> Option<Probe> {
        Probe::read(&self.path("probe"))
    }

    /// Forgets what the probe recorded (before running again).
    pub fn reset_probe(&self) {
        let dir = self.path("probe");
        fs::remove_dir_all(&dir).unwrap();
        mkdir(&dir);
    }

    /// Keeps the sandbox on disk (for debugging a failure).
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }
}

/// Where a broker of a run could put its socket: `$XDG_RUNTIME_DIR/claude-iso` of the
/// run's environment, else `/tmp/claude-iso-<uid>` (of the test's user, or of `nobody`
/// for a run dropped to it).
fn broker_socket_dirs(t: &Test) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = t
        .env
        .iter()
        .filter(|(k, _)| k == "XDG_RUNTIME_DIR")
        .map(|(_, v)| Path::new(v).join("claude-iso"))
        .collect();
    for uid in [nix::unistd::geteuid().as_raw(), 65534] {
        dirs.push(PathBuf::from(format!("/tmp/claude-iso-{uid}")));
    }
    dirs
}

fn next_run() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A claude-iso process that was started.
pub struct Running<'a> {
    test: &'a Test,
    extra: Vec<OsString>,
    pub child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
    /// The sandbox before the run, when nothing else changes it meanwhile ([`Test::run`]).
    before: Option<Unchanged>,
}

impl<'a> Running<'a> {
    /// The PID (the same one the command will have after `execve`).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (without blocking).
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Waits for the exit, killing it and failing the test after the timeout.
    #[track_caller]
    pub fn wait(mut self) -> Output<'a> {
        let deadline = self.started + self.test.timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "claude-iso {:?} did not finish within {:?} (killed); stderr so far: {}",
                    self.test.argv_with(&self.extra),
                    self.test.timeout,
                    String::from_utf8_lossy(&fs::read(&self.stderr).unwrap_or_default())
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            test: self.test,
            argv: self.test.argv_with(&self.extra),
            status,
            stdout: fs::read(&self.stdout).unwrap(),
            stderr: fs::read(&self.stderr).unwrap(),
            pid: self.child.id(),
            before: self.before.take(),
        }
    }
}

/// The result of one run, with assertions that name the run and show its output.
pub struct Output<'a> {
    pub test: &'a Test,
    pub argv: Vec<OsString>,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// claude-iso's PID (a wrapper `exec`s it: the same).
    pub pid: u32,
    before: Option<Unchanged>,
}

impl Output<'_> {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "\n  argv: {:?}\n  status: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.argv,
            self.status,
            self.stdout_text(),
            self.stderr_text()
        )
    }

    /// The exit code is `code` (not killed by a signal). A refusal (`125`) also left
    /// nothing behind ([`Output::created_nothing`]).
    #[track_caller]
    pub fn status(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "unexpected exit status{}",
            self.describe()
        );
        if code == 125 {
            self.created_nothing();
        }
        self
    }

    /// The exit code is `code`, from a run that began writing and failed part-way (a full
    /// disk, a write cut short): nothing is left behind. Entries, contents, modes and
    /// owners are as before; only directories' times may differ (a temp file was created
    /// and removed again), and the home may keep the lock file that marks it as
    /// claude-iso's (taken before the write).
    #[track_caller]
    pub fn status_after_writing(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "unexpected exit status{}",
            self.describe()
        );
        if let Some(before) = &self.before {
            let changes: Vec<String> = before
                .changes_but_directory_times()
                .into_iter()
                .filter(|c| !(c.starts_with("added:") && c.ends_with("/.claude-iso.lock")))
                .collect();
            assert!(
                changes.is_empty(),
                "the run left something behind: {changes:#?}{}",
                self.describe()
            );
        }
        self
    }

    /// The run changed nothing on disk: the sandbox is as it was before (no home, no
    /// `.claude.json`, no quarantine, no lock; checked when the test started it with
    /// [`Test::run`], which snapshots it), and no broker socket of its PID is left.
    #[track_caller]
    pub fn created_nothing(&self) -> &Self {
        if let Some(before) = &self.before {
            let changes = before.changes();
            assert!(
                changes.is_empty(),
                "the run changed the sandbox: {changes:#?}{}",
                self.describe()
            );
        }
        for dir in broker_socket_dirs(self.test) {
            let socket = dir.join(format!("broker.{}.sock", self.pid));
            assert!(
                fs::symlink_metadata(&socket).is_err(),
                "the run left a broker socket {}{}",
                socket.display(),
                self.describe()
            );
        }
        self
    }

    /// Exit 0 and the probe ran.
    #[track_caller]
    pub fn success(&self) -> &Self {
        self.status(0);
        assert!(
            self.test.probe().is_some(),
            "exit 0 but the probe did not run{}",
            self.describe()
        );
        self
    }

    /// Killed by `signal`.
    #[track_caller]
    pub fn signal(&self, signal: i32) -> &Self {
        assert_eq!(
            self.status.signal(),
            Some(signal),
            "expected death by signal {signal}{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stdout(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stdout_text(),
            expected,
            "stdout differs{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stderr(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stderr_text(),
            expected,
            "stderr differs{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout_text().contains(needle),
            "stdout lacks {needle:?}{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr_text().contains(needle),
            "stderr lacks {needle:?}{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr_text().contains(needle),
            "stderr has {needle:?}{}",
            self.describe()
        );
        self
    }

    /// Exactly one line on stderr, `claude-iso: …` containing `needle`; nothing on
    /// stdout.
    #[track_caller]
    pub fn one_line_error(&self, needle: &str) -> &Self {
        let err = self.stderr_text();
        assert!(
            err.starts_with("claude-iso: ") && err.ends_with('\n') && err.lines().count() == 1,
            "expected one line `claude-iso: …` on stderr{}",
            self.describe()
        );
        assert!(
            err.contains(needle),
            "stderr lacks {needle:?}{}",
            self.describe()
        );
        self.stdout("");
        self
    }

    /// The command never started.
    #[track_caller]
    pub fn probe_not_run(&self) -> &Self {
        assert!(
            !self.test.path("probe/ran").exists(),
            "the command ran{}",
            self.describe()
        );
        self
    }

    /// No secret of the test (the token, plus any added with [`Test::secret`]) shows in
    /// stdout or stderr, not even a 10-character piece of its secret part.
    #[track_caller]
    pub fn no_secrets(&self) -> &Self {
        for stream in [&self.stdout, &self.stderr] {
            if let Some(piece) = secret_piece(&self.test.secrets, stream) {
                panic!(
                    "a secret leaked ({piece:?} is part of one){}",
                    self.describe()
                );
            }
        }
        self
    }

    /// What the probe recorded; fails the test when it did not run.
    #[track_caller]
    pub fn probe(&self) -> Probe {
        self.test
            .probe()
            .unwrap_or_else(|| panic!("the probe did not run{}", self.describe()))
    }
}

/// The first 10-byte piece of a secret's body (after its 13-byte public prefix) found in
/// `haystack`.
pub fn secret_piece(secrets: &[String], haystack: &[u8]) -> Option<String> {
    for secret in secrets {
        let body = secret.as_bytes().get(13..).unwrap_or(secret.as_bytes());
        let body = if body.len() < 10 {
            secret.as_bytes()
        } else {
            body
        };
        for piece in body.windows(10.min(body.len())) {
            if haystack.windows(piece.len()).any(|w| w == piece) {
                return Some(String::from_utf8_lossy(piece).into_owned());
            }
        }
    }
    None
}

/// What the probe received.
#[derive(Debug, Clone)]
pub struct Probe {
    pub pid: u32,
    /// The full argv of the shell running the probe: `/bin/sh`, the script path (the
    /// kernel puts the exec'd path there), then the arguments the probe was given.
    pub cmdline: Vec<Vec<u8>>,
    /// The exact environment, in order.
    pub environ: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its working directory, resolved.
    pub cwd: PathBuf,
    /// The descriptors open in the shell running the probe.
    pub fds: Vec<u32>,
    /// What the probe read from `$CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR`, when set:
    /// the first read, then a second one (which must find the pipe empty).
    pub fd_token: Option<(Vec<u8>, Vec<u8>)>,
}

impl Probe {
    fn read(dir: &Path) -> Option<Probe> {
        if !dir.join("ran").exists() {
            return None;
        }
        let text = |name: &str| fs::read_to_string(dir.join(name)).unwrap();
        let split = |bytes: Vec<u8>| -> Vec<Vec<u8>> {
            let mut parts: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
            assert_eq!(parts.pop(), Some(Vec::new()), "NUL-terminated list");
            parts
        };
        let environ = split(fs::read(dir.join("environ")).unwrap())
            .into_iter()
            .map(|kv| {
                let eq = kv.iter().position(|b| *b == b'=').expect("KEY=VALUE");
                (kv[..eq].to_vec(), kv[eq + 1..].to_vec())
            })
            .collect();
        let mut fds: Vec<u32> = text("fds")
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        fds.sort_unstable();
        Some(Probe {
            pid: text("pid").trim().parse().unwrap(),
            cmdline: split(fs::read(dir.join("cmdline")).unwrap()),
            environ,
            cwd: PathBuf::from(text("cwd").trim_end_matches('\n')),
            fds,
            fd_token: fs::read(dir.join("fd_token")).ok().map(|first| {
                (
                    first,
                    fs::read(dir.join("fd_token_again")).unwrap_or_default(),
                )
            }),
        })
    }

    /// The arguments the command got after its argv[0].
    pub fn args(&self) -> Vec<OsString> {
        self.cmdline[2..]
            .iter()
            .map(|a| OsString::from_vec(a.clone()))
            .collect()
    }

    /// Every value of `name` in the environment (a well-formed one has at most one).
    pub fn all(&self, name: &str) -> Vec<OsString> {
        self.environ
            .iter()
            .filter(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| OsString::from_vec(v.clone()))
            .collect()
    }

    /// The value of `name`, asserting it is set at most once.
    #[track_caller]
    pub fn var(&self, name: &str) -> Option<OsString> {
        let mut all = self.all(name);
        assert!(all.len() <= 1, "{name} is set {} times", all.len());
        all.pop()
    }

    /// The environment as a map (asserting no name repeats).
    #[track_caller]
    pub fn env_map(&self) -> BTreeMap<OsString, OsString> {
        let mut map = BTreeMap::new();
        for (k, v) in &self.environ {
            let k = OsString::from_vec(k.clone());
            assert!(
                map.insert(k.clone(), OsString::from_vec(v.clone()))
                    .is_none(),
                "{k:?} is set twice"
            );
        }
        map
    }

    /// The child got exactly `token`, one way: on the pipe named by
    /// `CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR` (readable once, and then not in the
    /// environment at all), or else as `CLAUDE_CODE_OAUTH_TOKEN`, once.
    #[track_caller]
    pub fn assert_token(&self, token: &str) {
        match &self.fd_token {
            Some((first, again)) => {
                assert_eq!(
                    String::from_utf8_lossy(first),
                    token,
                    "the command did not read exactly the expected token from the pipe"
                );
                assert!(again.is_empty(), "the token pipe could be read twice");
                assert_eq!(
                    self.all("CLAUDE_CODE_OAUTH_TOKEN"),
                    Vec::<OsString>::new(),
                    "the token is on a pipe and must not also be in the environment"
                );
                assert!(
                    !self
                        .environ
                        .iter()
                        .any(|(_, v)| v.windows(token.len()).any(|w| w == token.as_bytes())),
                    "the token is in the environment"
                );
            }
            None => assert_eq!(
                self.all("CLAUDE_CODE_OAUTH_TOKEN"),
                vec![OsString::from(token)],
                "the command did not get exactly the expected token"
            ),
        }
    }

    /// The way the token came: `"fd"` or `"env"`.
    pub fn token_via(&self) -> &'static str {
        if self.fd_token.is_some() { "fd" } else { "env" }
    }
}

/// Names in `dir` that look like a temp file left behind by a write.
pub fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".tmp")
                || n.contains(".tmp.")
                || (n.contains("claude-iso.") && n != ".claude-iso.lock")
        })
        .collect()
}

/// Names in `dir` starting with `prefix`.
pub fn names_with_prefix(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

/// `<home>/.claude.json`, parsed.
#[track_caller]
pub fn claude_json(home: &Path) -> serde_json::Value {
    let bytes = fs::read(home.join(".claude.json")).expect("read .claude.json");
    serde_json::from_slice(&bytes).expect(".claude.json is valid JSON")
}

/// Whether `doc` trusts `dir` the way claude looks it up.
pub fn trusts(doc: &serde_json::Value, dir: &Path) -> bool {
    doc["projects"][dir.to_str().unwrap()]["hasTrustDialogAccepted"] == serde_json::json!(true)
}

/// A sandbox whose launches use `$XDG_STATE_HOME` (no `--home`): named homes.
pub fn state_test() -> Test {
    let t = Test::new().no_home();
    let state = t.path("state");
    t.env("XDG_STATE_HOME", state)
}

/// claude-iso's state directory in a [`state_test`] sandbox.
pub fn state_dir(t: &Test) -> PathBuf {
    t.path("state/claude-iso")
}

/// The named home `name` in a [`state_test`] sandbox.
pub fn named(t: &Test, name: &str) -> PathBuf {
    state_dir(t).join("homes").join(name)
}

// ---------------------------------------------------------------------------------------
// Fixtures and helpers several suites share: secrets a user might paste, running
// claude-iso as another user, claude's lock, processes.
// ---------------------------------------------------------------------------------------

/// The start of an env file's token line.
pub const TOKEN_LINE: &str = "CLAUDE_CODE_OAUTH_TOKEN=";

/// An API key and a refresh token, as a user might paste them by mistake.
pub const API_KEY: &str = "sk-ant-api03-Hk4Ws9Nq2_Bx7Yt3Lm8Cv1Zp6Rd5Jf0-Eg2Ua";

pub const REFRESH: &str = "sk-ant-ort01-Pq8Vn3Xs6_Ty1Kb9Wm4Hd7Gc2Lz5-Rj0Fe";

/// `nobody`: the unprivileged user root runs claude-iso as, and the "other user" of
/// fixtures owned by someone else.
pub const NOBODY: u32 = 65534;

/// Gives `path` (not a symlink's target) to `uid`, user and group.
pub fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// Gives `path` (and everything below it) to the runner (root runs only).
pub fn own(path: &Path) {
    if !is_root() {
        return;
    }
    chown(path, NOBODY);
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            own(&e.unwrap().path());
        }
    }
}

/// Runs claude-iso unprivileged: as root, through `setpriv` as `nobody` (same PID), with
/// the env file and the probe's output directory given to it; otherwise as is.
pub fn as_runner(t: Test) -> Test {
    if !is_root() {
        return t;
    }
    own(&t.env_file());
    own(&t.path("probe"));
    t.wrap("exec setpriv --reuid=65534 --regid=65534 --clear-groups \"$0\" \"$@\"")
}

/// Modes and contents (not times: a hard link aside changes a file's ctime) of
/// everything under `dir`.
pub fn modes(dir: &Path) -> Vec<(PathBuf, u32, u32, Vec<u8>)> {
    tree(dir)
        .into_iter()
        .map(|(p, e)| (p, e.mode, e.uid, e.content))
        .collect()
}

/// A directory with `mode`, set exactly.
pub fn mkdir_mode(path: &Path, mode: u32) -> PathBuf {
    mkdir(path);
    chmod(path, mode);
    path.to_owned()
}

/// Waits until `pid` holds a `flock` (claude-iso took its own lock: it is seeding).
pub fn wait_for_flock(pid: u32, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let locks = fs::read_to_string("/proc/locks").unwrap();
        if locks
            .lines()
            .any(|l| l.contains("FLOCK") && l.split_whitespace().nth(4) == Some(&pid.to_string()))
        {
            // A moment more for it to reach the wait for claude's lock.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("claude-iso exited ({status}) before taking its lock");
        }
        assert!(Instant::now() < deadline, "claude-iso never took its lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keeps a claude lock (`.claude.json.lock`) fresh, as a live claude does, until dropped.
pub struct HeldClaudeLock {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldClaudeLock {
    pub fn new(home: &Path) -> Self {
        let dir = mkdir(&home.join(".claude.json.lock"));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(f) = fs::File::open(&dir) {
                        let _ = f.set_modified(std::time::SystemTime::now());
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            })
        };
        HeldClaudeLock {
            dir,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HeldClaudeLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

pub fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// A bind-mount wrapper: runs claude-iso in a private mount namespace (as root) or a
/// user + mount namespace (unprivileged) where `$1` is bind-mounted on `$2`.
pub fn bind_wrap(t: Test, source: &Path, target: &Path) -> Test {
    let ns = if is_root() {
        "unshare -m"
    } else {
        "unshare -Urm"
    };
    t.wrap(&format!(
        "exec {ns} /bin/sh -c 'mount --bind \"$1\" \"$2\" && shift 2 && exec \"$0\" \"$@\"' \"$0\" '{}' '{}' \"$@\"",
        source.display(),
        target.display()
    ))
}
