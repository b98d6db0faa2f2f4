//! The settings guard: which settings files claude would apply for the working
//! directory, what in them would bring another credential or send the token somewhere
//! else, and where the token goes.
//!
//! A pure core ([`judge`]: one settings document → findings; [`destination`]: layers →
//! where the token goes) and one entry, [`inspect`], used by the launcher before exec and
//! by `doctor`. Which files claude loads was measured on the real CLI (2.1.197, 2.1.330
//! and 2.1.332, fake APIs on 127.0.0.1); the per-version table, with the test proving
//! each row, is `docs/claude-settings-layers.md`:
//!
//! - `/etc/claude-code/managed-settings.json` and `/etc/claude-code/managed-settings.d/*.json`
//!   (all; they beat everything);
//! - `--settings FILE|JSON` in the command's own arguments (all; beats every project
//!   file; the last one given wins; a relative path is the working directory's; a value
//!   that is not a JSON object is not applied);
//! - the "local settings root"'s `.claude/settings.local.json` (2.1.330 and 2.1.332, not
//!   2.1.197; it beats the working directory's files): the git root found as claude finds
//!   it ([`git_root`]), made canonical as claude makes it (a linked worktree's is its main
//!   checkout, [`main_checkout`]), and kept only when claude would ([`local_root`]);
//! - `<cwd>/.claude/settings.local.json` and `<cwd>/.claude/settings.json` (all; `local`
//!   wins);
//! - `$HOME/.claude/settings.json`: the scratch home's user settings, below the project
//!   files and above the caller's environment. Judged like the others: the scratch home
//!   is the command's `HOME`, so anything the command ran (a prompt-injected tool) can
//!   have written there. A `--share`d `settings.json` replaces it at launch, so that
//!   file is judged in its place.
//! - `$HOME/.claude/cowork_settings.json`: read INSTEAD of `settings.json` when
//!   `CLAUDE_CODE_USE_COWORK_PLUGINS` is on (2.1.197, 2.1.330, 2.1.332; a caller's switch
//!   passes the scrub). Always judged; it chooses the destination only when the switch
//!   is on. No other name of user settings is read (`settings.local.json`,
//!   `remote-settings.json`, `state/hybrid-settings.json`, `managed-settings.json` in the
//!   home: measured, not applied), and projects have no cowork variant.
//!
//! Everything is judged against the environment the command will get
//! ([`command_env`]: after the scrub, `--unset` and `--keep-env`), not the caller's.
//!
//! Not loaded by any version: `<git root>/.claude/settings.json` (cwd below the root), a
//! main checkout's `settings.json` from a linked worktree, a linked worktree's own
//! `settings.local.json` from below its top, settings in parent directories that are not
//! the local settings root, and the `env` of `--managed-settings JSON`. A file that is
//! not valid JSON is ignored by claude; claude-iso refuses it instead (it cannot tell what
//! another parser would read there), except for `--settings`, whose invalid values
//! claude refuses (2.1.330+) or ignores (2.1.197). Symlinks are followed, as claude
//! follows them, and the target is named in every message.
//!
//! Here, the verdict of one launch ([`inspect`]); in `layers.rs`, which files claude
//! applies; in `read.rs`, reading and judging one file; in `rules.rs`, the keys and
//! variables refused; in `url.rs`, where the token goes.

#![forbid(unsafe_code)]

mod layers;
mod read;
mod rules;
mod url;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::caller::CallerEnv;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::FLAG_SETTING_SOURCES;
use crate::scrub;

use layers::read_text;
pub use layers::{
    COWORK_SETTINGS, COWORK_VAR, Layer, MANAGED_DIR, SettingsFile, Shared, accepts_git_entry,
    cowork_on, flag_settings, git_root, local_root, main_checkout, setting_sources, settings_files,
};
use read::{Judged, read_layer};
pub use read::{MAX_SETTINGS, judge_file};
pub use rules::{
    BASE_URL_VARS, CREDENTIAL_KEYS, Finding, LEAK_PREFIXES, LEAK_VARS, ROUTE_VARS, Why, judge,
    parse,
};
use url::destination_of;
pub use url::{
    BASE_URL_VAR, DEFAULT_DESTINATION, Destination, HTTP_PROXY_VARS, HTTPS_PROXY_VARS,
    OTHER_API_URL_VARS, origin,
};

/// What the guard found for one launch.
#[derive(Debug, Clone)]
pub struct SettingsVerdict {
    /// Every file read, in precedence order.
    pub files: Vec<SettingsFile>,
    pub findings: Vec<Finding>,
    pub destination: Destination,
    /// Files skipped because they cannot be read by this user (`EACCES`) and are not
    /// this user's to make readable: claude, running as the same user, cannot load them
    /// either. One note each, for `-v`, `--dry-run` and `doctor`.
    pub unread: Vec<String>,
}

impl SettingsVerdict {
    /// The launcher's rule: refuse (125, one line) unless allowed on purpose.
    ///
    /// # Errors
    /// [`Error::Settings`] naming the first finding's file and key.
    pub fn enforce(&self, allow: bool) -> Result<()> {
        let Some(first) = self.findings.first() else {
            return Ok(());
        };
        if allow {
            return Ok(());
        }
        let more = match self.findings.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let layer = self
            .files
            .iter()
            .find(|f| f.path == first.path)
            .map(|f| f.layer);
        let fix = match layer {
            Some(Layer::User | Layer::CoworkUser) => {
                "remove it (the scratch home is the command's HOME: anything it ran could have written it)"
            }
            Some(Layer::SharedUser | Layer::SharedCowork) => "remove it from the shared file",
            Some(Layer::Flag) => "remove it from the command's --settings",
            _ => "remove it, run elsewhere",
        };
        Err(Error::Settings(format!(
            "refusing to run: {}{more}; {fix}, or pass --allow-project-auth to let it through on purpose",
            first.line()
        )))
    }
}

/// The environment the command gets, as far as the guard is concerned: the caller's,
/// without what claude-iso removes (the scrub table, `--unset`), except what
/// `--keep-env` passes on purpose — the same rule as `environment::child_env`. The
/// destination and the "equal to the caller's own value" rule read this, not the
/// caller's environment: a value removed at launch chooses nothing.
#[must_use]
pub fn command_env(config: &Config) -> CallerEnv {
    config
        .env
        .vars()
        .iter()
        .filter(|(k, _)| !scrub::removed(k, &config.keep_env, &config.unset))
        .cloned()
        .collect()
}

/// The command a launch runs, as far as the guard is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Command<'a> {
    /// The program found on `PATH` (`None`: not found, or no command, as in `doctor`).
    pub program: Option<&'a Path>,
    /// Its arguments, `argv[0]` first: their `--settings` are layers.
    pub argv: &'a [OsString],
}

/// The newest claude measured not to read the local settings root's
/// `settings.local.json` ([`Layer::RootLocal`]); 2.1.330 and later read it.
const ROOT_LOCAL_UNREAD_UP_TO: (u32, u32, u32) = (2, 1, 197);

/// The version of the claude that `program` is, when its installation says so without
/// running it: the `version` of the `@anthropic-ai/claude-code` package.json above the
/// file it resolves to (npm installs), or the file's own name (the native installer
/// keeps `…/versions/2.1.332`). `None` for anything else.
#[must_use]
pub fn claude_version(program: &Path) -> Option<(u32, u32, u32)> {
    let parse = |v: &str| -> Option<(u32, u32, u32)> {
        let mut it = v.trim().splitn(3, '.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch: String = it
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some((major, minor, patch.parse().ok()?))
    };
    let real = crate::sys::fsutil::realpath(program).ok()?;
    if let Some(v) = real.file_name().and_then(OsStr::to_str).and_then(parse) {
        return Some(v);
    }
    for dir in real.ancestors().skip(1).take(4) {
        let Some(text) = read_text(&dir.join("package.json"), MAX_SETTINGS) else {
            continue;
        };
        let doc: Value = serde_json::from_str(&text).ok()?;
        if doc.get("name")?.as_str()? != "@anthropic-ai/claude-code" {
            return None;
        }
        return parse(doc.get("version")?.as_str()?);
    }
    None
}

/// Everything the guard knows for one launch: reads each file claude would load for
/// `config.workdir` (the user settings of `home`, the scratch home, included;
/// `shared_user` is a `--share`d `settings.json` that replaces them at this launch;
/// `command`'s `--settings` are layers, and its version says which layers choose the
/// destination), judges every one, and works out the destination.
#[must_use]
pub fn inspect(
    config: &Config,
    home: &Path,
    shared: Shared<'_>,
    leaving: &[PathBuf],
    command: Command<'_>,
) -> SettingsVerdict {
    let env = command_env(config);
    let version = command.program.and_then(claude_version);
    let mut launch = Applies {
        cowork: cowork_on(&env),
        // Judged whatever the version (a later claude in the same place reads it), but
        // choosing the destination only for a claude that reads it.
        root_local_read: version.is_none_or(|v| v > ROOT_LOCAL_UNREAD_UP_TO),
        // Options take a value starting with `-` in 2.1.330 and later, not in 2.1.197.
        sources: setting_sources(
            command.argv,
            version.is_none_or(|v| v > ROOT_LOCAL_UNREAD_UP_TO),
        ),
        version,
        flag_applied: false,
    };
    let mut files = settings_files(&config.workdir, home, shared, launch.cowork, command.argv);
    // Files this launch removes or replaces before the command runs (claude-iso's own
    // unchanged copies of shared files): never applied as they are.
    files.retain(|f| !leaving.contains(&f.path));
    let mut findings = Vec::new();
    let mut unread = Vec::new();
    let mut docs: Vec<(Layer, PathBuf, Map<String, Value>)> = Vec::new();
    for file in &files {
        match read_layer(file, &env) {
            Judged::Doc(doc, mut found) => {
                findings.append(&mut found);
                if launch.applies(file, &mut unread) {
                    docs.push((file.layer, file.path.clone(), doc));
                }
            }
            Judged::Absent => {}
            Judged::NotApplied(reason) => {
                if file.layer == Layer::Flag {
                    launch.flag_applied = true;
                }
                unread.push(format!(
                    "{}: {reason}; claude does not apply it",
                    layer_name(file)
                ));
            }
            Judged::Unread(note) => unread.push(format!("{}: {note}", layer_name(file))),
            Judged::Refused(finding) => findings.push(finding),
        }
    }
    let destination = destination(&docs, &env);
    for f in &mut findings {
        f.why.send_to(&destination.origin);
    }
    SettingsVerdict {
        files,
        findings,
        destination,
        unread,
    }
}

/// What decides, for one launch, which of the layers read claude applies.
struct Applies {
    /// `CLAUDE_CODE_USE_COWORK_PLUGINS` is on: the cowork user settings are read.
    cowork: bool,
    /// The claude that runs reads the local settings root's file.
    root_local_read: bool,
    /// The sources the command's `--setting-sources` keeps (`None`: every one).
    sources: Option<Vec<&'static str>>,
    version: Option<(u32, u32, u32)>,
    /// A `--settings` was met already: of several, only the last one given (met first)
    /// is applied.
    flag_applied: bool,
}

impl Applies {
    /// Whether claude applies `file`, read and judged, at this launch (it then chooses the
    /// destination), with a note in `unread` when it would but for the command's
    /// `--setting-sources` or the version of the claude that runs.
    fn applies(&mut self, file: &SettingsFile, unread: &mut Vec<String>) -> bool {
        // The user settings claude does not read this time choose nothing; of
        // several `--settings`, only the last one given is applied.
        let read = match file.layer {
            Layer::CoworkUser | Layer::SharedCowork => self.cowork,
            Layer::User | Layer::SharedUser => !self.cowork,
            Layer::Flag => !std::mem::replace(&mut self.flag_applied, true),
            Layer::RootLocal => self.root_local_read,
            _ => true,
        };
        let left_out = file.layer.source().is_some_and(|name| {
            self.sources
                .as_ref()
                .is_some_and(|kept| !kept.contains(&name))
        });
        if read && left_out {
            unread.push(format!(
                "{}: judged, but the command's {FLAG_SETTING_SOURCES} leaves it out",
                layer_name(file)
            ));
        }
        let read = read && !left_out;
        if !read && !left_out && file.layer == Layer::RootLocal {
            let (a, b, c) = self.version.unwrap_or_default();
            unread.push(format!(
                "{}: judged, but claude {a}.{b}.{c} does not apply it (2.1.330 and later do)",
                layer_name(file)
            ));
        }
        read
    }
}

fn layer_name(file: &SettingsFile) -> String {
    format!(
        "{} {}",
        file.layer.describe(),
        shown(&file.path.to_string_lossy())
    )
}

/// The destination: the highest layer setting `ANTHROPIC_BASE_URL`, else the caller's
/// environment, else the default; other API base URLs set (`CLAUDE_CODE_API_BASE_URL`)
/// and the proxy (`HTTPS_PROXY`, `CLAUDE_CODE_HTTPS_PROXY`, `ALL_PROXY`, … in any case)
/// the same way.
#[must_use]
pub fn destination(
    docs: &[(Layer, PathBuf, Map<String, Value>)],
    caller: &CallerEnv,
) -> Destination {
    let layers: Vec<(String, &Map<String, Value>)> = docs
        .iter()
        .map(|(layer, path, doc)| {
            (
                format!("{} {}", layer.describe(), shown(&path.to_string_lossy())),
                doc,
            )
        })
        .collect();
    destination_of(&layers, caller)
}

/// Text from a file we do not control, made safe for one terminal line.
fn shown(s: &str) -> String {
    crate::report::escape_controls(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CallerEnv {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn versions_of_npm_and_native_installs() {
        let d = tempfile::tempdir().unwrap();
        let pkg = d.path().join("node_modules/@anthropic-ai/claude-code");
        std::fs::create_dir_all(pkg.join("bin")).unwrap();
        std::fs::write(
            pkg.join("package.json"),
            r#"{"name":"@anthropic-ai/claude-code","version":"2.1.330"}"#,
        )
        .unwrap();
        std::fs::write(pkg.join("bin/claude.exe"), "").unwrap();
        std::os::unix::fs::symlink(pkg.join("bin/claude.exe"), d.path().join("claude")).unwrap();
        assert_eq!(claude_version(&d.path().join("claude")), Some((2, 1, 330)));
        let native = d.path().join("versions");
        std::fs::create_dir(&native).unwrap();
        std::fs::write(native.join("2.1.197"), "").unwrap();
        assert_eq!(claude_version(&native.join("2.1.197")), Some((2, 1, 197)));
        std::fs::write(d.path().join("other"), "").unwrap();
        assert_eq!(claude_version(&d.path().join("other")), None);
    }

    #[test]
    fn destination_precedence() {
        let caller = env(&[("ANTHROPIC_BASE_URL", "http://caller:1")]);
        assert_eq!(
            destination(&[], &caller).chosen_by,
            "ANTHROPIC_BASE_URL in the caller's environment"
        );
        assert_eq!(
            destination(&[], &CallerEnv::default()).origin,
            DEFAULT_DESTINATION
        );
        let doc =
            parse(br#"{"env":{"ANTHROPIC_BASE_URL":"https://x:pw@proj.example/v"}}"#).unwrap();
        let d = destination(
            &[(
                Layer::Local,
                PathBuf::from("/w/.claude/settings.local.json"),
                doc,
            )],
            &caller,
        );
        assert_eq!(d.origin, "https://proj.example");
        assert!(d.chosen_by.contains("/w/.claude/settings.local.json"));
        assert!(!d.is_anthropic());
        assert!(destination(&[], &CallerEnv::default()).is_anthropic());
    }

    #[test]
    fn other_base_urls_and_every_proxy_variable_count() {
        let caller = env(&[
            ("CLAUDE_CODE_API_BASE_URL", "https://u:pw@gw.example/v1"),
            ("CLAUDE_CODE_HTTPS_PROXY", "http://p.example:3128"),
        ]);
        let d = destination(&[], &caller);
        assert_eq!(d.origin, DEFAULT_DESTINATION);
        assert_eq!(
            d.also,
            [(
                "https://gw.example".to_owned(),
                "CLAUDE_CODE_API_BASE_URL in the caller's environment".to_owned()
            )]
        );
        assert_eq!(
            d.proxy,
            Some((
                "http://p.example:3128".to_owned(),
                "CLAUDE_CODE_HTTPS_PROXY in the caller's environment".to_owned()
            ))
        );
        assert!(!d.is_anthropic());
        assert!(!d.line().contains("pw"), "{}", d.line());
        let d = destination(&[], &env(&[("all_proxy", "socks5://s:1")]));
        assert_eq!(d.proxy.unwrap().0, "socks5://s:1");
        // An http destination goes through the http proxy, not the https one.
        let d = destination(
            &[],
            &env(&[
                ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
                ("HTTPS_PROXY", "http://a:1"),
                ("HTTP_PROXY", "http://b:2"),
            ]),
        );
        assert_eq!(d.proxy.unwrap().0, "http://b:2");
    }
}
