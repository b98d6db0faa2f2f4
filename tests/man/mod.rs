//! The man page: clap's definition rendered by clap_mangen, plus hand-written sections.
//!
//! The NAME line and the option lists come from [`claude_iso::cli::Cli`], so they cannot drift
//! from `--help`; the lists of scrubbed variables, file names and exit statuses come from
//! the constants the launcher uses. The output is deterministic (no date; the footer
//! names the crate version) because `man/claude-iso.1` is this output, checked in and
//! compared by `tests/docs.rs`. Regenerate it with
//! `CLAUDE_ISO_UPDATE_MAN=1 cargo test --test docs`.
//!
//! Hand-written text uses a two-marker markup: `**bold**` and `__italic__`. Everything
//! else is escaped for roff by the `roff` crate, and non-ASCII characters are written as
//! roff escapes so the page needs no input encoding.

use clap::{Arg, Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

use claude_iso::cli::Cli;
use claude_iso::error::{EXIT_CANNOT_RUN, EXIT_FAILURE, EXIT_NOT_FOUND};
use claude_iso::isolate::share::{DEFAULT_SET, REFUSED};
use claude_iso::layout::{
    ALLOW_PROJECT_AUTH_VAR, CLAUDE_DIR, CLAUDE_JSON, CLAUDE_LOCK, CREDENTIAL_NAME, CREDENTIALS,
    DEVICE_KEYS, DIALOG_COUNTERS, DIALOG_FLAGS, DIALOGS_MEASURED, INIT_GRACE_VAR, INIT_VAR,
    LOCK_TIMEOUT, NESTED_VAR, OWN_LOCK, PENDING_PREFIX, STALE_AFTER, TOKEN_VAR,
};
use claude_iso::scrub::{KEEP, LISTED, NAMESPACES, RULES};
use claude_iso::token::MAX_ENV_FILE;

/// The full `man/claude-iso.1` text.
#[must_use]
pub fn render() -> Vec<u8> {
    let cmd = Cli::command();
    let mut page = Page::new();
    page.title(&cmd);
    page.mangen(Man::new(cmd.clone()), Man::render_name_section);
    synopsis(&mut page, &cmd);
    description(&mut page);
    options(&mut page, &cmd);
    subcommands(&mut page, &cmd);
    exit_status(&mut page);
    init(&mut page);
    environment(&mut page);
    files(&mut page);
    project_settings(&mut page);
    security(&mut page);
    examples(&mut page);
    see_also(&mut page);
    page.finish().into_bytes()
}

/// A roff document assembled from hand-written blocks and clap_mangen sections.
struct Page {
    out: String,
    roff: Roff,
    /// The last thing written was a heading: a paragraph starts without `.PP`.
    after_heading: bool,
}

impl Page {
    fn new() -> Self {
        Page {
            // The apostrophe preamble every `roff` rendering starts with, written once.
            out: Roff::new().render(),
            roff: Roff::new(),
            after_heading: false,
        }
    }

    /// Moves the hand-written blocks so far into the output.
    fn flush(&mut self) {
        let roff = std::mem::take(&mut self.roff);
        self.out.push_str(&without_preamble(&roff.render()));
    }

    fn finish(mut self) -> String {
        self.flush();
        ascii_only(&self.out)
    }

    /// `.TH`: written here because `roff` drops an empty date argument instead of
    /// quoting it, which shifts the source into the date's place.
    fn title(&mut self, cmd: &Command) {
        let name = cmd.get_name();
        let version = cmd.get_version().unwrap_or_default();
        self.out.push_str(&format!(
            ".TH {} 1 \"\" \"{} {version}\" \"User Commands\"\n",
            escape_arg(&name.to_uppercase()),
            escape_arg(name),
        ));
        // Identifiers and paths fill this page: no hyphenation, no stretched spaces.
        self.out.push_str(".nh\n.ad l\n");
    }

    /// Splices in roff text as it is.
    fn raw(&mut self, text: &str) {
        self.after_heading = false;
        self.flush();
        self.out.push_str(text);
    }

    /// Splices in one section rendered by clap_mangen.
    fn mangen(
        &mut self,
        man: Man,
        section: impl FnOnce(&Man, &mut dyn std::io::Write) -> std::io::Result<()>,
    ) {
        self.after_heading = false;
        self.flush();
        self.out
            .push_str(&without_preamble(&mangen_text(&man, section)));
    }

    fn sh(&mut self, heading: &str) {
        self.roff.control("SH", [escape_arg(heading).as_str()]);
        self.after_heading = true;
    }

    fn ss(&mut self, heading: &str) {
        self.roff.control("SS", [escape_arg(heading).as_str()]);
        self.after_heading = true;
    }

    /// Starts a paragraph (`.PP` is redundant, and linted, right after a heading).
    fn paragraph(&mut self) {
        if !std::mem::take(&mut self.after_heading) {
            self.roff.control("PP", []);
        }
    }

    /// A paragraph.
    fn p(&mut self, text: &str) {
        self.paragraph();
        self.roff.text(inlines(text));
    }

    /// A text line continuing the current paragraph or list item.
    fn line(&mut self, text: &str) {
        self.after_heading = false;
        self.roff.text(inlines(text));
    }

    /// A tagged paragraph: `term` on its own line, `text` indented below.
    fn tp(&mut self, term: &str, text: &str) {
        self.after_heading = false;
        self.roff.control("TP", []);
        self.roff.text(inlines(term));
        self.roff.text(inlines(text));
    }

    /// A bulleted list item.
    fn bullet(&mut self, text: &str) {
        self.after_heading = false;
        self.roff.control("IP", [r"\(bu", "2"]);
        self.roff.text(inlines(text));
    }

    /// A numbered list item.
    fn numbered(&mut self, n: usize, text: &str) {
        self.after_heading = false;
        self.roff.control("IP", [format!("{n}.").as_str(), "4"]);
        self.roff.text(inlines(text));
    }

    /// Lines shown as they are (commands, file contents), indented.
    fn code(&mut self, lines: &[&str]) {
        self.paragraph();
        self.roff.control("RS", ["4"]);
        self.roff.control("nf", []);
        for line in lines {
            if line.is_empty() {
                self.roff.control("sp", []);
            } else {
                self.roff.text([roman(*line)]);
            }
        }
        self.roff.control("fi", []);
        self.roff.control("RE", []);
    }
}

/// Renders one clap_mangen section to text.
fn mangen_text(
    man: &Man,
    section: impl FnOnce(&Man, &mut dyn std::io::Write) -> std::io::Result<()>,
) -> String {
    let mut buf = Vec::new();
    section(man, &mut buf).expect("writing to a Vec cannot fail");
    String::from_utf8(buf).expect("clap_mangen writes UTF-8")
}

fn without_preamble(text: &str) -> String {
    let preamble = Roff::new().render();
    text.strip_prefix(&preamble).unwrap_or(text).to_owned()
}

/// A macro argument: `roff` passes control arguments through unescaped, and an
/// unescaped `-` is a hyphen (U+2010 in UTF-8 output), which breaks copy and paste.
fn escape_arg(s: &str) -> String {
    s.replace('\\', r"\e").replace('-', r"\-")
}

/// Non-ASCII characters as roff escapes, so the page renders the same without
/// `preconv`, whatever the locale and on an ASCII terminal: the usual punctuation by its
/// classic name (which every output device can draw), anything else as `\[uXXXX]`.
fn ascii_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let escaped = match c {
            c if c.is_ascii() => {
                out.push(c);
                continue;
            }
            '\u{2026}' if out.is_empty() || out.ends_with('\n') => r"\&...",
            '\u{2026}' => "...",
            '\u{2014}' => r"\(em",
            '\u{2013}' => r"\(en",
            '\u{2018}' => r"\(oq",
            '\u{2019}' => r"\(cq",
            '\u{201C}' => r"\(lq",
            '\u{201D}' => r"\(rq",
            '\u{2022}' => r"\(bu",
            '\u{2192}' => r"\(->",
            c => {
                out.push_str(&format!(r"\[u{:04X}]", u32::from(c)));
                continue;
            }
        };
        out.push_str(escaped);
    }
    out
}

/// `**bold**` and `__italic__` markup to roff inlines.
fn inlines(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut buf = String::new();
    let (mut in_bold, mut in_italic) = (false, false);
    let mut rest = text;
    let push = |out: &mut Vec<Inline>, buf: &mut String, b: bool, i: bool| {
        if !buf.is_empty() {
            let s = std::mem::take(buf);
            out.push(if b {
                bold(s)
            } else if i {
                italic(s)
            } else {
                roman(s)
            });
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("**") {
            push(&mut out, &mut buf, in_bold, in_italic);
            in_bold = !in_bold;
            rest = r;
        } else if let Some(r) = rest.strip_prefix("__") {
            push(&mut out, &mut buf, in_bold, in_italic);
            in_italic = !in_italic;
            rest = r;
        } else {
            buf.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    assert!(
        !in_bold && !in_italic,
        "unbalanced ** or __ in man page text: {text}"
    );
    push(&mut out, &mut buf, false, false);
    out
}

/// `--long`, `-s, --long` or the value name, as written in the option list.
fn flag_names(arg: &Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}/--{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => arg.get_id().to_string(),
    }
}

fn synopsis(page: &mut Page, cmd: &Command) {
    let shells = completion_shells(cmd).join("|");
    page.sh("SYNOPSIS");
    page.line("**claude-iso** [__OPTIONS__] [**--** __COMMAND__ [__ARG__...]]");
    page.roff.control("br", []);
    page.line("**claude-iso doctor** [**--json**] [**--live**] [__OPTIONS__]");
    page.roff.control("br", []);
    page.line("**claude-iso token set** [**--env-file** __PATH__]");
    page.roff.control("br", []);
    page.line("**claude-iso token status** [**--json**] [**--env-file** __PATH__]");
    page.roff.control("br", []);
    page.line("**claude-iso homes** [**--json**]");
    page.roff.control("br", []);
    page.line(
        "**claude-iso homes prune** [**--older-than** __DAYS__] [**--dry-run**] \
        [**--delete-quarantined**]",
    );
    page.roff.control("br", []);
    page.line(
        "**claude-iso broker serve** [**--socket** __PATH__] [**--allow-user** __USER__] \
        [**--allow-group** __GROUP__] [**--env-file** __PATH__] [**--grace** __SECONDS__]",
    );
    page.roff.control("br", []);
    page.line("**claude-iso broker status** [**--socket** __PATH__] [**--json**]");
    page.roff.control("br", []);
    page.line(&format!("**claude-iso completions** {shells}"));
}

fn description(page: &mut Page) {
    page.sh("DESCRIPTION");
    page.p(
        "**claude-iso** runs __COMMAND__ (by default **claude**, Claude Code) so that \
        the only credential it can use is one long-lived setup-token, the \
        **sk-ant-oat01-**... token that **claude setup-token** prints. It is meant for \
        agents, unit files and scripts that run many Claude Code sessions at once \
        under one account.",
    );
    page.p(
        "Sessions that share **~/.claude/.credentials.json** share one refresh token, \
        and it rotates: once one session has refreshed, the others hold a used one, and \
        when their refresh is refused claude blanks the file, logging out every session \
        that shares it. Variables such as **ANTHROPIC_API_KEY** left \
        in an environment silently take precedence over the token. **claude-iso** \
        removes both problems. In order, it:",
    );
    page.numbered(
        1,
        "reads the token (see __Token sources__ below) and checks its shape: \
        **sk-ant-oat**, two digits, **-**, then URL-safe base64. An API key \
        (**sk-ant-api**...) or a refresh token (**sk-ant-ort**...) is refused with its \
        own message;",
    );
    page.numbered(
        2,
        "resolves __COMMAND__ on the caller's **PATH**, before **HOME** changes (claude \
        often lives in **~/.local/bin**);",
    );
    page.numbered(
        3,
        &format!(
            "creates or checks the scratch home, a directory that becomes claude's **HOME** \
            (see **--home**), and moves any **{CLAUDE_DIR}/{CREDENTIALS}** in it aside;"
        ),
    );
    let answers = DIALOG_COUNTERS
        .iter()
        .map(|(key, limit)| format!("**{key}** raised to {limit}"))
        .chain(DIALOG_FLAGS.iter().map(|key| format!("**{key}** true")))
        .collect::<Vec<_>>()
        .join(", ");
    page.numbered(
        4,
        &format!(
            "seeds **{CLAUDE_JSON}** in the scratch home with **hasCompletedOnboarding** \
            and with **hasTrustDialogAccepted** for the working directory (its real path) \
            and each **--trust** directory, so the interactive TUI starts without its \
            first-run and folder-trust dialogs; and with the answers to the questions \
            claude asks at start in a home that is not fresh ({answers}). Every other key \
            is kept. Nothing is written when all are already set;"
        ),
    );
    page.numbered(
        5,
        &format!(
            "builds __COMMAND__'s environment: the caller's, minus every variable that \
            carries or relocates another credential, plus **HOME** (the canonical path of \
            the checked home), **{NESTED_VAR}=1** and a way to the API: for claude, a \
            broker's socket (**ANTHROPIC_UNIX_SOCKET**, **ANTHROPIC_BASE_URL=http://localhost** \
            and the placeholder **{TOKEN_VAR}=ssh-placeholder**; the token stays in the \
            broker), for any other command the token in **{TOKEN_VAR}** (see \
            **--token-via**, SECURITY and ENVIRONMENT);"
        ),
    );
    page.numbered(
        6,
        "changes to the **-C** directory, if given, and replaces itself with \
        __COMMAND__ (**execve**(2)): same process ID, so __COMMAND__'s exit status and \
        signals are the caller's, as with **env**(1). No file descriptor or lock of \
        claude-iso's survives into __COMMAND__ but the token pipe of **--token-via fd**. \
        The broker, forked just before, lives beside __COMMAND__ and ends with it.",
    );
    page.p(
        "Errors are one line on standard error, prefixed **claude-iso:**, and name \
        paths, line numbers and variable names, never a token. Warnings (a variable \
        removed, a file moved aside) are printed the same way unless **--quiet** is \
        given.",
    );

    page.ss("Token sources");
    page.p(
        "With **--env-file** (or **CLAUDE_ISO_ENV_FILE**) that file is the only source; \
        if it is missing, that is an error. Otherwise the first of these that exists \
        is used, and a problem with it is an error (claude-iso does not fall back to \
        the next):",
    );
    page.numbered(
        1,
        &format!(
            "**$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}**, the credential a systemd unit \
            passes with **LoadCredential={CREDENTIAL_NAME}:**__PATH__. The file holds the \
            bare token (trailing newline allowed) or, if it starts with **{TOKEN_VAR}** or \
            **export**, an env file;"
        ),
    );
    page.numbered(
        2,
        &format!("**{TOKEN_VAR}** already set (non-empty) in the environment;"),
    );
    page.numbered(
        3,
        "**$XDG_CONFIG_HOME/claude-iso/token.env** (by default \
        **~/.config/claude-iso/token.env**);",
    );
    page.numbered(
        4,
        "**~/.config/claude-auth-sync/claude-oauth.env**, the file existing \
        claude-auth-sync setups already write.",
    );
    page.p(
        "If none exists, claude-iso fails and names every place it looked. \
        **--verbose** says which source was used; **--dry-run** and **doctor** show it \
        too.",
    );

    page.ss("Env file format");
    page.p(&format!(
        "A strict subset of systemd's **EnvironmentFile=**: blank lines, comment lines \
        starting with **#** or **;**, and **KEY=VALUE** lines with an optional \
        **export** prefix. Values may be unquoted (surrounding whitespace trimmed), \
        single-quoted (literal) or double-quoted; CRLF line ends are accepted. There \
        is no variable expansion. Only **{TOKEN_VAR}** is used and it must appear \
        exactly once; other variables are not exported to the command (a launch names \
        them in a note, **doctor** in its **env_file** line; set them in the \
        environment, where they pass through); a line setting a variable that claude-iso removes (such as \
        **ANTHROPIC_API_KEY**) is refused, and so is anything systemd or a shell would \
        read differently (unbalanced quotes, a trailing backslash, control \
        characters)."
    ));
    page.p(&format!(
        "The file must be a regular file of at most {} KiB, owned by you or root, with \
        no permissions for group or others (**chmod 600**), the rule ssh applies to \
        private keys. A file under **$CREDENTIALS_DIRECTORY** is exempt from the owner \
        and mode check: systemd makes that directory private.",
        MAX_ENV_FILE / 1024
    ));
    page.code(&[
        "# ~/.config/claude-iso/token.env  (chmod 600)",
        "CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-...",
    ]);
    page.p(
        "**claude-iso token set** writes this file for you. A token shorter than 80 \
        characters is refused (it \"looks truncated\"): every setup-token seen so far is 108 \
        characters long (**sk-ant-oat01-** and 95 more), and 80 leaves room for a \
        format change. Text before **sk-ant-** (quotes, **Bearer**, a __NAME__**=**) is \
        refused with its own message; **token set** takes a line copied from an env \
        file (**CLAUDE_CODE_OAUTH_TOKEN=**..., with **export** or quotes) as its token.",
    );

    page.ss("The scratch home");
    page.p(
        "It is created with mode 0700 (missing parents too). One that exists must be a \
        real directory, not a symbolic link, owned by you and not writable by group or \
        others; if it is readable by them, claude-iso tightens it to 0700. It must not \
        be your real home (**$HOME** or your passwd entry's home), an ancestor of it, \
        or inside your real **~/.claude** or **$CLAUDE_CONFIG_DIR** (nor hold one as \
        its **.claude**). Every directory above it must be yours or root's and not \
        writable by group or others unless sticky, as ssh's StrictModes demands. \
        Inside it, **.claude** must be a directory and **.claude.json** a regular \
        file, not symbolic links. Anything else is an error, nothing is created and \
        nothing is run.",
    );
    page.p(&format!(
        "The scratch home is claude's whole **HOME**: its settings \
        (**{CLAUDE_DIR}/settings.json**), memory (**{CLAUDE_DIR}/CLAUDE.md**), agents, \
        commands, sessions and history live there, not in your real home. Put there \
        what claude and the tools it runs should find, for instance a **.gitconfig**. \
        One scratch home can serve any number of concurrent sessions; give unrelated \
        agents separate ones: **--name** __NAME__ gives each its own home under \
        **$XDG_STATE_HOME/claude-iso/homes/** without inventing paths, and \
        **claude-iso homes** lists them."
    ));

    page.ss("Sharing your own configuration (--share)");
    page.p(&format!(
        "**--share** __PATH__ (repeatable) carries a file or directory of your real \
        home into the scratch home, read-only; __PATH__ is relative to your home \
        (**~/**__PATH__ and an absolute path inside it work too). **--share default** \
        stands for {}, with **.config/git** taken from **$XDG_CONFIG_HOME/git** when \
        that is set; those missing in your home are skipped. The command sees each as \
        it is in your real home at launch.",
        DEFAULT_SET
            .iter()
            .map(|s| format!("**{s}**"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    page.p(&format!(
        "A credentials file never comes in: {}, anything inside them or containing \
        them, any file named **{CREDENTIALS}**__*__, **{DEVICE_KEYS}**__*__ or \
        **{CLAUDE_JSON}**__*__, or set aside as a credential (__name__**.quarantined-**__*__, \
        __name__**.replaced-**__*__), at any depth of a shared directory, claude-iso's token \
        files, claude-iso's scratch homes (**$XDG_STATE_HOME/claude-iso**, the scratch \
        home in use), and any symbolic \
        link that leads to one of these are refused with exit status 125, before \
        anything is created. Every entry is judged by where it really leads, against \
        what the mask hides or empties: into the real **~/{CLAUDE_DIR}** only what a \
        **--share** names there; never into a config directory named by \
        **CLAUDE_CONFIG_DIR** or **CLAUDE_SECURESTORAGE_CONFIG_DIR**, an Anthropic \
        profile store (**$ANTHROPIC_CONFIG_DIR**, **$XDG_CONFIG_HOME/anthropic**), \
        **/home/claude/.claude/remote**, or a directory holding one. A hard link is \
        judged by its other names: a second name of any of these files (credentials, \
        **.claude.json**, profile store files, token files, replaced copies, the \
        credentials and quarantined copies of every scratch home), or of a file in the real **~/{CLAUDE_DIR}** no share names, is refused. \
        Refused too: anything on a kernel filesystem (**/proc**, **/sys**, **/dev**), \
        anything but a regular file or a directory (never opened), a file or directory \
        that cannot be read, a tree nested more than 32 levels deep, and the names \
        claude-iso keeps in a scratch home (**.claude-iso**__*__), at any depth. The \
        same checks run \
        for **--dry-run**. Every shared \
        **settings.json** or **settings.local.json** that sets **apiKeyHelper** (or \
        **awsAuthRefresh**, **awsCredentialExport**, **gcpAuthRefresh**) or an **env** \
        entry for a credential variable is refused too, unless \
        **--allow-project-auth**. **--dry-run** lists each share.",
        REFUSED
            .iter()
            .map(|s| format!("**{s}**"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    page.p(
        "Each share is a copy, made at launch when the source changed: files mode \
        0444, directories 0555. Under the mask each copy is also bound read-only onto \
        itself: every change fails, for root too. Without it, a change made anyway (a \
        **chmod** of the copy, a rename over it; root ignores modes) reaches only the \
        copy: the real \
        files are never opened for writing, and the next launch keeps the changed copy \
        aside (__name__**.unshared-**__TIME__**-**__N__) and copies afresh. A symbolic \
        link into the real home is never used, as claude could write through it. A \
        launch without **--share** removes the copies an earlier one made.",
    );
}

fn options(page: &mut Page, cmd: &Command) {
    // The trailing COMMAND is shown as `-- COMMAND [ARG...]` below, not as clap's
    // `[COMMAND]`.
    let listed = cmd.clone().mut_arg("command", |a| a.hide(true));
    page.mangen(Man::new(listed), Man::render_options_section);
    let help = cmd
        .get_positionals()
        .find(|a| a.get_id() == "command")
        .and_then(Arg::get_help)
        .map(ToString::to_string)
        .unwrap_or_default();
    page.tp(
        "**--** __COMMAND__ [__ARG__...]",
        &format!(
            "{help}. Everything after **--** is passed verbatim: empty arguments, arguments \
            that look like options, another **--**. A __COMMAND__ containing a **/** is \
            taken relative to the directory claude-iso was started in, before **-C**."
        ),
    );
    page.p(
        "Relative paths given to **--env-file**, **--home**, **-C** and **--trust** are \
        taken relative to the directory claude-iso was started in. **-C** and \
        **--trust** directories must exist; their real paths (symbolic links resolved) \
        are what gets trusted, because that is the path claude looks up.",
    );
    page.p(
        "**--dry-run** runs every check, then prints the plan on standard output (the \
        scratch home, what would be seeded or moved aside, the token as prefix and \
        length, the resolved command and argument list, each variable set or removed) \
        and exits 0 without changing or running anything. Any problem it can \
        detect without changing anything makes it fail, with the statuses below.",
    );
}

fn subcommands(page: &mut Page, cmd: &Command) {
    page.sh("SUBCOMMANDS");
    let doctor = cmd
        .find_subcommand("doctor")
        .expect("the doctor subcommand");
    page.ss("claude-iso doctor [--json] [--live] [OPTIONS]");
    page.p(&format!(
        "{}. It inspects what a launch with the same options would do, without seeding, \
        moving or creating anything, and prints one check per line: **ok**, **warn** \
        or **fail**, a short detail, and the fix for anything not ok, then a summary \
        line (how many of each). On a terminal, details are folded to 100 columns. The \
        token is shown as prefix and length only.",
        about(doctor)
    ));
    let command_detail = format!(
        "where **claude** resolves on **PATH**, and its version; **warn** when older than \
        the oldest supported release, or newer than {DIALOGS_MEASURED}, the newest whose \
        start-up questions were measured (a question it added may stop the unattended TUI)"
    );
    for (name, what) in [
        (
            "token",
            "which source won, whether other sources exist and hold a different token, the \
            token's shape, and its age and days left when **token set** recorded them \
            (**warn** from 30 days before the end, **fail** after it)",
        ),
        (
            "env_file",
            "owner and mode; **fail** wherever the launcher would refuse the file",
        ),
        (
            "home",
            "the scratch home's path, owner and mode, and whether it exists",
        ),
        (
            "credentials",
            "whether a credentials file sits in the scratch home (the launcher would move \
            it aside)",
        ),
        (
            "seed",
            "whether onboarding, the working directory's trust and the answers to claude's \
            start-up questions are already seeded",
        ),
        ("command", command_detail.as_str()),
        (
            "environment",
            "the names, never the values, of variables the launcher would remove; **warn** \
            when **ANTHROPIC_BASE_URL** is set, naming the host the token would be sent to",
        ),
        (
            "project_settings",
            "the settings files claude would apply for the working directory, judged as \
            the launcher judges them (see PROJECT SETTINGS): **fail** when the launcher \
            would refuse to run, **warn** when **--allow-project-auth** lets them through",
        ),
        (
            "destination",
            "where the token goes (scheme and host, never userinfo) and which layer chose \
            it: the default **https://api.anthropic.com**, **ANTHROPIC_BASE_URL** in the \
            caller's environment, or a settings file; **warn** when it is not an Anthropic \
            host over https, or a proxy is set",
        ),
        (
            "live",
            "with **--live** only: runs claude once, isolated exactly as the launcher \
            would, with a short prompt and a timeout, and is **ok** only if the expected \
            answer comes back. Unlike **claude auth status**, this fails when the API \
            refuses the token",
        ),
    ] {
        page.tp(&format!("**{name}**"), &format!("{what}."));
    }
    let shared: Vec<String> = doctor
        .get_arguments()
        .filter(|a| !a.is_hide_set() && cmd.get_arguments().any(|b| b.get_id() == a.get_id()))
        .map(flag_names)
        .collect();
    page.p(&format!(
        "It exits 0 when no check failed (warnings allowed) and 1 when one did. It \
        takes the launcher's {} options, as above, and:",
        shared
            .iter()
            .map(|s| format!("**{s}**"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let own: Vec<Arg> = doctor
        .get_arguments()
        .filter(|a| {
            !a.is_hide_set()
                && a.get_id() != "help"
                && !cmd.get_arguments().any(|b| b.get_id() == a.get_id())
        })
        .cloned()
        .collect();
    let own = Command::new("doctor")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(own);
    let text = mangen_text(&Man::new(own), Man::render_options_section);
    let text = without_preamble(&text);
    let text = text
        .strip_prefix(".SH OPTIONS\n")
        .expect("clap_mangen's options section starts with its heading");
    page.raw(text);

    page.ss("claude-iso token set [--env-file PATH]");
    page.p(
        "Reads a setup-token and stores it. From a terminal it asks for the token and \
        reads it with echo off (Backspace and Ctrl-U edit, Ctrl-C cancels); when stdin \
        is not a terminal it reads the token from stdin, as in \
        **printf '%s\\n' \"$TOKEN\" | claude-iso token set**. The token is never an \
        argument, never shown (only its prefix and length) and never logged. A \
        malformed token exits 125 and writes nothing.",
    );
    page.p(
        "The file is **--env-file** (or **CLAUDE_ISO_ENV_FILE**), by default \
        **$XDG_CONFIG_HOME/claude-iso/token.env**; missing directories are created \
        with mode 0700. It is written atomically and is never readable by others, \
        not even for a moment: a new file is created with mode 0600 next to it, \
        synced, and renamed over the old one. A file it replaces is kept next to it \
        as __file__**.replaced-**__TIME__**-**__N__ (mode 0600), and the new file \
        keeps the old one's other lines (and an **export** before the token line). \
        Only a regular file is replaced: a directory, FIFO, socket, device node or \
        symlink at __file__ or __file__**.meta.json** exits 125, naming it and the \
        fix, and nothing is moved or written. Other hard links of a replaced file keep \
        the old token. A token holding **sk-ant-** twice (a double paste) or longer \
        than 200 characters is refused, by launches too. The date the token was first stored is \
        recorded in __file__**.meta.json**, under a fingerprint of the token (16 hex \
        digits of a SHA-256), from which the token cannot be recovered; storing the \
        same token again keeps its date.",
    );
    page.ss("claude-iso token status [--json] [--env-file PATH]");
    page.p(
        "Shows the token a launch would use: its source, prefix and length, when it \
        was first stored, its age, and the days left of its 365-day lifetime (known \
        when **token set** stored it), counted in calendar days (UTC) like the dates \
        shown: age and days left add up to 365. A recorded date in the future is not \
        believed (age unknown, with a warning naming the metadata file; **token set** \
        records today's date again). From 30 days before the end it adds a warning \
        line, as the **token** line of **doctor** does; in the last 14 days every \
        launch prints one warning line a day (none with **--quiet**). It exits 0, 1 \
        once the token is past its 365 days, and 125 when there is no usable token. \
        **--json** prints an object with **source**, **kind**, **prefix**, \
        **length**, **fingerprint**, **lifetime_days**, **first_stored**, \
        **age_days**, **expires**, **days_left**, **status** (**ok**, **warn**, \
        **expired** or **unknown**) and **warning**.",
    );

    homes(page, cmd);

    let completions = cmd
        .find_subcommand("completions")
        .expect("the completions subcommand");
    page.ss("claude-iso completions SHELL");
    page.p(&format!(
        "{}: __SHELL__ is one of {}. For instance:",
        about(completions),
        completion_shells(cmd)
            .iter()
            .map(|s| format!("**{s}**"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    page.code(&[
        "claude-iso completions bash > ~/.local/share/bash-completion/completions/claude-iso",
        "claude-iso completions zsh > ~/.zfunc/_claude-iso    # with fpath+=~/.zfunc",
        "claude-iso completions fish > ~/.config/fish/completions/claude-iso.fish",
    ]);
}

/// `homes` and `homes prune`, and the JSON schema of `homes --json`.
fn homes(page: &mut Page, cmd: &Command) {
    let homes = cmd.find_subcommand("homes").expect("the homes subcommand");
    page.ss("claude-iso homes [--json]");
    page.p(&format!(
        "{}. It lists the default home (**$XDG_STATE_HOME/claude-iso/home**) and every \
        named home (**$XDG_STATE_HOME/claude-iso/homes/**__NAME__, see **--name**); a \
        home given with **--home** elsewhere is not tracked. For each: its size (the \
        apparent size of every file below it, each inode once), its last launch (the \
        modification time of **{OWN_LOCK}**, which a launch renews when it is more than an \
        hour old, so it is shown as the day and the hours or days since, or \"within the \
        last hour\"), the number \
        of directories trusted in its **{CLAUDE_JSON}**, whether it is in use, and the \
        files in it that claude-iso set aside, anywhere below it (quarantined \
        credentials files, kept copies of **{CLAUDE_JSON}** and of changed **--share** \
        copies) or that an interrupted write left behind (temp \
        files). Nothing is changed.",
        about(homes)
    ));
    page.p(
        "With **--json**, one object: **version** (1; raised only when a field changes \
        meaning or goes away), **state_dir**, and **homes**, an array in the order \
        default first, then names in byte order. Each home has, in this order: \
        **name** (null for the default home), **default** (boolean), **path**, \
        **size_bytes**, **last_launch** (Unix seconds, or null if never launched), \
        **in_use** (boolean), **seeded_dirs** (or null when **.claude.json** cannot be \
        read), and **quarantined**, **set_aside** and **temp_files**, arrays of paths \
        relative to the home.",
    );
    page.p(&format!(
        "A home is __in use__ while a launch prepares it (from before it changes \
        anything in the home until the command starts, a launch holds a shared \
        **flock**(2) of the home directory), while its **{OWN_LOCK}** is locked with \
        **flock**(2) (a launch seeding it), while the home directory is locked by \
        anyone (**flock -s** __home__ __command__ keeps a long-running agent's home from \
        being pruned: a shared lock, which launches share), while \
        claude's **{CLAUDE_LOCK}** is fresh, or while a process whose environment you \
        may read has it as **HOME** (only that variable is looked at) or works in it."
    ));
    page.ss("claude-iso homes prune [--older-than DAYS] [--dry-run] [--delete-quarantined]");
    page.p(&format!(
        "Removes the homes whose last launch (or, never launched, whose directory's \
        modification time) is at least __DAYS__ days ago (default 30), and says what \
        it removed and what it kept and why. A home in use is never removed. A home \
        holding a quarantined credentials file is kept, and the file named, unless \
        **--delete-quarantined** is given; then each deleted file is named. Removal \
        goes through directory descriptors and never follows a symlink: nothing \
        outside the homes directory is touched, and a home with a mount point below it \
        is kept. Just before a home goes, with the home directory locked exclusively \
        and its **{OWN_LOCK}** locked, everything is checked again (the last launch, \
        each rule of __in use__, quarantined files): a home launched into after the \
        listing is kept and said so. The home is then renamed aside, so a launch by \
        the same name makes a fresh one, and a launch that was waiting for that lock \
        runs nothing (exit 125). **--dry-run** changes nothing."
    ));
}

fn about(cmd: &Command) -> String {
    cmd.get_about()
        .map(|a| a.to_string().trim_end_matches('.').to_owned())
        .unwrap_or_default()
}

/// The shells `completions` accepts, from its clap definition.
fn completion_shells(cmd: &Command) -> Vec<String> {
    cmd.find_subcommand("completions")
        .and_then(|c| c.get_positionals().next())
        .map(|a| {
            a.get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn exit_status(page: &mut Page) {
    page.sh("EXIT STATUS");
    page.p(
        "A launch that succeeds does not return: claude-iso becomes __COMMAND__, so the \
        caller sees __COMMAND__'s own exit status, or the signal that killed it (a \
        shell reports 128 plus the signal number). Otherwise:",
    );
    page.tp(
        "**0**",
        "**--dry-run**, **--help**, **--version** and **completions** succeeded; \
        **doctor** found no failing check.",
    );
    page.tp("**1**", "**doctor** found at least one failing check.");
    page.tp(
        &format!("**{EXIT_FAILURE}**"),
        "claude-iso itself failed and ran nothing: a usage error, no token or an \
        unusable one, an env file with loose permissions, an unsafe scratch home, a \
        **.claude.json** that could not be seeded, or claude's lock held for too long. \
        As with **env**(1), the number is chosen to be unlikely from __COMMAND__; a \
        systemd unit can stop restarting on it with **RestartPreventExitStatus=125**.",
    );
    page.tp(
        &format!("**{EXIT_CANNOT_RUN}**"),
        "__COMMAND__ was found but could not be run (not executable, a directory, or \
        **execve**(2) failed).",
    );
    page.tp(
        &format!("**{EXIT_NOT_FOUND}**"),
        "__COMMAND__ was not found on **PATH**, or its interpreter was not found.",
    );
}

fn init(page: &mut Page) {
    page.sh("INIT (PID 1)");
    page.p(
        "As the ENTRYPOINT of a container claude-iso is PID 1, and since it **execve**s, \
        __COMMAND__ would be: node reaps none of the orphans its tools leave, and the \
        kernel drops a signal sent to PID 1 that has no handler. So when claude-iso is \
        PID 1, or with **--init**, it forks first, before the token is read: the child \
        launches __COMMAND__ exactly as without the init (so 125, 126 and 127 mean the \
        same), and the parent stays as a minimal init in tini's mould. It is a child \
        subreaper, reaps every zombie that reaches it, forwards every signal but SIGCHLD \
        to __COMMAND__ (to its process group with **--init-group**), and exits with its \
        status (as PID 1, 128+N after signal N). When __COMMAND__ exits, what it left behind gets \
        SIGTERM, and SIGKILL after the grace period (**--init-grace**, default 10 \
        seconds), or at once on a second SIGTERM or SIGINT.",
    );
    page.p(
        "With **--init-group**, and as PID 1 (as under tini), __COMMAND__ leads a process \
        group of its own and gets the terminal when claude-iso has it. When __COMMAND__ \
        stops (Ctrl-Z), the init takes the terminal back and stops too, so the shell gets \
        it back; **fg** continues both. Not PID 1, a __COMMAND__ killed by signal N makes \
        the init die of N too (a shell loop around it stops on Ctrl-C, as without the \
        init).",
    );
    page.p(
        "The init holds no copy of the token (it never reads a token file; a token passed \
        in its environment is zeroed there after the fork), keeps no descriptor above 2 \
        and stays non-dumpable. **--no-init** (or **CLAUDE_ISO_INIT=0**) turns the \
        automatic choice off; **doctor** warns when claude-iso is PID 1 without the init.",
    );
    page.p(
        "Under Kubernetes, __COMMAND__'s own shutdown plus the grace period must fit in the \
        pod's **terminationGracePeriodSeconds** (default 30), after which the kubelet \
        kills everything.",
    );
}

fn environment(page: &mut Page) {
    page.sh("ENVIRONMENT");
    page.ss("Read by claude-iso");
    page.tp(
        "**CLAUDE_ISO_ENV_FILE**",
        "The env file, as **--env-file** (the option wins).",
    );
    page.tp(
        "**CLAUDE_ISO_HOME**",
        "The scratch home, as **--home** (the option wins).",
    );
    page.tp(
        "**CLAUDE_ISO_NAME**",
        "A named home, as **--name** (the option wins; **--home** wins over it too). \
        Set together with **CLAUDE_ISO_HOME**, it is a usage error.",
    );
    page.tp(
        &format!("**{INIT_VAR}**"),
        "**1**: run as an init, as **--init**; **0**: never, as **--no-init**; unset \
        or empty: an init only as PID 1. The options win.",
    );
    page.tp(
        &format!("**{INIT_GRACE_VAR}**"),
        "The init's grace period in whole seconds, as **--init-grace** (the option wins).",
    );
    page.tp(
        "**CLAUDE_ISO_MASK**",
        "**auto**, **on** or **off**, as **--mask** (the option wins).",
    );
    page.tp(
        "**CLAUDE_ISO_SCRUB_TOOLS**",
        "**off** (the default), **auto** or **on**, as **--scrub-tools** (the option wins).",
    );
    page.tp(
        "**CREDENTIALS_DIRECTORY**",
        &format!(
            "Set by systemd for a unit with **LoadCredential=**; **{CREDENTIAL_NAME}** in \
            it is the first default token source."
        ),
    );
    page.tp(
        &format!("**{TOKEN_VAR}**"),
        "The second default token source, checked like a token from a file. For \
        __COMMAND__ it is always replaced by the token claude-iso chose.",
    );
    page.tp(
        &format!("**{ALLOW_PROJECT_AUTH_VAR}**"),
        "**1**: as **--allow-project-auth**; unset, empty or **0**: off; any other value \
        exits 125. Unlike the option it is inherited: a claude-iso started by __COMMAND__ \
        allows too, unless the variable is removed with **--unset**.",
    );
    page.tp(
        "**XDG_CONFIG_HOME**",
        "Where **claude-iso/token.env** is looked for; **~/.config** when unset or not absolute.",
    );
    page.tp(
        "**XDG_STATE_HOME**",
        "Where the default scratch home **claude-iso/home** lives; **~/.local/state** \
        when unset or not absolute.",
    );
    page.tp(
        "**HOME**",
        "Your real home, the base of the default paths. The scratch home must not be \
        it, an ancestor of it, or inside its **.claude**; the same holds for the \
        passwd entry's home.",
    );
    page.tp(
        "**PATH**",
        "Where __COMMAND__ is looked up; **/usr/local/bin:/usr/bin:/bin** when unset. \
        It is passed to __COMMAND__ unchanged.",
    );
    page.tp(
        &format!("**{NESTED_VAR}**"),
        "When set and non-empty, claude-iso runs under another claude-iso: **$HOME** is \
        a scratch home, so only the passwd entry's home is taken as the real one.",
    );
    page.tp(
        "**CLAUDE_CONFIG_DIR**",
        "The scratch home must not lie inside it. It is removed for __COMMAND__.",
    );

    page.ss("Set for COMMAND");
    page.tp("**HOME**", "The scratch home.");
    page.tp(&format!("**{TOKEN_VAR}**"), "The token.");
    page.tp(
        &format!("**{NESTED_VAR}**"),
        "**1**, so a nested claude-iso, or a script, can tell that **HOME** is a scratch home.",
    );
    page.tp(
        "**PWD**",
        "The **-C** directory, when **-C** is given; otherwise the caller's value is kept.",
    );

    page.ss("Removed from COMMAND's environment");
    let namespaces: Vec<String> = NAMESPACES.iter().map(|n| format!("**{n}**")).collect();
    page.p(&format!(
        "Rules first: inside claude's namespaces ({}), every variable whose name matches \
        one of these patterns is removed (words are separated by _, * stands for any \
        number of whole words, none included, and (A|B) for one word that is A or B; \
        a word that holds a credential word is read as its parts, and a plural s or a \
        number after one is dropped: APIKEY is API_KEY, KEYFILE is KEY_FILE, \
        OAUTHTOKEN is OAUTH_TOKEN, CONFIGDIR is CONFIG_DIR, KEYS and KEY2 are KEY):",
        namespaces.join(", ")
    ));
    for rule in RULES {
        page.tp(
            &rule.patterns.join(", "),
            &format!("{}.", capitalise(rule.what)),
        );
    }
    page.p("Then a list: these are removed too, though they follow no pattern:");
    for e in LISTED {
        page.tp(
            &format!("**{}**", e.name),
            &format!("{}.", capitalise(e.why)),
        );
    }
    page.p(
        "These match a pattern, or look like a credential, but are configuration, and \
        pass through:",
    );
    let kept: Vec<String> = KEEP.iter().map(|e| format!("**{}**", e.name)).collect();
    page.line(&format!("{}.", kept.join(", ")));
    page.p(
        "The caller's **HOME**, **CLAUDE_CODE_OAUTH_TOKEN** and **CLAUDE_ISO** never \
        pass through either: claude-iso sets its own (see above).",
    );
    page.p(
        "Each **--unset** __NAME__ is removed too, and each **--keep-env** __NAME__ is \
        passed through on purpose. The names (never the values) of removed variables \
        that were set are printed as a warning. Everything else, **PATH**, **TERM**, \
        **ANTHROPIC_BASE_URL** and proxy variables included, reaches __COMMAND__ \
        unchanged. Because **XDG_CONFIG_HOME** is removed, tools that __COMMAND__ runs \
        look for their configuration in the scratch home's **.config**.",
    );
    page.p(
        "Claude Code's own switches pass through as well; for unattended agents \
        consider **DISABLE_AUTOUPDATER=1**, **DISABLE_TELEMETRY=1** and \
        **CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1**.",
    );
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn files(page: &mut Page) {
    page.sh("FILES");
    page.p("Below, __home__ is the scratch home.");
    page.tp(
        "**$XDG_CONFIG_HOME/claude-iso/token.env**",
        "The default env file (**~/.config/claude-iso/token.env**). Mode 0600.",
    );
    page.tp(
        "__file__**.meta.json**, __file__**.warned**",
        "Next to an env file written by **token set**: when each token was first \
        stored, keyed by its fingerprint, never the token; and the day a launch last \
        warned that the token is about to expire.",
    );
    page.tp(
        "**~/.config/claude-auth-sync/claude-oauth.env**",
        "The last default env file, in your real home whatever **XDG_CONFIG_HOME** says.",
    );
    page.tp(
        &format!("**$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}**"),
        "The token passed by a systemd unit's **LoadCredential=**.",
    );
    page.tp(
        "**$XDG_STATE_HOME/claude-iso/home**",
        "The default scratch home (**~/.local/state/claude-iso/home**).",
    );
    page.tp(
        "**$XDG_STATE_HOME/claude-iso/homes/**__NAME__",
        "A named home (**--name** __NAME__). __NAME__ is 1 to 64 characters: an ASCII \
        letter or digit, then letters, digits, **.**, **_** or **-**.",
    );
    page.tp(
        "__home__**/.claude-iso.shared**",
        "Which entries of the scratch home are claude-iso's read-only copies of shared \
        files (**--share**): inode and change time of each. Only those are ever replaced \
        or removed; anything else in their way is renamed to __name__**.unshared-**__TIME__**-**__N__ \
        and kept.",
    );
    page.tp(
        &format!("__home__**/{CLAUDE_JSON}**"),
        "claude's state file, which claude-iso seeds (see DESCRIPTION). If it is not a \
        JSON object, it is kept as a copy and a fresh one is seeded.",
    );
    page.tp(
        &format!("__home__**/{CLAUDE_DIR}/**"),
        "claude's configuration directory: **settings.json**, **CLAUDE.md**, \
        **agents/**, **commands/**, sessions, history and backups.",
    );
    page.tp(
        &format!("__home__**/{OWN_LOCK}**"),
        "A file claude-iso locks with **flock**(2) while it seeds, so concurrent \
        launches do not lose each other's changes; while it holds claude's lock it records \
        that lock's inode and time here, so a lock left by a launch that was killed is \
        broken at once. It is left in place; a launch renews its \
        modification time when it is more than an hour old, and **homes** shows it as the \
        last launch.",
    );
    page.tp(
        &format!("__home__**/{PENDING_PREFIX}**__PID__**.**__N__"),
        "A launch's request for a write of **.claude.json** (a JSON array of the \
        directories to trust), posted before it waits for the lock and locked with \
        **flock**(2) by that launch: whichever launch holds the lock merges every posted \
        request in one write and then removes their files, and a launch whose file went \
        that way writes nothing. A file no launch holds is a dead launch's and is \
        removed unmerged.",
    );
    page.tp(
        &format!("__home__**/{CLAUDE_LOCK}/**"),
        &format!(
            "claude's own lock on **{CLAUDE_JSON}**, a directory created with **mkdir**(2). \
            claude-iso takes it the same way while it writes, waits up to {} seconds while \
            claude holds it, and breaks it when it was last touched more than {} seconds \
            ago.",
            LOCK_TIMEOUT.as_secs(),
            STALE_AFTER.as_secs()
        ),
    );
    page.tp(
        &format!("__home__**/{CLAUDE_DIR}/{CREDENTIALS}.quarantined-**__TIME__**-**__N__"),
        &format!(
            "A credentials file found in the scratch home, moved aside before launch (with \
            a warning) because claude falls back to **{CREDENTIALS}** when the token gets \
            a 401 and blanks it when a refresh fails. It is kept, mode 0600, never read \
            again; delete it once you know you do not need it. __TIME__ is seconds since \
            the epoch, __N__ makes the name unique."
        ),
    );
    page.tp(
        &format!("__home__**/{CLAUDE_JSON}.corrupt-**__TIME__**-**__N__"),
        &format!(
            "A **{CLAUDE_JSON}** that was not a JSON object, kept when a fresh one was \
            seeded (**.replaced-** when a **projects** entry of the wrong type had to be \
            replaced)."
        ),
    );
}

fn project_settings(page: &mut Page) {
    page.sh("PROJECT SETTINGS");
    page.p(
        "Before anything is created, claude-iso reads the settings files claude would \
        apply for the working directory: **.claude/settings.json** and \
        **.claude/settings.local.json** there; the **.claude/settings.local.json** of \
        the local settings root (claude 2.1.330 and later apply it, 2.1.197 does not): \
        the nearest directory above whose **.git** is a directory, a file or a link to \
        either (a dangling link or a FIFO is skipped), or for a linked git worktree its \
        main checkout, kept only when it, its **.git** and its **.claude** are the \
        user's (**--dry-run** names the destination of the claude that will run, its \
        version read from its installation); each **--settings** __FILE__|__JSON__ in \
        the command's own arguments (the last one chooses the destination); and \
        **/etc/claude-code/managed-settings.json** with \
        **/etc/claude-code/managed-settings.d/*.json**. Parent directories that are not \
        that root are not read (claude does not read them either); \
        **docs/claude-settings-layers.md** in the source has the table per claude \
        version. The scratch \
        home's own **.claude/settings.json** (the user settings) is judged too: it is \
        the command's **HOME**, so anything the command ran can have written a \
        redirect there. A **--share**d **settings.json** replaces it at launch and is \
        judged in its place. The scratch home's **.claude/cowork_settings.json** is \
        judged too, always: claude reads the user settings from it instead of \
        **settings.json** when **CLAUDE_CODE_USE_COWORK_PLUGINS** is **1**, **true**, \
        **yes** or **on**, and then it chooses the destination. Every one of them is judged whatever the command's \
        arguments say (which word is the list of claude's **--setting-sources** only \
        claude's parser knows). A file this user cannot read that belongs to someone \
        else (a root-only managed settings file) is skipped with a note under \
        **-v**, as claude, running as the same user, cannot load it either; one of the \
        user's own is refused.",
    );
    page.p(
        "The launch is refused (exit 125, one line naming the file, the key and the \
        host the token would go to) when one of them sets **apiKeyHelper**, \
        **awsAuthRefresh**, **awsCredentialExport**, **gcpAuthRefresh**, \
        **otelHeadersHelper** or **proxyAuthHelper** (to a value JavaScript takes as \
        true: **null**, **false**, **0** and an empty string pass); an **env** entry claude-iso \
        removes, or **CLAUDE_CODE_OAUTH_TOKEN**; or an **env** entry that changes where \
        or how requests travel: every **_BASE_URL** variable (**ANTHROPIC_BASE_URL**, \
        **CLAUDE_CODE_API_BASE_URL**, ...), every **ANTHROPIC_**__*__**_URL** and \
        **CLAUDE_**__*__**_URL**, **HTTPS_PROXY**, **HTTP_PROXY**, **ALL_PROXY** and \
        every other **_PROXY** in any case, a **NO_PROXY** naming a host the caller's \
        does not, **NODE_EXTRA_CA_CERTS**, **NODE_TLS_REJECT_UNAUTHORIZED**, \
        **SSL_CERT_FILE**, **SSL_CERT_DIR**, **NODE_OPTIONS**, **ANTHROPIC_UNIX_SOCKET**, \
        claude's client-certificate variables, **ANTHROPIC_**/**CLAUDE_** \
        **_HEADERS** such as **ANTHROPIC_CUSTOM_HEADERS**, and **HOSTALIASES**, \
        **LOCALDOMAIN**, **RES_OPTIONS**; an **env** entry that makes claude's runtime \
        or TLS stack, or what claude runs, write secrets: **SSLKEYLOGFILE** and every \
        **BUN_** and **NODE_** variable (**BUN_CONFIG_VERBOSE_FETCH** printed the token); \
        or an OpenTelemetry exporter endpoint. An entry equal to the \
        value the command itself gets (the caller's environment after the scrub, \
        **--unset** and **--keep-env**; URLs compared without a trailing **/**, the \
        default port or the case of scheme and host) changes nothing and passes; the \
        destination shown by **--dry-run** and **doctor** is worked out from that \
        environment too.",
    );
    page.p(
        "A file that is not valid JSON, not a regular file (a FIFO is never waited on) \
        or larger than 1 MiB is refused too: claude ignores an invalid file, but \
        claude-iso cannot tell what another parser would read there (the line names \
        the host the token would go to as far as the other files say). Symlinks are \
        followed, as claude follows them, and the message names the target. \
        **--allow-project-auth** (or **CLAUDE_ISO_ALLOW_PROJECT_AUTH=1**) lets all of \
        it through on purpose, with one warning per entry.",
    );
}

fn security(page: &mut Page) {
    page.sh("SECURITY");
    page.ss("What it protects against");
    page.bullet(
        "The shared-file logout: claude never sees a refresh token, so it never \
        refreshes, rotates or blanks one, and claude-iso never creates, copies or \
        links a credentials file.",
    );
    page.bullet(&format!(
        "The 401 fallback: when the token is refused, claude retries with any \
        **{CREDENTIALS}** it can find. The one in the scratch home is moved aside \
        before every launch, and the variables that would point claude at another are \
        removed."
    ));
    page.bullet(
        "Shadowing: credentials in the caller's environment that claude would prefer to \
        the token are removed, and an env file that sets one is refused.",
    );
    page.bullet(
        "Disclosure in output: **--dry-run**, **--verbose**, **doctor** and error \
        messages show the token as its prefix and length at most; env files with group \
        or other permissions are refused.",
    );
    page.bullet(
        "Lost updates: **.claude.json** is rewritten atomically under both claude-iso's \
        and claude's locks, keeping every key claude-iso does not own.",
    );
    page.bullet(
        "A claude pointed back at the real store (a project's **env.CLAUDE_CONFIG_DIR**, \
        a tool that opens the file by its path): the mask (below) hides it from \
        __COMMAND__ and everything it starts.",
    );
    page.ss("The mask");
    page.p(&format!(
        "Unless **--mask off**, claude-iso enters a private mount namespace just before \
        **execve**. There, for __COMMAND__ and everything it starts, each real config \
        directory (the real homes' **~/{CLAUDE_DIR}**, the caller's \
        **CLAUDE_CONFIG_DIR** and **CLAUDE_SECURESTORAGE_CONFIG_DIR**) and the Anthropic \
        profile store (**ANTHROPIC_CONFIG_DIR**, **$XDG_CONFIG_HOME/anthropic**, \
        **~/.config/anthropic**) looks like an empty read-only directory, and so do \
        claude-iso's own token directories (**$XDG_CONFIG_HOME/claude-iso**, \
        **~/.config/claude-iso**, **~/.config/claude-auth-sync**); where a **PATH** \
        entry, the command or the file its link leads to lies inside a hidden config \
        directory, the config directory's top-level directory holding it is shown again, \
        read-only, unless it holds a credential file (claude's local install in \
        **~/.claude/local**). Every other token \
        file claude-iso reads and claude's fixed \
        **/home/claude/.claude/remote/** files read as empty and cannot be written, \
        renamed over or removed; each real **~/{CLAUDE_JSON}** is read-only. A working \
        directory inside a config directory is shown again like a **PATH** entry (its \
        top-level directory there read-only, itself writable), the config directory \
        and its credential files staying hidden; the config directory itself as the \
        working directory is read-only and visible, with **{CREDENTIALS}** and \
        **.device-keys.json** emptied; a working directory inside \
        the profile store or a token directory cannot be masked from, and the launch \
        exits 125 whatever the mode (a scratch home there is refused before it is made). \
        In claude-iso's state directory only the launch's own home is there (other \
        homes, and any made during the run, are left out; a working directory in \
        another home exits 125); the broker's socket directories \
        (**$XDG_RUNTIME_DIR/claude-iso**, **/tmp/claude-iso-**_uid_) are never hidden. \
        The scratch home, the \
        working directory and everything else are unchanged, and other processes \
        keep seeing the real files. **--dry-run** lists the masks; **doctor** checks \
        that the kernel allows them."
    ));
    page.p(
        "The directory holding each hidden place (each real home, **~/.config**, the \
        directory holding **CLAUDE_CONFIG_DIR** and the like, the state directory) is \
        shown as a view: a read-only tmpfs in which each entry it held at launch is \
        bound back from the real directory, the hidden ones empty or absent. Removing, \
        renaming or re-creating a hidden place outside during the run (**rm -rf \
        ~/.claude** and a new login) changes nothing __COMMAND__ sees. In a viewed \
        directory __COMMAND__ sees the entries of launch time, keeps writing inside \
        them, but cannot create, remove or rename entries at its top level: working \
        from your home itself makes its top level read-only. No view is made of \
        **/**, of a directory others can create entries in (**/tmp**), or of one \
        claude-iso cannot list.",
    );
    page.p(
        "An inherited descriptor (one without close-on-exec) on a directory or file \
        inside a hidden place, or on a directory above one (**3</home/me**), would reach \
        the real files whatever the namespace shows: the launch is refused with 125, \
        naming the descriptor and where it leads (close it: **3<&-**). Sockets, pipes, \
        terminals, other files and what systemd passes (**LISTEN_FDS**) pass. Every refusal of the \
        mask, and under **--mask on** the kernel's refusal of the namespaces (tried first \
        in a helper), comes before anything is created; a single mount refused where the \
        namespaces are allowed shows only when the mask is built, after the home is made \
        (still 125).",
    );
    page.p(
        "Unprivileged, the namespace maps only your uid and gid: __COMMAND__ has no \
        capabilities in it and cannot remove a mask. As root, the masks are made first \
        and __COMMAND__ runs in a nested user namespace (all ids mapped) where they are \
        locked. Where the kernel refuses user namespaces \
        (**user.max_user_namespaces=0**, Ubuntu's \
        **kernel.apparmor_restrict_unprivileged_userns=1**, a container's seccomp \
        policy, systemd's **RestrictNamespaces=**), and in a PID namespace whose **/proc** \
        belongs to another one (**unshare --pid --fork** without **--mount-proc**), \
        **--mask auto** prints one warning \
        with the reason and the fix and runs without the mask; **--mask on** exits 125. \
        For Ubuntu, **examples/apparmor/claude-iso** in the source lets the binary \
        create its namespace.",
    );
    page.p(
        "**--scrub-tools** is off by default. **on** (or **auto** with bubblewrap \
        installed) sets **CLAUDE_CODE_SUBPROCESS_ENV_SCRUB=1**: claude then removes \
        credential variables from the environment of its Bash tool, hooks and MCP \
        servers (what a caller passes with **--keep-env**, cloud credentials outside \
        claude's namespaces), and a claude started by the agent needs a token of its \
        own. The price: claude then creates empty stubs in the working directory on \
        every start (**.env**, **.env.local**, **.env.**{__development__,__test__,\
        __production__}[**.local**], **package.json**, **package-lock.json**, \
        **yarn.lock**, **pnpm-lock.yaml**, **bunfig.toml**, **.npmrc**, **.yarnrc**, \
        **.yarnrc.yml**, **.gitmodules**, **node_modules/.bin/**, **.claude/agents/**, \
        **.claude/commands/**), more in a checkout's **.git** (**commondir**, \
        **config.worktree**, **worktrees/**, ...), and appends to \
        **.git/info/exclude**; run from **HOME**, the empty **package.json** breaks \
        npm below it. **-v**, **--dry-run** and **doctor** say where.",
    );
    page.ss("Limits");
    page.bullet(
        "The mask is not a sandbox. __COMMAND__ runs as you, with all your other files, \
        and can still reach processes outside it that run as you (a tmux or screen \
        server, the **systemd --user** manager on the session bus), which can run \
        commands that see the real files; a line added to **~/.bashrc** runs unmasked \
        later. As root it guards against accidents, not against a malicious root \
        process (root inside can still write **/etc/cron.d**). It \
        masks paths, not files: a hard link to a credentials file elsewhere, or another \
        mount of the same file system, is not covered. A mask on a single file no view \
        covers (an **--env-file** elsewhere, a credentials directory's \
        file, claude's fixed **remote/** files, a credentials file in the config \
        directory you work in, a hidden place in **/** or **/tmp**) holds until something \
        outside replaces that file by \
        rename (claude refreshes **.credentials.json** that \
        way): the kernel then detaches the mount in every namespace, and the new file is \
        readable, and writable if its mode allows. When \
        **~/.claude** is a symlink, the mask covers what it leads to, and the link is an \
        empty placeholder. \
        Inside it setuid programs gain \
        no privileges, and files of users outside the map show as **nobody**. To keep \
        agents apart, run them as separate users or under systemd's sandboxing (see \
        EXAMPLES).",
    );
    page.bullet(
        "Pre-trust means claude applies the folder's settings, hooks included, without \
        asking. claude-iso seeds trust for the working directory so the TUI does not \
        stop; a repository's **.claude/settings.json** can define hooks (commands claude \
        runs, with the token in their environment) and permissions. In a folder you do \
        not know, pass **--no-trust** and let claude ask. The settings guard refuses \
        credentials and redirects (see PROJECT SETTINGS), not hooks.",
    );
    page.bullet(
        "The settings guard judges settings files at launch. What the command or its \
        tools write into them during a session (the working directory's or the scratch \
        home's) is outside what a launch-time check can catch; the next launch judges \
        it.",
    );
    page.bullet(
        "macOS keeps claude's login in the Keychain, outside **HOME**, where a scratch \
        home cannot hide it. claude-iso is built and tested on Linux.",
    );
    page.bullet(
        "**ANTHROPIC_BASE_URL** in the caller's environment is passed through, and the \
        token is sent to whatever host it names: that is the caller's choice. \
        **--dry-run** and **doctor** name the destination; **doctor** warns when it is \
        not an Anthropic host.",
    );
    page.bullet(
        "With **--token-via broker** (the default for claude) the token never enters \
        claude: a broker process, forked before the exec, outside the mask's namespaces, \
        non-dumpable, holds it and forwards every request that arrives on its socket \
        (mode 0600, in a directory only the user can enter, answered only for the \
        launching user) to the one destination the caller chose (**ANTHROPIC_BASE_URL** \
        or https://api.anthropic.com), with every incoming credential header removed and \
        the token set. Settings that point claude elsewhere cannot take the token with \
        them. What it does not prevent: a tool claude runs can use the socket (ask for \
        inference) while the session lasts; it cannot take the token away.",
    );
    page.bullet(
        "With **--token-via fd** the token is in no \
        environment: claude reads it once from a pipe, which is then empty; it is still \
        in claude's memory and in the requests claude sends. With **--token-via env** \
        (the default for any other command) it is in __COMMAND__'s environment: every \
        process __COMMAND__ starts inherits it, and processes running as the same user, \
        and root, can read it from **/proc/**__PID__**/environ**.",
    );
    page.bullet(
        "A setup-token is long-lived: whoever copies it can use the account until it \
        expires or is revoked. Keep the env file at mode 0600 and, for services, \
        prefer systemd's **LoadCredential=** to a file the service user can read.",
    );
}

fn examples(page: &mut Page) {
    page.sh("EXAMPLES");
    page.p(
        "Set up once: create a token, and store it where claude-iso looks by default \
        (paste it when asked; it is not shown).",
    );
    page.code(&[
        "claude setup-token",
        "claude-iso token set",
        "claude-iso token status",
    ]);
    page.p("Start the interactive TUI in the current directory, or in another one:");
    page.code(&["claude-iso", "claude-iso -C ~/src/app -- claude --continue"]);
    page.p("See what would happen, without changing or running anything:");
    page.code(&["claude-iso --dry-run -- claude --print hello"]);
    page.p("A scripted, non-interactive question:");
    page.code(&["git diff | claude-iso -q -- claude --print 'Review this diff.'"]);
    page.p("Two agents with separate scratch homes, each trusting a shared checkout:");
    page.code(&[
        "claude-iso --home ~/.local/state/claude-iso/a --trust ~/src/lib -C ~/src/a",
        "claude-iso --home ~/.local/state/claude-iso/b --trust ~/src/lib -C ~/src/b",
    ]);
    page.p("Replace a wrapper script that sourced a token file and ran claude:");
    page.code(&["#!/bin/sh", "exec claude-iso -- claude \"$@\""]);
    page.p(
        "Resume a session: claude's exit hint says **claude --resume** __id__, but its \
        sessions live in the scratch home, so resume it through claude-iso (with the \
        same **--home**):",
    );
    page.code(&["claude-iso -- claude --resume <id>"]);
    page.p("Check a set-up, including one real request:");
    page.code(&["claude-iso doctor --live"]);
    page.p(
        "Run an agent as a systemd service, with the token passed as a credential; the \
        claude-iso sources hold a hardened template unit, \
        **examples/claude-agent@.service**:",
    );
    page.code(&[
        "[Service]",
        &format!("LoadCredential={CREDENTIAL_NAME}:/etc/claude-iso/token"),
        "RestartPreventExitStatus=125",
        "ExecStart=/usr/local/bin/claude-iso --home %S/claude-iso/%i \\",
        "    -C %S/claude-agents/%i -- claude --print ...",
    ]);
}

fn see_also(page: &mut Page) {
    page.sh("SEE ALSO");
    page.line(
        "**env**(1), **environ**(7), **systemd.exec**(5), **systemd.service**(5), \
        **systemd-creds**(1)",
    );
    page.p("**claude --help**, and the **README.md** and **examples/** of the claude-iso sources.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup() {
        let got = inlines("a **b** __c__ d");
        assert_eq!(
            got,
            vec![roman("a "), bold("b"), roman(" "), italic("c"), roman(" d")]
        );
        assert_eq!(inlines("A_B_C"), vec![roman("A_B_C")]);
    }

    #[test]
    #[should_panic(expected = "unbalanced")]
    fn unbalanced_markup() {
        let _ = inlines("**open");
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_arg("claude-iso"), r"claude\-iso");
        assert_eq!(
            ascii_only("a…b\n…c—d\u{e9}"),
            "a...b\n\\&...c\\(emd\\[u00E9]"
        );
    }

    #[test]
    fn deterministic_and_ascii() {
        let a = render();
        assert_eq!(a, render());
        assert!(a.is_ascii());
        let text = String::from_utf8(a).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n.TH CLAUDE\\-ISO 1 \"\""));
        assert_eq!(text.matches(".ie \\n(.g").count(), 1, "one preamble");
        assert!(text.contains(env!("CARGO_PKG_VERSION")));
    }
}
