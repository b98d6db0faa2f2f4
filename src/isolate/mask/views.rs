//! The views of the plan (see [`MountOp::View`]): which directories are covered by a
//! read-only tmpfs with their launch-time entries bound back, and what each shows.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::sources::Sources;
use super::{Kind, MountOp};
use crate::error::{Error, Result};
use crate::sys::fsutil::clean;

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
pub(super) fn views(
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
    let mut views = Views {
        ops: Vec::new(),
        home,
        all_hidden,
    };
    let candidates = sources
        .config_dirs
        .iter()
        .chain(&sources.claude_jsons)
        .chain(&sources.profile_stores)
        .chain(&sources.token_dirs);
    for c in candidates {
        views.candidate(clean(c), resolve, hidden, empty, read_only);
    }
    let pinned = match &sources.state_dir {
        Some(state) => views.state(state, sources, resolve, writable)?,
        None => None,
    };
    let mut views = views.ops;
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

/// The views as they are gathered.
struct Views<'a> {
    ops: Vec<MountOp>,
    /// The scratch home (resolved): nothing in it is viewed.
    home: PathBuf,
    /// Every hidden directory: nothing in one is viewed.
    all_hidden: &'a [PathBuf],
}

impl Views<'_> {
    /// The view of `dir` (made, with nothing covered, when there is none yet).
    fn of(&mut self, dir: PathBuf) -> &mut MountOp {
        let at = match self.ops.iter().position(|v| v.path() == dir.as_path()) {
            Some(i) => i,
            None => {
                self.ops.push(MountOp::View {
                    path: dir,
                    cover: Vec::new(),
                    only: None,
                    read_only: Vec::new(),
                });
                self.ops.len() - 1
            }
        };
        &mut self.ops[at]
    }

    fn cover(&mut self, dir: PathBuf, name: OsString, kind: Option<Kind>) {
        if let MountOp::View { cover, .. } = self.of(dir) {
            if !cover.iter().any(|(n, _)| *n == name) {
                cover.push((name, kind));
            }
        }
    }

    fn mark_read_only(&mut self, dir: PathBuf, name: OsString) {
        if let MountOp::View { read_only, .. } = self.of(dir) {
            if !read_only.contains(&name) {
                read_only.push(name);
            }
        }
    }

    /// The directory holding `path` where it may be viewed, and the name in it.
    fn holder(
        &self,
        path: &Path,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
    ) -> Option<(PathBuf, OsString)> {
        let (parent, name) = (path.parent()?, path.file_name()?);
        let (dir, Kind::Dir) = resolve(parent)? else {
            return None;
        };
        let ok = !self.all_hidden.iter().any(|h| dir.starts_with(h)) && viewable(&dir, &self.home);
        ok.then(|| (dir, name.to_owned()))
    }

    /// A place the mask hides or makes read-only, `c` as given (cleaned).
    fn candidate(
        &mut self,
        c: PathBuf,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
        hidden: &[PathBuf],
        empty: &[PathBuf],
        read_only: &[PathBuf],
    ) {
        let real = resolve(&c);
        // What the name shows: an empty placeholder (hidden or emptied), nothing (absent
        // at launch), or the real entry bound back (made read-only by a later op).
        let kind = match &real {
            Some((r, k)) if hidden.contains(r) || empty.contains(r) => Some(*k),
            // Bound back; read-only there already when a later op makes it read-only.
            Some((r, _)) => {
                if read_only.contains(r) {
                    if let Some((dir, name)) = self.holder(r, resolve) {
                        self.mark_read_only(dir, name);
                    }
                }
                return;
            }
            None => None,
        };
        let mut forms = vec![c.clone()];
        if let Some((r, _)) = &real {
            if *r != c {
                forms.push(r.clone());
            }
        }
        for f in forms {
            if let Some((dir, name)) = self.holder(&f, resolve) {
                self.cover(dir, name, kind);
            }
        }
    }

    /// claude-iso's state directory: viewed with only the way to the launch's own home
    /// shown, and the directory holding it viewed too. Returns that directory (viewed
    /// whether or not anything in it is covered).
    fn state(
        &mut self,
        state: &Path,
        sources: &Sources,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, Kind)>,
        writable: &[PathBuf],
    ) -> Result<Option<PathBuf>> {
        let state = resolve(state).map_or_else(|| clean(state), |(r, _)| r);
        let near_broker = sources
            .broker_dirs
            .iter()
            .any(|b| b.starts_with(&state) || state.starts_with(b));
        let home = self.home.clone();
        if near_broker || state.starts_with(&home) || !viewable_state(&state) {
            return Ok(None);
        }
        let mut pinned = None;
        // The directory holding the state directory is viewed too (every entry bound
        // back): removing or renaming the state directory outside, and making a new one
        // with other homes in it, then changes nothing inside either.
        if let Some(parent) = state.parent().filter(|p| viewable(p, &home)) {
            pinned = Some(parent.to_owned());
            self.of(parent.to_owned());
        }
        match home.strip_prefix(&state) {
            // The home in it: each directory on the way shows only the next one.
            Ok(rel) => {
                let mut at = state.clone();
                for c in rel.components() {
                    self.ops.push(MountOp::View {
                        path: at.clone(),
                        cover: Vec::new(),
                        only: Some(vec![c.as_os_str().to_owned()]),
                        read_only: Vec::new(),
                    });
                    at.push(c);
                }
            }
            // The home elsewhere: every home in the state directory is left out.
            Err(_) => self.ops.push(MountOp::View {
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
        Ok(pinned)
    }
}
