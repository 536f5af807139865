//! The layering ARCHITECTURE.md states stays true: every `crate::` path in `src/` (outside
//! `#[cfg(test)]` code) is an edge from its module to another, and each edge must be one the
//! "Layers" table of ARCHITECTURE.md allows. A new module must be added to the table, and a
//! new edge to its row (or the code changed), in the same commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module a source file belongs to: its first component under `src/` (`lib.rs` is `lib`,
/// the binary's `main.rs` and `cli/` are `cli`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    match name.as_str() {
        "main" => "cli".into(),
        _ => name,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text with line comments and `#[cfg(test)]` items removed (a test module may use
/// anything: it is not part of the layering).
fn code_only(text: &str) -> String {
    let lines: String = text
        .lines()
        .map(|l| match l.find("//") {
            // `//` inside a string (a URL) cuts the rest of that line: harmless here.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut s = lines;
    while let Some(i) = s.find("#[cfg(test)]") {
        let after = i + "#[cfg(test)]".len();
        // A test-only module or function: cut through its closing brace. Anything else (a
        // field, a statement): cut the attribute alone, keeping the item it marks.
        let head_end = s[after..]
            .find(['{', ';', ','])
            .map_or(s.len(), |k| after + k);
        let head = &s[after..head_end];
        let is_block =
            s[head_end..].starts_with('{') && (head.contains("mod ") || head.contains("fn "));
        if !is_block {
            s.replace_range(i..after, "");
            continue;
        }
        let open = head_end;
        let mut depth = 0usize;
        let mut end = s.len();
        for (k, c) in s[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        s.replace_range(i..end, "");
    }
    s
}

/// Every module a file names through `root::` (`crate` in the library, `afdsim` in the
/// binary), including inside `use root::{a, b::c}` groups.
fn targets(code: &str, root: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let name = |s: &str| -> String {
        let id: String = s
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A crate-root item (`crate::run`, `afdsim::Outcome`) belongs to `lib`.
        if modules.contains(&id) {
            id
        } else {
            "lib".into()
        }
    };
    let prefix = format!("{root}::");
    let mut rest = code;
    while let Some(i) = rest.find(&prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(name(&group[start..k]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(name(&group[start..k]));
                        start = k + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(name(rest));
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

/// The "Layers" table of ARCHITECTURE.md: module -> the modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md")).unwrap();
    let section = text
        .split("\n## Layers")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layers` section");
    let section = section.split("\n## ").next().unwrap();
    let mut map = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let module = cells[1].trim_matches('`').to_string();
        let uses = cells[2]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| !c.is_empty() && c != "—")
            .collect();
        map.insert(module, uses);
    }
    map
}

#[test]
fn every_crate_edge_is_one_the_architecture_map_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&src).unwrap()))
        .collect();
    let allowed = allowed();
    let mut problems = Vec::new();
    for m in &modules {
        if !allowed.contains_key(m) {
            problems.push(format!(
                "module `{m}` is not in ARCHITECTURE.md's Layers table"
            ));
        }
    }
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let from = module_of(rel);
        let root = if from == "cli" { "afdsim" } else { "crate" };
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let may = allowed.get(&from).cloned().unwrap_or_default();
        for to in targets(&code, root, &modules) {
            if to != from && !may.contains(&to) {
                problems.push(format!(
                    "src/{}: `{from}` uses `{to}`, which the Layers table does not allow",
                    rel.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The check itself finds edges: a file naming a module in a `use` group and by path.
#[test]
fn the_edge_finder_reads_groups_paths_and_skips_test_code() {
    let modules: BTreeSet<String> = ["net", "engine", "packet", "flow", "stats"]
        .map(String::from)
        .into();
    let code = code_only(
        "use crate::net::{A, B};\nuse crate::{engine::Time, flow::{x, y}};\n\
         // crate::packet in a comment\nfn f() { crate::run(); }\n\
         #[cfg(test)]\nmod tests { use crate::packet::X; fn g() { let _ = \"{}\"; } }\n\
         struct S {\n    #[cfg(test)]\n    seen: Vec<u8>,\n}\nimpl S { fn h() { crate::stats::f(); } }\n",
    );
    let found = targets(&code, "crate", &modules);
    assert_eq!(
        found,
        ["engine", "flow", "lib", "net", "stats"]
            .map(String::from)
            .into()
    );
}
