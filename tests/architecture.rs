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

/// Public items that need no example, each with why: (file under `src/`, item name, reason).
/// Only items that are `pub` in name but not reachable by users belong here; an entry must go
/// when its item does.
///
/// Private modules are not skipped file by file: the crate marks what is internal
/// `pub(crate)`, and several private modules hold public items that are re-exported
/// (`event.rs`'s `TARGET`, `shared/tracker.rs`'s `resource_tracker_pid`, `process/fork.rs`'s
/// `allow_fork_with_threads`, `pool/task.rs`'s `TaskArg`/`TaskOutput`/`StarArgs`), which
/// must keep their examples.
const NO_EXAMPLE_NEEDED: &[(&str, &str, &str)] = &[
    (
        "code.rs",
        "CodeFn",
        "in the crate-private module `code`: public in name only so that the public `StarArgs` \
         can require it of its function-pointer types; users can neither name nor implement it",
    ),
    (
        "shared/atomic.rs",
        "Sealed",
        "the sealed-trait pattern: in the private inline `mod sealed`, so that no one outside \
         the crate can implement `AtomicInt`",
    ),
];

/// A `pub` item declared on `line` (not `pub(crate)`/`pub(super)`): its kind and name.
fn public_item(line: &str) -> Option<(&str, &str)> {
    let rest = line.trim_start().strip_prefix("pub ")?;
    let mut words = rest.split_whitespace().peekable();
    let mut kind = words.next()?;
    loop {
        let qualifier = match kind {
            "async" | "unsafe" | "extern" => true,
            "const" => matches!(words.peek(), Some(&("fn" | "async" | "unsafe" | "extern"))),
            abi => abi.starts_with('"'),
        };
        if !qualifier {
            break;
        }
        kind = words.next()?;
    }
    if ![
        "fn", "struct", "enum", "trait", "type", "const", "static", "union",
    ]
    .contains(&kind)
    {
        return None;
    }
    let mut name = words.next()?;
    if kind == "static" && name == "mut" {
        name = words.next()?;
    }
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    Some((kind, &name[..end]))
}

/// What is written just above the item at `lines[at]`: its `///` lines (top to bottom), and
/// whether an attribute hides it from the documentation (`#[doc(hidden)]`) or makes it exist
/// only for doctests (`#[cfg(doctest)]`). Walks up over doc comments, `//` comments and
/// attributes, including attributes spread over several lines.
fn doc_above(lines: &[&str], at: usize) -> (Vec<String>, bool) {
    let mut doc = Vec::new();
    let mut exempt = false;
    let mut i = at;
    while i > 0 {
        i -= 1;
        let line = lines[i].trim();
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim().to_string());
        } else if line.starts_with("//!") {
            break; // the module's own documentation
        } else if line.starts_with("//") {
            continue;
        } else if line.starts_with("#[") || (line.ends_with(")]") && !line.contains(';')) {
            // An attribute; one spread over lines ends here and starts at its `#[`.
            let mut attribute = line.to_string();
            while !lines[i].trim_start().starts_with("#[") {
                if i == 0 || at - i > 30 {
                    return (doc, exempt); // not an attribute after all
                }
                i -= 1;
                attribute = format!("{} {attribute}", lines[i].trim());
            }
            let compact: String = attribute.split_whitespace().collect();
            exempt |=
                compact.starts_with("#[doc(hidden)]") || compact.starts_with("#[cfg(doctest)]");
        } else {
            break;
        }
    }
    doc.reverse();
    (doc, exempt)
}

/// Whether `doc` holds a code block that rustdoc compiles as working code: not `ignore`,
/// `text` or `compile_fail` (a `no_run` block counts: it is compiled, and some examples
/// cannot run in a doctest, such as those that need an MPI launcher).
fn has_example(doc: &[String]) -> bool {
    let mut in_block = false;
    let mut found = false;
    for line in doc {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        if !in_block {
            let info = info.trim();
            found |= !info
                .split(',')
                .any(|tag| ["ignore", "text", "compile_fail"].contains(&tag.trim()));
        }
        in_block = !in_block;
    }
    found
}

#[test]
fn every_public_item_has_a_runnable_example() {
    let mut problems = Vec::new();
    let mut allowed_seen = Vec::new();
    let mut checked = 0;
    for (relative, text) in sources() {
        // sys/ is private: the OS layer, wholly internal to the crate.
        if relative.starts_with("sys/") {
            continue;
        }
        // A module hidden as a whole (`fuzzing`: entry points for fuzz/, no stability promise).
        if text.lines().any(|l| l.trim() == "#![doc(hidden)]") {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            // Unit tests sit at the end of a file; nothing in them is public API.
            if line.trim() == "#[cfg(test)]"
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.trim_start().starts_with("mod "))
            {
                break;
            }
            let Some((kind, name)) = public_item(line) else {
                continue;
            };
            if let Some(entry) = NO_EXAMPLE_NEEDED
                .iter()
                .find(|(file, item, _)| *file == relative && *item == name)
            {
                allowed_seen.push(entry);
                continue;
            }
            checked += 1;
            let (doc, exempt) = doc_above(&lines, i);
            if !exempt && !has_example(&doc) {
                let what = if doc.is_empty() {
                    "no doc comment"
                } else {
                    "no example"
                };
                problems.push(format!(
                    "{relative}:{}: pub {kind} {name}: {what}; add a ``` block",
                    i + 1
                ));
            }
        }
    }
    assert!(
        checked > 300,
        "found only {checked} public items: is the scan broken?"
    );
    for entry in NO_EXAMPLE_NEEDED {
        if !allowed_seen.contains(&entry) {
            problems.push(format!(
                "{}: pub {} is gone: remove it from NO_EXAMPLE_NEEDED",
                entry.0, entry.1
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
