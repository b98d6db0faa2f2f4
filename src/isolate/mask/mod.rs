//! The mask: the real credential files made unreachable to the command and everything it
//! starts, by the kernel, in a private mount namespace entered just before `execve`.
//!
//! [`plan`] is a function from where credentials live to a list of [`MountOp`]s:
//! each real config dir and the Anthropic profile store covered by an empty read-only
//! directory, each real `~/.claude.json` bound read-only onto itself, each token file
//! covered by an empty read-only file. A config dir that holds the working directory
//! stays visible but read-only (that directory writable), its credential files emptied.
//! First come the views ([`MountOp::View`]): the directory holding each hidden place is
//! covered by a read-only tmpfs with its launch-time entries bound back, so that removing,
//! renaming or re-creating a hidden place outside during the run lifts nothing (a mount
//! on the real entry would go away with it); claude-iso's state directory shows only the
//! launch's own home.
//!
//! The launcher calls [`prepare`] before anything changes (the plan, and every refusal:
//! a misplaced working directory, an inherited descriptor into a hidden place
//! ([`check_descriptors`]), a `/proc` of another PID namespace, and under `--mask on` the
//! kernel's refusal, tried in a helper), then [`launch`] after the home is made, which
//! [`enter`]s it.
//!
//! How it is applied (measured; see the README's "The mask"): a forked helper does the
//! work and this process joins the result with `setns`, so a refusal at any step leaves
//! this process untouched (it can then go on isolated by environment):
//! - unprivileged: the helper enters a new user + mount namespace with an identity map of
//!   its uid and gid (`setgroups` denied), makes `/` private and mounts the masks. After
//!   `execve` the command has no capabilities there, so it cannot remove them, and a
//!   namespace of its own only gets them locked.
//! - root: the helper enters a plain mount namespace, makes `/` private, mounts the
//!   masks, then enters a new user + mount namespace (all ids mapped to themselves, so
//!   root stays root for files). Mounts inherited into a less privileged namespace are
//!   locked: root in it cannot unmount or remount them, nor reach `/proc/<pid>/root` of
//!   processes outside.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use nix::sys::statvfs::FsFlags;
use nix::unistd::{ForkResult, Pid};

use crate::cli::Switch;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::isolate::share;
use crate::layout::{CLAUDE_DIR, CLAUDE_JSON, CREDENTIALS, DEVICE_KEYS};
use crate::report::Report;
use crate::sys::fsutil::clean;
use crate::token::{self, Source};

/// Files claude reads outside any home when their descriptor variables are unset (an
/// API key there outranks the token).
pub const FIXED_FILES: &[&str] = &[
    "/home/claude/.claude/remote/.oauth_token",
    "/home/claude/.claude/remote/.api_key",
    "/home/claude/.claude/remote/.session_ingress_token",
];

/// Where the empty sources are made: the first of these that no mask touches.
const STAGING: &[&str] = &[
    "/var/tmp", "/tmp", "/mnt", "/media", "/srv", "/opt", "/dev/shm", "/run", "/boot", "/usr",
    "/etc", "/var",
];

/// What a path is, as far as mounting over it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file (or anything else that is not a directory).
    File,
}

/// One mount, in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// Bind the path onto itself read-only: nothing in it can be written, created,
    /// renamed or removed.
    ReadOnly { path: PathBuf, kind: Kind },
    /// Bind the scratch home or the working directory back writable where it lies inside
    /// a read-only directory.
    Writable { path: PathBuf },
    /// Cover the path with an empty read-only file (or directory): it reads as empty and
    /// cannot be written, renamed over or removed.
    Empty { path: PathBuf, kind: Kind },
    /// Show a directory inside a hidden one again, read-only (a `PATH` entry such as
    /// claude's local install in `~/.claude/local`).
    Reveal { path: PathBuf },
    /// A view of a directory: a read-only tmpfs over it in which each entry it holds at
    /// launch is bound back from the real directory (writable as it was; a symlink is
    /// copied), except the `cover` names (an empty placeholder of that kind, or nothing)
    /// and, with `only`, every name not listed (left out). A mount on a real entry goes
    /// away when that entry is removed or renamed outside; the view's mount points are
    /// its own, so removing, renaming or re-creating an entry outside changes nothing
    /// the command sees (issue 21).
    View {
        path: PathBuf,
        cover: Vec<(OsString, Option<Kind>)>,
        only: Option<Vec<OsString>>,
        /// Bound back read-only (`~/.claude.json`; a config dir that is the working
        /// directory), so that what shows when a later mount on it goes away is read-only
        /// too.
        read_only: Vec<OsString>,
    },
}

impl MountOp {
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            MountOp::ReadOnly { path, .. }
            | MountOp::Writable { path }
            | MountOp::Empty { path, .. }
            | MountOp::Reveal { path }
            | MountOp::View { path, .. } => path,
        }
    }

    /// How the op is shown in `--dry-run` and `doctor`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            MountOp::ReadOnly { path, .. } => format!("read-only {}", path.display()),
            MountOp::Writable { path } => format!("kept writable {}", path.display()),
            MountOp::Empty {
                path,
                kind: Kind::File,
            } => format!("empty {}", path.display()),
            MountOp::Empty {
                path,
                kind: Kind::Dir,
            } => format!("hidden {}", path.display()),
            MountOp::Reveal { path } => format!("shown read-only {}", path.display()),
            MountOp::View {
                path,
                only: Some(only),
                ..
            } => {
                let names: Vec<String> = only
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect();
                format!(
                    "view {} (only {} shown)",
                    path.display(),
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(" ")
                    }
                )
            }
            MountOp::View {
                path,
                cover,
                read_only,
                ..
            } => {
                let names = |v: Vec<&OsString>| {
                    v.iter()
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect::<Vec<String>>()
                        .join(" ")
                };
                let hidden = names(
                    cover
                        .iter()
                        .filter(|(_, k)| k.is_some())
                        .map(|(n, _)| n)
                        .collect(),
                );
                let absent = names(
                    cover
                        .iter()
                        .filter(|(_, k)| k.is_none())
                        .map(|(n, _)| n)
                        .collect(),
                );
                let ro = names(read_only.iter().collect());
                let mut parts = vec!["entries as at launch".to_owned()];
                for (what, list) in [("empty", hidden), ("left out", absent), ("read-only", ro)] {
                    if !list.is_empty() {
                        parts.push(format!("{what}: {list}"));
                    }
                }
                format!("view {} ({})", path.display(), parts.join("; "))
            }
        }
    }
}

/// Where credentials live, as the launcher knows it (paths as given; [`plan`] resolves).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Each real `~/.claude`, the caller's `CLAUDE_CONFIG_DIR` and
    /// `CLAUDE_SECURESTORAGE_CONFIG_DIR`: hidden (an empty read-only directory), or,
    /// when the working directory or the scratch home lies inside, read-only with the
    /// credential files emptied.
    pub config_dirs: Vec<PathBuf>,
    /// Each real `~/.claude.json`: read-only.
    pub claude_jsons: Vec<PathBuf>,
    /// `$ANTHROPIC_CONFIG_DIR`, `$XDG_CONFIG_HOME/anthropic`, `~/.config/anthropic`
    /// (profiles, and credentials under `credentials/`): hidden.
    pub profile_stores: Vec<PathBuf>,
    /// Every token file claude-iso reads, and the fixed files: emptied.
    pub files: Vec<PathBuf>,
    /// The directories kept only for claude-iso's token files
    /// (`$XDG_CONFIG_HOME/claude-iso`, each real home's `.config/claude-iso`, the
    /// `claude-auth-sync` compatibility directory): hidden whole, so that replacing a
    /// token file by rename outside (`token set` does) cannot lift the mask.
    pub token_dirs: Vec<PathBuf>,
    /// Directories the command may need that can lie inside a hidden config dir (the
    /// caller's `PATH` entries, the command's own directory: claude's local installer puts
    /// it in `~/.claude/local`): shown again, read-only, inside the hidden directory.
    pub reveal: Vec<PathBuf>,
    /// The scratch home and the working directory: stay writable.
    pub writable: Vec<PathBuf>,
    /// The copies `--share` made in the scratch home: bound read-only onto themselves,
    /// so that the command cannot change them (root included) nor replace them.
    pub shared: Vec<(PathBuf, Kind)>,
    /// The scratch home (also the first of `writable`): no view is made in it.
    pub home: PathBuf,
    /// claude-iso's state directory (`$XDG_STATE_HOME/claude-iso`): every home in it but
    /// `home` is left out (other homes hold other agents' logins, quarantined files).
    pub state_dir: Option<PathBuf>,
    /// Where the per-launch credential broker keeps its socket
    /// (`$XDG_RUNTIME_DIR/claude-iso`, `/tmp/claude-iso-<uid>`): never hidden.
    pub broker_dirs: Vec<PathBuf>,
    /// The scratch home holds a `.claude/.credentials.json` the launch will quarantine.
    pub home_may_quarantine: bool,
}

impl Sources {
    /// Where credentials live for this launch; `home` is the scratch home.
    #[must_use]
    pub fn new(config: &Config, home: &Path) -> Sources {
        let env_dir = |name: &str| {
            config
                .env
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| clean(&config.start_dir.join(v)))
        };
        let homes = config.real_homes(true);
        let mut config_dirs = config.real_config_dirs(true);
        config_dirs.extend(env_dir("CLAUDE_SECURESTORAGE_CONFIG_DIR"));
        let (profile_stores, token_dirs) = config.credential_stores();
        let mut files: Vec<PathBuf> = Vec::new();
        let mut sources = token::default_candidates(config);
        sources.extend(token::candidates(config));
        for source in sources {
            if let Source::EnvFile(p) | Source::CredentialsDirectory(p) = source {
                files.push(p);
            }
        }
        // Copies set aside are still credentials: a replaced token file (`token set`
        // keeps the old one, valid until it expires) and a credentials file quarantined
        // out of the scratch home.
        let asides: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| set_aside(f, "replaced"))
            .chain(set_aside(
                &home.join(CLAUDE_DIR).join(CREDENTIALS),
                "quarantined",
            ))
            .collect();
        files.extend(asides);
        files.extend(FIXED_FILES.iter().map(PathBuf::from));
        // Only the entries that can lead into a config dir are worth resolving on every
        // launch: those in a real home or in a config dir as named (`/usr/bin` is
        // not; a directory elsewhere that is a symlink into `~/.claude` is not seen).
        let may_lead_in = |d: &Path| {
            homes.iter().any(|h| d.starts_with(h)) || config_dirs.iter().any(|c| d.starts_with(c))
        };
        let reveal = config
            .env
            .get("PATH")
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| d.is_absolute())
                    .map(|d| clean(&d))
                    .filter(|d| may_lead_in(d))
                    .collect()
            })
            .unwrap_or_default();
        Sources {
            config_dirs,
            claude_jsons: homes.iter().map(|h| h.join(CLAUDE_JSON)).collect(),
            profile_stores,
            files,
            token_dirs,
            reveal,
            writable: vec![home.to_owned(), config.workdir.clone()],
            shared: Vec::new(),
            home: home.to_owned(),
            state_dir: Some(config.state_dir()),
            broker_dirs: broker_dirs(config),
            home_may_quarantine: std::fs::symlink_metadata(home.join(CLAUDE_DIR).join(CREDENTIALS))
                .is_ok(),
        }
    }

    /// Adds the copies `--share` makes (paths in the scratch home, and whether each is a
    /// directory: they may not exist yet when the plan is made).
    #[must_use]
    pub fn with_shared(mut self, shared: &[(PathBuf, Kind)]) -> Sources {
        self.shared.extend(shared.iter().cloned());
        self
    }

    /// Adds the command's own directory, and the directory of the file it leads to, to
    /// what is shown again inside a hidden directory.
    #[must_use]
    pub fn with_program(mut self, program: Option<&Path>) -> Sources {
        let Some(program) = program.filter(|p| p.is_absolute()) else {
            return self;
        };
        if let Some(dir) = program.parent() {
            self.reveal.push(clean(dir));
        }
        if let Some(dir) = std::fs::canonicalize(program)
            .ok()
            .as_deref()
            .and_then(Path::parent)
        {
            self.reveal.push(dir.to_owned());
        }
        self
    }
}

/// Where the credential broker keeps its socket: `$XDG_RUNTIME_DIR/claude-iso` (when
/// set) and `/tmp/claude-iso-<uid>`. The mask never hides them.
fn broker_dirs(config: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = config
        .env
        .absolute_path("XDG_RUNTIME_DIR")
        .map(|d| clean(d).join(crate::layout::STATE_DIR))
        .into_iter()
        .collect();
    out.push(PathBuf::from(format!(
        "/tmp/claude-iso-{}",
        nix::unistd::geteuid().as_raw()
    )));
    out
}

/// The copies of `file` set aside with `tag` (`<name>.<tag>-<time>-<n>`, see
/// `fsutil::put_aside`) that exist in its directory.
fn set_aside(file: &Path, tag: &str) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.{tag}-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(std::result::Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// The computed mask: the mounts in order, and where their empty sources are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<MountOp>,
    /// A directory no op touches (neither above nor below any of them), for the
    /// temporary tmpfs holding the empty file and directory.
    pub staging: Option<PathBuf>,
}

impl Plan {
    /// Adds single files to empty (the credentials file a launch quarantines out of the
    /// scratch home after the plan was made).
    /// Each is masked where it leads (a quarantined symlink's target), as [`plan`] does:
    /// not when that is not a file, or lies in a place already hidden or emptied.
    pub fn add_files(&mut self, files: Vec<PathBuf>) {
        let (places, _) = self.places();
        for file in files {
            let Some((path, Kind::File)) = resolve_real(&file) else {
                continue;
            };
            if places.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            let op = MountOp::Empty {
                path,
                kind: Kind::File,
            };
            if self.staging.is_some() && !self.ops.contains(&op) {
                self.ops.push(op);
            }
        }
    }

    /// The places the plan hides, empties or makes read-only, and the places shown again
    /// inside them (for [`check_descriptors`]).
    #[must_use]
    pub fn places(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut places = Vec::new();
        let mut allowed = Vec::new();
        for op in &self.ops {
            match op {
                MountOp::Empty { path, .. }
                | MountOp::ReadOnly {
                    path,
                    kind: Kind::File,
                } => places.push(path.clone()),
                MountOp::View {
                    path,
                    cover,
                    only: None,
                    read_only,
                } => places.extend(
                    cover
                        .iter()
                        .map(|(n, _)| path.join(n))
                        .chain(read_only.iter().map(|n| path.join(n))),
                ),
                MountOp::View {
                    path,
                    only: Some(only),
                    ..
                } => {
                    places.push(path.clone());
                    allowed.extend(only.iter().map(|n| path.join(n)));
                }
                MountOp::Reveal { path } | MountOp::Writable { path } => {
                    allowed.push(path.clone());
                }
                MountOp::ReadOnly { .. } => {}
            }
        }
        (places, allowed)
    }

    /// The paths that read as empty or are hidden.
    pub fn emptied(&self) -> impl Iterator<Item = &Path> {
        self.ops.iter().filter_map(|op| match op {
            MountOp::Empty { path, .. } => Some(path.as_path()),
            _ => None,
        })
    }
}

/// Computes the mask. `resolve` says where a path leads (symlinks followed) and what it
/// is, or `None` when it does not exist; only existing paths are masked. Pure but for
/// the views: whether a directory may be viewed (its mode, whether this process can list
/// it) is asked of the real filesystem (see `views`).
///
/// # Errors
/// The scratch home or the working directory lies inside a directory that must be
/// hidden (the Anthropic profile store, another home in claude-iso's state directory).
pub fn plan(sources: &Sources, resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>) -> Result<Plan> {
    let mut ro_dirs: Vec<PathBuf> = Vec::new();
    let mut ro_files: Vec<PathBuf> = Vec::new();
    let mut hidden: Vec<PathBuf> = Vec::new();
    // The config dirs among them: the only hidden directories something is shown in.
    let mut config_hidden: Vec<PathBuf> = Vec::new();
    let mut empty: Vec<PathBuf> = Vec::new();
    let push = |v: &mut Vec<PathBuf>, p: PathBuf| {
        if !v.contains(&p) {
            v.push(p);
        }
    };
    // The scratch home may not exist yet (the plan comes before anything is made): its
    // path is then taken as given (the launcher passes the canonical one).
    let writable: Vec<PathBuf> = sources
        .writable
        .iter()
        .map(|p| resolve(p).map_or_else(|| p.clone(), |(r, _)| r))
        .collect();

    for dir in &sources.config_dirs {
        let Some((real, kind)) = resolve(dir) else {
            continue;
        };
        match kind {
            // Hidden whole: a claude pointed back at it (a project's settings can set
            // CLAUDE_CONFIG_DIR) finds no credentials, no settings (whose `env` and
            // `apiKeyHelper` can carry a key), and can create nothing. A working
            // directory inside it is shown again below (its top-level directory there
            // read-only, itself writable): the credential files stay hidden with the
            // directory, which a rename outside cannot undo as it would a file's mask.
            Kind::Dir if !writable.contains(&real) => {
                // A credential file that is a symlink out of it is emptied where it
                // leads (the shared file itself).
                for name in [CREDENTIALS, DEVICE_KEYS] {
                    if let Some((file, Kind::File)) = resolve(&real.join(name)) {
                        if !file.starts_with(&real) {
                            push(&mut empty, file);
                        }
                    }
                }
                push(&mut config_hidden, real.clone());
                push(&mut hidden, real);
                continue;
            }
            // It is the working directory: read-only but visible, the credential files
            // emptied (a credential file must not be creatable in it).
            Kind::Dir => push(&mut ro_dirs, real.clone()),
            Kind::File => {
                push(&mut empty, real);
                continue;
            }
        }
        for name in [CREDENTIALS, DEVICE_KEYS] {
            if let Some((file, kind)) = resolve(&real.join(name)) {
                match kind {
                    Kind::File => push(&mut empty, file),
                    Kind::Dir => push(&mut hidden, file),
                }
            }
        }
    }
    for file in &sources.claude_jsons {
        if let Some((real, Kind::File)) = resolve(file) {
            push(&mut ro_files, real);
        }
    }
    for dir in &sources.profile_stores {
        match resolve(dir) {
            Some((real, Kind::Dir)) => push(&mut hidden, real),
            Some((real, Kind::File)) => push(&mut empty, real),
            None => {}
        }
    }
    for file in &sources.files {
        match resolve(file) {
            Some((real, Kind::File)) => push(&mut empty, real),
            Some((real, Kind::Dir)) => push(&mut hidden, real),
            None => {}
        }
    }
    for dir in &sources.token_dirs {
        if let Some((real, Kind::Dir)) = resolve(dir) {
            push(&mut hidden, real);
        }
    }

    for w in &writable {
        // Inside a hidden config dir (not the dir itself) is shown again below.
        let shown = |h: &&PathBuf| config_hidden.contains(*h) && w != *h;
        if let Some(h) = hidden.iter().find(|h| w.starts_with(h) && !shown(h)) {
            return Err(Error::MaskPlace {
                reason: format!(
                    "{} is inside {}, which the mask hides (it holds credentials)",
                    w.display(),
                    h.display()
                ),
                fix:
                    "run from (and keep the scratch home in) another directory, or pass --mask off"
                        .into(),
            });
        }
    }
    // Everything masked, before what lies under a hidden directory is dropped: nothing
    // shown again may hold any of it.
    let masked_all: Vec<PathBuf> = hidden
        .iter()
        .chain(empty.iter())
        .chain(ro_files.iter())
        .cloned()
        .collect();
    // A file (or directory) under a hidden directory is hidden with it.
    empty.retain(|f| !hidden.iter().any(|h| f.starts_with(h) && f != h));
    ro_files.retain(|f| !hidden.iter().any(|h| f.starts_with(h)));
    let all_hidden = hidden.clone();
    hidden.retain(|d| !all_hidden.iter().any(|h| d.starts_with(h) && d != h));
    config_hidden.retain(|d| hidden.contains(d));
    // What the command may need from inside a hidden config dir (a `PATH` entry, the
    // command's own directory, where it leads): the top-level directory of the config dir
    // holding it (`~/.claude/local` for npm's `~/.claude/local/node_modules/.bin`), shown
    // again read-only — never the config dir itself, nor one that holds or lies in
    // anything masked.
    let mut reveal: Vec<PathBuf> = Vec::new();
    for dir in sources.reveal.iter().filter(|_| !config_hidden.is_empty()) {
        let Some((real, Kind::Dir)) = resolve(dir) else {
            continue;
        };
        let Some(top) = config_hidden.iter().find_map(|h| {
            let first = real.strip_prefix(h).ok()?.components().next()?;
            Some(h.join(first))
        }) else {
            continue;
        };
        let clash = masked_all
            .iter()
            .any(|m| m.starts_with(&top) || (top.starts_with(m) && !config_hidden.contains(m)));
        if !clash && !reveal.contains(&top) {
            reveal.push(top);
        }
    }
    // A working directory inside a hidden config dir: its top-level directory there shown
    // again read-only, the working directory itself writable.
    let mut writable_inside: Vec<PathBuf> = Vec::new();
    for w in &writable {
        let Some((h, first)) = config_hidden.iter().find_map(|h| {
            let first = w.strip_prefix(h).ok()?.components().next()?;
            Some((h, first))
        }) else {
            continue;
        };
        let top = h.join(first);
        if let Some(m) = masked_all
            .iter()
            .find(|m| m.starts_with(&top) || (top.starts_with(m) && !config_hidden.contains(m)))
        {
            return Err(Error::MaskPlace {
                reason: format!(
                    "{} is inside {}, which holds {}, a path the mask must cover",
                    w.display(),
                    top.display(),
                    m.display()
                ),
                fix: "run from another directory, or pass --mask off".into(),
            });
        }
        if !reveal.contains(&top) {
            reveal.push(top);
        }
        push(&mut writable_inside, w.clone());
    }
    let read_only: Vec<PathBuf> = ro_files.iter().chain(&ro_dirs).cloned().collect();
    let views = views(
        sources,
        resolve,
        &writable,
        &all_hidden,
        &hidden,
        &empty,
        &read_only,
    )?;
    reveal.sort();
    ro_dirs.sort();
    ro_files.sort();
    hidden.sort();
    empty.sort();
    let mut ops: Vec<MountOp> = views;
    ops.extend(ro_dirs.iter().map(|p| MountOp::ReadOnly {
        path: p.clone(),
        kind: Kind::Dir,
    }));
    let mut keep: Vec<&PathBuf> = writable
        .iter()
        .filter(|w| ro_dirs.iter().any(|d| w.starts_with(d) && *w != d))
        .collect();
    keep.sort();
    keep.dedup();
    ops.extend(
        keep.into_iter()
            .map(|p| MountOp::Writable { path: p.clone() }),
    );
    ops.extend(ro_files.into_iter().map(|path| MountOp::ReadOnly {
        path,
        kind: Kind::File,
    }));
    ops.extend(hidden.into_iter().map(|path| MountOp::Empty {
        path,
        kind: Kind::Dir,
    }));
    ops.extend(reveal.into_iter().map(|path| MountOp::Reveal { path }));
    writable_inside.sort();
    ops.extend(
        writable_inside
            .into_iter()
            .map(|path| MountOp::Writable { path }),
    );
    // The shared copies last: read-only views of what is in the scratch home (made after
    // the plan: taken as given).
    let mut shared: Vec<(PathBuf, Kind)> = sources
        .shared
        .iter()
        .filter(|(p, _)| !all_hidden.iter().any(|h| p.starts_with(h)))
        .cloned()
        .collect();
    shared.sort_by(|a, b| a.0.cmp(&b.0));
    shared.dedup_by(|a, b| a.0 == b.0);
    let shared_ops: Vec<MountOp> = shared
        .into_iter()
        .map(|(path, kind)| MountOp::ReadOnly { path, kind })
        .collect();
    ops.extend(empty.into_iter().map(|path| MountOp::Empty {
        path,
        kind: Kind::File,
    }));
    ops.extend(shared_ops);

    // Chosen even when nothing needs it yet: the launch may quarantine a credentials file
    // after the plan is made (see `Plan::add_files`).
    let needs_staging = ops.iter().any(|op| matches!(op, MountOp::Empty { .. }));
    let staging = if needs_staging || sources.home_may_quarantine {
        // Only the mount targets matter: the staging tmpfs covers its directory while the
        // masks are made and is detached afterwards, so a working directory or home
        // around it (a launch from `/`, from cron or systemd) loses nothing.
        let touched: Vec<&Path> = ops.iter().map(MountOp::path).collect();
        let staging = STAGING.iter().find_map(|s| {
            let (real, kind) = resolve(Path::new(s))?;
            let free = kind == Kind::Dir
                && !touched
                    .iter()
                    .any(|t| t.starts_with(&real) || real.starts_with(t));
            free.then_some(real)
        });
        if staging.is_none() {
            return Err(Error::Mask {
                reason: format!(
                    "no directory to stage the empty files in (tried {}; each is missing or holds a masked path)",
                    STAGING.join(", ")
                ),
                fix: "create /var/tmp, or pass --mask off".into(),
            });
        }
        staging
    } else {
        None
    };
    Ok(Plan { ops, staging })
}

/// Whether a directory may be viewed: not `/` (a mount over the root is not seen by
/// lookups that start there), not a directory others can create entries in (`/tmp`: the
/// command and everyone else must keep creating files there), not in the scratch home.
fn viewable_state(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.parent().is_some()
        && std::fs::metadata(dir).map_or(true, |m| m.mode() & 0o1002 == 0 && listable(dir))
}

fn viewable(dir: &Path, home: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    dir.parent().is_some()
        && !dir.starts_with(home)
        && std::fs::metadata(dir).is_ok_and(|m| m.mode() & 0o1002 == 0)
        && listable(dir)
}

/// Whether this process can list `dir` (a view is made of what it lists; a directory it
/// cannot list keeps the masks on its entries alone, as another user's home seen from a
/// user namespace does).
fn listable(dir: &Path) -> bool {
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::X_OK,
    )
    .is_ok()
}

/// The views of the plan (see [`MountOp::View`]), shallowest first:
/// - the directory holding each place the mask hides or makes read-only (each real
///   `~/.claude`, `~/.claude.json`, `CLAUDE_CONFIG_DIR` and the like, the profile
///   store, claude-iso's token directories) when one of them exists there at launch:
///   hidden places become empty placeholders, absent ones stay absent (one made during
///   the run stays out of sight);
/// - claude-iso's state directory, in which only the path to the launch's own home is
///   shown (every other home is left out).
fn views(
    sources: &Sources,
    resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
    writable: &[PathBuf],
    all_hidden: &[PathBuf],
    hidden: &[PathBuf],
    empty: &[PathBuf],
    read_only: &[PathBuf],
) -> Result<Vec<MountOp>> {
    let home = writable
        .first()
        .cloned()
        .unwrap_or_else(|| sources.home.clone());
    let mut views: Vec<MountOp> = Vec::new();
    let cover = |views: &mut Vec<MountOp>, dir: PathBuf, name: OsString, kind: Option<Kind>| {
        if let Some(MountOp::View { cover, .. }) =
            views.iter_mut().find(|v| v.path() == dir.as_path())
        {
            if !cover.iter().any(|(n, _)| *n == name) {
                cover.push((name, kind));
            }
            return;
        }
        views.push(MountOp::View {
            path: dir,
            cover: vec![(name, kind)],
            only: None,
            read_only: Vec::new(),
        });
    };
    let mark_read_only = |views: &mut Vec<MountOp>, dir: PathBuf, name: OsString| {
        if let Some(MountOp::View { read_only, .. }) =
            views.iter_mut().find(|v| v.path() == dir.as_path())
        {
            if !read_only.contains(&name) {
                read_only.push(name);
            }
            return;
        }
        views.push(MountOp::View {
            path: dir,
            cover: Vec::new(),
            only: None,
            read_only: vec![name],
        });
    };
    let candidates = sources
        .config_dirs
        .iter()
        .chain(&sources.claude_jsons)
        .chain(&sources.profile_stores)
        .chain(&sources.token_dirs);
    for c in candidates {
        let c = clean(c);
        let real = resolve(&c);
        // What the name shows: an empty placeholder (hidden or emptied), nothing (absent
        // at launch), or the real entry bound back (made read-only by a later op).
        let shown = match &real {
            Some((r, k)) if hidden.contains(r) || empty.contains(r) => Some(Some(*k)),
            Some(_) => None,
            None => Some(None),
        };
        let Some(kind) = shown else {
            // Bound back; read-only there already when a later op makes it read-only.
            if let Some((r, _)) = &real {
                if read_only.contains(r) {
                    if let (Some(parent), Some(name)) = (r.parent(), r.file_name()) {
                        if let Some((dir, Kind::Dir)) = resolve(parent) {
                            if viewable(&dir, &home)
                                && !all_hidden.iter().any(|h| dir.starts_with(h))
                            {
                                mark_read_only(&mut views, dir, name.to_owned());
                            }
                        }
                    }
                }
            }
            continue;
        };
        let mut forms = vec![c.clone()];
        if let Some((r, _)) = &real {
            if *r != c {
                forms.push(r.clone());
            }
        }
        for f in forms {
            let (Some(parent), Some(name)) = (f.parent(), f.file_name()) else {
                continue;
            };
            let Some((dir, Kind::Dir)) = resolve(parent) else {
                continue;
            };
            if all_hidden.iter().any(|h| dir.starts_with(h)) || !viewable(&dir, &home) {
                continue;
            }
            cover(&mut views, dir, name.to_owned(), kind);
        }
    }
    // The state directory's parent: viewed whether or not anything in it is covered.
    let mut pinned: Option<PathBuf> = None;
    if let Some(state) = &sources.state_dir {
        let state = resolve(state).map_or_else(|| clean(state), |(r, _)| r);
        let near_broker = sources
            .broker_dirs
            .iter()
            .any(|b| b.starts_with(&state) || state.starts_with(b));
        if !near_broker && !state.starts_with(&home) && viewable_state(&state) {
            // The directory holding the state directory is viewed too (every entry bound
            // back): removing or renaming the state directory outside, and making a new
            // one with other homes in it, then changes nothing inside either.
            if let Some(parent) = state.parent().filter(|p| viewable(p, &home)) {
                pinned = Some(parent.to_owned());
                if !views.iter().any(|v| v.path() == parent) {
                    views.push(MountOp::View {
                        path: parent.to_owned(),
                        cover: Vec::new(),
                        only: None,
                        read_only: Vec::new(),
                    });
                }
            }
            match home.strip_prefix(&state) {
                // The home in it: each directory on the way shows only the next one.
                Ok(rel) => {
                    let mut at = state.clone();
                    for c in rel.components() {
                        views.push(MountOp::View {
                            path: at.clone(),
                            cover: Vec::new(),
                            only: Some(vec![c.as_os_str().to_owned()]),
                            read_only: Vec::new(),
                        });
                        at.push(c);
                    }
                }
                // The home elsewhere: every home in the state directory is left out.
                Err(_) => views.push(MountOp::View {
                    path: state.clone(),
                    cover: Vec::new(),
                    only: Some(Vec::new()),
                    read_only: Vec::new(),
                }),
            }
            for w in writable.iter().skip(1) {
                if w.starts_with(&state) && !w.starts_with(&home) && *w != state {
                    return Err(Error::MaskPlace {
                        reason: format!(
                            "{} is inside {}, claude-iso's state directory, where the mask hides every home but this launch's",
                            w.display(),
                            state.display()
                        ),
                        fix: "run from another directory (or from this launch's own home), or pass --mask off".into(),
                    });
                }
            }
        }
    }
    // A directory in which nothing the mask covers exists at launch is not viewed (each
    // entry bound back costs a mount): the names absent there are left out only where the
    // directory is viewed for another one.
    views.retain(|v| match v {
        MountOp::View {
            path,
            only: None,
            cover,
            read_only,
        } => {
            pinned.as_ref() == Some(path)
                || !read_only.is_empty()
                || cover.iter().any(|(_, k)| k.is_some())
        }
        _ => true,
    });
    views.sort_by_key(|v| v.path().components().count());
    Ok(views)
}

/// What `--share` must never carry in: every path the mask hides or empties for this
/// caller, whatever the working directory (see [`share::Limits`]).
#[must_use]
pub fn share_limits(config: &Config) -> share::Limits {
    let own: Vec<PathBuf> = config
        .real_homes(true)
        .iter()
        .map(|h| h.join(CLAUDE_DIR))
        .collect();
    limits(&Sources::new(config, &config.home), &own, &resolve_real)
}

/// The pure core of [`share_limits`]: the sources of [`plan`], each as given and as
/// `resolve` says it leads. `own` are the real homes' `~/.claude`, where the files of
/// `--share default` live: hidden, yet shareable by name; every other config dir (a
/// variable's) is never shared.
pub fn limits(
    sources: &Sources,
    own: &[PathBuf],
    resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
) -> share::Limits {
    let forms = |p: &Path| -> Vec<PathBuf> {
        let mut v = vec![p.to_owned()];
        if let Some((real, _)) = resolve(p) {
            if real != p {
                v.push(real);
            }
        }
        v
    };
    let own: Vec<PathBuf> = own.iter().flat_map(|p| forms(p)).collect();
    let mut out = share::Limits::default();
    let mut never = |p: &Path, what: &'static str| {
        for f in forms(p) {
            if !out.never.iter().any(|(q, _)| *q == f) {
                out.never.push((f, what));
            }
        }
    };
    let mut hidden = Vec::new();
    for dir in &sources.config_dirs {
        let dir_forms = forms(dir);
        if dir_forms.iter().any(|f| own.contains(f)) {
            hidden.extend(dir_forms);
        } else {
            never(
                dir,
                "a claude config directory named by CLAUDE_CONFIG_DIR or CLAUDE_SECURESTORAGE_CONFIG_DIR",
            );
        }
        for name in [CREDENTIALS, DEVICE_KEYS] {
            never(&dir.join(name), "a credential file");
        }
    }
    for file in &sources.claude_jsons {
        never(file, "claude's account file");
    }
    for dir in &sources.profile_stores {
        never(dir, "an Anthropic profile store");
    }
    for file in &sources.files {
        let tag = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(crate::sys::fsutil::aside_tag);
        if FIXED_FILES.iter().any(|f| Path::new(f) == file) {
            never(file, "a credential file claude reads outside any home");
        } else if tag == Some("quarantined") {
            never(file, "a credentials file quarantined out of a scratch home");
        } else if tag == Some("replaced") {
            never(
                file,
                "a token file `token set` replaced, valid until it expires",
            );
        } else {
            never(file, "a token file");
        }
    }
    for dir in FIXED_FILES.iter().filter_map(|f| Path::new(f).parent()) {
        never(dir, "claude's remote credentials");
    }
    hidden.sort();
    hidden.dedup();
    out.hidden = hidden;
    out
}

/// What the real filesystem says about a path, for [`plan`].
#[must_use]
pub fn resolve_real(path: &Path) -> Option<(PathBuf, Kind)> {
    let real = std::fs::canonicalize(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    Some((real, if meta.is_dir() { Kind::Dir } else { Kind::File }))
}

// ---------------------------------------------------------------------------------------
// Applying it
// ---------------------------------------------------------------------------------------

/// The step at which the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Fork,
    Unshare,
    Setgroups,
    UidMap,
    GidMap,
    Private,
    Staging,
    /// The op at this index of the plan.
    Mount(usize),
    Lock,
    Join,
    /// The helper died or said something we did not understand.
    Helper,
    /// `/proc` belongs to another PID namespace (found before anything is tried).
    Proc,
}

/// Why the mask could not be set up: the step, the errno, and the path when one was
/// being mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub step: Step,
    pub errno: Errno,
    pub path: Option<PathBuf>,
    /// It failed after this process itself entered the new user namespace (the in-place
    /// path), which it cannot leave: the launch must stop even under `--mask auto`.
    pub in_place: bool,
}

impl Refusal {
    /// What happened, in words, with the likely cause.
    #[must_use]
    pub fn reason(&self) -> String {
        let e = self.errno.desc();
        let apparmor = || {
            std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .is_ok_and(|v| v.trim() == "1")
        };
        match (self.step, self.errno) {
            (Step::Proc, _) => "this runs in a PID namespace whose /proc belongs to another one (/proc/self is not this process: `unshare --pid --fork` without `--mount-proc`?), so the new namespace's id maps cannot be written".into(),
            (Step::Unshare | Step::Lock, Errno::ENOSPC | Errno::EUSERS) => format!(
                "the kernel refused a new user namespace ({e}): user.max_user_namespaces is 0 or used up"
            ),
            (Step::Unshare, Errno::EINVAL) => {
                "the kernel has no user namespaces (unshare: Invalid argument)".into()
            }
            (Step::Unshare | Step::Lock, Errno::EPERM) => format!(
                "user namespaces are not allowed here (unshare: {e}): a container's seccomp policy, systemd's RestrictNamespaces=, or an unmapped user"
            ),
            (
                Step::Setgroups | Step::UidMap | Step::GidMap | Step::Private | Step::Staging,
                Errno::EPERM | Errno::EACCES,
            ) if apparmor() => {
                format!(
                    "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): {} refused ({e})",
                    self.step_name()
                )
            }
            _ => match &self.path {
                Some(p) => format!("cannot mount over {}: {e}", p.display()),
                None => format!("{} failed: {e}", self.step_name()),
            },
        }
    }

    /// How to make it work, in words.
    #[must_use]
    pub fn fix(&self) -> String {
        match (self.step, self.errno) {
            (Step::Proc, _) => {
                "fix: mount a /proc of this PID namespace (unshare --pid --fork --mount-proc; container runtimes do it), or pass --mask off".into()
            }
            (Step::Unshare | Step::Lock, Errno::ENOSPC | Errno::EUSERS) => {
                "fix: sysctl -w user.max_user_namespaces=10000 (as root), or pass --mask off".into()
            }
            (Step::Unshare | Step::Lock, _) => {
                "fix: allow user namespaces (docker: --security-opt seccomp=unconfined or a profile allowing unshare; systemd: RestrictNamespaces=user mnt, which allows only those two), or pass --mask off".into()
            }
            (Step::Setgroups | Step::UidMap | Step::GidMap | Step::Private | Step::Staging, _) => {
                "fix: install the AppArmor profile from examples/apparmor (see README: The mask), or pass --mask off".into()
            }
            _ => "fix: pass --mask off to run without the mask".into(),
        }
    }

    fn step_name(&self) -> &'static str {
        match self.step {
            Step::Fork => "fork",
            Step::Unshare => "unshare",
            Step::Setgroups => "writing /proc/self/setgroups",
            Step::UidMap => "writing uid_map",
            Step::GidMap => "writing gid_map",
            Step::Private => "making / private",
            Step::Staging => "mounting a tmpfs",
            Step::Mount(_) => "mount",
            Step::Lock => "locking the masks (nested namespace)",
            Step::Join => "setns",
            Step::Helper => "the helper process",
            Step::Proc => "/proc",
        }
    }

    /// As an error of claude-iso (exit 125).
    #[must_use]
    pub fn into_error(self) -> Error {
        Error::Mask {
            reason: self.reason(),
            fix: self.fix(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

/// The launcher's first hook, before anything changes: the plan for this launch, or
/// `None` when the launch goes on unmasked (`--mask off`, or `auto` where the mask is
/// impossible: one warning). Every refusal of the mask is decided here: a working
/// directory it cannot be made from, an inherited descriptor into a hidden place, and,
/// under `--mask on`, the kernel's refusal (tried in a helper that is not joined: one
/// `fork`, for `on` only).
///
/// # Errors
/// A refusal (125).
pub fn prepare(
    config: &Config,
    home: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, Kind)],
    report: &Report,
) -> Result<Option<Plan>> {
    if config.mask == Switch::Off {
        return Ok(None);
    }
    let sources = Sources::new(config, home)
        .with_program(program)
        .with_shared(shared);
    let plan = match plan(&sources, &resolve_real) {
        Ok(plan) => plan,
        // Not the kernel's refusal: the launch stops whatever the mode.
        Err(e @ Error::MaskPlace { .. }) => return Err(e),
        Err(e) if config.mask == Switch::Auto => {
            report.warn(format!("{e}; running isolated by environment only"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    check_descriptors(&plan, config.env.get("LISTEN_FDS"))?;
    let refused = match foreign_proc() {
        Some(r) => Some(r),
        None if config.mask == Switch::On => probe(&plan).err(),
        None => None,
    };
    match refused {
        None => Ok(Some(plan)),
        Some(r) if config.mask == Switch::Auto => {
            report.warn(format!(
                "cannot mask the real credentials ({}); running isolated by environment only; {}",
                r.reason(),
                r.fix()
            ));
            Ok(None)
        }
        Some(r) => Err(r.into_error()),
    }
}

/// The launcher's second hook, after the home is made: enters the plan [`prepare`]
/// returned (see [`enter_as`]), with the credentials file the launch just quarantined out
/// of the scratch home emptied too. Returns whether this process is now masked.
///
/// # Errors
/// `--mask on` and the kernel refused after all (125).
pub fn launch(config: &Config, plan: Option<Plan>, home: &Path, report: &Report) -> Result<bool> {
    let Some(mut plan) = plan else {
        return Ok(false);
    };
    plan.add_files(set_aside(
        &home.join(CLAUDE_DIR).join(CREDENTIALS),
        "quarantined",
    ));
    enter_as(config.mask, &plan, report)
}

/// `/proc` of another PID namespace (`unshare --pid --fork` without `--mount-proc`):
/// `/proc/self` is not this process, and the namespace's id maps cannot be written.
fn foreign_proc() -> Option<Refusal> {
    let shown: u32 = std::fs::read_link("/proc/self")
        .ok()?
        .to_str()?
        .parse()
        .ok()?;
    (shown != std::process::id()).then_some(Refusal {
        step: Step::Proc,
        errno: Errno::EPERM,
        path: None,
        in_place: false,
    })
}

/// Refuses when a descriptor this process would hand to the command (one without
/// close-on-exec) leads into a place the plan hides: a directory or file inside it, or
/// a directory above it (`openat` or `/proc/self/fd/N/…` would reach the real files
/// through it, whatever the mount namespace shows). Sockets, pipes, terminals and files
/// elsewhere pass, and so do the descriptors systemd passes (`LISTEN_FDS`: 3 up to
/// `3 + LISTEN_FDS`), which the unit chose to hand on.
///
/// # Errors
/// The first such descriptor, named with where it leads (125).
pub fn check_descriptors(plan: &Plan, listen_fds: Option<&std::ffi::OsStr>) -> Result<()> {
    let systemd = 3..u32::try_from(crate::token::pipe::token_fd_floor(listen_fds)).unwrap_or(3);
    let (places, allowed) = plan.places();
    if places.is_empty() {
        return Ok(());
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Ok(());
    };
    let mut fds: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    for fd in fds.into_iter().filter(|fd| !systemd.contains(fd)) {
        let cloexec = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .ok()
            .and_then(|info| {
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?;
                u32::from_str_radix(flags.trim(), 8).ok()
            })
            .is_none_or(|flags| flags & 0o2_000_000 != 0);
        if cloexec {
            continue;
        }
        let link = format!("/proc/self/fd/{fd}");
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        let text = target.to_string_lossy();
        if !text.starts_with('/') {
            continue;
        }
        let target = PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text));
        let is_dir = std::fs::metadata(&link).is_ok_and(|m| m.is_dir());
        if let Some(place) = leads_into(&target, is_dir, &places, &allowed) {
            return Err(Error::MaskPlace {
                reason: format!(
                    "descriptor {fd} ({}) leads to {}, which the mask hides",
                    target.display(),
                    place.display()
                ),
                fix: format!("close it before the launch ({fd}<&-), or pass --mask off"),
            });
        }
    }
    Ok(())
}

/// Where a descriptor on `target` leads among `places` (see [`check_descriptors`]): into
/// one (unless into one of `allowed`, shown again inside), or, for a directory, above one.
fn leads_into<'a>(
    target: &Path,
    is_dir: bool,
    places: &'a [PathBuf],
    allowed: &[PathBuf],
) -> Option<&'a Path> {
    places
        .iter()
        .find(|p| {
            (target.starts_with(p)
                && !allowed
                    .iter()
                    .any(|a| a.starts_with(p) && target.starts_with(a)))
                || (is_dir && p.starts_with(target))
        })
        .map(PathBuf::as_path)
}

/// Whether the mask would be applied here, without applying it (`--dry-run`, `doctor`).
#[derive(Debug)]
pub enum Verdict {
    /// `--mask off`.
    Off,
    /// The kernel allows it: the plan (possibly empty).
    Ready(Plan),
    /// Impossible: the plan if there is one, and the reason with its fix.
    Refused(Option<Plan>, String),
    /// The kernel would allow it, but not from this working directory or home: a launch
    /// exits 125 whatever the mode.
    Misplaced(String),
}

/// Computes the plan and tries it in a helper this process does not join.
#[must_use]
pub fn verdict(
    config: &Config,
    home: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, Kind)],
) -> Verdict {
    if config.mask == Switch::Off {
        return Verdict::Off;
    }
    match plan(
        &Sources::new(config, home)
            .with_program(program)
            .with_shared(shared),
        &resolve_real,
    ) {
        Err(e @ Error::MaskPlace { .. }) => Verdict::Misplaced(e.to_string()),
        Err(e) => Verdict::Refused(None, e.to_string()),
        Ok(plan) => match check_descriptors(&plan, config.env.get("LISTEN_FDS")) {
            Err(e) => Verdict::Misplaced(e.to_string()),
            Ok(()) => match foreign_proc().map_or_else(|| probe(&plan), Err) {
                Ok(()) => Verdict::Ready(plan),
                Err(r) => {
                    let why = format!("{}; {}", r.reason(), r.fix());
                    Verdict::Refused(Some(plan), why)
                }
            },
        },
    }
}

/// The `--share` copies as the plan needs them: each destination in the scratch home
/// and whether it is a directory (taken from its source: the copy is made later).
#[must_use]
pub fn shared_paths(shares: &[share::Share], home: &Path) -> Vec<(PathBuf, Kind)> {
    shares
        .iter()
        .map(|s| {
            let kind = if std::fs::metadata(&s.source).is_ok_and(|m| m.is_dir()) {
                Kind::Dir
            } else {
                Kind::File
            };
            (home.join(&s.dest), kind)
        })
        .collect()
}

/// The `--dry-run` lines about the mask.
pub fn dry_run(
    config: &Config,
    home: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, Kind)],
    report: &Report,
) {
    let v = verdict(config, home, program, shared);
    let plan = match &v {
        Verdict::Off => {
            report.plan("mask: off: the real credential files stay reachable to the command");
            return;
        }
        Verdict::Misplaced(why) => {
            report.plan(format!("mask: {why} (a launch would exit 125)"));
            return;
        }
        Verdict::Ready(p) | Verdict::Refused(Some(p), _) => Some(p),
        Verdict::Refused(None, _) => None,
    };
    for op in plan.map(|p| p.ops.as_slice()).unwrap_or_default() {
        report.plan(format!("mask: {}", op.describe()));
    }
    match v {
        Verdict::Ready(p) if p.ops.is_empty() => {
            report.plan("mask: possible here; no credential file exists to mask");
        }
        Verdict::Ready(_) => report.plan("mask: possible here"),
        Verdict::Refused(_, why) => report.plan(format!(
            "mask: NOT possible here: {why} (a launch would {})",
            if config.mask == Switch::On {
                "exit 125"
            } else {
                "warn and run isolated by environment only"
            }
        )),
        Verdict::Off | Verdict::Misplaced(_) => {}
    }
}

/// Enters the mask according to `mode`: `Off` does nothing; `Auto` warns (one line:
/// reason and fix) and goes on without it when the kernel refuses; `On` fails then.
/// Returns whether this process is now inside the mask (its working directory is then
/// `/` of the namespace: the caller changes to where it wants to be).
///
/// # Errors
/// `--mask on` and the kernel refused (125).
pub fn enter_as(mode: Switch, plan: &Plan, report: &Report) -> Result<bool> {
    if mode == Switch::Off {
        return Ok(false);
    }
    match enter(plan) {
        Ok(()) => {
            report.info(format!(
                "mask: {} paths masked",
                plan.ops
                    .iter()
                    .filter(|op| !matches!(op, MountOp::Writable { .. } | MountOp::Reveal { .. }))
                    .count()
            ));
            Ok(true)
        }
        Err(r) if mode == Switch::Auto && !r.in_place => {
            report.warn(format!(
                "cannot mask the real credentials ({}); running isolated by environment only; {}",
                r.reason(),
                r.fix()
            ));
            Ok(false)
        }
        Err(r) => Err(r.into_error()),
    }
}

/// Applies the plan and moves this process into the result. On error, this process is
/// as it was (the work happens in a forked helper).
///
/// # Errors
/// The step the kernel refused.
pub fn enter(plan: &Plan) -> Result<(), Refusal> {
    if !nix::unistd::geteuid().is_root() && in_place_is_safe() {
        return enter_in_place(plan);
    }
    run(plan, true)
}

/// Whether an unprivileged launch may build the namespace in this very process, without
/// the forked helper (the helper's fork and hand-off are most of the mask's cost).
/// Everything that refuses a user namespace outright (the sysctl limit, seccomp,
/// `RestrictNamespaces=`) refuses `unshare` itself, which leaves this process as it was.
/// The one known refusal that comes *after* a successful `unshare` — Ubuntu's AppArmor
/// restriction, where the new namespace has no capabilities and the id maps cannot be
/// written — would leave this process in an unusable namespace: there, the helper is
/// used.
fn in_place_is_safe() -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        Ok(v) => v.trim() == "0",
        Err(_) => true,
    }
}

/// The helper's work done here (unprivileged only). A refusal at `unshare` leaves this
/// process unchanged; a refusal after it is marked [`Step::InPlace`]: the process is then
/// in a namespace it cannot leave, so the launch must stop (125) even under `auto`.
fn enter_in_place(plan: &Plan) -> Result<(), Refusal> {
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    // The id maps are written through /proc/self, whose files are root's while this
    // process is not dumpable: dumpable for those few writes only. (A same-user process
    // that could ptrace us in that window could read the token file anyway.)
    let _ = nix::sys::prctl::set_dumpable(true);
    let result = match nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        Err(e) => Err((Step::Unshare, e, false)),
        Ok(()) => build(plan, false, uid, gid, true).map_err(|(step, e)| (step, e, true)),
    };
    crate::sys::set_non_dumpable();
    result.map_err(|(step, errno, in_place)| Refusal {
        step,
        errno,
        path: match step {
            Step::Mount(i) => plan.ops.get(i).map(|op| op.path().to_owned()),
            _ => None,
        },
        in_place,
    })
}

/// Whether the plan can be applied here: the same work in a forked helper, which this
/// process does not join (for `--dry-run` and `doctor`).
///
/// # Errors
/// The step the kernel refused.
pub fn probe(plan: &Plan) -> Result<(), Refusal> {
    run(plan, false)
}

fn refusal(step: Step, errno: Errno) -> Refusal {
    Refusal {
        step,
        errno,
        path: None,
        in_place: false,
    }
}

/// A message from the helper: 0 = ready, else the step (1-based code), errno, index.
const MSG_LEN: usize = 12;

fn encode(r: std::result::Result<(), (Step, Errno)>) -> [u8; MSG_LEN] {
    let (code, errno, index): (u32, i32, u32) = match r {
        Ok(()) => (0, 0, 0),
        Err((step, e)) => {
            let (code, index) = match step {
                Step::Fork => (1, 0),
                Step::Unshare => (2, 0),
                Step::Setgroups => (3, 0),
                Step::UidMap => (4, 0),
                Step::GidMap => (5, 0),
                Step::Private => (6, 0),
                Step::Staging => (7, 0),
                Step::Mount(i) => (8, u32::try_from(i).unwrap_or(u32::MAX)),
                Step::Lock => (9, 0),
                Step::Join => (10, 0),
                Step::Helper => (11, 0),
                Step::Proc => (12, 0),
            };
            (code, e as i32, index)
        }
    };
    let mut out = [0u8; MSG_LEN];
    out[..4].copy_from_slice(&code.to_ne_bytes());
    out[4..8].copy_from_slice(&errno.to_ne_bytes());
    out[8..].copy_from_slice(&index.to_ne_bytes());
    out
}

fn decode(msg: &[u8; MSG_LEN], plan: &Plan) -> Result<(), Refusal> {
    let word = |i: usize| u32::from_ne_bytes(msg[i..i + 4].try_into().expect("4 bytes"));
    let errno = Errno::from_raw(i32::from_ne_bytes(msg[4..8].try_into().expect("4 bytes")));
    let index = word(8) as usize;
    let step = match word(0) {
        0 => return Ok(()),
        1 => Step::Fork,
        2 => Step::Unshare,
        3 => Step::Setgroups,
        4 => Step::UidMap,
        5 => Step::GidMap,
        6 => Step::Private,
        7 => Step::Staging,
        8 => Step::Mount(index),
        9 => Step::Lock,
        10 => Step::Join,
        12 => Step::Proc,
        _ => Step::Helper,
    };
    Err(Refusal {
        step,
        errno,
        path: match step {
            Step::Mount(i) => plan.ops.get(i).map(|op| op.path().to_owned()),
            _ => None,
        },
        in_place: false,
    })
}

fn run(plan: &Plan, join: bool) -> Result<(), Refusal> {
    let root = nix::unistd::geteuid().is_root();
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let (report_r, report_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| refusal(Step::Fork, e))?;
    let (release_r, release_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| refusal(Step::Fork, e))?;
    let child = match crate::sys::fork().map_err(|e| refusal(Step::Fork, e))? {
        ForkResult::Child => {
            drop(report_r);
            drop(release_w);
            let result = helper(plan, root, uid, gid);
            let ok = result.is_ok();
            let _ = nix::unistd::write(&report_w, &encode(result));
            if ok {
                // Keep the namespaces alive until the parent has joined them (or the
                // parent died: EOF either way).
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&release_r, &mut b);
            }
            crate::sys::exit_now(i32::from(!ok))
        }
        ForkResult::Parent { child } => child,
    };
    drop(report_w);
    drop(release_r);
    let result = parent(plan, child, root, join, &report_r);
    drop(release_w);
    let _ = nix::sys::wait::waitpid(child, None);
    result
}

/// This process's side: wait for the helper, then (root) map its namespace's ids and
/// (`join`) enter its namespaces.
fn parent(
    plan: &Plan,
    child: Pid,
    root: bool,
    join: bool,
    report: &OwnedFd,
) -> Result<(), Refusal> {
    let mut msg = [0u8; MSG_LEN];
    let mut got = 0;
    while got < MSG_LEN {
        match nix::unistd::read(report, &mut msg[got..]) {
            Ok(0) => return Err(refusal(Step::Helper, Errno::EPIPE)),
            Ok(n) => got += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(refusal(Step::Helper, e)),
        }
    }
    decode(&msg, plan)?;
    let proc_dir = PathBuf::from(format!("/proc/{child}"));
    if root {
        // Every id we have maps to itself: root stays root for files, other users stay
        // who they are (the helper, inside the new namespace, could map only itself).
        for (file, step) in [("uid_map", Step::UidMap), ("gid_map", Step::GidMap)] {
            let own = std::fs::read_to_string(Path::new("/proc/self").join(file))
                .map_err(|e| refusal(step, io_errno(&e)))?;
            std::fs::write(proc_dir.join(file), identity_map(&own))
                .map_err(|e| refusal(step, io_errno(&e)))?;
        }
    }
    if !join {
        return Ok(());
    }
    let open_ns = |name: &str| {
        nix::fcntl::open(
            &proc_dir.join("ns").join(name),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| refusal(Step::Join, e))
    };
    let user = open_ns("user")?;
    let mnt = open_ns("mnt")?;
    nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER).map_err(|e| refusal(Step::Join, e))?;
    nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(|e| refusal(Step::Join, e))?;
    Ok(())
}

/// The identity map of every id this namespace has, from its own `uid_map`/`gid_map`
/// (`inside outside count` lines): `inside inside count` each. In the initial namespace
/// that is `0 0 4294967295`; under `unshare -r` it is `0 0 1`.
fn identity_map(own: &str) -> String {
    own.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| format!("{} {} {}\n", f[0], f[0], f[2]))
        })
        .collect()
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

/// The helper's side, in the forked child: build the namespace and the masks.
fn helper(
    plan: &Plan,
    root: bool,
    uid_raw: u32,
    gid_raw: u32,
) -> std::result::Result<(), (Step, Errno)> {
    if root {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| (Step::Unshare, e))?;
    } else {
        // Our /proc files are root's while we are not dumpable, and the maps below are
        // written through them. The helper holds no secret the user's own processes
        // could not read anyway (they can read the env file).
        let _ = nix::sys::prctl::set_dumpable(true);
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| (Step::Unshare, e))?;
    }
    build(plan, root, uid_raw, gid_raw, !root)
}

/// Everything after `unshare`: (unprivileged, `maps`) the id maps, `/` private, the
/// staging tmpfs, every mount of the plan, and (root) the nested namespace that locks
/// them.
fn build(
    plan: &Plan,
    root: bool,
    uid_raw: u32,
    gid_raw: u32,
    maps: bool,
) -> std::result::Result<(), (Step, Errno)> {
    if maps {
        write_proc("/proc/self/setgroups", "deny").map_err(|e| (Step::Setgroups, e))?;
        write_proc("/proc/self/uid_map", &format!("{uid_raw} {uid_raw} 1"))
            .map_err(|e| (Step::UidMap, e))?;
        write_proc("/proc/self/gid_map", &format!("{gid_raw} {gid_raw} 1"))
            .map_err(|e| (Step::GidMap, e))?;
    }
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| (Step::Private, e))?;

    // Where the scratch home and the working directory really are, before any mount
    // covers them.
    let mut keep: Vec<Option<OwnedFd>> = Vec::with_capacity(plan.ops.len());
    for (i, op) in plan.ops.iter().enumerate() {
        keep.push(match op {
            MountOp::Writable { path } | MountOp::Reveal { path } => Some(
                nix::fcntl::open(
                    path,
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| (Step::Mount(i), e))?,
            ),
            _ => None,
        });
    }

    let staging = plan.staging.as_ref().filter(|_| {
        plan.ops
            .iter()
            .any(|op| matches!(op, MountOp::Empty { .. }))
    });
    let staged = match staging {
        Some(dir) => Some(stage(dir, &plan.ops).map_err(|e| (Step::Staging, e))?),
        None => None,
    };
    for (i, op) in plan.ops.iter().enumerate() {
        apply(op, staged.as_ref(), keep[i].as_ref()).map_err(|e| (Step::Mount(i), e))?;
    }
    if let Some(dir) = staging {
        nix::mount::umount2(dir, MntFlags::MNT_DETACH).map_err(|e| (Step::Staging, e))?;
    }
    if root {
        // Root keeps its capabilities after execve: lock the masks by moving into a
        // less privileged namespace (the parent writes its id maps).
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .map_err(|e| (Step::Lock, e))?;
    }
    Ok(())
}

fn write_proc(path: &str, text: &str) -> nix::Result<()> {
    std::fs::write(path, text).map_err(|e| io_errno(&e))
}

/// The empty sources: a small tmpfs at `dir` holding an empty file and an empty
/// directory, then made read-only as a whole. A hidden directory with something shown
/// again inside gets its own empty directory, holding the mount points for it.
struct Staged {
    file: PathBuf,
    dir: PathBuf,
    /// (hidden directory, its own empty directory with mount points).
    with_points: Vec<(PathBuf, PathBuf)>,
}

impl Staged {
    fn dir_for(&self, hidden: &Path) -> &Path {
        self.with_points
            .iter()
            .find(|(h, _)| h == hidden)
            .map_or(self.dir.as_path(), |(_, d)| d.as_path())
    }
}

fn stage(dir: &Path, ops: &[MountOp]) -> nix::Result<Staged> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // Each revealed directory needs its mount point (and the directories leading to it)
    // in the empty directory standing in for the hidden one.
    let mut points: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for op in ops {
        let MountOp::Reveal { path } = op else {
            continue;
        };
        let Some(hidden) = ops.iter().find_map(|o| match o {
            MountOp::Empty {
                path: h,
                kind: Kind::Dir,
            } if path.starts_with(h) => Some(h),
            _ => None,
        }) else {
            continue;
        };
        let rel = path.strip_prefix(hidden).map_err(|_| Errno::EINVAL)?;
        match points.iter_mut().find(|(h, _)| h == hidden) {
            Some((_, v)) => v.push(rel.to_owned()),
            None => points.push((hidden.clone(), vec![rel.to_owned()])),
        }
    }
    let inodes = 8 + points
        .iter()
        .flat_map(|(_, v)| v.iter())
        .map(|rel| rel.components().count() + 1)
        .sum::<usize>();
    nix::mount::mount(
        Some("claude-iso-mask"),
        dir,
        Some("tmpfs"),
        flags,
        Some(format!("mode=0755,size=16k,nr_inodes={inodes}").as_str()),
    )?;
    let mut with_points = Vec::new();
    let mut made = Vec::new();
    for (i, (hidden, rels)) in points.iter().enumerate() {
        let base = dir.join(format!("empty.{i}.d"));
        nix::unistd::mkdir(&base, Mode::from_bits_truncate(0o700))?;
        made.push(base.clone());
        for rel in rels {
            let mut at = base.clone();
            for c in rel.components() {
                at.push(c);
                if !made.contains(&at) {
                    nix::unistd::mkdir(&at, Mode::from_bits_truncate(0o700))?;
                    made.push(at.clone());
                }
            }
        }
        with_points.push((hidden.clone(), base));
    }
    // Deepest first, so that each is still writable while its entries are made.
    for d in made.iter().rev() {
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            d,
            Mode::from_bits_truncate(0o555),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    let file = dir.join("empty");
    let empty_dir = dir.join("empty.d");
    let fd = nix::fcntl::open(
        &file,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o444),
    )?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o444))?;
    drop(fd);
    nix::unistd::mkdir(&empty_dir, Mode::from_bits_truncate(0o555))?;
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &empty_dir,
        Mode::from_bits_truncate(0o555),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    nix::mount::mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | flags,
        None::<&str>,
    )?;
    Ok(Staged {
        file,
        dir: empty_dir,
        with_points,
    })
}

fn apply(op: &MountOp, staged: Option<&Staged>, keep: Option<&OwnedFd>) -> nix::Result<()> {
    let bind = |source: &Path, target: &Path, rec: bool| {
        let mut flags = MsFlags::MS_BIND;
        if rec {
            flags |= MsFlags::MS_REC;
        }
        nix::mount::mount(Some(source), target, None::<&str>, flags, None::<&str>)
    };
    match op {
        MountOp::ReadOnly { path, kind } => {
            bind(path, path, *kind == Kind::Dir)?;
            remount_read_only(path)
        }
        MountOp::Writable { path } => {
            let fd = keep.ok_or(Errno::EBADF)?;
            let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            bind(&source, path, true)
        }
        MountOp::Empty { path, kind } => {
            let staged = staged.ok_or(Errno::ENOENT)?;
            let source = match kind {
                Kind::File => staged.file.as_path(),
                Kind::Dir => staged.dir_for(path),
            };
            bind(source, path, false)?;
            remount_read_only(path)
        }
        MountOp::Reveal { path } => {
            let fd = keep.ok_or(Errno::EBADF)?;
            let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            bind(&source, path, true)?;
            remount_read_only(path)
        }
        MountOp::View {
            path,
            cover,
            only,
            read_only,
        } => view(path, cover, only.as_deref(), read_only),
    }
}

/// Applies a [`MountOp::View`]: lists the directory (as it is now: through the views
/// made before it), covers it with a small tmpfs, binds each entry back from the real
/// directory through a descriptor opened before, and makes the tmpfs read-only. A
/// directory that does not exist (any more) needs no view.
fn view(
    path: &Path,
    cover: &[(OsString, Option<Kind>)],
    only: Option<&[OsString]>,
    read_only: &[OsString],
) -> nix::Result<()> {
    use nix::sys::stat::SFlag;
    let owned = match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    ) {
        Ok(d) => d,
        // Gone since the plan, or not listable: the masks on its entries still apply.
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::EACCES) => return Ok(()),
        Err(e) => return Err(e),
    };
    let st = nix::sys::stat::fstat(&owned)?;
    let fd = owned.as_raw_fd();
    let mut dir = nix::dir::Dir::from_fd(nix::unistd::dup(&owned)?)?;
    let mut entries: Vec<(OsString, Option<nix::dir::Type>)> = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_owned();
        if name == "." || name == ".." {
            continue;
        }
        if only.is_some_and(|o| !o.contains(&name)) || cover.iter().any(|(n, _)| *n == name) {
            continue;
        }
        entries.push((name, e.file_type()));
    }
    let inodes = entries.len() + cover.len() + 8;
    let options = format!("mode={:o},size=64k,nr_inodes={inodes}", st.st_mode & 0o7777);
    let tmpfs = |data: &str| {
        nix::mount::mount(
            Some("claude-iso-view"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data),
        )
    };
    // The real directory's owner, where this namespace maps it (a directory of root's
    // seen from a user namespace is not): else the tmpfs is this process's.
    match tmpfs(&format!("{options},uid={},gid={}", st.st_uid, st.st_gid)) {
        Err(Errno::EINVAL) => tmpfs(&options)?,
        other => other?,
    }
    let at = |name: &std::ffi::OsStr| path.join(name);
    for (name, kind) in cover {
        match kind {
            Some(Kind::Dir) => nix::unistd::mkdir(&at(name), Mode::from_bits_truncate(0o555))?,
            Some(Kind::File) => drop(nix::fcntl::open(
                &at(name),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o444),
            )?),
            None => {}
        }
    }
    for (name, kind) in entries {
        let kind = match kind {
            Some(k) => k,
            None => {
                // Gone since the listing: nothing to show.
                let Ok(st) = nix::sys::stat::fstatat(
                    &owned,
                    name.as_os_str(),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ) else {
                    continue;
                };
                match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
                    SFlag::S_IFDIR => nix::dir::Type::Directory,
                    SFlag::S_IFLNK => nix::dir::Type::Symlink,
                    _ => nix::dir::Type::File,
                }
            }
        };
        let target = at(&name);
        match kind {
            nix::dir::Type::Symlink => {
                let Ok(to) = nix::fcntl::readlinkat(&owned, name.as_os_str()) else {
                    continue;
                };
                nix::unistd::symlinkat(to.as_os_str(), nix::fcntl::AT_FDCWD, &target)?;
                continue;
            }
            nix::dir::Type::Directory => {
                nix::unistd::mkdir(&target, Mode::from_bits_truncate(0o700))?;
            }
            _ => drop(nix::fcntl::open(
                &target,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?),
        }
        let mut source = PathBuf::from(format!("/proc/self/fd/{fd}"));
        source.push(&name);
        // An entry that cannot be bound back (another user's FUSE mount, one removed
        // meanwhile) stays an empty placeholder: the mask itself does not fail for it
        // (which, after `unshare` in place, would stop the launch after the home is made).
        if nix::mount::mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .is_ok()
            && read_only.contains(&name)
        {
            remount_read_only(&target)?;
        }
    }
    remount_read_only(path)
}

/// `MS_REMOUNT|MS_BIND|MS_RDONLY`, keeping the flags the mount already has: in a user
/// namespace, flags inherited from outside (nosuid, nodev, noexec, atime) are locked
/// and a remount that would clear them fails.
fn remount_read_only(path: &Path) -> nix::Result<()> {
    let have = nix::sys::statvfs::statvfs(path)?.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// The plan's lines for `--dry-run` and `doctor`.
#[must_use]
pub fn describe(plan: &Plan) -> Vec<String> {
    plan.ops.iter().map(MountOp::describe).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake filesystem: path → (where it leads, kind).
    struct Fs(BTreeMap<PathBuf, (PathBuf, Kind)>);

    impl Fs {
        fn new(entries: &[(&str, Kind)]) -> Fs {
            let mut m = BTreeMap::new();
            for (p, k) in entries {
                m.insert(PathBuf::from(p), (PathBuf::from(p), *k));
            }
            for d in ["/var/tmp", "/tmp"] {
                m.insert(PathBuf::from(d), (PathBuf::from(d), Kind::Dir));
            }
            Fs(m)
        }
        fn link(mut self, from: &str, to: &str) -> Fs {
            let target = self.0[Path::new(to)].clone();
            self.0.insert(PathBuf::from(from), target);
            self
        }
        fn dir(mut self, p: &str) -> Fs {
            self.0
                .insert(PathBuf::from(p), (PathBuf::from(p), Kind::Dir));
            self
        }
        fn plan(&self, s: &Sources) -> Result<Plan> {
            plan(s, &|p: &Path| self.0.get(p).cloned())
        }
    }

    fn sources() -> Sources {
        Sources {
            config_dirs: vec!["/home/u/.claude".into(), "/cfg".into()],
            claude_jsons: vec!["/home/u/.claude.json".into()],
            profile_stores: vec!["/home/u/.config/anthropic".into(), "/xdg/anthropic".into()],
            files: vec![
                "/home/u/.config/claude-iso/token.env".into(),
                "/etc/token.env".into(),
                "/home/claude/.claude/remote/.api_key".into(),
            ],
            token_dirs: vec!["/home/u/.config/claude-iso".into()],
            reveal: vec![],
            writable: vec!["/scratch".into(), "/work".into()],
            shared: vec![],
            home: "/scratch".into(),
            state_dir: None,
            broker_dirs: vec![],
            home_may_quarantine: false,
        }
    }

    use Kind::{Dir, File};

    fn ro(p: &str, kind: Kind) -> MountOp {
        MountOp::ReadOnly {
            path: p.into(),
            kind,
        }
    }
    fn empty(p: &str, kind: Kind) -> MountOp {
        MountOp::Empty {
            path: p.into(),
            kind,
        }
    }

    #[test]
    fn masks_what_exists_in_order() {
        let fs = Fs::new(&[
            ("/home/u/.claude", Dir),
            ("/home/u/.claude/.credentials.json", File),
            ("/home/u/.claude/.device-keys.json", File),
            ("/home/u/.claude.json", File),
            ("/home/u/.config/anthropic", Dir),
            ("/home/u/.config/claude-iso/token.env", File),
            ("/home/claude/.claude/remote/.api_key", File),
            ("/scratch", Dir),
            ("/work", Dir),
        ]);
        let p = fs.plan(&sources()).unwrap();
        assert_eq!(
            p.ops,
            vec![
                ro("/home/u/.claude.json", File),
                empty("/home/u/.claude", Dir),
                empty("/home/u/.config/anthropic", Dir),
                empty("/home/claude/.claude/remote/.api_key", File),
                empty("/home/u/.config/claude-iso/token.env", File),
            ]
        );
        assert_eq!(p.staging.as_deref(), Some(Path::new("/var/tmp")));
        assert_eq!(p.emptied().count(), 4);
    }

    #[test]
    fn a_launch_from_the_root_directory_still_has_a_staging_directory() {
        // cron, `docker exec` and systemd units without WorkingDirectory= start in `/`.
        let fs = Fs::new(&[
            ("/", Dir),
            ("/home/u/.claude", Dir),
            ("/home/u/.config/claude-iso/token.env", File),
            ("/scratch", Dir),
        ]);
        let mut s = sources();
        s.writable = vec!["/scratch".into(), "/".into()];
        let p = fs.plan(&s).unwrap();
        assert_eq!(p.staging.as_deref(), Some(Path::new("/var/tmp")));
        assert!(p.ops.contains(&empty("/home/u/.claude", Dir)));
    }

    #[test]
    fn nothing_exists_nothing_masked() {
        let p = Fs::new(&[("/scratch", Dir), ("/work", Dir)])
            .plan(&sources())
            .unwrap();
        assert_eq!(p.ops, vec![]);
        assert_eq!(p.staging, None);
    }

    #[test]
    fn symlinks_are_masked_where_they_lead_once() {
        let fs = Fs::new(&[
            ("/home/u/.claude", Dir),
            ("/shared/creds.json", File),
            ("/scratch", Dir),
            ("/work", Dir),
        ])
        .link("/home/u/.claude/.credentials.json", "/shared/creds.json");
        let p = fs.plan(&sources()).unwrap();
        assert_eq!(
            p.ops,
            vec![
                empty("/home/u/.claude", Dir),
                empty("/shared/creds.json", File)
            ]
        );
        // Where the working directory is inside, the dir stays hidden, the working
        // directory is shown again, and the link's target is emptied once.
        let mut s = sources();
        s.writable = vec!["/home/u/.claude/projects".into()];
        let fs = fs.dir("/home/u/.claude/projects");
        assert_eq!(
            fs.plan(&s).unwrap().ops,
            vec![
                empty("/home/u/.claude", Dir),
                MountOp::Reveal {
                    path: "/home/u/.claude/projects".into()
                },
                MountOp::Writable {
                    path: "/home/u/.claude/projects".into()
                },
                empty("/shared/creds.json", File)
            ]
        );
    }

    #[test]
    fn working_directory_inside_a_config_dir_stays_writable() {
        let mut s = sources();
        s.writable = vec!["/scratch".into(), "/home/u/.claude/projects/x".into()];
        let fs = Fs::new(&[
            ("/home/u/.claude", Dir),
            ("/home/u/.claude/.credentials.json", File),
            ("/home/u/.claude/projects/x", Dir),
            ("/scratch", Dir),
        ]);
        // The config dir stays hidden (its credential files with it: a file's own mask
        // would be lifted by a rename outside, as a claude refreshing its token does);
        // the top-level directory holding the working directory is shown again
        // read-only, the working directory writable.
        let p = fs.plan(&s).unwrap();
        assert_eq!(
            p.ops,
            vec![
                empty("/home/u/.claude", Dir),
                MountOp::Reveal {
                    path: "/home/u/.claude/projects".into()
                },
                MountOp::Writable {
                    path: "/home/u/.claude/projects/x".into()
                },
            ]
        );
        // The config dir itself as the working directory: read-only all the same (a
        // credential file must not be creatable in it), credentials emptied.
        s.writable = vec!["/scratch".into(), "/home/u/.claude".into()];
        let p = fs.plan(&s).unwrap();
        assert_eq!(
            p.ops,
            vec![
                ro("/home/u/.claude", Dir),
                empty("/home/u/.claude/.credentials.json", File)
            ]
        );
    }

    #[test]
    fn a_working_directory_inside_the_profile_store_is_refused() {
        let mut s = sources();
        s.writable = vec!["/home/u/.config/anthropic/x".into()];
        let fs = Fs::new(&[
            ("/home/u/.config/anthropic", Dir),
            ("/home/u/.config/anthropic/x", Dir),
        ]);
        let e = fs.plan(&s).unwrap_err();
        assert!(matches!(e, Error::MaskPlace { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("/home/u/.config/anthropic") && e.contains("--mask off"),
            "{e}"
        );
    }

    #[test]
    fn claude_iso_token_directories_are_hidden_whole() {
        // A single file's mask is detached by the kernel when the file is replaced by
        // rename outside (as `token set` does); a hidden directory's is not.
        let fs = Fs::new(&[
            ("/home/u/.config/claude-iso", Dir),
            ("/home/u/.config/claude-iso/token.env", File),
            ("/etc/token.env", File),
        ]);
        assert_eq!(
            fs.plan(&sources()).unwrap().ops,
            vec![
                empty("/home/u/.config/claude-iso", Dir),
                empty("/etc/token.env", File)
            ]
        );
    }

    #[test]
    fn path_entries_inside_a_hidden_dir_are_shown_again_read_only() {
        let mut s = sources();
        s.reveal = vec![
            // npm's layout: the whole top-level directory is shown.
            "/home/u/.claude/local/node_modules/.bin".into(),
            "/home/u/.claude/local/bin".into(),
            // The hidden directory itself, one outside, a missing one: never.
            "/home/u/.claude".into(),
            "/usr/bin".into(),
            "/home/u/.claude/missing".into(),
            // Inside a hidden store that is not a config dir: never.
            "/home/u/.config/anthropic/credentials".into(),
        ];
        let fs = Fs::new(&[
            ("/home/u/.claude", Dir),
            ("/home/u/.claude/.credentials.json", File),
            ("/home/u/.claude/local", Dir),
            ("/home/u/.claude/local/bin", Dir),
            ("/home/u/.claude/local/node_modules/.bin", Dir),
            ("/home/u/.config/anthropic", Dir),
            ("/home/u/.config/anthropic/credentials", Dir),
            ("/usr/bin", Dir),
        ]);
        assert_eq!(
            fs.plan(&s).unwrap().ops,
            vec![
                empty("/home/u/.claude", Dir),
                empty("/home/u/.config/anthropic", Dir),
                MountOp::Reveal {
                    path: "/home/u/.claude/local".into()
                },
            ]
        );
        // A directory that holds a masked path is not shown (nor anything in it).
        s.config_dirs.push("/home/u/.claude/local/cfg".into());
        let fs = fs.dir("/home/u/.claude/local/cfg");
        let ops = fs.plan(&s).unwrap().ops;
        assert!(
            !ops.iter().any(|o| matches!(o, MountOp::Reveal { .. })),
            "{ops:?}"
        );
    }

    #[test]
    fn what_lies_under_a_hidden_dir_counts_when_showing_one_again() {
        // The fixed files lie in the real home's config dir when that home is
        // /home/claude: a PATH entry there must not bring them back.
        let mut s = sources();
        s.config_dirs = vec!["/home/claude/.claude".into()];
        s.reveal = vec!["/home/claude/.claude/remote".into()];
        let fs = Fs::new(&[
            ("/home/claude/.claude", Dir),
            ("/home/claude/.claude/remote", Dir),
            ("/home/claude/.claude/remote/.api_key", File),
        ]);
        assert_eq!(
            fs.plan(&s).unwrap().ops,
            vec![empty("/home/claude/.claude", Dir)]
        );
    }

    #[test]
    fn a_hidden_dir_inside_another_is_hidden_once() {
        let mut s = sources();
        s.config_dirs.push("/home/u/.claude/sub".into());
        let fs = Fs::new(&[("/home/u/.claude", Dir), ("/home/u/.claude/sub", Dir)]);
        assert_eq!(
            fs.plan(&s).unwrap().ops,
            vec![empty("/home/u/.claude", Dir)]
        );
    }

    #[test]
    fn staging_avoids_every_masked_path() {
        // Mount targets in /var/tmp and /tmp: the staging tmpfs goes elsewhere. A
        // writable path inside a candidate does not rule it out (the tmpfs is detached
        // once the masks are made).
        let mut s = sources();
        s.files = vec!["/var/tmp/t/token.env".into(), "/tmp/u/token.env".into()];
        s.writable = vec!["/mnt/w".into()];
        let fs = Fs::new(&[
            ("/var/tmp/t/token.env", File),
            ("/tmp/u/token.env", File),
            ("/mnt/w", Dir),
            ("/mnt", Dir),
        ]);
        let p = fs.plan(&s).unwrap();
        assert_eq!(p.staging.as_deref(), Some(Path::new("/mnt")));
        let fs = Fs::new(&[
            ("/var/tmp/t/token.env", File),
            ("/tmp/u/token.env", File),
            ("/mnt/w", Dir),
        ]);
        assert!(fs.plan(&s).unwrap_err().to_string().contains("stage"));
    }

    #[test]
    fn files_inside_a_hidden_dir_are_not_masked_twice() {
        let mut s = sources();
        s.files = vec!["/xdg/anthropic/credentials/default.json".into()];
        let fs = Fs::new(&[
            ("/xdg/anthropic", Dir),
            ("/xdg/anthropic/credentials/default.json", File),
        ]);
        assert_eq!(fs.plan(&s).unwrap().ops, vec![empty("/xdg/anthropic", Dir)]);
    }

    #[test]
    fn share_limits_cover_every_source() {
        let mut s = sources();
        s.config_dirs.push("/etc/secure".into());
        let fs = Fs::new(&[
            ("/home/u/.claude", Dir),
            ("/dotfiles/claude", Dir),
            ("/cfg", Dir),
            ("/shared/creds.json", File),
        ])
        .link("/home/u/.claude", "/dotfiles/claude")
        .link("/home/u/.claude/.credentials.json", "/shared/creds.json");
        let l = limits(&s, &["/home/u/.claude".into()], &|p: &Path| {
            fs.0.get(p).cloned()
        });
        let never: Vec<&Path> = l.never.iter().map(|(p, _)| p.as_path()).collect();
        // The home's own ~/.claude, as given and where it leads: hidden, not never.
        assert_eq!(
            l.hidden,
            vec![PathBuf::from("/dotfiles/claude"), "/home/u/.claude".into()]
        );
        for p in [
            "/cfg",
            "/etc/secure",
            "/home/u/.claude/.credentials.json",
            "/shared/creds.json",
            "/cfg/.device-keys.json",
            "/home/u/.claude.json",
            "/home/u/.config/anthropic",
            "/xdg/anthropic",
            "/home/u/.config/claude-iso/token.env",
            "/etc/token.env",
            "/home/claude/.claude/remote/.api_key",
            "/home/claude/.claude/remote",
        ] {
            assert!(never.contains(&Path::new(p)), "{p} missing: {never:?}");
        }
        assert!(!never.contains(&Path::new("/home/u/.claude")));
        // CLAUDE_CONFIG_DIR naming the home's own ~/.claude (through a symlink too)
        // stays shareable by name.
        s.config_dirs.push("/dotfiles/claude".into());
        let l2 = limits(&s, &["/home/u/.claude".into()], &|p: &Path| {
            fs.0.get(p).cloned()
        });
        assert!(
            !l2.never
                .iter()
                .any(|(p, _)| p == Path::new("/dotfiles/claude"))
        );
    }

    #[test]
    fn views_cover_the_directories_holding_hidden_places_and_the_state_directory() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let home = root.join("home");
        let state = home.join(".local/state/claude-iso");
        let own = state.join("homes/a");
        for d in [
            home.join(".claude"),
            home.join(".config/claude-iso"),
            own.clone(),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(home.join(".claude.json"), "{}").unwrap();
        // A sticky, world-writable directory (as /tmp) is never viewed.
        let shared = root.join("shared");
        std::fs::create_dir_all(shared.join("cfg")).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let s = Sources {
            config_dirs: vec![home.join(".claude"), shared.join("cfg")],
            claude_jsons: vec![home.join(".claude.json")],
            profile_stores: vec![home.join(".config/anthropic")],
            token_dirs: vec![home.join(".config/claude-iso")],
            writable: vec![own.clone(), root.clone()],
            home: own.clone(),
            state_dir: Some(state.clone()),
            ..Sources::default()
        };
        let p = plan(&s, &resolve_real).unwrap();
        let views: Vec<&MountOp> = p
            .ops
            .iter()
            .filter(|o| matches!(o, MountOp::View { .. }))
            .collect();
        let view =
            |path: &Path, cover: &[(&str, Option<Kind>)], only: Option<&[&str]>, ro: &[&str]| {
                MountOp::View {
                    path: path.to_owned(),
                    cover: cover.iter().map(|(n, k)| ((*n).into(), *k)).collect(),
                    only: only.map(|o| o.iter().map(OsString::from).collect()),
                    read_only: ro.iter().map(OsString::from).collect(),
                }
            };
        assert_eq!(
            views,
            vec![
                &view(&home, &[(".claude", Some(Dir))], None, &[".claude.json"]),
                &view(
                    &home.join(".config"),
                    &[("anthropic", None), ("claude-iso", Some(Dir))],
                    None,
                    &[]
                ),
                &view(&home.join(".local/state"), &[], None, &[]),
                &view(&state, &[], Some(&["homes"]), &[]),
                &view(&state.join("homes"), &[], Some(&["a"]), &[]),
            ]
        );
        // Views come before every other op; the sticky directory's config dir is masked
        // on its own entry.
        assert!(matches!(p.ops[0], MountOp::View { .. }));
        assert!(p.ops.contains(&MountOp::Empty {
            path: shared.join("cfg"),
            kind: Dir
        }));
        // The home elsewhere: nothing of the state directory is shown.
        let s = Sources {
            writable: vec![root.join("elsewhere"), root.clone()],
            home: root.join("elsewhere"),
            ..s
        };
        let p = plan(&s, &resolve_real).unwrap();
        assert!(
            p.ops.contains(&view(&state, &[], Some(&[]), &[])),
            "{:?}",
            p.ops
        );
        // A working directory in another home: refused, naming the state directory.
        let s = Sources {
            writable: vec![root.join("elsewhere"), own],
            ..s
        };
        let e = plan(&s, &resolve_real).unwrap_err().to_string();
        assert!(
            e.contains("state directory") && e.contains("--mask off"),
            "{e}"
        );
    }

    #[test]
    fn descriptors_lead_into_a_place_inside_it_or_from_a_directory_above_it() {
        let places = vec![PathBuf::from("/h/.claude"), PathBuf::from("/s/claude-iso")];
        let allowed = vec![PathBuf::from("/s/claude-iso/homes/a")];
        let at = |t: &str, dir: bool| leads_into(Path::new(t), dir, &places, &allowed);
        assert_eq!(
            at("/h/.claude/.credentials.json", false),
            Some(Path::new("/h/.claude"))
        );
        assert_eq!(at("/h/.claude", true), Some(Path::new("/h/.claude")));
        assert_eq!(at("/h", true), Some(Path::new("/h/.claude")));
        assert_eq!(at("/", true), Some(Path::new("/h/.claude")));
        assert_eq!(
            at("/s/claude-iso/homes/b", true),
            Some(Path::new("/s/claude-iso"))
        );
        // A file above is no way in; the own home, a sibling and /dev/null are harmless.
        assert_eq!(at("/h", false), None);
        assert_eq!(at("/s/claude-iso/homes/a/x", true), None);
        assert_eq!(at("/h/.claude.bak", true), None);
        assert_eq!(at("/dev/null", false), None);
    }

    #[test]
    fn identity_maps() {
        assert_eq!(
            identity_map("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(identity_map("0 1001 1\n"), "0 0 1\n");
        assert_eq!(
            identity_map("0 100000 1000\n1000 1001 1\n"),
            "0 0 1000\n1000 1000 1\n"
        );
    }

    #[test]
    fn messages_round_trip() {
        let plan = Plan {
            ops: vec![empty("/a", File)],
            staging: None,
        };
        assert_eq!(decode(&encode(Ok(())), &plan), Ok(()));
        let r = decode(&encode(Err((Step::Mount(0), Errno::EPERM))), &plan).unwrap_err();
        assert_eq!(r.step, Step::Mount(0));
        assert_eq!(r.errno, Errno::EPERM);
        assert_eq!(r.path.as_deref(), Some(Path::new("/a")));
        let r = decode(&encode(Err((Step::Unshare, Errno::ENOSPC))), &plan).unwrap_err();
        assert!(r.reason().contains("max_user_namespaces"), "{}", r.reason());
        assert!(r.fix().contains("sysctl"));
    }
}
