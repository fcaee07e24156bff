//! The tree's import graph (DESIGN.md §1, §9): config → slowpath →
//! fastpath, and no two files that import each other, nor any longer
//! circle of files. Each source file of the workspace's crates is scanned
//! for the paths it names (`use` trees and paths in code: `crate::`,
//! `super::`, `self::`, a child module, a workspace crate), each resolved
//! to the file of the deepest module it names; a glob or a re-export
//! counts as an import of the module it names. Comments, strings and
//! `#[cfg(test)]`-style inline modules are followed as the compiler
//! would (an inline module's `super::` is its own file).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Identifiers, `::` and the punctuation that delimits paths and blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Colons,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    Other,
}

/// Tokens with their line numbers; comments, strings, chars and
/// lifetimes removed.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(b[i] == b'\n');
                        i += 1;
                    }
                }
            }
            b'r' | b'b' if raw_string_start(b, i).is_some() => {
                let (hashes, body) = raw_string_start(b, i).unwrap_or((0, i));
                let mut j = body;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == b'"' && b[j + 1..].iter().take(hashes).filter(|&&h| h == b'#').count() == hashes {
                        j += 1 + hashes;
                        break;
                    }
                    line += usize::from(b[j] == b'\n');
                    j += 1;
                }
                i = j;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    line += usize::from(b.get(i) == Some(&b'\n'));
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else if let Some(n) = std::str::from_utf8(&b[i + 1..]).ok().and_then(|s| s.chars().next()) {
                    let w = n.len_utf8();
                    if b.get(i + 1 + w) == Some(&b'\'') {
                        i += 2 + w;
                    } else {
                        // A lifetime: skip the quote; its name lexes as an
                        // identifier that no path starts with.
                        i += 1;
                        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                            i += 1;
                        }
                    }
                } else {
                    i += 1;
                }
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let id = &src[s..i];
                // b"..." and b'x' are literals, not the identifier `b`.
                if id == "b" && matches!(b.get(i), Some(b'"') | Some(b'\'')) {
                    continue;
                }
                out.push((Tok::Ident(id.trim_start_matches("r#").to_string()), line));
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push((Tok::Colons, line));
                i += 2;
            }
            b'{' => {
                out.push((Tok::Open, line));
                i += 1;
            }
            b'}' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            b';' => {
                out.push((Tok::Semi, line));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, line));
                i += 1;
            }
            b'*' => {
                out.push((Tok::Star, line));
                i += 1;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                out.push((Tok::Other, line));
                i += 1;
            }
        }
    }
    out
}

/// `r"`, `r#"`, `br"`, `br#"`: (number of hashes, index after the quote).
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') {
        return None;
    }
    let mut j = i;
    if b[j] == b'b' {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while b.get(j) == Some(&b'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&b'"')).then_some((hashes, j + 1))
}

/// A path a file names, with where it sits: the inline modules around it.
#[derive(Debug)]
struct PathRef {
    segs: Vec<String>,
    inline: Vec<String>,
    line: usize,
}

/// What a file declares and names.
#[derive(Debug, Default)]
struct Scan {
    /// `mod x;` at the file's top level (its child files).
    child_files: Vec<String>,
    /// Inline modules, by their path inside the file.
    inline_mods: BTreeSet<Vec<String>>,
    refs: Vec<PathRef>,
}

fn scan(src: &str) -> Scan {
    let toks = lex(src);
    let mut s = Scan::default();
    // Inline module stack: (name, brace depth inside it).
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(x), _)) => Some(x.as_str()),
        _ => None,
    };
    while i < toks.len() {
        let inline: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
        match &toks[i].0 {
            Tok::Open => {
                depth += 1;
                i += 1;
            }
            Tok::Close => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(k) if k == "mod" && ident(i + 1).is_some() => {
                let name = ident(i + 1).unwrap_or_default().to_string();
                match toks.get(i + 2).map(|t| &t.0) {
                    Some(Tok::Semi) if stack.is_empty() => {
                        s.child_files.push(name);
                        i += 3;
                    }
                    Some(Tok::Open) => {
                        depth += 1;
                        stack.push((name.clone(), depth));
                        let mut p = inline.clone();
                        p.push(name);
                        s.inline_mods.insert(p);
                        i += 3;
                    }
                    _ => i += 2,
                }
            }
            Tok::Ident(k) if k == "use" => {
                let mut j = i + 1;
                let mut prefix = Vec::new();
                use_tree(&toks, &mut j, &mut prefix, &inline, &mut s.refs);
                i = j;
            }
            Tok::Ident(_) => {
                // A path in code: IDENT (:: IDENT)+, not preceded by `::`.
                let preceded = i > 0 && toks[i - 1].0 == Tok::Colons;
                let mut segs = Vec::new();
                let mut j = i;
                while let Some(x) = ident(j) {
                    segs.push(x.to_string());
                    if toks.get(j + 1).map(|t| &t.0) == Some(&Tok::Colons) && ident(j + 2).is_some() {
                        j += 2;
                    } else {
                        break;
                    }
                }
                if segs.len() > 1 && !preceded {
                    s.refs.push(PathRef { segs, inline: inline.clone(), line: toks[i].1 });
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    s
}

/// One `use` tree from `*j` (after `use` or inside a group): every full
/// path it names (a glob names its module).
fn use_tree(toks: &[(Tok, usize)], j: &mut usize, prefix: &mut Vec<String>, inline: &[String], out: &mut Vec<PathRef>) {
    let start = prefix.len();
    loop {
        match toks.get(*j).map(|t| &t.0) {
            Some(Tok::Ident(x)) if x == "as" => {
                *j += 2;
            }
            Some(Tok::Ident(x)) => {
                prefix.push(x.clone());
                *j += 1;
                if toks.get(*j).map(|t| &t.0) == Some(&Tok::Colons) {
                    *j += 1;
                    continue;
                }
                out.push(PathRef { segs: prefix.clone(), inline: inline.to_vec(), line: toks[*j - 1].1 });
            }
            Some(Tok::Star) => {
                out.push(PathRef { segs: prefix.clone(), inline: inline.to_vec(), line: toks[*j].1 });
                *j += 1;
            }
            Some(Tok::Open) => {
                *j += 1;
                loop {
                    use_tree(toks, j, prefix, inline, out);
                    match toks.get(*j).map(|t| &t.0) {
                        Some(Tok::Comma) => *j += 1,
                        Some(Tok::Close) => {
                            *j += 1;
                            break;
                        }
                        _ => break,
                    }
                    if toks.get(*j).map(|t| &t.0) == Some(&Tok::Close) {
                        *j += 1;
                        break;
                    }
                }
            }
            _ => {}
        }
        break;
    }
    prefix.truncate(start);
    if toks.get(*j).map(|t| &t.0) == Some(&Tok::Semi) {
        *j += 1;
    }
}

/// A crate: its name as other crates write it, its root file.
struct Krate {
    name: &'static str,
    root: &'static str,
}

/// The workspace's crates (a library and a binary in one directory are
/// two crates: the binary reaches the library by its name).
const CRATES: &[Krate] = &[
    Krate { name: "config", root: "config/src/lib.rs" },
    Krate { name: "fastpath", root: "fastpath/src/lib.rs" },
    Krate { name: "slowpath", root: "slowpath/src/lib.rs" },
    Krate { name: "node", root: "node/src/lib.rs" },
    Krate { name: "sdnfwd", root: "src/lib.rs" },
    Krate { name: "", root: "src/main.rs" },
    Krate { name: "", root: "tools/pktgen/src/main.rs" },
];

/// Module tree of one crate: module path → file.
fn modules(base: &Path, root: &str, scans: &mut HashMap<PathBuf, Scan>) -> BTreeMap<Vec<String>, PathBuf> {
    let mut m = BTreeMap::new();
    let mut todo = vec![(Vec::<String>::new(), PathBuf::from(root))];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(base.join(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let sc = scans.entry(file.clone()).or_insert_with(|| scan(&text));
        // A file's children sit in its directory (lib.rs, main.rs,
        // mod.rs) or in a directory of its name.
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let dir = if matches!(stem, "lib" | "main" | "mod") {
            file.parent().unwrap_or(Path::new("")).to_path_buf()
        } else {
            file.with_extension("")
        };
        for c in sc.child_files.clone() {
            let mut p = path.clone();
            p.push(c.clone());
            let flat = dir.join(format!("{c}.rs"));
            let f = if base.join(&flat).exists() { flat } else { dir.join(&c).join("mod.rs") };
            todo.push((p, f));
        }
        m.insert(path, file);
    }
    m
}

/// file → (imported file → the first line that names it).
type Graph = BTreeMap<PathBuf, BTreeMap<PathBuf, usize>>;

fn graph(base: &Path, crates: &[Krate]) -> Graph {
    let mut scans = HashMap::new();
    let trees: Vec<BTreeMap<Vec<String>, PathBuf>> = crates.iter().map(|k| modules(base, k.root, &mut scans)).collect();
    let named: HashMap<&str, usize> =
        crates.iter().enumerate().filter(|(_, k)| !k.name.is_empty()).map(|(i, k)| (k.name, i)).collect();
    let mut g = Graph::new();
    for (ci, tree) in trees.iter().enumerate() {
        for (mpath, file) in tree {
            let sc = &scans[file];
            let e = g.entry(file.clone()).or_default();
            for r in &sc.refs {
                // The module the reference is written in.
                let mut here = mpath.clone();
                here.extend(r.inline.iter().cloned());
                let (krate, mut abs) = match r.segs[0].as_str() {
                    "crate" => (ci, r.segs[1..].to_vec()),
                    "self" => (ci, [here.clone(), r.segs[1..].to_vec()].concat()),
                    "super" => {
                        let ups = r.segs.iter().take_while(|s| *s == "super").count();
                        let mut h = here.clone();
                        h.truncate(h.len().saturating_sub(ups));
                        (ci, [h, r.segs[ups..].to_vec()].concat())
                    }
                    first => {
                        let mut child = here.clone();
                        child.push(first.to_string());
                        let inline_child = {
                            let mut p = r.inline.clone();
                            p.push(first.to_string());
                            sc.inline_mods.contains(&p)
                        };
                        if tree.contains_key(&child) || inline_child {
                            (ci, [here.clone(), r.segs.clone()].concat())
                        } else if let Some(&k) = named.get(first) {
                            (k, r.segs[1..].to_vec())
                        } else {
                            continue;
                        }
                    }
                };
                // The deepest module with a file of its own.
                let t = &trees[krate];
                let target = loop {
                    if let Some(f) = t.get(&abs) {
                        break f.clone();
                    }
                    if abs.pop().is_none() {
                        break t[&Vec::new()].clone();
                    }
                };
                if &target != file {
                    e.entry(target).or_insert(r.line);
                }
            }
        }
    }
    g
}

/// Circles: strongly connected sets of more than one file (Tarjan).
fn circles(g: &Graph) -> Vec<Vec<PathBuf>> {
    let nodes: Vec<&PathBuf> = g.keys().collect();
    let idx: HashMap<&PathBuf, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0, Vec::new());
    fn visit(
        v: usize,
        g: &Graph,
        nodes: &[&PathBuf],
        idx: &HashMap<&PathBuf, usize>,
        st: &mut (&mut Vec<usize>, &mut Vec<usize>, &mut Vec<bool>, &mut Vec<usize>, &mut usize),
        out: &mut Vec<Vec<PathBuf>>,
    ) {
        st.0[v] = *st.4;
        st.1[v] = *st.4;
        *st.4 += 1;
        st.3.push(v);
        st.2[v] = true;
        for w in g[nodes[v]].keys().filter_map(|t| idx.get(t).copied()) {
            if st.0[w] == usize::MAX {
                visit(w, g, nodes, idx, st, out);
                st.1[v] = st.1[v].min(st.1[w]);
            } else if st.2[w] {
                st.1[v] = st.1[v].min(st.0[w]);
            }
        }
        if st.1[v] == st.0[v] {
            let mut c = Vec::new();
            while let Some(w) = st.3.pop() {
                st.2[w] = false;
                c.push(nodes[w].clone());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                out.push(c);
            }
        }
    }
    for v in 0..n {
        if index[v] == usize::MAX {
            visit(v, g, &nodes, &idx, &mut (&mut index, &mut low, &mut on, &mut stack, &mut next), &mut out);
        }
    }
    out.sort();
    out
}

fn describe(g: &Graph, c: &[PathBuf]) -> String {
    let mut s = String::new();
    for a in c {
        for (b, line) in &g[a] {
            if c.contains(b) {
                s += &format!("\n  {}:{line} imports {}", a.display(), b.display());
            }
        }
    }
    s
}

#[test]
fn no_two_files_import_each_other() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let g = graph(base, CRATES);
    assert!(g.len() > 40, "only {} files found", g.len());
    let c = circles(&g);
    let text: Vec<String> = c.iter().map(|c| describe(&g, c)).collect();
    assert!(c.is_empty(), "files that import each other, in {} circle(s):{}", c.len(), text.join("\n"));
}

/// The layers: config imports no other crate of the workspace, slowpath
/// not the node agent's or the binary's, the node agent (node/) not the
/// binary's, fastpath not the slow path or config.
#[test]
fn layers_point_one_way() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let g = graph(base, CRATES);
    let layer = |p: &Path| p.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or("").to_string();
    let rank = |l: &str| match l {
        "fastpath" => 0,
        "config" => 0,
        "slowpath" => 1,
        "node" => 2,
        _ => 3,
    };
    let mut bad = Vec::new();
    for (a, outs) in &g {
        for (b, line) in outs {
            let (la, lb) = (layer(a), layer(b));
            if la != lb && (rank(&lb) > rank(&la) || (rank(&la) == 0 && rank(&lb) == 0)) {
                bad.push(format!("{}:{line} imports {}", a.display(), b.display()));
            }
        }
    }
    assert!(bad.is_empty(), "imports against the layers:\n{}", bad.join("\n"));
}

/// The checker itself: a small crate in a temp dir with a circle of each
/// kind it must see (a `use` of a sibling, a path in code through
/// `super::`, a re-export and a glob) and imports it must not count
/// (comments, strings, an inline test module's `super::*`).
#[test]
fn the_checker_sees_circles_and_only_circles() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::create_dir_all(p.join("k/src/m")).unwrap();
    let w = |f: &str, t: &str| std::fs::write(p.join(f), t).unwrap();
    w("k/src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod m;\npub mod quiet;\n");
    w("k/src/a.rs", "use crate::b::B;\npub struct A;\n");
    w("k/src/b.rs", "pub struct B;\nfn f() -> usize { super::a::A; 1 }\n");
    w("k/src/c.rs", "// use crate::quiet::Q;\nconst S: &str = \"crate::quiet::Q\";\nconst C: char = '\"';\n");
    w("k/src/quiet.rs", "pub struct Q;\nfn f<'a>(x: &'a str) -> &'a str { x }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\nuse crate::c::*;\n");
    w("k/src/m/mod.rs", "mod x;\npub use x::X;\npub struct M;\n");
    w("k/src/m/x.rs", "use super::*;\npub struct X;\n");
    let krates = [Krate { name: "k", root: "k/src/lib.rs" }];
    let g = graph(p, &krates);
    let c = circles(&g);
    let names: Vec<Vec<String>> =
        c.iter().map(|c| c.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect()).collect();
    assert_eq!(names, vec![vec!["a.rs".to_string(), "b.rs".into()], vec!["mod.rs".into(), "x.rs".into()]], "{g:?}");
    assert_eq!(g[Path::new("k/src/c.rs")].len(), 0, "comments and strings are not imports: {g:?}");
    assert_eq!(g[Path::new("k/src/quiet.rs")].len(), 1, "{g:?}");
}
