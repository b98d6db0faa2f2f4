//! The module graph runs one way. `src/` is a tree of folders, each one layer
//! ([`LAYERS`]): a module may use modules of its own layer and of layers listed *before*
//! it, never one above; inside a layer the modules use each other without a cycle; and no
//! module uses an item defined in `lib.rs` (only `main.rs` calls into the library, through
//! `claude_iso::main`). The tree is read from the `mod` declarations, starting at
//! `lib.rs`, so a file the crate does not compile is not judged and a module nobody
//! declared is not missed: every `.rs` file under `src/` must be reached.
//!
//! A new top-level module or folder must be given a layer here, which is the point: where
//! it sits is a decision, not an accident.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top: the top-level modules and folders of `src/` (a folder's modules share
/// its layer).
const LAYERS: &[&[&str]] = &[
    // The one unsafe module; descriptor-based file operations.
    &["sys"],
    // Pure tables and values: names, the caller's environment, the credential variables.
    &["error", "layout", "caller", "scrub", "testgen"],
    // Output, options, the resolved configuration.
    &["report"],
    &["cli"],
    &["config"],
    // The stages of a launch, in the order they depend on each other.
    &["token"],
    &["home"],
    &["isolate"],
    &["launch"],
    // Subcommands other than the launch.
    &["ops"],
    &["lib"],
];

/// A module: its path in the crate (`isolate::mask`) and its file.
#[derive(Debug)]
struct Module {
    path: Vec<String>,
    file: PathBuf,
}

impl Module {
    fn name(&self) -> String {
        if self.path.is_empty() {
            "lib".to_owned()
        } else {
            self.path.join("::")
        }
    }

    /// The top-level module or folder it belongs to.
    fn top(&self) -> &str {
        self.path.first().map_or("lib", String::as_str)
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `[pub] mod NAME;` declarations (not inline `mod NAME { … }`), in order.
fn declared(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| name.to_owned())
        })
        .collect()
}

/// The module tree, from `lib.rs` through every `mod NAME;`.
fn tree() -> Vec<Module> {
    let mut out = Vec::new();
    let mut todo = vec![Module {
        path: vec![],
        file: src().join("lib.rs"),
    }];
    while let Some(m) = todo.pop() {
        let text = fs::read_to_string(&m.file).unwrap();
        // A module's children live in the folder named after it (`mod.rs`: its own).
        let dir = match m.file.file_name().unwrap().to_str().unwrap() {
            "lib.rs" | "mod.rs" => m.file.parent().unwrap().to_path_buf(),
            _ => m.file.with_extension(""),
        };
        for child in declared(&text) {
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(&child).join("mod.rs");
            let file = if flat.is_file() { flat } else { nested };
            assert!(
                file.is_file(),
                "{} declares mod {child}, found neither {child}.rs nor {child}/mod.rs",
                m.file.display()
            );
            let mut path = m.path.clone();
            path.push(child);
            todo.push(Module { path, file });
        }
        out.push(m);
    }
    out
}

/// The paths a source text names outside its unit tests: `crate::a::b`,
/// `crate::a::{b, c::d}`, and `super::b` or `super::*` (relative to `parent`: a sibling
/// module, or an item of the parent). A file's `#[cfg(test)] mod tests` comes last and
/// is left out (there `super::` is the file itself).
fn uses(text: &str, parent: &[String]) -> Vec<Vec<String>> {
    let text = text
        .find("\n#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at]);
    let mut out = Vec::new();
    for (prefix, base) in [("crate::", &[][..]), ("super::", parent)] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = &rest[..at];
            let tail = &rest[at + prefix.len()..];
            rest = tail;
            // `claude_iso::…` in doc text, or `…::super::` within a longer path.
            let prev = before.chars().last();
            if before.ends_with("claude_iso::")
                || prev.is_some_and(|c| c == ':' || c.is_alphanumeric() || c == '_')
            {
                continue;
            }
            // `use super::*`: everything of the parent.
            let paths = if prefix == "super::" && tail.starts_with('*') {
                vec![Vec::new()]
            } else {
                expand(tail)
            };
            for path in paths {
                let mut full: Vec<String> = base.to_vec();
                full.extend(path);
                if !full.is_empty() && !out.contains(&full) {
                    out.push(full);
                }
            }
        }
    }
    out
}

/// The paths at the start of `tail`: `a::b::c` or `a::{b, c::{d, e}}`.
fn expand(tail: &str) -> Vec<Vec<String>> {
    let ident: String = tail
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        if let Some(group) = tail.strip_prefix('{') {
            // Split at top-level commas up to the matching brace.
            let mut depth = 0;
            let mut parts = Vec::new();
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        parts.push(&group[start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        parts.push(&group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return parts
                .into_iter()
                .flat_map(|p| expand(p.trim_start()))
                .collect();
        }
        return Vec::new();
    }
    let after = &tail[ident.len()..];
    let mut out = Vec::new();
    if let Some(more) = after.strip_prefix("::") {
        for mut sub in expand(more) {
            sub.insert(0, ident.clone());
            out.push(sub);
        }
    }
    if out.is_empty() {
        out.push(vec![ident]);
    }
    out
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

/// The module a path names: its longest prefix that is a module (`None`: an item of
/// `lib.rs`, or not a module path at all).
fn module_of<'a>(
    path: &[String],
    modules: &'a BTreeMap<Vec<String>, &Module>,
) -> Option<&'a Module> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n]).copied())
}

/// Every edge of the module graph, with the problems found on the way.
fn graph(tree: &[Module]) -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let modules: BTreeMap<Vec<String>, &Module> =
        tree.iter().map(|m| (m.path.clone(), m)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for m in tree {
        if m.path.is_empty() {
            continue;
        }
        let Some(mine) = layer_of(m.top()) else {
            problems.push(format!(
                "{} ({}) has no layer in LAYERS (tests/cli/layering.rs)",
                m.name(),
                m.file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(&m.file).unwrap();
        let parent = &m.path[..m.path.len() - 1];
        for used in uses(&text, parent) {
            let Some(target) = module_of(&used, &modules) else {
                problems.push(format!(
                    "{} uses crate::{}, which is not a module (items of lib.rs are for main.rs only)",
                    m.name(),
                    used.join("::")
                ));
                continue;
            };
            if target.path.is_empty() {
                problems.push(format!(
                    "{} uses crate::{}, an item of lib.rs (for main.rs only)",
                    m.name(),
                    used.join("::")
                ));
                continue;
            }
            // A module's own descendants (its `mod` children) and itself are not edges.
            if target.path.starts_with(&m.path) {
                continue;
            }
            let theirs = layer_of(target.top()).unwrap_or(usize::MAX);
            if theirs > mine {
                problems.push(format!(
                    "{} uses {}, which is in a layer above it",
                    m.name(),
                    target.name()
                ));
            }
            edges.entry(m.name()).or_default().insert(target.name());
        }
    }
    (edges, problems)
}

/// A cycle of the graph, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut c = stack[at..].to_vec();
                c.push(n.to_owned());
                return Some(c);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut state, &mut Vec::new()))
}

#[test]
fn every_file_is_a_module_of_the_tree() {
    let tree = tree();
    let reached: BTreeSet<PathBuf> = tree.iter().map(|m| m.file.clone()).collect();
    let mut dirs = vec![src()];
    let mut stray = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path != src().join("main.rs")
                && !reached.contains(&path)
            {
                stray.push(path.display().to_string());
            }
        }
    }
    assert!(tree.len() >= 25, "read only {} modules", tree.len());
    assert!(stray.is_empty(), "not in the module tree: {stray:?}");
}

#[test]
fn no_import_runs_upward_and_no_cycle() {
    let (edges, problems) = graph(&tree());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        edges.len() >= 15,
        "saw edges of only {} modules",
        edges.len()
    );
    // A parent may use its children (`mod.rs` re-using what it declares) and a child its
    // parent's items: those pairs are one unit. Every other cycle is a knot.
    let mut graph = edges.clone();
    for (from, tos) in &mut graph {
        tos.retain(|to| {
            !from.starts_with(&format!("{to}::")) && !to.starts_with(&format!("{from}::"))
        });
    }
    assert_eq!(cycle(&graph), None, "a cycle in the module graph");
    let main = fs::read_to_string(src().join("main.rs")).unwrap();
    assert!(
        !main.contains("crate::"),
        "main.rs is a binary: it reaches the library only as claude_iso::"
    );
}

/// `unsafe` lives in `sys` alone: the crate denies it and every other module forbids it
/// (a module inside a folder inherits its folder's `forbid`).
#[test]
fn unsafe_only_in_sys() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for lint in [
        "unsafe_code = \"deny\"",
        "unreachable_pub = \"warn\"",
        "undocumented_unsafe_blocks = \"deny\"",
    ] {
        assert!(manifest.contains(lint), "Cargo.toml [lints] lacks {lint}");
    }
    let main = fs::read_to_string(src().join("main.rs")).unwrap();
    assert!(!main.contains("unsafe"), "main.rs holds no unsafe");
    for m in tree() {
        let text = fs::read_to_string(&m.file).unwrap();
        match m.name().as_str() {
            "lib" => {}
            "sys" => assert!(text.contains("#![allow(unsafe_code)]")),
            name => assert!(
                text.contains("#![forbid(unsafe_code)]"),
                "{name} ({}) must #![forbid(unsafe_code)]",
                m.file.display()
            ),
        }
    }
}

#[test]
fn the_checker_sees_what_is_used() {
    let p = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        uses(
            "use crate::home::seed::OWN_LOCK; x = crate::redact(y); claude_iso::crate::z; \
             use crate::isolate::{mask, share::{self, Limits}}; super::scan::f()",
            &p(&["home"])
        ),
        vec![
            p(&["home", "seed", "OWN_LOCK"]),
            p(&["redact"]),
            p(&["isolate", "mask"]),
            p(&["isolate", "share", "self"]),
            p(&["isolate", "share", "Limits"]),
            p(&["home", "scan", "f"]),
        ]
    );
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert!(cycle(&edges).is_some());
    edges.remove("b");
    assert_eq!(cycle(&edges), None);
    // A parent's item, everything of the parent; nothing of a file's own tests.
    assert_eq!(
        uses(
            "super::helper(); use super::*;\n#[cfg(test)]\nmod tests {\nuse super::x;",
            &p(&["home"])
        ),
        vec![p(&["home", "helper"]), p(&["home"])]
    );
    assert_eq!(
        declared("pub mod a;\nmod b;\n#[cfg(test)]\nmod tests {\npub(crate) mod c;"),
        p(&["a", "b", "c"])
    );
}
