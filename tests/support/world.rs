//! Harness for the end-to-end suite: the real claude CLI behind claude-iso, talking to
//! a fake Messages API on 127.0.0.1, in a hostile caller environment that points at a
//! decoy "real home" full of credentials.
//!
//! The claude binary is found only through `CLAUDE_ISO_TEST_CLAUDE` (a path). Unset
//! outside CI: every test says so loudly and returns. Unset or broken under `CI=true`,
//! or set but broken anywhere: the test fails.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::fake_api::FakeApi;

pub use super::CLAUDE_ISO;
pub const CLAUDE_ENV: &str = "CLAUDE_ISO_TEST_CLAUDE";

/// Every secret planted in the decoy home or the caller's environment contains this.
pub const DECOY_MARK: &str = "DECOY";

/// Bound on one `claude --print` run.
pub const PRINT_TIMEOUT: Duration = Duration::from_secs(180);

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The claude binary to test, checked once per process (it must run `--version`).
/// `None` means: skip (unset, not under CI). Panics when it must not skip.
pub fn claude_binary(test: &str) -> Option<PathBuf> {
    static CHECKED: OnceLock<Result<(PathBuf, String), String>> = OnceLock::new();
    let value = std::env::var_os(CLAUDE_ENV).filter(|v| !v.is_empty());
    let Some(value) = value else {
        if under_ci() {
            panic!(
                "{CLAUDE_ENV} is not set but CI=true: the end-to-end suite must run in CI \
                 (use scripts/test, which installs claude and sets it)"
            );
        }
        // Straight to fd 2: the test harness captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPING end-to-end test `{test}`: {CLAUDE_ENV} is not set.\n\
             !!! Nothing was checked against the real claude CLI. Run `scripts/test`\n\
             !!! (installs the pinned claude and sets {CLAUDE_ENV}) to run it.\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
        return None;
    };
    let checked = CHECKED.get_or_init(|| check_claude(Path::new(&value)));
    match checked {
        Ok((p, version)) => {
            let _ = VERSION.set(version.clone());
            Some(p.clone())
        }
        Err(e) => panic!("{CLAUDE_ENV}={value:?} is not a runnable claude: {e}"),
    }
}

static VERSION: OnceLock<String> = OnceLock::new();

/// The tested claude's version (`2.1.197`), once [`claude_binary`] has checked it.
pub fn claude_version() -> Option<&'static str> {
    VERSION.get().map(String::as_str)
}

/// Whether the tested claude sends an unauthenticated `HEAD /` to the base URL at start,
/// for the releases this was measured on (`None`: not known, tolerated either way).
pub fn sends_head_probe() -> Option<bool> {
    match claude_version()? {
        "2.1.197" => Some(true),
        "2.1.330" | "2.1.332" => Some(false),
        _ => None,
    }
}

fn check_claude(path: &Path) -> Result<(PathBuf, String), String> {
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err("not an executable file".into());
    }
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(path);
    cmd.arg("--version")
        .env_clear()
        .env("PATH", base_path())
        .env("HOME", scratch.path())
        .env("TMPDIR", scratch.path())
        .envs(quiet_env())
        .current_dir(scratch.path());
    let run = run_timed(&mut cmd, Duration::from_secs(60), scratch.path());
    if !run.status.success() || !run.stdout.contains("Claude Code") {
        return Err(format!("`--version` failed: {run}"));
    }
    eprintln!("e2e: using {} ({})", path.display(), run.stdout.trim());
    let version = run
        .stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((path.to_path_buf(), version))
}

/// Variables every test sets for claude.
pub fn quiet_env() -> Vec<(String, String)> {
    [
        ("DISABLE_AUTOUPDATER", "1"),
        ("DISABLE_TELEMETRY", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// `PATH` after the test's own bin directory.
pub fn base_path() -> &'static str {
    "/usr/local/bin:/usr/bin:/bin"
}

/// The outcome of one finished command.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.status, self.elapsed, self.stdout, self.stderr
        )
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Run `cmd` (stdin closed, output to files under `log_dir`); kill it and panic if it
/// outlives `timeout`.
pub fn run_timed(cmd: &mut Command, timeout: Duration, log_dir: &Path) -> Run {
    run_watched(cmd, timeout, log_dir, || false)
}

/// [`run_timed`], also killing the command as soon as `abort` says so (the returned
/// [`Run`] then has the status of the killed process).
pub fn run_watched(
    cmd: &mut Command,
    timeout: Duration,
    log_dir: &Path,
    mut abort: impl FnMut() -> bool,
) -> Run {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let out_path = log_dir.join(format!("run{n}.stdout"));
    let err_path = log_dir.join(format!("run{n}.stderr"));
    let out = fs::File::create(&out_path).expect("create stdout log");
    let err = fs::File::create(&err_path).expect("create stderr log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if abort() {
            let _ = child.kill();
            continue;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {timeout:?}: {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                fs::read_to_string(&out_path).unwrap_or_default(),
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    Run {
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Writes a file with `mode`, creating its parent directories.
fn write_mode(path: &Path, contents: &str, mode: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent");
    }
    super::write_mode(path, contents, mode);
}

/// One test's private world: a temp root holding the decoy real home, the env file,
/// the scratch home (created by claude-iso unless a test pre-creates it), a bin dir
/// with `claude` in it, TMPDIR, logs.
pub struct World {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub claude: PathBuf,
    pub bin: PathBuf,
    pub decoy: PathBuf,
    pub env_file: PathBuf,
    pub token: String,
    pub home: PathBuf,
    pub tmpdir: PathBuf,
    pub logs: PathBuf,
    decoy_before: BTreeMap<String, String>,
    /// Per fake API (by URL): how many of its requests were checked and found clean.
    verified: Mutex<HashMap<String, usize>>,
}

impl World {
    /// `None`: skip this test (see [`claude_binary`]).
    pub fn new(test: &str) -> Option<World> {
        let claude = claude_binary(test)?;
        let tmp = tempfile::Builder::new()
            .prefix("claude-iso-e2e.")
            .tempdir()
            .expect("tempdir");
        let root = fs::canonicalize(tmp.path()).expect("canonicalize tempdir");
        let bin = root.join("bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(&claude, bin.join("claude")).expect("symlink claude");
        let tmpdir = root.join("tmp");
        let logs = root.join("logs");
        fs::create_dir_all(&tmpdir).unwrap();
        fs::create_dir_all(&logs).unwrap();

        let token = format!("sk-ant-oat01-e2eToken{}-{}AA", unique(), "x".repeat(80));
        let env_file = root.join("token.env");
        write_mode(
            &env_file,
            &format!("# test token\nCLAUDE_CODE_OAUTH_TOKEN={token}\n"),
            0o600,
        );

        let decoy = root.join("realhome");
        make_decoy_home(&decoy);
        let decoy_before = snapshot(&decoy);
        age_atimes(&decoy);

        Some(World {
            _tmp: tmp,
            home: root.join("scratch-home"),
            root,
            claude,
            bin,
            decoy,
            env_file,
            token,
            tmpdir,
            logs,
            decoy_before,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The world's files as they are now, to show that a refused launch changed nothing:
    /// no scratch home, no `.claude.json`, no quarantine. Not the logs, nor the decoy real
    /// home: reading it would spoil the check that nothing read it, and
    /// [`World::assert_decoy_unchanged`] compares it.
    pub fn unchanged(&self) -> super::Unchanged {
        super::Unchanged::skipping(&self.root, &["logs", "realhome"])
    }

    /// A new directory under the world's root.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// The hostile environment of the caller: the basics plus every credential and
    /// config relocation we know of, all pointing at the decoy home.
    pub fn caller_env(&self, api: &FakeApi) -> Vec<(String, String)> {
        let d = |rel: &str| self.decoy.join(rel).to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                format!("{}:{}", self.bin.display(), base_path()),
            ),
            ("HOME".into(), self.decoy.to_string_lossy().into_owned()),
            ("LANG".into(), "C.UTF-8".into()),
            ("TMPDIR".into(), self.tmpdir.to_string_lossy().into_owned()),
            ("ANTHROPIC_BASE_URL".into(), api.base_url()),
            // The decoys.
            (
                "ANTHROPIC_API_KEY".into(),
                format!("sk-ant-api03-{DECOY_MARK}-env-api-key-AAAAAAAAAAAAAAAAAAAA"),
            ),
            (
                "ANTHROPIC_AUTH_TOKEN".into(),
                format!("{DECOY_MARK}-env-auth-token"),
            ),
            (
                "CLAUDE_CODE_OAUTH_TOKEN".into(),
                format!("sk-ant-oat01-{DECOY_MARK}-caller-env-token"),
            ),
            ("CLAUDE_CONFIG_DIR".into(), d(".claude")),
            ("CLAUDE_SECURESTORAGE_CONFIG_DIR".into(), d(".claude")),
            ("ANTHROPIC_CONFIG_DIR".into(), d(".config/anthropic")),
            ("ANTHROPIC_PROFILE".into(), "decoy".into()),
            ("XDG_CONFIG_HOME".into(), d(".config")),
            // Issue 11: credentials and switches of newer releases.
            (
                "ANTHROPIC_CUSTOM_HEADERS".into(),
                format!("x-api-key: sk-ant-api03-{DECOY_MARK}-custom-header"),
            ),
            (
                "ANTHROPIC_FOUNDRY_API_KEY".into(),
                format!("{DECOY_MARK}-foundry-api-key"),
            ),
            (
                "CLAUDE_CODE_CUSTOM_OAUTH_URL".into(),
                "http://127.0.0.1:9/decoy-oauth".into(),
            ),
            (
                "CLAUDE_CODE_REMOTE_SESSION_ID".into(),
                format!("{DECOY_MARK}-remote-session"),
            ),
        ];
        env.extend(quiet_env());
        env
    }

    /// A `claude-iso --env-file F --home H [pre...] -- claude [args...]` command in the
    /// caller's hostile environment, run from `cwd`.
    pub fn launcher(
        &self,
        api: &FakeApi,
        cwd: &Path,
        pre: &[&str],
        claude_args: &[&str],
    ) -> Command {
        let mut cmd = Command::new(CLAUDE_ISO);
        cmd.env_clear()
            .envs(self.caller_env(api))
            .env("PWD", cwd)
            .current_dir(cwd)
            .arg("--env-file")
            .arg(&self.env_file)
            .arg("--home")
            .arg(&self.home)
            .args(pre)
            .arg("--")
            .arg("claude")
            .args(claude_args);
        cmd
    }

    /// `claude-iso ... -- claude --print <prompt>` from `cwd`, bounded.
    ///
    /// Stops claude early and fails once the API has seen a request without the env
    /// token (claude can retry a refused foreign credential for minutes).
    pub fn print(&self, api: &FakeApi, cwd: &Path, pre: &[&str], prompt: &str) -> Run {
        let mut cmd = self.launcher(api, cwd, pre, &["--print", prompt]);
        let run = run_watched(&mut cmd, PRINT_TIMEOUT, &self.logs, || {
            self.foreign_request(api).is_some()
        });
        if let Some(bad) = self.foreign_request(api) {
            panic!(
                "credential isolation broken: {bad}\nall requests:\n{}\nclaude-iso (stopped): {run}",
                api.summary()
            );
        }
        run
    }

    /// The first request that carried a credential other than the env file's token, or
    /// anything of the decoys', or that asked for a message without exactly the token,
    /// described. A request with no credential at all (claude 2.1.197 probes the base
    /// URL with an unauthenticated `HEAD /` at start) is not a leak.
    pub fn foreign_request(&self, api: &FakeApi) -> Option<String> {
        let want = format!("Bearer {}", self.token);
        // Requests already found clean stay clean: only look at the new ones.
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        let from = verified.get(&api.base_url()).copied().unwrap_or(0);
        let (seen, bad) = api.scan_from(from, |r| {
            let what = if r
                .authorization
                .as_deref()
                .is_some_and(|a| a != want.as_str())
            {
                format!(
                    "authorization {:?} is not the env file's token",
                    r.authorization
                )
            } else if r.authorization.is_none() && r.is_messages() {
                "a message request without the env file's token".to_string()
            } else if r.x_api_key.is_some() {
                format!("x-api-key {:?}", r.x_api_key)
            } else if let Some((k, _)) = r.headers.iter().find(|(_, v)| v.contains(DECOY_MARK)) {
                format!("header {k} carries a decoy secret")
            } else if r
                .body
                .windows(DECOY_MARK.len())
                .any(|w| w == DECOY_MARK.as_bytes())
            {
                "the body carries decoy data (the decoy home's config was read)".to_string()
            } else {
                return None;
            };
            Some(format!("{} {}: {what}", r.method, r.path))
        });
        if bad.is_none() {
            verified.insert(api.base_url(), seen);
        }
        bad
    }

    /// The API was asked, saw only the env token, the decoy is untouched and `dir` is
    /// trusted: what every successful case must show.
    pub fn assert_answered_in_isolation(&self, api: &FakeApi, dir: &Path) {
        assert!(
            !api.message_requests().is_empty(),
            "no POST /v1/messages:\n{}",
            api.summary()
        );
        self.assert_only_token(api);
        self.assert_decoy_unchanged();
        self.assert_trusted(dir);
    }

    /// The API saw at least one request; none carried a credential other than the env
    /// file's token or anything of the decoys', and every `POST /v1/messages` carried
    /// exactly the token as a Bearer.
    pub fn assert_only_token(&self, api: &FakeApi) {
        assert!(
            !api.requests().is_empty(),
            "the fake API saw no request at all"
        );
        if let Some(bad) = self.foreign_request(api) {
            panic!(
                "credential isolation broken: {bad}\nall requests:\n{}",
                api.summary()
            );
        }
    }

    /// Case 3: the decoy real home is byte-for-byte what it was (contents, modes,
    /// owners, mtimes, symlink targets, no entry added or removed) and, where the file
    /// system keeps access times, none of its files was even read.
    pub fn assert_decoy_unchanged(&self) {
        self.assert_decoy_unchanged_but_read(&[]);
    }

    /// As [`Self::assert_decoy_unchanged`], except that files under the `shared`
    /// directories (relative to the decoy, as `--share` names them) may have been read.
    pub fn assert_decoy_unchanged_but_read(&self, shared: &[&str]) {
        // Access times first: the snapshot below reads every file.
        let read: Vec<String> = files_read_since_aged(&self.decoy)
            .into_iter()
            .filter(|f| !shared.iter().any(|s| Path::new(f).starts_with(s)))
            .collect();
        let after = snapshot(&self.decoy);
        age_atimes(&self.decoy);
        let mut diff = String::new();
        for (k, v) in &self.decoy_before {
            match after.get(k) {
                None => diff.push_str(&format!("  removed: {k}\n")),
                Some(a) if a != v => diff.push_str(&format!("  changed: {k}\n")),
                _ => {}
            }
        }
        for k in after.keys() {
            if !self.decoy_before.contains_key(k) {
                diff.push_str(&format!("  added:   {k}\n"));
            }
        }
        assert!(diff.is_empty(), "the decoy real home changed:\n{diff}");
        assert!(
            read.is_empty(),
            "files of the decoy real home were read (its config or credential store is \
             reachable from claude): {read:?}"
        );
    }

    /// Writes a file into the decoy real home (as a user's own config) and takes it as
    /// the decoy's new state.
    pub fn add_to_decoy(&mut self, rel: &str, text: &str) {
        write_mode(&self.decoy.join(rel), text, 0o644);
        self.decoy_before = snapshot(&self.decoy);
        age_atimes(&self.decoy);
    }

    /// The scratch home's `.claude.json`, parsed (panics unless it is a JSON object).
    pub fn claude_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let path = self.home.join(".claude.json");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        match serde_json::from_str(&text) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(other) => panic!("{} is not a JSON object: {other}", path.display()),
            Err(e) => panic!("{} is not valid JSON ({e}):\n{text}", path.display()),
        }
    }

    /// `.claude.json` has onboarding done and trusts `dir` (by its realpath).
    pub fn assert_trusted(&self, dir: &Path) {
        let json = self.claude_json();
        let real = fs::canonicalize(dir).unwrap();
        assert_eq!(
            json.get("hasCompletedOnboarding"),
            Some(&serde_json::Value::Bool(true)),
            "hasCompletedOnboarding not true"
        );
        let trusted = json
            .get("projects")
            .and_then(|p| p.get(real.to_str().unwrap()))
            .and_then(|p| p.get("hasTrustDialogAccepted"));
        assert_eq!(
            trusted,
            Some(&serde_json::Value::Bool(true)),
            "{} not trusted in .claude.json; projects: {:?}",
            real.display(),
            json.get("projects")
                .map(|p| p.as_object().map(|o| o.keys().collect::<Vec<_>>()))
        );
    }

    /// Create the scratch home (mode 0700) and its `.claude` ahead of claude-iso.
    pub fn precreate_home(&self) -> PathBuf {
        let dot = self.home.join(".claude");
        fs::create_dir_all(&dot).unwrap();
        fs::set_permissions(&self.home, fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(&dot, fs::Permissions::from_mode(0o700)).unwrap();
        dot
    }
}

/// A realistic logged-in real home whose every secret contains [`DECOY_MARK`].
fn make_decoy_home(decoy: &Path) {
    let far_future_ms: u64 = 4_102_444_800_000; // 2100-01-01
    let creds = serde_json::json!({
        "claudeAiOauth": {
            "accessToken": format!("sk-ant-oat01-{DECOY_MARK}-access-token"),
            "refreshToken": format!("sk-ant-ort01-{DECOY_MARK}-refresh-token"),
            "expiresAt": far_future_ms,
            "scopes": ["user:inference", "user:profile", "user:sessions:claude_code"],
            "subscriptionType": "max",
        }
    });
    fs::create_dir_all(decoy).unwrap();
    fs::set_permissions(decoy, fs::Permissions::from_mode(0o700)).unwrap();
    write_mode(
        &decoy.join(".claude/.credentials.json"),
        &creds.to_string(),
        0o600,
    );
    // Would win over the OAuth env token if this settings file were read.
    write_mode(
        &decoy.join(".claude/settings.json"),
        &serde_json::json!({
            "apiKeyHelper": format!("echo sk-ant-api03-{DECOY_MARK}-api-key-helper"),
        })
        .to_string(),
        0o644,
    );
    // Ends up in the request body if this memory file were read.
    write_mode(
        &decoy.join(".claude/CLAUDE.md"),
        &format!("Always mention {DECOY_MARK}-MEMORY-MARKER.\n"),
        0o644,
    );
    write_mode(
        &decoy.join(".claude.json"),
        &serde_json::json!({
            "hasCompletedOnboarding": true,
            "userID": format!("{DECOY_MARK}-user-id"),
            "oauthAccount": {"emailAddress": format!("{DECOY_MARK}@example.invalid")},
            "projects": {},
        })
        .to_string(),
        0o600,
    );
    // The SDK profile chain ($ANTHROPIC_CONFIG_DIR, $XDG_CONFIG_HOME/anthropic,
    // ~/.config/anthropic).
    let anthropic = decoy.join(".config/anthropic");
    write_mode(&anthropic.join("active_config"), "decoy\n", 0o644);
    write_mode(
        &anthropic.join("configs/decoy.json"),
        &serde_json::json!({"authentication": {"type": "user_oauth"}}).to_string(),
        0o600,
    );
    write_mode(
        &anthropic.join("credentials/decoy.json"),
        &serde_json::json!({
            "access_token": format!("sk-ant-oat01-{DECOY_MARK}-profile-access"),
            "refresh_token": format!("sk-ant-ort01-{DECOY_MARK}-profile-refresh"),
            "expires_at": far_future_ms / 1000,
        })
        .to_string(),
        0o600,
    );
}

/// The access time [`age_atimes`] gives every decoy file: 2000-01-01, before any mtime,
/// so even a `relatime` mount records the next read.
const AGED: Duration = Duration::from_secs(946_684_800);

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let ft = fs::symlink_metadata(&p).unwrap().file_type();
        if ft.is_dir() {
            stack.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if ft.is_file() {
            files.push(p);
        }
    }
    files.sort();
    files
}

fn set_atime(path: &Path, when: SystemTime) {
    // Opening does not read; futimens with only the access time leaves mtime alone.
    fs::File::open(path)
        .and_then(|f| f.set_times(fs::FileTimes::new().set_accessed(when)))
        .unwrap_or_else(|e| panic!("set atime of {}: {e}", path.display()));
}

fn atime(path: &Path) -> SystemTime {
    fs::metadata(path).unwrap().accessed().unwrap()
}

/// Whether reading a file updates its access time here (not on `noatime` mounts).
fn atimes_tracked() -> bool {
    static TRACKED: OnceLock<bool> = OnceLock::new();
    *TRACKED.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let canary = dir.path().join("canary");
        fs::write(&canary, "x").unwrap();
        set_atime(&canary, UNIX_EPOCH + AGED);
        let _ = fs::read(&canary).unwrap();
        let tracked = atime(&canary) != UNIX_EPOCH + AGED;
        if !tracked {
            eprintln!(
                "e2e: this file system does not record reads (noatime); the suite cannot \
                 check that no decoy file is read, only that none changes"
            );
        }
        tracked
    })
}

/// Set every regular file's access time under `root` to [`AGED`].
fn age_atimes(root: &Path) {
    for f in files_under(root) {
        set_atime(&f, UNIX_EPOCH + AGED);
    }
}

/// Files under `root` read since [`age_atimes`] (empty where reads are not recorded).
fn files_read_since_aged(root: &Path) -> Vec<String> {
    if !atimes_tracked() {
        return Vec::new();
    }
    files_under(root)
        .into_iter()
        .filter(|f| atime(f) != UNIX_EPOCH + AGED)
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

/// Every entry under `root` (itself included) by its path from `root` (`/`, `/a/b`):
/// type, mode, owner, size, mtime, and the contents or symlink target. Not following
/// symlinks. Unlike [`super::tree`], not the inode nor the ctime: setting access times
/// (to see reads) changes the ctime.
pub fn snapshot(root: &Path) -> BTreeMap<String, String> {
    super::tree(root)
        .into_iter()
        .map(|(rel, e)| {
            let what = match e.kind {
                "symlink" => format!(
                    "link -> {}",
                    Path::new(std::ffi::OsStr::from_bytes(&e.content)).display()
                ),
                "dir" => "dir".to_string(),
                "file" => format!("file {:?}", e.content),
                _ => "other".to_string(),
            };
            let mtime = e.mtime_ns;
            (
                format!("/{}", rel.display()),
                format!(
                    "mode={:o} uid={} gid={} size={} mtime={}.{:09} {what}",
                    e.mode,
                    e.uid,
                    e.gid,
                    e.size,
                    mtime.div_euclid(1_000_000_000),
                    mtime.rem_euclid(1_000_000_000)
                ),
            )
        })
        .collect()
}
