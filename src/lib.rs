//! claude-iso: run Claude Code with only a long-lived setup-token.
//!
//! The pipeline, top to bottom: options → token → command → scratch home (and
//! quarantine) → `.claude.json` seed → child environment → `execve`.

#![deny(unsafe_code)]

// Namespaces, /proc, prctl and execve as Linux has them: nothing else is supported.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "claude-iso runs on Linux only (user and mount namespaces, /proc, prctl); build it on Linux, or for a Linux target (--target x86_64-unknown-linux-gnu)"
);

pub mod caller;
pub mod cli;
pub mod config;
pub mod error;
pub mod home;
pub mod isolate;
pub mod launch;
pub mod layout;
pub mod ops;
pub mod report;
pub mod scrub;
pub mod sys;
#[cfg(test)]
mod testgen;
pub mod token;

use std::ffi::OsString;

use clap::Parser;

use crate::caller::CallerEnv;
use crate::cli::Cli;
use crate::config::{Config, TokenVia};
use crate::error::{Error, Outcome, Result, error_text};
use crate::home::seed;
use crate::isolate::environment::{ChildEnvPlan, Delivery};
use crate::isolate::{broker, environment, guard, mask, share, tools};
use crate::launch::{exec, init};
use crate::layout::{TOKEN_FD_VAR, TOKEN_VAR};
use crate::ops::{doctor, homes};
use crate::report::{Report, Verbosity};
use crate::token::store as tokenstore;

/// The whole program: parses `args`, runs, and returns the exit status (when `execve`
/// did not replace us).
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    // The token will be in our memory: no core file, no same-user ptrace, from the start.
    sys::set_non_dumpable();
    init::hold_signals_if_pid1();
    let args: Vec<OsString> = args.into_iter().collect();
    if let Some(e) = token::in_arguments(&args) {
        report::error_line(&e.to_string());
        return e.exit_code();
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e, &args),
    };
    let report = Report {
        verbosity: if cli.quiet {
            Verbosity::Quiet
        } else if cli.verbose {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        },
        plans: true,
    };
    let result = match &cli.subcommand {
        Some(sub) => subcommand(sub),
        None => launch(&cli, &report),
    };
    if let Err(e) = &result {
        report::error_line(&e.to_string());
    }
    error::exit_status(&result)
}

/// The one dispatcher for subcommands; each returns an outcome or an error.
fn subcommand(sub: &cli::Subcommand) -> Result<Outcome> {
    match sub {
        cli::Subcommand::Doctor(args) => doctor::main(args),
        cli::Subcommand::Token(cli::TokenCommand::Set(args)) => tokenstore::set(args),
        cli::Subcommand::Token(cli::TokenCommand::Status(args)) => tokenstore::status(args),
        cli::Subcommand::Homes(args) => homes::main(args),
        cli::Subcommand::Broker(cli::BrokerCommand::Serve(args)) => broker::serve_main(args),
        cli::Subcommand::Broker(cli::BrokerCommand::Status(args)) => broker::status_main(args),
        cli::Subcommand::Completions { shell } => {
            report::stdout_bytes(&cli::completion_script(*shell));
            Ok(Outcome::Success)
        }
    }
}

/// clap's help and version go to stdout with 0; a usage error is one line and 125.
fn usage_error(e: &clap::Error, args: &[OsString]) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        report::stdout_bytes(e.render().to_string().as_bytes());
        return 0;
    }
    let line = cli::one_line(e);
    let first = line.as_str();
    let err = Error::Usage(match forgotten_separator(e, args) {
        Some(word) => format!("{first}; put `--` before the command: claude-iso -- {word} …"),
        None => format!("{first} (see claude-iso --help)"),
    });
    report::error_line(&err.to_string());
    err.exit_code()
}

/// When a usage error comes from a command given without `--` (`claude-iso claude
/// --print …`, `claude-iso --print …`), the word that should come after `--`: the
/// first argument that is not one of ours.
fn forgotten_separator(e: &clap::Error, args: &[OsString]) -> Option<String> {
    use clap::error::ErrorKind;
    if !matches!(
        e.kind(),
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
    ) || args.iter().any(|a| a == "--")
    {
        return None;
    }
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let arg = arg.to_string_lossy();
        let ours = cmd.get_arguments().find(|a| {
            a.get_long().is_some_and(|l| {
                arg.strip_prefix("--")
                    .is_some_and(|r| r == l || r.starts_with(&format!("{l}=")))
            }) || a
                .get_short()
                .is_some_and(|c| arg.len() == 2 && arg.starts_with('-') && arg.ends_with(c))
        });
        match ours {
            Some(a) => {
                // Skip the value of an option that takes one (`--home DIR`).
                if a.get_action().takes_values() && !arg.contains('=') {
                    rest.next();
                }
            }
            None if cmd.find_subcommand(arg.as_ref()).is_some() => return None,
            None if arg.starts_with('-') => return Some(format!("claude {arg}")),
            None => return Some(arg.into_owned()),
        }
    }
    None
}

/// Runs the launcher. Returns only for a dry run (`Ok`) or on failure.
fn launch(cli: &Cli, report: &Report) -> Result<Outcome> {
    let mut config = Config::new(&cli.launch, CallerEnv::from_process())?;
    let init = init::decide(&cli.init, &config.env, init::is_pid1())?;
    if cli.dry_run {
        if init.on {
            report.plan(format!("init: {}", init.describe()));
        }
    } else if init.on {
        // The fork comes before the token or any project file is read: the init never
        // holds them. The child carries on below, exactly as without the init.
        if let init::Side::Init(status) = init::start(&init, &mut config.env, report)? {
            return Ok(Outcome::Exited(status));
        }
    }
    // A claude-iso started inside another one's session, in that session's very home
    // (the default home, inherited through XDG_STATE_HOME): the outer run's copies are in
    // use (read-only mounts under its mask) and stay as they are; nothing is shared.
    let outer_home = in_outer_home(&config);
    let requested: &[OsString] = if outer_home {
        if !cli.share.is_empty() {
            report.warn(format!(
                "--share: {} is the home of the claude-iso this runs under, in use: its shared copies are left as they are (pass --name or --home for a home of this run's own)",
                config.home.display()
            ));
        }
        &[]
    } else {
        &cli.share
    };
    // Every --share refusal comes before anything is created.
    let shares = share::plan(&config.real_home(), &config.xdg_config_home(), requested)?;
    // Nothing the mask hides or empties comes in through a share (a symlink included).
    // (Worked out only when something is shared: it resolves every credential store.)
    let limits = if shares.is_empty() {
        share::Limits::default()
    } else {
        mask::share_limits(&config)
    };
    let shares = share::check(&config, &shares, &limits, config.allow_project_auth, report)?;
    let argv: Vec<OsString> = if cli.command.is_empty() {
        vec![OsString::from("claude")]
    } else {
        cli.command.clone()
    };
    let broker = broker_choice(&config, &argv[0])?;
    // A shared broker holds the token: this launch reads none.
    let token = match &broker {
        BrokerChoice::Shared(socket) => {
            if !cli.dry_run {
                broker::check_shared(socket)?;
            }
            report.info(format!(
                "no token read: the broker at {} holds it",
                socket.display()
            ));
            if cli.dry_run {
                report.plan(format!(
                    "token: none read (the shared broker at {} holds it)",
                    socket.display()
                ));
            }
            None
        }
        _ => {
            let (token, source) = token::load(&config)?;
            report.info(format!("token {} from {source}", token.redacted()));
            tokenstore::launch_notes(&config, &source, &token, report, cli.dry_run);
            if cli.dry_run {
                report.plan(format!("token: {} from {source}", token.redacted()));
            }
            Some(token)
        }
    };
    let program = match exec::resolve(&argv[0], config.path_var().as_deref(), &config.start_dir) {
        Ok(p) => Some(p),
        // A dry run still shows the rest of the plan; a real launch stops here.
        Err(e) if cli.dry_run => {
            report.plan(format!(
                "command: {e} (a launch would exit {})",
                e.exit_code()
            ));
            None
        }
        Err(e) => return Err(not_found_hint(e, &argv[0])),
    };

    // Every check first (nothing changes yet), so a refusal leaves nothing behind. The
    // home first: a path that cannot be a home is named as such, not as a settings file
    // inside it that cannot be read.
    let home_state = home::inspect(&config)?;
    let existing = home_state.existing.as_ref();
    let home_path = home_state.canonical();

    // Before anything is created: settings claude would apply that bring another
    // credential or send the token elsewhere stop the launch here.
    let verdict = guard::inspect(
        &config,
        &home_path,
        share::user_settings(&shares),
        &share::own_copies(&home_path),
        guard::Command {
            program: program.as_deref(),
            argv: &argv,
        },
    );
    // Through a broker, the token goes where the broker forwards, whatever claude is told.
    let destination = match &broker {
        BrokerChoice::Own(plan) => format!("{} through the broker", plan.destination_line()),
        BrokerChoice::Shared(socket) => format!(
            "wherever the shared broker at {} forwards",
            socket.display()
        ),
        BrokerChoice::None => verdict.destination.line(),
    };
    report.info(format!("the token goes to {destination}"));
    for note in &verdict.unread {
        report.info(format!("settings: {note}"));
    }
    if cli.dry_run {
        report.plan(format!("destination: {destination}"));
        for finding in &verdict.findings {
            report.plan(format!("settings: {}", finding.line()));
        }
        for note in &verdict.unread {
            report.plan(format!("settings: {note}"));
        }
        if let Err(e) = verdict.enforce(config.allow_project_auth) {
            report.plan(format!(
                "settings: a launch would exit {} (--allow-project-auth lets it through on purpose)",
                e.exit_code()
            ));
        }
    } else {
        verdict.enforce(config.allow_project_auth)?;
        // Through a broker, what the finding says claude would do with the token cannot
        // happen: the broker sends it only where it forwards.
        let through = match &broker {
            BrokerChoice::None => String::new(),
            BrokerChoice::Own(plan) => format!(
                " (claude talks through the broker, so the token still goes only to {})",
                plan.destination_line()
            ),
            BrokerChoice::Shared(socket) => format!(
                " (claude talks through the shared broker at {}, which alone holds the token)",
                socket.display()
            ),
        };
        for finding in &verdict.findings {
            report.warn(format!(
                "letting through on purpose: {}{through}",
                finding.line()
            ));
        }
    }

    let seed_state = seed::inspect_for(
        existing.map(home::Existing::dir),
        &home_path,
        &config.trust,
        cli.dry_run,
    )?;
    if cli.dry_run {
        home::plan_lines(&home_state, report);
        report.plan(format!("seed: {}", seed_state.describe()));
        share::print_plan(&shares, &home_path, report);
    }

    let via = broker.via(&config, &argv[0]);
    // The pipe is made last, when nothing can fail before the exec but the exec itself.
    let delivery = match (&broker, &token) {
        (BrokerChoice::Own(plan), _) => Delivery::Broker(&plan.socket),
        (BrokerChoice::Shared(socket), _) => Delivery::Broker(socket),
        (BrokerChoice::None, Some(token)) if via == TokenVia::Env => Delivery::Env(token),
        // A dry run makes no pipe; the plan says how the descriptor is chosen.
        _ if cli.dry_run => Delivery::Fd(token::pipe::token_fd_floor(config.env.get("LISTEN_FDS"))),
        _ => Delivery::Fd(-1),
    };

    let mut child = environment::child_env(
        &config.env,
        &ChildEnvPlan {
            home: &home_path,
            token: delivery,
            pwd: config.chdir.then_some(config.workdir.as_path()),
            keep: &config.keep_env,
            unset: &config.unset,
        },
    );
    let tools = tools::decide(config.scrub_tools, tools::find_bwrap(&config, &home_path))?;
    tools::apply(&mut child.vars, &tools);
    let passed = child
        .vars
        .iter()
        .find(|(k, _)| k == tools::SCRUB_VAR)
        .map(|(_, v)| v.as_os_str());
    let scrub = tools::describe(&tools, &config.workdir, passed);
    report.info(format!("scrub-tools: {scrub}"));
    if cli.dry_run {
        report.plan(format!("scrub-tools: {scrub}"));
    }
    if !child.removed.is_empty() {
        report.warn(format!(
            "not passing {} to {} (each would override or relocate the token; --keep-env NAME passes one on purpose, --unset NAME removes it without this warning)",
            child.removed.join(", "),
            argv[0].to_string_lossy()
        ));
    }
    if !child.unset.is_empty() {
        report.info(format!("--unset: not passing {}", child.unset.join(", ")));
    }

    if cli.dry_run {
        report.plan(match (&broker, via) {
            (BrokerChoice::Own(plan), _) => format!(
                "token via: broker (a process beside the command holds the token and forwards its API requests from {} to {}; the command gets {TOKEN_VAR}={})",
                plan.socket.display(),
                plan.destination_line(),
                broker::PLACEHOLDER
            ),
            (BrokerChoice::Shared(socket), _) => format!(
                "token via: the shared broker at {} (the command gets {TOKEN_VAR}={})",
                socket.display(),
                broker::PLACEHOLDER
            ),
            (BrokerChoice::None, TokenVia::Env) => format!("token via: env ({TOKEN_VAR})"),
            (BrokerChoice::None, _) => format!(
                "token via: fd (a pipe on the lowest free descriptor from {} on, named by {TOKEN_FD_VAR}; {TOKEN_VAR} not set)",
                token::pipe::token_fd_floor(config.env.get("LISTEN_FDS"))
            ),
        });
        let shared = mask::shared_paths(&shares, &home_path);
        mask::dry_run(&config, &home_path, program.as_deref(), &shared, report);
        print_plan(
            report,
            &config,
            token.as_ref(),
            program.as_deref(),
            &argv,
            &child,
        );
        return Ok(Outcome::Success);
    }
    let program = program.expect("resolved unless dry run");
    // The mask's plan and every refusal of it, before anything changes.
    let shared = mask::shared_paths(&shares, &home_path);
    let mask_plan = mask::prepare(&config, &home_path, Some(&program), &shared, report)?;
    // Claimed (`home::Claim`) until the exec: `homes prune` cannot take it meanwhile.
    let home = home::apply(&config, home_state, report)?;
    homes::stamp_launch(&home)?;
    seed::apply(&home, &seed_state, report)?;
    if !outer_home {
        share::apply(&config, &home, &shares, &limits, report)?;
    }
    if home.path != home_path {
        // Created just now: the command gets the canonical path of what was made.
        child.set("HOME", home.path.as_os_str());
    }
    // The real credential files are masked from here on (home and seed needed the real
    // filesystem); the namespace starts the process at its `/`, hence the change of
    // directory.
    // The broker is forked before the mask: it stays outside the command's namespaces.
    if let (BrokerChoice::Own(plan), Some(token)) = (&broker, &token) {
        broker::start(plan, token)?;
    }
    let masked = mask::launch(&config, mask_plan, &home.path, report)?;
    if let (BrokerChoice::None, Some(token), TokenVia::Fd) = (&broker, &token, via) {
        let fd = token::pipe::token_pipe(
            token,
            token::pipe::token_fd_floor(config.env.get("LISTEN_FDS")),
        )?;
        child.set(TOKEN_FD_VAR, std::ffi::OsStr::new(&fd.to_string()));
    }
    drop(token);
    if config.chdir || masked {
        std::env::set_current_dir(&config.workdir).map_err(|e| Error::Cwd {
            path: config.workdir.clone(),
            reason: error_text(&e),
        })?;
    }
    let prepared = exec::prepare(&program, &argv, &child.vars)?;
    // Released by the exec (close-on-exec), once the command has the home as `HOME`.
    let _claim = home.into_claim();
    init::release_held_signals();
    let errno = exec::exec(&prepared);
    Err(exec::exec_error(errno, prepared.shown()))
}

/// Whether this claude-iso runs inside another one's session and launches into that
/// session's own home (its `HOME`).
fn in_outer_home(config: &Config) -> bool {
    let canonical = |p: &std::path::Path| std::fs::canonicalize(p).ok();
    config
        .env
        .get(crate::layout::NESTED_VAR)
        .is_some_and(|v| !v.is_empty())
        && config
            .env
            .absolute_path("HOME")
            .and_then(&canonical)
            .is_some_and(|h| Some(h) == canonical(&config.home))
}

/// `claude` not on `PATH` on a new machine: say how to install it.
fn not_found_hint(e: Error, command: &std::ffi::OsStr) -> Error {
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

/// How the command reaches the API when it does through a broker.
enum BrokerChoice {
    /// No broker: the token goes to the command (`--token-via fd|env`, or not claude).
    None,
    /// A broker of this launch's own, forked before the exec.
    Own(broker::BrokerPlan),
    /// A shared broker (`--broker`, or the one of the claude-iso session this runs in):
    /// no token is read.
    Shared(std::path::PathBuf),
}

impl BrokerChoice {
    fn via(&self, config: &Config, command: &std::ffi::OsStr) -> TokenVia {
        match self {
            BrokerChoice::None => TokenVia::for_command(config.token_via, command),
            _ => TokenVia::Broker,
        }
    }
}

/// `--broker`, the session's own broker for a nested launch, a broker of our own, or
/// none; checked before anything changes.
fn broker_choice(config: &Config, command: &std::ffi::OsStr) -> Result<BrokerChoice> {
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
        .get(layout::NESTED_VAR)
        .is_some_and(|v| !v.is_empty())
        .then(|| config.env.absolute_path(broker::SOCKET_VAR))
        .flatten()
        .filter(|_| config.env.get(TOKEN_VAR) == Some(std::ffi::OsStr::new(broker::PLACEHOLDER)));
    if let Some(socket) = nested_socket {
        return Ok(BrokerChoice::Shared(socket.to_path_buf()));
    }
    Ok(BrokerChoice::Own(broker::plan(&config.env)?))
}

fn print_plan(
    report: &Report,
    config: &Config,
    token: Option<&token::Token>,
    program: Option<&std::path::Path>,
    argv: &[OsString],
    child: &environment::ChildEnv,
) {
    let redact = |s: &str| match token {
        Some(token) => s.replace(token.expose(), &token.redacted()),
        None => s.to_owned(),
    };
    report.plan(format!("cwd: {}", config.workdir.display()));
    if let Some(program) = program {
        report.plan(format!("command: {}", program.display()));
    }
    let shown: Vec<String> = argv
        .iter()
        .map(|a| shell_quote(&redact(&a.to_string_lossy())))
        .collect();
    report.plan(format!("argv: {}", shown.join(" ")));
    // The caller's values by name (the first of duplicates, as `get` has it): one lookup
    // per variable keeps a plan of 100 000 variables linear.
    let mut before: std::collections::HashMap<&std::ffi::OsStr, &std::ffi::OsStr> =
        std::collections::HashMap::with_capacity(config.env.vars().len());
    for (k, v) in config.env.vars() {
        before.entry(k.as_os_str()).or_insert(v.as_os_str());
    }
    for (k, v) in &child.vars {
        if before.get(k.as_os_str()) == Some(&v.as_os_str()) {
            continue;
        }
        let k = k.to_string_lossy();
        let v = if k == TOKEN_VAR && v != broker::PLACEHOLDER {
            token.map_or_else(|| "<the caller's>".to_owned(), token::Token::redacted)
        } else if k == TOKEN_FD_VAR {
            // Chosen at the exec, among what is free then (not the floor itself).
            format!(
                "<the token pipe's descriptor, the lowest free from {} on>",
                v.to_string_lossy()
            )
        } else {
            redact(&v.to_string_lossy())
        };
        report.plan(format!("env: set {k}={v}"));
    }
    for name in child.removed.iter().chain(&child.unset) {
        report.plan(format!("env: unset {name}"));
    }
    report.plan("dry run: nothing changed, nothing run");
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
