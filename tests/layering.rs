//! The module graph runs one way: a module of `src/` may use only modules listed *before* it in
//! [`LAYERS`], and no module may use an item defined in `lib.rs` (only `main.rs` calls
//! into the library, through `claude_iso::main`). A new module must be given a place
//! here, which is the point: where it sits is a decision, not an accident.

use std::fs;
use std::path::Path;

/// Bottom to top. Modules on one line do not use each other.
const LAYERS: &[&[&str]] = &[
    &[
        "error", "layout", "caller", "scrub", "envfile", "sys", "testgen",
    ],
    &["report", "fsutil"],
    &["cli"],
    &["config"],
    &["guard"],
    &["token"],
    &["proxy"],
    &["broker"],
    &["home", "tokenstore"],
    &["scan"],
    &["seed"],
    &["homes", "share"],
    &["environment"],
    &["exec"],
    &["mask", "tools"],
    &["init"],
    &["doctor"],
    &["lib"],
];

/// Every `.rs` file under `src/`, with its module's name (a `mod.rs` is named by its
/// folder).
fn modules(src: &Path) -> Vec<(String, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let stem = path.file_stem().unwrap().to_str().unwrap();
                // Until the module tree follows the folders: a `#[path]` module keeps its
                // old name.
                let name = match stem {
                    "mod" => dir.file_name().unwrap().to_str().unwrap(),
                    "store" => "tokenstore",
                    _ => stem,
                };
                out.push((name.to_owned(), path));
            }
        }
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `crate::NAME` in a source file (code and doc links alike).
fn uses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + "crate::".len()..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `claude_iso::…` in doc text is not a crate-relative path.
        let before = &rest[..at];
        if !before.ends_with("claude_iso::") && !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
        rest = tail;
    }
    out
}

#[test]
fn no_import_runs_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    let mut seen = 0;
    for (module, path) in modules(&src) {
        if module == "main" {
            let text = fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("crate::"),
                "main.rs is a binary: it reaches the library only as claude_iso::"
            );
            continue;
        }
        seen += 1;
        let Some(mine) = layer_of(&module) else {
            problems.push(format!(
                "src/{module}.rs has no place in LAYERS (tests/layering.rs)"
            ));
            continue;
        };
        for used in uses(&fs::read_to_string(&path).unwrap()) {
            match layer_of(&used) {
                Some(theirs) if theirs < mine || used == module => {}
                Some(_) => problems.push(format!("src/{module}.rs uses crate::{used}, which is not below it")),
                None => problems.push(format!(
                    "src/{module}.rs uses crate::{used}, which is not a module below it (items of lib.rs are for main.rs only)"
                )),
            }
        }
    }
    assert!(seen >= 15, "read only {seen} modules");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `unsafe` lives in `sys.rs` alone: the crate denies it and every other module forbids it.
#[test]
fn unsafe_only_in_sys() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
    for (module, path) in modules(&src) {
        let text = fs::read_to_string(&path).unwrap();
        match module.as_str() {
            "sys" => assert!(text.contains("#![allow(unsafe_code)]")),
            "lib" => {}
            "main" => assert!(!text.contains("unsafe"), "main.rs holds no unsafe"),
            _ => assert!(
                text.contains("#![forbid(unsafe_code)]"),
                "src/{module}.rs must #![forbid(unsafe_code)]"
            ),
        }
    }
}

#[test]
fn the_checker_sees_violations() {
    assert_eq!(
        uses("use crate::seed::OWN_LOCK; x = crate::redact_secrets(y); claude_iso::crate::z"),
        vec!["seed", "redact_secrets"]
    );
}
