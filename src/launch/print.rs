//! `--dry-run`: the [`LaunchPlan`] as lines on stdout, in the order a launch would act.
//! Nothing here decides anything: every line is read off the plan.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::ffi::OsStr;

use crate::cli::Switch;
use crate::config::TokenVia;
use crate::home;
use crate::isolate::{broker, mask, share};
use crate::launch::plan::{self, BrokerChoice, LaunchPlan, MaskStage};
use crate::layout::{TOKEN_FD_VAR, TOKEN_VAR};
use crate::report::Report;
use crate::token::{self, Token};

/// Prints the plan; `init` is the init's description when one would run.
pub(crate) fn print(plan: &LaunchPlan, init: Option<&str>, report: &Report) {
    if let Some(init) = init {
        report.plan(format!("init: {init}"));
    }
    if let Some(warning) = plan::removed_warning(&plan.child, &plan.argv[0]) {
        report.warn(warning);
    }
    token_lines(plan, report);
    if let Err(e) = &plan.program {
        report.plan(format!(
            "command: {e} (a launch would exit {})",
            e.exit_code()
        ));
    }
    settings_lines(plan, report);
    home::plan_lines(&plan.home, report);
    report.plan(format!("seed: {}", plan.seed.describe()));
    share::print_plan(&plan.shares.list, &plan.home_path, report);
    report.plan(format!("scrub-tools: {}", plan.scrub_tools));
    report.plan(via_line(plan));
    if let MaskStage::Show(verdict) = &plan.mask {
        mask_lines(verdict, plan.config.mask, report);
    }
    command_lines(plan, report);
    if let Err(e) = plan.refusal() {
        report.plan(format!(
            "refused: a launch would stop at: {e} (exit {})",
            e.exit_code()
        ));
    }
    report.plan("dry run: nothing changed, nothing run");
}

fn token_lines(plan: &LaunchPlan, report: &Report) {
    match (&plan.broker, &plan.token) {
        (BrokerChoice::Shared(socket), _) => report.plan(format!(
            "token: none read (the shared broker at {} holds it)",
            socket.display()
        )),
        (_, Some((token, source))) => {
            token::store::launch_notes(&plan.config, source, token, report, true);
            report.plan(format!("token: {} from {source}", token.redacted()));
        }
        (_, None) => {}
    }
}

fn settings_lines(plan: &LaunchPlan, report: &Report) {
    report.plan(format!("destination: {}", plan.destination()));
    for finding in &plan.settings.findings {
        report.plan(format!("settings: {}", finding.line()));
    }
    for note in &plan.settings.unread {
        report.plan(format!("settings: {note}"));
    }
    if let Err(e) = plan.settings.enforce(plan.config.allow_project_auth) {
        report.plan(format!(
            "settings: a launch would exit {} (--allow-project-auth lets it through on purpose)",
            e.exit_code()
        ));
    }
}

fn via_line(plan: &LaunchPlan) -> String {
    match (&plan.broker, plan.via) {
        (BrokerChoice::Own(b), _) => format!(
            "token via: broker (a process beside the command holds the token and forwards its API requests from {} to {}; the command gets {TOKEN_VAR}={})",
            b.socket.display(),
            b.destination_line(),
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
            token::pipe::token_fd_floor(plan.config.env.get("LISTEN_FDS"))
        ),
    }
}

/// The mask as a launch would find it.
fn mask_lines(verdict: &mask::Verdict, mode: Switch, report: &Report) {
    let plan = match verdict {
        mask::Verdict::Off => {
            report.plan("mask: off: the real credential files stay reachable to the command");
            return;
        }
        mask::Verdict::Misplaced(why) => {
            report.plan(format!("mask: {why} (a launch would exit 125)"));
            return;
        }
        mask::Verdict::Ready(p) | mask::Verdict::Refused(Some(p), _) => Some(p),
        mask::Verdict::Refused(None, _) => None,
    };
    for op in plan.map(|p| p.ops.as_slice()).unwrap_or_default() {
        report.plan(format!("mask: {}", op.describe()));
    }
    match verdict {
        mask::Verdict::Ready(p) if p.ops.is_empty() => {
            report.plan("mask: possible here; no credential file exists to mask");
        }
        mask::Verdict::Ready(_) => report.plan("mask: possible here"),
        mask::Verdict::Refused(_, why) => report.plan(format!(
            "mask: NOT possible here: {why} (a launch would {})",
            if mode == Switch::On {
                "exit 125"
            } else {
                "warn and run isolated by environment only"
            }
        )),
        mask::Verdict::Off | mask::Verdict::Misplaced(_) => {}
    }
}

/// The working directory, the command, its arguments and what changes in its
/// environment; any token shown redacted.
fn command_lines(plan: &LaunchPlan, report: &Report) {
    let token = plan.token.as_ref().map(|(t, _)| t);
    let redact = |s: &str| match token {
        Some(token) => s.replace(token.expose(), &token.redacted()),
        None => s.to_owned(),
    };
    report.plan(format!("cwd: {}", plan.config.workdir.display()));
    if let Ok(program) = &plan.program {
        report.plan(format!("command: {}", program.display()));
    }
    let shown: Vec<String> = plan
        .argv
        .iter()
        .map(|a| shell_quote(&redact(&a.to_string_lossy())))
        .collect();
    report.plan(format!("argv: {}", shown.join(" ")));
    // The caller's values by name (the first of duplicates, as `get` has it): one lookup
    // per variable keeps a plan of 100 000 variables linear.
    let mut before: HashMap<&OsStr, &OsStr> = HashMap::with_capacity(plan.config.env.vars().len());
    for (k, v) in plan.config.env.vars() {
        before.entry(k.as_os_str()).or_insert(v.as_os_str());
    }
    for (k, v) in &plan.child.vars {
        if before.get(k.as_os_str()) == Some(&v.as_os_str()) {
            continue;
        }
        let k = k.to_string_lossy();
        let v = if k == TOKEN_VAR && v != broker::PLACEHOLDER {
            token.map_or_else(|| "<the caller's>".to_owned(), Token::redacted)
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
    for name in plan.child.removed.iter().chain(&plan.child.unset) {
        report.plan(format!("env: unset {name}"));
    }
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
