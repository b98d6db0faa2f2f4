//! The launch's command line in its plainest shapes, read without clap.
//!
//! clap builds its whole command tree (every subcommand, every option with its help)
//! before it reads one argument: 0.12 ms and 40 page faults (a build that returns right
//! after parsing, against one that returns before it), and the heap it leaves behind
//! makes the rest of the launch dearer, the init's fork most. Without it, interleaved
//! on a 2-CPU VM: `--mask off` 0.24–0.30 ms less (of about 1.7 ms), the masked launch
//! 0.23–0.27 ms, `--init` 0.35–0.42 ms. A fleet's agents start with the same few long
//! options every time, so [`parse`] reads exactly those shapes and hands everything
//! else to clap:
//!
//! - long options from [`OPTIONS`] (and `-C`, `-n`, `-v`, `-q` as words of their own),
//!   as `--name value` or `--name=value`;
//! - values that are not empty and do not start with `-`, UTF-8 where clap wants text,
//!   and one of clap's possible values where it has a list;
//! - each option at most once unless it is repeatable, and no two that conflict;
//! - then nothing, or `--` and the command.
//!
//! Anything else (`--help`, a subcommand, a short option cluster, an unknown or repeated
//! option, a value clap would refuse) is `None`, and clap parses it, errors and help
//! included. clap stays the definition: a property test holds [`parse`] to give exactly
//! clap's [`Cli`] for every command line it accepts.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{Cli, InitArgs, LaunchArgs, Switch};

/// The options read here, by their long name (without `--`).
pub(super) const OPTIONS: &[&str] = &[
    "env-file",
    "home",
    "name",
    "cwd",
    "trust",
    "keep-env",
    "unset",
    "token-via",
    "broker",
    "allow-project-auth",
    "no-trust",
    "mask",
    "scrub-tools",
    "dry-run",
    "verbose",
    "quiet",
    "share",
    "init",
    "no-init",
    "init-group",
];

/// Pairs clap refuses together (`conflicts_with`).
const CONFLICTS: &[(&str, &str)] = &[
    ("name", "home"),
    ("broker", "token-via"),
    ("init", "no-init"),
    ("init-group", "no-init"),
    ("verbose", "quiet"),
];

/// Options that may be given more than once (clap's `Vec` fields).
const REPEATABLE: &[&str] = &["trust", "keep-env", "unset", "share"];

/// Options that take no value.
const FLAGS: &[&str] = &[
    "allow-project-auth",
    "no-trust",
    "dry-run",
    "verbose",
    "quiet",
    "init",
    "no-init",
    "init-group",
];

/// The command line (`args[0]` is the program) as clap would parse it, when it has one
/// of the shapes above; `None` otherwise.
#[must_use]
pub(crate) fn parse(args: &[OsString]) -> Option<Cli> {
    let mut cli = Cli {
        subcommand: None,
        launch: LaunchArgs::default(),
        dry_run: false,
        verbose: false,
        quiet: false,
        share: Vec::new(),
        command: Vec::new(),
        init: InitArgs::default(),
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        if arg.as_bytes() == b"--" {
            cli.command = rest.cloned().collect();
            break;
        }
        let (name, inline) = option(arg)?;
        if seen.contains(&name) && !REPEATABLE.contains(&name) {
            return None;
        }
        seen.push(name);
        if FLAGS.contains(&name) {
            if inline.is_some() {
                return None;
            }
            set_flag(&mut cli, name);
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => rest.next()?.as_os_str(),
        };
        if value.is_empty() || value.as_bytes().starts_with(b"-") {
            return None;
        }
        set_value(&mut cli, name, value)?;
    }
    if CONFLICTS
        .iter()
        .any(|(a, b)| seen.contains(a) && seen.contains(b))
    {
        return None;
    }
    Some(cli)
}

/// An option word: its long name, and its value when written `--name=value`. The short
/// forms are words of their own (`-C DIR`, `-n`, `-v`, `-q`).
fn option(arg: &OsStr) -> Option<(&'static str, Option<&OsStr>)> {
    let bytes = arg.as_bytes();
    let short = match bytes {
        b"-C" => Some("cwd"),
        b"-n" => Some("dry-run"),
        b"-v" => Some("verbose"),
        b"-q" => Some("quiet"),
        _ => None,
    };
    if let Some(name) = short {
        return Some((name, None));
    }
    let long = bytes.strip_prefix(b"--")?;
    let (name, inline) = match long.iter().position(|b| *b == b'=') {
        Some(eq) => (&long[..eq], Some(OsStr::from_bytes(&long[eq + 1..]))),
        None => (long, None),
    };
    let name = OPTIONS.iter().copied().find(|o| o.as_bytes() == name)?;
    Some((name, inline))
}

fn set_flag(cli: &mut Cli, name: &str) {
    match name {
        "allow-project-auth" => cli.launch.allow_project_auth = true,
        "no-trust" => cli.launch.no_trust = true,
        "dry-run" => cli.dry_run = true,
        "verbose" => cli.verbose = true,
        "quiet" => cli.quiet = true,
        "init" => cli.init.init = true,
        "no-init" => cli.init.no_init = true,
        "init-group" => cli.init.init_group = true,
        _ => unreachable!("every flag is set above"),
    }
}

/// Sets an option's value; `None` where clap would refuse the value (text that is not
/// UTF-8, a value outside the option's list).
fn set_value(cli: &mut Cli, name: &str, value: &OsStr) -> Option<()> {
    let path = || PathBuf::from(value);
    let text = || value.to_str().map(str::to_owned);
    let l = &mut cli.launch;
    match name {
        "env-file" => l.env_file = Some(path()),
        "home" => l.home = Some(path()),
        "name" => l.name = Some(text()?),
        "cwd" => l.cwd = Some(path()),
        "trust" => l.trust.push(path()),
        "keep-env" => l.keep_env.push(text()?),
        "unset" => l.unset.push(text()?),
        "token-via" => {
            let way = text()?;
            if !["broker", "fd", "env"].contains(&way.as_str()) {
                return None;
            }
            l.token_via = Some(way);
        }
        "broker" => l.broker = Some(path()),
        "mask" => l.mask = Some(Switch::parse(value.to_str()?)?),
        "scrub-tools" => l.scrub_tools = Some(Switch::parse(value.to_str()?)?),
        "share" => cli.share.push(value.to_owned()),
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("claude-iso")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// clap's reading, as text (every field of `Cli` is in its `Debug`).
    fn by_clap(args: &[OsString]) -> Option<String> {
        Cli::try_parse_from(args).ok().map(|c| format!("{c:?}"))
    }

    fn agrees(args: &[OsString]) {
        if let Some(fast) = parse(args) {
            assert_eq!(
                Some(format!("{fast:?}")),
                by_clap(args),
                "the fast reading differs from clap's for {args:?}"
            );
        }
    }

    /// The shapes a fleet launches with take the fast path, and read as clap reads them.
    #[test]
    fn the_plain_launches_are_read_without_clap_and_as_clap_reads_them() {
        for words in [
            &[][..],
            &["--"],
            &["--", "claude", "--print", "hi"],
            &[
                "--env-file",
                "/run/t.env",
                "--home",
                "/var/h",
                "--",
                "/bin/true",
            ],
            &[
                "--init",
                "--mask",
                "off",
                "--env-file",
                "f",
                "--home",
                "h",
                "--",
                "c",
            ],
            &["--mask=on", "--scrub-tools=off", "--token-via", "broker"],
            &["--name", "work", "-C", "/src/app", "--share", "default"],
            &[
                "--trust",
                "/a",
                "--trust=/b",
                "--keep-env",
                "A",
                "--unset",
                "B",
            ],
            &[
                "-n",
                "-v",
                "--allow-project-auth",
                "--no-trust",
                "--init-group",
            ],
            &[
                "--broker",
                "/run/b.sock",
                "--no-init",
                "-q",
                "--",
                "claude",
                "--",
                "x",
            ],
            &[
                "--share",
                "x",
                "--share=y",
                "--home=/h",
                "--",
                "--mask",
                "off",
            ],
        ] {
            let args = argv(words);
            let fast = parse(&args).unwrap_or_else(|| panic!("not read fast: {words:?}"));
            assert_eq!(Some(format!("{fast:?}")), by_clap(&args), "{words:?}");
        }
    }

    /// What clap refuses, explains or routes elsewhere is left to it.
    #[test]
    fn everything_else_is_left_to_clap() {
        for words in [
            &["--help"][..],
            &["-h"],
            &["--version"],
            &["doctor"],
            &["token", "status"],
            &["claude"],
            &["-nv"],
            &["-Cdir"],
            &["--home"],
            &["--home", ""],
            &["--home="],
            &["--home", "--mask"],
            &["--home", "a", "--home", "b"],
            &["--name", "a", "--home", "b"],
            &["--init", "--no-init"],
            &["-v", "-q"],
            &["--broker", "s", "--token-via", "env"],
            &["--mask", "sometimes"],
            &["--token-via", "pipe"],
            &["--init=yes"],
            &["--init-grace", "5"],
            &["--env"],
            &["--env-fil", "x"],
            &["--dry-run", "--dry-run"],
        ] {
            assert!(parse(&argv(words)).is_none(), "read fast: {words:?}");
        }
        // Text options want UTF-8.
        use std::os::unix::ffi::OsStringExt;
        let mut args = argv(&["--name"]);
        args.push(OsString::from_vec(vec![b'w', 0xff]));
        assert!(parse(&args).is_none());
        let mut args = argv(&["--home"]);
        args.push(OsString::from_vec(vec![b'/', 0xff]));
        agrees(&args);
        assert!(parse(&args).is_some());
    }

    fn word() -> impl Strategy<Value = OsString> {
        use std::os::unix::ffi::OsStringExt;
        let mut names: Vec<String> = OPTIONS.iter().map(|o| format!("--{o}")).collect();
        names.extend(
            [
                "-C",
                "-n",
                "-v",
                "-q",
                "-h",
                "-nv",
                "--",
                "--help",
                "--init-grace",
                "--x",
                "doctor",
                "token",
                "claude",
                "",
                "-",
                "=",
                "a=b",
                "on",
                "off",
                "auto",
                "env",
                "fd",
                "broker",
                "5",
                "/p",
                "default",
            ]
            .map(str::to_owned),
        );
        let named = prop::sample::select(names).prop_map(OsString::from);
        let joined = (
            prop::sample::select(OPTIONS.to_vec()),
            prop::sample::select(vec!["", "on", "off", "x", "-x", "broker", "=", "/a b"]),
        )
            .prop_map(|(o, v)| OsString::from(format!("--{o}={v}")));
        let raw = prop::collection::vec(any::<u8>(), 0..4).prop_map(OsString::from_vec);
        prop_oneof![6 => named, 3 => joined, 1 => raw]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Every command line read fast is read exactly as clap reads it.
        #[test]
        fn a_fast_reading_is_always_clap_s_reading(words in prop::collection::vec(word(), 0..8)) {
            let args: Vec<OsString> = std::iter::once(OsString::from("claude-iso")).chain(words).collect();
            agrees(&args);
        }
    }
}
