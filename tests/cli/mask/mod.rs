//! The mask (issue 10): under the default `--mask auto`, the command and everything it
//! starts cannot read, write, create, rename over or remove the real credential files,
//! nor reach them through another process's `/proc/<pid>/root`, nor unmount the masks;
//! the real files are unchanged. Where the kernel refuses namespaces, `on` exits 125 and
//! `auto` warns once and runs. Every test runs as root and as an unprivileged user (CI
//! runs each test binary both ways).

mod views;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::sandbox::{
    Entry, TOKEN, Test, is_root, mkdir, spawn_helper, tree, write_executable, write_mode,
};

/// What the real credential files hold: none of it may reach the command's output.
const MARKS: &[&str] = &[
    "CREDS-MARK-home-credentials",
    "CREDS-MARK-home-device-keys",
    "CREDS-MARK-config-dir",
    "CREDS-MARK-securestorage",
    "CREDS-MARK-profile-store",
    "CREDS-MARK-xdg-profile",
];

/// A sandbox whose caller points at every kind of credential store: the real home's
/// `~/.claude` (credentials, device keys, settings), `~/.claude.json`,
/// `CLAUDE_CONFIG_DIR`, `CLAUDE_SECURESTORAGE_CONFIG_DIR`, `ANTHROPIC_CONFIG_DIR` and
/// `$XDG_CONFIG_HOME/anthropic`. The env file (holding the token) is masked too.
struct Stores {
    t: Test,
    /// Files that must read as empty.
    files: Vec<PathBuf>,
    /// Directories in which nothing may be created, renamed or removed.
    dirs: Vec<PathBuf>,
    /// Directories that must look empty.
    hidden: Vec<PathBuf>,
    /// Everything to snapshot before and after.
    roots: Vec<PathBuf>,
}

fn stores() -> Stores {
    let t = Test::new();
    let home = t.real_home();
    let claude = mkdir(&home.join(".claude"));
    write_mode(&claude.join(".credentials.json"), MARKS[0], 0o600);
    write_mode(&claude.join(".device-keys.json"), MARKS[1], 0o600);
    write_mode(&claude.join("settings.json"), "{}", 0o644);
    write_mode(&home.join(".claude.json"), "{\"numStartups\": 3}", 0o600);
    let config_dir = mkdir(&t.path("stores/config"));
    write_mode(&config_dir.join(".credentials.json"), MARKS[2], 0o600);
    let secure = mkdir(&t.path("stores/secure"));
    write_mode(&secure.join(".credentials.json"), MARKS[3], 0o600);
    let profiles = mkdir(&t.path("stores/profiles/credentials"))
        .parent()
        .unwrap()
        .to_owned();
    write_mode(&profiles.join("credentials/default.json"), MARKS[4], 0o600);
    write_mode(&profiles.join("active_config"), "default", 0o644);
    let xdg = mkdir(&t.path("stores/xdg"));
    let xdg_profiles = mkdir(&xdg.join("anthropic/credentials"))
        .parent()
        .unwrap()
        .to_owned();
    write_mode(
        &xdg_profiles.join("credentials/default.json"),
        MARKS[5],
        0o600,
    );
    let env_file = t.env_file();
    let t = t
        .env("CLAUDE_CONFIG_DIR", &config_dir)
        .env("CLAUDE_SECURESTORAGE_CONFIG_DIR", &secure)
        .env("ANTHROPIC_CONFIG_DIR", &profiles)
        .env("XDG_CONFIG_HOME", &xdg);
    Stores {
        files: vec![
            claude.join(".credentials.json"),
            claude.join(".device-keys.json"),
            config_dir.join(".credentials.json"),
            secure.join(".credentials.json"),
            env_file.clone(),
        ],
        dirs: vec![claude.clone(), config_dir.clone(), secure.clone()],
        hidden: vec![profiles.clone(), xdg_profiles.clone()],
        roots: vec![
            claude,
            home.join(".claude.json"),
            t.path("stores"),
            env_file,
        ],
        t,
    }
}

fn snapshot(roots: &[PathBuf]) -> Vec<BTreeMap<PathBuf, Entry>> {
    roots.iter().map(|r| tree(r)).collect()
}

/// A shell script the command runs: it tries every change and prints one line per
/// attempt, `ok` or `refused`; what it reads is printed between markers.
fn attack_script(s: &Stores, outside_pid: u32) -> String {
    let probe = s.t.path("probe");
    let mut script = format!(
        "#!/bin/sh\nprobe='{}'\ntry() {{ label=$1; shift; if \"$@\" 2>/dev/null; then echo \"$label: ok\"; else echo \"$label: refused\"; fi; }}\n",
        probe.display()
    );
    let claude_json = s.t.real_home().join(".claude.json");
    for f in s.files.iter().chain(std::iter::once(&claude_json)) {
        // ~/.claude.json holds no credential: it stays readable, only read-only.
        let read = if *f == claude_json {
            "read-only"
        } else {
            "read"
        };
        let f = f.display();
        script.push_str(&format!(
            "echo \"{read} {f}: [$(cat '{f}' 2>&1)]\"\n\
             echo \"proc-root {f}: [$(cat /proc/{outside_pid}/root'{f}' 2>&1)]\"\n\
             echo \"proc-1-root {f}: [$(cat /proc/1/root'{f}' 2>&1)]\"\n\
             try 'write {f}' sh -c 'echo pwned > \"$1\"' _ '{f}'\n\
             try 'append {f}' sh -c 'echo pwned >> \"$1\"' _ '{f}'\n\
             try 'truncate {f}' truncate -s 0 '{f}'\n\
             try 'chmod {f}' chmod 666 '{f}'\n\
             echo replacement > \"$probe/new\"\n\
             try 'rename-over {f}' mv -f \"$probe/new\" '{f}'\n\
             try 'remove {f}' rm '{f}'\n\
             try 'rename-away {f}' mv '{f}' \"$probe/moved\"\n"
        ));
    }
    for d in &s.dirs {
        let d = d.display();
        script.push_str(&format!(
            "try 'create in {d}' touch '{d}/new-file'\n\
             try 'create .credentials.json in {d}' sh -c 'echo forged > \"$1/.credentials.json.tmp\"' _ '{d}'\n\
             try 'mkdir in {d}' mkdir '{d}/backups-new'\n"
        ));
    }
    for d in &s.hidden {
        let d = d.display();
        script.push_str(&format!(
            "echo \"list {d}: [$(ls -A '{d}' 2>&1)]\"\n\
             echo \"read {d}/credentials/default.json: [$(cat '{d}/credentials/default.json' 2>&1)]\"\n\
             try 'create in {d}' touch '{d}/new-file'\n"
        ));
    }
    // The settings file in ~/.claude is not a credential: still, nothing in a real
    // config dir may be renamed or removed.
    let settings = s.t.real_home().join(".claude/settings.json");
    let settings = settings.display();
    script.push_str(&format!(
        "try 'rename {settings}' mv '{settings}' '{settings}.old'\n\
         try 'remove {settings}' rm '{settings}'\n"
    ));
    script
}

/// Asserts stderr holds nothing but the warning about the scrubbed variables the
/// sandbox sets (`CLAUDE_CONFIG_DIR`, …).
#[track_caller]
fn only_the_scrub_warning(err: &str) {
    for line in err.lines() {
        assert!(
            line.starts_with("claude-iso: warning: not passing "),
            "unexpected stderr: {err}"
        );
    }
}

fn outside_process() -> std::process::Child {
    spawn_helper(Command::new("/bin/sleep").arg("60"))
}

/// The core promise, with the default mask.
#[test]
fn under_the_mask_credentials_read_empty_and_cannot_be_changed() {
    let s = stores();
    let before = snapshot(&s.roots);
    let mut outside = outside_process();
    let script = s.t.path("attack.sh");
    write_executable(&script, &attack_script(&s, outside.id()));
    let t = s.t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    let _ = outside.kill();
    let _ = outside.wait();
    out.status(0);
    only_the_scrub_warning(&out.stderr_text());
    let text = out.stdout_text();
    assert!(text.contains("read-only "), "{text}");
    for mark in MARKS {
        assert!(!text.contains(mark), "{mark} reached the command:\n{text}");
    }
    assert!(
        !text.contains(&TOKEN[13..]),
        "the env file's token was read through the mask"
    );
    let mut attempts = 0;
    for line in text.lines() {
        if let Some(label) = line.strip_suffix(": ok") {
            panic!("the command could {label}:\n{text}");
        }
        if line.ends_with(": refused") {
            attempts += 1;
        }
        if let Some(rest) = line.strip_prefix("read ") {
            let content = rest.split_once(": [").unwrap().1;
            assert!(
                content == "]"
                    || content.contains("No such file")
                    || content.contains("Permission denied"),
                "a masked file is not empty: {line}"
            );
        }
        if let Some(rest) = line.strip_prefix("list ") {
            assert!(
                rest.ends_with(": []"),
                "a hidden store is not empty: {line}"
            );
        }
        if line.starts_with("proc-") {
            assert!(
                line.contains("Permission denied"),
                "another process's root was reachable: {line}"
            );
        }
    }
    // 6 files × 7 attempts + 3 dirs × 3 + 2 hidden + 2 on settings.json.
    assert_eq!(attempts, 6 * 7 + 3 * 3 + 2 + 2, "{text}");
    assert_eq!(
        snapshot(&s.roots),
        before,
        "a real credential store changed"
    );
}

/// The same script without the mask reads the real files: the test sees what it
/// claims to prevent.
#[test]
fn without_the_mask_the_same_files_are_readable() {
    for by_variable in [false, true] {
        let s = stores();
        let script = s.t.path("read.sh");
        let reads: String = s
            .files
            .iter()
            .map(|f| format!("cat '{}'; echo\n", f.display()))
            .collect();
        write_executable(&script, &format!("#!/bin/sh\n{reads}"));
        let t = if by_variable {
            s.t.env("CLAUDE_ISO_MASK", "off")
        } else {
            s.t.args(["--mask", "off"])
        };
        let t = t.command(["/bin/sh", script.to_str().unwrap()]);
        let out = t.run();
        out.status(0);
        for mark in [MARKS[0], MARKS[1], MARKS[2], MARKS[3]] {
            assert!(out.stdout_text().contains(mark), "{}", out.stdout_text());
        }
    }
}

/// Neither root nor an unprivileged user can remove the masks: not with `umount`, not
/// lazily, not by remounting read-write, not from a user namespace of its own.
#[test]
fn the_command_cannot_unmount_the_masks() {
    let s = stores();
    let creds = s.t.real_home().join(".claude/.credentials.json");
    let dir = s.t.real_home().join(".claude");
    let env_file = s.t.env_file();
    let (c, d, e) = (creds.display(), dir.display(), env_file.display());
    let script = s.t.path("umount.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n\
             attempt() {{ \"$@\" >/dev/null 2>&1; echo \"after $*: [$(cat '{c}' '{e}' 2>/dev/null)]\"; }}\n\
             attempt umount '{e}'\n\
             attempt umount -l '{e}'\n\
             attempt umount -l '{d}'\n\
             attempt mount -o remount,rw,bind '{e}'\n\
             attempt mount -o remount,rw,bind '{d}'\n\
             attempt unshare -U -r -m sh -c \"umount -l '{e}'; umount -l '{d}'; cat '{c}' '{e}'\"\n\
             if sh -c \"echo pwned > '{e}'\" 2>/dev/null; then echo 'write: ok'; fi\n\
             echo \"uid $(id -u)\"\n"
        ),
    );
    let run = s.t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = run.run();
    out.status(0);
    let text = out.stdout_text();
    assert!(!text.contains(MARKS[0]), "a mask was removed:\n{text}");
    assert!(!text.contains(&TOKEN[13..]), "a mask was removed:\n{text}");
    assert!(!text.contains("write: ok"), "{text}");
    assert_eq!(text.matches(": []").count(), 6, "{text}");
    let uid = if is_root() { "uid 0" } else { "uid " };
    assert!(text.contains(uid), "{text}");
}

/// Processes outside the mask keep seeing the real files (the mask is private).
#[test]
fn the_mask_is_private_to_the_command() {
    let s = stores();
    let creds = s.t.real_home().join(".claude/.credentials.json");
    let script = s.t.path("wait.sh");
    let flag = s.t.path("probe/inside");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\ncat '{}' > '{}'\nsleep 1\n",
            creds.display(),
            flag.display()
        ),
    );
    let t = s.t.command(["/bin/sh", script.to_str().unwrap()]);
    let running = t.spawn();
    while !flag.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(fs::read_to_string(&creds).unwrap(), MARKS[0]);
    running.wait().status(0);
    assert_eq!(fs::read_to_string(&flag).unwrap(), "");
}

/// The command starts with no child of claude-iso's: the mask's helpers (the probe's,
/// and, for root, the one whose namespaces the launch joined) are reaped before the exec.
#[test]
fn the_command_inherits_no_helper_as_a_child() {
    for mode in ["auto", "on"] {
        let t = plain().args(["--mask", mode, "-v"]).command([
            "/bin/sh",
            "-c",
            "read -r kids < /proc/$$/task/$$/children; echo \"children: [$kids]\"",
        ]);
        let out = t.run();
        out.status(0);
        assert!(
            out.stderr_text().contains("paths masked"),
            "--mask {mode}: not masked: {}",
            out.stderr_text()
        );
        assert_eq!(
            out.stdout_text().trim(),
            "children: []",
            "--mask {mode}: the command inherited children"
        );
    }
}

/// `/bin/sh -c SCRIPT claude-iso ARGS…` inside a user namespace where
/// `user.max_user_namespaces` is 0: the kernel itself refuses every new user namespace
/// there (ENOSPC), as it does on a host with `sysctl user.max_user_namespaces=0`.
/// claude-iso runs as root of that namespace (its uid is mapped to 0), so this is the
/// refusal of root's locking step; `unshare(1)` proves the refusal is real.
const NO_USERNS: &str = "exec unshare -U -r /bin/sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && ! unshare -U true 2>/dev/null && exec \"$0\" \"$@\"' \"$0\" \"$@\"";

/// A sandbox with a real `~/.claude/.credentials.json` and nothing in the environment.
fn plain() -> Test {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&claude.join(".credentials.json"), MARKS[0], 0o600);
    t
}

#[test]
fn mask_on_where_namespaces_are_refused_exits_125() {
    let run = plain().wrap(NO_USERNS).args(["--mask", "on"]);
    let out = run.run();
    out.status(125)
        .one_line_error("cannot mask the real credentials")
        .probe_not_run();
    let err = out.stderr_text();
    assert!(err.contains("max_user_namespaces"), "{err}");
    assert!(err.contains("--mask off"), "{err}");
}

#[test]
fn mask_auto_where_namespaces_are_refused_warns_once_and_runs() {
    let run = plain().wrap(NO_USERNS);
    let out = run.run();
    out.success();
    let err = out.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("claude-iso: warning: cannot mask the real credentials")
            && err.contains("max_user_namespaces")
            && err.contains("isolated by environment"),
        "{err}"
    );
    out.probe().assert_token(TOKEN);
    // A unit whose kernel refuses hears it once a day per home: the next start into the
    // same home says nothing (and still runs unmasked); -v says it again.
    run.reset_probe();
    let again = run.run();
    again.success().stderr("");
    again.probe().assert_token(TOKEN);
    run.reset_probe();
    let verbose = run.spawn_with(["-v"]).wait();
    verbose.success();
    assert!(
        verbose
            .stderr_text()
            .contains("claude-iso: warning: cannot mask the real credentials"),
        "{}",
        verbose.stderr_text()
    );
    // The same with CLAUDE_ISO_MASK=on from the environment.
    let run = plain().wrap(NO_USERNS).env("CLAUDE_ISO_MASK", "on");
    run.run().status(125).probe_not_run();
}

#[test]
fn a_bad_mask_variable_is_a_usage_error() {
    let t = Test::new().env("CLAUDE_ISO_MASK", "sometimes");
    t.run()
        .status(125)
        .one_line_error("CLAUDE_ISO_MASK must be auto, on or off")
        .probe_not_run();
}

/// A claude-iso started inside a masked one works (its own mask nests), and the outer
/// masks still hold inside it. The inner one takes the token from the environment the
/// outer one gave it (the env file reads as empty in there).
#[test]
fn nested_claude_iso_inside_the_mask_works() {
    let s = stores();
    let creds = s.t.real_home().join(".claude/.credentials.json");
    let inner_home = s.t.path("inner-home");
    let script = s.t.path("nested.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\nexec '{bin}' --mask on --home '{home}' -- /bin/sh -c \"cat '{creds}' 2>/dev/null; exec '{probe}'\"\n",
            bin = crate::support::sandbox::BIN,
            home = inner_home.display(),
            creds = creds.display(),
            probe = s.t.probe_path().display(),
        ),
    );
    let run = s.t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = run.run();
    out.success();
    only_the_scrub_warning(&out.stderr_text());
    assert!(
        !out.stdout_text().contains(MARKS[0]),
        "{}",
        out.stdout_text()
    );
    let probe = out.probe();
    probe.assert_token(TOKEN);
    assert_eq!(probe.var("HOME"), Some(inner_home.into()));
}

/// claude's subprocess isolation (bubblewrap) needs nested namespaces: it works inside
/// the mask, as root and unprivileged, and the masks hold inside it.
#[test]
fn bubblewrap_works_inside_the_mask() {
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bubblewrap is not installed: apt-get install bubblewrap (.ci/run does)");
    let s = stores();
    let creds = s.t.env_file();
    let run = s.t.command([
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",
        "--",
        "/bin/sh",
        "-c",
        &format!("echo \"in bwrap: [$(cat '{}')]\"", creds.display()),
    ]);
    let out = run.run();
    out.status(0).stdout("in bwrap: []\n");
}

#[test]
fn dry_run_lists_the_masked_paths_and_says_whether_it_is_possible() {
    let s = stores();
    let files = s.files.clone();
    let run = s.t.arg("--dry-run");
    let out = run.run();
    out.status(0).probe_not_run();
    let text = out.stdout_text();
    for f in &files {
        let hidden_dir = f
            .ancestors()
            .skip(1)
            .any(|d| text.contains(&format!("mask: hidden {}\n", d.display())));
        assert!(
            hidden_dir || text.contains(&format!("mask: empty {}\n", f.display())),
            "{f:?} missing from:\n{text}"
        );
    }
    assert!(text.contains("mask: possible here\n"), "{text}");
    let run = Test::new().args(["--dry-run", "--mask", "off"]);
    let out = run.run();
    assert!(
        out.stdout_text().contains("mask: off"),
        "{}",
        out.stdout_text()
    );
    let s = stores();
    let run = s.t.wrap(NO_USERNS).arg("--dry-run");
    let out = run.run();
    out.status(0);
    assert!(
        out.stdout_text().contains("mask: NOT possible here")
            && out.stdout_text().contains("max_user_namespaces"),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn doctor_reports_the_mask() {
    let s = stores();
    let env_file = s.t.env_file();
    let home = s.t.home();
    let t =
        s.t.no_env_file()
            .no_home()
            .args(["doctor", "--json", "--env-file"])
            .arg(&env_file)
            .arg("--home")
            .arg(&home);
    let out = t.run();
    let json: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let mask = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mask")
        .expect("a mask check");
    assert_eq!(mask["status"], "ok", "{mask}");
    let detail = mask["detail"].as_str().unwrap();
    assert!(detail.starts_with("possible here: "), "{detail}");
    let entries: Vec<&str> = detail["possible here: ".len()..].split(", ").collect();
    for f in &s.files {
        let hidden_dir = f
            .ancestors()
            .skip(1)
            .any(|d| entries.contains(&format!("hidden {}", d.display()).as_str()));
        assert!(
            hidden_dir || entries.contains(&format!("empty {}", f.display()).as_str()),
            "{f:?} not in {detail}"
        );
    }
    let run = t.wrap(NO_USERNS).args(["--mask", "on"]);
    let out = run.run();
    let json: serde_json::Value = serde_json::from_str(&out.stdout_text()).unwrap();
    let mask = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mask")
        .unwrap();
    assert_eq!(mask["status"], "fail", "{mask}");
    assert!(
        mask["detail"]
            .as_str()
            .unwrap()
            .contains("max_user_namespaces"),
        "{mask}"
    );
}

// ---------------------------------------------------------------------------------------
// --scrub-tools
// ---------------------------------------------------------------------------------------

const SCRUB: &str = "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB";

/// A `PATH` without bubblewrap: the sandbox's `bin` (the probe) only.
fn without_bwrap(t: Test) -> Test {
    let bin = t.path("bin");
    t.env("PATH", bin)
}

/// Issue 21 §6 (this changes the contract: the default was `auto`): with the scrub on,
/// claude writes about twenty empty stubs into the working directory on every start, so
/// the default is `off`: the caller's value passes, bubblewrap or not.
#[test]
fn scrub_tools_is_off_by_default() {
    for value in [None, Some("0"), Some("1")] {
        let mut t = Test::new();
        if let Some(v) = value {
            t = t.env(SCRUB, v);
        }
        let out = t.run();
        out.success();
        assert_eq!(out.probe().var(SCRUB), value.map(Into::into), "{value:?}");
    }
    let t = Test::new().arg("--dry-run");
    let out = t.run();
    out.status(0)
        .stdout_contains("scrub-tools: off: claude's tools see");
    assert!(
        !out.stdout_text().contains("empty stubs in"),
        "{}",
        out.stdout_text()
    );
    // The caller's own switch, let through, turns the scrub on: the plan says where the
    // stubs will appear.
    let t = Test::new().arg("--dry-run").env(SCRUB, "1");
    let out = t.run();
    out.status(0).stdout_contains(&format!(
        "scrub-tools: off: the caller's {SCRUB} passes through and turns claude's scrub on: claude creates empty stubs in {} (",
        t.work().display()
    ));
}

#[test]
fn scrub_tools_auto_sets_the_switch_when_bubblewrap_is_there() {
    for t in [
        Test::new().env(SCRUB, "0").args(["--scrub-tools", "auto"]),
        Test::new()
            .env(SCRUB, "0")
            .env("CLAUDE_ISO_SCRUB_TOOLS", "auto"),
    ] {
        let out = t.run();
        out.success();
        assert_eq!(out.probe().var(SCRUB), Some("1".into()));
    }
}

/// Issue 21 §6: with the scrub on, `--dry-run` (and `-v`, and `doctor`) say where
/// claude will write its stubs, and which.
#[test]
fn with_the_scrub_on_the_plan_names_where_the_stubs_appear() {
    let t = Test::new().args(["--scrub-tools", "on", "--dry-run"]);
    let out = t.run();
    out.status(0).probe_not_run();
    let text = out.stdout_text();
    let line = text
        .lines()
        .find(|l| l.contains("scrub-tools:"))
        .unwrap_or_else(|| panic!("no scrub-tools line: {text}"));
    assert!(
        line.contains(&format!(
            "claude creates empty stubs in {} (",
            t.work().display()
        )) && line.contains("package.json")
            && line.contains(".env.local")
            && line.contains("node_modules/.bin/")
            && line.contains(".git/info/exclude"),
        "{line}"
    );
}

#[test]
fn scrub_tools_auto_without_bubblewrap_unsets_it_and_says_why_under_verbose() {
    let run = without_bwrap(Test::new().env(SCRUB, "1")).args(["-v", "--scrub-tools", "auto"]);
    let out = run.run();
    out.success();
    assert_eq!(out.probe().var(SCRUB), None);
    let err = out.stderr_text();
    assert!(
        err.contains("bubblewrap was not found") && err.contains("apt-get install bubblewrap"),
        "{err}"
    );
    // Without -v it says nothing.
    without_bwrap(Test::new().args(["--scrub-tools", "auto"]))
        .run()
        .success()
        .stderr("");
}

#[test]
fn scrub_tools_on_without_bubblewrap_exits_125() {
    for t in [
        without_bwrap(Test::new()).args(["--scrub-tools", "on"]),
        without_bwrap(Test::new()).env("CLAUDE_ISO_SCRUB_TOOLS", "on"),
    ] {
        t.run()
            .status(125)
            .one_line_error("apt-get install bubblewrap")
            .probe_not_run();
    }
}

#[test]
fn scrub_tools_off_passes_the_callers_value() {
    for value in ["0", "1"] {
        let run = Test::new().env(SCRUB, value).args(["--scrub-tools", "off"]);
        let out = run.run();
        out.success();
        assert_eq!(out.probe().var(SCRUB), Some(value.into()));
    }
    let run = Test::new().args(["--scrub-tools", "off"]);
    let out = run.run();
    assert_eq!(out.probe().var(SCRUB), None);
}

#[test]
fn scrub_tools_honours_bwrap_path_in_user_settings() {
    let t = without_bwrap(Test::new()).args(["--scrub-tools", "auto"]);
    let home = mkdir(&t.home());
    crate::support::sandbox::chmod(&home, 0o700);
    let bwrap = ["/usr/bin/bwrap", "/bin/bwrap"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("bubblewrap is not installed: apt-get install bubblewrap (.ci/run does)");
    write_mode(
        &mkdir(&home.join(".claude")).join("settings.json"),
        format!("{{\"sandbox\":{{\"bwrapPath\":\"{bwrap}\"}}}}"),
        0o644,
    );
    let out = t.run();
    out.success();
    assert_eq!(out.probe().var(SCRUB), Some("1".into()));
}

/// Found by review: a launch from `/` (cron, `docker exec`, systemd without
/// WorkingDirectory=) found no staging directory and ran unmasked under `auto`.
#[test]
fn a_launch_from_the_root_directory_is_masked_too() {
    let s = stores();
    let script = s.t.path("read.sh");
    let reads: String = s
        .files
        .iter()
        .map(|f| format!("cat '{}' 2>/dev/null; echo\n", f.display()))
        .collect();
    write_executable(&script, &format!("#!/bin/sh\n{reads}"));
    let t = s.t.cwd("/").command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    assert!(
        !out.stderr_text().contains("stage"),
        "{}",
        out.stderr_text()
    );
    for mark in MARKS {
        assert!(
            !out.stdout_text().contains(mark),
            "{mark} readable from a launch in /: {}",
            out.stdout_text()
        );
    }
}

/// Copies set aside are credentials too: a token file replaced by `token set` (still
/// valid until it expires) and a credentials file quarantined out of the scratch home.
#[test]
fn set_aside_credentials_read_empty() {
    let t = Test::new();
    let xdg = mkdir(&t.path("xdg/claude-iso"));
    write_mode(
        &xdg.join("token.env"),
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"),
        0o600,
    );
    let replaced = xdg.join("token.env.replaced-1700000000-0");
    write_mode(&replaced, "CLAUDE_CODE_OAUTH_TOKEN=OLD-TOKEN-MARK\n", 0o600);
    let quarantined = mkdir(&t.home().join(".claude")).join(".credentials.json.quarantined-1-0");
    std::fs::set_permissions(
        t.home(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    write_mode(&quarantined, "QUARANTINED-MARK", 0o600);
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\ncat '{}' '{}' 2>&1\nls -A '{}'\n",
            replaced.display(),
            quarantined.display(),
            xdg.display()
        ),
    );
    let xdg_dir = t.path("xdg");
    let t = t
        .no_env_file()
        .env("XDG_CONFIG_HOME", &xdg_dir)
        .command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    let said = out.stdout_text();
    // claude-iso's own token directory is hidden whole (a `token set` outside, which
    // replaces the file by rename, cannot lift the mask of a single file).
    assert!(said.contains("No such file"), "{said}");
    assert!(!said.lines().any(|l| l == "token.env"), "{said}");
    assert!(!said.contains("OLD-TOKEN-MARK"), "{said}");
    assert!(!said.contains("QUARANTINED-MARK"), "{said}");
    // The real files are unchanged.
    assert!(
        std::fs::read_to_string(&replaced)
            .unwrap()
            .contains("OLD-TOKEN-MARK")
    );
    assert_eq!(
        std::fs::read_to_string(&quarantined).unwrap(),
        "QUARANTINED-MARK"
    );
}

/// Found by review: a single file's mask is detached by the kernel, in every namespace,
/// when the file is replaced by rename outside — as `token set` replaces the token file.
/// claude-iso's own token directory is hidden whole, which a rename inside it cannot
/// lift.
#[test]
fn replacing_the_token_file_outside_does_not_lift_the_mask() {
    let t = Test::new();
    let dir = mkdir(&t.path("xdg/claude-iso"));
    let file = dir.join("token.env");
    write_mode(&file, format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\n"), 0o600);
    let (ready, go) = (t.path("ready"), t.path("go"));
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n{pause}cat '{file}' 2>&1\necho END\n",
            pause = pause(&ready, &go),
            file = file.display()
        ),
    );
    let xdg = t.path("xdg");
    let t = t
        .no_env_file()
        .env("XDG_CONFIG_HOME", &xdg)
        .command(["/bin/sh", script.to_str().unwrap()]);
    let run = t.spawn();
    wait_for(&ready);
    // What `token set` does: a new file, renamed over the old one.
    let tmp = dir.join("token.env.tmp");
    write_mode(
        &tmp,
        format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}\nNEW-MARK=1\n"),
        0o600,
    );
    fs::rename(&tmp, &file).unwrap();
    fs::write(&go, "").unwrap();
    let out = run.wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("END"), "{said}");
    assert!(
        !said.contains("NEW-MARK"),
        "the replaced token file was readable: {said}"
    );
    assert!(!said.contains("sk-ant-"), "{said}");
}

/// Found by review: claude's local installer puts claude in `~/.claude/local`, which the
/// hidden config directory covered (exit 127). A `PATH` entry inside a hidden directory
/// is shown again, read-only; the credentials beside it stay hidden.
#[test]
fn claude_installed_in_the_config_dir_still_runs_under_the_mask() {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&claude.join(".credentials.json"), MARKS[0], 0o600);
    let local = mkdir(&claude.join("local"));
    let made = local.join("made-inside");
    write_executable(
        &local.join("claude"),
        &format!(
            "#!/bin/sh\necho RAN-LOCAL\ncat '{}' 2>&1\n(echo x > '{}') 2>/dev/null || echo WRITE-REFUSED\n",
            claude.join(".credentials.json").display(),
            made.display()
        ),
    );
    let path = format!("{}:/usr/bin:/bin", local.display());
    let t = t.env("PATH", path).command(["claude"]);
    let out = t.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("RAN-LOCAL"), "{said}");
    assert!(!said.contains(MARKS[0]), "{said}");
    assert!(said.contains("WRITE-REFUSED"), "{said}");
    assert!(!made.exists());
    let t = t.arg("--dry-run");
    t.run()
        .status(0)
        .stdout_contains(&format!("mask: shown read-only {}", local.display()));
}

/// Found by review: with the real `~/.claude` itself as the working directory, it stayed
/// writable, so a credentials file could be created in it. It is read-only now (its
/// files still readable, its credential files empty).
#[test]
fn working_in_the_real_config_dir_cannot_create_a_credentials_file() {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&claude.join("CLAUDE.md"), "NOTES-MARK", 0o644);
    let script = t.path("try.sh");
    write_executable(
        &script,
        "#!/bin/sh\ncat CLAUDE.md; echo\n(echo '{}' > .credentials.json) 2>/dev/null && echo CREATED || echo REFUSED\n",
    );
    let t = t
        .cwd(&claude)
        .command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("NOTES-MARK"), "{said}");
    assert!(said.contains("REFUSED"), "{said}");
    assert!(!claude.join(".credentials.json").exists());
}

/// Found by review: a working directory inside the Anthropic profile store (which the
/// mask hides) made `auto` drop the whole mask, although the kernel allowed it. It is
/// not the kernel's refusal: the launch stops, naming the directory and the way out.
#[test]
fn a_working_directory_inside_a_hidden_store_stops_the_launch_even_under_auto() {
    let t = Test::new();
    let store = mkdir(&t.real_home().join(".config/anthropic/sub"));
    let t = t.cwd(&store);
    let out = t.run();
    out.status(125);
    let err = out.stderr_text();
    assert!(
        err.contains(".config/anthropic") && err.contains("--mask off"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    t.arg("--mask").arg("off").run().status(0);
}

/// Found by the second review: a `PATH` entry inside the Anthropic profile store was
/// shown again, and with it the store's credentials. Only directories inside a hidden
/// config dir are ever shown again, and never one that holds a masked file.
#[test]
fn a_path_entry_never_brings_a_hidden_store_back() {
    let t = Test::new();
    let creds = mkdir(&t.real_home().join(".config/anthropic/credentials"));
    write_mode(&creds.join("default.json"), MARKS[4], 0o600);
    let script = t.path("read.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\ncat '{}' 2>&1\necho END\n",
            creds.join("default.json").display()
        ),
    );
    let t = t
        .env("PATH", format!("{}:/usr/bin:/bin", creds.display()))
        .command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    let said = out.stdout_text();
    assert!(said.contains("END"), "{said}");
    assert!(!said.contains(MARKS[4]), "{said}");
}

/// Found by the second review: a command reached through a symlink into `~/.claude`
/// (npm's `node_modules/.bin/claude -> ../pkg/cli.sh`, or a link of the user's own)
/// exited 127 under the mask: only the link's directory was shown again. The top-level
/// directory of the config dir holding the command, or where it leads, is shown.
#[test]
fn a_command_linked_into_the_config_dir_still_runs_under_the_mask() {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    write_mode(&claude.join(".credentials.json"), MARKS[0], 0o600);
    let pkg = mkdir(&claude.join("local/node_modules/pkg"));
    let bin = mkdir(&claude.join("local/node_modules/.bin"));
    write_executable(
        &pkg.join("cli.sh"),
        &format!(
            "#!/bin/sh\necho RAN-LINKED\ncat '{}' 2>&1\nexit 0\n",
            claude.join(".credentials.json").display()
        ),
    );
    std::os::unix::fs::symlink("../pkg/cli.sh", bin.join("claude")).unwrap();
    let own = mkdir(&t.path("own-bin"));
    std::os::unix::fs::symlink(pkg.join("cli.sh"), own.join("claude")).unwrap();
    for path in [bin.display().to_string(), own.display().to_string()] {
        let t = Test::new()
            .env("HOME", t.real_home())
            .env("PATH", format!("{path}:/usr/bin:/bin"))
            .command(["claude"]);
        let out = t.run();
        out.status(0);
        let said = out.stdout_text();
        assert!(said.contains("RAN-LINKED"), "PATH={path}: {said}");
        assert!(!said.contains(MARKS[0]), "PATH={path}: {said}");
    }
}

/// Found by the second review: a scratch home inside the profile store (or claude-iso's
/// token directory) was created and seeded, and only then did the mask refuse (125);
/// the dry run said the launch would go ahead. It is refused before anything is made,
/// the same way by both, like a home inside a real config dir.
#[test]
fn a_home_inside_a_hidden_store_is_refused_before_it_is_made() {
    let t = Test::new();
    for store in [".config/anthropic", ".config/claude-iso"] {
        let dir = mkdir(&t.real_home().join(store));
        let home = dir.join("h");
        for dry in [true, false] {
            let t = Test::new()
                .no_home()
                .env("HOME", t.real_home())
                .arg("--home")
                .arg(&home);
            let t = if dry { t.arg("--dry-run") } else { t };
            let out = t.run();
            out.status(125);
            let err = out.stderr_text();
            assert!(
                err.contains(&dir.display().to_string()) && err.contains("outside it"),
                "{store} (dry run: {dry}): {err}"
            );
            assert!(!home.exists(), "{store}: the home was made");
        }
    }
}

/// Found by the second review: with the working directory inside the real `~/.claude`,
/// the credentials file there was masked as a single file, and a claude outside that
/// refreshed its token (a new file renamed over the old) lifted the mask. The config dir
/// now stays hidden; the working directory is shown again (its top-level directory
/// read-only, itself writable).
#[test]
fn working_inside_the_real_config_dir_survives_a_token_refresh_outside() {
    let t = Test::new();
    let claude = mkdir(&t.real_home().join(".claude"));
    let creds = claude.join(".credentials.json");
    write_mode(&creds, MARKS[0], 0o600);
    let agents = mkdir(&claude.join("agents"));
    write_mode(&agents.join("a.md"), "AGENT-MARK", 0o644);
    let (ready, go) = (t.path("ready"), t.path("go"));
    let script = t.path("work.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\ncat a.md; echo\necho new > made-here && echo WROTE\n{pause}cat '{creds}' 2>&1\n(echo x > '{other}') 2>/dev/null || echo OTHER-REFUSED\necho END\n",
            pause = pause(&ready, &go),
            creds = creds.display(),
            other = claude.join("planted").display()
        ),
    );
    let t = t
        .cwd(&agents)
        .command(["/bin/sh", script.to_str().unwrap()]);
    let run = t.spawn();
    wait_for(&ready);
    // What claude does when it refreshes its token: a new file renamed over the old.
    let tmp = claude.join(".credentials.json.tmp");
    write_mode(&tmp, "REFRESHED-MARK", 0o600);
    fs::rename(&tmp, &creds).unwrap();
    fs::write(&go, "").unwrap();
    let out = run.wait();
    out.status(0);
    let said = out.stdout_text();
    assert!(
        said.contains("AGENT-MARK") && said.contains("WROTE"),
        "{said}"
    );
    assert!(
        said.contains("OTHER-REFUSED") && said.contains("END"),
        "{said}"
    );
    assert!(
        !said.contains("REFRESHED-MARK"),
        "the refreshed credentials were readable: {said}"
    );
    assert!(!said.contains(MARKS[0]), "{said}");
    assert_eq!(
        fs::read_to_string(agents.join("made-here")).unwrap(),
        "new\n"
    );
    assert!(!claude.join("planted").exists());
}

/// Found by the third review: a nested claude-iso given the same token file (which the
/// outer mask empties) was told the file is "UNPROTECTED: mode 0444 … chmod 600", a fix
/// that cannot work. It is told the file is masked by the outer run, and the way out.
#[test]
fn a_nested_run_given_the_masked_token_file_is_told_so() {
    let t = Test::new();
    let env_file = t.env_file();
    let script = t.path("nested.sh");
    write_executable(
        &script,
        &format!(
            "#!/bin/sh\n'{bin}' --env-file '{file}' --home '{home}' -- /bin/true\necho \"inner: $?\"\n",
            bin = crate::support::sandbox::BIN,
            file = env_file.display(),
            home = t.path("inner-home").display(),
        ),
    );
    let t = t.command(["/bin/sh", script.to_str().unwrap()]);
    let out = t.run();
    out.status(0);
    assert!(
        out.stdout_text().contains("inner: 125"),
        "{}",
        out.stdout_text()
    );
    let err = out.stderr_text();
    let line = err
        .lines()
        .find(|l| l.contains(&env_file.display().to_string()))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("masks it") && line.contains("--env-file") && !line.contains("chmod"),
        "{line}"
    );
}

/// A shell step that says it is ready (creates `ready`) and waits (20 s at most) until
/// `go` exists: something outside acts meanwhile.
fn pause(ready: &Path, go: &Path) -> String {
    format!(
        "touch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n",
        ready.display(),
        go.display()
    )
}

/// Waits (20 s at most) until the command created `ready`.
fn wait_for(ready: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Runs claude-iso under `strace` with system calls made to fail (`strace -e inject`:
/// `(name, how)` pairs), the command printing where it runs: its working directory, its
/// mount namespace, and what the real credentials file reads.
fn with_injected(t: Test, inject: &[(&str, &str)]) -> Test {
    let script = "pwd; readlink /proc/self/ns/mnt; cat \"$1\"; echo";
    let creds = t.real_home().join(".claude/.credentials.json");
    let names: Vec<&str> = inject.iter().map(|(name, _)| *name).collect();
    let injects: Vec<String> = inject
        .iter()
        .map(|(name, how)| format!("-e inject={name}:{how}"))
        .collect();
    t.wrap(&format!(
        "exec strace -qq -f -o /dev/null -e trace={} {} \"$0\" \"$@\"",
        names.join(","),
        injects.join(" ")
    ))
    .command(["/bin/sh", "-c", script, "sh", creds.to_str().unwrap()])
}

/// The launch builds the mask in place (no helper): as root, a refusal at any step before
/// the nested user namespace is joined takes it back to its own mount namespace, root
/// and working directory, and `auto` runs isolated by environment, saying which step
/// was refused; a refusal once joined (or, unprivileged, after `unshare`) stops the
/// launch (125), as nothing can go back.
#[test]
fn a_refusal_part_way_leaves_the_launch_where_it_was_or_stops_it() {
    let own_ns = fs::read_link("/proc/self/ns/mnt").unwrap();
    let unmasked = |inject: &[(&str, &str)], reason: &str| {
        let t = plain();
        let workdir = fs::canonicalize(t.path("work")).unwrap();
        let run = with_injected(t, inject);
        let out = run.run();
        out.status(0);
        let err = out.stderr_text();
        assert!(
            err.starts_with("claude-iso: warning: cannot mask the real credentials")
                && err.contains(reason)
                && err.contains("isolated by environment")
                && err.lines().count() == 1,
            "{inject:?}: {err}"
        );
        let text = out.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], workdir.to_str().unwrap(), "{inject:?}: {text}");
        assert_eq!(lines[1], own_ns.to_str().unwrap(), "{inject:?}: {text}");
        assert_eq!(lines[2], MARKS[0], "{inject:?}: {text}");
    };
    let stopped = |inject: &[(&str, &str)], reason: &str| {
        let run = with_injected(plain(), inject);
        let out = run.run();
        // Past the point of no return the home is made already (as for the unprivileged
        // launch in place): the exit status and the one line are what is asserted.
        assert_eq!(out.status.code(), Some(125), "{inject:?}");
        let err = out.stderr_text();
        assert!(
            err.starts_with("claude-iso: cannot mask the real credentials")
                && err.contains(reason)
                && err.lines().count() == 1,
            "{inject:?}: {err}"
        );
        assert_eq!(out.stdout_text(), "", "{inject:?}");
    };
    // The first unshare refused: nothing changed, root or not.
    unmasked(&[("unshare", "error=EPERM:when=1")], "unshare");
    if is_root() {
        // Refused after the mount namespace is made, before anything is joined: `/` made
        // private, the first view's tmpfs.
        unmasked(&[("mount", "error=EPERM:when=1")], "making / private");
        unmasked(&[("mount", "error=EPERM:when=2")], "cannot mount over");
        // The same where a seccomp filter refuses chroot too (systemd's
        // SystemCallFilter=@system-service): the way back needs no chroot when the root
        // directory is the namespace's.
        unmasked(
            &[("mount", "error=EPERM"), ("chroot", "error=EPERM")],
            "making / private",
        );
        // The holder of the user namespace that locks the masks (a clone with
        // CLONE_NEWUSER: the helper's fork would say "fork"), and joining it.
        unmasked(&[("clone", "error=ENOSPC:when=1")], "max_user_namespaces");
        unmasked(&[("setns", "error=EPERM:when=1")], "setns");
        // The nested mount namespace, once the user namespace is joined.
        stopped(&[("unshare", "error=ENOMEM:when=2")], "locking the masks");
        // In a chroot (into a bind of `/`: the same directory, another mount) the
        // kernel refuses the holder its user namespace: the way back must change the
        // root directory back too, or the command would run outside the jail.
        let t = plain();
        let jail = mkdir(&t.path("jail"));
        let marked = mkdir(&t.path("marked"));
        let run = t
            .wrap(&format!(
                "exec unshare -m --propagation private /bin/sh -c '\
                 mount --rbind / \"$1\" && mount -t tmpfs jail \"$1$2\" && echo jailed > \"$1$2/marker\" || exit 99; \
                 j=$1; shift 2; exec /usr/sbin/chroot \"$j\" /bin/sh -c \"cd \\\"\\$0\\\" && exec \\\"\\$@\\\"\" \"$PWD\" \"$@\"' \
                 sh '{}' '{}' \"$0\" \"$@\"",
                jail.display(),
                marked.display()
            ))
            .command(["/bin/sh", "-c", "cat \"$0/marker\"; pwd", marked.to_str().unwrap()]);
        let out = run.run();
        out.status(0);
        let err = out.stderr_text();
        assert!(
            err.contains("cannot mask the real credentials") && err.lines().count() == 1,
            "{err}"
        );
        let workdir = fs::canonicalize(run.path("work")).unwrap();
        assert_eq!(
            out.stdout_text(),
            format!("jailed\n{}\n", workdir.display()),
            "the command left the jail"
        );
    } else {
        stopped(&[("mount", "error=EPERM:when=1")], "making / private");
    }
}

/// An emptied place (a file, and a directory whose parent cannot be viewed: sticky, as
/// `/tmp`) is a bind of the staging tmpfs, which is read-only, nosuid, nodev and noexec
/// before anything is bound from it: the mask carries all four from the start.
#[test]
fn an_emptied_place_is_read_only_nosuid_nodev_noexec() {
    use std::os::unix::fs::PermissionsExt;
    let t = Test::new();
    let sticky = mkdir(&t.path("sticky"));
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
    let config = mkdir(&sticky.join("config"));
    write_mode(&config.join(".credentials.json"), MARKS[2], 0o600);
    let env_file = t.env_file();
    let t = t
        .env("CLAUDE_CONFIG_DIR", &config)
        .command(["/bin/cat", "/proc/self/mountinfo"]);
    let out = t.run();
    out.status(0);
    let text = out.stdout_text();
    for (place, root) in [(&env_file, "/empty"), (&config, "/empty")] {
        let place = fs::canonicalize(place).unwrap();
        // id parent dev root mount-point options ... - type source super-options
        let line = text
            .lines()
            .rfind(|l| l.split(' ').nth(4) == Some(place.to_str().unwrap()))
            .unwrap_or_else(|| panic!("{} is not mounted over:\n{text}", place.display()));
        let fields: Vec<&str> = line.split(' ').collect();
        assert!(fields[3].starts_with(root), "{line}");
        let options: Vec<&str> = fields[5].split(',').collect();
        for want in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(
                options.contains(&want),
                "{} lacks {want}: {line}",
                place.display()
            );
        }
        let kind = if place.is_dir() { ".d" } else { "" };
        assert!(fields[3].ends_with(kind), "{line}");
    }
}
