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

    /// A value for `--name`: mostly one clap takes, sometimes one it refuses.
    fn value(name: &'static str) -> BoxedStrategy<OsString> {
        use std::os::unix::ffi::OsStringExt;
        let text: Vec<&str> = match name {
            "token-via" => vec!["broker", "fd", "env", "pipe", "ENV"],
            "mask" | "scrub-tools" => vec!["auto", "on", "off", "On", "sometimes"],
            _ => vec![
                "/p", "rel/x", "a b", "work", "x=y", "ü", "default", "A_1", "/q/",
            ],
        };
        let refused = prop::sample::select(vec!["", "-x", "--", "-"]).prop_map(OsString::from);
        prop_oneof![
            16 => prop::sample::select(text).prop_map(OsString::from),
            2 => prop::collection::vec(any::<u8>(), 1..4).prop_map(OsString::from_vec),
            1 => refused,
        ]
        .boxed()
    }

    /// One option as a fast launch writes it: a flag, or `--name value`, `--name=value`,
    /// `-C value`.
    fn option_words() -> impl Strategy<Value = Vec<OsString>> {
        prop::sample::select(OPTIONS.to_vec()).prop_flat_map(|name| {
            let flag = FLAGS.contains(&name);
            (value(name), 0..3u8).prop_map(move |(v, form)| {
                let long = format!("--{name}");
                match (flag, form) {
                    (true, 2) if name == "dry-run" => vec![OsString::from("-n")],
                    (true, _) => vec![OsString::from(long)],
                    (false, 0) => vec![OsString::from(long), v],
                    (false, 1) => {
                        let mut joined = OsString::from(format!("{long}="));
                        joined.push(v);
                        vec![joined]
                    }
                    (false, _) if name == "cwd" => vec![OsString::from("-C"), v],
                    (false, _) => vec![OsString::from(long), v],
                }
            })
        })
    }

    /// A command line of options, then often `--` and a command: most take the fast path.
    fn plausible_line() -> impl Strategy<Value = Vec<OsString>> {
        (
            prop::collection::vec(option_words(), 0..6),
            prop::option::of(prop::collection::vec(word(), 0..4)),
            prop::option::weighted(0.15, (0..8usize, word())),
        )
            .prop_map(|(options, command, stray)| {
                let mut args = vec![OsString::from("claude-iso")];
                args.extend(options.into_iter().flatten());
                if let Some((at, w)) = stray {
                    let at = 1 + at % args.len();
                    args.insert(at.min(args.len()), w);
                }
                if let Some(command) = command {
                    args.push(OsString::from("--"));
                    args.extend(command);
                }
                args
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// Every command line read fast is read exactly as clap reads it.
        #[test]
        fn a_fast_reading_is_always_clap_s_reading(words in prop::collection::vec(word(), 0..8)) {
            let args: Vec<OsString> = std::iter::once(OsString::from("claude-iso")).chain(words).collect();
            agrees(&args);
        }

        /// The same over command lines shaped like a launch's (several options with
        /// their values, a command after `--`, now and then a stray word).
        #[test]
        fn a_launch_shaped_line_read_fast_is_read_as_clap_reads_it(args in plausible_line()) {
            agrees(&args);
        }
    }

    /// Most launch-shaped lines do take the fast path (1,144 of these 2,000), many of
    /// them long: the property above is not vacuous.
    #[test]
    fn most_launch_shaped_lines_take_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = plausible_line();
        let (mut fast, mut long) = (0, 0);
        for _ in 0..2000 {
            let args = strategy.new_tree(&mut runner).unwrap().current();
            if let Some(cli) = parse(&args) {
                fast += 1;
                long += usize::from(args.len() >= 6);
                assert_eq!(Some(format!("{cli:?}")), by_clap(&args), "{args:?}");
            }
        }
        assert!(
            fast > 1000 && long > 350,
            "{fast} fast, {long} of 6 words or more"
        );
    }

    /// The lists above are clap's definition read back: a flag is a `SetTrue`, a
    /// repeatable option an `Append`, the conflicting pairs are clap's, no option takes
    /// its value from the environment or a default, the short names are the four read
    /// here, and the lists of values are clap's.
    #[test]
    fn the_fast_lists_are_clap_s_own() {
        use clap::{ArgAction, CommandFactory};
        use std::collections::BTreeSet;
        let mut cmd = Cli::command();
        cmd.build();
        let args: Vec<&clap::Arg> = cmd.get_arguments().collect();
        let long = |a: &clap::Arg| a.get_long().map(str::to_owned);
        for name in OPTIONS {
            let arg = args
                .iter()
                .find(|a| a.get_long() == Some(name))
                .unwrap_or_else(|| panic!("--{name} is not one of clap's options"));
            assert_eq!(
                matches!(arg.get_action(), ArgAction::SetTrue),
                FLAGS.contains(name),
                "--{name}: a flag?"
            );
            assert_eq!(
                matches!(arg.get_action(), ArgAction::Append),
                REPEATABLE.contains(name),
                "--{name}: repeatable?"
            );
            if !FLAGS.contains(name) {
                assert!(
                    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append),
                    "--{name}: {:?}",
                    arg.get_action()
                );
                assert_eq!(
                    arg.get_num_args().map(|r| (r.min_values(), r.max_values())),
                    Some((1, 1)),
                    "--{name} takes one value"
                );
            }
            assert!(arg.get_env().is_none(), "--{name} reads a variable");
            // A flag is false unless given (clap's `SetTrue`); a value has no default.
            let default: &[&str] = if FLAGS.contains(name) {
                &["false"]
            } else {
                &[]
            };
            assert_eq!(
                arg.get_default_values(),
                default.iter().map(OsStr::new).collect::<Vec<_>>(),
                "--{name}: its default"
            );
            let short = match *name {
                "cwd" => Some('C'),
                "dry-run" => Some('n'),
                "verbose" => Some('v'),
                "quiet" => Some('q'),
                _ => None,
            };
            assert_eq!(arg.get_short(), short, "--{name}: its short name");
            // Conflicts either way round, as clap applies them.
            let theirs: BTreeSet<String> = args
                .iter()
                .filter(|other| {
                    cmd.get_arg_conflicts_with(arg)
                        .iter()
                        .any(|c| c.get_id() == other.get_id())
                        || cmd
                            .get_arg_conflicts_with(other)
                            .iter()
                            .any(|c| c.get_id() == arg.get_id())
                })
                .filter_map(|a| long(a))
                .collect();
            let ours: BTreeSet<String> = CONFLICTS
                .iter()
                .filter_map(|(a, b)| match (*a == *name, *b == *name) {
                    (true, _) => Some((*b).to_owned()),
                    (_, true) => Some((*a).to_owned()),
                    _ => None,
                })
                .collect();
            assert_eq!(theirs, ours, "--{name}: conflicts");
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| v.get_name().to_owned())
                .collect();
            let accepted: Vec<String> = ["auto", "on", "off", "broker", "fd", "env"]
                .into_iter()
                .filter(|v| {
                    let mut cli = parse(&argv(&[])).unwrap();
                    !FLAGS.contains(name)
                        && set_value(&mut cli, name, OsStr::new(v)).is_some()
                        && matches!(*name, "mask" | "scrub-tools" | "token-via")
                })
                .map(str::to_owned)
                .collect();
            assert_eq!(values, accepted, "--{name}: its values");
        }
    }
}
