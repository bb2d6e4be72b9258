//! The module tree's one structural rule, checked: the top-level modules of `src/` depend on
//! each other without cycles, so each can be read, tested and moved into a crate of its own
//! after the modules it uses, never together with them.
//!
//! A dependency is any path that leaves the module: `crate::x…` (in `use`, in code, in macro
//! arguments such as `matches!`) or a `super::…` that climbs above the module's root. Items
//! under `#[cfg(test)]` are not counted: a test may use whatever it checks against. Files are
//! tokenised with `proc-macro2`, so comments and string literals never count.
//!
//! `cargo test --lib module_cycles -- --nocapture` prints the graph; on a cycle the test fails
//! naming each edge of it and the files that make the edge.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// from → to → the files of `from` that use `to`.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The top-level modules of the crate rooted at `src` and the uses between them.
fn module_graph(src: &Path) -> Graph {
    let tops: BTreeSet<String> = std::fs::read_dir(src)
        .expect("src/ is readable")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let module = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (!matches!(module.as_str(), "lib" | "main")).then_some(module)
        })
        .collect();
    let mut graph = Graph::new();
    let mut test_files = BTreeSet::new();
    let mut files: Vec<_> = walkdir::WalkDir::new(src)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.path().to_owned())
        .collect();
    // Parents before children, so a `#[cfg(test)] mod x;` is seen before the file `x.rs`.
    files.sort_by_key(|p| p.components().count());
    for path in files {
        let rel = path.strip_prefix(src).expect("walked under src");
        let module = module_path(rel);
        let Some(top) = module.first().cloned() else {
            // lib.rs (main.rs is the binary, a crate of its own): its test-only modules.
            if rel == Path::new("lib.rs") {
                let tokens = tokenise(&path);
                scan(&tokens, &module, &mut BTreeSet::new(), &mut test_files);
            }
            continue;
        };
        if test_files
            .iter()
            .any(|t: &Vec<String>| module.starts_with(t))
        {
            continue;
        }
        let mut used = BTreeSet::new();
        scan(&tokenise(&path), &module, &mut used, &mut test_files);
        for to in used.into_iter().filter(|m| *m != top && tops.contains(m)) {
            graph
                .entry(top.clone())
                .or_default()
                .entry(to)
                .or_default()
                .insert(rel.display().to_string());
        }
    }
    graph
}

/// `engine/guard.rs` → `[engine, guard]`; `engine/mod.rs` → `[engine]`; `lib.rs` → `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn tokenise(path: &Path) -> Vec<TokenTree> {
    let text = std::fs::read_to_string(path).expect("source file is readable");
    let tokens: TokenStream = text
        .parse()
        .unwrap_or_else(|e| panic!("{} does not tokenise: {e:?}", path.display()));
    tokens.into_iter().collect()
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

fn is_ident(t: Option<&TokenTree>, name: &str) -> bool {
    matches!(t, Some(TokenTree::Ident(i)) if i == name)
}

/// `::` at `tokens[i]`.
fn is_path_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!(tokens.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
        && is_punct(tokens.get(i + 1), ':')
}

/// `#[cfg(test)]` (or `#![cfg(test)]`) starting at `tokens[i]`: the index after it.
fn cfg_test_at(tokens: &[TokenTree], i: usize) -> Option<usize> {
    if !is_punct(tokens.get(i), '#') {
        return None;
    }
    let at = if is_punct(tokens.get(i + 1), '!') {
        i + 2
    } else {
        i + 1
    };
    let TokenTree::Group(g) = tokens.get(at)? else {
        return None;
    };
    let inner: Vec<TokenTree> = g.stream().into_iter().collect();
    let is_cfg_test = g.delimiter() == Delimiter::Bracket
        && inner.len() == 2
        && is_ident(inner.first(), "cfg")
        && matches!(&inner[1], TokenTree::Group(args)
            if args.stream().to_string() == "test");
    is_cfg_test.then_some(at + 1)
}

/// Collects in `used` the first segment of every crate-level path in `tokens` (code of
/// module `module`), skipping `#[cfg(test)]` items; records `#[cfg(test)] mod x;` files in
/// `test_files`.
fn scan(
    tokens: &[TokenTree],
    module: &[String],
    used: &mut BTreeSet<String>,
    test_files: &mut BTreeSet<Vec<String>>,
) {
    let mut i = 0;
    while i < tokens.len() {
        if let Some(after) = cfg_test_at(tokens, i) {
            if is_punct(tokens.get(i + 1), '!') {
                return; // the whole file or block is test code
            }
            i = skip_item(tokens, after, module, test_files);
            continue;
        }
        match &tokens[i] {
            TokenTree::Ident(id) if id == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(body))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if body.delimiter() == Delimiter::Brace {
                        let mut inner = module.to_vec();
                        inner.push(name.to_string());
                        let body: Vec<TokenTree> = body.stream().into_iter().collect();
                        scan(&body, &inner, used, test_files);
                        i += 3;
                        continue;
                    }
                }
            }
            // `crate::x`, but not `$crate::x` (a macro's own path) or `pub(crate)`.
            TokenTree::Ident(id)
                if id == "crate"
                    && !is_punct(i.checked_sub(1).and_then(|p| tokens.get(p)), '$')
                    && is_path_sep(tokens, i + 1) =>
            {
                first_segments(tokens.get(i + 3), used);
            }
            TokenTree::Ident(id) if id == "super" && !(i >= 2 && is_path_sep(tokens, i - 2)) => {
                let mut depth = 0;
                let mut j = i;
                while is_ident(tokens.get(j), "super") && is_path_sep(tokens, j + 1) {
                    depth += 1;
                    j += 3;
                }
                if depth >= module.len() {
                    // Climbs to the crate root: what follows is a top-level item.
                    first_segments(tokens.get(j), used);
                } else if let Some(top) = module.first() {
                    used.insert(top.clone());
                }
            }
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                scan(&inner, module, used, test_files);
            }
            _ => {}
        }
        i += 1;
    }
}

/// The path segment after `crate::` (or a root-level `super::`): one name, or each name of a
/// `{a, b::c}` group.
fn first_segments(t: Option<&TokenTree>, used: &mut BTreeSet<String>) {
    match t {
        Some(TokenTree::Ident(name)) => {
            used.insert(name.to_string());
        }
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
            let inner: Vec<TokenTree> = g.stream().into_iter().collect();
            let mut at_start = true;
            for t in &inner {
                match t {
                    TokenTree::Ident(name) if at_start => {
                        used.insert(name.to_string());
                        at_start = false;
                    }
                    TokenTree::Punct(p) if p.as_char() == ',' => at_start = true,
                    _ => at_start = false,
                }
            }
        }
        _ => {}
    }
}

/// Skips the item after a `#[cfg(test)]` (its further attributes, then up to its `;` or its
/// body) and returns the index after it. A skipped `mod x;` marks its file as test code.
fn skip_item(
    tokens: &[TokenTree],
    mut i: usize,
    module: &[String],
    test_files: &mut BTreeSet<Vec<String>>,
) -> usize {
    while is_punct(tokens.get(i), '#') {
        i += 2;
    }
    let start = i;
    while let Some(t) = tokens.get(i) {
        match t {
            TokenTree::Punct(p) if p.as_char() == ';' => {
                let words: Vec<String> = tokens[start..i].iter().map(ToString::to_string).collect();
                if let Some(at) = words.iter().position(|w| w == "mod") {
                    if let Some(name) = words.get(at + 1) {
                        let mut file = module.to_vec();
                        file.push(name.clone());
                        test_files.insert(file);
                    }
                }
                return i + 1;
            }
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Search<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flat_map(BTreeMap::keys) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self
                    .stack
                    .iter()
                    .rposition(|&s| s == v)
                    .expect("v is on the stack");
                let component: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !search.index.contains_key(v.as_str()) {
            search.visit(v);
        }
    }
    search.found
}

#[test]
fn top_level_modules_have_no_cycles() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for (from, to) in &graph {
        println!(
            "{from} → {}",
            to.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let mut report = String::new();
    for component in cycles(&graph) {
        report.push_str(&format!("cycle among {}:\n", component.join(", ")));
        for from in &component {
            for (to, files) in &graph[from] {
                if component.contains(to) {
                    let files: Vec<_> = files.iter().cloned().collect();
                    report.push_str(&format!("  {from} → {to} ({})\n", files.join(", ")));
                }
            }
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn a_scan_finds_crate_and_root_super_paths_outside_tests() {
    let code = r#"
        //! crate::in_a_comment
        use crate::{audio, engine::Word};
        use super::sibling;
        fn f() -> crate::stream::X { let s = "crate::in_a_string"; matches!(x, crate::forward::Y) }
        fn g() { super::super::dialect::select(); $crate::not_a_path(); }
        pub(crate) fn h() {}
        #[cfg(test)]
        fn only_in_tests() { crate::kb::Hit; }
        #[cfg(test)]
        mod tests;
        mod inner { fn i() { super::super::super::batch::run(); } }
    "#;
    let tokens: Vec<TokenTree> = code.parse::<TokenStream>().unwrap().into_iter().collect();
    let module = ["cli".to_owned(), "client".to_owned()];
    let (mut used, mut test_files) = (BTreeSet::new(), BTreeSet::new());
    scan(&tokens, &module, &mut used, &mut test_files);
    let used: Vec<_> = used.iter().map(String::as_str).collect();
    // `super::sibling` stays inside `cli`.
    assert_eq!(
        used,
        ["audio", "batch", "cli", "dialect", "engine", "forward", "stream"]
    );
    assert_eq!(
        test_files.into_iter().collect::<Vec<_>>(),
        [vec![
            "cli".to_owned(),
            "client".to_owned(),
            "tests".to_owned()
        ]]
    );
}

#[test]
fn a_cycle_is_found_with_every_module_on_it() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")] {
        graph
            .entry(from.into())
            .or_default()
            .entry(to.into())
            .or_default();
    }
    let mut found = cycles(&graph);
    found.iter_mut().for_each(|c| c.sort());
    assert_eq!(found, [vec!["a", "b", "c"]]);
}
