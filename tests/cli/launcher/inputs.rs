//! The inputs of a launch (issue 3): every bad or unusual env file, home and directory,
//! one table, refused cleanly (125, one line, the command never runs, nothing created)
//! or accepted exactly; no secret ever shown.
//!
//! The table passes as root and as an unprivileged user. Where a rule can only be made
//! to bite with root's help (a file owned by someone else, a full or read-only
//! filesystem), the row or test says what it uses instead when not root.

use std::fs;
use std::os::unix::fs::symlink;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::sandbox::{API_KEY, REFRESH, TOKEN_LINE};

use crate::support::sandbox::{
    Output, TOKEN, Test, chmod, claude_json, is_root, mkdir, mode_of, names_with_prefix,
    secret_piece, tree, trusts, write_mode,
};
use nix::sys::stat::Mode;
/// Uid of `nobody`, for fixtures owned by someone else (root only).
const NOBODY: u32 = 65534;

/// What a case must lead to.
enum Expect {
    /// Exit 125, one line `claude-iso: …` containing this, the command never ran.
    Refused { stderr_contains: String },
    /// The command ran and got exactly [`TOKEN`].
    Accepted,
}

/// One row of the table.
struct Case {
    name: &'static str,
    setup: fn(Test) -> Test,
    expect: Expect,
    /// More to check afterwards (a mode tightened, a file kept aside, …).
    check: Option<fn(&Test, &Output)>,
}

fn refused(name: &'static str, setup: fn(Test) -> Test, stderr_contains: &str) -> Case {
    Case {
        name,
        setup,
        expect: Expect::Refused {
            stderr_contains: stderr_contains.to_owned(),
        },
        check: None,
    }
}

fn accepted(name: &'static str, setup: fn(Test) -> Test) -> Case {
    Case {
        name,
        setup,
        expect: Expect::Accepted,
        check: None,
    }
}

impl Case {
    fn then(mut self, check: fn(&Test, &Output)) -> Case {
        self.check = Some(check);
        self
    }
}

/// An env file at `name` in the sandbox, passed as `--env-file`.
fn env_file(t: Test, name: &str, bytes: impl AsRef<[u8]>, mode: u32) -> Test {
    let path = t.path(name);
    write_mode(&path, bytes, mode);
    t.no_env_file().arg("--env-file").arg(path)
}

/// The default env file with these contents (mode 0600).
fn token_file(t: Test, bytes: impl AsRef<[u8]>) -> Test {
    t.env_file_text(bytes)
}

/// The default `--home`, created with `mode`.
fn make_home(t: &Test, mode: u32) -> PathBuf {
    let home = mkdir(&t.home());
    chmod(&home, mode);
    home
}

/// The default `--home` as a parent claude-iso leaves it: 0700, seeded, with its lock
/// file (which is how a nested run recognises a scratch `HOME`).
fn parent_scratch_home(t: &Test) -> PathBuf {
    let home = make_home(t, 0o700);
    write_mode(&home.join(".claude-iso.lock"), "", 0o600);
    home
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn passwd_home() -> PathBuf {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .expect("a passwd entry for the test user")
        .dir
}

#[allow(clippy::too_many_lines)] // it is the table
fn cases() -> Vec<Case> {
    let root = is_root();
    vec![
        // ---- the env file: where and what it is -------------------------------------
        refused(
            "env file missing",
            |t| {
                let p = t.path("missing.env");
                t.no_env_file().arg("--env-file").arg(p)
            },
            "missing.env: cannot open: No such file or directory",
        ),
        refused(
            "env file a directory",
            |t| {
                let p = mkdir(&t.path("dir.env"));
                t.no_env_file().arg("--env-file").arg(p)
            },
            "dir.env: is a directory, not a regular file",
        ),
        refused(
            "env file mode 0644",
            |t| env_file(t, "loose.env", format!("{TOKEN_LINE}{TOKEN}\n"), 0o644),
            "mode 0644 lets other users read the token; run: chmod 600",
        ),
        refused(
            "env file mode 0640",
            |t| env_file(t, "loose.env", format!("{TOKEN_LINE}{TOKEN}\n"), 0o640),
            "UNPROTECTED: mode 0640",
        ),
        refused(
            "env file mode 0604",
            |t| env_file(t, "loose.env", format!("{TOKEN_LINE}{TOKEN}\n"), 0o604),
            "UNPROTECTED: mode 0604",
        ),
        // Root: a 0600 file chowned to nobody. Not root: a file of someone else cannot be
        // made, and root is an allowed owner, so /etc/passwd (root's, 0644) stands in: it
        // is refused for its mode — the refusal, the silence and the exit still count.
        refused(
            "env file owned by someone else",
            |t| {
                if is_root() {
                    let t = env_file(t, "foreign.env", format!("{TOKEN_LINE}{TOKEN}\n"), 0o600);
                    chown(&t.path("foreign.env"), NOBODY);
                    t
                } else {
                    t.no_env_file().args(["--env-file", "/etc/passwd"])
                }
            },
            if root {
                "foreign.env: is owned by uid 65534, not by you (uid 0) or root"
            } else {
                "/etc/passwd: UNPROTECTED: mode 0644"
            },
        ),
        refused(
            "env file a FIFO (must not hang)",
            |t| {
                let p = t.path("fifo.env");
                nix::unistd::mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
                t.no_env_file()
                    .arg("--env-file")
                    .arg(p)
                    .timeout(Duration::from_secs(5))
            },
            "fifo.env: is a FIFO, not a regular file",
        ),
        refused(
            "env file /dev/null",
            |t| t.no_env_file().args(["--env-file", "/dev/null"]),
            "/dev/null: is a character device, not a regular file",
        ),
        refused(
            "env file a symlink to a 0644 file",
            |t| {
                write_mode(
                    &t.path("loose.env"),
                    format!("{TOKEN_LINE}{TOKEN}\n"),
                    0o644,
                );
                symlink(t.path("loose.env"), t.path("link.env")).unwrap();
                let p = t.path("link.env");
                t.no_env_file().arg("--env-file").arg(p)
            },
            "UNPROTECTED: mode 0644",
        ),
        refused(
            "env file 10 MB",
            |t| {
                let mut text = format!("{TOKEN_LINE}{TOKEN}\n").into_bytes();
                text.resize(10 * 1024 * 1024, b'#');
                token_file(t, text)
            },
            "is 10485760 bytes; a token file is at most 65536 bytes",
        ),
        // The exemption for systemd's credentials directory must not reach outside it.
        refused(
            "env file reached through $CREDENTIALS_DIRECTORY/.. with mode 0644",
            |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(
                    &t.path("loose.env"),
                    format!("{TOKEN_LINE}{TOKEN}\n"),
                    0o644,
                );
                t.env("CREDENTIALS_DIRECTORY", &creds)
                    .no_env_file()
                    .arg("--env-file")
                    .arg(creds.join("../loose.env"))
            },
            "UNPROTECTED: mode 0644",
        ),
        // ---- the env file: its contents ----------------------------------------------
        refused(
            "env file empty",
            |t| token_file(t, ""),
            "no CLAUDE_CODE_OAUTH_TOKEN= line",
        ),
        refused(
            "env file without the key",
            |t| token_file(t, "# my token\nOTHER=1\n"),
            "no CLAUDE_CODE_OAUTH_TOKEN= line",
        ),
        refused(
            "key twice",
            |t| {
                token_file(
                    t,
                    format!("{TOKEN_LINE}{TOKEN}\n# x\n{TOKEN_LINE}{TOKEN}\n"),
                )
            },
            "token.env:3: CLAUDE_CODE_OAUTH_TOKEN is set twice (lines 1 and 3)",
        ),
        refused(
            "empty value",
            |t| token_file(t, format!("{TOKEN_LINE}\n")),
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN is empty",
        ),
        refused(
            "an API key as the token",
            |t| token_file(t, format!("{TOKEN_LINE}{API_KEY}\n")).secret(API_KEY),
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN holds an API key",
        ),
        refused(
            "a refresh token as the token",
            |t| token_file(t, format!("{TOKEN_LINE}{REFRESH}\n")).secret(REFRESH),
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN holds a refresh token",
        ),
        refused(
            "not a setup-token",
            |t| token_file(t, format!("{TOKEN_LINE}sk-ant-xyz01-{}\n", &TOKEN[13..])),
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN does not look like a setup-token",
        ),
        refused(
            "whitespace inside the value",
            |t| {
                token_file(
                    t,
                    format!("{TOKEN_LINE}\"{} {}\"\n", &TOKEN[..30], &TOKEN[30..]),
                )
            },
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN contains whitespace",
        ),
        refused(
            "a trailing comment (systemd keeps it in the value)",
            |t| token_file(t, format!("{TOKEN_LINE}{TOKEN} # mine\n")),
            "token.env:1: CLAUDE_CODE_OAUTH_TOKEN contains whitespace",
        ),
        refused(
            "NUL byte",
            |t| token_file(t, format!("# a\n{TOKEN_LINE}{TOKEN}\0\n")),
            "token.env:2: contains a NUL byte",
        ),
        refused(
            "invalid UTF-8",
            |t| {
                let mut text = format!("{TOKEN_LINE}{TOKEN}\n").into_bytes();
                text.extend_from_slice(b"OTHER=\xff\xfe\n");
                token_file(t, text)
            },
            "token.env:2: is not valid UTF-8",
        ),
        refused(
            "control character",
            |t| token_file(t, format!("{TOKEN_LINE}{TOKEN}\x1b[0m\n")),
            "token.env:1: contains a control character",
        ),
        refused(
            "ANTHROPIC_API_KEY inside the env file",
            |t| {
                token_file(
                    t,
                    format!("{TOKEN_LINE}{TOKEN}\nANTHROPIC_API_KEY={API_KEY}\n"),
                )
                .secret(API_KEY)
            },
            "token.env:2: sets ANTHROPIC_API_KEY",
        ),
        refused(
            "CLAUDE_CONFIG_DIR inside the env file",
            |t| {
                token_file(
                    t,
                    format!("CLAUDE_CONFIG_DIR=/root/.claude\n{TOKEN_LINE}{TOKEN}\n"),
                )
            },
            "token.env:1: sets CLAUDE_CONFIG_DIR",
        ),
        refused(
            "whitespace around '='",
            |t| token_file(t, format!("CLAUDE_CODE_OAUTH_TOKEN = {TOKEN}\n")),
            "token.env:1: has whitespace before '='",
        ),
        refused(
            "unbalanced double quote",
            |t| token_file(t, format!("{TOKEN_LINE}\"{TOKEN}\n")),
            "token.env:1: has an unbalanced double quote",
        ),
        refused(
            "unbalanced single quote",
            |t| token_file(t, format!("{TOKEN_LINE}'{TOKEN}\n")),
            "token.env:1: has an unbalanced single quote",
        ),
        refused(
            "a quoted value spanning two lines",
            |t| {
                token_file(
                    t,
                    format!("{TOKEN_LINE}\"{}\n{}\"\n", &TOKEN[..30], &TOKEN[30..]),
                )
            },
            "token.env:1: has an unbalanced double quote",
        ),
        refused(
            "text after the closing quote",
            |t| token_file(t, format!("{TOKEN_LINE}\"{TOKEN}\"x\n")),
            "token.env:1: has text after the closing quote",
        ),
        refused(
            "trailing backslash (line continuation)",
            |t| {
                token_file(
                    t,
                    format!("{TOKEN_LINE}{}\\\n{}\n", &TOKEN[..30], &TOKEN[30..]),
                )
            },
            "token.env:1: ends in a backslash",
        ),
        refused(
            "a line without '='",
            |t| token_file(t, format!("{TOKEN_LINE}{TOKEN}\njust words\n")),
            "token.env:2: has no '='",
        ),
        refused(
            "an invalid variable name",
            |t| token_file(t, format!("{TOKEN_LINE}{TOKEN}\n1BAD-NAME=x\n")),
            "token.env:2: has an invalid variable name",
        ),
        refused(
            "$CLAUDE_CODE_OAUTH_TOKEN holds an API key",
            |t| {
                t.no_env_file()
                    .env("CLAUDE_CODE_OAUTH_TOKEN", API_KEY)
                    .secret(API_KEY)
            },
            "$CLAUDE_CODE_OAUTH_TOKEN: holds an API key",
        ),
        refused(
            "the credentials directory file a FIFO (must not hang)",
            |t| {
                let creds = mkdir(&t.path("creds"));
                let fifo = creds.join("claude-oauth-token");
                nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
                t.no_env_file()
                    .env("CREDENTIALS_DIRECTORY", creds)
                    .timeout(Duration::from_secs(5))
            },
            "claude-oauth-token: is a FIFO, not a regular file",
        ),
        refused(
            "the credentials directory holds a refresh token",
            |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(
                    &creds.join("claude-oauth-token"),
                    format!("{REFRESH}\n"),
                    0o400,
                );
                t.no_env_file()
                    .env("CREDENTIALS_DIRECTORY", creds)
                    .secret(REFRESH)
            },
            "claude-oauth-token: the token holds a refresh token",
        ),
        // ---- the scratch home ----------------------------------------------------------
        refused(
            "home a symlink",
            |t| {
                let target = mkdir(&t.path("target"));
                chmod(&target, 0o700);
                symlink(&target, t.home()).unwrap();
                t
            },
            "is a symlink, not a directory",
        ),
        refused(
            "home a regular file",
            |t| {
                write_mode(&t.home(), "", 0o600);
                t
            },
            "is a regular file, not a directory",
        ),
        // Root: a 0700 directory chowned to nobody. Not root: /usr, which root owns.
        refused(
            "home owned by someone else",
            |t| {
                if is_root() {
                    chown(&make_home(&t, 0o700), NOBODY);
                    t
                } else {
                    t.no_home().args(["--home", "/usr"])
                }
            },
            if root {
                "is owned by uid 65534, not by you (uid 0)"
            } else {
                "home /usr: is owned by uid 0, not by you"
            },
        ),
        refused(
            "home world-writable",
            |t| {
                make_home(&t, 0o777);
                t
            },
            "is writable by group or others (mode 0777); fix with: chmod 700",
        ),
        refused(
            "home group-writable",
            |t| {
                make_home(&t, 0o770);
                t
            },
            "is writable by group or others (mode 0770)",
        ),
        refused(
            "home the real home ($HOME)",
            |t| {
                let real = t.real_home();
                chmod(&real, 0o700);
                t.no_home().arg("--home").arg(real)
            },
            "is your real home",
        ),
        refused(
            "home an ancestor of the real home",
            |t| {
                let real = mkdir(&t.path("users/me/home"));
                let ancestor = t.path("users");
                chmod(&ancestor, 0o755);
                t.env("HOME", real).no_home().arg("--home").arg(ancestor)
            },
            "is an ancestor of your real home",
        ),
        // With HOME unset the passwd entry's home is the real home. --dry-run so that a
        // bug could not write into the real home of whoever runs the tests.
        refused(
            "HOME unset: home the passwd entry's home",
            |t| {
                t.env_remove("HOME")
                    .no_home()
                    .arg("--home")
                    .arg(passwd_home())
                    .arg("--dry-run")
            },
            "is your real home",
        ),
        refused(
            "nested (CLAUDE_ISO=1, HOME a scratch home): the passwd home is still real",
            |t| {
                let scratch = parent_scratch_home(&t);
                t.env("CLAUDE_ISO", "1")
                    .env("HOME", scratch)
                    .no_home()
                    .arg("--home")
                    .arg(passwd_home())
                    .arg("--dry-run")
            },
            "is your real home",
        ),
        refused(
            "home inside the real ~/.claude",
            |t| {
                let inside = mkdir(&t.real_home().join(".claude/scratch"));
                chmod(&inside, 0o700);
                t.no_home().arg("--home").arg(inside)
            },
            "a real claude config directory",
        ),
        refused(
            "home inside the caller's CLAUDE_CONFIG_DIR",
            |t| {
                let config = mkdir(&t.path("config-dir"));
                let inside = mkdir(&config.join("a/scratch"));
                chmod(&inside, 0o700);
                t.env("CLAUDE_CONFIG_DIR", config)
                    .no_home()
                    .arg("--home")
                    .arg(inside)
            },
            "a real claude config directory",
        ),
        refused(
            "home path ending in ..",
            |t| {
                let p = t.path("work/..");
                t.no_home().arg("--home").arg(p)
            },
            "must end in a directory name",
        ),
        refused(
            ".claude a symlink",
            |t| {
                let home = make_home(&t, 0o700);
                let real_claude = mkdir(&t.real_home().join(".claude"));
                symlink(real_claude, home.join(".claude")).unwrap();
                t
            },
            ".claude is a symlink, not a directory",
        ),
        refused(
            ".claude a regular file",
            |t| {
                let home = make_home(&t, 0o700);
                write_mode(&home.join(".claude"), "", 0o600);
                t
            },
            ".claude is a regular file, not a directory",
        ),
        refused(
            ".claude.json a symlink",
            |t| {
                let home = make_home(&t, 0o700);
                write_mode(&t.real_home().join(".claude.json"), "{}", 0o600);
                symlink(
                    t.real_home().join(".claude.json"),
                    home.join(".claude.json"),
                )
                .unwrap();
                t
            },
            ".claude.json is a symlink, not a regular file",
        ),
        refused(
            ".claude.json a directory",
            |t| {
                let home = make_home(&t, 0o700);
                mkdir(&home.join(".claude.json"));
                t
            },
            ".claude.json is a directory, not a regular file",
        ),
        refused(
            ".claude.json a FIFO (must not hang)",
            |t| {
                let home = make_home(&t, 0o700);
                nix::unistd::mkfifo(&home.join(".claude.json"), Mode::from_bits_truncate(0o600))
                    .unwrap();
                t.timeout(Duration::from_secs(5))
            },
            ".claude.json is a FIFO, not a regular file",
        ),
        // ---- directories ---------------------------------------------------------------
        refused(
            "-C a missing directory",
            |t| t.args(["-C", "no/such/dir"]),
            "/no/such/dir: No such file or directory; pass an existing directory",
        ),
        refused(
            "-C a file",
            |t| {
                let p = t.env_file();
                t.arg("-C").arg(p)
            },
            "token.env: not a directory; pass an existing directory",
        ),
        refused(
            "--trust a missing directory",
            |t| t.args(["--trust", "/no/such/dir"]),
            "--trust /no/such/dir: No such file or directory; pass an existing directory",
        ),
        // ---- valid but unusual ---------------------------------------------------------
        accepted("CRLF line ends", |t| {
            token_file(t, format!("# c\r\n{TOKEN_LINE}{TOKEN}\r\n\r\n"))
        }),
        accepted("export and double quotes", |t| {
            token_file(t, format!("export {TOKEN_LINE}\"{TOKEN}\"\n"))
        }),
        accepted("single quotes", |t| {
            token_file(t, format!("{TOKEN_LINE}'{TOKEN}'\n"))
        }),
        accepted("spaces around the line and the value", |t| {
            token_file(t, format!("   \t{TOKEN_LINE}   {TOKEN}  \t\n"))
        }),
        accepted("no final newline", |t| {
            token_file(t, format!("{TOKEN_LINE}{TOKEN}"))
        }),
        accepted("comments, blank lines and other variables", |t| {
            token_file(
                t,
                format!(
                    "# token\n; another comment\n\nOTHER=$HOME\nexport X='a b'\n{TOKEN_LINE}{TOKEN}\n"
                ),
            )
        }),
        accepted("env file mode 0400", |t| {
            env_file(t, "ro.env", format!("{TOKEN_LINE}{TOKEN}\n"), 0o400)
        }),
        accepted("env file a symlink to a 0600 file", |t| {
            let link = t.path("link.env");
            symlink(t.env_file(), &link).unwrap();
            t.no_env_file().arg("--env-file").arg(link)
        }),
        accepted(
            "credentials directory as systemd builds it (0500, file 0444)",
            |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o444);
                chmod(&creds, 0o500);
                t.no_env_file().env("CREDENTIALS_DIRECTORY", creds)
            },
        ),
        accepted("credentials directory 0500, file 0440", |t| {
            let creds = mkdir(&t.path("creds"));
            write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o440);
            chmod(&creds, 0o500);
            t.no_env_file().env("CREDENTIALS_DIRECTORY", creds)
        }),
        // The exemption is for what systemd builds, not for any directory the variable
        // names.
        refused(
            "credentials directory open to others (0755), file 0444",
            |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o444);
                chmod(&creds, 0o755);
                t.no_env_file().env("CREDENTIALS_DIRECTORY", creds)
            },
            "UNPROTECTED: mode 0444",
        ),
        refused(
            "credentials directory 0500 but the file is writable (0644)",
            |t| {
                let creds = mkdir(&t.path("creds"));
                write_mode(&creds.join("claude-oauth-token"), TOKEN, 0o644);
                chmod(&creds, 0o500);
                t.no_env_file().env("CREDENTIALS_DIRECTORY", creds)
            },
            "UNPROTECTED: mode 0644",
        ),
        refused(
            "CREDENTIALS_DIRECTORY=/ exempts nothing (env file 0644 in a subdirectory)",
            |t| {
                write_mode(
                    &t.path("loose.env"),
                    format!("{TOKEN_LINE}{TOKEN}\n"),
                    0o644,
                );
                let loose = t.path("loose.env");
                t.env("CREDENTIALS_DIRECTORY", "/")
                    .no_env_file()
                    .arg("--env-file")
                    .arg(loose)
            },
            "UNPROTECTED: mode 0644",
        ),
        accepted("an empty $CLAUDE_CODE_OAUTH_TOKEN is not a source", |t| {
            let xdg = mkdir(&t.path("xdg/claude-iso"));
            write_mode(
                &xdg.join("token.env"),
                format!("{TOKEN_LINE}{TOKEN}\n"),
                0o600,
            );
            let xdg = t.path("xdg");
            t.no_env_file()
                .env("CLAUDE_CODE_OAUTH_TOKEN", "")
                .env("XDG_CONFIG_HOME", xdg)
        }),
        accepted("corrupt .claude.json", |t| {
            let home = make_home(&t, 0o700);
            write_mode(&home.join(".claude.json"), "{\"numStartups\": 4,", 0o600);
            t
        })
        .then(|t, out| {
            out.stderr_contains("was not a JSON object");
            let kept = names_with_prefix(&t.home(), ".claude.json.corrupt-");
            assert_eq!(kept.len(), 1, "{kept:?}");
            assert_eq!(
                fs::read(t.home().join(&kept[0])).unwrap(),
                b"{\"numStartups\": 4,"
            );
            assert!(trusts(&claude_json(&t.home()), &t.work()));
        }),
        accepted("home group-readable (tightened to 0700)", |t| {
            make_home(&t, 0o750);
            t
        })
        .then(|t, out| {
            out.stderr(&format!(
                "claude-iso: tightened scratch home {} from mode 0750 to 0700\n",
                t.home().display()
            ));
            assert_eq!(mode_of(&t.home()), 0o700);
        }),
        accepted("home world-readable (tightened to 0700)", |t| {
            make_home(&t, 0o755);
            t
        })
        .then(|t, out| {
            out.stderr_contains("from mode 0755 to 0700");
            assert_eq!(mode_of(&t.home()), 0o700);
        }),
        accepted("home elsewhere under the real home", |t| {
            let home = t.real_home().join("scratch");
            t.no_home().arg("--home").arg(home)
        })
        .then(|t, out| {
            assert_eq!(
                out.probe().var("HOME"),
                Some(t.real_home().join("scratch").into())
            );
        }),
        accepted("home a relative path (from the starting directory)", |t| {
            t.no_home().args(["--home", "rel/home"])
        })
        .then(|t, out| {
            let home = t.work().join("rel/home");
            assert_eq!(out.probe().var("HOME"), Some(home.clone().into()));
            assert_eq!(mode_of(&home), 0o700);
        }),
        accepted("home path with a .. component", |t| {
            let p = t.path("work/../home");
            t.no_home().arg("--home").arg(p)
        })
        .then(|t, out| {
            assert_eq!(mode_of(&t.home()), 0o700);
            // The child gets the resolved directory.
            assert_eq!(out.probe().var("HOME"), Some(t.home().into()));
        }),
        accepted("relative XDG_STATE_HOME is ignored", |t| {
            t.no_home().env("XDG_STATE_HOME", "relative/state")
        })
        .then(|t, out| {
            let home = t.real_home().join(".local/state/claude-iso/home");
            assert_eq!(out.probe().var("HOME"), Some(home.into()));
            assert!(!t.work().join("relative").exists());
        }),
        accepted("relative XDG_CONFIG_HOME is ignored", |t| {
            let dir = mkdir(&t.real_home().join(".config/claude-iso"));
            write_mode(
                &dir.join("token.env"),
                format!("{TOKEN_LINE}{TOKEN}\n"),
                0o600,
            );
            let decoy = mkdir(&t.work().join("relative/claude-iso"));
            write_mode(&decoy.join("token.env"), "nonsense\n", 0o600);
            t.no_env_file().env("XDG_CONFIG_HOME", "relative")
        }),
        accepted("HOME unset", |t| t.env_remove("HOME")).then(|t, out| {
            assert_eq!(out.probe().var("HOME"), Some(t.home().into()));
        }),
        accepted("HOME relative (ignored)", |t| t.env("HOME", "realhome")).then(|t, out| {
            assert_eq!(out.probe().var("HOME"), Some(t.home().into()));
        }),
        accepted(
            "nested: CLAUDE_ISO=1 reusing the scratch home that is HOME",
            |t| {
                let scratch = parent_scratch_home(&t);
                t.env("CLAUDE_ISO", "1").env("HOME", scratch)
            },
        )
        .then(|t, out| {
            assert_eq!(out.probe().var("HOME"), Some(t.home().into()));
            assert_eq!(out.probe().var("CLAUDE_ISO"), Some("1".into()));
        }),
    ]
}

/// Runs one row and checks everything its expectation implies.
fn run_case(case: &Case) {
    let t = (case.setup)(Test::new());
    let out = t.run();
    out.no_secrets();
    match &case.expect {
        Expect::Refused { stderr_contains } => {
            out.status(125).probe_not_run();
            let err = out.stderr_text();
            assert!(
                err.starts_with("claude-iso: ") && err.lines().count() == 1,
                "[{}] expected one line `claude-iso: …` on stderr, got {err:?}",
                case.name
            );
            assert!(
                err.contains(stderr_contains.as_str()),
                "[{}] stderr {err:?} lacks {stderr_contains:?}",
                case.name
            );
            // A dry run prints its plan up to the refusal; otherwise stdout is silent.
            if !t.argv().iter().any(|a| a == "--dry-run") {
                out.stdout("");
            }
        }
        Expect::Accepted => {
            out.success();
            let probe = out.probe();
            probe.assert_token(TOKEN);
            // The token travels in the environment only.
            let argv: Vec<u8> = probe.cmdline.concat();
            assert_eq!(
                secret_piece(&[TOKEN.to_owned()], &argv),
                None,
                "token in argv"
            );
        }
    }
    // Nothing written into the home holds a secret.
    for (path, entry) in tree(&t.home()) {
        if let Some(piece) = secret_piece(&[TOKEN.to_owned()], &entry.content) {
            panic!("{} holds a piece of the token: {piece}", path.display());
        }
    }
    if let Some(check) = case.check {
        check(&t, &out);
    }
}

#[test]
fn table_of_bad_and_unusual_inputs() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let refused = cases
        .iter()
        .filter(|c| matches!(c.expect, Expect::Refused { .. }))
        .count();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| run_case(case))) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("[{}] {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases ({refused} refused, {} accepted) failed:\n\n{}",
        failures.len(),
        cases.len(),
        cases.len() - refused,
        failures.join("\n\n")
    );
}
