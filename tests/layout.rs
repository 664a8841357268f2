//! The module graph of `src/` stays as the README's "Layout" draws it: no import cycles
//! between top-level modules, the leaves depend on nothing else of ours, and the CLI types
//! know nothing of the library.
//!
//! Dependencies are read from the source text: every `crate::name` path and every name in a
//! `use crate::{...}` list, outside comments and `#[cfg(test)]` modules.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/card/pin.rs` -> `card`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Top-level modules named after `crate::`, including inside `use crate::{a, b::c}` lists.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("crate::") {
        let start = at + found + "crate::".len();
        at = start;
        if bytes.get(start) == Some(&b'{') {
            // A list: every item at nesting depth 1 starts a path.
            let mut depth = 0;
            let mut item_start = true;
            for (i, &b) in bytes[start..].iter().enumerate() {
                match b {
                    b'{' => {
                        depth += 1;
                        item_start = depth == 1;
                        continue;
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => {
                        item_start = true;
                        continue;
                    }
                    _ => {}
                }
                if item_start && is_ident(b) {
                    let name: String = bytes[start + i..]
                        .iter()
                        .take_while(|&&c| is_ident(c))
                        .map(|&c| c as char)
                        .collect();
                    refs.insert(name);
                    item_start = false;
                } else if !b.is_ascii_whitespace() {
                    item_start = false;
                }
            }
        } else {
            let name: String = bytes[start..]
                .iter()
                .take_while(|&&c| is_ident(c))
                .map(|&c| c as char)
                .collect();
            refs.insert(name);
        }
    }
    refs
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(&src, f)).collect();
    for file in &files {
        let module = top_module(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let deps = graph.entry(module.clone()).or_default();
        for dep in crate_refs(&code(&text)) {
            // `crate::Error` and `crate::Result` are re-exports of `error`.
            let dep = match dep.as_str() {
                "Error" | "Result" => "error".to_string(),
                "Done" => "lib".to_string(),
                _ => dep,
            };
            if dep != module && (modules.contains(&dep) || dep == "lib") {
                deps.insert(dep);
            }
        }
    }
    graph
}

fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for dep in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(graph, dep, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn the_reader_sees_what_the_test_sees() {
    let refs = crate_refs("use crate::{\n    card::{self, pin},\n    error::{Error, Result},\n};\nfn f() { crate::time::now(); }");
    let want: BTreeSet<String> = ["card", "error", "time"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, want);
    let mut cyclic = Graph::new();
    cyclic.entry("a".into()).or_default().insert("b".into());
    cyclic.entry("b".into()).or_default().insert("a".into());
    assert!(find_cycle(&cyclic).is_some());
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let graph = graph();
    assert!(graph.len() > 10, "the source was not read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn leaves_and_cli_depend_on_no_library_module() {
    let graph = graph();
    let allowed: [(&str, &[&str]); 6] = [
        ("error", &[]),
        ("ui", &["error"]),
        ("time", &[]),
        ("paths", &[]),
        ("gpg_status", &["error", "paths"]),
        // The CLI takes plain values only: the duration parser is its one helper.
        ("cli", &["time"]),
    ];
    for (module, may_use) in allowed {
        let deps = graph.get(module).cloned().unwrap_or_default();
        let extra: Vec<_> = deps
            .iter()
            .filter(|d| !may_use.contains(&d.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} depends on {extra:?}");
    }
}
