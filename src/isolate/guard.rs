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

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::caller::CallerEnv;
use crate::config::Config;
use crate::error::{Error, Result, error_text};
use crate::layout::{
    CLAUDE_DIR, FLAG_SETTING_SOURCES, FLAG_SETTINGS, GIT_DIR, SETTINGS, SETTINGS_LOCAL, TOKEN_VAR,
};
use crate::scrub;

/// A settings file larger than this is refused unread (claude's own are a few KiB).
pub const MAX_SETTINGS: u64 = 1 << 20;
/// Where claude sends the token when nothing says otherwise.
pub const DEFAULT_DESTINATION: &str = "https://api.anthropic.com";
/// The administrator's settings directory of claude on Linux.
pub const MANAGED_DIR: &str = "/etc/claude-code";

/// Settings keys that make claude fetch or use a credential other than the token:
/// claude's own list of "the credential helpers" (2.1.332).
pub const CREDENTIAL_KEYS: &[&str] = &[
    "apiKeyHelper",
    "awsAuthRefresh",
    "awsCredentialExport",
    "gcpAuthRefresh",
    "otelHeadersHelper",
    "proxyAuthHelper",
];

/// `env` entries that change where or how requests travel, by exact name. Patterns
/// cover the rest (see [`route_rule`]): every `*_BASE_URL`, every `ANTHROPIC_*_URL` /
/// `CLAUDE_*_URL`, every `*_PROXY` (any case), `ANTHROPIC_*_HEADERS` / `CLAUDE_*_HEADERS`.
pub const ROUTE_VARS: &[&str] = &[
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "NODE_USE_SYSTEM_CA",
    "NODE_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "ANTHROPIC_UNIX_SOCKET",
    "CLAUDE_CODE_CERT_STORE",
    "CLAUDE_CODE_CLIENT_CERT",
    "CLAUDE_CODE_CLIENT_KEY",
    "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE",
    // TLS trust and the transport of claude's requests: claude 2.1.330+ list these with
    // the proxy and certificate variables (found by tests/drift.rs).
    "CLAUDE_CODE_DISABLE_LOOPED_CROSS_CERT_DROP",
    "CLAUDE_CODE_DISABLE_SELF_NAMED_CERT_DROP",
    "CLAUDE_CODE_PROXY_RESOLVES_HOSTS",
    "CLAUDE_CODE_DISABLE_PROXY_SCHEME_REPAIR",
    "CLAUDE_CODE_RUNNER_MODEL_SOCKET",
    // Name resolution: each can make the API's host name resolve to another host
    // (claude 2.1.332 keeps them, with `SSLKEYLOGFILE`, from settings a host does not own).
    "HOSTALIASES",
    "LOCALDOMAIN",
    "RES_OPTIONS",
];

/// `env` entries that make claude's runtime or TLS stack, or the programs claude runs
/// (they inherit the settings' `env`), write secrets somewhere, by exact name; every
/// `BUN_*` and `NODE_*` variable not in [`ROUTE_VARS`] is of this family too (claude
/// 2.1.332's own rule for what settings a host does not own may not set:
/// `/^(?:BUN|NODE)_/` next to `SSLKEYLOGFILE`). Measured: `BUN_CONFIG_VERBOSE_FETCH=curl`
/// in a project's settings made claude 2.1.332 print every request, the
/// `Authorization: Bearer` token included, on its stderr.
pub const LEAK_VARS: &[&str] = &["SSLKEYLOGFILE"];
/// The prefixes of the runtime's variables (bun, node) in the same family.
pub const LEAK_PREFIXES: &[&str] = &["BUN_", "NODE_"];

/// The base-URL variables found in the real CLI (`grep -o '[A-Z_]*_BASE_URL'` of the
/// 2.1.197 and 2.1.332 binaries); all are caught by the `*_BASE_URL` pattern, listed for
/// the documentation.
pub const BASE_URL_VARS: &[&str] = &[
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AWS_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_GOOGLE_CLOUD_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "CLAUDE_BRIDGE_BASE_URL",
    "CLAUDE_CODE_API_BASE_URL",
    "CLAUDE_CODE_ARTIFACTS_API_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_ASSET_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_LIVE_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_SYNC_BASE_URL",
    "CLAUDE_CODE_ARTIFACT_VIEWER_BASE_URL",
    "CLAUDE_CODE_GB_BASE_URL",
    "CLAUDE_CODE_MEMORY_API_BASE_URL",
    "CLAUDE_RUNNER_API_BASE_URL",
    "VOICE_STREAM_BASE_URL",
];

/// Which settings layer a file is, highest precedence first (as measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// `/etc/claude-code/managed-settings.json` and `managed-settings.d/*.json`.
    Managed,
    /// `--settings FILE|JSON` in the command's own arguments.
    Flag,
    /// `<local settings root>/.claude/settings.local.json` (claude 2.1.330 and later):
    /// the git root as claude finds it, a linked worktree's main checkout.
    RootLocal,
    /// `<cwd>/.claude/settings.local.json`.
    Local,
    /// `<cwd>/.claude/settings.json`.
    Project,
    /// `<scratch home>/.claude/settings.json`.
    User,
    /// `<scratch home>/.claude/cowork_settings.json`: claude's user settings instead of
    /// `settings.json` when `CLAUDE_CODE_USE_COWORK_PLUGINS` is on (or its host says so).
    CoworkUser,
    /// A `cowork_settings.json` shared into the scratch home (`--share`).
    SharedCowork,
    /// A `--share`d `settings.json`: what this launch puts at `User`'s place.
    SharedUser,
}

impl Layer {
    /// The word of claude's `--setting-sources` that keeps this layer (`None`: the
    /// option cannot leave it out; measured: managed settings and `--settings` apply
    /// whatever it says).
    fn source(self) -> Option<&'static str> {
        match self {
            Layer::Managed | Layer::Flag => None,
            Layer::RootLocal | Layer::Local => Some("local"),
            Layer::Project => Some("project"),
            Layer::User | Layer::CoworkUser | Layer::SharedUser | Layer::SharedCowork => {
                Some("user")
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Layer::Managed => "managed settings",
            Layer::Flag => "the command's --settings",
            Layer::RootLocal => "project settings (git root, local)",
            Layer::Local => "project settings (local)",
            Layer::Project => "project settings",
            Layer::User => "the scratch home's user settings",
            Layer::CoworkUser => "the scratch home's user settings for cowork plugins",
            Layer::SharedUser => "the user settings shared into the scratch home",
            Layer::SharedCowork => {
                "the user settings for cowork plugins shared into the scratch home"
            }
        }
    }
}

/// Why an entry is refused. Every variant names where the token would go (`to`: the
/// effective destination of the launch, scheme and host only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// A settings key that brings its own credential (`apiKeyHelper`, …).
    Credential { to: String },
    /// An `env` entry claude-iso removes from the environment (or the token itself).
    Scrubbed { to: String },
    /// An `env` entry that changes where the token goes; the origin it names.
    Destination(String),
    /// An `env` proxy: requests, the token included, pass through this origin.
    Proxy(String),
    /// `NO_PROXY` that lets more hosts bypass the caller's proxy.
    NoProxyWidened { to: String },
    /// TLS trust, client certificates, custom headers, the API socket, name resolution.
    Transport { to: String },
    /// The runtime, its TLS stack or what claude runs would write secrets (TLS keys,
    /// requests with the token) somewhere (`SSLKEYLOGFILE`, `BUN_*`, `NODE_*`).
    Leak { to: String },
    /// Telemetry (with prompts and tool output when `OTEL_LOG_*` ask) goes to this origin.
    Telemetry(String),
    /// The file cannot be judged (not valid JSON, not a regular file, too large, …):
    /// why, and where the token goes as far as the other layers say.
    Unjudgeable { reason: String, to: String },
}

impl Why {
    /// A file that cannot be judged, for a caller that knows no other layer: the token
    /// goes where `caller` (the command's environment) sends it, as far as anyone can say.
    #[must_use]
    pub fn unjudgeable(reason: String, caller: &CallerEnv) -> Why {
        Why::Unjudgeable {
            reason,
            to: destination(&[], caller).origin,
        }
    }

    /// Names `to` as where the token goes (the launch's effective destination, known
    /// once every layer is read).
    fn send_to(&mut self, origin: &str) {
        match self {
            Why::Credential { to }
            | Why::Scrubbed { to }
            | Why::NoProxyWidened { to }
            | Why::Transport { to }
            | Why::Leak { to }
            | Why::Unjudgeable { to, .. } => origin.clone_into(to),
            Why::Destination(_) | Why::Proxy(_) | Why::Telemetry(_) => {}
        }
    }
}

/// One refused entry of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file as claude would open it.
    pub path: PathBuf,
    /// Where the path leads when a symlink is on the way.
    pub target: Option<PathBuf>,
    /// `apiKeyHelper`, `env.ANTHROPIC_BASE_URL`, … (empty for an unjudgeable file).
    pub key: String,
    pub why: Why,
}

impl Finding {
    /// One line: the file, the key, and what it would do.
    #[must_use]
    pub fn line(&self) -> String {
        let file = match &self.target {
            Some(t) => format!(
                "{} (a symlink to {})",
                shown(&self.path.to_string_lossy()),
                shown(&t.to_string_lossy())
            ),
            None => shown(&self.path.to_string_lossy()),
        };
        let key = shown(&self.key);
        match &self.why {
            Why::Credential { to } => format!(
                "{file} sets {key}: claude would use that credential instead of the token (requests go to {to})"
            ),
            Why::Scrubbed { to } => format!(
                "{file} sets {key}: a variable claude-iso removes (it carries or relocates a credential; the token goes to {to})"
            ),
            Why::Destination(to) => {
                format!("{file} sets {key}: claude would send the token to {to}")
            }
            Why::Proxy(to) => format!(
                "{file} sets {key}: claude would send its requests, the token included, through the proxy {to}"
            ),
            Why::NoProxyWidened { to } => format!(
                "{file} sets {key}: more hosts would bypass the caller's proxy (the token goes to {to})"
            ),
            Why::Transport { to } => format!(
                "{file} sets {key}: it changes how requests carrying the token to {to} travel (TLS trust, certificates, headers, socket or name resolution)"
            ),
            Why::Leak { to } => format!(
                "{file} sets {key}: claude's runtime or TLS stack, or a program claude runs, would write secrets somewhere (TLS session keys, requests carrying the token to {to})"
            ),
            Why::Telemetry(to) => format!(
                "{file} sets {key}: claude would send its telemetry (prompts and tool output when OTEL_LOG_* ask for them) to {to}"
            ),
            Why::Unjudgeable { reason, to } => format!(
                "{file}: {reason}; claude-iso cannot tell what claude would apply from it (it could send the token elsewhere; otherwise the token goes to {to})"
            ),
        }
    }
}

/// One settings file claude would load.
#[derive(Debug, Clone)]
pub struct SettingsFile {
    /// The file, or for `--settings JSON` a name for the argument.
    pub path: PathBuf,
    pub layer: Layer,
    /// `--settings JSON`: the JSON given inline.
    pub inline: Option<String>,
}

impl SettingsFile {
    fn file(path: PathBuf, layer: Layer) -> SettingsFile {
        SettingsFile {
            path,
            layer,
            inline: None,
        }
    }
}

/// Where the token goes, and which layer chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `scheme://host[:port]`, never userinfo.
    pub origin: String,
    /// `the default`, `ANTHROPIC_BASE_URL in the caller's environment`, or
    /// `env.ANTHROPIC_BASE_URL in <layer> <file>`.
    pub chosen_by: String,
    /// A proxy the requests go through, with who set it.
    pub proxy: Option<(String, String)>,
    /// Other API base URLs claude may send the token to (`CLAUDE_CODE_API_BASE_URL`),
    /// with who set each; only those whose origin differs from [`Self::origin`].
    pub also: Vec<(String, String)>,
}

impl Destination {
    /// Whether the origin, and every other base URL set, is an Anthropic host reached
    /// over https.
    #[must_use]
    pub fn is_anthropic(&self) -> bool {
        anthropic_origin(&self.origin) && self.also.iter().all(|(o, _)| anthropic_origin(o))
    }

    /// `the token goes to ORIGIN (chosen by …)[, or to O (set by …)][, through proxy P (set by …)]`.
    #[must_use]
    pub fn line(&self) -> String {
        let mut s = format!("{} (chosen by {})", self.origin, self.chosen_by);
        for (origin, by) in &self.also {
            s.push_str(&format!(", or to {origin} (set by {by})"));
        }
        if let Some((proxy, by)) = &self.proxy {
            s.push_str(&format!(", through the proxy {proxy} (set by {by})"));
        }
        s
    }
}

/// Whether `origin` (`scheme://host[:port]`) is an Anthropic host reached over https.
fn anthropic_origin(origin: &str) -> bool {
    let Some(host) = origin.strip_prefix("https://") else {
        return false;
    };
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    ["anthropic.com", "claude.ai", "claude.com"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// What the guard found for one launch.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Every file read, in precedence order.
    pub files: Vec<SettingsFile>,
    pub findings: Vec<Finding>,
    pub destination: Destination,
    /// Files skipped because they cannot be read by this user (`EACCES`) and are not
    /// this user's to make readable: claude, running as the same user, cannot load them
    /// either. One note each, for `-v`, `--dry-run` and `doctor`.
    pub unread: Vec<String>,
}

impl Verdict {
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

/// The settings files claude would load for `workdir`, with the scratch home's user
/// settings (or `shared_user`, the `--share`d file that replaces them at launch), the
/// managed ones and each `--settings` of the command's arguments `argv`, highest
/// precedence first.
///
/// Every layer, whatever the command's arguments say: claude's `--setting-sources` can
/// leave the project layers out, but which word of an argv is that option's list and
/// which is another option's value only claude's own parser knows (`--append-system-prompt
/// --setting-sources user` hands claude a prompt, not a list), and a command that is not
/// claude may start one with other arguments. For the same reason every `--settings`
/// value in `argv` is judged, wherever it stands (see [`flag_settings`]).
#[must_use]
pub fn settings_files(
    workdir: &Path,
    home: &Path,
    shared: Shared<'_>,
    cowork: bool,
    argv: &[OsString],
) -> Vec<SettingsFile> {
    let mut out = Vec::new();
    let managed = Path::new(MANAGED_DIR);
    out.push(SettingsFile::file(
        managed.join("managed-settings.json"),
        Layer::Managed,
    ));
    if let Ok(entries) = std::fs::read_dir(managed.join("managed-settings.d")) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        // Later drop-ins win, as with systemd's: highest precedence first.
        names.reverse();
        out.extend(
            names
                .into_iter()
                .map(|path| SettingsFile::file(path, Layer::Managed)),
        );
    }
    out.extend(flag_settings(argv, workdir));
    let local = workdir.join(CLAUDE_DIR).join(SETTINGS_LOCAL);
    let root = local_root(workdir, home);
    if root != workdir {
        out.push(SettingsFile::file(
            root.join(CLAUDE_DIR).join(SETTINGS_LOCAL),
            Layer::RootLocal,
        ));
    }
    out.push(SettingsFile::file(local, Layer::Local));
    out.push(SettingsFile::file(
        workdir.join(CLAUDE_DIR).join(SETTINGS),
        Layer::Project,
    ));
    let (shared_user, shared_cowork) = (shared.settings, shared.cowork);
    let user = match shared_user {
        Some(path) => SettingsFile::file(path.to_path_buf(), Layer::SharedUser),
        None => SettingsFile::file(home.join(CLAUDE_DIR).join(SETTINGS), Layer::User),
    };
    // Judged whether or not the switch is on: claude's host can turn it on without the
    // environment (`coworkPlugins`), and a later launch with the switch set would apply
    // what the command wrote there now. The one claude reads comes first.
    let cowork_file = match shared_cowork {
        Some(path) => SettingsFile::file(path.to_path_buf(), Layer::SharedCowork),
        None => SettingsFile::file(
            home.join(CLAUDE_DIR).join(COWORK_SETTINGS),
            Layer::CoworkUser,
        ),
    };
    if cowork {
        out.extend([cowork_file, user]);
    } else {
        out.extend([user, cowork_file]);
    }
    out
}

/// The `--settings` values of `argv` (`--settings V` and `--settings=V`), the last one
/// first: claude applies the last one given (measured: 2.1.197, 2.1.330, 2.1.332).
/// A value that, trimmed, starts with `{` and ends with `}` is inline JSON (claude's own
/// test); anything else names a file, relative to `workdir` (claude's cwd). Every
/// occurrence is taken, also where it may be another option's value: a word judged that
/// claude would not apply costs at most a refusal that `--allow-project-auth` lifts.
#[must_use]
pub fn flag_settings(argv: &[OsString], workdir: &Path) -> Vec<SettingsFile> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut words = argv.iter().enumerate().skip(1);
    while let Some((i, word)) = words.next() {
        let (i, value) = if word.as_os_str() == FLAG_SETTINGS {
            match words.next() {
                Some((j, v)) => (j, v.clone()),
                None => break,
            }
        } else {
            let prefix = format!("{FLAG_SETTINGS}=");
            match word.as_bytes().strip_prefix(prefix.as_bytes()) {
                Some(rest) => (i, OsStr::from_bytes(rest).to_owned()),
                None => continue,
            }
        };
        let text = value.to_string_lossy();
        let trimmed = text.trim();
        if trimmed.starts_with('{') && trimmed.ends_with('}') {
            out.push(SettingsFile {
                path: PathBuf::from(format!("{FLAG_SETTINGS} (inline JSON, argument {i})")),
                layer: Layer::Flag,
                inline: Some(trimmed.to_owned()),
            });
        } else if !value.is_empty() {
            out.push(SettingsFile::file(workdir.join(&value), Layer::Flag));
        }
    }
    out.reverse();
    out
}

/// claude's options that take no value, which may stand right before its
/// `--setting-sources` (see [`setting_sources`]).
const CLAUDE_FLAGS: &[&str] = &[
    "-p",
    "--print",
    "-c",
    "--continue",
    "--verbose",
    "--dangerously-skip-permissions",
];

/// The sources the last `--setting-sources LIST` (or `--setting-sources=LIST`) of
/// `argv` keeps: `user`, `project`, `local`, comma-separated (an empty list keeps none;
/// measured on 2.1.197 and 2.1.332). `None` when there is none, when its list names
/// anything else, or when the word before it may be an option waiting for its value
/// (`--append-system-prompt --setting-sources user` hands claude 2.1.330 and 2.1.332 a
/// prompt, and every source applies): then it restricts nothing. `dash_values: false`
/// is for a claude whose options never take a word starting with `-` as their value
/// (2.1.197 honoured that `--setting-sources user`; measured). Used only for the
/// destination: every layer is judged whatever the arguments say.
#[must_use]
pub fn setting_sources(argv: &[OsString], dash_values: bool) -> Option<Vec<&'static str>> {
    let prefix = format!("{FLAG_SETTING_SOURCES}=");
    let mut last = None;
    let mut i = 1;
    while i < argv.len() {
        let word = argv[i].to_string_lossy();
        if word == FLAG_SETTING_SOURCES {
            last = Some((i, argv.get(i + 1)?.to_string_lossy().into_owned()));
            i += 1;
        } else if let Some(rest) = word.strip_prefix(&prefix) {
            last = Some((i, rest.to_owned()));
        }
        i += 1;
    }
    let (at, list) = last?;
    let before = argv[at - 1].to_string_lossy();
    let an_option_here = !dash_values
        || at == 1
        || !before.starts_with('-')
        || before.contains('=')
        || CLAUDE_FLAGS.contains(&&*before);
    if !an_option_here {
        return None;
    }
    list.split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| ["user", "project", "local"].into_iter().find(|k| *k == w))
        .collect()
}

/// The local settings root of claude 2.1.330 and later for `workdir` (a realpath): the
/// main checkout of the git root claude finds ([`git_root`], [`main_checkout`]), unless
/// that is `workdir` itself or `home`, or it, its `.git` or its `.claude` entry belongs
/// to another user — then `workdir` (claude 2.1.332's `uW`/`amd`: "not canonicalizing the
/// consent store … is not owned by the current user"; measured: a main checkout whose
/// `.claude` belongs to another user is not read).
#[must_use]
pub fn local_root(workdir: &Path, home: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let Some(found) = git_root(workdir) else {
        return workdir.to_path_buf();
    };
    let root = main_checkout(&found).unwrap_or(found);
    if root == workdir || root == home {
        return workdir.to_path_buf();
    }
    let me = nix::unistd::geteuid().as_raw();
    let uid = |p: &Path| std::fs::symlink_metadata(p).map(|m| m.uid());
    let owned = std::fs::metadata(&root).is_ok_and(|m| m.uid() == me)
        && uid(&root.join(GIT_DIR)).is_ok_and(|u| u == me)
        && match uid(&root.join(CLAUDE_DIR)) {
            Ok(u) => u == me,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
    if owned { root } else { workdir.to_path_buf() }
}

/// The nearest directory at or above `dir` whose `.git` entry claude 2.1.330 and later
/// accept ([`accepts_git_entry`]); entries it does not accept are skipped and the walk
/// goes on up, as claude's does (`find_git_root`).
#[must_use]
pub fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| accepts_git_entry(&d.join(GIT_DIR)))
        .map(Path::to_path_buf)
}

/// Whether claude 2.1.330 and later take a `.git` entry as the mark of a git root: a
/// directory (a repository or not) or a regular file (whatever it holds), or a symlink
/// to either. A dangling symlink, a FIFO, a socket or a device is skipped (measured on
/// 2.1.330 and 2.1.332: `.git` as an empty directory, a file `gitdir: /nowhere`, a file
/// of garbage, a link to a directory or a file each marked the root; a dangling link and
/// a FIFO did not). 2.1.197 follows links with `stat` and reads no root's settings.
#[must_use]
pub fn accepts_git_entry(entry: &Path) -> bool {
    match std::fs::symlink_metadata(entry) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::metadata(entry).is_ok_and(|t| t.is_dir() || t.is_file())
        }
        Ok(m) => m.is_dir() || m.is_file(),
        Err(_) => false,
    }
}

/// The main checkout of a linked worktree whose top is `root`, as claude 2.1.332 finds
/// it (`canonicalRootByRoot`): `root/.git` a file `gitdir: ADMIN`; `ADMIN/commondir` a
/// regular file naming the common directory `COMMON`, with `ADMIN` directly in
/// `COMMON/worktrees`; `ADMIN/gitdir` a regular file pointing back at `root/.git`. The
/// main checkout is then the directory holding `COMMON` (a `COMMON` not named `.git`
/// is its own checkout unless it holds a `.git` entry). `None` when any step fails:
/// claude then keeps `root`. Relative paths are resolved without following links, as
/// node's `path.resolve`.
#[must_use]
pub fn main_checkout(root: &Path) -> Option<PathBuf> {
    const MAX: u64 = 64 * 1024;
    let regular = |p: &Path| -> Option<String> {
        if !std::fs::symlink_metadata(p).ok()?.is_file() {
            return None;
        }
        read_text(p, MAX)
    };
    let text = read_text(&root.join(GIT_DIR), MAX)?;
    let admin = resolve(root, text.trim().strip_prefix("gitdir:")?.trim());
    let common = resolve(&admin, regular(&admin.join("commondir"))?.trim());
    if resolve(admin.parent()?, ".") != common.join("worktrees") {
        return None;
    }
    let back = resolve(&admin, regular(&admin.join("gitdir"))?.trim());
    if std::fs::canonicalize(back).ok()? != std::fs::canonicalize(root).ok()?.join(GIT_DIR) {
        return None;
    }
    if common.file_name() != Some(OsStr::new(GIT_DIR)) {
        return (!accepts_git_entry(&common.join(GIT_DIR))).then_some(common);
    }
    common.parent().map(Path::to_path_buf)
}

/// A small file's text (following links, as claude's `readFileSync`), or `None`.
fn read_text(path: &Path, max: u64) -> Option<String> {
    String::from_utf8(crate::sys::fsutil::read_bounded(path, max).ok()?).ok()
}

/// `base` joined with `rel` (absolute `rel` replaces it), `.` and `..` removed without
/// looking at the file system: node's `path.resolve`.
fn resolve(base: &Path, rel: &str) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in base.join(rel).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// User settings files `--share` brings into the scratch home, by their sources: judged
/// in place of the scratch home's own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shared<'a> {
    /// The shared `.claude/settings.json`.
    pub settings: Option<&'a Path>,
    /// The shared `.claude/cowork_settings.json`.
    pub cowork: Option<&'a Path>,
}

/// The file name of the user settings claude reads instead of `settings.json` when
/// `CLAUDE_CODE_USE_COWORK_PLUGINS` is on (2.1.197 to 2.1.332, measured).
pub const COWORK_SETTINGS: &str = "cowork_settings.json";
/// The switch that makes claude read [`COWORK_SETTINGS`].
pub const COWORK_VAR: &str = "CLAUDE_CODE_USE_COWORK_PLUGINS";

/// Whether `env` turns claude's cowork user settings on: claude reads the value as true
/// when, trimmed and in any case, it is `1`, `true`, `yes` or `on` (measured on 2.1.197
/// and 2.1.332: `0`, `false`, `no`, `off`, `2`, `x` leave `settings.json`).
#[must_use]
pub fn cowork_on(env: &CallerEnv) -> bool {
    env.get(COWORK_VAR)
        .and_then(OsStr::to_str)
        .is_some_and(|v| {
            ["1", "true", "yes", "on"].contains(&v.trim().to_ascii_lowercase().as_str())
        })
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
    let real = std::fs::canonicalize(program).ok()?;
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
) -> Verdict {
    let env = command_env(config);
    let cowork = cowork_on(&env);
    let version = command.program.and_then(claude_version);
    // Judged whatever the version (a later claude in the same place reads it), but
    // choosing the destination only for a claude that reads it.
    let root_local_read = version.is_none_or(|v| v > ROOT_LOCAL_UNREAD_UP_TO);
    // Options take a value starting with `-` in 2.1.330 and later, not in 2.1.197.
    let sources = setting_sources(
        command.argv,
        version.is_none_or(|v| v > ROOT_LOCAL_UNREAD_UP_TO),
    );
    let mut files = settings_files(&config.workdir, home, shared, cowork, command.argv);
    // Files this launch removes or replaces before the command runs (claude-iso's own
    // unchanged copies of shared files): never applied as they are.
    files.retain(|f| !leaving.contains(&f.path));
    let mut findings = Vec::new();
    let mut unread = Vec::new();
    let mut docs: Vec<(Layer, PathBuf, Map<String, Value>)> = Vec::new();
    let mut flag_applied = false;
    for file in &files {
        let judged = match (&file.inline, file.layer) {
            (Some(json), _) => match parse(json.as_bytes()) {
                Ok(doc) => {
                    let found = judge(&doc, &env)
                        .into_iter()
                        .map(|(key, why)| Finding {
                            path: file.path.clone(),
                            target: None,
                            key,
                            why,
                        })
                        .collect();
                    Judged::Doc(doc, found)
                }
                Err(reason) => Judged::NotApplied(reason),
            },
            // A `--settings` file that is not a JSON object is not applied: claude
            // 2.1.330+ stop with "Invalid or malformed JSON", 2.1.197 goes on without it
            // (measured). Not a refusal: a command that is not claude may take a
            // `--settings` of another format.
            // Nor is a directory (claude: "Cannot use settings file"). A FIFO or a
            // pipe (`--settings <(…)`) is read by claude: refused as unjudgeable.
            (None, Layer::Flag) if std::fs::metadata(&file.path).is_ok_and(|m| m.is_dir()) => {
                Judged::NotApplied("a directory".into())
            }
            (None, Layer::Flag) => match read_and_judge(&file.path, &env) {
                Judged::Refused(Finding {
                    why: Why::Unjudgeable { reason, .. },
                    ..
                }) if reason.starts_with(NOT_JSON) || reason == NOT_OBJECT => {
                    Judged::NotApplied(reason)
                }
                other => other,
            },
            (None, _) => read_and_judge(&file.path, &env),
        };
        match judged {
            Judged::Doc(doc, mut found) => {
                findings.append(&mut found);
                // The user settings claude does not read this time choose nothing; of
                // several `--settings`, only the last one given is applied.
                let read = match file.layer {
                    Layer::CoworkUser | Layer::SharedCowork => cowork,
                    Layer::User | Layer::SharedUser => !cowork,
                    Layer::Flag => !std::mem::replace(&mut flag_applied, true),
                    Layer::RootLocal => root_local_read,
                    _ => true,
                };
                let left_out = file
                    .layer
                    .source()
                    .is_some_and(|name| sources.as_ref().is_some_and(|kept| !kept.contains(&name)));
                if read && left_out {
                    unread.push(format!(
                        "{}: judged, but the command's {FLAG_SETTING_SOURCES} leaves it out",
                        layer_name(file)
                    ));
                }
                let read = read && !left_out;
                if !read && !left_out && file.layer == Layer::RootLocal {
                    let (a, b, c) = version.unwrap_or_default();
                    unread.push(format!(
                        "{}: judged, but claude {a}.{b}.{c} does not apply it (2.1.330 and later do)",
                        layer_name(file)
                    ));
                }
                if read {
                    docs.push((file.layer, file.path.clone(), doc));
                }
            }
            Judged::Absent => {}
            Judged::NotApplied(reason) => {
                if file.layer == Layer::Flag {
                    flag_applied = true;
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
    Verdict {
        files,
        findings,
        destination,
        unread,
    }
}

fn layer_name(file: &SettingsFile) -> String {
    format!(
        "{} {}",
        file.layer.describe(),
        shown(&file.path.to_string_lossy())
    )
}

/// One settings file, read and judged.
enum Judged {
    /// Read: the document and what in it is refused.
    Doc(Map<String, Value>, Vec<Finding>),
    /// Does not exist.
    Absent,
    /// Skipped: this user cannot read it, nor make it readable (why, for a note).
    Unread(String),
    /// Read, but not a settings document claude would apply (why, for a note).
    NotApplied(String),
    /// Cannot be judged: refused.
    Refused(Finding),
}

/// Judges one settings file as claude would read it (symlinks followed, named): `Ok` with
/// its findings (none when the file does not exist). For callers that hold a settings
/// file of their own to check (a shared home's `settings.json`).
#[must_use]
pub fn judge_file(path: &Path, caller: &CallerEnv) -> Vec<Finding> {
    match read_and_judge(path, caller) {
        Judged::Doc(_, found) => found,
        Judged::Absent | Judged::Unread(_) | Judged::NotApplied(_) => Vec::new(),
        Judged::Refused(finding) => vec![finding],
    }
}

fn read_and_judge(path: &Path, caller: &CallerEnv) -> Judged {
    let target = symlink_target(path);
    let finding = |key: String, why: Why| Finding {
        path: path.to_path_buf(),
        target: target.clone(),
        key,
        why,
    };
    let bytes = match read_bounded(path) {
        Ok(Content::Absent) => return Judged::Absent,
        Ok(Content::Unread(note)) => return Judged::Unread(note),
        Ok(Content::Bytes(b)) => b,
        Err(reason) => {
            return Judged::Refused(finding(String::new(), Why::unjudgeable(reason, caller)));
        }
    };
    match parse(&bytes) {
        Ok(doc) => {
            let found = judge(&doc, caller)
                .into_iter()
                .map(|(k, w)| finding(k, w))
                .collect();
            Judged::Doc(doc, found)
        }
        Err(reason) => Judged::Refused(finding(String::new(), Why::unjudgeable(reason, caller))),
    }
}

/// Where a path leads, when a symlink is on the way (the file or a directory above it;
/// the paths judged are built on realpaths, so any difference is a symlink).
fn symlink_target(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok().filter(|real| real != path)
}

/// What reading a settings file gave.
enum Content {
    Absent,
    /// Not readable by this user, and not this user's to make readable (why).
    Unread(String),
    Bytes(Vec<u8>),
}

/// The file's bytes, or that it does not exist, or that this user can neither read it
/// nor make it readable. Opened non-blocking (a FIFO cannot hang us), checked on the
/// descriptor to be a regular file of at most [`MAX_SETTINGS`] bytes, read with that
/// bound.
fn read_bounded(path: &Path) -> Result<Content, String> {
    let file = match std::fs::File::options()
        .read(true)
        .custom_flags(
            (nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOCTTY)
                .bits(),
        )
        .open(path)
    {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Content::Absent);
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return match not_ours_to_read(path) {
                Ok(note) => Ok(Content::Unread(note)),
                Err(whose) => Err(format!("cannot be read: {}{whose}", error_text(&e))),
            };
        }
        Err(e) => return Err(format!("cannot be read: {}", error_text(&e))),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be read: {}", error_text(&e)))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_SETTINGS {
        return Err(format!("larger than {MAX_SETTINGS} bytes"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SETTINGS + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {}", error_text(&e)))?;
    if bytes.len() as u64 > MAX_SETTINGS {
        return Err(format!("larger than {MAX_SETTINGS} bytes"));
    }
    Ok(Content::Bytes(bytes))
}

/// For a file this user got `EACCES` opening: `Ok`, why claude, running as the same
/// user, cannot load it either — the file, or a directory on its way, refuses this user
/// and belongs to someone else. `Err`, what to add to the refusal: a file or directory
/// of our own we could chmod (and so could anything claude runs), or nothing known.
fn not_ours_to_read(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid().as_raw();
    let Some((blocker, meta, is_file)) = what_refuses(path) else {
        return Err(String::new());
    };
    let which = if is_file {
        "it".to_owned()
    } else {
        format!(
            "the directory {} on its way",
            shown(&blocker.to_string_lossy())
        )
    };
    if meta.uid() == me {
        return Err(format!(
            " ({which} is yours, mode {:04o}: what claude runs could make it readable; fix the mode or remove it)",
            meta.mode() & 0o7777
        ));
    }
    Ok(format!(
        "skipped: {which} (owner uid {}, mode {:04o}) does not let uid {me} read it, and claude, running as uid {me}, cannot load it either",
        meta.uid(),
        meta.mode() & 0o7777
    ))
}

/// Resolves `path` one component at a time, following symlinks as `open` would, up to
/// what refuses this user: the file itself (`true`), or the directory whose entry cannot
/// be looked up (`false`), with its metadata. `None` when something else stops the walk.
fn what_refuses(path: &Path) -> Option<(PathBuf, std::fs::Metadata, bool)> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut pending: Vec<std::ffi::OsString> = absolute
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .rev()
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        match std::fs::symlink_metadata(&next) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let meta = std::fs::metadata(&cur).ok()?;
                return Some((cur, meta, false));
            }
            Err(_) => return None,
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return None;
                }
                let target = std::fs::read_link(&next).ok()?;
                if target.is_absolute() {
                    cur = PathBuf::from("/");
                }
                pending.extend(
                    target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(n.to_owned()),
                            Component::ParentDir => Some("..".into()),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev(),
                );
            }
            Ok(m) if pending.is_empty() => return Some((next, m, true)),
            Ok(_) => cur = next,
        }
    }
    None
}

/// How [`parse`]'s reasons begin: `not valid JSON (line …)`, `not a JSON object`.
const NOT_JSON: &str = "not valid JSON";
const NOT_OBJECT: &str = "not a JSON object";

/// A settings document: a JSON object, after an optional UTF-8 byte-order mark (claude
/// accepts one; measured).
///
/// # Errors
/// Not JSON, or not an object.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(NOT_OBJECT.into()),
        Err(e) => Err(format!(
            "{NOT_JSON} (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

/// The pure core: what in one settings document would bring another credential or
/// change where or how the token travels. `caller` is the caller's own environment
/// (an entry equal to the caller's own value changes nothing and is not a finding).
#[must_use]
pub fn judge(doc: &Map<String, Value>, caller: &CallerEnv) -> Vec<(String, Why)> {
    let mut out = judge_entries(doc, caller);
    // Where the token goes as far as this document and the caller say (the launch
    // names the destination of every layer together: `Why::send_to`).
    if !out.is_empty() {
        let to = destination_of(&[(String::new(), doc)], caller).origin;
        for (_, why) in &mut out {
            why.send_to(&to);
        }
    }
    out
}

/// The refused entries of one document, each with its reason (destinations not filled).
fn judge_entries(doc: &Map<String, Value>, caller: &CallerEnv) -> Vec<(String, Why)> {
    let mut out = Vec::new();
    for key in CREDENTIAL_KEYS {
        match doc.get(*key) {
            // JS-falsy (absent, `null`, `false`, `0`, `""`): no helper, no credential
            // (claude 2.1.197 and 2.1.332 both test the value for truthiness before
            // running a helper). `" "`, `true`, `1`, objects are truthy: refused.
            Some(v) if is_truthy(v) => {
                out.push(((*key).to_owned(), Why::Credential { to: String::new() }));
            }
            _ => {}
        }
    }
    let Some(env) = doc.get("env") else {
        return out;
    };
    let Value::Object(env) = env else {
        // Not an object: claude would not apply it; nothing to judge.
        return out;
    };
    for (name, value) in env {
        let key = format!("env.{name}");
        if scrub::is_scrubbed(OsStr::new(name)) || name == TOKEN_VAR {
            out.push((key, Why::Scrubbed { to: String::new() }));
            continue;
        }
        let Some(rule) = route_rule(name) else {
            continue;
        };
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        let caller_value = caller.get(name);
        if caller_value == Some(OsStr::new(&text)) {
            continue;
        }
        // The same URL written another way (`/` at the end, the default port, the case
        // of scheme or host) is the caller's own value too.
        if matches!(rule, Rule::Url | Rule::Proxy | Rule::Telemetry)
            && caller_value
                .and_then(OsStr::to_str)
                .is_some_and(|c| same_url(c, &text))
        {
            continue;
        }
        let why = match rule {
            Rule::Url => Why::Destination(origin(&text)),
            Rule::Proxy => Why::Proxy(origin(&text)),
            Rule::NoProxy => {
                if !widens_no_proxy(&text, caller) {
                    continue;
                }
                Why::NoProxyWidened { to: String::new() }
            }
            Rule::Transport => Why::Transport { to: String::new() },
            Rule::Leak => Why::Leak { to: String::new() },
            Rule::Telemetry => Why::Telemetry(origin(&text)),
        };
        out.push((key, why));
    }
    out
}

/// JavaScript's truthiness of a JSON value: `null`, `false`, `0` and `""` are false.
fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Whether two URLs name the same place: scheme and host compared in any case, the
/// default port (`80` for http, `443` for https) as no port, a path of `/` as none and a
/// `/` at the end of a path as none; userinfo, path and query otherwise compared as
/// written. Not URLs (no `scheme://`): never the same unless equal.
fn same_url(a: &str, b: &str) -> bool {
    match (normal_url(a), normal_url(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

fn normal_url(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let mut host = host.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port {
        if let Some(h) = host.strip_suffix(port) {
            host = h.to_owned();
        }
    }
    let (path, query) = match tail.find(['?', '#']) {
        Some(i) => tail.split_at(i),
        None => (tail, ""),
    };
    let path = path.trim_end_matches('/');
    Some(format!(
        "{scheme}://{}{host}{path}{query}",
        userinfo.map(|u| format!("{u}@")).unwrap_or_default()
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Url,
    Proxy,
    NoProxy,
    Transport,
    Leak,
    Telemetry,
}

/// Whether an `env` name changes where or how requests travel, makes something write
/// secrets, or sends telemetry elsewhere, and how.
fn route_rule(name: &str) -> Option<Rule> {
    let upper = name.to_ascii_uppercase();
    let ours = upper.starts_with("ANTHROPIC_") || upper.starts_with("CLAUDE_");
    if upper.ends_with("NO_PROXY") {
        Some(Rule::NoProxy)
    } else if upper.ends_with("_PROXY") || upper == "PROXY" {
        Some(Rule::Proxy)
    } else if upper.ends_with("_BASE_URL") || (ours && upper.ends_with("_URL")) {
        Some(Rule::Url)
    } else if ROUTE_VARS.contains(&upper.as_str()) || (ours && upper.ends_with("_HEADERS")) {
        Some(Rule::Transport)
    } else if LEAK_VARS.contains(&upper.as_str())
        || LEAK_PREFIXES.iter().any(|p| upper.starts_with(p))
    {
        Some(Rule::Leak)
    } else if upper.starts_with("OTEL_EXPORTER_OTLP") && upper.ends_with("ENDPOINT") {
        Some(Rule::Telemetry)
    } else {
        None
    }
}

/// Whether a `NO_PROXY` value names a host the caller's own `NO_PROXY`/`no_proxy` does
/// not (narrowing is fine; widening lets requests bypass the caller's proxy).
fn widens_no_proxy(value: &str, caller: &CallerEnv) -> bool {
    let norm = |s: &str| -> Vec<String> {
        s.split([',', ' '])
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    };
    let mut allowed = Vec::new();
    for name in ["NO_PROXY", "no_proxy"] {
        if let Some(v) = caller.get(name).and_then(OsStr::to_str) {
            allowed.extend(norm(v));
        }
    }
    norm(value).iter().any(|h| !allowed.contains(h))
}

/// The base-URL variable that chooses where the token goes.
pub const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";
/// Other base URLs of claude's API that the token can be sent to.
pub const OTHER_API_URL_VARS: &[&str] = &["CLAUDE_CODE_API_BASE_URL"];
/// The proxy variables claude's HTTP client honours for an `https` destination, first
/// set wins (it falls back to the `http` one; `ALL_PROXY` last).
pub const HTTPS_PROXY_VARS: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "CLAUDE_CODE_HTTPS_PROXY",
    "HTTP_PROXY",
    "http_proxy",
    "CLAUDE_CODE_HTTP_PROXY",
    "ALL_PROXY",
    "all_proxy",
];
/// The same for an `http` destination.
pub const HTTP_PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "CLAUDE_CODE_HTTP_PROXY",
    "ALL_PROXY",
    "all_proxy",
];

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

/// [`destination`] over documents named by who they are.
fn destination_of(layers: &[(String, &Map<String, Value>)], caller: &CallerEnv) -> Destination {
    let pick = |name: &str| -> Option<(String, String)> {
        layers
            .iter()
            .find_map(|(who, doc)| {
                let v = doc.get("env")?.as_object()?.get(name)?;
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                Some((v, format!("env.{name} in {who}")))
            })
            .filter(|(v, _)| !v.is_empty())
            .or_else(|| {
                let v = caller.get(name).filter(|v| !v.is_empty())?;
                Some((
                    v.to_string_lossy().into_owned(),
                    format!("{name} in the caller's environment"),
                ))
            })
    };
    let (origin_of, chosen_by) = pick(BASE_URL_VAR).map_or_else(
        || (DEFAULT_DESTINATION.to_owned(), "the default".to_owned()),
        |(v, by)| (origin(&v), by),
    );
    let also = OTHER_API_URL_VARS
        .iter()
        .filter_map(|n| pick(n))
        .map(|(v, by)| (origin(&v), by))
        .filter(|(o, _)| *o != origin_of)
        .collect();
    let proxies = if origin_of.starts_with("http://") {
        HTTP_PROXY_VARS
    } else {
        HTTPS_PROXY_VARS
    };
    let proxy = proxies
        .iter()
        .find_map(|n| pick(n))
        .map(|(v, by)| (origin(&v), by));
    Destination {
        origin: origin_of,
        chosen_by,
        proxy,
        also,
    }
}

/// `scheme://host[:port]` of a URL, never its userinfo (which may hold a password), path
/// or query; characters outside a host's alphabet are shown as `?`. The authority ends
/// at the first `/`, `?`, `#` or `\`, and userinfo at its last `@`, as WHATWG URL parsing
/// (node's, bun's) has it.
#[must_use]
pub fn origin(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r))
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            (Some(s.to_ascii_lowercase()), r)
        }
        _ => (None, url),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // A port that is not a number is no URL a client would send to: it is what is left
    // of a password holding an unencoded '/', '?', '#' or '\\' (`user:pa/ss@host`), and
    // must not be shown.
    if host.is_empty() || !port_is_numeric(host) {
        return "an unparsable URL".into();
    }
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_:[]%".contains(c) {
                c.to_ascii_lowercase()
            } else {
                '?'
            }
        })
        .collect();
    match scheme {
        Some(s) => format!("{s}://{host}"),
        None => host,
    }
}

/// Whether `host` (`name`, `name:port`, `[v6]` or `[v6]:port`) has no port or a
/// numeric one.
fn port_is_numeric(host: &str) -> bool {
    let port = if host.starts_with('[') {
        match host.find(']') {
            Some(i) => match &host[i + 1..] {
                "" => return true,
                rest => match rest.strip_prefix(':') {
                    Some(port) => port,
                    None => return false,
                },
            },
            None => return false,
        }
    } else {
        match host.split_once(':') {
            None => return true,
            Some((_, port)) => port,
        }
    };
    port.bytes().all(|b| b.is_ascii_digit())
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

    fn judged(json: &str, caller: &CallerEnv) -> Vec<(String, Why)> {
        judge(&parse(json.as_bytes()).unwrap(), caller)
    }

    #[test]
    fn origins_without_userinfo() {
        assert_eq!(origin("http://127.0.0.1:8080/x"), "http://127.0.0.1:8080");
        assert_eq!(
            origin("https://user:pw@api.example.com"),
            "https://api.example.com"
        );
        assert_eq!(
            origin("https://u:p@w@Evil.example/a@b"),
            "https://evil.example"
        );
        assert_eq!(origin("http://h\\@x.example"), "http://h");
        assert_eq!(origin("api.example.com/v1"), "api.example.com");
        assert_eq!(origin("http://"), "an unparsable URL");
        assert_eq!(origin("http://a\x1b[31mb"), "http://a?[31mb");
        for leaky in [
            "http://user:Zq/7@host",
            "user:Zq/7@host",
            "http://user:Zq?7@h",
            "http://user:Zq#7@h",
            "http://user:Zq\\7@h",
        ] {
            let shown = origin(leaky);
            assert!(
                !shown.contains("Zq") && !shown.contains("user"),
                "{leaky}: {shown}"
            );
        }
    }

    #[test]
    fn credential_keys_and_scrubbed_env() {
        let none = CallerEnv::default();
        let found = judged(
            r#"{"apiKeyHelper":"x","awsAuthRefresh":"y","env":{"CLAUDE_CONFIG_DIR":"/r","CLAUDE_CODE_OAUTH_TOKEN":"t","FOO":"1"}}"#,
            &none,
        );
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "apiKeyHelper",
                "awsAuthRefresh",
                "env.CLAUDE_CONFIG_DIR",
                "env.CLAUDE_CODE_OAUTH_TOKEN"
            ]
        );
    }

    #[test]
    fn destinations_proxies_and_transport() {
        let none = CallerEnv::default();
        let found = judged(
            r#"{"env":{"ANTHROPIC_BASE_URL":"http://u:pw@evil:9/v1","https_proxy":"http://p:1","NODE_TLS_REJECT_UNAUTHORIZED":"0","ANTHROPIC_CUSTOM_HEADERS":"x-api-key: k","CLAUDE_CODE_API_BASE_URL":"https://e","DISABLE_TELEMETRY":"1","CLAUDE_CODE_MAX_OUTPUT_TOKENS":"9"}}"#,
            &none,
        );
        assert_eq!(
            found,
            [
                (
                    "env.ANTHROPIC_BASE_URL".into(),
                    Why::Destination("http://evil:9".into())
                ),
                ("env.https_proxy".into(), Why::Proxy("http://p:1".into())),
                (
                    "env.NODE_TLS_REJECT_UNAUTHORIZED".into(),
                    Why::Transport {
                        to: "http://evil:9".into()
                    }
                ),
                // Issue 11: a scrubbed credential variable now (it can hold an x-api-key line).
                (
                    "env.ANTHROPIC_CUSTOM_HEADERS".into(),
                    Why::Scrubbed {
                        to: "http://evil:9".into()
                    }
                ),
                (
                    "env.CLAUDE_CODE_API_BASE_URL".into(),
                    Why::Destination("https://e".into())
                ),
            ]
        );
        // Non-string values are judged too (claude 2.1.197 applied a number).
        assert_eq!(
            judged(r#"{"env":{"ANTHROPIC_BASE_URL":18701}}"#, &none).len(),
            1
        );
    }

    #[test]
    fn the_callers_own_value_and_narrower_no_proxy_pass() {
        let caller = env(&[
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:1"),
            ("NO_PROXY", "localhost,.corp"),
        ]);
        assert!(
            judged(
                r#"{"env":{"ANTHROPIC_BASE_URL":"http://127.0.0.1:1","NO_PROXY":".corp"}}"#,
                &caller
            )
            .is_empty()
        );
        assert_eq!(
            judged(
                r#"{"env":{"no_proxy":"localhost,api.anthropic.com"}}"#,
                &caller
            ),
            [(
                "env.no_proxy".into(),
                Why::NoProxyWidened {
                    to: "http://127.0.0.1:1".into()
                }
            )]
        );
    }

    /// Second review: the caller's own URL written another way is still the caller's.
    #[test]
    fn the_callers_url_written_another_way_passes() {
        let caller = env(&[
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:18761"),
            ("HTTPS_PROXY", "https://Proxy.example"),
        ]);
        for same in [
            "http://127.0.0.1:18761/",
            "HTTP://127.0.0.1:18761",
            " http://127.0.0.1:18761// ",
        ] {
            let json = format!(r#"{{"env":{{"ANTHROPIC_BASE_URL":"{same}"}}}}"#);
            assert!(judged(&json, &caller).is_empty(), "{json}");
        }
        for same in ["https://proxy.example:443/", "HTTPS://PROXY.EXAMPLE"] {
            let json = format!(r#"{{"env":{{"HTTPS_PROXY":"{same}"}}}}"#);
            assert!(judged(&json, &caller).is_empty(), "{json}");
        }
        for other in [
            "http://127.0.0.1:18762",
            "https://127.0.0.1:18761",
            "http://127.0.0.1:18761/v2",
            "http://u:p@127.0.0.1:18761",
            "http://127.0.0.1.evil:18761",
            "127.0.0.1:18761",
        ] {
            let json = format!(r#"{{"env":{{"ANTHROPIC_BASE_URL":"{other}"}}}}"#);
            assert_eq!(judged(&json, &caller).len(), 1, "{json}");
        }
        let caller = env(&[("ANTHROPIC_BASE_URL", "https://api.example")]);
        assert!(
            judged(
                r#"{"env":{"ANTHROPIC_BASE_URL":"https://api.example:443/"}}"#,
                &caller
            )
            .is_empty()
        );
    }

    #[test]
    fn cowork_switch_truthiness() {
        for on in ["1", "true", "TRUE", "yes", "on", " 1"] {
            assert!(cowork_on(&env(&[(COWORK_VAR, on)])), "{on}");
        }
        for off in ["0", "false", "no", "off", "2", "x", ""] {
            assert!(!cowork_on(&env(&[(COWORK_VAR, off)])), "{off}");
        }
        assert!(!cowork_on(&CallerEnv::default()));
    }

    #[test]
    fn every_base_url_variable_is_caught() {
        for name in BASE_URL_VARS {
            assert_eq!(route_rule(name), Some(Rule::Url), "{name}");
        }
        for name in ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            assert_eq!(route_rule(name), Some(Rule::Proxy), "{name}");
        }
        for name in ["NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED"] {
            assert_eq!(route_rule(name), Some(Rule::Transport), "{name}");
        }
        assert_eq!(route_rule("PATH"), None);
        assert_eq!(route_rule("CLAUDE_CODE_MAX_OUTPUT_TOKENS"), None);
    }

    #[test]
    fn runtime_tls_and_name_resolution_variables_are_caught() {
        for name in [
            "SSLKEYLOGFILE",
            "BUN_CONFIG_VERBOSE_FETCH",
            "NODE_DEBUG",
            "bun_options",
        ] {
            assert_eq!(route_rule(name), Some(Rule::Leak), "{name}");
        }
        for name in ["HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NODE_OPTIONS"] {
            assert_eq!(route_rule(name), Some(Rule::Transport), "{name}");
        }
        for name in [
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        ] {
            assert_eq!(route_rule(name), Some(Rule::Telemetry), "{name}");
        }
        assert_eq!(route_rule("BUNDLE"), None);
        let none = CallerEnv::default();
        let found = judged(
            r#"{"env":{"SSLKEYLOGFILE":"/tmp/k","OTEL_EXPORTER_OTLP_ENDPOINT":"http://u:p@otel.example:4318/v1"}}"#,
            &none,
        );
        assert_eq!(
            found,
            [
                (
                    "env.SSLKEYLOGFILE".into(),
                    Why::Leak {
                        to: DEFAULT_DESTINATION.into()
                    }
                ),
                (
                    "env.OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    Why::Telemetry("http://otel.example:4318".into())
                ),
            ]
        );
        // The caller's own value changes nothing.
        let caller = env(&[("SSLKEYLOGFILE", "/k")]);
        assert!(judged(r#"{"env":{"SSLKEYLOGFILE":"/k"}}"#, &caller).is_empty());
    }

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn flag_settings_in_the_arguments() {
        let w = Path::new("/w");
        let got = flag_settings(
            &os(&[
                "claude",
                "--settings",
                "a.json",
                "-p",
                "--settings= {\"env\":{}} ",
                "--settings=/abs/b.json",
                "--settingsx",
                "c",
                "--settings",
            ]),
            w,
        );
        let shown: Vec<(String, Option<String>)> = got
            .iter()
            .map(|f| (f.path.display().to_string(), f.inline.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                ("/abs/b.json".to_owned(), None),
                (
                    "--settings (inline JSON, argument 4)".to_owned(),
                    Some("{\"env\":{}}".to_owned())
                ),
                ("/w/a.json".to_owned(), None),
            ]
        );
        assert!(got.iter().all(|f| f.layer == Layer::Flag));
        // The program's own name is never a value.
        assert!(flag_settings(&os(&["--settings", "x"]), w).is_empty());
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
    fn setting_sources_as_claude_reads_them() {
        let got = |w: &[&str]| setting_sources(&os(w), true);
        assert_eq!(got(&["claude", "-p"]), None);
        assert_eq!(
            got(&["claude", "--setting-sources", "user, local"]),
            Some(vec!["user", "local"])
        );
        assert_eq!(got(&["claude", "--setting-sources="]), Some(vec![]));
        assert_eq!(
            got(&[
                "claude",
                "--setting-sources",
                "user",
                "--setting-sources=project"
            ]),
            Some(vec!["project"])
        );
        assert_eq!(got(&["claude", "--setting-sources", "user,policy"]), None);
        assert_eq!(got(&["claude", "--setting-sources"]), None);
        // After an option that may be waiting for its value, it may be that value.
        assert_eq!(
            got(&[
                "claude",
                "--append-system-prompt",
                "--setting-sources",
                "user"
            ]),
            None
        );
        assert_eq!(got(&["claude", "--model", "--setting-sources=user"]), None);
        assert_eq!(
            got(&["claude", "-p", "--setting-sources", "user"]),
            Some(vec!["user"])
        );
        assert_eq!(
            got(&["claude", "--model=x", "--setting-sources", "user"]),
            Some(vec!["user"])
        );
        assert_eq!(
            setting_sources(
                &os(&[
                    "claude",
                    "--append-system-prompt",
                    "--setting-sources",
                    "user"
                ]),
                false
            ),
            Some(vec!["user"])
        );
    }

    #[test]
    fn git_entries_claude_accepts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir(p.join("dir")).unwrap();
        std::fs::write(p.join("file"), "garbage").unwrap();
        std::os::unix::fs::symlink(p.join("dir"), p.join("to-dir")).unwrap();
        std::os::unix::fs::symlink(p.join("file"), p.join("to-file")).unwrap();
        std::os::unix::fs::symlink(p.join("nowhere"), p.join("dangling")).unwrap();
        nix::unistd::mkfifo(&p.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        for yes in ["dir", "file", "to-dir", "to-file"] {
            assert!(accepts_git_entry(&p.join(yes)), "{yes}");
        }
        for no in ["dangling", "fifo", "absent"] {
            assert!(!accepts_git_entry(&p.join(no)), "{no}");
        }
    }

    #[test]
    fn a_linked_worktrees_main_checkout() {
        let d = tempfile::tempdir().unwrap();
        let p = std::fs::canonicalize(d.path()).unwrap();
        let main = p.join("main");
        let admin = main.join(".git/worktrees/wt");
        let wt = p.join("wt");
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).unwrap();
        std::fs::write(admin.join("commondir"), "../..\n").unwrap();
        std::fs::write(
            admin.join("gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )
        .unwrap();
        assert_eq!(main_checkout(&wt), Some(main.clone()));
        assert_eq!(
            main_checkout(&main),
            None,
            "a .git directory is no worktree"
        );
        // A back-pointer elsewhere, a commondir that is not the admin dir's parent's
        // parent, or a missing file: claude keeps the worktree's own root.
        std::fs::write(admin.join("gitdir"), "/elsewhere/.git\n").unwrap();
        assert_eq!(main_checkout(&wt), None);
        std::fs::write(
            admin.join("gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )
        .unwrap();
        std::fs::write(admin.join("commondir"), "..\n").unwrap();
        assert_eq!(main_checkout(&wt), None);
        std::fs::remove_file(admin.join("commondir")).unwrap();
        assert_eq!(main_checkout(&wt), None);
    }

    #[test]
    fn parse_accepts_a_bom_and_refuses_the_rest() {
        assert!(parse(b"\xEF\xBB\xBF{}").is_ok());
        assert!(parse(b"// c\n{}").is_err());
        assert!(parse(b"[]").is_err());
        assert!(parse(b"{\"a\":1,}").is_err());
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
    fn null_or_empty_helpers_bring_nothing() {
        let none = CallerEnv::default();
        assert!(judged(r#"{"apiKeyHelper":null,"awsAuthRefresh":""}"#, &none).is_empty());
        // Second review: claude tests truthiness, so `false` and `0` run no helper.
        for falsy in ["false", "0", "0.0", "-0", "\"\"", "null"] {
            let json = format!(r#"{{"apiKeyHelper":{falsy},"proxyAuthHelper":{falsy}}}"#);
            assert!(judged(&json, &none).is_empty(), "{json}");
        }
        for truthy in [
            "\" \"",
            "true",
            "1",
            "-1",
            "0.5",
            "{}",
            "[]",
            "\"0\"",
            "\"false\"",
        ] {
            let json = format!(r#"{{"apiKeyHelper":{truthy}}}"#);
            assert_eq!(judged(&json, &none).len(), 1, "{json}");
        }
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

    #[test]
    fn anthropic_hosts() {
        let d = |o: &str| Destination {
            origin: o.into(),
            chosen_by: String::new(),
            proxy: None,
            also: Vec::new(),
        };
        assert!(d("https://api.anthropic.com").is_anthropic());
        assert!(d("https://api.anthropic.com:443").is_anthropic());
        assert!(!d("http://api.anthropic.com").is_anthropic());
        assert!(!d("https://api.anthropic.com.evil").is_anthropic());
        assert!(!d("https://evilanthropic.com").is_anthropic());
    }
}
