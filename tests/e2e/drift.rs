//! Drift detection (issue 11): the scrub table against the variable names of the claude
//! CLI that is installed (found through `CLAUDE_ISO_TEST_CLAUDE`, like the end-to-end
//! suite: unset outside CI it says so loudly; under `CI=true` it fails).
//!
//! Every name in claude's namespaces that looks like a credential
//! (`scrub::looks_like_credential`) must be either removed — by a rule it was reviewed
//! under (`scrub::REVIEWED`), or by name (`scrub::LISTED`) — or be configuration on
//! `scrub::KEEP`. A release that adds such a name fails this test, naming it, until
//! someone has looked at it: `.ci/run --latest` turns red the day it ships.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use claude_iso::scrub::{self, NAMESPACES, Reason};

use crate::support::world::CLAUDE_ENV;

/// The files of the installed claude that hold its code: the file `CLAUDE_ISO_TEST_CLAUDE`
/// resolves to (the native executable, or `cli.js` of older packages), and the package's
/// `cli.js` when there is one besides.
fn bundle_files(claude: &Path) -> Vec<PathBuf> {
    let real = fs::canonicalize(claude)
        .unwrap_or_else(|e| panic!("{CLAUDE_ENV}={}: {e}", claude.display()));
    let mut files = vec![real.clone()];
    for dir in real.ancestors().skip(1) {
        let Ok(manifest) = fs::read_to_string(dir.join("package.json")) else {
            continue;
        };
        if manifest.contains("\"@anthropic-ai/claude-code\"") {
            let cli = dir.join("cli.js");
            if cli.is_file() && cli != real {
                files.push(cli);
            }
            break;
        }
    }
    files
}

fn ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Every whole identifier in `bytes` that starts with one of claude's namespaces, is
/// upper case, and does not end in `_` (those are prefixes code builds names from).
fn names_in(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ns in NAMESPACES {
        for at in memchr::memmem::find_iter(bytes, ns.as_bytes()) {
            if at > 0 && ident(bytes[at - 1]) {
                continue;
            }
            let len = bytes[at..]
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
                .count();
            let end = at + len;
            if end < bytes.len() && ident(bytes[end]) {
                continue;
            }
            let name = &bytes[at..end];
            if name.ends_with(b"_") {
                continue;
            }
            out.insert(String::from_utf8_lossy(name).into_owned());
        }
    }
    out
}

/// The names of the claude whose files are `files`.
fn names_of(files: &[PathBuf]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        out.extend(names_in(&bytes));
    }
    out
}

/// One line per credential-looking name the table does not account for.
fn drift(names: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for name in names.iter().filter(|n| scrub::looks_like_credential(n)) {
        let os = OsStr::new(name.as_str());
        if scrub::kept(os).is_some() {
            continue;
        }
        match scrub::why(os) {
            Some(Reason::Listed(_) | Reason::Replaced(_)) => {}
            Some(reason @ Reason::Rule(..)) => {
                if !scrub::REVIEWED.contains(&name.as_str()) {
                    out.push(format!(
                        "{name}: new; removed ({reason}); check what it is, then add it to \
                         scrub::REVIEWED in src/scrub/reviewed.rs (or to scrub::KEEP if it is configuration)"
                    ));
                }
            }
            None => out.push(format!(
                "{name}: PASSES THROUGH: neither removed nor on scrub::KEEP; add it to \
                 scrub::LISTED if it carries or locates a credential, else to scrub::KEEP"
            )),
        }
    }
    out
}

fn report(what: &str, names: &BTreeSet<String>) -> Vec<String> {
    let found = drift(names);
    let suspicious = names
        .iter()
        .filter(|n| scrub::looks_like_credential(n))
        .count();
    eprintln!(
        "drift: {what}: {} names in claude's namespaces, {suspicious} look like credentials, {} unaccounted for",
        names.len(),
        found.len()
    );
    found
}

/// The claude to check, or `None` (skipped loudly) outside CI.
fn claude(test: &str) -> Option<PathBuf> {
    match std::env::var_os(CLAUDE_ENV).filter(|v| !v.is_empty()) {
        Some(v) => Some(PathBuf::from(v)),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{CLAUDE_ENV} is not set but CI=true: the drift check must run in CI")
        }
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !!! SKIPPING `{test}`: {CLAUDE_ENV} is not set. The scrub table was NOT\n\
                 !!! checked against a claude release. Run `scripts/test` to check it.\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
}

#[test]
fn every_credential_variable_of_the_installed_claude_is_removed_or_kept() {
    let Some(claude) =
        claude("every_credential_variable_of_the_installed_claude_is_removed_or_kept")
    else {
        return;
    };
    let files = bundle_files(&claude);
    let names = names_of(&files);
    // The extraction works: the names claude-iso is built around are there.
    for must in [
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CLAUDE_CONFIG_DIR",
    ] {
        assert!(
            names.contains(must),
            "{must} not found in {files:?}: is this claude's bundle?"
        );
    }
    let found = report(&format!("{files:?}"), &names);
    assert!(
        found.is_empty(),
        "the scrub table does not account for {} credential-looking variable(s) of {}:\n  {}",
        found.len(),
        claude.display(),
        found.join("\n  ")
    );
}

/// The check above, on a copy of the installed bundle with a made-up credential variable
/// added: it must name it.
#[test]
fn a_new_credential_variable_fails_the_check() {
    let Some(claude) = claude("a_new_credential_variable_fails_the_check") else {
        return;
    };
    let files = bundle_files(&claude);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(files[0].file_name().unwrap());
    fs::copy(&files[0], &copy).unwrap();
    let mut f = fs::OpenOptions::new().append(true).open(&copy).unwrap();
    f.write_all(
        b"\nlet a=process.env.CLAUDE_CODE_FROBNICATE_API_KEY,b=process.env.ANTHROPIC_FROBNICATE_SIGNING_SEED;\n",
    )
    .unwrap();
    drop(f);
    let mut copies = vec![copy];
    copies.extend(files[1..].iter().cloned());
    let found = report("copy with made-up variables", &names_of(&copies));
    let flagged = |name: &str| found.iter().any(|l| l.starts_with(&format!("{name}:")));
    // Removed by a rule, but new: reviewed before it counts as known.
    assert!(flagged("CLAUDE_CODE_FROBNICATE_API_KEY"), "{found:#?}");
    // Matches no rule: passes through, flagged as such.
    assert!(flagged("ANTHROPIC_FROBNICATE_SIGNING_SEED"), "{found:#?}");
    assert!(
        found
            .iter()
            .any(|l| l.starts_with("ANTHROPIC_FROBNICATE_SIGNING_SEED: PASSES THROUGH")),
        "{found:#?}"
    );
}

#[test]
fn extraction_takes_whole_upper_case_names_only() {
    let text = b"x=process.env.CLAUDE_CODE_OAUTH_TOKEN;y=e.ANTHROPIC_API_KEY??\"CCR_X\"\
        +`CLAUDE_CODE_USE_${p}`;MY_CLAUDE_TOKEN;CLAUDE_CODE_OAUTH_TOKENx;\xffAWS_BEARER_TOKEN_BEDROCK\x00";
    let names: Vec<String> = names_in(text).into_iter().collect();
    assert_eq!(
        names,
        [
            "ANTHROPIC_API_KEY",
            "AWS_BEARER_TOKEN_BEDROCK",
            "CCR_X",
            "CLAUDE_CODE_OAUTH_TOKEN"
        ]
    );
}

#[test]
fn reviewed_names_are_still_removed_by_a_rule() {
    for name in scrub::REVIEWED {
        assert!(
            matches!(scrub::why(OsStr::new(name)), Some(Reason::Rule(..))),
            "{name} is on scrub::REVIEWED but no rule removes it (a rule or KEEP changed)"
        );
    }
}

/// Review of main (issue 11, "rules, then a list"): names of the credential families in
/// other shapes — plural, numbered, compound words, key files, JWTs, config and settings
/// relocation — never reach the command; configuration does.
#[test]
fn credential_families_in_any_shape_are_removed_and_configuration_is_kept() {
    const REMOVED: &[&str] = &[
        "ANTHROPIC_API_KEYS",
        "ANTHROPIC_API_KEY2",
        "ANTHROPIC_API_KEY_2",
        "ANTHROPIC_KEY_FILE",
        "ANTHROPIC_APIKEY",
        "CLAUDE_CODE_PRIVATE_KEY_PATH",
        "CLAUDE_CODE_PRIVATEKEY",
        "CLAUDE_CODE_KEYFILE",
        "CLAUDE_CODE_AUTHTOKEN",
        "CLAUDE_CODE_OAUTHTOKEN",
        "CLAUDE_CODE_ACCESSTOKEN",
        "CLAUDE_CODE_TOKENFILE",
        "ANTHROPIC_APITOKEN",
        "ANTHROPIC_JWT",
        "ANTHROPIC_JWT_FILE",
        "ANTHROPIC_SECRETS",
        "ANTHROPIC_CONFIG_HOME",
        "ANTHROPIC_CONFIGDIR",
        "CLAUDE_CODE_CONFIG_PATH",
        "CLAUDE_CODE_CONFIG_FILE",
        "CLAUDE_CODE_SETTINGS_DIR",
        "CLAUDE_SETTINGS_FILE",
        "CLAUDE_HOME",
    ];
    const KEPT: &[&str] = &[
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_MODEL",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
        "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
        "CLAUDE_CODE_CONFIG_LOCK_WAIT_MS",
        "CLAUDE_CODE_REMOTE_SETTINGS_POLL_MS",
        "CLAUDE_CODE_DISABLE_HOME_SETTINGS_SEED",
        "CLAUDE_CODE_SUBPROCESS_ENV_SCRUB",
        "CLAUDE_CODE_USE_POWERSHELL_TOOL",
        "DISABLE_AUTOUPDATER",
    ];
    let mut t = crate::support::sandbox::Test::new()
        .arg("--scrub-tools")
        .arg("off");
    for (i, name) in REMOVED.iter().enumerate() {
        let value = format!("sk-ant-api03-Rm{i:02}Xq7Zt{i:02}Lp");
        t = t.env(*name, value.clone()).secret(value);
    }
    for name in KEPT {
        t = t.env(*name, "1");
    }
    let out = t.run();
    out.success().no_secrets();
    let probe = out.probe();
    for name in REMOVED {
        assert_eq!(probe.var(name), None, "{name} reached the command");
        out.stderr_contains(name);
    }
    for name in KEPT {
        assert_eq!(
            probe.var(name).as_deref(),
            Some(OsStr::new("1")),
            "{name} did not reach the command"
        );
    }
}

/// Second review of main (issue 11): credential-looking names in shapes the rules did
/// not read (authorization, key pairs/rings/chains, a helper spelled as one word, client
/// certificates, a number after any word, profile names and plurals, a home directory),
/// and names outside the namespaces that claude itself lists among its auth-related
/// variables, reached the command; a real switch of claude's
/// (`CLAUDE_CODE_STOP_ON_UNUSABLE_PROFILE`) was removed as if it were a profile.
#[test]
fn second_review_shapes_are_removed_and_real_switches_kept() {
    const REMOVED: &[&str] = &[
        "ANTHROPIC_AUTHORIZATION",
        "CLAUDE_CODE_AUTHORIZATION",
        "CLAUDE_CODE_AUTHORIZATION_HEADER",
        "ANTHROPIC_AUTHENTICATION",
        "ANTHROPIC_KEYPAIR",
        "ANTHROPIC_KEYRING",
        "ANTHROPIC_KEYCHAIN",
        "ANTHROPIC_KEYSTORE",
        "CLAUDE_CODE_APIKEYHELPER",
        "CLAUDE_CODE_CLIENT_CERT",
        "CLAUDE_CODE_CLIENT_CERT_PATH",
        "CLAUDE_CODE_CLIENT_CERTIFICATE",
        "CLAUDE_CODE_CLIENTCERT",
        "CLAUDE_CODE_CONFIG_DIR2",
        "CLAUDE_CODE_SETTINGS_PATH3",
        "ANTHROPIC_PROFILES",
        "ANTHROPIC_PROFILE_NAME",
        "ANTHROPIC_PROFILENAME",
        "CLAUDE_HOME_DIR",
        "ANTHROPIC_HOME_PATH",
        "USE_LOCAL_OAUTH",
        "USE_STAGING_OAUTH",
        "CLAUDE_CODE_DISABLE_REDIRECT_CHECK",
        "CLAUDE_CODE_DISABLE_ADMIN_ENV_UNION",
        "CLAUDE_CODE_MOCK_REMOTE_SETTINGS",
    ];
    const KEPT: &[&str] = &[
        "CLAUDE_CODE_STOP_ON_UNUSABLE_PROFILE",
        "CCR_SESSION_PROFILE",
        "CLAUDE_CODE_PROFILE_STARTUP",
        "CLAUDE_CODE_HOME_SEED_HOLD_TIMEOUT_MS",
        "CLAUDE_CODE_RELAUNCH_HOME_TRUST",
        "CLAUDE_CODE_DISABLE_MTLS_RELOAD_ON_STALE_CONNECTION",
        "CLAUDE_CODE_CERT_STORE",
        "CLAUDE_CODE_KEYBOARD_LAYOUT",
    ];
    let mut t = crate::support::sandbox::Test::new()
        .arg("--scrub-tools")
        .arg("off");
    for (i, name) in REMOVED.iter().enumerate() {
        let value = format!("sk-ant-api03-Sr{i:02}Xq7Zt{i:02}Lp");
        t = t.env(*name, value.clone()).secret(value);
    }
    for name in KEPT {
        t = t.env(*name, "1");
    }
    let out = t.run();
    out.success().no_secrets();
    let probe = out.probe();
    for name in REMOVED {
        assert_eq!(probe.var(name), None, "{name} reached the command");
        out.stderr_contains(name);
    }
    for name in KEPT {
        assert_eq!(
            probe.var(name).as_deref(),
            Some(OsStr::new("1")),
            "{name} did not reach the command"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Start-up questions (issue 27): the state keys and question titles in claude's bundle,
// each reviewed (docs/claude-dialogs.md), and the limits of the counters claude-iso seeds.
// ---------------------------------------------------------------------------------------

/// The answer of a review.
const SEEDED: &str = "seeded by claude-iso";
const NOTICE: &str =
    "a notice, tip or hint line: takes no key; never a question in the measured starts";
const IN_SESSION: &str = "asked in answer to something done in the session (a command, a tool, a mode switch), not at start";
const FLAGGED: &str = "start-up question behind a server-side flag, off without Anthropic's servers; not seen in the measured starts";
const NOT_STATE: &str = "a code identifier, not a key of .claude.json";

/// The `.claude.json` keys of claude 2.1.197, 2.1.330 and 2.1.332 that count or record a
/// question or notice (`…SeenCount`, `…ShownCount`, `…Dismissed`, `hasSeen…`), each
/// reviewed: is it the state of a question that can stop the TUI at start?
const REVIEWED_DIALOG_STATE: &[(&str, &str)] = &[
    (
        "autoModeOptInDismissed",
        "removed by claude's own migration (2.1.197 on); no question reads it",
    ),
    ("chromeInstallUpsellDismissed", FLAGGED),
    ("daemonInstallPromptDismissed", IN_SESSION),
    ("experimentNoticesSeenCount", NOTICE),
    ("forgetDismissed", IN_SESSION),
    ("fullscreenDownsellSeenCount", NOTICE),
    ("fullscreenUpsellSeenCount", SEEDED),
    ("hasSeenAutoDefaultNotice", NOTICE),
    ("hasSeenAutoDefaultNudge", SEEDED),
    ("hasSeenAutoModeEntryWarning", IN_SESSION),
    ("hasSeenAutoModeOutsideReadPrompt", IN_SESSION),
    ("hasSeenAutofixPrChatOpsNotice", NOTICE),
    ("hasSeenBoth", NOT_STATE),
    ("hasSeenEffortMediumNudge", FLAGGED),
    ("hasSeenEffortMediumNudgeByModel", FLAGGED),
    ("hasSeenGlabConfig", NOT_STATE),
    ("hasSeenSandbox", NOT_STATE),
    ("hasSeenSymlinks", NOT_STATE),
    ("hasSeenTasksHint", NOTICE),
    ("hasSeenTrustOverride", NOT_STATE),
    ("hasSeenUltraplanTerms", IN_SESSION),
    ("hasSeenUltrareviewTerms", IN_SESSION),
    ("isDismissed", NOT_STATE),
    ("opus1mMergeNoticeSeenCount", NOTICE),
    ("opus47LaunchSeenCount", NOTICE),
    ("opus48LaunchSeenCount", NOTICE),
    ("passesUpsellSeenCount", NOTICE),
    ("projectOnboardingSeenCount", NOTICE),
    ("pushNotifUpsellSeenCount", NOTICE),
    ("rcLongTurnNudgeSeenCount", NOTICE),
    ("rcPermissionNudgeSeenCount", NOTICE),
    ("remoteControlUpsellSeenCount", NOTICE),
    ("resumeReturnDismissed", FLAGGED),
    ("subscriptionUpsellShownCount", NOTICE),
    ("transcriptShareDismissed", IN_SESSION),
    ("voiceFooterHintSeenCount", NOTICE),
    ("voiceLangHintShownCount", NOTICE),
    ("voiceNoticeSeenCount", NOTICE),
];

/// The question titles (`title:"…?"`) of claude 2.1.197, 2.1.330 and 2.1.332, each
/// reviewed as above.
const REVIEWED_QUESTION_TITLES: &[(&str, &str)] = &[
    ("Add marketplace?", IN_SESSION),
    (
        "Allow external CLAUDE.md file imports?",
        "asked when a CLAUDE.md imports a file outside the project; not in the measured homes",
    ),
    (
        "Always deliver in every session on this computer?",
        IN_SESSION,
    ),
    ("Background this session?", IN_SESSION),
    ("Connect Claude on the web to GitHub?", IN_SESSION),
    ("Connect cloud sessions to GitHub?", IN_SESSION),
    (
        "Connect to your IDE automatically?",
        "asked in an IDE's terminal only; not in tmux",
    ),
    ("Continue this session in the cloud?", IN_SESSION),
    ("Create a Claude Project from this session?", IN_SESSION),
    ("Delete auto mode rule?", IN_SESSION),
    ("Do you wish to disable auto-connect to IDE?", IN_SESSION),
    (
        "Do you wish to enable auto-connect to IDE?",
        "asked in an IDE's terminal only; not in tmux",
    ),
    ("Download Claude Desktop?", IN_SESSION),
    ("Enable auto mode?", IN_SESSION),
    ("Enter plan mode?", IN_SESSION),
    ("Exit plan mode?", IN_SESSION),
    ("How do you authenticate to AWS?", IN_SESSION),
    ("How do you authenticate to Google Cloud?", IN_SESSION),
    ("How should the plan be implemented?", IN_SESSION),
    (
        "Let cloud sessions use this machine's MCP servers?",
        IN_SESSION,
    ),
    ("Make auto mode your default permission mode?", SEEDED),
    ("Overwrite this file?", IN_SESSION),
    ("Ready to code?", IN_SESSION),
    ("Remove directory from workspace?", IN_SESSION),
    ("Remove server?", IN_SESSION),
    ("Remove task?", IN_SESSION),
    ("Remove the monthly spend limit?", IN_SESSION),
    ("Replace the built-in environment?", IN_SESSION),
    (
        "Resume this conversation?",
        "asked with --resume/--continue of an old session only",
    ),
    ("Run a dynamic workflow?", IN_SESSION),
    ("Run this command?", IN_SESSION),
    ("Run this machine's hooks for cloud sessions?", IN_SESSION),
    ("Run ultraplan in the cloud?", IN_SESSION),
    ("Run ultrareview in the cloud?", IN_SESSION),
    ("Send to which project?", IN_SESSION),
    ("Sign in to Cloud gateway?", IN_SESSION),
    ("Stop connecting to your IDE automatically?", IN_SESSION),
    ("Stop ultraplan?", IN_SESSION),
    ("Stop ultrareview?", IN_SESSION),
    (
        "Teach auto mode about your environment?",
        "auto mode only, after 5 classifier denials, behind a server-side flag (autoModeEnvSetup); not seen in the measured starts",
    ),
    (
        "Trust this directory?",
        "the folder-trust question: seeded (projects[dir].hasTrustDialogAccepted)",
    ),
    ("Try the new fullscreen renderer?", SEEDED),
    ("Use this machine's settings in cloud sessions?", IN_SESSION),
    (
        "Use your enabled plugins in cloud sessions you run from this machine?",
        IN_SESSION,
    ),
    ("What do you want to do?", IN_SESSION),
    (
        "You already have auto-mode entries \\u2014 add to them, or start fresh?",
        IN_SESSION,
    ),
    (
        "You\\u2019re resuming {an} {older} session. Continue with {newer}?",
        "asked with --resume of a session made by another model only",
    ),
];

/// The whole identifiers in `bytes` that name question state: `hasSeen…`, or ending in
/// `SeenCount`, `ShownCount` or `Dismissed` (starting lower case).
fn dialog_state_in(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for needle in ["hasSeen", "SeenCount", "ShownCount", "Dismissed"] {
        for at in memchr::memmem::find_iter(bytes, needle.as_bytes()) {
            let start = bytes[..at]
                .iter()
                .rposition(|b| !ident(*b))
                .map_or(0, |p| p + 1);
            let end = at
                + bytes[at..]
                    .iter()
                    .position(|b| !ident(*b))
                    .unwrap_or(bytes.len() - at);
            let Ok(name) = std::str::from_utf8(&bytes[start..end]) else {
                continue;
            };
            let shaped = if needle == "hasSeen" {
                name.starts_with("hasSeen")
                    && name[7..].starts_with(|c: char| c.is_ascii_uppercase())
            } else {
                name.ends_with(needle) && name.starts_with(|c: char| c.is_ascii_lowercase())
            };
            if shaped && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

/// The question titles in `bytes`: the text of every `title:"…?"`, escapes as written.
fn question_titles_in(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for at in memchr::memmem::find_iter(bytes, b"title:\"") {
        let from = at + 7;
        let mut end = from;
        while end < bytes.len() && end - from < 200 {
            match bytes[end] {
                b'\\' => end += 2,
                b'"' => break,
                _ => end += 1,
            }
        }
        if end < bytes.len()
            && bytes[end] == b'"'
            && end > from
            && bytes[end - 1] == b'?'
            && let Ok(title) = std::str::from_utf8(&bytes[from..end])
        {
            out.insert(title.to_owned());
        }
    }
    out
}

/// One line per question state key or title the reviews do not cover.
fn dialog_drift(state: &BTreeSet<String>, titles: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    // A state key that differs from a reviewed one by a trailing minifier letter is the
    // same key glued to the next identifier (`hasSeenAutoModeOutsideReadPromptC`).
    let known = |name: &str| {
        REVIEWED_DIALOG_STATE
            .iter()
            .any(|(k, _)| name == *k || (name.len() == k.len() + 1 && name.starts_with(k)))
    };
    for name in state.iter().filter(|n| !known(n)) {
        out.push(format!(
            "{name}: new question state in .claude.json; find the question it records \
             (docs/claude-dialogs.md), check whether it can stop the TUI at start, seed its \
             answer if so (layout::DIALOG_COUNTERS or DIALOG_FLAGS), then add it to \
             REVIEWED_DIALOG_STATE in tests/e2e/drift.rs"
        ));
    }
    for title in titles {
        if !REVIEWED_QUESTION_TITLES.iter().any(|(t, _)| t == title) {
            out.push(format!(
                "{title:?}: new question; check whether it can stop the TUI at start \
                 (docs/claude-dialogs.md), seed its answer if so, then add it to \
                 REVIEWED_QUESTION_TITLES in tests/e2e/drift.rs"
            ));
        }
    }
    out
}

/// The limit `(x.KEY??0)>=LIMIT` compares a counter with, when the bundle names it as a
/// constant (`var cGn=3`) or a number: every such comparison's limit.
fn counter_limits_in(bytes: &[u8], key: &str) -> Vec<u64> {
    let needle = format!("{key}??0)>=");
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(bytes, needle.as_bytes()) {
        let from = at + needle.len();
        let len = bytes[from..].iter().take_while(|b| ident(**b)).count();
        let word = &bytes[from..from + len];
        if word.iter().all(u8::is_ascii_digit) && !word.is_empty() {
            out.extend(
                std::str::from_utf8(word)
                    .ok()
                    .and_then(|w| w.parse::<u64>().ok()),
            );
            continue;
        }
        // A one-letter word is a function's parameter (`(r.KEY??0)>=e?r:…`, the raising
        // of the counter), not a limit.
        if word.len() < 2 {
            continue;
        }
        // The nearest `WORD=<digits>` before the comparison, else after it (minified
        // names repeat across chunks; the definition sits in the same chunk).
        let def = [word, b"="].concat();
        let value_at = |d: usize| {
            if d > 0 && ident(bytes[d - 1]) {
                return None;
            }
            let n = &bytes[d + def.len()..];
            let digits = n.iter().take_while(|b| b.is_ascii_digit()).count();
            (digits > 0 && !ident(n[digits]))
                .then(|| std::str::from_utf8(&n[..digits]).ok()?.parse::<u64>().ok())
                .flatten()
        };
        let found = memchr::memmem::rfind_iter(&bytes[..at], &def)
            .find_map(value_at)
            .or_else(|| {
                memchr::memmem::find_iter(&bytes[at..], &def).find_map(|d| value_at(at + d))
            });
        out.extend(found);
    }
    out
}

#[test]
fn every_start_up_question_of_the_installed_claude_is_reviewed() {
    let Some(claude) = claude("every_start_up_question_of_the_installed_claude_is_reviewed") else {
        return;
    };
    let files = bundle_files(&claude);
    let mut state = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let mut limits = Vec::new();
    for f in &files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        state.extend(dialog_state_in(&bytes));
        titles.extend(question_titles_in(&bytes));
        for (key, _) in claude_iso::layout::DIALOG_COUNTERS {
            limits.extend(
                counter_limits_in(&bytes, key)
                    .into_iter()
                    .map(|l| (*key, l)),
            );
        }
    }
    // The extraction works: what claude-iso seeds is there.
    for (key, _) in claude_iso::layout::DIALOG_COUNTERS {
        assert!(
            state.contains(*key),
            "{key} not found in {files:?}: renamed? (docs/claude-dialogs.md)"
        );
    }
    for key in claude_iso::layout::DIALOG_FLAGS {
        assert!(
            state.contains(*key),
            "{key} not found in {files:?}: renamed? (docs/claude-dialogs.md)"
        );
    }
    let mut found = dialog_drift(&state, &titles);
    // A counter whose limit rose above what claude-iso seeds would ask again.
    for (key, limit) in claude_iso::layout::DIALOG_COUNTERS {
        let here: Vec<u64> = limits
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, l)| *l)
            .collect();
        if here.is_empty() {
            found.push(format!("{key}: no `({key}??0)>=LIMIT` test found: the question's condition changed shape; re-read it"));
        }
        for l in here.into_iter().filter(|l| l > limit) {
            found.push(format!("{key}: claude now asks until {l}, claude-iso seeds {limit}: raise it in layout::DIALOG_COUNTERS"));
        }
    }
    eprintln!(
        "drift: {} question state keys, {} question titles, counter limits {limits:?}; {} unreviewed",
        state.len(),
        titles.len(),
        found.len()
    );
    assert!(
        found.is_empty(),
        "start-up questions of {} not reviewed:\n  {}",
        claude.display(),
        found.join("\n  ")
    );
}

/// The review above, on made-up text: a new counter, a new question, a raised limit.
#[test]
fn a_new_start_up_question_fails_the_review() {
    let text = b"function x(){if((ye().fullscreenUpsellSeenCount??0)>=cGn)return!1}var q,cGn=3;\
        if((e.fullscreenUpsellSeenCount??0)>=5)f();let s=o.frobnicateUpsellSeenCount,t=o.hasSeenFrobTerms,\
        u=o.hasSeenAutoModeOutsideReadPromptC;if((r.fullscreenUpsellSeenCount??0)>=e)r=0;g({title:\"Try the frobnicator?\",x:1});g({title:\"Enter plan mode?\"})";
    let state = dialog_state_in(text);
    assert!(state.contains("frobnicateUpsellSeenCount"), "{state:?}");
    assert!(state.contains("hasSeenFrobTerms"), "{state:?}");
    let titles = question_titles_in(text);
    assert_eq!(
        titles.iter().map(String::as_str).collect::<Vec<_>>(),
        ["Enter plan mode?", "Try the frobnicator?"]
    );
    let found = dialog_drift(&state, &titles);
    let flagged = |what: &str| found.iter().any(|l| l.starts_with(what));
    assert!(flagged("frobnicateUpsellSeenCount:"), "{found:#?}");
    assert!(flagged("hasSeenFrobTerms:"), "{found:#?}");
    assert!(flagged("\"Try the frobnicator?\":"), "{found:#?}");
    assert!(!flagged("fullscreenUpsellSeenCount:"), "{found:#?}");
    assert!(!flagged("hasSeenAutoModeOutsideReadPromptC:"), "{found:#?}");
    assert!(!flagged("\"Enter plan mode?\":"), "{found:#?}");
    assert_eq!(counter_limits_in(text, "fullscreenUpsellSeenCount"), [3, 5]);
}

// ---------------------------------------------------------------------------------------
// Issue 21 §1: the settings layers and claude's own "settings may not set" family
// ---------------------------------------------------------------------------------------

/// The table of layers, per version (`docs/claude-settings-layers.md`).
fn layers_table() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/claude-settings-layers.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every quoted string of `bytes` matching `"<word>Settings"` inside an array literal of
/// at least three such strings: claude's names for its settings sources
/// (`["userSettings","projectSettings",…]`).
fn settings_sources(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for at in memchr::memmem::find_iter(bytes, b"Settings\",\"") {
        // Back to the opening bracket of this array, through quoted words only.
        let start = bytes[..at]
            .iter()
            .rposition(|b| !(b.is_ascii_alphabetic() || *b == b'"' || *b == b','))
            .map_or(0, |i| i);
        if bytes[start] != b'[' {
            continue;
        }
        let end = at
            + bytes[at..]
                .iter()
                .position(|b| !(b.is_ascii_alphabetic() || *b == b'"' || *b == b','))
                .unwrap_or(0);
        if bytes.get(end) != Some(&b']') {
            continue;
        }
        let words: Vec<&str> = std::str::from_utf8(&bytes[start + 1..end])
            .unwrap_or("")
            .split(',')
            .map(|w| w.trim_matches('"'))
            .collect();
        if words.len() >= 3
            && words.iter().all(|w| {
                w.ends_with("Settings")
                    && w.len() > "Settings".len()
                    && w.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            })
        {
            out.extend(words.iter().map(|w| (*w).to_owned()));
        }
    }
    out
}

/// Every quoted file name of `bytes` that ends in `.json` and has `settings` in it
/// (`"settings.local.json"`, `"managed-settings.json"`, …).
fn settings_file_names(bytes: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let name = |b: &u8| b.is_ascii_alphanumeric() || b"_.-".contains(b);
    for at in memchr::memmem::find_iter(bytes, b"settings") {
        let start = bytes[..at].iter().rposition(|b| !name(b)).unwrap_or(0);
        let end = at + bytes[at..].iter().position(|b| !name(b)).unwrap_or(0);
        if bytes[start] != b'"' || bytes.get(end) != Some(&b'"') {
            continue;
        }
        let word = String::from_utf8_lossy(&bytes[start + 1..end]).into_owned();
        if word.ends_with(".json") {
            out.insert(word);
        }
    }
    out
}

/// The names the table does not mention (each must appear in it between backquotes).
fn missing_from(table: &str, names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !table.contains(&format!("`{n}`")) && !table.contains(&format!("/{n}`")))
        .cloned()
        .collect()
}

/// A claude release that names a settings source or a settings file the table lacks
/// fails here until someone has measured whether it is a layer and written the row.
#[test]
fn every_settings_source_and_file_of_the_installed_claude_is_in_the_table() {
    let Some(claude) =
        claude("every_settings_source_and_file_of_the_installed_claude_is_in_the_table")
    else {
        return;
    };
    let mut sources = BTreeSet::new();
    let mut files = BTreeSet::new();
    for f in bundle_files(&claude) {
        let bytes = fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        sources.extend(settings_sources(&bytes));
        files.extend(settings_file_names(&bytes));
    }
    // The extraction works: the sources and files every release has are found.
    for must in [
        "userSettings",
        "projectSettings",
        "localSettings",
        "policySettings",
    ] {
        assert!(sources.contains(must), "{must} not found: {sources:?}");
    }
    for must in [
        "settings.json",
        "settings.local.json",
        "managed-settings.json",
    ] {
        assert!(files.contains(must), "{must} not found: {files:?}");
    }
    eprintln!("drift: settings sources {sources:?}, settings files {files:?}");
    let table = layers_table();
    let mut missing = missing_from(&table, &sources);
    missing.extend(missing_from(&table, &files));
    assert!(
        missing.is_empty(),
        "{} names settings sources or files that docs/claude-settings-layers.md lacks: {missing:?}; \
         measure whether claude applies each (README \"Project settings\"), then add its row \
         (and teach src/isolate/guard/layers.rs the layer if it is one)",
        claude.display()
    );
}

#[test]
fn the_layer_extraction_finds_a_new_source_and_file() {
    let bundle = br#"var a=["userSettings","projectSettings","teamSettings"],b="team-settings.json",c=["userSettings","x"],d="settings.json";"#;
    let sources = settings_sources(bundle);
    let files = settings_file_names(bundle);
    assert_eq!(
        sources.iter().map(String::as_str).collect::<Vec<_>>(),
        ["projectSettings", "teamSettings", "userSettings"]
    );
    assert_eq!(
        files.iter().map(String::as_str).collect::<Vec<_>>(),
        ["settings.json", "team-settings.json"]
    );
    let table = layers_table();
    assert_eq!(
        missing_from(&table, &sources),
        ["teamSettings"],
        "the table must list claude's known sources and not a made-up one"
    );
    assert_eq!(missing_from(&table, &files), ["team-settings.json"]);
}

/// Names of claude's own family that a settings `env` block may set: configuration,
/// each looked at (timeouts, TTLs, a mode switch).
const FAMILY_HARMLESS: &[&str] = &[
    "API_FORCE_IDLE_TIMEOUT",
    "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
    "CLAUDE_CODE_DISABLE_HTTPS_AGENT_KEEPING",
    "CLAUDE_CODE_PROXY_AUTH_HELPER_TTL_MS",
    "CLAUDE_CODE_SIMPLE",
];

/// The quoted upper-case names of every array literal of `bytes` that holds `anchor`
/// (and, when given, `with` too).
fn arrays_holding(bytes: &[u8], anchor: &str, with: Option<&str>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let quoted = format!("\"{anchor}\"");
    for at in memchr::memmem::find_iter(bytes, quoted.as_bytes()) {
        let lo = at.saturating_sub(4096);
        let Some(open) = bytes[lo..at].iter().rposition(|b| b"[]".contains(b)) else {
            continue;
        };
        if bytes[lo + open] != b'[' {
            continue;
        }
        let Some(close) = bytes[at..(at + 4096).min(bytes.len())]
            .iter()
            .position(|b| b"[]".contains(b))
        else {
            continue;
        };
        if bytes[at + close] != b']' {
            continue;
        }
        let body = String::from_utf8_lossy(&bytes[lo + open + 1..at + close]).into_owned();
        if with.is_some_and(|w| !body.contains(&format!("\"{w}\""))) {
            continue;
        }
        for word in body.split(',') {
            let word = word.trim();
            if let Some(name) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    out.insert(name.to_owned());
                }
            }
        }
    }
    out
}

/// Whether the guard refuses `name` in a project's settings `env` block (caller's
/// environment empty).
fn refused(name: &str) -> bool {
    let doc = claude_iso::isolate::guard::parse(
        serde_json::json!({"env": {name: "x"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    !claude_iso::isolate::guard::judge(&doc, &claude_iso::caller::CallerEnv::default()).is_empty()
}

/// Issue 21 §1: claude 2.1.330 and later keep a list of variables that settings a host
/// does not own may not set (proxy, TLS, sockets, `SSLKEYLOGFILE`, name resolution;
/// `/^(?:BUN|NODE)_/` beside it). Read out of the installed bundle, every name on it is
/// refused by the guard, or is configuration on [`FAMILY_HARMLESS`].
#[test]
fn claudes_own_network_and_tls_family_is_refused() {
    let Some(claude) = claude("claudes_own_network_and_tls_family_is_refused") else {
        return;
    };
    let mut family = BTreeSet::new();
    let mut mentions = false;
    for f in bundle_files(&claude) {
        let bytes = fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        mentions |= memchr::memmem::find(&bytes, b"\"HOSTALIASES\"").is_some();
        family.extend(arrays_holding(&bytes, "HOSTALIASES", None));
        family.extend(arrays_holding(
            &bytes,
            "CLAUDE_CODE_PROXY_RESOLVES_HOSTS",
            Some("API_FORCE_IDLE_TIMEOUT"),
        ));
    }
    if !mentions {
        // 2.1.197 has no such list: nothing of claude's own to compare with (the names
        // themselves are refused whatever the version: tests/cli/guard.rs).
        eprintln!("drift: {} keeps no such list", claude.display());
        assert!(family.is_empty());
        return;
    }
    for must in ["SSLKEYLOGFILE", "HOSTALIASES", "NODE_OPTIONS"] {
        assert!(family.contains(must), "{must} not found: {family:?}");
    }
    eprintln!("drift: claude's own family: {family:?}");
    let passing: Vec<&String> = family
        .iter()
        .filter(|n| !FAMILY_HARMLESS.contains(&n.as_str()) && !refused(n))
        .collect();
    assert!(
        passing.is_empty(),
        "the guard lets these variables of claude's own network/TLS family through in a settings env block: {passing:?}; \
         refuse them in src/isolate/guard/rules.rs (ROUTE_VARS / LEAK_VARS) or, if configuration, add them to FAMILY_HARMLESS"
    );
    for n in ["BUN_CONFIG_VERBOSE_FETCH", "NODE_DEBUG", "BUN_OPTIONS"] {
        assert!(refused(n), "{n}");
    }
}
