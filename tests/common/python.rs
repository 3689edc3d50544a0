//! Running a real CPython from a test: the interoperability tests' one way to do it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one python3 run may take.
pub const LONG: Duration = Duration::from_secs(30);

/// Whether `python3` runs here and can `import module`.
pub fn has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run `python3 -c script args...` with `input` on its standard input (at most [`LONG`]);
/// its standard output, or `None` when python3 is not available. A failing script fails
/// the test with Python's standard error.
pub fn run(script: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = match Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("starting python3: {e}"),
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("writing to python3");
    drop(stdin);
    let finished = super::wait_until(Instant::now() + LONG, || {
        child.try_wait().expect("waiting for python3").is_some()
    });
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 did not finish within {LONG:?}");
    }
    let output = child.wait_with_output().expect("reading python3's output");
    assert!(
        output.status.success(),
        "python3 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Some(output.stdout)
}

/// [`run`] for a script that needs `multiprocessing.shared_memory` and prints text.
pub fn run_shared_memory(script: &str, args: &[&str]) -> Option<String> {
    if !has("multiprocessing.shared_memory") {
        return None;
    }
    let out = run(script, args, b"")?;
    Some(String::from_utf8(out).expect("python3 printed UTF-8"))
}
