//! The man page: `man/claude-iso.1.md` (the text, in a small markup) rendered to roff,
//! with clap_mangen's NAME and OPTIONS sections spliced in.
//!
//! The text holds the prose; this file holds none. What must not drift from the code comes
//! from it: the NAME line and the option lists from [`claude_iso::cli::Cli`] (so they
//! match `--help`), `{{name}}` values in the text (file names, variable names, exit
//! statuses, limits) from the constants the launcher uses, and whole blocks (the scrub
//! rules and lists) from their tables. An unknown name, or a value the text no longer
//! uses, fails the render. The output is deterministic (no date; the footer names the
//! crate version) because `man/claude-iso.1` is this output, checked in and compared by
//! `tests/cli/docs.rs`. Regenerate it with `CLAUDE_ISO_UPDATE_MAN=1 cargo test --test cli docs::`.
//!
//! The markup is described at the top of the text. `**bold**` and `__italic__` become
//! fonts; everything else is escaped for roff by the `roff` crate, and non-ASCII
//! characters are written as roff escapes so the page needs no input encoding.

use std::collections::BTreeMap;

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

/// The text of the page.
const SOURCE: &str = include_str!("../../man/claude-iso.1.md");

/// The full `man/claude-iso.1` text.
#[must_use]
pub fn render() -> Vec<u8> {
    render_source(SOURCE)
}

fn render_source(source: &str) -> Vec<u8> {
    let cmd = Cli::command();
    let mut values = Values::new(&cmd);
    let mut page = Page::new();
    page.title(&cmd);
    for block in blocks(source) {
        match block {
            Block::Code(lines) => {
                let lines: Vec<String> = lines.iter().map(|l| values.fill(l)).collect();
                let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                page.code(&lines);
            }
            Block::Text(lines) => text_block(&mut page, &cmd, &mut values, &lines),
        }
    }
    values.all_used();
    page.finish().into_bytes()
}

/// A block of the text: lines shown as they are, or lines up to a blank line.
enum Block<'a> {
    Code(Vec<&'a str>),
    Text(Vec<&'a str>),
}

/// The text's blocks, comments (`<!--` ... `-->`) left out.
fn blocks(source: &str) -> Vec<Block<'_>> {
    fn flush<'a>(out: &mut Vec<Block<'a>>, current: &mut Vec<&'a str>) {
        if !current.is_empty() {
            out.push(Block::Text(std::mem::take(current)));
        }
    }
    let mut out = Vec::new();
    let mut lines = source.lines();
    let mut current: Vec<&str> = Vec::new();
    while let Some(line) = lines.next() {
        if line == "```" {
            flush(&mut out, &mut current);
            let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push(Block::Code(code));
        } else if current.is_empty() && line.starts_with("<!--") {
            if !line.trim_end().ends_with("-->") {
                lines.by_ref().find(|l| l.trim_end().ends_with("-->"));
            }
        } else if line.trim().is_empty() {
            flush(&mut out, &mut current);
        } else {
            current.push(line);
        }
    }
    flush(&mut out, &mut current);
    out
}

/// Lines joined by single spaces, each trimmed.
fn joined<'a>(lines: impl IntoIterator<Item = &'a str>) -> String {
    lines
        .into_iter()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One block of text: a heading, a generated block, a line block, a list item, a tagged
/// paragraph or a paragraph.
fn text_block(page: &mut Page, cmd: &Command, values: &mut Values, lines: &[&str]) {
    let first = lines[0];
    if let Some(h) = first.strip_prefix("## ") {
        page.ss(&values.fill(h));
    } else if let Some(h) = first.strip_prefix("# ") {
        page.sh(&values.fill(h));
    } else if lines.len() == 1
        && let Some(name) = first.strip_prefix("{{").and_then(|r| r.strip_suffix("}}"))
    {
        generated(page, cmd, name);
    } else if first.starts_with("| ") {
        let mut items: Vec<String> = Vec::new();
        for line in lines {
            match line.strip_prefix("| ") {
                Some(item) => items.push(item.trim().to_owned()),
                None => {
                    let last = items.last_mut().expect("a line block starts with |");
                    last.push(' ');
                    last.push_str(line.trim());
                }
            }
        }
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                page.roff.control("br", []);
            }
            page.line(&values.fill(item));
        }
    } else if let Some(item) = first.strip_prefix("* ") {
        page.bullet(&values.fill(&joined(
            std::iter::once(item).chain(lines[1..].iter().copied()),
        )));
    } else if let Some((n, item)) = first
        .split_once(". ")
        .and_then(|(n, item)| Some((n.parse::<usize>().ok()?, item)))
    {
        let text = joined(std::iter::once(item).chain(lines[1..].iter().copied()));
        page.numbered(n, &values.fill(&text));
    } else if let Some(item) = lines.get(1).and_then(|l| l.strip_prefix(": ")) {
        let text = joined(std::iter::once(item).chain(lines[2..].iter().copied()));
        page.tp(&values.fill(first), &values.fill(&text));
    } else {
        page.p(&values.fill(&joined(lines.iter().copied())));
    }
}

/// A block made from the code: `{{name}}` alone on its lines.
fn generated(page: &mut Page, cmd: &Command, name: &str) {
    match name {
        "name" => page.mangen(Man::new(cmd.clone()), Man::render_name_section),
        // The trailing COMMAND is shown as `-- COMMAND [ARG...]` by the text, not as
        // clap's `[COMMAND]`.
        "options" => {
            let listed = cmd.clone().mut_arg("command", |a| a.hide(true));
            page.mangen(Man::new(listed), Man::render_options_section);
        }
        "doctor_options" => {
            let own = Command::new("doctor")
                .disable_help_flag(true)
                .disable_version_flag(true)
                .args(doctor_own_options(cmd));
            let text = mangen_text(&Man::new(own), Man::render_options_section);
            let text = without_preamble(&text);
            let text = text
                .strip_prefix(".SH OPTIONS\n")
                .expect("clap_mangen's options section starts with its heading");
            page.raw(text);
        }
        "scrub_rules" => {
            for rule in RULES {
                page.tp(
                    &rule.patterns.join(", "),
                    &format!("{}.", capitalise(rule.what)),
                );
            }
        }
        "scrub_listed" => {
            for e in LISTED {
                page.tp(
                    &format!("**{}**", e.name),
                    &format!("{}.", capitalise(e.why)),
                );
            }
        }
        "scrub_keep" => page.line(&format!("{}.", bold_list(KEEP.iter().map(|e| e.name)))),
        _ => panic!("man/claude-iso.1.md: no block {{{{{name}}}}}"),
    }
}

/// The values `{{name}}` in the text stands for, and which of them it used.
struct Values {
    map: BTreeMap<&'static str, String>,
    used: std::collections::BTreeSet<&'static str>,
}

impl Values {
    fn new(cmd: &Command) -> Self {
        let sub = |name: &str| {
            cmd.find_subcommand(name)
                .unwrap_or_else(|| panic!("the {name} subcommand"))
        };
        let doctor = sub("doctor");
        let shared = doctor
            .get_arguments()
            .filter(|a| !a.is_hide_set() && cmd.get_arguments().any(|b| b.get_id() == a.get_id()))
            .map(flag_names)
            .collect::<Vec<_>>();
        let command_help = cmd
            .get_positionals()
            .find(|a| a.get_id() == "command")
            .and_then(Arg::get_help)
            .map(ToString::to_string)
            .unwrap_or_default();
        let dialog_answers = DIALOG_COUNTERS
            .iter()
            .map(|(key, limit)| format!("**{key}** raised to {limit}"))
            .chain(DIALOG_FLAGS.iter().map(|key| format!("**{key}** true")))
            .collect::<Vec<_>>()
            .join(", ");
        let map = BTreeMap::from([
            ("CLAUDE_DIR", CLAUDE_DIR.to_owned()),
            ("CLAUDE_JSON", CLAUDE_JSON.to_owned()),
            ("CLAUDE_LOCK", CLAUDE_LOCK.to_owned()),
            ("CREDENTIALS", CREDENTIALS.to_owned()),
            ("CREDENTIAL_NAME", CREDENTIAL_NAME.to_owned()),
            ("DEVICE_KEYS", DEVICE_KEYS.to_owned()),
            ("OWN_LOCK", OWN_LOCK.to_owned()),
            ("PENDING_PREFIX", PENDING_PREFIX.to_owned()),
            ("TOKEN_VAR", TOKEN_VAR.to_owned()),
            ("NESTED_VAR", NESTED_VAR.to_owned()),
            ("INIT_VAR", INIT_VAR.to_owned()),
            ("INIT_GRACE_VAR", INIT_GRACE_VAR.to_owned()),
            ("ALLOW_PROJECT_AUTH_VAR", ALLOW_PROJECT_AUTH_VAR.to_owned()),
            ("DIALOGS_MEASURED", DIALOGS_MEASURED.to_owned()),
            ("EXIT_FAILURE", EXIT_FAILURE.to_string()),
            ("EXIT_CANNOT_RUN", EXIT_CANNOT_RUN.to_string()),
            ("EXIT_NOT_FOUND", EXIT_NOT_FOUND.to_string()),
            ("max_env_file_kib", (MAX_ENV_FILE / 1024).to_string()),
            ("lock_timeout_secs", LOCK_TIMEOUT.as_secs().to_string()),
            ("stale_after_secs", STALE_AFTER.as_secs().to_string()),
            ("dialog_answers", dialog_answers),
            ("share_default_set", bold_list(DEFAULT_SET.iter().copied())),
            ("share_refused", bold_list(REFUSED.iter().copied())),
            ("scrub_namespaces", bold_list(NAMESPACES.iter().copied())),
            ("shells", completion_shells(cmd).join("|")),
            (
                "completion_shells",
                bold_list(completion_shells(cmd).iter().map(String::as_str)),
            ),
            ("command_help", command_help),
            ("about_doctor", about(doctor)),
            ("about_homes", about(sub("homes"))),
            ("about_completions", about(sub("completions"))),
            (
                "doctor_shared_options",
                bold_list(shared.iter().map(String::as_str)),
            ),
        ]);
        Values {
            map,
            used: std::collections::BTreeSet::new(),
        }
    }

    /// `text` with each `{{name}}` replaced by its value.
    fn fill(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .unwrap_or_else(|| panic!("man/claude-iso.1.md: unclosed {{{{ in {text}"));
            let name = &after[..end];
            let (key, value) = self
                .map
                .get_key_value(name)
                .unwrap_or_else(|| panic!("man/claude-iso.1.md: no value {{{{{name}}}}}"));
            self.used.insert(key);
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }

    /// Every value is used: one the text dropped is a sign the text and code drifted.
    fn all_used(&self) {
        let unused: Vec<_> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        assert!(
            unused.is_empty(),
            "man/claude-iso.1.md no longer uses {unused:?}"
        );
    }
}

/// `**a**, **b**, **c**`.
fn bold_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|s| format!("**{s}**"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The options `doctor` has and the launcher has not.
fn doctor_own_options(cmd: &Command) -> Vec<Arg> {
    let doctor = cmd
        .find_subcommand("doctor")
        .expect("the doctor subcommand");
    doctor
        .get_arguments()
        .filter(|a| {
            !a.is_hide_set()
                && a.get_id() != "help"
                && !cmd.get_arguments().any(|b| b.get_id() == a.get_id())
        })
        .cloned()
        .collect()
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

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
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
