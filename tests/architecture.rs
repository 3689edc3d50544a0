//! Invariants that ARCHITECTURE.md states and the code must keep.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading src/").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file under `src/`: its path relative to `src/` and its text.
fn sources() -> Vec<(String, String)> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .map(|file| {
            let relative = file
                .strip_prefix(&src)
                .expect("under src/")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file).expect("reading a source file");
            (relative, text)
        })
        .collect()
}

/// The code of a line without its `//` comment (string literals holding `//` are rare
/// enough here; a line that is only a comment is empty).
fn code_of(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// The file patterns of the "Unsafe" table in ARCHITECTURE.md (`sys/mod.rs`, `sync/*.rs`, ...).
fn allowed_unsafe() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = doc
        .find("- **Unsafe**")
        .expect("an Unsafe entry in ARCHITECTURE.md");
    let table = &doc[start..];
    let end = table[2..].find("\n- **").map_or(table.len(), |i| i + 2);
    table[..end]
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_string))
        .filter(|p| p.ends_with(".rs"))
        .collect()
}

fn matches(pattern: &str, relative: &str) -> bool {
    match pattern.strip_suffix("*.rs") {
        Some(dir) => relative.starts_with(dir) && !relative[dir.len()..].contains('/'),
        None => relative == pattern,
    }
}

#[test]
fn unsafe_lives_only_where_the_architecture_says_and_states_its_argument() {
    let allowed = allowed_unsafe();
    assert!(
        allowed.len() > 5,
        "could not read the Unsafe table: {allowed:?}"
    );
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = code_of(line);
            let Some(at) = code.find("unsafe") else {
                continue;
            };
            // Only the keyword: `unsafe {`, `unsafe impl`, `unsafe fn`, `unsafe extern`.
            let rest = code[at + "unsafe".len()..].trim_start();
            let keyword = ["{", "impl", "fn", "extern", "trait"]
                .iter()
                .any(|k| rest.starts_with(k));
            if !keyword || code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if !allowed.iter().any(|p| matches(p, &relative)) {
                problems.push(format!(
                    "{relative}:{}: unsafe outside the files ARCHITECTURE.md allows",
                    i + 1
                ));
            }
            // Blocks and impls argue their case just above (fns state a `# Safety` contract).
            if rest.starts_with('{') || rest.starts_with("impl") {
                let above = lines[i.saturating_sub(12)..=i].join("\n");
                if !above.contains("SAFETY") {
                    problems.push(format!(
                        "{relative}:{}: unsafe without a SAFETY comment above it",
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_mpi_module_calls_mpi() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        if relative.starts_with("pool/mpi/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            if code.contains("::mpi::")
                && !code.contains("crate::mpi::")
                && !code.contains("pool::mpi::")
                && !code.contains("super::mpi::")
                && !code.contains("multiproc::mpi::")
            {
                problems.push(format!(
                    "{relative}:{}: MPI called outside src/pool/mpi/",
                    i + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_sys_calls_the_operating_system_directly() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        if relative.starts_with("sys/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            for crate_name in ["libc::", "rustix::", "memmap2::", "nix::"] {
                let used = code.match_indices(crate_name).any(|(at, _)| {
                    !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if used {
                    problems.push(format!(
                        "{relative}:{}: `{crate_name}` outside src/sys/",
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Files longer than this must say why in their first line (`// long file: <reason>`).
const LONG_FILE: usize = 800;

#[test]
fn no_source_file_is_long_without_stating_why() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        let lines = text.lines().count();
        let stated = text
            .lines()
            .next()
            .is_some_and(|first| first.starts_with("// long file: "));
        if lines > LONG_FILE && !stated {
            problems.push(format!(
                "{relative}: {lines} lines; split it into one concept per file, or start it \
                 with `// long file: <why it is one concept>`"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The top-level modules (the first path segment under `src/`: `sys`, `deadline`, ...).
fn top_level_modules() -> Vec<String> {
    let mut modules: Vec<String> = std::fs::read_dir(root().join("src"))
        .expect("reading src/")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = name
                .strip_suffix(".rs")
                .map_or(name.clone(), str::to_string);
            (name != "lib" && name != "main").then_some(name)
        })
        .collect();
    modules.sort();
    modules
}

/// Edges `from -> to` between top-level modules, read from the `crate::to` paths in the
/// code of the files of `from` (comments, and so doc links, are not code), each with the
/// first place that makes it.
fn module_graph() -> std::collections::BTreeMap<(String, String), String> {
    let modules = top_level_modules();
    let mut edges = std::collections::BTreeMap::new();
    for (relative, text) in sources() {
        let first = relative.split('/').next().unwrap_or_default();
        let from = first.strip_suffix(".rs").unwrap_or(first);
        if !modules.iter().any(|m| m == from) {
            continue; // lib.rs: the crate root re-exports everything.
        }
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            for (at, _) in code.match_indices("crate::") {
                if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue; // `multiproc_crate::`, `$crate::`-like or a longer path.
                }
                let rest = &code[at + "crate::".len()..];
                let to: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if to != from && modules.contains(&to) {
                    edges
                        .entry((from.to_string(), to))
                        .or_insert_with(|| format!("{relative}:{}", i + 1));
                }
            }
        }
    }
    edges
}

/// Upward references that still close a circle, each a known debt: a new one must not
/// appear, and an entry must go when its reference does. None is left. The layers, bottom
/// up: sys -> leaves (handle/codec, code, event, identity, panic_report, library_thread) ->
/// connection -> segment -> sync -> shared memory -> queue -> logging -> process ->
/// pool (with its MPI backend, pool/mpi) -> executor/manager.
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

/// A circle in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &[(String, String)]) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &[(String, String)],
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for (from, to) in edges {
            if from == node
                && let Some(cycle) = visit(to, edges, path, done)
            {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for (from, _) in edges {
        if let Some(cycle) = visit(from, edges, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn top_level_modules_form_no_circle_beyond_the_known_ones() {
    let graph = module_graph();
    let mut problems = Vec::new();
    for (from, to, why) in KNOWN_UPWARD {
        if !graph.contains_key(&(from.to_string(), to.to_string())) {
            problems.push(format!(
                "{from} -> {to} ({why}) is gone: remove it from KNOWN_UPWARD"
            ));
        }
    }
    let edges: Vec<(String, String)> = graph
        .keys()
        .filter(|(from, to)| !KNOWN_UPWARD.iter().any(|(f, t, _)| f == from && t == to))
        .cloned()
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                format!(
                    "{} -> {} ({})",
                    w[0],
                    w[1],
                    graph[&(w[0].clone(), w[1].clone())]
                )
            })
            .collect();
        problems.push(format!("a circle of modules:\n  {}", steps.join("\n  ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
