//! `multiproc::logging`: children's `log` records and `tracing` events in the parent's logger
//! (labels, key-values, order, bursts, pool and executor workers, grandchildren), the
//! library's own lifecycle events, panics shown exactly once, zero cost when logging is off,
//! `log_to_stderr`'s format, the library's own level and `prefix_child_output`.
//!
//! Two kinds of tests live here:
//!
//! - **Shared-process tests** look at what the parent's logger received. The logger is global
//!   per process and `cargo test` runs every test as a thread of one process, so a capturing
//!   logger is installed exactly once (through `multiproc::logging::install`, so fork
//!   children forward too) and every test looks only at the records it can recognise: child
//!   names and message markers unique to the test, or pids of its own children.
//! - **Re-executed tests** need a process of their own: what reaches the real stdout and
//!   stderr, a process without any logger, `log_to_stderr`, the library's level,
//!   `prefix_child_output`. The outer test runs this test binary again on one `inner_*` test
//!   (`--exact`, with `MULTIPROC_LOGGING_INNER` set) and checks that process's output. The
//!   inner tests return at once when the variable is not set, so both runners can run
//!   everything.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter};
use multiproc::logging::{self, LoggingError};
use multiproc::{
    Lock, Pool, PoolError, Process, ProcessBuilder, ProcessError, ProcessPoolExecutor, StartMethod,
};

use common::children::{LONG, within};

const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::Fork,
    StartMethod::ForkServer,
];

/// How long a test waits for a record that the library emits from one of its own threads.
const PROMPTLY: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// The capturing logger of the shared process.

/// One record as the parent's logger saw it.
#[derive(Clone, Debug)]
struct Rec {
    level: Level,
    target: String,
    module_path: Option<String>,
    file: Option<String>,
    line: Option<u32>,
    message: String,
    /// Every key-value, in the order the record carried them.
    kvs: Vec<(String, String)>,
}

impl Rec {
    fn kv(&self, key: &str) -> Option<&str> {
        self.kvs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn process_name(&self) -> Option<&str> {
        self.kv("process_name")
    }

    fn pid(&self) -> Option<u32> {
        self.kv("pid").and_then(|p| p.parse().ok())
    }

    /// The keys, sorted.
    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.kvs.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys
    }
}

static RECORDS: Mutex<Vec<Rec>> = Mutex::new(Vec::new());

struct Capture;

struct Kvs<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Kvs<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.to_string(), value.to_string()));
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut kvs = Vec::new();
        let _ = record.key_values().visit(&mut Kvs(&mut kvs));
        let rec = Rec {
            level: record.level(),
            target: record.target().to_string(),
            module_path: record.module_path().map(str::to_string),
            file: record.file().map(str::to_string),
            line: record.line(),
            message: record.args().to_string(),
            kvs,
        };
        RECORDS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(rec);
    }

    fn flush(&self) {}
}

/// A logger that must never receive anything (the second, refused, install).
struct Refused;

impl log::Log for Refused {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        panic!("the refused logger received a record: {}", record.args());
    }

    fn flush(&self) {}
}

/// Install the capturing logger (once per process) at `Trace`.
fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        logging::install(Capture, LevelFilter::Trace)
            .expect("the first install of the capturing logger succeeds");
    });
    assert_eq!(log::max_level(), LevelFilter::Trace);
}

/// The captured records that satisfy `pred`, in the order the logger saw them.
fn records(pred: impl Fn(&Rec) -> bool) -> Vec<Rec> {
    RECORDS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|r| pred(r))
        .cloned()
        .collect()
}

/// The captured records whose message contains `marker`.
fn marked(marker: &str) -> Vec<Rec> {
    records(|r| r.message.contains(marker))
}

/// The library's own records (target `multiproc`) whose message is exactly `message`.
fn library_records(message: &str) -> Vec<Rec> {
    records(|r| r.target == logging::TARGET && r.message == message)
}

/// Wait (at most `PROMPTLY`) until at least one record satisfies `pred`; all of them.
fn wait_for_records(pred: impl Fn(&Rec) -> bool) -> Vec<Rec> {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let found = records(&pred);
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A marker unique in this process: `tag`, the pid and a counter, ended by `#` so that no
/// marker is a part of another.
fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}#",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The message a child's record has in the parent's logger.
fn labelled(name: &str, pid: u32, message: &str) -> String {
    format!("{name} (pid {pid}): {message}")
}

/// Start `f(arg)` in a child named `name` with `method`.
fn start<A, R>(method: StartMethod, name: &str, f: fn(A) -> R, arg: A) -> Process<R>
where
    A: serde::Serialize + serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    ProcessBuilder::new()
        .name(name)
        .start_method(method)
        .start(f, arg)
        .unwrap_or_else(|e| panic!("starting '{name}' with {method}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Running an inner test in a process of its own.

const INNER_ENV: &str = "MULTIPROC_LOGGING_INNER";

/// Whether this process is a re-executed one that runs an inner test.
fn is_inner() -> bool {
    std::env::var_os(INNER_ENV).is_some()
}

/// What an inner test printed.
struct InnerOutput {
    stdout: String,
    stderr: String,
}

impl InnerOutput {
    /// The value of the first stdout line `KEY=value`.
    fn value(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("the inner test printed no {key}=:\n{}", self.stdout))
            .to_string()
    }

    fn both(&self) -> String {
        format!("--- stdout:\n{}\n--- stderr:\n{}", self.stdout, self.stderr)
    }
}

/// Run this test binary on the inner test `name` alone, check that it passed and that the
/// library helpers it started (fork server, resource tracker) ended with it; its output.
fn run_inner(name: &str) -> InnerOutput {
    let exe = std::env::current_exe().expect("the test binary's path");
    let name_ = name.to_string();
    let output = within(2 * LONG, move || {
        Command::new(exe)
            .args(["--exact", &name_, "--nocapture", "--test-threads=1"])
            .env(INNER_ENV, "1")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("running the inner test")
    });
    let inner = InnerOutput {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        output.status.success(),
        "inner test {name} failed ({}):\n{}",
        output.status,
        inner.both()
    );
    assert!(
        inner.stdout.contains("1 passed"),
        "inner test {name} did not run:\n{}",
        inner.both()
    );
    // The inner process's own helpers must not outlive it (they are not in this process's
    // tree any more, so the guard would not see them).
    for line in inner.stdout.lines() {
        let Some(rest) = line.strip_prefix("HELPER ") else {
            continue;
        };
        let mut parts = rest.split(' ');
        let pid: u32 = parts.next().unwrap().parse().unwrap();
        let start_time: u64 = parts.next().unwrap().parse().unwrap();
        assert!(
            common::wait_until(Instant::now() + PROMPTLY, || common::has_ended(
                pid, start_time
            )),
            "helper process {pid} of the inner test {name} outlived it by {PROMPTLY:?}"
        );
    }
    inner
}

/// In an inner test: end the line libtest started ("test name ... ") so the lines the test
/// prints start at the beginning of a line.
fn inner_begins() {
    println!();
    std::io::stdout().flush().unwrap();
}

/// In an inner test, at its end: name the library's helper processes (see `run_inner`).
fn inner_ends() {
    for pid in [
        multiproc::forkserver_pid(),
        multiproc::resource_tracker_pid(),
    ]
    .into_iter()
    .flatten()
    {
        let stat = common::proc_stat(pid).expect("a helper of this process is alive");
        println!("HELPER {pid} {}", stat.start_time);
    }
    std::io::stdout().flush().unwrap();
}

/// The lines of `text` that contain `needle`.
fn lines_with<'t>(text: &'t str, needle: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

// ---------------------------------------------------------------------------------------
// Tasks run by the children of these tests.

/// Logs three records; returns the line of the first one.
fn hello(marker: String) -> u32 {
    let at = line!() + 1;
    log::info!(target: "logtest", "hello {marker}");
    log::warn!(target: "logtest", answer = 42; "kv {marker}");
    log::trace!(target: "logtest", "trace {marker}");
    at
}

/// Emits one `tracing` event inside an entered span; returns the event's line.
fn traced(marker: String) -> u32 {
    let span = tracing::info_span!("outer", n = 1);
    let _entered = span.enter();
    let at = line!() + 1;
    tracing::info!(answer = 42, "traced {marker}");
    at
}

fn log_item((marker, x): (String, u32)) -> u32 {
    log::info!(target: "logtest", "{marker} item {x}");
    x * 2
}

fn burst((marker, child, count): (String, u32, u32)) {
    for seq in 0..count {
        log::info!(target: "burst", "{marker} {child} {seq}");
    }
}

const THREADS: u32 = 4;
const PER_THREAD: u32 = 2_000;

fn thread_message(marker: &str, t: u32, i: u32) -> String {
    format!("{marker} t{t} n{i} line1\n{marker} t{t} n{i} line2")
}

fn threads_logging(marker: String) {
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let marker = &marker;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    log::info!(target: "threads", "{}", thread_message(marker, t, i));
                }
            });
        }
    });
}

fn leaf(marker: String) {
    log::info!(target: "logtest", "leaf {marker}");
}

/// Starts three unnamed grandchildren that log (by spawn, fork and forkserver); their names
/// and pids.
fn middle(marker: String) -> Vec<(String, u32)> {
    let spawned = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .start(leaf, format!("{marker} spawned"))
        .expect("starting a spawned grandchild");
    let forked_marker = format!("{marker} forked");
    let forked = ProcessBuilder::new()
        .fork(move || leaf(forked_marker))
        .expect("starting a forked grandchild");
    let served = ProcessBuilder::new()
        .start_method(StartMethod::ForkServer)
        .start(leaf, format!("{marker} served"))
        .expect("starting a fork server grandchild");
    let ids = vec![
        (spawned.name().to_string(), spawned.pid()),
        (forked.name().to_string(), forked.pid()),
        (served.name().to_string(), served.pid()),
    ];
    spawned.join().expect("the spawned grandchild");
    forked.join().expect("the forked grandchild");
    served.join().expect("the fork server grandchild");
    ids
}

fn nothing(_: ()) {}

fn sleep_long(_: ()) {
    std::thread::sleep(LONG);
}

fn abort_without_core(_: ()) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    std::process::abort();
}

fn panic_with(message: String) {
    panic!("{message}");
}

fn panic_in_pool(message: String) -> u32 {
    panic!("{message}");
}

// ---------------------------------------------------------------------------------------
// Records in the parent's logger (shared process).

/// Each start method: a child's records reach the parent's logger before `join` returns
/// (no explicit flush), with their level, target, module, file and line, the message
/// labelled `name (pid N): ...`, the `process_name` and `pid` key-values, and the record's
/// own key-values rendered as text (`answer = 42` arrives as `"42"`).
#[test]
fn records_arrive_labelled_for_every_start_method() {
    let _g = common::guard();
    capture();
    for method in METHODS {
        let marker = unique(&format!("hello-{method}"));
        let name = unique(&format!("name-hello-{method}"));
        let child = start(method, &name, hello, marker.clone());
        let pid = child.pid();
        let at = child.join().unwrap_or_else(|e| panic!("{method}: {e}"));

        let got = marked(&marker);
        let expected = [
            (Level::Info, format!("hello {marker}"), at),
            (Level::Warn, format!("kv {marker}"), at + 1),
            (Level::Trace, format!("trace {marker}"), at + 2),
        ];
        assert_eq!(got.len(), 3, "{method}: records {got:#?}");
        for (rec, (level, message, line)) in got.iter().zip(expected) {
            assert_eq!(rec.level, level, "{method}: {rec:?}");
            assert_eq!(rec.target, "logtest", "{method}: {rec:?}");
            assert_eq!(rec.message, labelled(&name, pid, &message), "{method}");
            assert_eq!(rec.process_name(), Some(name.as_str()), "{method}: {rec:?}");
            assert_eq!(rec.pid(), Some(pid), "{method}: {rec:?}");
            assert_eq!(rec.module_path.as_deref(), Some(module_path!()), "{method}");
            assert_eq!(rec.file.as_deref(), Some(file!()), "{method}");
            assert_eq!(rec.line, Some(line), "{method}: {rec:?}");
        }
        assert_eq!(got[0].keys(), ["pid", "process_name"], "{method}");
        assert_eq!(got[1].keys(), ["answer", "pid", "process_name"], "{method}");
        assert_eq!(got[1].kv("answer"), Some("42"), "{method}");
        assert_eq!(got[1].kv("pid"), Some(pid.to_string().as_str()), "{method}");
    }
}

/// Each start method: a child's `tracing` event reaches the parent's `log` logger (the
/// parent has no subscriber), with the entered span's scope in front of the message
/// (`outer{n=1}: traced ...`), its level, target, file and line, the labels, and its field
/// `answer = 42` as the key-value `"42"`.
#[test]
fn tracing_events_arrive_with_span_scope_and_fields() {
    let _g = common::guard();
    capture();
    assert!(!tracing::dispatcher::has_been_set());
    for method in METHODS {
        let marker = unique(&format!("traced-{method}"));
        let name = unique(&format!("name-traced-{method}"));
        let child = start(method, &name, traced, marker.clone());
        let pid = child.pid();
        let at = child.join().unwrap_or_else(|e| panic!("{method}: {e}"));

        let got = marked(&marker);
        assert_eq!(got.len(), 1, "{method}: records {got:#?}");
        let rec = &got[0];
        assert_eq!(
            rec.message,
            labelled(&name, pid, &format!("outer{{n=1}}: traced {marker}")),
            "{method}"
        );
        assert_eq!(rec.level, Level::Info, "{method}");
        assert_eq!(rec.target, module_path!(), "{method}");
        assert_eq!(rec.file.as_deref(), Some(file!()), "{method}");
        assert_eq!(rec.line, Some(at), "{method}");
        assert_eq!(rec.process_name(), Some(name.as_str()), "{method}");
        assert_eq!(rec.pid(), Some(pid), "{method}");
        assert_eq!(rec.kv("answer"), Some("42"), "{method}: {rec:?}");
        assert_eq!(rec.keys(), ["answer", "pid", "process_name"], "{method}");
    }
}

/// Check that every item of `marker` has exactly one record, from a worker whose name
/// starts with `prefix` and whose pid is one of `pids` (not the parent's).
fn assert_one_record_per_item(marker: &str, items: u32, prefix: &str, pids: &[u32]) {
    let got = marked(marker);
    assert_eq!(got.len(), items as usize, "records {got:#?}");
    let mut count: HashMap<u32, usize> = HashMap::new();
    for rec in &got {
        let name = rec.process_name().expect("a process_name key-value");
        let pid = rec.pid().expect("a pid key-value");
        assert!(name.starts_with(prefix), "{rec:?}");
        assert_ne!(pid, std::process::id(), "{rec:?}");
        assert!(pids.contains(&pid), "pid {pid} is not a worker's {pids:?}");
        let (_, item) = rec
            .message
            .rsplit_once(" item ")
            .expect("the message names the item");
        let item: u32 = item.parse().unwrap();
        assert_eq!(
            rec.message,
            labelled(name, pid, &format!("{marker} item {item}"))
        );
        *count.entry(item).or_default() += 1;
    }
    for item in 0..items {
        assert_eq!(count.get(&item), Some(&1), "records of item {item}");
    }
}

/// A pool's workers forward what their tasks log: after `map` and `logging::flush`, every
/// item has exactly one record, labelled with a `PoolWorker-N` name and a worker's pid.
#[test]
fn pool_workers_records_are_labelled() {
    let _g = common::guard();
    capture();
    const ITEMS: u32 = 40;
    let marker = unique("pool");
    let pool = Pool::builder().processes(2).build().unwrap();
    let pids = pool.pids();
    let items: Vec<(String, u32)> = (0..ITEMS).map(|x| (marker.clone(), x)).collect();
    let doubled = pool.chunksize(3).map(log_item, items).unwrap();
    assert_eq!(doubled, (0..ITEMS).map(|x| x * 2).collect::<Vec<_>>());
    logging::flush();
    assert_one_record_per_item(&marker, ITEMS, "PoolWorker-", &pids);
    assert_eq!(pool.pids(), pids, "no worker was replaced");
    pool.close();
    pool.join().unwrap();
}

/// A `ProcessPoolExecutor`'s workers forward what their tasks log: after `submit` +
/// `result` and `logging::flush`, every item has exactly one record, labelled with a
/// `ProcessPoolExecutorWorker-N` name and a worker's pid.
#[test]
fn executor_workers_records_are_labelled() {
    let _g = common::guard();
    capture();
    const ITEMS: u32 = 20;
    let marker = unique("executor");
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let pids = executor.pids();
    let futures: Vec<_> = (0..ITEMS)
        .map(|x| executor.submit(log_item, (marker.clone(), x)).unwrap())
        .collect();
    for (x, future) in (0..ITEMS).zip(futures) {
        assert_eq!(future.result().unwrap(), x * 2);
    }
    logging::flush();
    assert_one_record_per_item(&marker, ITEMS, "ProcessPoolExecutorWorker-", &pids);
    assert_eq!(executor.pids(), pids, "no worker was replaced");
    executor.shutdown(true, false);
}

/// 4 children (2 spawn, 2 forkserver) log 25 000 records each as fast as they can while
/// the parent's logger stalls for a while: after joining them all, every record is there
/// exactly once, in the order each child wrote them (100 000 in all), though the ring holds
/// far fewer at once and stays full longer than a writer's single wait for room.
#[test]
fn a_burst_of_100k_records_loses_nothing_and_keeps_order() {
    let _g = common::guard();
    capture();
    const PER_CHILD: u32 = 25_000;
    const STALL: Duration = Duration::from_millis(1_500);
    let marker = unique("burst");
    let children: Vec<(u32, Process<()>)> = [
        StartMethod::Spawn,
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ]
    .into_iter()
    .zip(0u32..)
    .map(|(method, i)| {
        let name = format!("burst-{i}-{marker}");
        (
            i,
            start(method, &name, burst, (marker.clone(), i, PER_CHILD)),
        )
    })
    .collect();
    let started = Instant::now();
    // The parent's logger stalls for a while (its lock is held), so the children fill the
    // ring (1 MiB, a tenth of the burst) and must wait for room rather than drop records.
    let stalled = RECORDS.lock().unwrap_or_else(PoisonError::into_inner);
    std::thread::sleep(STALL);
    drop(stalled);
    let mut ids = Vec::new();
    for (i, child) in children {
        ids.push((i, child.name().to_string(), child.pid()));
        child.join().unwrap();
    }
    eprintln!("burst: joined after {:?}", started.elapsed());

    let prefix = format!("{marker} ");
    let got = records(|r| r.target == "burst" && r.message.contains(&prefix));
    assert_eq!(got.len(), 4 * PER_CHILD as usize);
    for (i, name, pid) in ids {
        let mine: Vec<&Rec> = got
            .iter()
            .filter(|r| r.process_name() == Some(name.as_str()))
            .collect();
        let seqs: Vec<u32> = mine
            .iter()
            .map(|r| {
                assert_eq!(r.pid(), Some(pid), "{r:?}");
                let body = r
                    .message
                    .strip_prefix(&labelled(&name, pid, &format!("{marker} {i} ")))
                    .unwrap_or_else(|| panic!("record of another child? {r:?}"));
                body.parse().unwrap()
            })
            .collect();
        assert_eq!(seqs.len(), PER_CHILD as usize, "records of {name}");
        if let Some(at) = (0..PER_CHILD).position(|s| seqs[s as usize] != s) {
            panic!(
                "{name}: record {at} is seq {} (around it: {:?})",
                seqs[at],
                &seqs[at.saturating_sub(3)..(at + 3).min(seqs.len())]
            );
        }
    }
}

/// A child with 4 threads each logging 2 000 two-line messages (spawn and fork): every
/// message arrives whole, exactly as written, once, and in order per thread.
#[test]
fn a_multithreaded_childs_records_arrive_whole_and_in_order_per_thread() {
    let _g = common::guard();
    capture();
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let marker = unique(&format!("threads-{method}"));
        let name = format!("threads-{method}-{marker}");
        let child = start(method, &name, threads_logging, marker.clone());
        let pid = child.pid();
        child.join().unwrap();

        let got = records(|r| r.target == "threads" && r.message.contains(&marker));
        assert_eq!(got.len(), (THREADS * PER_THREAD) as usize, "{method}");
        let mut next = [0u32; THREADS as usize];
        for rec in &got {
            // "<label><marker> t<t> n<i> line1\n..."
            let after = rec
                .message
                .split_once(&format!("{marker} t"))
                .unwrap_or_else(|| panic!("{method}: unexpected {rec:?}"))
                .1;
            let t: u32 = after.split(' ').next().unwrap().parse().unwrap();
            let i = next[t as usize];
            assert_eq!(
                rec.message,
                labelled(&name, pid, &thread_message(&marker, t, i)),
                "{method}: thread {t} message {i} (out of order, cut or mixed)"
            );
            assert_eq!(rec.pid(), Some(pid), "{method}");
            next[t as usize] += 1;
        }
        assert_eq!(next, [PER_THREAD; THREADS as usize], "{method}");
    }
}

/// A child (spawn) starts its own unnamed children (by spawn, fork and forkserver) which
/// log: their records reach the root's logger, labelled with the grandchildren's default
/// names (`Process-N:1`, `Process-N:2`, `Process-N:3`) and pids, not the middle child's.
#[test]
fn grandchildren_records_reach_the_root_labelled() {
    let _g = common::guard();
    capture();
    let marker = unique("grand");
    let name = format!("middle-{marker}");
    let child = start(StartMethod::Spawn, &name, middle, marker.clone());
    let middle_pid = child.pid();
    let grandchildren = child.join().unwrap();
    assert_eq!(grandchildren.len(), 3);
    for (((gname, gpid), how), n) in grandchildren
        .iter()
        .zip(["spawned", "forked", "served"])
        .zip(1..)
    {
        let (first, second) = gname
            .strip_prefix("Process-")
            .and_then(|rest| rest.split_once(':'))
            .unwrap_or_else(|| panic!("default name of a grandchild: {gname}"));
        assert!(first.parse::<u32>().is_ok(), "{gname}");
        assert_eq!(second, n.to_string(), "{gname}");
        assert_ne!(*gpid, middle_pid);
        let text = format!("leaf {marker} {how}");
        let got = marked(&text);
        assert_eq!(got.len(), 1, "{how}: {got:#?}");
        assert_eq!(got[0].message, labelled(gname, *gpid, &text), "{how}");
        assert_eq!(got[0].process_name(), Some(gname.as_str()), "{how}");
        assert_eq!(got[0].pid(), Some(*gpid), "{how}");
        assert_eq!(got[0].level, Level::Info);
        assert_eq!(got[0].target, "logtest");
    }
    // The middle child's own lifecycle events name its children.
    let started = records(|r| {
        r.target == logging::TARGET
            && r.process_name() == Some(name.as_str())
            && r.message.contains("started process 'Process-")
    });
    assert_eq!(started.len(), 3, "{started:#?}");
}

// ---------------------------------------------------------------------------------------
// The library's lifecycle events (shared process).

/// Each start method: starting a child logs "started process 'X' (pid N) with METHOD" and
/// its end "process 'X' (pid N) exited with code 0", once each, in that order, at Info under
/// the target `multiproc`.
#[test]
fn lifecycle_started_and_exited() {
    let _g = common::guard();
    capture();
    for method in METHODS {
        let name = unique(&format!("life-{method}"));
        let child = start(method, &name, nothing, ());
        let pid = child.pid();
        child.join().unwrap();
        let started = format!("started process '{name}' (pid {pid}) with {method}");
        let exited = format!("process '{name}' (pid {pid}) exited with code 0");
        let got = records(|r| r.target == logging::TARGET && r.message.contains(&name));
        let messages: Vec<&str> = got.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, [started.as_str(), exited.as_str()], "{method}");
        assert!(got.iter().all(|r| r.level == Level::Info), "{got:#?}");
    }
}

/// Each start method: a child killed with `kill()` gives "process 'X' (pid N) was killed by
/// SIGKILL (exit code -9)", once.
#[test]
fn lifecycle_killed_by_sigkill() {
    let _g = common::guard();
    capture();
    for method in METHODS {
        let name = unique(&format!("killed-{method}"));
        let child = start(method, &name, sleep_long, ());
        let pid = child.pid();
        child.kill().unwrap();
        match child.join() {
            Err(ProcessError::Signaled { signal, .. }) => assert_eq!(signal, libc::SIGKILL),
            other => panic!("{method}: expected a death by SIGKILL, got {other:?}"),
        }
        let message = format!("process '{name}' (pid {pid}) was killed by SIGKILL (exit code -9)");
        let got = library_records(&message);
        assert_eq!(got.len(), 1, "{method}: {message:?} in {got:#?}");
        assert_eq!(got[0].level, Level::Info);
        let ended = records(|r| {
            r.target == logging::TARGET
                && r.message.contains("exited with code")
                && r.message.contains(&name)
        });
        assert!(ended.is_empty(), "{ended:#?}");
    }
}

/// A pool worker that aborts in a task is replaced, and the library says so at Warn:
/// "pool worker 'X' (pid N) <cause>; replaced by 'Y' (pid M)", naming the new worker.
#[test]
fn lifecycle_pool_worker_replaced() {
    let _g = common::guard();
    capture();
    let pool = Pool::builder().processes(1).build().unwrap();
    let (name, pid, cause) = match pool.apply(abort_without_core, ()) {
        Err(PoolError::WorkerDied {
            name, pid, cause, ..
        }) => (name, pid, cause),
        other => panic!("expected WorkerDied, got {other:?}"),
    };
    let prefix = format!("pool worker '{name}' (pid {pid}) ");
    let got = wait_for_records(|r| r.target == logging::TARGET && r.message.starts_with(&prefix));
    assert_eq!(got.len(), 1, "{got:#?}");
    let rec = &got[0];
    assert_eq!(rec.level, Level::Warn, "{rec:?}");
    let replaced = rec
        .message
        .split_once("; replaced by '")
        .unwrap_or_else(|| panic!("not replaced? {rec:?}"))
        .1;
    let (new_name, new_pid) = replaced
        .strip_suffix(')')
        .and_then(|r| r.split_once("' (pid "))
        .unwrap_or_else(|| panic!("{rec:?}"));
    let new_pid: u32 = new_pid.parse().unwrap();
    assert_eq!(
        rec.message,
        format!(
            "pool worker '{name}' (pid {pid}) {cause}; replaced by '{new_name}' (pid {new_pid})"
        )
    );
    assert!(
        new_name.starts_with("PoolWorker-") && new_name != name,
        "{rec:?}"
    );
    assert_ne!(new_pid, pid);
    assert_eq!(pool.pids(), [new_pid]);
    pool.close();
    pool.join().unwrap();
}

/// A pool task that panics gives "a task failed in pool worker 'X' (pid N): <message>" at
/// Warn, once, with the panic message.
#[test]
fn lifecycle_pool_task_failed() {
    let _g = common::guard();
    capture();
    let marker = unique("pool-panic");
    let pool = Pool::new(1).unwrap();
    let remote = match pool.apply(panic_in_pool, format!("deliberate {marker}")) {
        Err(PoolError::Panicked(remote)) => remote,
        other => panic!("expected Panicked, got {other:?}"),
    };
    assert_eq!(remote.message, format!("deliberate {marker}"));
    let message = format!(
        "a task failed in pool worker '{}' (pid {}): deliberate {marker}",
        remote.process_name, remote.pid
    );
    let got = wait_for_records(|r| r.target == logging::TARGET && r.message == message);
    assert_eq!(got.len(), 1, "{message:?} in {:#?}", marked(&marker));
    assert_eq!(got[0].level, Level::Warn);
    assert!(remote.process_name.starts_with("PoolWorker-"));
    pool.close();
    pool.join().unwrap();
}

/// A fork child takes a `Lock` and ends without releasing it: the parent's next acquire gets
/// `OwnerDied`, and the library warns "the owner of a lock (pid N) died holding it", naming
/// the child.
#[test]
fn lifecycle_lock_owner_died() {
    let _g = common::guard();
    capture();
    let lock = Lock::new().unwrap();
    let held = lock.clone();
    let child = ProcessBuilder::new()
        .name(unique("lock-owner"))
        .fork(move || {
            std::mem::forget(held.acquire().expect("the child takes the lock"));
        })
        .unwrap();
    let pid = child.pid();
    child.join().unwrap();
    let guard = lock
        .acquire_timeout(LONG)
        .expect("acquire")
        .expect("the lock");
    assert!(guard.owner_died(), "expected the owner-died notice");
    drop(guard);
    let message = format!(
        "the owner of a lock (pid {pid}) died holding it; the lock was recovered and the data \
         it guards may be inconsistent"
    );
    let got = library_records(&message);
    assert_eq!(
        got.len(),
        1,
        "{message:?} in {:#?}",
        records(|r| r.message.contains("died holding it"))
    );
    assert_eq!(got[0].level, Level::Warn);
    drop(
        lock.acquire_timeout(LONG)
            .expect("an ordinary lock again")
            .expect("the lock"),
    );
}

// ---------------------------------------------------------------------------------------
// Panics.

/// Each start method, logging on: a child's panic is one ERROR record under the target
/// `multiproc`, labelled with the child, "panicked at FILE:LINE:COL: MESSAGE" (the location
/// `join` reports), and `join` returns `ProcessError::Panicked` with the message.
#[test]
fn panic_is_one_error_record_when_forwarding() {
    let _g = common::guard();
    capture();
    for method in METHODS {
        let marker = unique(&format!("boom-{method}"));
        let name = format!("crasher-{marker}");
        let child = start(method, &name, panic_with, format!("boom {marker}"));
        let pid = child.pid();
        let remote = match child.join() {
            Err(ProcessError::Panicked(remote)) => remote,
            other => panic!("{method}: expected Panicked, got {other:?}"),
        };
        assert_eq!(remote.message, format!("boom {marker}"));
        assert_eq!(
            (remote.process_name.as_str(), remote.pid),
            (name.as_str(), pid)
        );
        let location = remote.location.expect("a location");
        assert_eq!(location.file, file!());

        let got = marked(&format!("boom {marker}"));
        assert_eq!(got.len(), 1, "{method}: {got:#?}");
        let rec = &got[0];
        assert_eq!(rec.level, Level::Error, "{method}");
        assert_eq!(rec.target, logging::TARGET, "{method}");
        assert_eq!(rec.process_name(), Some(name.as_str()), "{method}");
        assert_eq!(rec.pid(), Some(pid), "{method}");
        let expected = labelled(
            &name,
            pid,
            &format!("panicked at {location}: boom {marker}"),
        );
        assert!(
            rec.message == expected
                || rec
                    .message
                    .starts_with(&format!("{expected}\nstack backtrace:\n")),
            "{method}: {:?}\nexpected {expected:?}",
            rec.message
        );
    }
}

/// Inner part of `panic_is_shown_once_on_stderr_with_log_to_stderr` (does nothing unless
/// re-executed): `log_to_stderr(Info)`, then a crasher per start method; prints their pids
/// and panic locations, never the panic messages.
#[test]
fn inner_panic_with_log_to_stderr() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    crash_each_method("boom");
    inner_ends();
}

/// A crasher per start method (`crasher-METHOD`), panicking with `TAG-METHOD-once`;
/// prints each one's pid and panic location, never the panic message.
fn crash_each_method(tag: &str) {
    for method in METHODS {
        let name = format!("crasher-{method}");
        let child = start(method, &name, panic_with, format!("{tag}-{method}-once"));
        println!("PID_{method}={}", child.pid());
        match child.join() {
            Err(ProcessError::Panicked(remote)) => {
                println!("LOC_{method}={}", remote.location.expect("a location"))
            }
            Err(_) => panic!("{method}: another error than Panicked"),
            Ok(()) => panic!("{method}: the child returned"),
        }
    }
}

/// Each start method, with `log_to_stderr(Info)` in a process of its own: the panic's
/// message appears exactly once in that process's output, on the line
/// `[ERROR/crasher-METHOD (pid N)] panicked at FILE:LINE:COL: MESSAGE`.
#[test]
fn panic_is_shown_once_on_stderr_with_log_to_stderr() {
    let _g = common::guard();
    let out = run_inner("inner_panic_with_log_to_stderr");
    for method in METHODS {
        let message = format!("boom-{method}-once");
        let pid = out.value(&format!("PID_{method}"));
        let location = out.value(&format!("LOC_{method}"));
        assert_eq!(
            out.stdout.matches(&message).count() + out.stderr.matches(&message).count(),
            1,
            "{method}: {message:?} not exactly once:\n{}",
            out.both()
        );
        let line =
            format!("[ERROR/crasher-{method} (pid {pid})] panicked at {location}: {message}");
        assert_eq!(
            lines_with(&out.stderr, &message),
            [line.as_str()],
            "{}",
            out.both()
        );
    }
}

/// Inner part of `panic_is_shown_once_by_the_child_without_logging` (does nothing unless
/// re-executed): no logger at all, a crasher per start method; prints their pids and panic
/// locations, never the panic messages.
#[test]
fn inner_panic_without_logging() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    assert_eq!(log::max_level(), LevelFilter::Off);
    crash_each_method("unlogged");
    inner_ends();
}

/// Each start method, in a process without any logger: the child shows its panic itself,
/// exactly once, on its stderr as "process 'NAME' (pid N) panicked at FILE:LINE:COL:"
/// followed by the message.
#[test]
fn panic_is_shown_once_by_the_child_without_logging() {
    let _g = common::guard();
    let out = run_inner("inner_panic_without_logging");
    for method in METHODS {
        let message = format!("unlogged-{method}-once");
        let pid = out.value(&format!("PID_{method}"));
        let location = out.value(&format!("LOC_{method}"));
        assert_eq!(
            out.stdout.matches(&message).count() + out.stderr.matches(&message).count(),
            1,
            "{method}: {message:?} not exactly once:\n{}",
            out.both()
        );
        let header = format!("process 'crasher-{method}' (pid {pid}) panicked at {location}:");
        let lines: Vec<&str> = out.stderr.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("{method}: no line {header:?}:\n{}", out.both()));
        assert_eq!(lines.get(at + 1), Some(&message.as_str()), "{}", out.both());
        assert_eq!(
            lines_with(&out.stderr, &format!("(pid {pid})")).len(),
            1,
            "{method}: the child's pid on more than one line:\n{}",
            out.both()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Logging off, log_to_stderr, the library's level, prefixing (each in a process of its own).

/// What a child sees of logging: `log`'s max level and whether a `tracing` dispatcher was
/// set. It also logs an error, which must go nowhere.
fn logging_state(_: ()) -> (usize, bool) {
    log::error!("must-go-nowhere");
    tracing::error!("must-go-nowhere-either");
    (
        log::max_level() as usize,
        tracing::dispatcher::has_been_set(),
    )
}

/// The names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect()
}

/// Inner part of `logging_off_children_install_nothing` (does nothing unless re-executed):
/// no logger, no subscriber; prints what each child saw and this process's threads.
#[test]
fn inner_logging_off() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    assert_eq!(log::max_level(), LevelFilter::Off);
    assert!(!tracing::dispatcher::has_been_set());
    for method in METHODS {
        let child = start(method, &format!("quiet-{method}"), logging_state, ());
        let (level, tracing_set) = child.join().unwrap();
        println!("STATE_{method}={level} {tracing_set}");
    }
    println!("THREADS={}", thread_names().join(","));
    inner_ends();
}

/// Each start method, in a process without logger or subscriber: children install nothing
/// (their `log` max level is `Off`, no `tracing` dispatcher is set), what they log goes
/// nowhere, and the parent has no log drain thread.
#[test]
fn logging_off_children_install_nothing() {
    let _g = common::guard();
    let out = run_inner("inner_logging_off");
    for method in METHODS {
        assert_eq!(
            out.value(&format!("STATE_{method}")),
            format!("{} false", LevelFilter::Off as usize),
            "{method}"
        );
    }
    let threads = out.value("THREADS");
    assert!(
        !threads.split(',').any(|t| t == "multiproc-log"),
        "a log drain thread was started: {threads}"
    );
    assert!(!out.stderr.contains("must-go-nowhere"), "{}", out.both());
    assert!(!out.stdout.contains("must-go-nowhere"), "{}", out.both());
}

fn say(text: String) {
    log::info!("{text}");
}

/// Inner part of `log_to_stderr_format` (does nothing unless re-executed):
/// `log_to_stderr(Info)`, a child per start method logs "fmt-check"; prints the pids.
#[test]
fn inner_log_to_stderr_format() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    println!("ME={}", std::process::id());
    for method in METHODS {
        let child = start(
            method,
            &format!("fmt-{method}"),
            say,
            "fmt-check".to_string(),
        );
        println!("PID_{method}={}", child.pid());
        child.join().unwrap();
    }
    inner_ends();
}

/// `log_to_stderr(Info)`, each start method: a child's record is the line
/// `[INFO/fmt-METHOD (pid N)] fmt-check`, exactly once, and the library's own events come
/// from the parent, `[INFO/MainProcess (pid P)] started process 'fmt-METHOD' (pid N) with
/// METHOD` and `... exited with code 0`.
#[test]
fn log_to_stderr_format() {
    let _g = common::guard();
    let out = run_inner("inner_log_to_stderr_format");
    let me = out.value("ME");
    for method in METHODS {
        let pid = out.value(&format!("PID_{method}"));
        let own = format!("[INFO/fmt-{method} (pid {pid})] fmt-check");
        assert_eq!(
            lines_with(&out.stderr, &format!("(pid {pid})] fmt-check")),
            [own.as_str()],
            "{method}:\n{}",
            out.both()
        );
        let started = format!(
            "[INFO/MainProcess (pid {me})] started process 'fmt-{method}' (pid {pid}) with {method}"
        );
        let exited = format!(
            "[INFO/MainProcess (pid {me})] process 'fmt-{method}' (pid {pid}) exited with code 0"
        );
        let about: Vec<&str> = lines_with(&out.stderr, &format!("'fmt-{method}' (pid {pid})"));
        assert_eq!(about, [started.as_str(), exited.as_str()], "{}", out.both());
    }
}

/// Inner part of `fork_as_logging_starts_leaves_no_child_asleep` (does nothing unless
/// re-executed): in a fresh process, `log_to_stderr(Info)` starts the drain thread, and two
/// fork children start at once and log a burst each.
#[test]
fn inner_fork_as_logging_starts() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    let children: Vec<_> = (0..2)
        .map(|c| {
            let arg = ("early-burst".to_string(), c, 200);
            start(StartMethod::Fork, &format!("early-{c}"), burst, arg)
        })
        .collect();
    for child in children {
        let pid = child.pid();
        assert!(
            child.join_timeout(LONG).unwrap(),
            "fork child {pid} never finished"
        );
    }
    inner_ends();
}

/// A process forked while another thread of the parent was computing one of the library's
/// lazily initialized values (here: the log drain thread starting to wait, the first use of
/// the polling policy) used to inherit that value half-initialized and sleep forever on its
/// first use. Fresh processes, each forking two children as logging starts.
#[test]
fn fork_as_logging_starts_leaves_no_child_asleep() {
    let _g = common::guard();
    for _ in 0..20 {
        let out = run_inner("inner_fork_as_logging_starts");
        assert_eq!(
            lines_with(&out.stderr, "early-burst").len(),
            400,
            "{}",
            out.both()
        );
    }
}

/// Inner part of `library_level_off_hides_only_the_library_events` (does nothing unless
/// re-executed): `log_to_stderr(Info)`, the library's level `Off`, a child per start method
/// logs a record of its own.
#[test]
fn inner_library_level_off() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    logging::log_to_stderr(LevelFilter::Info).unwrap();
    let library = logging::get_logger();
    assert_eq!(library.target(), logging::TARGET);
    assert_eq!(library.level(), LevelFilter::Trace);
    assert!(library.enabled(Level::Info));
    library.set_level(LevelFilter::Off);
    assert_eq!(library.level(), LevelFilter::Off);
    assert!(!library.enabled(Level::Error));
    for method in METHODS {
        let child = start(
            method,
            &format!("own-{method}"),
            say,
            format!("own-record-{method}"),
        );
        println!("PID_{method}={}", child.pid());
        child.join().unwrap();
    }
    inner_ends();
}

/// `get_logger().set_level(Off)` with `log_to_stderr(Info)`: none of the library's own
/// events (no "started process", no "exited"), but the children's own records still appear.
#[test]
fn library_level_off_hides_only_the_library_events() {
    let _g = common::guard();
    let out = run_inner("inner_library_level_off");
    for method in METHODS {
        let pid = out.value(&format!("PID_{method}"));
        let own = format!("[INFO/own-{method} (pid {pid})] own-record-{method}");
        assert!(
            out.stderr.lines().any(|l| l == own),
            "{own:?} missing:\n{}",
            out.both()
        );
    }
    assert!(!out.stderr.contains("started process"), "{}", out.both());
    assert!(!out.stderr.contains("exited with code"), "{}", out.both());
    assert!(!out.stderr.contains("MainProcess"), "{}", out.both());
}

fn print_lines(_: ()) {
    println!("one\ntwo");
    eprintln!("err-line");
    print!("partial");
    std::io::stdout().flush().unwrap();
}

fn print_item(x: u32) -> u32 {
    println!("pool-item {x}");
    x
}

/// Inner part of `prefix_child_output_labels_every_line` (does nothing unless re-executed):
/// prefixing on, a printer per start method, then a pool whose tasks print; "DONE" once
/// everything was joined.
#[test]
fn inner_prefix_child_output() {
    let _g = common::guard();
    if !is_inner() {
        return;
    }
    inner_begins();
    logging::prefix_child_output(true);
    for (method, name) in [
        (StartMethod::Spawn, "printer"),
        (StartMethod::Fork, "printer-fork"),
        (StartMethod::ForkServer, "printer-forkserver"),
    ] {
        start(method, name, print_lines, ()).join().unwrap();
    }
    let pool = Pool::new(1).unwrap();
    assert_eq!(pool.chunksize(1).map(print_item, [1, 2]).unwrap(), [1, 2]);
    logging::flush();
    pool.close();
    pool.join().unwrap();
    logging::prefix_child_output(false);
    println!("DONE");
    inner_ends();
}

/// `prefix_child_output(true)`, each start method: a child's stdout lines reach the parent's
/// stdout as `[name] line` (an unfinished last line too), its stderr lines the parent's
/// stderr; a pool worker's prints are prefixed `[PoolWorker-N]`. All before `join` returns.
#[test]
fn prefix_child_output_labels_every_line() {
    let _g = common::guard();
    let out = run_inner("inner_prefix_child_output");
    let before_done: Vec<&str> = out.stdout.lines().take_while(|l| *l != "DONE").collect();
    for name in ["printer", "printer-fork", "printer-forkserver"] {
        let label = format!("[{name}] ");
        let stdout: Vec<&str> = before_done
            .iter()
            .copied()
            .filter(|l| l.starts_with(&label))
            .collect();
        let expected: Vec<String> = ["one", "two", "partial"]
            .iter()
            .map(|l| format!("{label}{l}"))
            .collect();
        assert_eq!(stdout, expected, "{name}:\n{}", out.both());
        let stderr: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with(&label))
            .collect();
        assert_eq!(
            stderr,
            [format!("{label}err-line")],
            "{name}:\n{}",
            out.both()
        );
    }
    for x in [1, 2] {
        let printed = lines_with(&out.stdout, &format!("pool-item {x}"));
        assert_eq!(printed.len(), 1, "{}", out.both());
        let worker = printed[0]
            .strip_suffix(&format!("] pool-item {x}"))
            .and_then(|l| l.strip_prefix("[PoolWorker-"))
            .unwrap_or_else(|| panic!("{:?} is not prefixed", printed[0]));
        assert!(worker.parse::<u32>().is_ok(), "{}", printed[0]);
        assert!(
            before_done.contains(&printed[0]),
            "relayed after the pool was joined:\n{}",
            out.both()
        );
    }
    // Nothing unprefixed from the children.
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        assert!(
            !matches!(line, "one" | "two" | "partial" | "err-line")
                && !line.starts_with("pool-item"),
            "an unprefixed line {line:?}:\n{}",
            out.both()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Installing.

/// Once a logger is installed (the capturing one), `install` fails with `AlreadyInstalled`
/// and changes nothing: the max level stays, and records still go to the first logger.
#[test]
fn install_twice_fails_harmlessly() {
    let _g = common::guard();
    capture();
    let result = logging::install(Refused, LevelFilter::Error);
    assert!(
        matches!(result, Err(LoggingError::AlreadyInstalled)),
        "{result:?}"
    );
    assert_eq!(log::max_level(), LevelFilter::Trace);
    let marker = unique("still");
    log::debug!(target: "logtest", "still captured {marker}");
    let got = marked(&marker);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, format!("still captured {marker}"));
    assert_eq!(got[0].level, Level::Debug);
    assert!(got[0].kvs.is_empty(), "{:?}", got[0]);
    // And children still forward to it.
    let name = format!("after-refused-{marker}");
    let child = start(StartMethod::Fork, &name, leaf, marker.clone());
    let pid = child.pid();
    child.join().unwrap();
    let got = marked(&format!("leaf {marker}"));
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].message,
        labelled(&name, pid, &format!("leaf {marker}"))
    );
}
