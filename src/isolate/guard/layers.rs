//! Which settings layers claude applies for a working directory: the managed files, the
//! command's `--settings`, the local settings root (a git root, a linked worktree's main
//! checkout), the working directory's project files, and the scratch home's user settings
//! (or their cowork variant); and which of them `--setting-sources` keeps.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::caller::CallerEnv;
use crate::layout::{
    CLAUDE_DIR, FLAG_SETTING_SOURCES, FLAG_SETTINGS, GIT_DIR, SETTINGS, SETTINGS_LOCAL,
};

/// The administrator's settings directory of claude on Linux.
pub const MANAGED_DIR: &str = "/etc/claude-code";

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
    pub(super) fn source(self) -> Option<&'static str> {
        match self {
            Layer::Managed | Layer::Flag => None,
            Layer::RootLocal | Layer::Local => Some("local"),
            Layer::Project => Some("project"),
            Layer::User | Layer::CoworkUser | Layer::SharedUser | Layer::SharedCowork => {
                Some("user")
            }
        }
    }

    pub(super) fn describe(self) -> &'static str {
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
    if crate::sys::fsutil::realpath(back).ok()?
        != crate::sys::fsutil::realpath(root).ok()?.join(GIT_DIR)
    {
        return None;
    }
    if common.file_name() != Some(OsStr::new(GIT_DIR)) {
        return (!accepts_git_entry(&common.join(GIT_DIR))).then_some(common);
    }
    common.parent().map(Path::to_path_buf)
}

/// A small file's text (following links, as claude's `readFileSync`), or `None`.
pub(super) fn read_text(path: &Path, max: u64) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CallerEnv {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
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
}
