//! The documentation a clone carries: README.md and docs/*.md link only to
//! files of this repository (and to headings that exist in them), and
//! docs/REFERENCE.md keeps up with the command line: every command that
//! `sdnfwd --help` lists has a `### sdnfwd COMMAND` section there, every
//! long flag its `--help` prints is named in that section, every command
//! of `sdnfwd ctl help` is named in ctl's section, every `ovs-appctl`
//! command the drop-in for ovs-vswitchd answers is named in the
//! ovs-appctl section, and every flag a
//! section's table lists still exists. A flag added to the CLI without a
//! line in the reference fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// README.md and every docs/*.md.
fn doc_files() -> Vec<PathBuf> {
    let mut v = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 3, "docs/ holds DESIGN.md, REFERENCE.md and OPERATIONS.md: {docs:?}");
    v.extend(docs);
    v
}

/// The lines of a Markdown text outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, l));
        }
    }
    out
}

/// A line without its inline code spans (`...`).
fn without_code(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// The link targets of a Markdown text: inline `[text](target)` and
/// reference definitions `[label]: target`, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut v = Vec::new();
    for (n, line) in prose_lines(text) {
        let l = without_code(line);
        let mut rest = l.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or("");
            v.push((n, target.trim_matches(|c| c == '<' || c == '>').to_string()));
            rest = &after[end..];
        }
        let t = l.trim_start();
        if t.starts_with('[') {
            if let Some(i) = t.find("]:") {
                if let Some(target) = t[i + 2..].split_whitespace().next() {
                    v.push((n, target.to_string()));
                }
            }
        }
    }
    v
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-`
/// and `_` dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings (a repeated heading's get
/// `-1`, `-2`, ... as on GitHub).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, l) in prose_lines(text) {
        let t = l.trim_start();
        let hashes = t.len() - t.trim_start_matches('#').len();
        if !(1..=6).contains(&hashes) || !t[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&t[hashes..].replace('`', ""));
        let mut s = base.clone();
        let mut k = 0;
        while seen.contains(&s) {
            k += 1;
            s = format!("{base}-{k}");
        }
        seen.insert(s);
    }
    seen
}

#[test]
fn relative_links_point_into_the_repository() {
    let repo = root().canonicalize().unwrap();
    let mut bad = Vec::new();
    let mut n_checked = 0;
    for doc in doc_files() {
        let text = read(&doc);
        let name = doc.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            n_checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() { doc.clone() } else { doc.parent().unwrap().join(path) };
            let Ok(real) = file.canonicalize() else {
                bad.push(format!("{name}:{line}: `{target}`: no such file"));
                continue;
            };
            let inside = real.strip_prefix(&repo).ok();
            if inside.is_none_or(|p| p.starts_with("target")) {
                bad.push(format!("{name}:{line}: `{target}`: not a file of the repository"));
                continue;
            }
            if let Some(a) = anchor {
                if real.extension().is_some_and(|x| x == "md") && !anchors(&read(&real)).contains(a) {
                    bad.push(format!("{name}:{line}: `{target}`: no heading with anchor `#{a}` there"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
    assert!(n_checked >= 10, "only {n_checked} relative links found: is the link scanner broken?");
}

fn sdnfwd(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_sdnfwd")).args(args).output().expect("run sdnfwd");
    assert!(o.status.success(), "sdnfwd {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("UTF-8 help")
}

/// The commands `sdnfwd --help` lists (not `help`).
fn commands() -> Vec<String> {
    let help = sdnfwd(&["--help"]);
    let mut v = Vec::new();
    let mut inside = false;
    for l in help.lines() {
        if l.starts_with("Commands:") {
            inside = true;
        } else if inside && l.trim().is_empty() {
            break;
        } else if inside {
            if let Some(c) = l.split_whitespace().next().filter(|c| *c != "help") {
                v.push(c.to_string());
            }
        }
    }
    assert!(v.len() >= 10, "commands of `sdnfwd --help`: {v:?}");
    v
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The long flags a text names (`--flag`, not `--help`/`--version`).
fn long_flags(text: &str) -> BTreeSet<String> {
    let mut v = BTreeSet::new();
    let b = text.as_bytes();
    for (i, _) in text.match_indices("--") {
        if i > 0 && is_word(b[i - 1] as char) {
            continue;
        }
        let f: String = text[i + 2..].chars().take_while(|&c| is_word(c)).collect();
        if f.starts_with(|c: char| c.is_ascii_lowercase()) && f != "help" && f != "version" {
            v.insert(format!("--{f}"));
        }
    }
    v
}

/// Whether `needle` occurs in `hay` not followed by a word character.
fn names(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| !hay[i + needle.len()..].starts_with(is_word))
}

/// The text of `### sdnfwd CMD` in REFERENCE.md, to the next `##`/`###`.
fn section<'a>(reference: &'a str, cmd: &str) -> Option<&'a str> {
    section_at(reference, &format!("### sdnfwd {cmd}\n"))
}

/// The text under the heading line `head`, to the next `##`/`###`.
fn section_at<'a>(reference: &'a str, head: &str) -> Option<&'a str> {
    let start = reference.find(head)? + head.len();
    let rest = &reference[start..];
    let end = rest.match_indices('\n').map(|(i, _)| i + 1).find(|&i| {
        let l = &rest[i..];
        l.starts_with("## ") || l.starts_with("### ")
    });
    Some(&rest[..end.unwrap_or(rest.len())])
}

/// The flags named in the first column of a section's tables.
fn table_flags(section: &str) -> BTreeSet<String> {
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|l| format!("--{}", l.chars().take_while(|&c| is_word(c)).collect::<String>()))
        .collect()
}

#[test]
fn reference_names_every_command_and_flag() {
    let reference = read(&root().join("docs/REFERENCE.md"));
    let mut missing = Vec::new();
    for cmd in commands() {
        let Some(sec) = section(&reference, &cmd) else {
            missing.push(format!("command `{cmd}`: no `### sdnfwd {cmd}` section"));
            continue;
        };
        let help = sdnfwd(&[&cmd, "--help"]);
        let flags = long_flags(&help);
        for f in &flags {
            if !names(sec, f) {
                missing.push(format!("`sdnfwd {cmd} {f}` is not named in its section"));
            }
        }
        for f in table_flags(sec) {
            if !flags.contains(&f) {
                missing.push(format!("`sdnfwd {cmd} {f}` is in the reference but not in `sdnfwd {cmd} --help`"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/REFERENCE.md is behind the CLI:\n{}", missing.join("\n"));
}

/// The commands `sdnfwd ctl help` lists: the first word of each `|`
/// alternative (`pod list`, `pod add`: the first two for `pod`,
/// `hostsubnet` and `policy`).
fn ctl_commands() -> BTreeSet<String> {
    let help = sdnfwd(&["ctl", "help"]);
    let mut v = BTreeSet::new();
    for l in help.lines().skip(1) {
        // Continuation lines of a description are indented further.
        let Some(l) = l.strip_prefix("  ").filter(|l| !l.starts_with(' ')) else { continue };
        let usage = l.split("  ").next().unwrap_or("");
        for alt in usage.split(" | ") {
            let w: Vec<&str> = alt.split_whitespace().collect();
            match w[..] {
                [c @ ("pod" | "hostsubnet" | "policy"), sub, ..] => v.insert(format!("{c} {sub}")),
                [c, ..] => v.insert(c.to_string()),
                [] => false,
            };
        }
    }
    assert!(v.len() >= 25, "commands of `sdnfwd ctl help`: {v:?}");
    v
}

#[test]
fn reference_names_every_ctl_command() {
    let reference = read(&root().join("docs/REFERENCE.md"));
    let sec = section(&reference, "ctl").expect("a `### sdnfwd ctl` section");
    let missing: Vec<String> = ctl_commands().into_iter().filter(|c| !names(sec, &format!("`{c}"))).collect();
    assert!(missing.is_empty(), "`sdnfwd ctl` commands not in docs/REFERENCE.md's ctl section: {missing:?}");
}

#[test]
fn test_slug_and_links() {
    assert_eq!(slug("8. Checksums on veth"), "8-checksums-on-veth");
    assert_eq!(slug("OpenFlow 1.3: ovs-ofctl and controllers"), "openflow-13-ovs-ofctl-and-controllers");
    assert_eq!(slug("node and nodes[]"), "node-and-nodes");
    let t = "a [x](docs/A.md#b) `[no](c.md)` b\n```\n[no](d.md)\n```\n[r]: e.md\n";
    let got: Vec<String> = links(t).into_iter().map(|(_, l)| l).collect();
    assert_eq!(got, ["docs/A.md#b", "e.md"]);
    assert_eq!(
        long_flags("  --cores <CORES>  x --no-tun0, a--b, --help"),
        ["--cores", "--no-tun0"].map(String::from).into()
    );
    assert!(names("| `--flows N` |", "--flows") && !names("--flows-x", "--flows"));
}

#[test]
fn reference_names_every_appctl_command() {
    let reference = read(&root().join("docs/REFERENCE.md"));
    let sec = section_at(&reference, "## ovs-appctl\n").expect("a `## ovs-appctl` section");
    let missing: Vec<&str> = node::appctl::COMMANDS.into_iter().filter(|c| !names(sec, &format!("`{c}"))).collect();
    assert!(missing.is_empty(), "ovs-appctl commands not in docs/REFERENCE.md's ovs-appctl section: {missing:?}");
}
