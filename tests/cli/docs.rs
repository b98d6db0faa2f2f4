//! The documentation cannot rot: the checked-in man page is what `man::render()` makes,
//! the completion scripts load, and every file in `examples/` still works with the
//! built binary (run with `--dry-run`, against a fake `claude` and a fake token).
//!
//! Every run clears the environment, so nothing from the developer's shell leaks in.

#[path = "../man/mod.rs"]
mod man;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::Unchanged;

const BIN: &str = env!("CARGO_BIN_EXE_claude-iso");
const FAKE_TOKEN: &str = "sk-ant-oat01-FAKE_docs-test_g74n5sfydE3f_I2fSy6Zu4A3YhYZCy2Aeec5YZq6l_-5kbh-wEod1A79e1fzJ_tstcwiLv8y_aFi7oAA";
const PLAN_DONE: &str = "dry run: nothing changed, nothing run";
const MAN_PAGE: &str = "man/claude-iso.1";
const UPDATE_VAR: &str = "CLAUDE_ISO_UPDATE_MAN";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// A shell the completion tests drive. Missing, the test says so and checks only the
/// script's text; under CI (which installs zsh and fish with the test dependencies) a
/// missing shell fails the test instead of letting it pass unchecked.
fn shell(name: &str) -> Option<PathBuf> {
    let found = which(name);
    assert!(
        found.is_some() || std::env::var_os("CI").is_none_or(|v| v != "true"),
        "{name} is not installed but CI=true: scripts/install-test-deps installs it"
    );
    if found.is_none() {
        eprintln!("{name} is not installed: this test did not run it");
    }
    found
}

// ---------------------------------------------------------------------------------------
// The man page

#[test]
fn man_page_is_current() {
    let path = repo().join(MAN_PAGE);
    let rendered = man::render();
    if std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &rendered).unwrap();
        return;
    }
    let checked_in = fs::read(&path).unwrap_or_default();
    if checked_in != rendered {
        let old = text(&checked_in);
        let new = text(&rendered);
        let first = old
            .lines()
            .zip(new.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| old.lines().count().min(new.lines().count()));
        panic!(
            "{MAN_PAGE} is stale (first difference at line {}):\n  checked in: {:?}\n  rendered:   {:?}\n\
             Regenerate it with: {UPDATE_VAR}=1 cargo test --test cli docs::",
            first + 1,
            old.lines().nth(first).unwrap_or("<end of file>"),
            new.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

const SECTIONS: &[&str] = &[
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "SUBCOMMANDS",
    "EXIT STATUS",
    "ENVIRONMENT",
    "FILES",
    "SECURITY",
    "EXAMPLES",
    "SEE ALSO",
];

fn headings(roff: &str) -> Vec<String> {
    roff.lines()
        .filter_map(|l| l.strip_prefix(".SH "))
        .map(|h| h.trim().trim_matches('"').replace(r"\-", "-"))
        .collect()
}

/// No section twice, and the synopsis names every subcommand and every action of one
/// (`homes`, `homes prune`, `broker serve`, …) (issue 24).
#[test]
fn man_page_sections_are_unique_and_the_synopsis_lists_every_subcommand() {
    let page = text(&man::render());
    let found = headings(&page);
    for (i, h) in found.iter().enumerate() {
        assert!(!found[..i].contains(h), "section {h} twice: {found:?}");
    }
    let synopsis: String = page
        .split(".SH SYNOPSIS")
        .nth(1)
        .and_then(|rest| rest.split(".SH ").next())
        .expect("a SYNOPSIS section")
        .replace(r"\-", "-")
        .replace(r"\fB", "")
        .replace(r"\fR", "");
    let cmd = <claude_iso::cli::Cli as clap::CommandFactory>::command();
    for sub in cmd.get_subcommands() {
        let name = format!("claude-iso {}", sub.get_name());
        assert!(
            synopsis.contains(&name),
            "the synopsis lacks {name}:\n{synopsis}"
        );
        for action in sub.get_subcommands() {
            let name = format!("claude-iso {} {}", sub.get_name(), action.get_name());
            assert!(
                synopsis.contains(&name),
                "the synopsis lacks {name}:\n{synopsis}"
            );
        }
    }
}

#[test]
fn man_page_has_every_section() {
    let page = text(&man::render());
    let found = headings(&page);
    for want in SECTIONS {
        assert!(
            found.iter().any(|h| h == want),
            "no .SH {want} in the man page; it has {found:?}"
        );
    }
    for needle in [
        ".TH CLAUDE\\-ISO 1",
        "\\fBdoctor\\fR",
        "token set",
        "token status",
        "claude\\-iso \\-\\- claude \\-\\-resume",
        "looks truncated",
        "\\fB\\-\\-env\\-file\\fR",
        "\\fB\\-\\-dry\\-run\\fR",
        "RestartPreventExitStatus=125",
        "CREDENTIALS_DIRECTORY",
        ".claude\\-iso.lock",
        ".claude.json.lock",
        "quarantined",
        "apiKeyHelper",
        "Keychain",
        "ANTHROPIC_BASE_URL",
    ] {
        assert!(page.contains(needle), "the man page lacks {needle:?}");
    }
    let scrub = &claude_iso::scrub::LISTED;
    for name in scrub.iter().chain(claude_iso::scrub::KEEP).map(|e| e.name) {
        assert!(page.contains(name), "the man page does not list {name}");
    }
    for rule in claude_iso::scrub::RULES {
        for pattern in rule.patterns {
            assert!(
                page.contains(pattern),
                "the man page lacks the pattern {pattern}"
            );
        }
    }
}

/// groff must format the page without a warning, and the formatted text must show every
/// section. Runs wherever groff is installed (CI installs it).
#[test]
fn man_page_formats_cleanly() {
    let page = man::render();
    let Some(groff) = which("groff") else {
        // Without groff, at least the roff must be plain ASCII with balanced fonts.
        let page = text(&page);
        assert!(page.is_ascii());
        assert_eq!(
            page.matches("\\fB").count() + page.matches("\\fI").count(),
            { page.matches("\\fR").count() }
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claude-iso.1");
    fs::write(&file, &page).unwrap();
    let out = Command::new(&groff)
        .args(["-man", "-Tascii", "-ww", "-rLL=80n"])
        .arg(&file)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success("groff", &out);
    assert_eq!(text(&out.stderr), "", "groff warned");
    let formatted = text(&out.stdout);
    // Strip the overstrike bold/underline of -Tascii.
    let plain: String = {
        let mut s = String::new();
        for c in formatted.chars() {
            if c == '\u{8}' {
                s.pop();
            } else {
                s.push(c);
            }
        }
        s
    };
    for want in SECTIONS {
        assert!(
            plain.lines().any(|l| l == *want),
            "formatted page has no heading {want}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Shell completions

fn completions(shell: &str) -> String {
    let out = Command::new(BIN)
        .args(["completions", shell])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_success(&format!("completions {shell}"), &out);
    assert_eq!(text(&out.stderr), "");
    let script = text(&out.stdout);
    assert!(
        script.contains("claude-iso") && script.len() > 200,
        "completions {shell} printed too little:\n{script}"
    );
    script
}

#[test]
fn bash_completions_load() {
    let script = completions("bash");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claude-iso.bash");
    fs::write(&file, &script).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert_success("bash -n", &syntax);
    // Sourcing it registers a completion function for claude-iso.
    let loaded = Command::new("bash")
        .args([
            "--norc",
            "--noprofile",
            "-c",
            r#"source "$1" && complete -p claude-iso"#,
            "bash",
        ])
        .arg(&file)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_success("sourcing the bash completions", &loaded);
    assert!(text(&loaded.stdout).contains("claude-iso"));
    for word in ["doctor", "completions", "--env-file", "--dry-run"] {
        assert!(script.contains(word), "bash completions lack {word}");
    }
}

#[test]
fn zsh_completions() {
    let script = completions("zsh");
    assert!(script.starts_with("#compdef claude-iso"), "{script}");
    assert!(script.contains("--env-file") && script.contains("doctor"));
    if let Some(zsh) = shell("zsh") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("_claude-iso");
        fs::write(&file, &script).unwrap();
        let out = Command::new(zsh).arg("-n").arg(&file).output().unwrap();
        assert_success("zsh -n", &out);
    }
}

#[test]
fn fish_completions() {
    let script = completions("fish");
    assert!(script.contains("complete -c claude-iso"), "{script}");
    assert!(script.contains("env-file") && script.contains("doctor"));
    if let Some(fish) = shell("fish") {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claude-iso.fish");
        fs::write(&file, &script).unwrap();
        let out = Command::new(fish)
            .arg("--no-execute")
            .arg(&file)
            .output()
            .unwrap();
        assert_success("fish --no-execute", &out);
    }
}

// ---------------------------------------------------------------------------------------
// The examples

/// A sandbox for one example: a fake `claude` on PATH, a real home and an XDG layout in
/// a temp dir, and a `claude-iso` on PATH that is the built binary with `--dry-run`.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox { dir };
        for d in ["bin", "home", "work", "state", "config"] {
            fs::create_dir(sb.path(d)).unwrap();
        }
        sb.script(
            "bin/claude",
            "#!/bin/sh\necho 'the fake claude must not run' >&2\nexit 99\n",
        );
        sb.script(
            "bin/claude-iso",
            &format!("#!/bin/sh\nexec {} --dry-run \"$@\"\n", sh_quote(BIN)),
        );
        sb
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn script(&self, rel: &str, body: &str) {
        let p = self.path(rel);
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A private env file holding the fake token, in the default place.
    fn default_token_file(&self) -> PathBuf {
        let dir = self.path("config/claude-iso");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token.env");
        write_private(&file, &format!("CLAUDE_CODE_OAUTH_TOKEN={FAKE_TOKEN}\n"));
        file
    }

    /// A cleared environment: PATH with the fake claude and the dry-run claude-iso first.
    fn env(&self) -> BTreeMap<String, OsString> {
        let mut path = OsString::from(self.path("bin"));
        path.push(":/usr/bin:/bin");
        BTreeMap::from([
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), self.path("home").into()),
            ("XDG_CONFIG_HOME".to_owned(), self.path("config").into()),
            ("XDG_STATE_HOME".to_owned(), self.path("state").into()),
            ("LANG".to_owned(), "C.UTF-8".into()),
        ])
    }

    fn run(&self, program: &Path, args: &[&str], env: &BTreeMap<String, OsString>) -> Output {
        Command::new(program)
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(self.path("work"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn write_private(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The plan's lines, checked for what every dry run must show: the fake claude resolved,
/// the token redacted, and the closing line.
#[track_caller]
fn plan(what: &str, out: &Output) -> Vec<String> {
    assert_success(what, out);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    for shown in [&stdout, &stderr] {
        assert!(
            !shown.contains(&FAKE_TOKEN[14..]),
            "{what} printed the token:\n{shown}"
        );
    }
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.last().map(String::as_str),
        Some(PLAN_DONE),
        "{what}: no dry-run plan\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
    let token_line = format!("token: sk-ant-oat01-\u{2026} ({} chars)", FAKE_TOKEN.len());
    assert!(
        lines.iter().any(|l| l.starts_with(&token_line)),
        "{what}: no redacted token line in\n{stdout}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("command: ") && l.ends_with("/bin/claude")),
        "{what}: claude not resolved to the fake one in\n{stdout}"
    );
    lines
}

#[track_caller]
fn line_with<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {lines:#?}"))
}

/// The examples this file tests; a new file in `examples/` needs a test here
/// (`Dockerfile`, `kubernetes/` and the units' fit in `systemd/` are tested in
/// `tests/cli/containers.rs`).
const EXAMPLES: &[&str] = &[
    "Dockerfile",
    "apparmor",
    "claude-agent@.service",
    "kubernetes",
    "print.sh",
    "start-claude.sh",
    "systemd",
    "token.env.example",
];

#[test]
fn every_example_is_tested() {
    let mut found: Vec<String> = fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, EXAMPLES,
        "examples/ changed: add a --dry-run test for it"
    );
}

/// The AppArmor profile (not loadable here: CI has no AppArmor) grants user namespaces
/// to the binary where `cargo install` and packages put it, and nothing else; the
/// README and the man page point to it.
#[test]
fn example_apparmor_profile() {
    let dir = repo().join("examples/apparmor");
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["claude-iso"]);
    let text = fs::read_to_string(dir.join("claude-iso")).unwrap();
    let rules: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        rules,
        [
            "abi <abi/4.0>,",
            "include <tunables/global>",
            "profile claude-iso /{usr/bin,usr/local/bin,opt/*/bin,home/*/.cargo/bin,root/.cargo/bin}/claude-iso flags=(unconfined) {",
            "userns,",
            "include if exists <local/claude-iso>",
            "}",
        ]
    );
    assert!(text.contains("apparmor_parser -r /etc/apparmor.d/claude-iso"));
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    assert!(readme.contains("(examples/apparmor/claude-iso)"));
    let man = fs::read_to_string(repo().join("man/claude-iso.1")).unwrap();
    assert!(
        man.contains(r"examples/apparmor/claude\-iso"),
        "the man page does not name the profile"
    );
}

#[test]
fn example_start_claude_sh() {
    let sb = Sandbox::new();
    sb.default_token_file();
    let script = repo().join("examples/start-claude.sh");
    let env = sb.env();
    let out = sb.run(
        Path::new("/bin/sh"),
        &[script.to_str().unwrap(), "--continue", "two words", ""],
        &env,
    );
    let lines = plan("start-claude.sh", &out);
    assert_eq!(
        line_with(&lines, "argv: "),
        "claude --continue 'two words' ''"
    );
    let token = line_with(&lines, "token: ");
    assert!(token.ends_with("/config/claude-iso/token.env"), "{token}");
    let cwd = fs::canonicalize(sb.path("work")).unwrap();
    assert_eq!(line_with(&lines, "cwd: "), cwd.to_str().unwrap());
}

#[test]
fn example_print_sh() {
    let sb = Sandbox::new();
    sb.default_token_file();
    let project = sb.path("project");
    fs::create_dir(&project).unwrap();
    let script = repo().join("examples/print.sh");
    let out = sb.run(
        Path::new("/bin/sh"),
        &[
            script.to_str().unwrap(),
            "-C",
            project.to_str().unwrap(),
            "Review",
            "this diff.",
        ],
        &sb.env(),
    );
    let lines = plan("print.sh", &out);
    assert_eq!(
        line_with(&lines, "argv: "),
        "claude --print --output-format text 'Review this diff.'"
    );
    let project = fs::canonicalize(&project).unwrap();
    assert_eq!(line_with(&lines, "cwd: "), project.to_str().unwrap());
    assert!(lines.contains(&format!("env: set PWD={}", project.display())));

    // Without a prompt it is a usage error, before claude-iso runs.
    let out = sb.run(Path::new("/bin/sh"), &[script.to_str().unwrap()], &sb.env());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("usage: print.sh"));
}

#[test]
fn example_token_env() {
    let sb = Sandbox::new();
    let template = fs::read_to_string(repo().join("examples/token.env.example")).unwrap();
    let file = sb.path("token.env");
    let env = sb.env();
    let run = |file: &Path| {
        sb.run(
            Path::new(BIN),
            &[
                "--dry-run",
                "--env-file",
                file.to_str().unwrap(),
                "--",
                "claude",
            ],
            &env,
        )
    };

    // As shipped it is a template: refused, naming the line, never quoting the value.
    write_private(&file, &template);
    let unchanged = Unchanged::new(&sb.path(""));
    let out = run(&file);
    let line = template
        .lines()
        .position(|l| l.starts_with("CLAUDE_CODE_OAUTH_TOKEN="))
        .expect("a CLAUDE_CODE_OAUTH_TOKEN= line")
        + 1;
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    unchanged.assert("the refused dry run");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("token.env:{line}: ")) && stderr.contains("setup-token"),
        "{stderr}"
    );
    assert!(!stderr.contains("REPLACE_ME"), "{stderr}");

    // With the token filled in, exactly as its comments say, it works.
    let filled: String = template
        .lines()
        .map(|l| {
            if l.starts_with("CLAUDE_CODE_OAUTH_TOKEN=") {
                format!("CLAUDE_CODE_OAUTH_TOKEN={FAKE_TOKEN}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    write_private(&file, &filled);
    let lines = plan("token.env.example, filled in", &run(&file));
    assert!(line_with(&lines, "token: ").ends_with(&format!(" from {}", file.display())));

    // And it must be private, as its comments say.
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let unchanged = Unchanged::new(&sb.path(""));
    let out = run(&file);
    assert_eq!(out.status.code(), Some(125));
    unchanged.assert("the refused dry run");
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}

/// A unit file's settings, with `\` continuation lines joined (systemd.syntax(7)).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in unit.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.starts_with(';')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            logical.push(std::mem::take(&mut current));
        }
    }
    logical
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// systemd's command-line splitting (quotes and backslash escapes), then its specifiers.
fn exec_words(line: &str, specifiers: &[(char, &str)]) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            loop {
                match chars.next().expect("unterminated quote in ExecStart=") {
                    c if c == first => break,
                    '\\' => word.push(chars.next().expect("dangling backslash")),
                    c => word.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    word.push(chars.next().expect("dangling backslash"));
                } else {
                    word.push(c);
                }
            }
        }
        words.push(expand(&word, specifiers));
    }
    words
}

fn expand(word: &str, specifiers: &[(char, &str)]) -> String {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let spec = chars.next().expect("a lone % in the unit");
        if spec == '%' {
            out.push('%');
            continue;
        }
        let value = specifiers
            .iter()
            .find(|(s, _)| *s == spec)
            .unwrap_or_else(|| panic!("the test does not know the specifier %{spec}"))
            .1;
        out.push_str(value);
    }
    out
}

#[test]
fn example_systemd_unit() {
    let unit = fs::read_to_string(repo().join("examples/claude-agent@.service")).unwrap();
    let settings = unit_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        match get(key).as_slice() {
            [v] => v,
            other => panic!("{key}= set {} times", other.len()),
        }
    };

    // What the unit promises.
    assert_eq!(one("Restart"), "on-failure");
    assert!(
        one("RestartPreventExitStatus")
            .split_whitespace()
            .any(|s| s == "125")
    );
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("PrivateTmp"), "yes");
    let credential = one("LoadCredential");
    let (id, source) = credential.split_once(':').expect("LoadCredential=ID:PATH");
    assert_eq!(id, claude_iso::layout::CREDENTIAL_NAME);
    assert!(source.starts_with('/'), "{source}");

    // What systemd would do for instance "demo": create the state directories (as the
    // service user, mode 0700), pass the credential, set the environment.
    let sb = Sandbox::new();
    let state = sb.path("state");
    let instance = "demo";
    let user_home = sb.path("home");
    let specifiers = [
        ('i', instance),
        ('I', instance),
        ('S', state.to_str().unwrap()),
        ('h', user_home.to_str().unwrap()),
        ('n', "claude-agent@demo.service"),
        ('N', "claude-agent@demo"),
        ('p', "claude-agent"),
    ];
    let mode = u32::from_str_radix(one("StateDirectoryMode"), 8).unwrap();
    assert_eq!(
        mode & 0o022,
        0,
        "a scratch home must not be group/other-writable"
    );
    for dir in exec_words(one("StateDirectory"), &specifiers) {
        let path = state.join(&dir);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    let credentials = sb.path("credentials");
    fs::create_dir(&credentials).unwrap();
    write_private(&credentials.join(id), &format!("{FAKE_TOKEN}\n"));
    let mut env = sb.env();
    env.remove("XDG_CONFIG_HOME");
    env.remove("XDG_STATE_HOME");
    env.insert("CREDENTIALS_DIRECTORY".into(), credentials.clone().into());
    for assignments in get("Environment") {
        for word in exec_words(assignments, &specifiers) {
            let (k, v) = word.split_once('=').expect("Environment=KEY=VALUE");
            env.insert(k.to_owned(), v.into());
        }
    }

    // ExecStart=, with the installed path replaced by the built binary and --dry-run.
    let words = exec_words(one("ExecStart"), &specifiers);
    assert!(
        words[0].starts_with('/') && words[0].ends_with("/claude-iso"),
        "ExecStart= runs {}",
        words[0]
    );
    let mut args: Vec<&str> = vec!["--dry-run"];
    args.extend(words[1..].iter().map(String::as_str));
    let out = sb.run(Path::new(BIN), &args, &env);
    let lines = plan("claude-agent@.service ExecStart=", &out);

    let token = line_with(&lines, "token: ");
    assert!(
        token.contains("from credentials-directory"),
        "the unit's token must come from LoadCredential=: {token}"
    );
    let workdir = fs::canonicalize(state.join("claude-agents").join(instance)).unwrap();
    assert_eq!(line_with(&lines, "cwd: "), workdir.to_str().unwrap());
    let home = state.join("claude-iso").join(instance);
    assert!(
        lines.contains(&format!("home: {} (exists)", home.display())),
        "{lines:#?}"
    );
    assert!(lines.contains(&format!("env: set HOME={}", home.display())));
    assert!(line_with(&lines, "argv: ").starts_with("claude --print "));
}

#[test]
fn example_brokered_agent_unit_reads_no_token() {
    let unit =
        fs::read_to_string(repo().join("examples/systemd/claude-agent-brokered@.service")).unwrap();
    let settings = unit_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert!(get("LoadCredential").is_empty());
    let sb = Sandbox::new();
    let state = sb.path("state");
    let instance = "demo";
    let specifiers = [
        ('i', instance),
        ('I', instance),
        ('S', state.to_str().unwrap()),
        ('p', "claude-agent-brokered"),
    ];
    let mode = u32::from_str_radix(get("StateDirectoryMode")[0], 8).unwrap();
    for dir in exec_words(get("StateDirectory")[0], &specifiers) {
        let path = state.join(&dir);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    // No token anywhere: no env file, no credentials directory, nothing in the
    // environment.
    let mut env = sb.env();
    env.remove("XDG_CONFIG_HOME");
    env.remove("XDG_STATE_HOME");
    for assignments in get("Environment") {
        for word in exec_words(assignments, &specifiers) {
            let (k, v) = word.split_once('=').expect("Environment=KEY=VALUE");
            env.insert(k.to_owned(), v.into());
        }
    }
    let words = exec_words(get("ExecStart")[0], &specifiers);
    let mut args: Vec<&str> = vec!["--dry-run"];
    args.extend(words[1..].iter().map(String::as_str));
    let out = sb.run(Path::new(BIN), &args, &env);
    assert_success("claude-agent-brokered@.service ExecStart=", &out);
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.last().map(String::as_str), Some(PLAN_DONE));
    assert_eq!(
        line_with(&lines, "token: "),
        "none read (the shared broker at /run/claude-iso-broker/api.sock holds it)"
    );
    assert!(
        line_with(&lines, "token via: ")
            .starts_with("the shared broker at /run/claude-iso-broker/api.sock"),
        "{lines:#?}"
    );
}

/// `-h` fits one screen (50 lines) and ends with examples; `--help` has the longer
/// EXAMPLES list, with claude's resume hint as it works under claude-iso (issue 24).
#[test]
fn short_help_fits_a_screen_and_both_helps_have_examples() {
    let run = |flag: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_claude-iso"))
            .arg(flag)
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success(), "{flag}");
        String::from_utf8(out.stdout).unwrap()
    };
    let short = run("-h");
    assert!(
        short.lines().count() <= 50,
        "-h has {} lines:\n{short}",
        short.lines().count()
    );
    assert!(short.lines().all(|l| l.chars().count() <= 100), "{short}");
    assert!(short.contains("\nExamples:\n"), "{short}");
    assert!(
        short.contains("claude-iso -- claude --resume <id>"),
        "{short}"
    );
    let long = run("--help");
    assert!(long.contains("\nExamples:\n"), "{long}");
    for example in [
        "claude-iso token set",
        "claude-iso doctor --live",
        "claude-iso -- claude --print",
        "claude-iso -- claude --resume <id>",
    ] {
        assert!(long.contains(example), "--help lacks {example}");
    }
}

/// Bash completes what a user types, through the function the script registers for
/// `claude-iso` (a hyphen in the name once sent every subcommand to file names):
/// `token <TAB>`, `doctor --li<TAB>`, and `--name <TAB>` offers the named homes
/// (issue 24).
#[test]
fn bash_completes_subcommands_options_and_home_names() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claude-iso.bash");
    fs::write(&file, completions("bash")).unwrap();
    let state = dir.path().join("state");
    for name in ["work", "play"] {
        fs::create_dir_all(state.join("claude-iso/homes").join(name)).unwrap();
    }
    // Stray files in the working directory must not be offered.
    let cwd = dir.path().join("cwd");
    fs::create_dir_all(&cwd).unwrap();
    fs::write(cwd.join("a-file"), "").unwrap();
    let complete = |words: &[&str]| -> Vec<String> {
        let script = r#"source "$1"; shift
            f=$(complete -p claude-iso | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            "$f" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}""#;
        let out = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", script, "bash"])
            .arg(&file)
            .args(words)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap();
        assert_success(&format!("completing {words:?}"), &out);
        let mut got: Vec<String> = text(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        got.sort();
        got
    };
    let token = complete(&["claude-iso", "token", ""]);
    for want in ["set", "status"] {
        assert!(token.contains(&want.to_owned()), "token <TAB>: {token:?}");
    }
    assert!(
        !token.contains(&"a-file".to_owned()),
        "token <TAB>: {token:?}"
    );
    assert_eq!(complete(&["claude-iso", "doctor", "--li"]), ["--live"]);
    assert_eq!(complete(&["claude-iso", "token", "st"]), ["status"]);
    assert_eq!(complete(&["claude-iso", "--name", ""]), ["play", "work"]);
    assert_eq!(complete(&["claude-iso", "doctor", "--name", "w"]), ["work"]);
}

/// Named homes for `--name <TAB>` in a state directory of the test's own, with a file
/// in the working directory that must not be offered instead.
fn homes_and_cwd() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for name in ["work", "play"] {
        fs::create_dir_all(state.join("claude-iso/homes").join(name)).unwrap();
    }
    let cwd = dir.path().join("cwd");
    fs::create_dir_all(&cwd).unwrap();
    fs::write(cwd.join("a-file"), "").unwrap();
    (dir, state, cwd)
}

/// zsh offers the named homes for `--name <TAB>`, through the completion system a user's
/// `compinit` loads, typed into an interactive zsh on a pseudo-terminal (issue 24).
#[test]
fn zsh_completes_home_names() {
    let Some(zsh) = shell("zsh") else {
        return;
    };
    let (dir, state, cwd) = homes_and_cwd();
    let functions = dir.path().join("functions");
    fs::create_dir_all(&functions).unwrap();
    fs::write(functions.join("_claude-iso"), completions("zsh")).unwrap();
    // Type `claude-iso --name <TAB><TAB>` and read the screen until a listing shows.
    let driver = r#"zmodload zsh/zpty
        zpty z 'zsh -f -i'
        zpty -w z "PROMPT='> '; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D; print READY"
        zpty -r z line '*READY*'; zpty -r z line '*READY*'
        zpty -n -w z $'claude-iso --name \t\t'
        out=""
        for i in {1..100}; do
            while zpty -r -t z chunk; do out+=$chunk; done
            [[ $out == *work/* ]] && break
            sleep 0.05
        done
        zpty -d z
        print -r -- "$out""#;
    let out = Command::new(zsh)
        .args(["-f", "-c", driver, "zsh"])
        .arg(&functions)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_success("zsh completing --name", &out);
    let screen = text(&out.stdout);
    assert!(
        screen.contains("play/") && screen.contains("work/") && !screen.contains("a-file"),
        "claude-iso --name <TAB> in zsh:\n{screen}"
    );
}

/// fish offers the named homes for `--name <TAB>`, after the launcher's options and
/// after `doctor` (issue 24).
#[test]
fn fish_completes_home_names() {
    let Some(fish) = shell("fish") else {
        return;
    };
    let (dir, state, cwd) = homes_and_cwd();
    let file = dir.path().join("claude-iso.fish");
    fs::write(&file, completions("fish")).unwrap();
    let complete = |line: &str| -> Vec<String> {
        let out = Command::new(&fish)
            .args([
                "--no-config",
                "-c",
                r#"source $argv[1]; complete -C $argv[2]"#,
            ])
            .arg(&file)
            .arg(line)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.path())
            .env("XDG_STATE_HOME", &state)
            .output()
            .unwrap();
        assert_success(&format!("fish completing {line:?}"), &out);
        let mut got: Vec<String> = text(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect();
        got.sort();
        got
    };
    assert_eq!(complete("claude-iso --name "), ["play", "work"]);
    assert_eq!(complete("claude-iso -q --name w"), ["work"]);
    assert_eq!(complete("claude-iso doctor --name "), ["play", "work"]);
    assert_eq!(complete("claude-iso --name=p"), ["--name=play"]);
    // The other options are as before: a subcommand, a file for --home.
    assert!(complete("claude-iso tok").contains(&"token".to_owned()));
    assert_eq!(complete("claude-iso --home a-"), ["a-file"]);
}

/// The README's synopsis names every subcommand (and each action of one), its options
/// table every option of the launcher, and its table of contents every section
/// (issue 24).
#[test]
fn readme_synopsis_options_and_contents_are_complete() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let synopsis = readme
        .split("```\n")
        .nth(1)
        .expect("a synopsis block first");
    let cmd = <claude_iso::cli::Cli as clap::CommandFactory>::command();
    for sub in cmd.get_subcommands() {
        let name = format!("claude-iso {}", sub.get_name());
        assert!(synopsis.contains(&name), "the README synopsis lacks {name}");
        for action in sub.get_subcommands() {
            let name = format!("claude-iso {} {}", sub.get_name(), action.get_name());
            assert!(synopsis.contains(&name), "the README synopsis lacks {name}");
        }
    }
    let table: Vec<&str> = readme
        .split("\n## Options\n")
        .nth(1)
        .expect("an Options section")
        .lines()
        .take_while(|l| !l.starts_with("#"))
        .filter(|l| l.starts_with("| `"))
        .collect();
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if ["help", "version"].contains(&long) {
            continue;
        }
        let flag = format!("--{long}");
        assert!(
            table.iter().any(|row| {
                let first = row.split(" | ").next().unwrap_or("");
                first.contains(&format!("`{flag} "))
                    || first.contains(&format!("`{flag}`"))
                    || first.contains(&format!(" {flag} "))
                    || first.contains(&format!(" {flag}`"))
            }),
            "the README options table lacks {flag}"
        );
    }
    let contents = readme
        .lines()
        .find(|l| l.starts_with("**Contents:**"))
        .expect("a table of contents");
    for heading in readme.lines().filter_map(|l| l.strip_prefix("## ")) {
        let shown = heading.replace('`', "");
        assert!(
            contents.contains(&format!("[{shown}](#")),
            "the table of contents lacks {heading}"
        );
    }
}

/// The unit's hardening lets claude-iso's mask work (a user and a mount namespace, no
/// other kind), and `systemd-analyze verify` accepts the unit as the README and its own
/// set-up comment install it: the binary and the man page in place (here: the built
/// binary, and the man page on `MANPATH`) (issue 24).
#[test]
fn example_systemd_unit_allows_the_mask_and_verifies() {
    let unit = fs::read_to_string(repo().join("examples/claude-agent@.service")).unwrap();
    let settings = unit_settings(&unit);
    let restrict: Vec<&str> = settings
        .iter()
        .filter(|(k, _)| k == "RestrictNamespaces")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(restrict.len(), 1, "{restrict:?}");
    let mut allowed: Vec<&str> = restrict[0].split_whitespace().collect();
    allowed.sort_unstable();
    assert_eq!(
        allowed,
        ["mnt", "user"],
        "RestrictNamespaces={}",
        restrict[0]
    );
    assert!(unit.contains("install -m 755 ~/.cargo/bin/claude-iso /usr/local/bin/claude-iso"));
    assert!(unit.contains("/usr/local/share/man/man1/claude-iso.1"));

    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the verify half of this test did not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man/man1");
    fs::create_dir_all(&man1).unwrap();
    fs::copy(repo().join(MAN_PAGE), man1.join("claude-iso.1")).unwrap();
    let installed = unit.replace("/usr/local/bin/claude-iso", BIN);
    fs::write(dir.path().join("claude-agent@.service"), installed).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(dir.path().join("claude-agent@demo.service"))
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("MANPATH", dir.path().join("man"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .unwrap();
    assert_success("systemd-analyze verify", &out);
    assert_eq!(text(&out.stderr), "", "systemd-analyze verify complained");
}
