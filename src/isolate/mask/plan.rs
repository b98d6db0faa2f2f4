//! The plan: what the mask hides, empties, makes read-only and shows again for this
//! caller, as a list of [`MountOp`]s, and what `--share` must never carry in. Pure but
//! for `resolve` (and the views' questions to the filesystem, see `views`).

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::sources::Sources;
use super::views::views;
use super::{FIXED_FILES, Kind, MountOp};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::isolate::share;
use crate::layout::{CLAUDE_DIR, CREDENTIALS, DEVICE_KEYS};

/// Where the empty sources are made: the first of these that no mask touches.
const STAGING: &[&str] = &[
    "/var/tmp", "/tmp", "/mnt", "/media", "/srv", "/opt", "/dev/shm", "/run", "/boot", "/usr",
    "/etc", "/var",
];

/// The computed mask: the mounts in order, and where their empty sources are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
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
    pub(crate) fn add_files(&mut self, files: Vec<PathBuf>) {
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
    /// inside them (for `check_descriptors`).
    #[must_use]
    pub(crate) fn places(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
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
    #[cfg(test)]
    pub(crate) fn emptied(&self) -> impl Iterator<Item = &Path> {
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
pub(crate) fn plan(
    sources: &Sources,
    resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
) -> Result<Plan> {
    // The scratch home may not exist yet (the plan comes before anything is made): its
    // path is then taken as given (the launcher passes the canonical one).
    let writable: Vec<PathBuf> = sources
        .writable
        .iter()
        .map(|p| resolve(p).map_or_else(|| p.clone(), |(r, _)| r))
        .collect();
    let mut places = Places::of(sources, resolve, &writable);
    places.refuse_writable_inside(&writable)?;
    // Everything masked, before what lies under a hidden directory is dropped: nothing
    // shown again may hold any of it.
    let masked_all: Vec<PathBuf> = places
        .hidden
        .iter()
        .chain(places.empty.iter())
        .chain(places.ro_files.iter())
        .cloned()
        .collect();
    let all_hidden = places.drop_nested();
    let mut reveal = places.reveals(sources, resolve, &masked_all);
    let writable_inside = places.shown_inside(&writable, &masked_all, &mut reveal)?;
    let read_only: Vec<PathBuf> = places
        .ro_files
        .iter()
        .chain(&places.ro_dirs)
        .cloned()
        .collect();
    let views = views(
        sources,
        resolve,
        &writable,
        &all_hidden,
        &places.hidden,
        &places.empty,
        &read_only,
    )?;
    let shown = Shown {
        writable: &writable,
        reveal,
        writable_inside,
    };
    let ops = places.into_ops(views, shown, &all_hidden, &sources.shared);
    let staging = staging(&ops, resolve, sources.home_may_quarantine)?;
    Ok(Plan { ops, staging })
}

fn push(v: &mut Vec<PathBuf>, p: PathBuf) {
    if !v.contains(&p) {
        v.push(p);
    }
}

/// What the sources resolve to, sorted by what the mask makes of each.
#[derive(Default)]
struct Places {
    ro_dirs: Vec<PathBuf>,
    ro_files: Vec<PathBuf>,
    hidden: Vec<PathBuf>,
    /// The config dirs among them: the only hidden directories something is shown in.
    config_hidden: Vec<PathBuf>,
    empty: Vec<PathBuf>,
}

/// What stays reachable among the masks: the scratch home and the working directory
/// (resolved), what is shown again inside a hidden config dir, and the working
/// directories inside one.
struct Shown<'a> {
    writable: &'a [PathBuf],
    reveal: Vec<PathBuf>,
    writable_inside: Vec<PathBuf>,
}

impl Places {
    fn of(
        sources: &Sources,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
        writable: &[PathBuf],
    ) -> Places {
        let mut p = Places::default();
        for dir in &sources.config_dirs {
            p.config_dir(dir, resolve, writable);
        }
        for file in &sources.claude_jsons {
            if let Some((real, Kind::File)) = resolve(file) {
                push(&mut p.ro_files, real);
            }
        }
        for dir in &sources.profile_stores {
            match resolve(dir) {
                Some((real, Kind::Dir)) => push(&mut p.hidden, real),
                Some((real, Kind::File)) => push(&mut p.empty, real),
                None => {}
            }
        }
        for file in &sources.files {
            match resolve(file) {
                Some((real, Kind::File)) => push(&mut p.empty, real),
                Some((real, Kind::Dir)) => push(&mut p.hidden, real),
                None => {}
            }
        }
        for dir in &sources.token_dirs {
            if let Some((real, Kind::Dir)) = resolve(dir) {
                push(&mut p.hidden, real);
            }
        }
        p
    }

    fn config_dir(
        &mut self,
        dir: &Path,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
        writable: &[PathBuf],
    ) {
        let Some((real, kind)) = resolve(dir) else {
            return;
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
                            push(&mut self.empty, file);
                        }
                    }
                }
                push(&mut self.config_hidden, real.clone());
                push(&mut self.hidden, real);
                return;
            }
            // It is the working directory: read-only but visible, the credential files
            // emptied (a credential file must not be creatable in it).
            Kind::Dir => push(&mut self.ro_dirs, real.clone()),
            Kind::File => {
                push(&mut self.empty, real);
                return;
            }
        }
        for name in [CREDENTIALS, DEVICE_KEYS] {
            if let Some((file, kind)) = resolve(&real.join(name)) {
                match kind {
                    Kind::File => push(&mut self.empty, file),
                    Kind::Dir => push(&mut self.hidden, file),
                }
            }
        }
    }

    /// Refuses a scratch home or working directory inside a hidden directory (but one
    /// inside a hidden config dir, not the dir itself: it is shown again).
    fn refuse_writable_inside(&self, writable: &[PathBuf]) -> Result<()> {
        for w in writable {
            let shown = |h: &&PathBuf| self.config_hidden.contains(*h) && w != *h;
            if let Some(h) = self.hidden.iter().find(|h| w.starts_with(h) && !shown(h)) {
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
        Ok(())
    }

    /// Drops what lies under a hidden directory (hidden with it); returns every hidden
    /// directory as it was.
    fn drop_nested(&mut self) -> Vec<PathBuf> {
        let hidden = &self.hidden;
        self.empty
            .retain(|f| !hidden.iter().any(|h| f.starts_with(h) && f != h));
        self.ro_files
            .retain(|f| !hidden.iter().any(|h| f.starts_with(h)));
        let all_hidden = self.hidden.clone();
        self.hidden
            .retain(|d| !all_hidden.iter().any(|h| d.starts_with(h) && d != h));
        let hidden = &self.hidden;
        self.config_hidden.retain(|d| hidden.contains(d));
        all_hidden
    }

    /// The top-level directory of a hidden config dir holding `path`, and whether it
    /// clashes with something masked (holds it, or lies in it).
    fn top_in_config(
        &self,
        path: &Path,
        masked_all: &[PathBuf],
    ) -> Option<(PathBuf, Option<PathBuf>)> {
        let top = self.config_hidden.iter().find_map(|h| {
            let first = path.strip_prefix(h).ok()?.components().next()?;
            Some(h.join(first))
        })?;
        let clash = masked_all
            .iter()
            .find(|m| {
                m.starts_with(&top) || (top.starts_with(m) && !self.config_hidden.contains(m))
            })
            .cloned();
        Some((top, clash))
    }

    /// What the command may need from inside a hidden config dir (a `PATH` entry, the
    /// command's own directory, where it leads): the top-level directory of the config
    /// dir holding it (`~/.claude/local` for npm's `~/.claude/local/node_modules/.bin`),
    /// shown again read-only — never the config dir itself, nor one that holds or lies in
    /// anything masked.
    fn reveals(
        &self,
        sources: &Sources,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
        masked_all: &[PathBuf],
    ) -> Vec<PathBuf> {
        let mut reveal: Vec<PathBuf> = Vec::new();
        for dir in sources
            .reveal
            .iter()
            .filter(|_| !self.config_hidden.is_empty())
        {
            let Some((real, Kind::Dir)) = resolve(dir) else {
                continue;
            };
            if let Some((top, None)) = self.top_in_config(&real, masked_all) {
                if !reveal.contains(&top) {
                    reveal.push(top);
                }
            }
        }
        reveal
    }

    /// A working directory inside a hidden config dir: its top-level directory there
    /// shown again read-only (added to `reveal`), the working directory itself writable
    /// (returned).
    fn shown_inside(
        &self,
        writable: &[PathBuf],
        masked_all: &[PathBuf],
        reveal: &mut Vec<PathBuf>,
    ) -> Result<Vec<PathBuf>> {
        let mut writable_inside: Vec<PathBuf> = Vec::new();
        for w in writable {
            let Some((top, clash)) = self.top_in_config(w, masked_all) else {
                continue;
            };
            if let Some(m) = clash {
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
        Ok(writable_inside)
    }

    /// The mounts in the order they are applied: the views, the read-only config dirs
    /// with what stays writable in them, `~/.claude.json`, the hidden directories with
    /// what is shown again inside, the emptied files, and the shared copies last.
    fn into_ops(
        mut self,
        views: Vec<MountOp>,
        mut shown: Shown<'_>,
        all_hidden: &[PathBuf],
        shared: &[(PathBuf, Kind)],
    ) -> Vec<MountOp> {
        shown.reveal.sort();
        self.ro_dirs.sort();
        self.ro_files.sort();
        self.hidden.sort();
        self.empty.sort();
        let mut ops: Vec<MountOp> = views;
        ops.extend(self.ro_dirs.iter().map(|p| MountOp::ReadOnly {
            path: p.clone(),
            kind: Kind::Dir,
        }));
        let mut keep: Vec<&PathBuf> = shown
            .writable
            .iter()
            .filter(|w| self.ro_dirs.iter().any(|d| w.starts_with(d) && *w != d))
            .collect();
        keep.sort();
        keep.dedup();
        ops.extend(
            keep.into_iter()
                .map(|p| MountOp::Writable { path: p.clone() }),
        );
        ops.extend(self.ro_files.into_iter().map(|path| MountOp::ReadOnly {
            path,
            kind: Kind::File,
        }));
        ops.extend(self.hidden.into_iter().map(|path| MountOp::Empty {
            path,
            kind: Kind::Dir,
        }));
        ops.extend(
            shown
                .reveal
                .into_iter()
                .map(|path| MountOp::Reveal { path }),
        );
        shown.writable_inside.sort();
        ops.extend(
            shown
                .writable_inside
                .into_iter()
                .map(|path| MountOp::Writable { path }),
        );
        ops.extend(self.empty.into_iter().map(|path| MountOp::Empty {
            path,
            kind: Kind::File,
        }));
        // The shared copies last: read-only views of what is in the scratch home (made
        // after the plan: taken as given).
        let mut shared: Vec<(PathBuf, Kind)> = shared
            .iter()
            .filter(|(p, _)| !all_hidden.iter().any(|h| p.starts_with(h)))
            .cloned()
            .collect();
        shared.sort_by(|a, b| a.0.cmp(&b.0));
        shared.dedup_by(|a, b| a.0 == b.0);
        ops.extend(
            shared
                .into_iter()
                .map(|(path, kind)| MountOp::ReadOnly { path, kind }),
        );
        ops
    }
}

/// Where the empty sources are made. Chosen even when nothing needs it yet: the launch
/// may quarantine a credentials file after the plan is made (see `Plan::add_files`).
fn staging(
    ops: &[MountOp],
    resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
    may_quarantine: bool,
) -> Result<Option<PathBuf>> {
    let needs_staging = ops.iter().any(|op| matches!(op, MountOp::Empty { .. }));
    if !needs_staging && !may_quarantine {
        return Ok(None);
    }
    // Only the mount targets matter: the staging tmpfs covers its directory while the
    // masks are made and is detached afterwards, so a working directory or home around
    // it (a launch from `/`, from cron or systemd) loses nothing.
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
    Ok(staging)
}

/// What `--share` must never carry in: every path the mask hides or empties for this
/// caller, whatever the working directory (see [`share::Limits`]).
#[must_use]
pub(crate) fn share_limits(config: &Config) -> share::Limits {
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
pub(crate) fn limits(
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
pub(crate) fn resolve_real(path: &Path) -> Option<(PathBuf, Kind)> {
    let real = crate::sys::fsutil::realpath(path).ok()?;
    let meta = std::fs::metadata(&real).ok()?;
    Some((real, if meta.is_dir() { Kind::Dir } else { Kind::File }))
}

/// [`resolve_real`], asked once per path: one plan asks about the same directories many
/// times (the parent of each place it views, each `PATH` entry, the staging
/// candidates), each a `canonicalize` walking every component. Made for one plan and
/// dropped with it: nothing is kept from one launch to the next.
pub(super) fn resolve_once() -> impl Fn(&Path) -> Option<(PathBuf, Kind)> {
    // Keyed by the path's bytes (a byte hash; `Path`'s walks the components): the same
    // path spelled two ways is only asked twice.
    let seen: RefCell<HashMap<OsString, Option<(PathBuf, Kind)>>> = RefCell::new(HashMap::new());
    move |path: &Path| {
        if let Some(known) = seen.borrow().get(path.as_os_str()) {
            return known.clone();
        }
        let found = resolve_real(path);
        seen.borrow_mut()
            .insert(path.as_os_str().to_owned(), found.clone());
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::OsString;

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
}
