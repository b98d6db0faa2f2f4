//! The launch as a value: [`inspect`] runs every stage's checks in order and returns a
//! [`LaunchPlan`] without changing anything; `--dry-run` prints it
//! (`launch::print`), a launch performs it (`launch::apply`), and `doctor` runs the
//! same stage functions one by one to report each.
//!
//! A stage whose failure stops everything returns an error from [`inspect`] (a token
//! that cannot be read, a home that cannot be one). The refusals a dry run still shows
//! the rest of the plan around (the command not found, settings that would send the
//! token elsewhere, a shared broker that does not answer) are kept in the plan and
//! enforced by [`LaunchPlan::refusal`], the first thing `apply` does: every refusal comes
//! before any change.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::config::{Config, TokenVia};
use crate::error::{Error, Result};
use crate::home::{self, HomeState, seed};
use crate::isolate::environment::{self, ChildEnv, Delivery};
use crate::isolate::{broker, guard, mask, share, tools};
use crate::launch::exec;
use crate::layout::{NESTED_VAR, TOKEN_VAR};
use crate::report::Report;
use crate::token::{self, Source, Token};

/// What the inspection is for. A launch skips what it will find out by doing (the
/// kernel's answer to `--mask auto`, the detail of a seed it rewrites anyway); a dry run
/// and doctor try everything, to report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Launch,
    Show,
}

/// Everything a launch will do, decided; nothing changed yet.
pub(crate) struct LaunchPlan {
    pub config: Config,
    /// COMMAND and its arguments (`claude` when none was given).
    pub argv: Vec<OsString>,
    /// This launch runs in the home of the claude-iso session it was started from.
    pub outer_home: bool,
    pub shares: Shares,
    pub broker: BrokerChoice,
    /// The token and where it came from; `None` when a shared broker holds it.
    pub token: Option<(Token, Source)>,
    /// COMMAND, resolved on `PATH` (refused at apply when not found).
    pub program: Result<PathBuf>,
    /// The refusals a dry run shows the rest of the plan around, in stage order: a
    /// shared broker that does not answer, the command not found, the settings' verdict.
    /// A launch stops at the first (see [`LaunchPlan::refusal`]).
    pub refusals: Vec<Error>,
    pub home: HomeState,
    /// The home's canonical path (what the command gets as `HOME`).
    pub home_path: PathBuf,
    /// The settings guard's verdict (enforced at apply).
    pub settings: guard::SettingsVerdict,
    pub seed: seed::SeedState,
    pub via: TokenVia,
    /// The command's environment (the token pipe's descriptor and a home made just now
    /// are filled in at apply).
    pub child: ChildEnv,
    /// `--scrub-tools`, as one line.
    pub scrub_tools: String,
    pub mask: MaskStage,
}

/// `--share`, planned and checked.
#[derive(Default)]
pub(crate) struct Shares {
    pub list: Vec<share::Share>,
    /// What the mask hides or empties, which nothing shared may bring in.
    pub limits: share::Limits,
}

/// The mask, as far as the purpose needs it decided.
pub(crate) enum MaskStage {
    /// For a launch: the plan to enter (`None`: unmasked).
    Launch(Option<mask::Plan>),
    /// For a dry run or doctor: what a launch would find, the kernel asked.
    Show(mask::Verdict),
}

/// How the command reaches the API when it does through a broker.
pub(crate) enum BrokerChoice {
    /// No broker: the token goes to the command (`--token-via fd|env`, or not claude).
    None,
    /// A broker of this launch's own, forked before the exec.
    Own(broker::BrokerPlan),
    /// A shared broker (`--broker`, or the one of the claude-iso session this runs in):
    /// no token is read.
    Shared(PathBuf),
}

impl LaunchPlan {
    /// The refusals kept in the plan, in stage order: the first is the launch's.
    ///
    /// # Errors
    /// A shared broker that does not answer, the command not found (127/126), settings
    /// that bring another credential or send the token elsewhere (125).
    pub(crate) fn refusal(&self) -> Result<()> {
        self.refusals.first().cloned().map_or(Ok(()), Err)
    }

    /// Where the token goes, as one line.
    #[must_use]
    pub(crate) fn destination(&self) -> String {
        destination(&self.broker, &self.settings)
    }
}

/// Runs every stage's checks in order; changes nothing.
///
/// # Errors
/// The first stage that cannot go on (125): a `--share` refused, no token, a home that
/// cannot be one, an unusable `.claude.json`, the mask refused where a launch must stop.
pub(crate) fn inspect(
    config: Config,
    command: &[OsString],
    requested_shares: &[OsString],
    purpose: Purpose,
    report: &Report,
) -> Result<LaunchPlan> {
    // Nothing changes until `apply`: the same paths need asking only once meanwhile.
    let _inspecting = crate::sys::fsutil::Inspecting::start();
    let outer_home = in_outer_home(&config);
    let shares = shares(&config, requested_shares, outer_home, report)?;
    let argv = if command.is_empty() {
        vec![OsString::from("claude")]
    } else {
        command.to_vec()
    };
    let broker = broker_choice(&config, &argv[0])?;
    let token = token_stage(&config, &broker, report)?;
    // From here on, a launch stops at the first refusal in stage order: a later stage's
    // error gives way to a refusal kept before it.
    let mut refusals = Vec::new();
    if let BrokerChoice::Shared(socket) = &broker {
        refusals.extend(broker::check_shared(socket).err());
    }
    let program = program(&config, &argv[0]);
    if let Err(e) = &program {
        refusals.push(not_found_hint(e.clone(), &argv[0]));
    }
    let first = |e: Error, kept: &[Error]| kept.first().cloned().unwrap_or(e);
    // The home before the settings inside it: a path that cannot be a home is named as
    // such, not as a settings file inside it that cannot be read.
    let home = home::inspect(&config).map_err(|e| first(e, &refusals))?;
    let home_path = home.canonical();
    let settings = settings(&config, &home_path, &shares, program.as_deref().ok(), &argv);
    report.info(format!(
        "the token goes to {}",
        destination(&broker, &settings)
    ));
    for note in &settings.unread {
        report.info(format!("settings: {note}"));
    }
    refusals.extend(settings.enforce(config.allow_project_auth).err());
    let seed = seed::inspect_for(
        home.existing.as_ref().map(home::Existing::dir),
        &home_path,
        &config.trust,
        purpose == Purpose::Show,
    )
    .map_err(|e| first(e, &refusals))?;
    let via = via(&broker, &config, &argv[0]);
    let delivery = delivery(&broker, token.as_ref().map(|(t, _)| t), via, &config);
    let mut child = child_env(&config, &home_path, delivery, report);
    let scrub_tools =
        scrub_tools(&config, &home_path, &mut child, report).map_err(|e| first(e, &refusals))?;
    let shared = mask::shared_paths(&shares.list, &home_path);
    let program_path = program.as_deref().ok();
    let mask = mask_stage(&config, &home_path, program_path, &shared, purpose, report)
        .map_err(|e| first(e, &refusals))?;
    Ok(LaunchPlan {
        config,
        argv,
        outer_home,
        shares,
        broker,
        token,
        program,
        refusals,
        home,
        home_path,
        settings,
        seed,
        via,
        child,
        scrub_tools,
        mask,
    })
}

/// `--share`: every refusal before anything is created. Inside another claude-iso
/// session's very home (the default home, inherited through `XDG_STATE_HOME`) the outer
/// run's copies are in use (read-only mounts under its mask) and stay as they are:
/// nothing is shared.
///
/// # Errors
/// A share refused (125).
pub(crate) fn shares(
    config: &Config,
    requested: &[OsString],
    outer_home: bool,
    report: &Report,
) -> Result<Shares> {
    let requested = if outer_home {
        if !requested.is_empty() {
            report.warn(format!(
                "--share: {} is the home of the claude-iso this runs under, in use: its shared copies are left as they are (pass --name or --home for a home of this run's own)",
                config.home.display()
            ));
        }
        &[]
    } else {
        requested
    };
    let planned = share::plan(&config.real_home(), &config.xdg_config_home(), requested)?;
    // Nothing the mask hides or empties comes in through a share (a symlink included).
    // (Worked out only when something is shared: it resolves every credential store.)
    let limits = if planned.is_empty() {
        share::Limits::default()
    } else {
        mask::share_limits(config)
    };
    let list = share::check(config, &planned, &limits, config.allow_project_auth, report)?;
    Ok(Shares { list, limits })
}

/// The token, unless a shared broker holds it (then this launch reads none).
///
/// # Errors
/// No token, or one that cannot be read or is not a token (125).
pub(crate) fn token_stage(
    config: &Config,
    broker: &BrokerChoice,
    report: &Report,
) -> Result<Option<(Token, Source)>> {
    if let BrokerChoice::Shared(socket) = broker {
        report.info(format!(
            "no token read: the broker at {} holds it",
            socket.display()
        ));
        return Ok(None);
    }
    let (token, source) = token::load(config)?;
    report.info(format!("token {} from {source}", token.redacted()));
    Ok(Some((token, source)))
}

/// COMMAND, found the way `execvp` would on the caller's `PATH`.
///
/// # Errors
/// Not found (127), found but not runnable (126).
pub(crate) fn program(config: &Config, command: &OsStr) -> Result<PathBuf> {
    exec::resolve(command, config.path_var().as_deref(), &config.start_dir)
}

/// The settings guard, on the home the launch will use and the command it will run:
/// settings claude would apply that bring another credential or send the token elsewhere.
#[must_use]
pub(crate) fn settings(
    config: &Config,
    home_path: &Path,
    shares: &Shares,
    program: Option<&Path>,
    argv: &[OsString],
) -> guard::SettingsVerdict {
    guard::inspect(
        config,
        home_path,
        share::user_settings(&shares.list),
        &share::own_copies(home_path),
        guard::Command { program, argv },
    )
}

/// Where the token goes: through a broker, where the broker forwards, whatever claude is
/// told; otherwise where the settings send claude.
#[must_use]
pub(crate) fn destination(broker: &BrokerChoice, settings: &guard::SettingsVerdict) -> String {
    match broker {
        BrokerChoice::Own(plan) => format!("{} through the broker", plan.destination_line()),
        BrokerChoice::Shared(socket) => format!(
            "wherever the shared broker at {} forwards",
            socket.display()
        ),
        BrokerChoice::None => settings.destination.line(),
    }
}

fn via(broker: &BrokerChoice, config: &Config, command: &OsStr) -> TokenVia {
    match broker {
        BrokerChoice::None => TokenVia::for_command(config.token_via, command),
        _ => TokenVia::Broker,
    }
}

/// How the token travels, as the child's environment names it. The pipe itself is made
/// at apply, when nothing but the exec can fail after it: its descriptor is filled in then.
fn delivery<'a>(
    broker: &'a BrokerChoice,
    token: Option<&'a Token>,
    via: TokenVia,
    config: &Config,
) -> Delivery<'a> {
    match (broker, token) {
        (BrokerChoice::Own(plan), _) => Delivery::Broker(&plan.socket),
        (BrokerChoice::Shared(socket), _) => Delivery::Broker(socket),
        (BrokerChoice::None, Some(token)) if via == TokenVia::Env => Delivery::Env(token),
        _ => Delivery::Fd(token::pipe::token_fd_floor(config.env.get("LISTEN_FDS"))),
    }
}

/// The warning about variables the scrub removes unasked, if any (said by the dry run,
/// and once a day per home by a launch: a unit always has the same variables).
#[must_use]
pub(crate) fn removed_warning(child: &ChildEnv, command: &OsStr) -> Option<String> {
    (!child.removed.is_empty()).then(|| {
        format!(
            "not passing {} to {} (each would override or relocate the token; --keep-env NAME passes one on purpose, --unset NAME removes it without this warning)",
            child.removed.join(", "),
            command.to_string_lossy()
        )
    })
}

/// The command's environment: the caller's, scrubbed, with `HOME` and the token's way in.
fn child_env(
    config: &Config,
    home_path: &Path,
    delivery: Delivery<'_>,
    report: &Report,
) -> ChildEnv {
    let child = environment::child_env(
        &config.env,
        &environment::ChildEnvPlan {
            home: home_path,
            token: delivery,
            pwd: config.chdir.then_some(config.workdir.as_path()),
            keep: &config.keep_env,
            unset: &config.unset,
        },
    );
    if !child.unset.is_empty() {
        report.info(format!("--unset: not passing {}", child.unset.join(", ")));
    }
    child
}

/// `--scrub-tools`: claude's own scrub of its tools' environment, set in the child's.
///
/// # Errors
/// `--scrub-tools on` where bubblewrap is missing (125).
pub(crate) fn scrub_tools(
    config: &Config,
    home_path: &Path,
    child: &mut ChildEnv,
    report: &Report,
) -> Result<String> {
    let action = tools::decide(config.scrub_tools, tools::find_bwrap(config, home_path))?;
    tools::apply(&mut child.vars, &action);
    let passed = child
        .vars
        .iter()
        .find(|(k, _)| k == tools::SCRUB_VAR)
        .map(|(_, v)| v.as_os_str());
    let line = tools::describe(&action, &config.workdir, passed);
    report.info(format!("scrub-tools: {line}"));
    Ok(line)
}

/// The mask's plan and every refusal of it, before anything changes.
///
/// # Errors
/// A working directory or home the mask cannot be made from, a descriptor into a hidden
/// place, or `--mask on` and the kernel refuses — for a launch (125).
pub(crate) fn mask_stage(
    config: &Config,
    home_path: &Path,
    program: Option<&Path>,
    shared: &[(PathBuf, mask::Kind)],
    purpose: Purpose,
    report: &Report,
) -> Result<MaskStage> {
    Ok(match purpose {
        Purpose::Launch => {
            MaskStage::Launch(mask::prepare(config, home_path, program, shared, report)?)
        }
        Purpose::Show => MaskStage::Show(mask::verdict(config, home_path, program, shared)),
    })
}

/// Whether this claude-iso runs inside another one's session and launches into that
/// session's own home (its `HOME`).
pub(crate) fn in_outer_home(config: &Config) -> bool {
    let canonical = |p: &Path| crate::sys::fsutil::realpath(p).ok();
    config.env.get(NESTED_VAR).is_some_and(|v| !v.is_empty())
        && config
            .env
            .absolute_path("HOME")
            .and_then(&canonical)
            .is_some_and(|h| Some(h) == canonical(&config.home))
}

/// `claude` not on `PATH` on a new machine: say how to install it.
fn not_found_hint(e: Error, command: &OsStr) -> Error {
    match e {
        Error::NotFound {
            command: shown,
            detail,
        } if command == "claude" => Error::NotFound {
            command: shown,
            detail: format!(
                "{detail}; install Claude Code: npm install -g @anthropic-ai/claude-code (or its official installer), then check `claude --version`"
            ),
        },
        other => other,
    }
}

/// `--broker`, the session's own broker for a nested launch, a broker of our own, or
/// none; checked before anything changes.
///
/// # Errors
/// No private directory for the socket (125).
pub(crate) fn broker_choice(config: &Config, command: &OsStr) -> Result<BrokerChoice> {
    if let Some(socket) = &config.broker {
        return Ok(BrokerChoice::Shared(socket.clone()));
    }
    if TokenVia::for_command(config.token_via, command) != TokenVia::Broker {
        return Ok(BrokerChoice::None);
    }
    // Inside a claude-iso session that runs through a broker (the placeholder and the
    // socket are what it gave the command), a nested launch uses that broker: the token
    // is nowhere this process could read it.
    let nested_socket = config
        .env
        .get(NESTED_VAR)
        .is_some_and(|v| !v.is_empty())
        .then(|| config.env.absolute_path(broker::SOCKET_VAR))
        .flatten()
        .filter(|_| config.env.get(TOKEN_VAR) == Some(OsStr::new(broker::PLACEHOLDER)));
    if let Some(socket) = nested_socket {
        return Ok(BrokerChoice::Shared(socket.to_path_buf()));
    }
    Ok(BrokerChoice::Own(broker::plan(&config.env)?))
}
