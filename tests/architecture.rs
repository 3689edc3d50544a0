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
        if relative.starts_with("mpi/") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            if code.contains("::mpi::")
                && !code.contains("crate::mpi::")
                && !code.contains("multiproc::mpi::")
            {
                problems.push(format!("{relative}:{}: MPI called outside src/mpi/", i + 1));
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
