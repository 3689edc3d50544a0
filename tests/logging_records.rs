//! Children's `log` and `tracing` records in the parent's logger: labels, order, bursts,
//! pool and executor workers, grandchildren, and the library's lifecycle events.
//!
//! The parent's logger is global, so this binary installs one capturing logger (through
//! `multiproc::logging::install`, so fork children forward too) and every test looks only at
//! the records it can recognise by a marker of its own.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use log::{Level, LevelFilter};
use multiproc::{
    AcquireError, Builder, Lock, Pool, PoolError, Process, ProcessPoolExecutor, StartMethod,
    logging,
};

/// One record as the parent's logger saw it.
#[derive(Clone, Debug)]
struct Seen {
    level: Level,
    target: String,
    message: String,
    kvs: HashMap<String, String>,
}

impl Seen {
    fn kv(&self, key: &str) -> Option<&str> {
        self.kvs.get(key).map(String::as_str)
    }
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Capture;

struct Kvs<'a>(&'a mut HashMap<String, String>);

impl<'kvs> log::kv::VisitSource<'kvs> for Kvs<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.insert(key.to_string(), value.to_string());
        Ok(())
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut kvs = HashMap::new();
        let _ = record.key_values().visit(&mut Kvs(&mut kvs));
        let seen = Seen {
            level: record.level(),
            target: record.target().to_string(),
            message: record.args().to_string(),
            kvs,
        };
        SEEN.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
    }

    fn flush(&self) {}
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        logging::install(Capture, LevelFilter::Debug).expect("the first install succeeds");
    });
}

/// Records whose message contains `marker`, in the order the logger saw them.
fn seen(marker: &str) -> Vec<Seen> {
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| s.message.contains(marker))
        .cloned()
        .collect()
}

/// A marker unique to this test process and `what`.
fn marker(what: &str) -> String {
    format!("{what}-{}", std::process::id())
}

const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::Fork,
    StartMethod::ForkServer,
];

fn hello(marker: String) {
    log::info!(target: "logtest", "hello {marker}");
    log::warn!(target: "logtest", answer = 42; "with a key-value {marker}");
    log::trace!(target: "logtest", "below the parent's level {marker}");
}

/// Each start method: the record arrives with its level and target, labelled with the
/// child's name and pid (in the message and as key-values), with its own key-values, and
/// before `join` returns.
#[test]
fn records_arrive_labelled_from_every_start_method() {
    let _g = common::guard();
    install();
    for method in METHODS {
        let name = format!("hello-{method}");
        let marker = marker(&format!("labels-{method}"));
        let child = Builder::new()
            .name(name.clone())
            .start_method(method)
            .start(hello, marker.clone())
            .unwrap();
        let pid = child.pid();
        child.join().unwrap();
        let got = seen(&marker);
        assert_eq!(got.len(), 2, "{method}: {got:?}");
        let (first, second) = (&got[0], &got[1]);
        assert_eq!(first.level, Level::Info);
        assert_eq!(first.target, "logtest");
        assert_eq!(first.message, format!("{name} (pid {pid}): hello {marker}"));
        assert_eq!(first.kv("process_name"), Some(name.as_str()));
        assert_eq!(first.kv("pid"), Some(pid.to_string().as_str()));
        assert_eq!(second.level, Level::Warn);
        assert_eq!(second.kv("answer"), Some("42"));
        assert_eq!(second.kv("process_name"), Some(name.as_str()));
    }
}

fn traced(marker: String) {
    let span = tracing::info_span!("outer", n = 1);
    let _entered = span.enter();
    tracing::info!(answer = 42, "traced {marker}");
}

/// `tracing` events (the parent here has a `log` logger and no subscriber) arrive as `log`
/// records, with their span scope and fields.
#[test]
fn tracing_events_arrive_with_span_scope_and_fields() {
    let _g = common::guard();
    install();
    for method in [StartMethod::Spawn, StartMethod::Fork] {
        let marker = marker(&format!("tracing-{method}"));
        let child = Builder::new()
            .name(format!("tracer-{method}"))
            .start_method(method)
            .start(traced, marker.clone())
            .unwrap();
        let pid = child.pid();
        child.join().unwrap();
        let got = seen(&marker);
        assert_eq!(got.len(), 1, "{method}: {got:?}");
        assert_eq!(
            got[0].message,
            format!("tracer-{method} (pid {pid}): outer{{n=1}}: traced {marker}")
        );
        assert_eq!(got[0].kv("answer"), Some("42"));
        assert_eq!(got[0].level, Level::Info);
    }
}

fn log_marked((marker, x): (String, u64)) -> u64 {
    log::info!(target: "logtest", "pool item {x} {marker}");
    x
}

/// Pool and executor workers: one record per item, labelled with a worker's name and pid.
#[test]
fn pool_and_executor_workers_records_are_labelled() {
    let _g = common::guard();
    install();
    let marker = marker("pool");
    let pool = Pool::new(2).unwrap();
    let items: Vec<(String, u64)> = (0..20).map(|x| (marker.clone(), x)).collect();
    pool.map(log_marked, items).unwrap();
    let pids = pool.pids();
    pool.close();
    pool.join().unwrap();
    logging::flush();
    let got = seen(&marker);
    assert_eq!(got.len(), 20, "{got:?}");
    for x in 0..20 {
        let record = got
            .iter()
            .find(|s| s.message.ends_with(&format!("pool item {x} {marker}")))
            .unwrap_or_else(|| panic!("item {x} missing"));
        let name = record.kv("process_name").unwrap();
        assert!(name.starts_with("PoolWorker-"), "{record:?}");
        let pid: u32 = record.kv("pid").unwrap().parse().unwrap();
        assert!(pids.contains(&pid), "{pid} not in {pids:?}");
    }

    let marker = format!("executor-{}", std::process::id());
    let ex = ProcessPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (0..6)
        .map(|x| ex.submit(log_marked, (marker.clone(), x)).unwrap())
        .collect();
    for f in futures {
        f.result().unwrap();
    }
    ex.shutdown(true, false);
    logging::flush();
    let got = seen(&marker);
    assert_eq!(got.len(), 6, "{got:?}");
    assert!(
        got.iter()
            .all(|s| s.kv("process_name").is_some_and(|n| !n.is_empty()))
    );
    assert!(
        got.iter()
            .all(|s| s.kv("pid") != Some(&std::process::id().to_string()))
    );
}

fn burst((marker, n): (String, u32)) {
    for i in 0..n {
        log::info!(target: "logtest", "{marker} {i}");
    }
}

/// 4 children log 25 000 records each at once: all 100 000 arrive, none twice, in order per
/// child.
#[test]
fn a_burst_of_100k_records_from_4_children_loses_nothing() {
    let _g = common::guard();
    install();
    const PER_CHILD: u32 = 25_000;
    let marker = marker("burst");
    let children: Vec<_> = (0..4)
        .map(|c| {
            let method = if c % 2 == 0 {
                StartMethod::Spawn
            } else {
                StartMethod::ForkServer
            };
            Builder::new()
                .name(format!("burst-{c}"))
                .start_method(method)
                .start(burst, (format!("{marker}-c{c}"), PER_CHILD))
                .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap();
    }
    for c in 0..4 {
        let got = seen(&format!("{marker}-c{c} "));
        let numbers: Vec<u32> = got
            .iter()
            .map(|s| s.message.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(numbers.len(), PER_CHILD as usize, "child {c}");
        assert!(
            numbers.iter().copied().eq(0..PER_CHILD),
            "child {c}: out of order or duplicated"
        );
        assert!(
            got.iter()
                .all(|s| s.kv("process_name") == Some(&format!("burst-{c}")))
        );
    }
}

fn threads_logging(marker: String) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let marker = marker.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    log::info!(target: "logtest", "{marker} t{t} {i} first line\nsecond line of t{t} {i}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Records from 4 threads of one child arrive whole (multi-line messages included) and in
/// order per thread.
#[test]
fn records_of_a_multithreaded_child_arrive_whole_and_in_order_per_thread() {
    let _g = common::guard();
    install();
    let marker = marker("threads");
    Process::start(threads_logging, marker.clone())
        .unwrap()
        .join()
        .unwrap();
    for t in 0..4 {
        let got = seen(&format!("{marker} t{t} "));
        assert_eq!(got.len(), 2_000, "thread {t}");
        for (i, s) in got.iter().enumerate() {
            assert!(
                s.message.ends_with(&format!(
                    "{marker} t{t} {i} first line\nsecond line of t{t} {i}"
                )),
                "{s:?}"
            );
        }
    }
}

fn grandparent(marker: String) {
    let grandchild = Builder::new()
        .name("grandchild")
        .start_method(StartMethod::Spawn)
        .start(hello, marker)
        .unwrap();
    grandchild.join().unwrap();
}

/// A grandchild's records reach the root directly, labelled with the grandchild's name.
#[test]
fn grandchildren_records_reach_the_root() {
    let _g = common::guard();
    install();
    let marker = marker("grandchild");
    Builder::new()
        .name("middle")
        .start_method(StartMethod::Spawn)
        .start(grandparent, marker.clone())
        .unwrap()
        .join()
        .unwrap();
    logging::flush();
    let got = seen(&marker);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.iter()
            .all(|s| s.kv("process_name") == Some("grandchild"))
    );
    assert!(got[0].message.starts_with("grandchild (pid "));
    // The middle child's own lifecycle events were forwarded too.
    let events = seen("started process 'grandchild'");
    assert!(
        events
            .iter()
            .any(|s| s.kv("process_name") == Some("middle")),
        "{events:?}"
    );
}

fn sleep_long(_: ()) {
    std::thread::sleep(Duration::from_secs(60));
}

fn abort_on_three(x: u32) -> u32 {
    if x == 3 {
        std::process::abort();
    }
    x
}

fn panic_on_two(x: u32) -> u32 {
    if x == 2 {
        panic!("lifecycle-panic-{x}");
    }
    x
}

fn exit_holding(lock: Lock) {
    let guard = lock.acquire().unwrap();
    std::mem::forget(guard);
}

/// The library's own events: started, exited with code, killed by a signal, pool worker
/// replaced, task failed, lock owner died.
#[test]
fn library_lifecycle_events_are_logged_under_the_library_target() {
    let _g = common::guard();
    install();
    let library = |needle: &str| -> Vec<Seen> {
        seen(needle)
            .into_iter()
            .filter(|s| s.target == logging::TARGET)
            .collect()
    };

    let name = marker("lifecycle");
    let child = Builder::new()
        .name(name.clone())
        .start(hello, "x".to_string())
        .unwrap();
    let pid = child.pid();
    child.join().unwrap();
    let started = library(&format!("started process '{name}' (pid {pid}) with "));
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].level, Level::Info);
    let exited = library(&format!("process '{name}' (pid {pid}) exited with code 0"));
    assert_eq!(exited.len(), 1);

    let killed = Builder::new()
        .name(format!("{name}-killed"))
        .start(sleep_long, ())
        .unwrap();
    let pid = killed.pid();
    killed.kill().unwrap();
    let _ = killed.join();
    let events = library(&format!("(pid {pid}) was killed by SIGKILL (exit code -9)"));
    assert_eq!(events.len(), 1, "{events:?}");

    let pool = Pool::new(2).unwrap();
    let results = pool.map(abort_on_three, 0..6u32);
    assert!(
        matches!(results, Err(PoolError::WorkerDied { .. })),
        "{results:?}"
    );
    let replaced: Vec<Seen> = library("replaced by 'PoolWorker-")
        .into_iter()
        .filter(|s| s.message.contains("killed by signal 6"))
        .collect();
    assert!(!replaced.is_empty());
    assert_eq!(replaced[0].level, Level::Warn);
    let failed = pool.map(panic_on_two, 0..4u32);
    assert!(matches!(failed, Err(PoolError::Panicked(_))), "{failed:?}");
    let task = library("lifecycle-panic-2");
    assert_eq!(task.len(), 1, "{task:?}");
    assert!(
        task[0]
            .message
            .starts_with("a task failed in pool worker 'PoolWorker-")
    );
    assert_eq!(task[0].level, Level::Warn);
    pool.close();
    pool.join().unwrap();

    let lock = Lock::new().unwrap();
    let holder = Builder::new()
        .start_method(StartMethod::Fork)
        .start(exit_holding, lock.clone())
        .unwrap();
    let pid = holder.pid();
    holder.join().unwrap();
    match lock.acquire() {
        Err(AcquireError::OwnerDied(guard)) => drop(guard),
        other => panic!("expected OwnerDied, got {:?}", other.map(|_| ())),
    }
    let died = library(&format!("the owner of a lock (pid {pid}) died holding it"));
    assert_eq!(died.len(), 1, "{died:?}");
    assert_eq!(died[0].level, Level::Warn);
}

/// A second logger cannot be installed: `log` allows one per process.
#[test]
fn installing_a_second_logger_fails_cleanly() {
    let _g = common::guard();
    install();
    let again = logging::install(Capture, LevelFilter::Info);
    assert!(matches!(
        again,
        Err(logging::LoggingError::AlreadyInstalled)
    ));
    assert_eq!(log::max_level(), LevelFilter::Debug);
}
