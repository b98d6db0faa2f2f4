//! The command line, as clap sees it. Checked and resolved into a `Config` elsewhere.

#![forbid(unsafe_code)]

pub(crate) mod fast;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser};
use clap_complete::Shell;

/// Run Claude Code with only a long-lived setup-token: a credential-free scratch HOME,
/// onboarding and folder trust pre-seeded, every other credential removed.
#[derive(Debug, Parser)]
#[command(
    name = "claude-iso",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true,
    subcommand_value_name = "SUBCOMMAND",
    subcommand_help_heading = "Subcommands",
    after_help = "Examples:\n  \
                  claude-iso token set                 store the token `claude setup-token` prints\n  \
                  claude-iso                           run claude\n  \
                  claude-iso -- claude --resume <id>   resume a session\n\
                  More: claude-iso --help, man claude-iso",
    after_long_help = "Examples:\n  \
                  claude-iso token set                 store the token `claude setup-token` prints\n  \
                  claude-iso doctor --live             check everything, and that the token works\n  \
                  claude-iso                           run claude in the current folder\n  \
                  claude-iso -- claude --print 'hi'    one answer, no terminal UI\n  \
                  claude-iso -- claude --resume <id>   resume a session (claude's hint omits claude-iso)\n  \
                  claude-iso --name work -C ~/src/app  a home of its own, in another folder\n  \
                  claude-iso --share default           bring your CLAUDE.md, agents, commands, settings\n\n\
                  COMMAND defaults to `claude`. Everything after `--` is passed verbatim.\n\
                  Exit status: the command's own; 125 if claude-iso fails, 126 if COMMAND \
                  cannot run, 127 if it is not found."
)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<Subcommand>,

    #[command(flatten)]
    pub launch: LaunchArgs,

    /// Print what would happen; change nothing.
    ///
    /// The token is shown as prefix and length only.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Say which token source was used and what was seeded or moved.
    #[arg(short, long, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,

    /// Copy PATH (in your home) into the scratch home, read-only (repeatable).
    ///
    /// `default` stands for .claude/{CLAUDE.md,agents,commands,skills,output-styles,
    /// keybindings.json,settings.json}, .gitconfig and .config/git.
    /// Credential files are always refused.
    #[arg(long, value_name = "PATH|default")]
    pub share: Vec<OsString>,

    /// The command to run, and its arguments [default: claude].
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,

    // Last: its help heading would carry over to the fields after it.
    #[command(flatten)]
    pub init: InitArgs,
}

/// Options shared by the launcher and `doctor`.
#[derive(Debug, Clone, Default, Args)]
pub struct LaunchArgs {
    /// Token file (mode 0600): CLAUDE_CODE_OAUTH_TOKEN=…, or the token alone.
    ///
    /// [env: CLAUDE_ISO_ENV_FILE]
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Scratch HOME [default: $XDG_STATE_HOME/claude-iso/home].
    ///
    /// [env: CLAUDE_ISO_HOME]
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Use the named home $XDG_STATE_HOME/claude-iso/homes/NAME.
    ///
    /// NAME: a letter or digit, then up to 63 of letters, digits, '.', '_', '-'
    /// [env: CLAUDE_ISO_NAME].
    #[arg(long, value_name = "NAME", conflicts_with = "home")]
    pub name: Option<String>,

    /// Change to DIR before running COMMAND (the folder that gets trusted).
    #[arg(short = 'C', long = "cwd", value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Also pre-trust DIR (repeatable).
    #[arg(long, value_name = "DIR")]
    pub trust: Vec<PathBuf>,

    /// Pass a variable through that would be removed (repeatable).
    #[arg(long, value_name = "NAME")]
    pub keep_env: Vec<String>,

    /// Also remove NAME from the command's environment (repeatable).
    ///
    /// A variable the launch removes anyway is then removed without its warning.
    #[arg(long, value_name = "NAME")]
    pub unset: Vec<String>,

    /// How the command gets the token: broker, fd or env.
    ///
    /// `broker` (a process beside it holds the token and forwards its API requests from a Unix socket; the command gets a
    /// placeholder; the default when the command is claude), `fd` (a pipe, read once) or
    /// `env` (CLAUDE_CODE_OAUTH_TOKEN; the default otherwise) [env: CLAUDE_ISO_TOKEN_VIA].
    #[arg(long, value_name = "WAY", value_parser = ["broker", "fd", "env"], hide_possible_values = true)]
    pub token_via: Option<String>,

    /// Use the shared broker listening on this socket; read no token.
    ///
    /// The broker is `claude-iso broker serve`; no token need exist for this user
    /// [env: CLAUDE_ISO_BROKER].
    #[arg(long, value_name = "SOCKET", conflicts_with = "token_via")]
    pub broker: Option<PathBuf>,

    /// Let project settings bring a credential or redirect the token.
    ///
    /// On purpose: the guard refuses them otherwise [env: CLAUDE_ISO_ALLOW_PROJECT_AUTH=1].
    #[arg(long)]
    pub allow_project_auth: bool,

    /// Do not pre-trust the working directory.
    ///
    /// The interactive claude asks its own question (onboarding is still seeded; --trust DIRs are still trusted; trust
    /// already recorded in the home is left as it is).
    #[arg(long)]
    pub no_trust: bool,

    /// Hide the real credential files from the command: auto, on, off.
    ///
    /// With a private mount namespace: auto (when the kernel allows), on (or exit 125),
    /// off [env: CLAUDE_ISO_MASK].
    #[arg(long, value_name = "WHEN", hide_possible_values = true)]
    pub mask: Option<Switch>,

    /// Have claude keep credentials from its tools: off, auto, on.
    ///
    /// CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1; needs bubblewrap; claude then writes empty
    /// stubs into the working directory. off (the default; the caller's value passes),
    /// auto (when bubblewrap is there), on (or exit 125) [env: CLAUDE_ISO_SCRUB_TOOLS].
    #[arg(long, value_name = "WHEN", hide_possible_values = true)]
    pub scrub_tools: Option<Switch>,
}

impl LaunchArgs {
    /// These options as a command line again (for `doctor --live`, which runs the
    /// launcher itself), without `--home`, which the caller chooses.
    #[must_use]
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut push = |flag: &str, value: OsString| {
            out.push(flag.into());
            out.push(value);
        };
        if let Some(p) = &self.env_file {
            push("--env-file", p.into());
        }
        if let Some(p) = &self.cwd {
            push("--cwd", p.into());
        }
        for p in &self.trust {
            push("--trust", p.into());
        }
        for n in &self.keep_env {
            push("--keep-env", n.into());
        }
        for n in &self.unset {
            push("--unset", n.into());
        }
        if let Some(way) = &self.token_via {
            push("--token-via", way.into());
        }
        if let Some(p) = &self.broker {
            push("--broker", p.into());
        }
        if let Some(m) = self.mask {
            push("--mask", m.as_str().into());
        }
        if let Some(s) = self.scrub_tools {
            push("--scrub-tools", s.as_str().into());
        }
        if self.allow_project_auth {
            out.push("--allow-project-auth".into());
        }
        if self.no_trust {
            out.push("--no-trust".into());
        }
        out
    }
}

/// The minimal init (`--init`): options shared by the launcher and `doctor`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Init options (PID 1)")]
pub struct InitArgs {
    /// Stay as a minimal init [automatic when claude-iso is PID 1].
    ///
    /// Fork, reap zombies, forward signals, end as the command ended
    /// [env: CLAUDE_ISO_INIT=1].
    #[arg(long, conflicts_with = "no_init")]
    pub init: bool,

    /// Never be an init, not even as PID 1 [env: CLAUDE_ISO_INIT=0].
    #[arg(long)]
    pub no_init: bool,

    /// The command in a process group of its own (implies --init).
    ///
    /// The group gets the terminal, and signals are forwarded to the whole group.
    #[arg(long, conflicts_with = "no_init")]
    pub init_group: bool,

    /// With the init: seconds from SIGTERM to SIGKILL for leftovers.
    ///
    /// Processes left after the command exits get SIGTERM, then SIGKILL after this many
    /// seconds [default: 10] [env: CLAUDE_ISO_INIT_GRACE].
    #[arg(long, value_name = "SECONDS")]
    pub init_grace: Option<u32>,
}

impl InitArgs {
    /// The options as given, for a launch run by `doctor --live`.
    #[must_use]
    pub fn to_args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        for (on, flag) in [
            (self.init, "--init"),
            (self.no_init, "--no-init"),
            (self.init_group, "--init-group"),
        ] {
            if on {
                out.push(flag.into());
            }
        }
        if let Some(secs) = self.init_grace {
            out.push("--init-grace".into());
            out.push(secs.to_string().into());
        }
        out
    }
}

/// A feature's setting: on when possible, always (or fail), never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Switch {
    /// When possible; say why not when it is not.
    #[default]
    Auto,
    /// Always; exit 125 when impossible.
    On,
    /// Never.
    Off,
}

impl Switch {
    /// Parses a variable's value (`auto`, `on`, `off`).
    #[must_use]
    pub fn parse(value: &str) -> Option<Switch> {
        match value {
            "auto" => Some(Switch::Auto),
            "on" => Some(Switch::On),
            "off" => Some(Switch::Off),
            _ => None,
        }
    }

    /// The value as written on the command line.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Switch::Auto => "auto",
            Switch::On => "on",
            Switch::Off => "off",
        }
    }
}

// Parsed once per run: the size of the doctor's options costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Check the token, the scratch home, the seed and the environment; change nothing.
    Doctor(DoctorArgs),
    /// Store the setup-token (`token set`) or show how old it is (`token status`).
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the scratch homes; `homes prune` removes those not launched for a while.
    ///
    /// Each with its size, last launch, seeded directories and files set aside.
    Homes(HomesArgs),
    /// Hold the token for a fleet's agents (`broker serve`); show its use (`broker status`).
    ///
    /// For agents that run as other users and never hold the token.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub launch: LaunchArgs,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Also run claude once, isolated as the launcher would, and expect AUTH_OK back.
    #[arg(long)]
    pub live: bool,

    /// Check these shares as the launcher would (`--share`, repeatable): what would be
    /// copied in, or why the launcher would refuse.
    #[arg(long, value_name = "PATH|default")]
    pub share: Vec<OsString>,

    // Last: its help heading would carry over to the fields after it.
    #[command(flatten)]
    pub init: InitArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum BrokerCommand {
    /// Hold the token and forward the API requests of every allowed client that connects
    /// to the socket, until SIGTERM (SIGHUP reads the token again).
    Serve(BrokerServeArgs),
    /// Show the broker's destination and its requests and usage per client since start.
    Status(BrokerStatusArgs),
}

#[derive(Debug, Args)]
pub struct BrokerServeArgs {
    /// Listen on this Unix socket, made by the broker (0600; 0666 with --allow-user or
    /// --allow-group, the peer check deciding). Without it: the socket systemd passes
    /// (socket activation, LISTEN_FDS).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Also answer this user's connections (a name or a uid; repeatable). The broker's own
    /// user is always answered.
    #[arg(long, value_name = "USER")]
    pub allow_user: Vec<String>,

    /// Also answer connections of this group's members (a name or a gid; repeatable).
    #[arg(long, value_name = "GROUP")]
    pub allow_group: Vec<String>,

    /// Env file holding the token (or the token alone), as for a launch
    /// [env: CLAUDE_ISO_ENV_FILE]; also a systemd credential or the environment.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Seconds requests in flight may take to finish after SIGTERM [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub grace: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BrokerStatusArgs {
    /// The broker's socket [env: CLAUDE_ISO_BROKER].
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Read the token from the terminal without echo (or from stdin when it is not a
    /// terminal), check it, and store it in the env file (mode 0600).
    Set(TokenSetArgs),
    /// Show where the token comes from, its prefix and length, its age and the days left
    /// of its 365-day lifetime.
    Status(TokenStatusArgs),
}

#[derive(Debug, Args)]
pub struct TokenSetArgs {
    /// The env file to write [default: $XDG_CONFIG_HOME/claude-iso/token.env]
    /// [env: CLAUDE_ISO_ENV_FILE].
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TokenStatusArgs {
    /// Env file holding CLAUDE_CODE_OAUTH_TOKEN=… [env: CLAUDE_ISO_ENV_FILE].
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct HomesArgs {
    #[command(subcommand)]
    pub action: Option<HomesAction>,

    /// Print the list as JSON (schema: see the manual, HOMES).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum HomesAction {
    /// Remove homes not launched for DAYS days; never one in use, never a quarantined
    /// credentials file unless --delete-quarantined.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove homes whose last launch is at least DAYS days ago (0: every home not in use).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub older_than: u64,

    /// Say what would be removed; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Also remove homes holding a quarantined credentials file (deleting it; each one is named).
    #[arg(long)]
    pub delete_quarantined: bool,
}

/// clap's usage error in one line, its detail kept: the missing argument's name, the
/// possible values, the similar option, the subcommands to choose from.
#[must_use]
pub fn one_line(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    let text = e.render().to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
    ) {
        // clap renders the subcommand's help; its usage line names the subcommand.
        let usage = lines
            .iter()
            .find_map(|l| l.strip_prefix("Usage: "))
            .unwrap_or("claude-iso");
        let path: Vec<&str> = usage
            .split_whitespace()
            .skip(1)
            .take_while(|w| !w.starts_with(['<', '[']))
            .collect();
        let mut cmd = <Cli as clap::CommandFactory>::command();
        for word in &path {
            match cmd.find_subcommand(word) {
                Some(sub) => cmd = sub.clone(),
                None => break,
            }
        }
        let names: Vec<&str> = cmd.get_subcommands().map(clap::Command::get_name).collect();
        return format!(
            "{}: a subcommand is required, one of: {} (usage: {usage})",
            path.join(" "),
            names.join(", ")
        );
    }
    let mut out = String::new();
    // The error, then its detail, then (after a blank line) the usage: kept up to there.
    for l in lines.iter().take_while(|l| !l.starts_with("Usage:")) {
        // "to pass '--x' as a value, use '-- --x'": the caller's own hint says where `--` goes.
        if l.is_empty() || l.starts_with("tip: to pass") || l.starts_with("For more information") {
            continue;
        }
        let l = l.trim_start_matches("error: ");
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') || l.starts_with('[') {
                " "
            } else {
                "; "
            });
        }
        out.push_str(l);
    }
    if out.is_empty() {
        "invalid arguments".into()
    } else {
        out
    }
}

/// The completion script for `shell`, as clap_complete writes it, mended: `--name`
/// offers the existing named homes ($XDG_STATE_HOME/claude-iso/homes) instead of files,
/// in bash, zsh and fish; and for bash, clap_complete names the states of a binary with
/// a hyphen inconsistently (the loop sets `claude__iso__subcmd__token`, the cases test
/// `claude__subcmd__iso__subcmd__token`), so every subcommand fell back to file names.
/// Each replacement must match: a clap_complete that writes its scripts differently
/// fails the completion tests instead of quietly offering files again.
#[must_use]
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "claude-iso", &mut script);
    let text = String::from_utf8_lossy(&script);
    let text = match shell {
        Shell::Bash => text.replace("claude__subcmd__iso", "claude__iso").replace(
            "                --name)\n                    COMPREPLY=($(compgen -f \"${cur}\"))",
            "                --name)\n                    COMPREPLY=($(cd \"${XDG_STATE_HOME:-$HOME/.local/state}/claude-iso/homes\" 2>/dev/null && compgen -d -- \"${cur}\"))",
        ),
        Shell::Zsh => text
            .replace("#compdef claude-iso\n", ZSH_HOMES)
            .replace(
                "/claude-iso/homes/NAME]:NAME:_default'",
                "/claude-iso/homes/NAME]:NAME:_claude_iso_homes'",
            ),
        Shell::Fish => {
            let text = text
                .replace(
                    "/claude-iso/homes/NAME' -r\n",
                    "/claude-iso/homes/NAME' -r -f -a '(__fish_claude_iso_homes)'\n",
                )
                .replace(FISH_PARSE, FISH_PARSE_PENDING);
            format!("{FISH_HOMES}{text}")
        }
        _ => text.into_owned(),
    };
    text.into_bytes()
}

/// The named homes, for zsh's `--name`: `_files -/ -W DIR` offers the directories in
/// DIR by name (a function, as `_arguments` splits an action's words before expanding).
const ZSH_HOMES: &str = "#compdef claude-iso

_claude_iso_homes() {
    _files -/ -W \"${XDG_STATE_HOME:-$HOME/.local/state}/claude-iso/homes\"
}
";

/// clap_complete's fish script decides "no subcommand yet" by parsing the line so far,
/// which fails while a launcher option waits for its value (`claude-iso --name <TAB>`):
/// then no launcher option's values were offered. Parsed again with a stand-in value, the
/// line has no subcommand, as it should.
const FISH_PARSE: &str = "    argparse -s (__fish_claude_iso_global_optspecs) -- $cmd 2>/dev/null
    or return
";
const FISH_PARSE_PENDING: &str =
    "    argparse -s (__fish_claude_iso_global_optspecs) -- $cmd 2>/dev/null
    or argparse -s (__fish_claude_iso_global_optspecs) -- $cmd VALUE 2>/dev/null
    or return
";

/// The named homes, for fish's `--name`: fish has no `${VAR:-default}`.
const FISH_HOMES: &str = "function __fish_claude_iso_homes
    set -l state $XDG_STATE_HOME
    test -n \"$state\"; or set state $HOME/.local/state
    for home in $state/claude-iso/homes/*/
        basename $home
    end
end

";
