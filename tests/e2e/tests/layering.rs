//! No import cycles inside any crate of the workspace (README: crate map). Two graphs per
//! crate must be acyclic: its top-level modules (`crate::a` used in module `b` is an edge
//! b -> a), and inside each directory module the sibling files (`super::a` or
//! `crate::m::a` used in `m/b.rs`). A module's own parent is not a sibling: a `mod.rs`
//! declares and uses its children, and children may use what it defines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const CRATES: [&str; 7] = [
    "programs/ovpp/src",
    "programs/ovpp/chain/src",
    "oracle/wire/src",
    "oracle/src",
    "oracle/simulator/src",
    "oracle/localnet/src",
    "cli/src",
];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments (line comments, doc comments).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source file");
    text.lines().map(|l| l.split_once("//").map_or(l, |(code, _)| code)).collect::<Vec<_>>().join("\n")
}

/// The first path segments after each `prefix` in `code`, including each item of a
/// `prefix{a, b::c}` group.
fn segments_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices(prefix) {
        if code[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(ident(item.trim()));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|s| !s.is_empty() && s != "self" && s != "super");
    out
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The module graphs of the crate whose sources are in `src`: the top level, then each
/// directory module's siblings, keyed by the directory.
fn graphs(src: &Path) -> BTreeMap<String, Graph> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graphs: BTreeMap<String, Graph> = BTreeMap::new();
    for file in files {
        let relative: Vec<String> =
            file.strip_prefix(src).expect("under src").with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
        let code = code(&file);
        let top = relative[0].clone();
        if relative.len() == 1 && (top == "lib" || top == "main") {
            continue;
        }
        let edges = graphs.entry(String::new()).or_default().entry(top.clone()).or_default();
        edges.extend(segments_after(&code, "crate::").into_iter().filter(|m| *m != top));
        // A file inside a directory module: its siblings.
        if relative.len() >= 2 && relative.last().is_some_and(|n| n != "mod") {
            let dir = relative[..relative.len() - 1].join("/");
            let name = relative.last().expect("file name").clone();
            let siblings: BTreeSet<String> = std::fs::read_dir(file.parent().expect("parent"))
                .expect("directory")
                .filter_map(|e| e.ok()?.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
                .filter(|s| s != "mod" && *s != name)
                .collect();
            let mut used = segments_after(&code, "super::");
            used.extend(segments_after(&code, &format!("crate::{}::", dir.replace('/', "::"))));
            let edges = graphs.entry(dir).or_default().entry(name).or_default();
            edges.extend(used.into_iter().filter(|m| siblings.contains(m)));
        }
    }
    graphs
}

#[test]
fn no_crate_has_an_import_cycle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cycles = Vec::new();
    for krate in CRATES {
        for (dir, graph) in graphs(&root.join(krate)) {
            if let Some(found) = cycle(&graph) {
                cycles.push(format!("{krate}/{dir}: {}", found.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles (README: crate map says which way imports point):\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_finds_a_cycle_and_reads_use_groups() {
    assert_eq!(
        segments_after("use crate::{a::X, b, c::{d, e}};\nlet x = crate::f::g();", "crate::"),
        BTreeSet::from(["a", "b", "c", "f"].map(String::from))
    );
    assert!(segments_after("ovpp_crate::x; my_crate::y", "crate::").is_empty());
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")].into_iter().map(|(x, y)| (x.into(), BTreeSet::from([y.to_string()]))).collect();
    assert_eq!(cycle(&graph), Some(["a", "b", "c", "a"].map(String::from).to_vec()));
    let dag: Graph = [("a", "b"), ("b", "c")].into_iter().map(|(x, y)| (x.into(), BTreeSet::from([y.to_string()]))).collect();
    assert_eq!(cycle(&dag), None);
}
