//! The doctor's checks of the token, the variables and files that bear credentials, and
//! where the token goes.

#![forbid(unsafe_code)]

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn check_token(config: &Config) -> (Check, Option<(Token, Source)>) {
    let mut all = token::candidates(config);
    if config.env_file.is_some() {
        all.extend(token::default_candidates(config));
    }
    let present: Vec<&Source> = all
        .iter()
        .filter(|s| token::source_exists(config, s))
        .collect();
    let Some(first) = present.first() else {
        return (
            check(
                "token",
                Status::Fail,
                token::load(config)
                    .err()
                    .map_or_else(String::new, |e| e.to_string()),
            ),
            None,
        );
    };
    let token = match token::read_source(config, first) {
        Ok(t) => t,
        Err(e) => return (check("token", Status::Fail, e.to_string()), None),
    };
    let mut status = Status::Ok;
    let mut others = Vec::new();
    for other in &present[1..] {
        let verdict = match token::read_source(config, other) {
            Ok(t) if t == token => "same token",
            Ok(_) => {
                status = Status::Warn;
                "a DIFFERENT token"
            }
            Err(_) => "unusable",
        };
        others.push(format!("{other} ({verdict})"));
    }
    let mut detail = format!("{} from {first}", token.redacted());
    if !others.is_empty() {
        detail.push_str(&format!("; also present: {}", others.join(", ")));
        if status == Status::Warn {
            detail.push_str(
                "; fix: keep one token (the first source wins, so the others are stale copies)",
            );
        }
    }
    let source = (*first).clone();
    match crate::token::store::recorded(config, &source, &token) {
        crate::token::store::Recorded::Known { life, .. } => {
            detail.push_str(&format!("; {}", life.describe()));
            if let Some(w) = life.warning(crate::token::store::STATUS_WARN_DAYS) {
                status = if life.days_left() < 0 {
                    Status::Fail
                } else {
                    Status::Warn
                };
                detail.push_str(&format!("; {w}"));
            }
        }
        crate::token::store::Recorded::Invalid { warning, .. } => {
            if status == Status::Ok {
                status = Status::Warn;
            }
            detail.push_str(&format!("; age unknown: {warning}"));
        }
        crate::token::store::Recorded::Unknown => {
            detail.push_str("; age unknown (`claude-iso token set` records it)");
        }
    }
    (check("token", status, detail), Some((token, source)))
}

pub(super) fn check_env_file(config: &Config, winner: Option<&Source>) -> Check {
    let path = match winner {
        Some(Source::EnvFile(p) | Source::CredentialsDirectory(p)) => p.clone(),
        Some(Source::Environment) => {
            return check(
                "env_file",
                Status::Ok,
                "none in use: the token comes from the environment",
            );
        }
        None => match token::candidates(config)
            .into_iter()
            .find(|s| token::source_exists(config, s))
        {
            Some(Source::EnvFile(p) | Source::CredentialsDirectory(p)) => p,
            _ => return check("env_file", Status::Fail, "no env file found"),
        },
    };
    let systemd = token::credentials_directory(config).is_some_and(|d| path.starts_with(d));
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            return check(
                "env_file",
                Status::Fail,
                format!("{}: {}", path.display(), crate::error::error_text(&e)),
            );
        }
    };
    let facts = format!(
        "{}: owner uid {}, mode {:04o}",
        path.display(),
        meta.uid(),
        meta.mode() & 0o7777
    );
    let source = if systemd {
        Source::CredentialsDirectory(path.clone())
    } else {
        Source::EnvFile(path.clone())
    };
    let others = crate::token::store::other_variables(config, &source);
    let facts = if others.is_empty() {
        facts
    } else {
        format!(
            "{facts}; not exported (only {TOKEN_VAR} is read from it): {}",
            others.join(", ")
        )
    };
    match token::read_private_file(&path, token::credentials_directory(config)) {
        Ok(_) => check(
            "env_file",
            Status::Ok,
            if systemd {
                format!("{facts} (systemd credential)")
            } else {
                facts
            },
        ),
        Err(e) => check("env_file", Status::Fail, e.to_string()),
    }
}

pub(super) fn check_environment(config: &Config, token: Option<&Token>, home_path: &Path) -> Check {
    let placeholder;
    let token = if let Some(t) = token {
        t
    } else {
        placeholder = Token::parse(&format!("sk-ant-oat01-placeholder{}", "x".repeat(84)))
            .expect("valid placeholder");
        &placeholder
    };
    let child = environment::child_env(
        &config.env,
        &ChildEnvPlan {
            home: home_path,
            token: environment::Delivery::Env(token),
            pwd: None,
            keep: &config.keep_env,
            unset: &config.unset,
        },
    );
    let mut notes = Vec::new();
    if !child.removed.is_empty() {
        notes.push(format!(
            "the launcher will remove {} (each overrides or relocates the token)",
            child.removed.join(", ")
        ));
    }
    // What the command gets (after the scrub, --unset and --keep-env), not the caller's.
    let command_env = guard::command_env(config);
    for name in
        std::iter::once(guard::BASE_URL_VAR).chain(guard::OTHER_API_URL_VARS.iter().copied())
    {
        if let Some(url) = command_env.get(name).filter(|v| !v.is_empty()) {
            notes.push(format!(
                "{name} is set: the token will be sent to {}; unset it unless you trust that host",
                guard::origin(&url.to_string_lossy())
            ));
        }
    }
    for name in &config.keep_env {
        if scrub::is_scrubbed(std::ffi::OsStr::new(name)) && config.env.get(name).is_some() {
            notes.push(format!("--keep-env passes {name} through on purpose"));
        }
    }
    if notes.is_empty() {
        check(
            "environment",
            Status::Ok,
            "no credential-bearing variables set",
        )
    } else {
        check("environment", Status::Warn, notes.join("; "))
    }
}

/// What scrubbing the environment cannot remove: claude's fixed credential files outside
/// HOME, TLS settings that let a proxy read the token, and managed settings that give
/// claude another credential.
pub(super) fn check_unscrubbable(config: &Config, remote_dir: &Path, managed: &Path) -> Check {
    let mut findings = Vec::new();
    let present: Vec<String> = REMOTE_CREDENTIALS
        .iter()
        .map(|f| remote_dir.join(f))
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if !present.is_empty() {
        findings.push(format!(
            "{} exist(s): claude reads these whatever HOME and the environment say (.api_key outranks the token); remove them",
            present.join(", ")
        ));
    }
    // What the command gets (after the scrub, --unset and --keep-env), not the caller's.
    let command_env = guard::command_env(config);
    let set = |name: &str| command_env.get(name).filter(|v| !v.is_empty());
    let insecure = set("NODE_TLS_REJECT_UNAUTHORIZED").is_some_and(|v| v == "0");
    // A variable that names the system's own bundle (set by habit, or by an image)
    // trusts nothing extra: no warning for it.
    let extra_ca = set("NODE_EXTRA_CA_CERTS").is_some_and(|v| !names_system_bundle(v));
    // The caller's side of the `destination` check (the same variables: every base URL
    // and proxy claude honours); scheme and host only, never userinfo.
    let dest = guard::destination(&[], &command_env);
    let proxy = dest.proxy.as_ref().map(|(p, by)| format!("{p} ({by})"));
    let foreign = (!dest.is_anthropic()).then(|| {
        std::iter::once((&dest.origin, &dest.chosen_by))
            .chain(dest.also.iter().map(|(o, by)| (o, by)))
            .map(|(o, by)| format!("{o} ({by})"))
            .collect::<Vec<_>>()
            .join(" or ")
    });
    if insecure || extra_ca {
        let tls = if insecure {
            "NODE_TLS_REJECT_UNAUTHORIZED=0 (no certificate check)"
        } else {
            "NODE_EXTRA_CA_CERTS (an extra trusted CA)"
        };
        let path = match (proxy, foreign) {
            (Some(p), _) => Some(format!("the proxy {p}")),
            (None, Some(h)) => Some(h),
            (None, None) => None,
        };
        if let Some(path) = path {
            findings.push(format!(
                "{tls} with {path}: whoever controls that path can read the token in transit"
            ));
        }
    }
    if let Ok(text) = crate::sys::fsutil::read_bounded(managed, 4 << 20) {
        if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&text) {
            let mut keys = Vec::new();
            if doc.contains_key("apiKeyHelper") {
                keys.push("apiKeyHelper".to_owned());
            }
            if let Some(Value::Object(env)) = doc.get("env") {
                keys.extend(env.keys().map(|k| format!("env.{k}")));
            }
            if !keys.is_empty() {
                findings.push(format!(
                    "{} sets {}: managed settings apply to every claude and outrank the environment",
                    managed.display(),
                    keys.join(", ")
                ));
            }
        }
    }
    if findings.is_empty() {
        check(
            "unscrubbable",
            Status::Ok,
            "no fixed credential file, TLS interception setting or managed credential found",
        )
    } else {
        check("unscrubbable", Status::Warn, findings.join("; "))
    }
}

/// `text` (claude's own output) with the userinfo of every URL in it masked, and the
/// userinfo of `ANTHROPIC_BASE_URL` masked wherever it appears: claude may quote the base
/// URL, password included, in an error message.
pub(super) fn hide_userinfo(text: &str, base_url: Option<&str>) -> String {
    let mut out = text.to_owned();
    if let Some(url) = base_url {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        if let Some((userinfo, _)) = rest.rsplit_once('@') {
            let password = userinfo.split_once(':').map(|(_, p)| p);
            for secret in std::iter::once(userinfo).chain(password) {
                if !secret.is_empty() {
                    out = out.replace(secret, "…");
                }
            }
        }
    }
    // Any `scheme://userinfo@host` left (a URL as claude normalised it).
    let mut masked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("://") {
        masked.push_str(&rest[..at + 3]);
        let tail = &rest[at + 3..];
        let token_end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        match tail[..token_end].rfind('@') {
            Some(userinfo_end) => {
                masked.push('…');
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    masked.push_str(rest);
    masked
}

/// How claude will get to use the token (for claude, the command doctor checks for): the
/// broker's plan when it is a broker of the launch's own.
pub(super) fn check_token_via(
    config: &Config,
    shared: Option<&Path>,
) -> (Check, Option<crate::isolate::broker::BrokerPlan>) {
    use crate::config::TokenVia;
    if let Some(socket) = shared {
        return (
            match crate::isolate::broker::fetch_status(socket) {
                Ok(status) => check(
                    "token_via",
                    Status::Ok,
                    format!(
                        "the shared broker at {} answers this user and forwards to {}: claude gets the placeholder and sends its requests there",
                        socket.display(),
                        status["destination"].as_str().unwrap_or("?")
                    ),
                ),
                Err(e) => check("token_via", Status::Fail, e),
            },
            None,
        );
    }
    match TokenVia::for_command(config.token_via, "claude".as_ref()) {
        TokenVia::Broker => match crate::isolate::broker::plan(&config.env) {
            Ok(plan) => (
                check(
                    "token_via",
                    Status::Ok,
                    format!(
                        "broker: a process beside claude holds the token and forwards its API requests from a socket in {} to {}; claude gets the placeholder {}",
                        plan.dir.display(),
                        plan.destination_line(),
                        crate::isolate::broker::PLACEHOLDER
                    ),
                ),
                Some(plan),
            ),
            Err(e) => (check("token_via", Status::Fail, e.to_string()), None),
        },
        TokenVia::Fd => (
            check(
                "token_via",
                Status::Ok,
                format!(
                    "fd: claude reads the token once from a pipe ({TOKEN_FD_VAR}); it is then in claude's memory"
                ),
            ),
            None,
        ),
        TokenVia::Env => (
            check(
                "token_via",
                Status::Warn,
                "env: the token is in claude's environment, inherited by every tool it runs (--token-via broker keeps it out of claude)",
            ),
            None,
        ),
    }
}

/// Where the token goes, and who chose it; a warning when it is not Anthropic's. Through
/// a broker, where the broker forwards, whatever claude's settings say.
pub(super) fn check_destination(
    verdict: &guard::SettingsVerdict,
    broker: Option<&crate::isolate::broker::BrokerPlan>,
    shared: Option<&Path>,
) -> Check {
    if let Some(plan) = broker {
        let anthropic = plan.upstream.base == crate::isolate::broker::DEFAULT_BASE_URL
            || guard::Destination {
                origin: plan.upstream.base.clone(),
                chosen_by: String::new(),
                proxy: None,
                also: Vec::new(),
            }
            .is_anthropic();
        let line = format!("{} through the broker", plan.destination_line());
        return if anthropic && plan.upstream.proxy.is_none() {
            check(
                "destination",
                Status::Ok,
                format!("the token goes to {line}"),
            )
        } else {
            check(
                "destination",
                Status::Warn,
                format!(
                    "the token goes to {line}: not an Anthropic host over https; make sure you trust it"
                ),
            )
        };
    }
    if let Some(socket) = shared {
        return check(
            "destination",
            Status::Ok,
            format!(
                "wherever the shared broker at {} forwards",
                socket.display()
            ),
        );
    }
    let d = &verdict.destination;
    if d.is_anthropic() && d.proxy.is_none() {
        check(
            "destination",
            Status::Ok,
            format!("the token goes to {}", d.line()),
        )
    } else {
        check(
            "destination",
            Status::Warn,
            format!(
                "the token goes to {}: not an Anthropic host over https; make sure you trust it",
                d.line()
            ),
        )
    }
}
