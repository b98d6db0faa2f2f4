//! The container examples (issue 12): every Kubernetes manifest parses, keeps the token
//! out of its environment variables, locks the container down, and its container command
//! line — the image's ENTRYPOINT plus the manifest's `args` — runs with `--dry-run`
//! against the built binary, in a sandbox laid out like the pod's volumes. `docker build`
//! cannot run here; the Dockerfile is checked as text: it builds the binary with the
//! README's command and installs the pinned claude.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::sandbox::{TOKEN, Test, chmod, mkdir, write_mode};
use clap::Parser;
use serde_json::Value;

/// The one command README.md gives for building and installing claude-iso.
const INSTALL: &str = "cargo install --locked --path .";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined.
fn dockerfile() -> Vec<(String, String)> {
    let text = read("examples/Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let (op, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

/// The image's ENTRYPOINT (exec form).
fn entrypoint() -> Vec<String> {
    let (_, json) = dockerfile()
        .into_iter()
        .rfind(|(op, _)| op == "ENTRYPOINT")
        .expect("the Dockerfile has an ENTRYPOINT");
    serde_json::from_str(&json).expect("ENTRYPOINT in exec (JSON) form")
}

#[test]
fn dockerfile_builds_the_binary_as_readme_does() {
    let readme = read("README.md");
    assert!(
        readme.lines().any(|l| l.trim_start().starts_with(INSTALL)),
        "README.md no longer builds with `{INSTALL}`"
    );
    let steps = dockerfile();
    let froms: Vec<&String> = steps
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].contains(" AS build"),
        "the first stage builds: {froms:?}"
    );
    // The build stage runs exactly the README's command, on the whole checkout.
    let build: Vec<&(String, String)> = steps
        .iter()
        .skip_while(|(op, _)| op != "FROM")
        .skip(1)
        .take_while(|(op, _)| op != "FROM")
        .collect();
    assert!(
        build.iter().any(|(op, a)| op == "COPY" && a == ". ."),
        "{build:?}"
    );
    assert!(
        build.iter().any(|(op, a)| op == "RUN" && a == INSTALL),
        "the build stage must RUN `{INSTALL}`: {build:?}"
    );
    // The runtime copies that binary from cargo's install root.
    assert!(
        steps.iter().any(|(op, a)| op == "COPY"
            && a == "--from=build /usr/local/cargo/bin/claude-iso /usr/local/bin/claude-iso"),
        "{steps:?}"
    );
    // The pinned claude, read from the file the tests pin it in, from the npm registry.
    let pin = read(".ci/claude-code-supported");
    assert!(pin.lines().any(|l| l.starts_with("pinned=2.")), "{pin}");
    assert!(
        steps
            .iter()
            .any(|(op, a)| op == "COPY"
                && a == ".ci/claude-code-supported /tmp/claude-code-supported")
    );
    assert!(
        steps.iter().any(|(op, a)| op == "RUN"
            && a.contains(
                "npm install --global \"@anthropic-ai/claude-code@$(sed -n 's/^pinned=//p' /tmp/claude-code-supported)\""
            )),
        "{steps:?}"
    );
    // Not root at run time, and claude-iso is the entrypoint.
    let (_, user) = steps
        .iter()
        .rfind(|(op, _)| op == "USER")
        .expect("a USER line");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|n| n != 0),
        "USER must be a numeric non-root uid (runAsNonRoot checks it): {user}"
    );
    assert_eq!(entrypoint(), ["claude-iso"]);
    // The build context leaves build output and secrets out.
    let ignore = read(".dockerignore");
    for pattern in ["target/", ".git/", "*.env"] {
        assert!(
            ignore.lines().any(|l| l == pattern),
            ".dockerignore lacks {pattern}"
        );
    }
}

/// Every container of every workload in the manifests under examples/kubernetes, with
/// its pod spec.
fn containers() -> Vec<(String, Value, Value)> {
    let dir = repo("examples/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    let mut kinds = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let doc: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name}: not valid YAML: {e}"));
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            kinds.push(kind.clone());
            let pod = &doc["spec"]["template"]["spec"];
            assert!(pod.is_object(), "{name}: {kind} without a pod template");
            for c in pod["containers"].as_array().expect("containers") {
                out.push((format!("{name}: {kind}"), pod.clone(), c.clone()));
            }
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["Deployment", "Job"], "one Job and one Deployment");
    out
}

#[test]
fn manifests_keep_the_token_in_a_file_and_lock_the_pod_down() {
    for (what, pod, c) in containers() {
        // A versioned image, pulled only when missing: a locally built (or `kind load`ed)
        // image is used, and `latest` never silently changes what runs.
        for c in std::iter::once(&c).chain(pod["initContainers"].as_array().into_iter().flatten()) {
            let image = c["image"].as_str().unwrap();
            assert!(
                !image.ends_with(":latest") && image.contains(':'),
                "{what}: image {image}"
            );
            assert_eq!(c["imagePullPolicy"], "IfNotPresent", "{what}: {image}");
        }
        // The token comes from the Secret mounted as a file, never from a variable.
        for var in c["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().unwrap();
            assert_ne!(name, "CLAUDE_CODE_OAUTH_TOKEN", "{what}");
            assert!(
                var.get("valueFrom").is_none(),
                "{what}: {name} comes from a Secret or ConfigMap; mount it as a file"
            );
        }
        assert!(c.get("envFrom").is_none(), "{what}: envFrom");
        // The runtime's default seccomp profile refuses the mask: off on purpose, so no
        // start warns about it.
        assert!(
            c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"] == "CLAUDE_ISO_MASK" && v["value"] == "off"),
            "{what}: CLAUDE_ISO_MASK=off"
        );
        let credentials = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "CREDENTIALS_DIRECTORY")
            .and_then(|v| v["value"].as_str())
            .unwrap_or_else(|| panic!("{what}: no CREDENTIALS_DIRECTORY"));
        let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
        let creds_mount = mounts
            .iter()
            .find(|m| credentials.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {credentials}"));
        assert_eq!(creds_mount["readOnly"], true, "{what}");
        let volume = |name: &Value| {
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == *name)
                .unwrap_or_else(|| panic!("{what}: no volume {name}"))
                .clone()
        };
        // A tmpfs of the pod, filled by an init container from a Secret volume that the
        // agent's container itself does not mount.
        assert_eq!(
            volume(&creds_mount["name"])["emptyDir"]["medium"],
            "Memory",
            "{what}: the credentials live in memory"
        );
        let secret_volumes: Vec<Value> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["secret"]["secretName"].is_string())
            .map(|v| v["name"].clone())
            .collect();
        assert_eq!(secret_volumes.len(), 1, "{what}: one token Secret");
        assert!(
            !mounts.iter().any(|m| m["name"] == secret_volumes[0]),
            "{what}: the agent's container mounts the Secret itself"
        );
        let init = pod["initContainers"]
            .as_array()
            .and_then(|i| {
                i.iter().find(|i| {
                    let m = i["volumeMounts"].as_array().unwrap();
                    m.iter()
                        .any(|m| m["name"] == secret_volumes[0] && m["readOnly"] == true)
                        && m.iter().any(|m| m["name"] == creds_mount["name"])
                })
            })
            .unwrap_or_else(|| panic!("{what}: no init container copies the Secret"));
        assert_eq!(
            init["securityContext"]["capabilities"]["drop"],
            serde_json::json!(["ALL"])
        );

        // Locked down.
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{what}"
        );

        // The scratch home is a volume of this pod (an emptyDir or a PVC).
        let args = strings(&c["args"]);
        let home = args
            .iter()
            .position(|a| a == "--home")
            .map(|i| args[i + 1].clone())
            .unwrap_or_else(|| panic!("{what}: no --home"));
        let home_mount = mounts
            .iter()
            .find(|m| home.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{what}: --home {home} is on the read-only root"));
        let v = volume(&home_mount["name"]);
        assert!(
            v.get("emptyDir").is_some() || v.get("persistentVolumeClaim").is_some(),
            "{what}: the home volume is {v}"
        );

        // The runtime's grace period leaves room for the init's.
        let grace = args
            .iter()
            .position(|a| a == "--init-grace")
            .map_or(10, |i| args[i + 1].parse::<u64>().unwrap());
        let period = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: no terminationGracePeriodSeconds"));
        assert!(
            period >= grace + 10,
            "{what}: terminationGracePeriodSeconds {period} leaves claude under 10 s before the init's {grace} s grace"
        );
        assert!(
            !args.iter().any(|a| a == "--no-init"),
            "{what}: claude-iso is PID 1 there and must stay the init"
        );
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string").to_owned())
        .collect()
}

/// `text` with every pod path under one of `mounts` moved into the sandbox.
fn rewrite_all(text: &str, mounts: &[String], t: &Test) -> String {
    let mut out = text.to_owned();
    for m in mounts {
        out = out.replace(m.as_str(), &in_sandbox(t, m).to_string_lossy());
    }
    out
}

/// A pod path, inside the sandbox.
fn in_sandbox(t: &Test, path: &str) -> PathBuf {
    t.path(format!("pod{path}"))
}

#[test]
fn each_container_command_line_runs_with_dry_run() {
    assert_eq!(entrypoint(), ["claude-iso"]);
    for (what, pod, c) in containers() {
        let t = Test::new().no_env_file().no_home();
        // The pod's volumes, as the kubelet lays them out: the Secret's file (mode from
        // defaultMode), tmpfs emptyDirs (sticky 1777), the working directory.
        let mounts: Vec<String> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_owned())
            .collect();
        let rewrite = |s: &str| -> String {
            match mounts
                .iter()
                .chain(c["workingDir"].as_str().map(str::to_owned).iter())
                .find(|m| s == m.as_str() || s.starts_with(&format!("{m}/")))
            {
                Some(_) => in_sandbox(&t, s).to_string_lossy().into_owned(),
                None => s.to_owned(),
            }
        };
        for m in &mounts {
            let dir = mkdir(&in_sandbox(&t, m));
            chmod(&dir, 0o1777);
        }
        // The sandbox's own directories stay owned by the test user and not writable by
        // others, as the pod's root filesystem is root's.
        let mut p = in_sandbox(&t, "/");
        while p.starts_with(t.root()) {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            p.pop();
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for var in c["env"].as_array().into_iter().flatten() {
            env.push((
                var["name"].as_str().unwrap().to_owned(),
                rewrite(var["value"].as_str().unwrap()),
            ));
        }
        // The kubelet's Secret volume: root's files behind `..data` symlinks (here the
        // test user's), then the init container's script, run as written.
        let init = pod["initContainers"][0].clone();
        let init_mounts: Vec<String> = init["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_owned())
            .collect();
        for m in &init_mounts {
            let dir = mkdir(&in_sandbox(&t, m));
            chmod(&dir, 0o1777);
        }
        let secret_mount = init["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["readOnly"] == true)
            .unwrap()["mountPath"]
            .as_str()
            .unwrap()
            .to_owned();
        let secret = in_sandbox(&t, &secret_mount);
        mkdir(&secret.join("..2026_01_01_00_00_00.1"));
        write_mode(
            &secret.join("..2026_01_01_00_00_00.1/claude-oauth-token"),
            format!("{TOKEN}\n"),
            0o440,
        );
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", secret.join("..data")).unwrap();
        std::os::unix::fs::symlink(
            "..data/claude-oauth-token",
            secret.join("claude-oauth-token"),
        )
        .unwrap();
        let mut argv = strings(&init["command"]);
        argv.extend(strings(&init["args"]));
        let script = rewrite_all(&argv[2], &init_mounts, &t);
        for _ in 0..2 {
            // Twice: a restarted pod runs it again over its own earlier copy.
            let status = std::process::Command::new(&argv[0])
                .args([&argv[1], &script])
                .status()
                .unwrap();
            assert!(
                status.success(),
                "{what}: the init container's script failed"
            );
        }
        let credentials = &env
            .iter()
            .find(|(k, _)| k == "CREDENTIALS_DIRECTORY")
            .unwrap()
            .1;
        assert_eq!(
            crate::support::sandbox::mode_of(Path::new(credentials)) & 0o777,
            0o500
        );
        assert_eq!(
            crate::support::sandbox::mode_of(&Path::new(credentials).join("claude-oauth-token"))
                & 0o777,
            0o400
        );
        let cwd = rewrite(c["workingDir"].as_str().expect("workingDir"));
        let args: Vec<String> = strings(&c["args"]).iter().map(|a| rewrite(a)).collect();
        let (before, after) = args.split_at(args.iter().position(|a| a == "--").unwrap());
        // The credentials directory is read-only in the agent's container.
        chmod(Path::new(credentials), 0o500);
        let mut t = t.cwd(&cwd).args(before).arg("--dry-run");
        for (k, v) in &env {
            t = t.env(k, v);
        }
        let t = t.command(&after[1..]);
        let out = t.run();
        out.status(0).probe_not_run().no_secrets();
        let plan = out.stdout_text();
        let home = &args[args.iter().position(|a| a == "--home").unwrap() + 1];
        for needle in [
            format!("token: {}", crate::support::sandbox::redacted(TOKEN)),
            format!("{credentials}/claude-oauth-token"),
            format!("home: {home}"),
            format!("env: set HOME={home}"),
            format!("argv: {}", after[1]),
            "dry run: nothing changed, nothing run".to_owned(),
        ] {
            assert!(
                plan.contains(&needle),
                "{what}: plan lacks {needle:?}:\n{plan}"
            );
        }
        assert!(
            !Path::new(home).exists(),
            "{what}: a dry run created the home"
        );
        // Let the sandbox be removed.
        chmod(Path::new(credentials), 0o700);
    }
}

/// The broker sidecar (examples/kubernetes/broker/): only the broker's side can reach the
/// token; the agent shares nothing with it but the socket's volume, and points at it.
#[test]
fn the_broker_sidecar_alone_holds_the_token() {
    let text = read("examples/kubernetes/broker/deployment.yaml");
    let doc: Value = serde_norway::from_str(&text).expect("valid YAML");
    assert_eq!(doc["kind"], "Deployment");
    let pod = &doc["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().unwrap();
    let by_name = |n: &str| {
        containers
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("no container {n}"))
    };
    let (broker, agent) = (by_name("broker"), by_name("claude"));
    let secret: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["secret"].is_object())
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(secret, ["token"]);
    let mounts = |c: &Value| -> Vec<(String, String)> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["mountPath"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    // The agent mounts neither the Secret nor the broker's private copy, and gets no
    // credentials directory or token variable.
    for (name, _) in mounts(agent) {
        assert!(
            name != "token" && name != "credentials",
            "the agent mounts {name}"
        );
    }
    assert!(
        agent
            .get("env")
            .is_none_or(|e| !e.to_string().contains("CREDENTIALS_DIRECTORY")
                && !e.to_string().contains("CLAUDE_CODE_OAUTH_TOKEN"))
    );
    // They share exactly one volume, the socket's, and the agent points at the socket
    // the broker makes there, which lets the agent's user in.
    let shared: Vec<(String, String)> = mounts(agent)
        .into_iter()
        .filter(|m| mounts(broker).contains(m))
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    let args = strings(&agent["args"]);
    let sock = &args[args.iter().position(|a| a == "--broker").unwrap() + 1];
    assert!(sock.starts_with(&format!("{}/", shared[0].1)), "{sock}");
    let bargs = strings(&broker["args"]);
    assert_eq!(&bargs[..2], ["broker", "serve"]);
    assert_eq!(
        &bargs[bargs.iter().position(|a| a == "--socket").unwrap() + 1],
        sock
    );
    let agent_uid = agent["securityContext"]["runAsUser"].as_u64().unwrap();
    let broker_uid = broker["securityContext"]["runAsUser"].as_u64().unwrap();
    assert_ne!(agent_uid, broker_uid, "the agent runs as the broker's user");
    assert_eq!(
        bargs[bargs.iter().position(|a| a == "--allow-user").unwrap() + 1],
        agent_uid.to_string()
    );
    // Both locked down; images pinned to a version.
    for c in [broker, agent] {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(!c["image"].as_str().unwrap().ends_with(":latest"));
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    }
    // The agent's command line and the broker's parse as claude-iso's.
    for argv in [args, bargs] {
        let mut full = vec!["claude-iso".to_owned()];
        full.extend(argv);
        claude_iso::cli::Cli::try_parse_from(&full).unwrap_or_else(|e| panic!("{full:?}: {e}"));
    }
}

/// The systemd broker pair and the brokered agent template (examples/systemd/): the token
/// is a credential of the broker's unit alone; the agent's unit points at the socket the
/// .socket unit makes and loads no credential.
#[test]
fn the_systemd_broker_units_fit_together() {
    let socket = read("examples/systemd/claude-iso-broker.socket");
    let service = read("examples/systemd/claude-iso-broker.service");
    let agent = read("examples/systemd/claude-agent-brokered@.service");
    let value = |text: &str, key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    let listen = value(&socket, "ListenStream");
    assert_eq!(listen.len(), 1);
    assert_eq!(
        value(&agent, "Environment")
            .iter()
            .filter(|e| e.starts_with("CLAUDE_ISO_BROKER="))
            .cloned()
            .collect::<Vec<_>>(),
        [format!("CLAUDE_ISO_BROKER={}", listen[0])]
    );
    assert!(
        value(&agent, "LoadCredential").is_empty(),
        "the agent loads the token"
    );
    assert_eq!(
        value(&service, "LoadCredential"),
        ["claude-oauth-token:/etc/claude-iso/token"]
    );
    assert_eq!(value(&service, "Type"), ["notify"]);
    assert_eq!(value(&service, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    let exec = value(&service, "ExecStart");
    assert!(exec[0].contains(" broker serve "), "{exec:?}");
    // Socket activation: the broker makes no socket of its own.
    assert!(!exec[0].contains("--socket"), "{exec:?}");
    let group = value(&socket, "SocketGroup");
    assert!(
        exec[0].contains(&format!("--allow-group {}", group[0])),
        "{exec:?}"
    );
    assert!(value(&agent, "Requires")[0].contains("claude-iso-broker.socket"));
    // The agent's own user is not the broker's.
    assert_eq!(value(&service, "DynamicUser"), ["yes"]);
    assert_eq!(value(&agent, "User"), ["claude-agent"]);
}
