//! No test may skip silently in CI (`CI` set): a test that cannot run where it is (no root, a
//! missing tool) may say so and pass elsewhere, but in CI it must fail. This checker reads every
//! test source and finds skip messages that are not guarded by a CI check.
//!
//! The rule:
//! - Test code is every file under `tests/` and `crates/*/tests/`, and in `src/` and
//!   `crates/*/src/` the items under `#[cfg(test)]` (an inline `mod tests { .. }`, or the file of
//!   a `#[cfg(test)] mod NAME;` with the modules it declares in turn).
//! - A skip message is a `print!`, `println!`, `eprint!` or `eprintln!` whose arguments contain
//!   "skip" in any case ("skipped", "SKIPPED", "skipping").
//! - It is guarded when the innermost `{ .. }` block around it, or the head of the statement
//!   that opens that block (an `if` condition), has before the message a CI check
//!   (`env::var_os("CI")` or `env::var("CI")`) or a call to a guard helper.
//! - A guard helper is a function of the test code whose body has a CI check or calls a guard
//!   helper (so `root_or_skip`, `kubectl_or_skip`, `missing`, `privileged`, `usable` and the
//!   like qualify by what they do, not by name). A call resolves to the functions of that name
//!   in the same file, or, when the file has none, to all functions of that name (which must
//!   then all be guards).
//!
//! Comments and the contents of string literals are ignored when looking for code, so this
//! file's own examples do not count. A skip that prints nothing is out of its reach.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const PRINTS: [&str; 4] = ["print", "println", "eprint", "eprintln"];

/// One source file, as chars, with its code-only mask.
struct Source {
    path: String,
    text: Vec<char>,
    /// `text` with comments and the insides of string and char literals blanked (newlines
    /// kept), so that braces, names and macros are found in code only.
    code: Vec<char>,
    /// Whether the whole file is test code.
    all_test: bool,
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Blanks comments and literal contents; same length as `text`.
fn mask(text: &[char]) -> Vec<char> {
    let mut code = text.to_vec();
    let blank = |code: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut code[from..to.min(text.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let at = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| text.get(i + k) == Some(&c))
    };
    let mut i = 0;
    while i < text.len() {
        let prev_ident = i > 0 && is_ident(text[i - 1]);
        if at(i, "//") {
            let end = (i..text.len())
                .find(|&j| text[j] == '\n')
                .unwrap_or(text.len());
            blank(&mut code, i, end);
            i = end;
        } else if at(i, "/*") {
            let (mut depth, mut j) = (0, i);
            while j < text.len() {
                if at(j, "/*") {
                    depth += 1;
                    j += 2;
                } else if at(j, "*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut code, i, j);
            i = j;
        } else if text[i] == 'r'
            && (!prev_ident || (i > 0 && text[i - 1] == 'b' && !(i > 1 && is_ident(text[i - 2]))))
            && matches!(text.get(i + 1), Some('"' | '#'))
        {
            // A raw string: r"..", r#".."#, br"..".
            let hashes = (i + 1..text.len()).take_while(|&j| text[j] == '#').count();
            let open = i + 1 + hashes;
            if text.get(open) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let end = (open + 1..text.len())
                .find(|&j| at(j, &close))
                .unwrap_or(text.len());
            blank(&mut code, open + 1, end);
            i = end + close.chars().count();
        } else if text[i] == '"' {
            let mut j = i + 1;
            while j < text.len() && text[j] != '"' {
                j += if text[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut code, i + 1, j);
            i = j + 1;
        } else if text[i] == '\''
            && (!prev_ident || (text[i - 1] == 'b' && !(i > 1 && is_ident(text[i - 2]))))
        {
            // A char literal ('x', '\n', '\'', b'x'); otherwise a lifetime or label.
            if text.get(i + 1) == Some(&'\\') {
                let mut j = i + 3;
                while j < text.len() && text[j] != '\'' {
                    j += 1;
                }
                blank(&mut code, i + 1, j);
                i = j + 1;
            } else if text.get(i + 2) == Some(&'\'') {
                blank(&mut code, i + 1, i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    code
}

/// The index of the bracket closing the one at `open` (same kind), in code.
fn closing(code: &[char], open: usize) -> Option<usize> {
    let (o, c) = match code[open] {
        '{' => ('{', '}'),
        '(' => ('(', ')'),
        '[' => ('[', ']'),
        _ => return None,
    };
    let mut depth = 0;
    for (j, &ch) in code.iter().enumerate().skip(open) {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Where the word `word` starts in code (not part of a longer identifier).
fn words<'a>(code: &'a [char], word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let w: Vec<char> = word.chars().collect();
    (0..code.len().saturating_sub(w.len() - 1)).filter(move |&i| {
        code[i..i + w.len()] == w[..]
            && (i == 0 || !is_ident(code[i - 1]))
            && code.get(i + w.len()).is_none_or(|c| !is_ident(*c))
    })
}

fn skip_space(code: &[char], mut i: usize) -> usize {
    while code.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn ident_at(code: &[char], i: usize) -> String {
    code[i..].iter().take_while(|c| is_ident(**c)).collect()
}

/// A function with a body: its name and the body's braces.
struct FnDef {
    file: usize,
    name: String,
    open: usize,
    close: usize,
}

fn functions(file: usize, code: &[char]) -> Vec<FnDef> {
    let mut out = Vec::new();
    for at in words(code, "fn") {
        let name_at = skip_space(code, at + 2);
        let name = ident_at(code, name_at);
        if name.is_empty() {
            continue;
        }
        // The body opens at the first `{` outside the signature's brackets, unless a `;` ends
        // the declaration first.
        let mut depth = 0i32;
        let mut j = name_at + name.len();
        let open = loop {
            match code.get(j) {
                None => break None,
                Some('(' | '[') => depth += 1,
                Some(')' | ']') => depth -= 1,
                Some('{') if depth == 0 => break Some(j),
                Some(';') if depth == 0 => break None,
                _ => {}
            }
            j += 1;
        };
        if let Some(open) = open {
            if let Some(close) = closing(code, open) {
                out.push(FnDef {
                    file,
                    name,
                    open,
                    close,
                });
            }
        }
    }
    out
}

/// Whether `code[from..to]` has a CI check: `var_os("CI")` or `var("CI")` (the literal read
/// from the text, the call from the code).
fn has_ci_check(src: &Source, from: usize, to: usize) -> bool {
    ["var_os", "var"].iter().any(|f| {
        words(&src.code[from..to], f).map(|i| i + from).any(|i| {
            let paren = skip_space(&src.code, i + f.len());
            src.code.get(paren) == Some(&'(') && {
                let arg = skip_space(&src.text, paren + 1);
                let lit: String = src.text[arg..].iter().take(4).collect();
                lit == "\"CI\""
            }
        })
    })
}

/// The names called in `code[from..to]` (an identifier followed by `(`).
fn calls(code: &[char], from: usize, to: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = from;
    while i < to {
        if is_ident(code[i]) && (i == 0 || !is_ident(code[i - 1])) {
            let name = ident_at(code, i);
            let after = skip_space(code, i + name.len());
            if after < to && code[after] == '(' {
                out.push(name.clone());
            }
            i += name.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The test-code ranges of a file that is not all test code: the items under `#[cfg(test)]`,
/// and the files of `#[cfg(test)] mod NAME;` declarations.
fn cfg_test_items(src: &Source) -> (Vec<(usize, usize)>, Vec<String>) {
    let code = &src.code;
    let (mut ranges, mut modules) = (Vec::new(), Vec::new());
    for at in (0..code.len()).filter(|&i| code[i] == '#' && code.get(i + 1) == Some(&'[')) {
        let Some(end) = closing(code, at + 1) else {
            continue;
        };
        let attr: String = code[at + 2..end]
            .iter()
            .filter(|c| !c.is_whitespace())
            .collect();
        let Some(inner) = attr.strip_prefix("cfg(").and_then(|a| a.strip_suffix(')')) else {
            continue;
        };
        if words(&inner.chars().collect::<Vec<_>>(), "test")
            .next()
            .is_none()
            || inner.contains("not(test)")
        {
            continue;
        }
        // The item: up to its `;`, or its block, skipping further attributes.
        let mut j = skip_space(code, end + 1);
        while code.get(j) == Some(&'#') {
            j = closing(code, j + 1).map_or(code.len(), |e| skip_space(code, e + 1));
        }
        let item_start = j;
        let head: String = code[j..]
            .iter()
            .take_while(|c| **c != ';' && **c != '{')
            .collect();
        let stop = j + head.chars().count();
        match code.get(stop) {
            Some(';') => {
                let tokens: Vec<&str> = head.split_whitespace().collect();
                if let Some(name) = tokens
                    .iter()
                    .position(|t| *t == "mod")
                    .and_then(|k| tokens.get(k + 1))
                {
                    modules.push(name.to_string());
                }
                ranges.push((item_start, stop));
            }
            Some('{') => {
                let close = closing(code, stop).unwrap_or(code.len() - 1);
                ranges.push((item_start, close + 1));
            }
            _ => {}
        }
    }
    (ranges, modules)
}

/// The `mod NAME;` declarations of a file (for the submodules of test-only files).
fn declared_modules(code: &[char]) -> Vec<String> {
    words(code, "mod")
        .filter_map(|at| {
            let name_at = skip_space(code, at + 3);
            let name = ident_at(code, name_at);
            let after = skip_space(code, name_at + name.len());
            (!name.is_empty() && code.get(after) == Some(&';')).then_some(name)
        })
        .collect()
}

/// Where the file of module `name` declared in `file` lives.
fn module_file(file: &Path, name: &str) -> Option<PathBuf> {
    let dir = file.parent()?;
    let stem = file.file_stem()?.to_str()?;
    let base = if matches!(stem, "mod" | "lib" | "main") {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The unguarded skip messages among `sources`, as `path:line: the message's first line`.
fn unguarded_skips(sources: &[Source], regions: &[Vec<(usize, usize)>]) -> Vec<String> {
    let fns: Vec<FnDef> = sources
        .iter()
        .enumerate()
        .flat_map(|(k, s)| functions(k, &s.code))
        .collect();
    let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, f) in fns.iter().enumerate() {
        by_name.entry(f.name.as_str()).or_default().push(k);
    }
    let direct: Vec<bool> = fns
        .iter()
        .map(|f| has_ci_check(&sources[f.file], f.open, f.close))
        .collect();
    let called: Vec<Vec<String>> = fns
        .iter()
        .map(|f| calls(&sources[f.file].code, f.open, f.close))
        .collect();
    let mut guard = direct.clone();
    let resolves_to_guard = |guard: &[bool], file: usize, name: &str| -> bool {
        let Some(defs) = by_name.get(name) else {
            return false;
        };
        let local: Vec<usize> = defs
            .iter()
            .copied()
            .filter(|&k| fns[k].file == file)
            .collect();
        if local.is_empty() {
            defs.iter().all(|&k| guard[k])
        } else {
            local.iter().any(|&k| guard[k])
        }
    };
    loop {
        let next: Vec<bool> = (0..fns.len())
            .map(|k| {
                guard[k]
                    || called[k]
                        .iter()
                        .any(|c| resolves_to_guard(&guard, fns[k].file, c))
            })
            .collect();
        if next == guard {
            break;
        }
        guard = next;
    }

    let mut found = Vec::new();
    for (k, src) in sources.iter().enumerate() {
        let code = &src.code;
        for name in PRINTS {
            for at in words(code, name) {
                if !regions[k].iter().any(|(a, b)| (*a..*b).contains(&at)) {
                    continue;
                }
                let bang = skip_space(code, at + name.len());
                let open = skip_space(code, bang + 1);
                if code.get(bang) != Some(&'!') || !matches!(code.get(open), Some('(' | '[' | '{'))
                {
                    continue;
                }
                let close = closing(code, open).unwrap_or(code.len() - 1);
                let args: String = src.text[open..close].iter().collect();
                if !args.to_lowercase().contains("skip") {
                    continue;
                }
                // The innermost block around the message.
                let mut stack = Vec::new();
                for (j, c) in code[..at].iter().enumerate() {
                    match c {
                        '{' => stack.push(j),
                        '}' => {
                            stack.pop();
                        }
                        _ => {}
                    }
                }
                let block = stack.last().copied().unwrap_or(0);
                // With the head of the statement that opens it (an `if` condition, say).
                let head = code[..block]
                    .iter()
                    .rposition(|c| matches!(c, ';' | '{' | '}'))
                    .map_or(0, |j| j + 1);
                let guarded = has_ci_check(src, head, at)
                    || calls(code, head, at)
                        .iter()
                        .any(|c| resolves_to_guard(&guard, k, c));
                if !guarded {
                    let line = src.text[..at].iter().filter(|c| **c == '\n').count() + 1;
                    let start = src.text[..at]
                        .iter()
                        .rposition(|c| *c == '\n')
                        .map_or(0, |n| n + 1);
                    let whole: String = src.text[start..]
                        .iter()
                        .take_while(|c| **c != '\n')
                        .collect();
                    found.push(format!("{}:{line}: {}", src.path, whole.trim()));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn source(root: &Path, path: &Path, all_test: bool) -> Source {
    let text: Vec<char> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chars()
        .collect();
    Source {
        path: path
            .strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string(),
        code: mask(&text),
        text,
        all_test,
    }
}

/// Every test source of the workspace, with its test-code ranges.
fn workspace() -> (Vec<Source>, Vec<Vec<(usize, usize)>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut test_trees = vec![root.join("tests")];
    let mut src_trees = vec![root.join("src")];
    for krate in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let krate = krate.expect("crate").path();
        test_trees.push(krate.join("tests"));
        src_trees.push(krate.join("src"));
    }
    let (mut tests, mut srcs) = (Vec::new(), Vec::new());
    for t in &test_trees {
        rust_files(t, &mut tests);
    }
    for s in &src_trees {
        rust_files(s, &mut srcs);
    }
    let mut sources: Vec<Source> = tests.iter().map(|p| source(root, p, true)).collect();
    // In src/, test-only files are found through `#[cfg(test)] mod NAME;` and their own `mod`s.
    let mut test_only: Vec<PathBuf> = Vec::new();
    let mut src_sources: Vec<(PathBuf, Source)> = srcs
        .iter()
        .map(|p| (p.clone(), source(root, p, false)))
        .collect();
    let mut regions_of: BTreeMap<PathBuf, Vec<(usize, usize)>> = BTreeMap::new();
    for (path, src) in &src_sources {
        let (ranges, modules) = cfg_test_items(src);
        regions_of.insert(path.clone(), ranges);
        test_only.extend(modules.iter().filter_map(|m| module_file(path, m)));
    }
    let mut k = 0;
    while k < test_only.len() {
        let path = test_only[k].clone();
        if let Some((_, src)) = src_sources.iter().find(|(p, _)| *p == path) {
            for m in declared_modules(&src.code) {
                if let Some(child) = module_file(&path, &m) {
                    if !test_only.contains(&child) {
                        test_only.push(child);
                    }
                }
            }
        }
        k += 1;
    }
    for (path, src) in &mut src_sources {
        src.all_test = test_only.contains(path);
    }
    let mut regions: Vec<Vec<(usize, usize)>> =
        sources.iter().map(|s| vec![(0, s.code.len())]).collect();
    for (path, src) in src_sources {
        regions.push(if src.all_test {
            vec![(0, src.code.len())]
        } else {
            regions_of.remove(&path).unwrap_or_default()
        });
        sources.push(src);
    }
    (sources, regions)
}

#[test]
fn no_test_skips_without_failing_under_ci() {
    let (sources, regions) = workspace();
    let test_code: usize = regions.iter().filter(|r| !r.is_empty()).count();
    assert!(
        sources.iter().filter(|s| s.all_test).count() > 20 && test_code > 60,
        "the checker must see the test sources: {} files, {test_code} with test code",
        sources.len()
    );
    let found = unguarded_skips(&sources, &regions);
    assert!(
        found.is_empty(),
        "skip messages with no CI check before them in their block (assert that CI is unset, or \
         call a helper that does, such as run_common::root_or_skip):\n{}",
        found.join("\n")
    );
}

// ---- the checker itself, on synthetic sources ------------------------------------------------

fn check(files: &[(&str, &str)]) -> Vec<String> {
    let sources: Vec<Source> = files
        .iter()
        .map(|(path, text)| {
            let text: Vec<char> = text.chars().collect();
            Source {
                path: path.to_string(),
                code: mask(&text),
                text,
                all_test: true,
            }
        })
        .collect();
    let regions: Vec<Vec<(usize, usize)>> =
        sources.iter().map(|s| vec![(0, s.code.len())]).collect();
    unguarded_skips(&sources, &regions)
}

#[test]
fn a_planted_unguarded_skip_is_found() {
    let planted = r#"
#[test]
fn needs_a_tool() {
    if !tool_present() {
        eprintln!("SKIPPED: no tool");
        return;
    }
    run_the_tool();
}
"#;
    assert_eq!(
        check(&[("tests/planted.rs", planted)]),
        ["tests/planted.rs:5: eprintln!(\"SKIPPED: no tool\");"]
    );
}

#[test]
fn a_skip_after_a_ci_check_in_its_block_is_guarded() {
    let guarded = r#"
fn usable() -> bool {
    if !root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!(
            "skipped: needs {}",
            "root"
        );
        return false;
    }
    true
}
"#;
    assert!(check(&[("tests/a.rs", guarded)]).is_empty());
    // The check must be in the message's own block, before it.
    let elsewhere = r#"
fn usable() -> bool {
    assert!(std::env::var_os("CI").is_none());
    if !root() {
        eprintln!("skipped: needs root");
    }
    if !tar() { eprintln!("skipping: no tar"); return false; }
    let _ = std::env::var("CI");
    true
}
"#;
    assert_eq!(check(&[("tests/b.rs", elsewhere)]).len(), 2);
    // Only the literal "CI", in code: not another variable, not a comment.
    let lookalikes = r#"
fn t() {
    if std::env::var_os("CIRCLE").is_none() {
        // std::env::var_os("CI")
        println!("Skipped");
    }
}
"#;
    assert_eq!(check(&[("tests/c.rs", lookalikes)]).len(), 1);
}

#[test]
fn a_call_to_a_helper_that_checks_ci_guards_across_files() {
    let common = r#"
pub fn root_or_skip(test: &str) -> bool {
    let root = is_root();
    if !root {
        assert!(std::env::var_os("CI").is_none(), "{test}: CI must run these as root");
        eprintln!("{test}: skipped (needs root)");
    }
    root
}
pub fn privileged() -> bool { root_or_skip("x") }
pub fn lenient() -> bool { is_root() }
"#;
    let user = r#"
fn t() {
    if !privileged() { eprintln!("skipped"); return; }
    if !lenient() { eprintln!("skipped"); return; }
}
"#;
    assert_eq!(
        check(&[("tests/common/mod.rs", common), ("tests/user.rs", user)]),
        ["tests/user.rs:4: if !lenient() { eprintln!(\"skipped\"); return; }"]
    );
}

#[test]
fn strings_comments_and_code_outside_cfg_test_do_not_count() {
    let text = r##"
fn product() {
    eprintln!("line skipped: {}", "}");
}
#[cfg(test)]
mod tests {
    const S: &str = r#"eprintln!("skipped") { "#;
    /* eprintln!("skipped") */
    #[test]
    fn t() {
        let c = '{';
        if missing() { println!("skip it {c}"); }
    }
}
"##;
    let chars: Vec<char> = text.chars().collect();
    let src = Source {
        path: "src/x.rs".into(),
        code: mask(&chars),
        text: chars,
        all_test: false,
    };
    let (ranges, modules) = cfg_test_items(&src);
    assert!(modules.is_empty());
    assert_eq!(ranges.len(), 1);
    let found = unguarded_skips(&[src], &[ranges]);
    assert_eq!(
        found,
        ["src/x.rs:12: if missing() { println!(\"skip it {c}\"); }"]
    );
}
