//! The workspace's walls: which part may use which (DESIGN §2).
//!
//! Between crates the compiler keeps them (the sandbox cannot name the product). Within a crate
//! nothing does, so this test reads every crate's sources: no file may import a file that
//! imports it back, however long the way round (file-level cycles), and no top-level module may
//! reach itself through the others (module-level cycles). An import is a `crate::`, `super::` or
//! `self::` path, or a bare `child::` path in a `mod.rs`/`lib.rs`; it counts against the file that
//! declares the path's longest module prefix, so a re-export in `mod.rs` is an edge to `mod.rs`.
//! Test modules (`#[cfg(test)] mod tests`) are left out: they may use anything of their file.
//!
//! It also checks that the core crate stays pure: no async runtime, HTTP stack or Kubernetes
//! client anywhere in its normal dependency tree.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

type Key = Vec<String>;

/// Every `.rs` file under `src`, by module path (`a/b.rs` and `a/b/mod.rs` are `[a, b]`).
fn modules(src: &Path) -> BTreeMap<Key, PathBuf> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<Key, PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                let mut key: Key = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(key.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    key.pop();
                }
                out.insert(key, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The file's code without its test module and without `//` comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(")
            && trimmed.contains("test")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let without_comment = match trimmed.find("//") {
            Some(_) if trimmed.starts_with("//") => "",
            _ => line,
        };
        out.push_str(without_comment);
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads `ident(::ident)*` at the start of `s`; returns the segments and the rest.
fn path_segments(mut s: &str) -> (Vec<String>, &str) {
    let mut segments = Vec::new();
    while let Some(rest) = s.strip_prefix("::") {
        let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segments.push(rest[..len].to_string());
        s = &rest[len..];
    }
    (segments, s)
}

/// The paths a file names, resolved to module paths of its crate (before choosing files).
fn imports(key: &Key, is_mod_file: bool, code: &str, children: &BTreeSet<String>) -> Vec<Key> {
    let parent: Key = key[..key.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for anchor in ["crate", "super", "self"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(anchor) {
            let at = from + found;
            from = at + anchor.len();
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            let after = &code[from..];
            if !after.starts_with("::") {
                continue;
            }
            let mut base = match anchor {
                "crate" => Vec::new(),
                "self" => key.clone(),
                _ => parent.clone(),
            };
            let (mut segments, rest) = path_segments(after);
            while segments.first().is_some_and(|s| s == "super") {
                segments.remove(0);
                base.pop();
            }
            base.extend(segments);
            match rest.strip_prefix("::{") {
                Some(group) => {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        let head: String =
                            item.trim().chars().take_while(|&c| is_ident(c)).collect();
                        let mut target = base.clone();
                        if !head.is_empty() && head != "self" {
                            target.push(head);
                        }
                        out.push(target);
                    }
                }
                None => out.push(base),
            }
        }
    }
    if is_mod_file {
        // A child module's items are in scope of its parent by their bare path: `child::item`.
        for (at, _) in code.match_indices("::") {
            let head: String = code[..at]
                .chars()
                .rev()
                .take_while(|&c| is_ident(c))
                .collect::<Vec<char>>()
                .into_iter()
                .rev()
                .collect();
            let before = code[..at - head.len()].chars().next_back();
            if !head.is_empty()
                && children.contains(&head)
                && !before.is_some_and(|c| is_ident(c) || c == ':')
            {
                let mut target = key.clone();
                target.push(head);
                out.push(target);
            }
        }
    }
    out
}

/// The import graph between the files of one crate.
fn graph(src: &Path) -> (BTreeMap<Key, PathBuf>, BTreeMap<Key, BTreeSet<Key>>) {
    let files = modules(src);
    let resolve = |path: &Key| -> Option<Key> {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| files.contains_key(prefix))
    };
    let mut edges: BTreeMap<Key, BTreeSet<Key>> = BTreeMap::new();
    for (key, path) in &files {
        let is_mod_file = path
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
        let children: BTreeSet<String> = files
            .keys()
            .filter(|k| k.len() == key.len() + 1 && k.starts_with(key))
            .filter_map(|k| k.last().cloned())
            .collect();
        for target in imports(key, is_mod_file, &code(path), &children) {
            if let Some(file) = resolve(&target).filter(|f| f != key) {
                edges.entry(key.clone()).or_default().insert(file);
            }
        }
    }
    (files, edges)
}

/// Strongly connected components of more than one node (Tarjan's algorithm, iteratively).
fn cycles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>, nodes: &[N]) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        found: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(v: &N, edges: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(v.clone(), i);
        s.low.insert(v.clone(), i);
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(w, edges, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v.clone(), low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(&w);
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for n in nodes {
        if !state.index.contains_key(n) {
            visit(n, edges, &mut state);
        }
    }
    state.found
}

fn name(key: &Key) -> String {
    if key.is_empty() {
        "<crate root>".into()
    } else {
        key.join("/")
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every crate's `src`, the product's first.
fn crate_sources() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("src")];
    let mut members: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    members.sort();
    dirs.extend(members);
    dirs
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut problems = Vec::new();
    for src in crate_sources() {
        let (files, edges) = graph(&src);
        let nodes: Vec<Key> = files.keys().cloned().collect();
        for component in cycles(&edges, &nodes) {
            let inside: BTreeSet<&Key> = component.iter().collect();
            let arrows: Vec<String> = component
                .iter()
                .flat_map(|a| {
                    edges
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(|b| inside.contains(b))
                        .map(move |b| format!("{} -> {}", name(a), name(b)))
                })
                .collect();
            problems.push(format!("{}: {}", src.display(), arrows.join(", ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles between files:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_top_level_module_reaches_itself_through_the_others() {
    let mut problems = Vec::new();
    for src in crate_sources() {
        let (_, edges) = graph(&src);
        let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, targets) in &edges {
            for b in targets {
                if let (Some(ma), Some(mb)) = (a.first(), b.first()) {
                    if ma != mb {
                        modules.entry(ma.clone()).or_default().insert(mb.clone());
                    }
                }
            }
        }
        let nodes: Vec<String> = modules.keys().cloned().collect();
        for component in cycles(&modules, &nodes) {
            problems.push(format!("{}: {}", src.display(), component.join(" <-> ")));
        }
    }
    assert!(
        problems.is_empty(),
        "module cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).expect("mkdir");
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").expect("write");
    std::fs::write(src.join("a/mod.rs"), "mod c;\npub use c::Thing;\n").expect("write");
    std::fs::write(src.join("a/c.rs"), "use super::Other;\npub struct Thing;\n").expect("write");
    std::fs::write(
        src.join("b.rs"),
        "use crate::a::Thing;\n#[cfg(test)]\nmod tests {\n    use crate::lib_only;\n}\n",
    )
    .expect("write");
    let (files, edges) = graph(src);
    let nodes: Vec<Key> = files.keys().cloned().collect();
    let found: Vec<Vec<String>> = cycles(&edges, &nodes)
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    // a/mod.rs re-exports c, and c names `super::Other` (a/mod.rs): a cycle. b only imports.
    assert_eq!(found, vec![vec!["a".to_string(), "a/c".to_string()]]);
    assert_eq!(
        edges[&vec!["b".to_string()]],
        BTreeSet::from([vec!["a".to_string()]])
    );
}

#[test]
fn the_core_crate_has_no_io_stack_in_its_dependency_tree() {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "netassay-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && tree.contains("netassay-core"),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crates: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let forbidden = [
        "tokio",
        "kube",
        "kube-client",
        "axum",
        "hyper",
        "reqwest",
        "mio",
    ];
    let found: Vec<&str> = forbidden
        .iter()
        .copied()
        .filter(|f| crates.contains(f))
        .collect();
    assert!(
        found.is_empty(),
        "netassay-core depends on {found:?}:\n{tree}"
    );
}
