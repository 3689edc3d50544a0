//! What reaches the parent's real stdout and stderr: `log_to_stderr`'s format, a child's
//! panic shown exactly once, `prefix_child_output`, and a parent without any logger.
//!
//! Each test re-runs this test binary on one *inner* test (selected with `--exact`, marked by
//! an environment variable) and looks at that process's output. The inner tests do nothing
//! when run directly, so both runners can run everything.

mod common;

use std::process::{Command, Output};

use log::LevelFilter;
use multiproc::{Pool, Process, StartMethod, logging};

const INNER: &str = "MULTIPROC_LOGGING_OUTPUT_INNER";

fn inner() -> bool {
    std::env::var_os(INNER).is_some()
}

/// Run the inner test `name` in a fresh process; its stdout and stderr.
fn run_inner(name: &str) -> (String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert!(
        status.success(),
        "inner test {name} failed:\n{stdout}\n{stderr}"
    );
    (stdout, stderr)
}

fn say(marker: String) {
    log::info!("said {marker}");
}

fn boom(marker: String) {
    panic!("boom {marker}");
}

fn print_lines(_: ()) {
    use std::io::Write;
    println!("one\ntwo");
    eprintln!("err-line");
    print!("partial");
    std::io::stdout().flush().unwrap();
}

fn print_item(x: u32) -> u32 {
    println!("item {x}");
    x
}

fn report_logging(_: ()) -> (usize, bool) {
    log::error!("must go nowhere");
    (
        log::max_level() as usize,
        tracing::dispatcher::has_been_set(),
    )
}

#[test]
fn inner_log_to_stderr() {
    if !inner() {
        return;
    }
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    let child = Process::builder()
        .name("sayer")
        .start_method(StartMethod::Spawn)
        .start(say, "fmt-check".to_string())
        .unwrap();
    println!("child pid {}", child.pid());
    child.join().unwrap();
}

/// `log_to_stderr` labels a child's record `[LEVEL/name (pid N)]`, and the library's own
/// lifecycle events come from `MainProcess`.
#[test]
fn log_to_stderr_labels_records_with_level_name_and_pid() {
    let _g = common::guard();
    let (stdout, stderr) = run_inner("inner_log_to_stderr");
    let pid = stdout
        .lines()
        .find_map(|l| l.split("child pid ").nth(1))
        .expect("the inner test prints the child's pid");
    let line = format!("[INFO/sayer (pid {pid})] said fmt-check");
    assert!(stderr.lines().any(|l| l == line), "{line:?} in\n{stderr}");
    let me = "[INFO/MainProcess (pid ";
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(me) && l.contains("started process 'sayer'")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(me)
            && l.ends_with(&format!("process 'sayer' (pid {pid}) exited with code 0"))),
        "{stderr}"
    );
}

#[test]
fn inner_library_level() {
    if !inner() {
        return;
    }
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    logging::get_logger().set_level(LevelFilter::Warn);
    Process::builder()
        .name("quiet")
        .start(say, "still-shown".to_string())
        .unwrap()
        .join()
        .unwrap();
}

/// `get_logger().set_level` silences the library's events, not the children's records.
#[test]
fn library_level_hides_lifecycle_events_only() {
    let _g = common::guard();
    let (_, stderr) = run_inner("inner_library_level");
    assert!(!stderr.contains("started process"), "{stderr}");
    assert!(!stderr.contains("exited with code"), "{stderr}");
    assert!(stderr.contains("] said still-shown"), "{stderr}");
}

#[test]
fn inner_panic_forwarded() {
    if !inner() {
        return;
    }
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    crash_with_each_method("crasher", "forwarded");
}

/// One child per start method, named `{name}-{method}`, panics with `boom {marker}-{method}`;
/// each join reports the panic.
fn crash_with_each_method(name: &str, marker: &str) {
    for method in [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ] {
        let err = Process::builder()
            .name(format!("{name}-{method}"))
            .start_method(method)
            .start(boom, format!("{marker}-{method}"))
            .unwrap()
            .join()
            .unwrap_err();
        assert!(matches!(err, multiproc::ProcessError::Panicked(_)), "{err}");
    }
}

/// With logging on, a child's panic is one error record naming the child, and it is not
/// also printed by the child.
#[test]
fn panic_is_shown_once_as_a_record_when_logging_is_on() {
    let _g = common::guard();
    let (_, stderr) = run_inner("inner_panic_forwarded");
    for method in ["spawn", "fork", "forkserver"] {
        let marker = format!("boom forwarded-{method}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.ends_with(&marker)).collect();
        assert_eq!(lines.len(), 1, "{marker} in\n{stderr}");
        assert!(
            lines[0].starts_with(&format!("[ERROR/crasher-{method} (pid ")),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("panicked at tests/logging_output.rs:"));
    }
}

#[test]
fn inner_panic_unlogged() {
    if !inner() {
        return;
    }
    crash_with_each_method("lonely", "unlogged");
}

/// Without any logger, the child prints its panic once, naming itself.
#[test]
fn panic_is_shown_once_by_the_child_when_logging_is_off() {
    let _g = common::guard();
    let (_, stderr) = run_inner("inner_panic_unlogged");
    for method in ["spawn", "fork", "forkserver"] {
        let marker = format!("boom unlogged-{method}");
        let shown = stderr.lines().filter(|l| l.ends_with(&marker)).count();
        assert_eq!(shown, 1, "{marker} in\n{stderr}");
        let header = format!("process 'lonely-{method}' (pid ");
        assert_eq!(stderr.matches(&header).count(), 1, "{header} in\n{stderr}");
    }
}

#[test]
fn inner_logging_off() {
    if !inner() {
        return;
    }
    for method in [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ] {
        let child = Process::builder()
            .start_method(method)
            .start(report_logging, ())
            .unwrap();
        let (level, tracing_set) = child.join().unwrap();
        println!("{method}: level {level} tracing {tracing_set}");
    }
}

/// A parent that logs nothing gives its children nothing to install: their `log` level is
/// `Off` and no `tracing` subscriber is set, so a log call costs one comparison.
#[test]
fn children_of_a_parent_without_logger_install_nothing() {
    let _g = common::guard();
    let (stdout, stderr) = run_inner("inner_logging_off");
    for method in ["spawn", "fork", "forkserver"] {
        // (libtest's "test name ... " may precede the first line.)
        let line = format!("{method}: level 0 tracing false");
        assert!(
            stdout.lines().any(|l| l.ends_with(&line)),
            "{line:?} in\n{stdout}"
        );
    }
    assert!(!stderr.contains("must go nowhere"), "{stderr}");
}

#[test]
fn inner_prefixed_output() {
    if !inner() {
        return;
    }
    logging::prefix_child_output(true);
    for method in [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ] {
        Process::builder()
            .name(format!("printer-{method}"))
            .start_method(method)
            .start(print_lines, ())
            .unwrap()
            .join()
            .unwrap();
    }
    let pool = Pool::new(2).unwrap();
    pool.map(print_item, 0..4).unwrap();
    pool.close();
    pool.join().unwrap();
    logging::prefix_child_output(false);
    Process::start(print_item, 99).unwrap().join().unwrap();
}

/// With `prefix_child_output`, each line a child prints comes out whole with its name in
/// front, on the stream it was printed to; a last line without newline is completed; pool
/// workers are covered; once switched off, children print as before.
#[test]
fn prefix_child_output_labels_every_line() {
    let _g = common::guard();
    let (stdout, stderr) = run_inner("inner_prefixed_output");
    for method in ["spawn", "fork", "forkserver"] {
        let name = format!("printer-{method}");
        for text in ["one", "two", "partial"] {
            // (libtest's "test name ... " may precede the first line.)
            let line = format!("[{name}] {text}");
            assert!(
                stdout.lines().any(|l| l.ends_with(&line)),
                "{line:?} in\n{stdout}"
            );
        }
        let line = format!("[{name}] err-line");
        assert!(stderr.lines().any(|l| l == line), "{line:?} in\n{stderr}");
        assert!(!stdout.contains("err-line"), "{stdout}");
    }
    for x in 0..4 {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("[PoolWorker-") && l.ends_with(&format!("] item {x}"))),
            "item {x} in\n{stdout}"
        );
    }
    assert!(stdout.lines().any(|l| l.ends_with("item 99")), "{stdout}");
    assert!(!stdout.contains("] item 99"), "{stdout}");
}
