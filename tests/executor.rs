//! Specification of `ProcessPoolExecutor` (Python's `concurrent.futures.ProcessPoolExecutor`):
//! `submit` and its `PoolFuture` (result, error, states, cancel, done callbacks, `.await`),
//! `map` (ordered, chunked, with a timeout), `as_completed`, `executor::wait`, the executor's
//! life cycle (`shutdown` with and without `wait` and `cancel_futures`, drop, `terminate`),
//! and the documented differences from Python: a worker that dies fails only its own future
//! (Python breaks the whole executor), tasks can time out, the executor can be terminated.
//!
//! Most tests control the progress of their tasks exactly instead of timing them: a task
//! runs a [`Job`], which leaves a mark in a scratch directory when it starts (with its
//! worker's pid) and when it finishes, and may wait for a gate file that the test creates.
//! A gated task keeps its worker busy until the test opens the gate; a mark that is not
//! there after the executor has shut down proves that a task never ran.
//!
//! Of the tasks submitted, only a window of `max_workers + 1` is handed to the workers (as
//! Python's call queue); the rest wait in the parent, where `cancel` and
//! `shutdown(cancel_futures)` can withdraw them. The cancellation tests rely on it.
//!
//! Where the executor could plausibly hang, the blocking calls run under `within` or `race`,
//! or use `result_timeout`, with a bound (`LONG`) that only a broken library reaches. Every
//! test holds `common::guard()`, so an executor that leaves a worker behind fails the test.
//!
//! `cargo nextest run --test executor --run-ignored only`.

#[macro_use]
mod common;

use common::children::{LONG, abort_without_core, within};

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use multiproc::executor::{self, ReturnWhen};
use multiproc::{Lock, PoolError, PoolFuture, ProcessPoolExecutor, StartMethod, as_completed};
use serde::{Deserialize, Serialize};

/// Generous bound for things that take milliseconds (a worker noticed dead and replaced, a
/// timeout enforced, a call that must not wait), so a loaded 2-core machine does not fail
/// them.
const PROMPTLY: Duration = Duration::from_secs(5);

/// Bound for work that is not milliseconds but must end: building and encoding a 100 MiB
/// argument takes seconds in a debug build on a loaded machine. A call that waited for a
/// busy worker would never end (the test opens the worker's gate only afterwards), so any
/// finite bound tells the two apart.
const EVENTUALLY: Duration = Duration::from_secs(60);

/// The window of tasks handed to the workers at once, for `workers` workers.
fn window(workers: usize) -> usize {
    workers + 1
}

// ---------------------------------------------------------------------------------------------
// Tasks run by the workers of these tests.

fn square(x: u64) -> u64 {
    x * x
}

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn len_of(v: serde_bytes::ByteBuf) -> usize {
    v.len()
}

fn bytes_of_len(n: usize) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![9u8; n])
}

fn takes_lock(lock: Lock) -> bool {
    matches!(lock.try_acquire(), Ok(Some(_)))
}

fn makes_lock(_: u64) -> Lock {
    Lock::new().expect("creating a lock in a worker")
}

/// The message of the panic in `panics_on_three` (the test finds its line by this text).
const THREE_MESSAGE: &str = "three is not allowed";

fn panics_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    x * 10
}

fn always_panics(_: ()) -> u64 {
    panic!("no luck")
}

/// Spins (on the CPU) for `ms` milliseconds, then answers `3 * x`: a small task that a kill
/// can land in.
fn spin_then_triple((x, ms): (u64, u64)) -> u64 {
    let end = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    x * 3
}

/// Ends the calling process with `signal`'s default action, without dumping core.
fn die_by_signal(signal: i32) -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with valid arguments; the process ends in `raise`.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    unreachable!("signal {signal} did not end the process");
}

/// The input on which the dying tasks below end their worker.
const DEADLY: u64 = 13;

fn aborts_on_13(x: u64) -> u64 {
    if x == DEADLY {
        abort_without_core();
    }
    x * 10
}

fn segfaults_on_13(x: u64) -> u64 {
    if x == DEADLY {
        die_by_signal(libc::SIGSEGV);
    }
    x * 10
}

/// SIGKILL sent to itself with `kill(getpid())`, as another process would.
fn kills_itself_on_13(x: u64) -> u64 {
    if x == DEADLY {
        // SAFETY: kill and getpid have no preconditions; the process ends here.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        std::thread::sleep(LONG);
    }
    x * 10
}

static INIT_CALLS: AtomicU64 = AtomicU64::new(0);
static BASE: AtomicU64 = AtomicU64::new(0);

fn count_init(base: u64) {
    INIT_CALLS.fetch_add(1, Ordering::SeqCst);
    BASE.store(base, Ordering::SeqCst);
}

/// (initializer calls in this worker, the initializer's argument, this worker's pid).
fn init_state(_: u64) -> (u64, u64, u32) {
    (
        INIT_CALLS.load(Ordering::SeqCst),
        BASE.load(Ordering::SeqCst),
        std::process::id(),
    )
}

fn failing_init(_: u32) {
    panic!("the initializer refuses");
}

fn aborting_init(_: u32) {
    abort_without_core();
}

/// A task whose progress the test observes and controls through files in a scratch
/// directory (see [`Scratch`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    dir: PathBuf,
    id: u64,
    /// A file to wait for before finishing (`None`: finish at once).
    gate: Option<String>,
}

/// Mark `started-<id>` (holding the worker's pid), wait for the gate if there is one (or
/// for the scratch directory to disappear: the test is over), mark `ran-<id>`; the id.
fn run_job(job: Job) -> u64 {
    let started = job.dir.join(format!("started-{}", job.id));
    let tmp = job.dir.join(format!(".started-{}", job.id));
    if std::fs::write(&tmp, std::process::id().to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, &started);
    }
    if let Some(gate) = &job.gate {
        let gate = job.dir.join(gate);
        let deadline = Instant::now() + LONG;
        while !gate.exists() && job.dir.exists() {
            assert!(Instant::now() < deadline, "{gate:?} never opened");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let _ = std::fs::write(job.dir.join(format!("ran-{}", job.id)), "");
    job.id
}

/// A job that panics once it has started (a failure the test can time).
fn failing_job(job: Job) -> u64 {
    run_job(job);
    panic!("the job failed on purpose");
}

// ---------------------------------------------------------------------------------------------
// Helpers

static SCRATCH_COUNT: AtomicU64 = AtomicU64::new(0);

/// A scratch directory for [`Job`]s; removed on drop, which also releases every job still
/// waiting at a gate (declare it after the executor, so it is dropped first).
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "multiproc-executor-test-{}-{}",
            std::process::id(),
            SCRATCH_COUNT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a scratch directory");
        Scratch { dir }
    }

    /// A job that finishes at once.
    fn quick(&self, id: u64) -> Job {
        Job {
            dir: self.dir.clone(),
            id,
            gate: None,
        }
    }

    /// A job that waits for [`Scratch::open`].
    fn gated(&self, id: u64) -> Job {
        Job {
            gate: Some("open".into()),
            ..self.quick(id)
        }
    }

    /// A job that waits for [`Scratch::open_one`] of its own id.
    fn own(&self, id: u64) -> Job {
        Job {
            gate: Some(format!("open-{id}")),
            ..self.quick(id)
        }
    }

    /// Release every `gated` job.
    fn open(&self) {
        std::fs::write(self.dir.join("open"), "").expect("opening the gate");
    }

    /// Release the `own` job `id`.
    fn open_one(&self, id: u64) {
        std::fs::write(self.dir.join(format!("open-{id}")), "").expect("opening a gate");
    }

    fn path(&self, mark: &str, id: u64) -> PathBuf {
        self.dir.join(format!("{mark}-{id}"))
    }

    fn started(&self, id: u64) -> bool {
        self.path("started", id).exists()
    }

    fn ran(&self, id: u64) -> bool {
        self.path("ran", id).exists()
    }

    /// Wait (at most `LONG`) until job `id` has started; the pid of its worker.
    fn wait_started(&self, id: u64) -> u32 {
        let mut pid = None;
        let started = common::wait_until(Instant::now() + LONG, || {
            pid = read_pid(&self.path("started", id));
            pid.is_some()
        });
        assert!(started, "job {id} did not start within {LONG:?}");
        pid.unwrap()
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn executor_of(n: usize) -> ProcessPoolExecutor {
    ProcessPoolExecutor::new(n).unwrap_or_else(|e| panic!("starting an executor of {n}: {e}"))
}

/// Drop the executor (which waits for its work) on another thread; fail if that takes
/// longer than `LONG`.
fn drop_within(ex: impl Into<Arc<ProcessPoolExecutor>> + Send + 'static) {
    within(LONG, move || drop(ex.into()));
}

/// The future's outcome; fail the test if it is not there within `limit` (a hang).
#[track_caller]
fn resolve_within<R>(f: PoolFuture<R>, limit: Duration) -> Result<R, PoolError> {
    let id = f.id();
    match f.result_timeout(limit) {
        Err(PoolError::ResultTimeout) => panic!("future {id} not done within {limit:?}"),
        r => r,
    }
}

#[track_caller]
fn resolve<R>(f: PoolFuture<R>) -> Result<R, PoolError> {
    resolve_within(f, LONG)
}

/// `f` on another thread and `meanwhile` on this one; `f`'s value, which must come within
/// `LONG` (else the test fails: something hangs).
fn race<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static, meanwhile: impl FnOnce()) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    meanwhile();
    rx.recv_timeout(LONG)
        .unwrap_or_else(|e| panic!("did not finish within {LONG:?}: it hangs ({e})"))
}

/// Whether the process `pid` is there and not dead.
fn alive(pid: u32) -> bool {
    common::proc_stat(pid).is_some_and(|p| !p.is_dead())
}

/// Wait until the executor has its full number of workers, all alive; their pids.
fn full_crew(ex: &ProcessPoolExecutor) -> Vec<u32> {
    let mut pids = Vec::new();
    let ok = common::wait_until(Instant::now() + PROMPTLY, || {
        pids = ex.pids();
        pids.len() == ex.max_workers() && pids.iter().all(|&p| alive(p))
    });
    assert!(
        ok,
        "the executor has workers {pids:?}, expected {} live ones",
        ex.max_workers()
    );
    pids
}

/// Wait until every worker has started and taken work (so it is past its start-up and
/// initializer): one gated job per worker, all started at once; their pids.
fn ready_crew(ex: &ProcessPoolExecutor) -> Vec<u32> {
    let s = Scratch::new();
    let n = ex.max_workers() as u64;
    let futures: Vec<_> = (0..n)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let ran: HashSet<u32> = (0..n).map(|i| s.wait_started(i)).collect();
    s.open();
    for f in futures {
        resolve(f).unwrap();
    }
    let crew: HashSet<u32> = full_crew(ex).into_iter().collect();
    assert_eq!(ran, crew, "each worker took one job");
    crew.into_iter().collect()
}

/// Send `signal` to the process `pid` (never to a later process that reused the pid).
fn signal(pid: u32, signal: i32) {
    if let Some(p) = common::proc_stat(pid) {
        common::kill_exact(&p, signal);
    }
}

fn is_worker_died_by(e: &PoolError, signal_name: &str) -> bool {
    matches!(e, PoolError::WorkerDied { cause, .. } if cause.contains(signal_name))
}

/// The ids of the futures.
fn ids<R>(futures: &[&PoolFuture<R>]) -> Vec<u64> {
    futures.iter().map(|f| f.id()).collect()
}

/// A small pseudo-random generator (xorshift), seeded from the clock; the seed goes in
/// failure messages.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How long a worker must have been running to count as started (ready for work).
const SETTLED: Duration = Duration::from_millis(100);

/// How long ago the process `pid` started (to the kernel's 10 ms clock ticks).
fn age(pid: u32) -> Option<Duration> {
    let start_ticks = common::proc_stat(pid)?.start_time;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(Duration::from_secs_f64(
        (uptime - start_ticks as f64 / ticks_per_second).max(0.0),
    ))
}

/// Kill a random worker (of those running for a while) with SIGKILL; its pid.
fn kill_random_worker(ex: &ProcessPoolExecutor, rng: &mut Rng) -> u32 {
    let mut settled = Vec::new();
    let found = common::wait_until(Instant::now() + PROMPTLY, || {
        settled = ex
            .pids()
            .into_iter()
            .filter(|&p| age(p).is_some_and(|a| a >= SETTLED))
            .collect();
        !settled.is_empty()
    });
    assert!(
        found,
        "the executor has no settled workers: {:?}",
        ex.pids()
    );
    let victim = settled[rng.below(settled.len() as u64) as usize];
    signal(victim, libc::SIGKILL);
    victim
}

// ---------------------------------------------------------------------------------------------
// submit, result, error

/// `ProcessPoolExecutorWorker-N` is longer than the 15 bytes the kernel keeps for `ps` and
/// `top`: the name is shortened keeping its number (`ProcessPoolEx-1`).
#[test]
fn workers_show_in_ps_with_their_number() {
    let _g = common::guard();
    let ex = executor_of(1);
    let worker = resolve(ex.submit(pid, 0).unwrap()).unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{worker}/comm")).unwrap();
    let comm = comm.trim_end();
    let numbered = comm
        .rsplit_once('-')
        .is_some_and(|(_, n)| n.parse::<u32>().is_ok());
    assert!(
        comm.starts_with("ProcessPool") && numbered,
        "the worker shows as {comm:?}"
    );
    drop(ex);
}

#[test]
fn submit_runs_the_call_in_a_worker_and_result_returns_its_value() {
    let _g = common::guard();
    let ex = executor_of(2);
    assert_eq!(ex.max_workers(), 2);
    let workers: HashSet<u32> = full_crew(&ex).into_iter().collect();
    assert_eq!(workers.len(), 2);

    assert_eq!(resolve(ex.submit(square, 12).unwrap()).unwrap(), 144);
    assert_eq!(
        resolve(ex.submit(add, (2, 40)).unwrap()).unwrap(),
        42,
        "several arguments as a tuple"
    );
    let ran_in = resolve(ex.submit(pid, 0).unwrap()).unwrap();
    assert_ne!(ran_in, std::process::id(), "not in the parent");
    assert!(
        workers.contains(&ran_in),
        "{ran_in} is not one of {workers:?}"
    );

    // Many at once, more than the window: each future gets its own value.
    let futures: Vec<_> = (0..200).map(|x| ex.submit(square, x).unwrap()).collect();
    let mut last_id = None;
    for f in &futures {
        assert!(last_id < Some(f.id()), "ids grow in submission order");
        last_id = Some(f.id());
    }
    let values: Vec<u64> = futures.into_iter().map(|f| resolve(f).unwrap()).collect();
    assert_eq!(values, (0..200).map(|x| x * x).collect::<Vec<_>>());

    // A large argument and a large result (they travel through the rings in pieces).
    let big = serde_bytes::ByteBuf::from(vec![7u8; 20 << 20]);
    assert_eq!(resolve(ex.submit(len_of, big).unwrap()).unwrap(), 20 << 20);
    let back = resolve(ex.submit(bytes_of_len, 20 << 20).unwrap()).unwrap();
    assert!(back.len() == 20 << 20 && back.iter().all(|&b| b == 9));
    drop_within(ex);
}

/// The default is one worker per CPU; no workers at all is an error (Python's
/// `ValueError("max_workers must be greater than 0")`).
/// Python's `submit` never blocks: the call is queued and the future returned. Here the
/// orders handed to the workers travel through a 64 MiB ring; while the workers are busy, a
/// task whose argument does not fit there must wait in the parent (where it can still be
/// cancelled), not block the thread that submits it.
#[test]
fn submit_macro_runs_a_closure_with_the_named_variables() {
    let _g = common::guard();
    let ex = executor_of(1);
    let values = vec![1u64, 2, 3];
    let factor = 10u64;
    let future =
        multiproc::submit!(ex, (values, factor) || values.iter().sum::<u64>() * factor).unwrap();
    assert_eq!(resolve(future).unwrap(), 60);
}

#[test]
fn submit_does_not_block_when_a_large_argument_does_not_fit_in_the_task_ring() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(1));
    let s = Scratch::new();
    let stuck = ex.submit(run_job, s.gated(0)).unwrap();
    s.wait_started(0);
    let ex2 = ex.clone();
    let t = Instant::now();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let big = serde_bytes::ByteBuf::from(vec![1u8; 100 << 20]);
        let _ = tx.send(ex2.submit(len_of, big).unwrap());
    });
    let submitted = rx.recv_timeout(EVENTUALLY);
    let took = t.elapsed();
    s.open();
    let big = submitted.unwrap_or_else(|_| {
        panic!("submitting a 100 MiB argument blocked for {took:?} while the worker was busy")
    });
    assert_eq!(resolve(stuck).unwrap(), 0);
    assert_eq!(resolve(big).unwrap(), 100 << 20);
    drop_within(ex);
}

#[test]
fn the_default_executor_has_one_worker_per_cpu_and_zero_workers_is_an_error() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder().build().unwrap();
    assert_eq!(ex.max_workers(), multiproc::cpu_count());
    assert_eq!(full_crew(&ex).len(), multiproc::cpu_count());
    drop_within(ex);
    let zero = ProcessPoolExecutor::new(0);
    assert!(matches!(zero, Err(PoolError::Failed(_))), "{zero:?}");
    let zero = ProcessPoolExecutor::builder().max_workers(0).build();
    assert!(matches!(zero, Err(PoolError::Failed(_))), "{zero:?}");
}

#[test]
fn a_panicking_task_fails_its_future_with_message_and_location() {
    let _g = common::guard();
    let ex = executor_of(2);
    let before = ready_crew(&ex);
    let failed = ex.submit(panics_on_three, 3).unwrap();
    let fine = ex.submit(panics_on_three, 4).unwrap();

    // error() waits, and does not consume: the same error again, then from result().
    let err = failed.error().expect("the task panicked");
    assert!(failed.done() && !failed.cancelled() && !failed.running());
    assert!(matches!(failed.error(), Some(PoolError::Panicked(_))));
    let PoolError::Panicked(report) = &err else {
        panic!("expected Panicked, got {err:?}");
    };
    assert_eq!(report.message, THREE_MESSAGE);
    assert!(
        report.process_name.starts_with("ProcessPoolExecutorWorker"),
        "{report:?}"
    );
    assert!(before.contains(&report.pid), "{report:?}");
    let location = report.location.as_ref().expect("the panic's location");
    assert!(location.file.ends_with("executor.rs"), "{location}");
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/executor.rs"))
        .expect("reading this test's source");
    let line = source
        .lines()
        .nth(location.line as usize - 1)
        .unwrap_or_default();
    assert!(
        line.contains("panic!(\"three is not allowed\")"),
        "line {} is {line:?}, not the panic",
        location.line
    );
    assert!(!report.backtrace.is_empty(), "the worker's backtrace");
    assert!(err.to_string().contains(THREE_MESSAGE), "{err}");
    match resolve(failed) {
        Err(PoolError::Panicked(again)) => assert_eq!(again.message, THREE_MESSAGE),
        other => panic!("{other:?}"),
    }

    // A successful future has no error, and its value is still there after error().
    assert!(fine.error().is_none());
    assert_eq!(resolve(fine).unwrap(), 40);
    let err = resolve(ex.submit(always_panics, ()).unwrap()).unwrap_err();
    assert!(err.to_string().contains("no luck"), "{err}");
    // A panic does not cost the worker.
    assert_eq!(
        ex.pids().into_iter().collect::<HashSet<_>>(),
        before.into_iter().collect::<HashSet<_>>()
    );
    drop_within(ex);
}

/// Python's states: pending (cancellable), running, finished; `wait_timeout` and
/// `result_timeout` give up after their timeout without disturbing the task.
#[test]
fn a_future_goes_from_pending_to_running_to_finished() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let futures: Vec<_> = (0..=window(1) as u64)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    let (first, last) = (&futures[0], &futures[window(1)]);
    assert!(first.running() && !first.done() && !first.cancelled());
    assert!(format!("{first:?}").contains("running"), "{first:?}");
    // Beyond the window: still in the parent.
    assert!(!last.running() && !last.done() && !last.cancelled());
    assert!(format!("{last:?}").contains("pending"), "{last:?}");

    let t = Instant::now();
    assert!(!first.wait_timeout(Duration::from_millis(100)));
    common::assert_on_time(t.elapsed(), Duration::from_millis(100));
    assert!(first.running(), "a wait that timed out changes nothing");

    let mut futures = futures.into_iter();
    let first = futures.next().unwrap();
    let t = Instant::now();
    assert!(matches!(
        first.result_timeout(Duration::from_millis(100)),
        Err(PoolError::ResultTimeout)
    ));
    common::assert_on_time(t.elapsed(), Duration::from_millis(100));

    s.open();
    let rest: Vec<_> = futures.collect();
    for f in &rest {
        assert!(f.wait_timeout(LONG), "{f:?}");
        assert!(f.done() && !f.running() && !f.cancelled(), "{f:?}");
        assert!(format!("{f:?}").contains("finished"), "{f:?}");
        assert!(f.error().is_none());
    }
    for (i, f) in rest.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64 + 1);
    }
    assert!(s.ran(0), "the abandoned result's task still ran");
    drop_within(ex);
}

#[test]
fn items_or_results_carrying_os_handles_fail_their_future_not_the_executor() {
    let _g = common::guard();
    let ex = executor_of(2);
    let r = ex.submit(takes_lock, Lock::new().unwrap());
    assert!(
        matches!(&r, Err(PoolError::Failed(m)) if m.contains("OS handles")),
        "{r:?}"
    );
    let r = ex.map(takes_lock, vec![Lock::new().unwrap()]).map(drop);
    assert!(matches!(r, Err(PoolError::Failed(_))), "{r:?}");
    let r = resolve(ex.submit(makes_lock, 0).unwrap()).map(drop);
    assert!(matches!(r, Err(PoolError::ResultDecode { .. })), "{r:?}");
    assert_eq!(
        resolve(ex.submit(square, 5).unwrap()).unwrap(),
        25,
        "the executor goes on"
    );
    drop_within(ex);
}

// ---------------------------------------------------------------------------------------------
// cancel

/// Python's `Future.cancel`: true only while the call waits (and again for a cancelled
/// future); false once it runs or is done. A cancelled task never runs, and cancelling it
/// does not disturb the others.
#[test]
fn cancel_succeeds_only_while_the_task_waits_in_the_parent() {
    let _g = common::guard();
    let ex = executor_of(2);
    let s = Scratch::new();
    let n = 12u64;
    let w = window(2) as u64;
    let futures: Vec<_> = (0..n)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    s.wait_started(1);
    // 0 and 1 run; 2..w are handed to the workers (Python's call queue: running() is true
    // there too); w.. wait in the parent.
    for (i, f) in futures.iter().enumerate() {
        let handed_over = (i as u64) < w;
        assert_eq!(f.running(), handed_over, "future {i}: {f:?}");
        assert!(!f.done() && !f.cancelled(), "future {i}: {f:?}");
    }
    for (i, f) in futures[..w as usize].iter().enumerate() {
        assert!(!f.cancel(), "future {i} was handed to the workers");
        assert!(!f.cancelled() && !f.done() && f.running(), "future {i}");
    }
    // Cancel the last ones; the first of the waiting ones (w, w + 1) stay.
    let cancelled = w + 2..n;
    for i in cancelled.clone() {
        let f = &futures[i as usize];
        assert!(f.cancel(), "future {i} waits in the parent");
        assert!(
            f.cancelled() && f.done() && !f.running(),
            "future {i}: {f:?}"
        );
        assert!(format!("{f:?}").contains("cancelled"), "{f:?}");
        assert!(f.cancel(), "cancelling again is still true");
        assert!(matches!(f.error(), Some(PoolError::Cancelled)));
    }
    s.open();
    let mut outcomes = Vec::new();
    for f in futures {
        f.wait_timeout(LONG);
        // Done: no longer cancellable, and not cancelled.
        let can_cancel = f.cancel();
        outcomes.push((f.cancelled(), can_cancel, resolve(f)));
    }
    drop_within(ex);
    for (i, (was_cancelled, can_cancel, outcome)) in outcomes.into_iter().enumerate() {
        let i = i as u64;
        if cancelled.contains(&i) {
            assert!(was_cancelled && can_cancel, "future {i}");
            assert!(matches!(outcome, Err(PoolError::Cancelled)), "{outcome:?}");
            assert!(!s.started(i), "cancelled job {i} ran");
        } else {
            assert!(!was_cancelled && !can_cancel, "future {i}");
            assert_eq!(outcome.unwrap(), i);
            assert!(s.ran(i), "job {i} did not run");
        }
    }
}

#[test]
fn cancel_is_false_for_a_finished_or_failed_future() {
    let _g = common::guard();
    let ex = executor_of(1);
    let ok = ex.submit(square, 3).unwrap();
    let failed = ex.submit(always_panics, ()).unwrap();
    assert!(ok.wait_timeout(LONG) && failed.wait_timeout(LONG));
    assert!(!ok.cancel() && !ok.cancelled());
    assert!(!failed.cancel() && !failed.cancelled());
    assert_eq!(resolve(ok).unwrap(), 9);
    assert!(matches!(resolve(failed), Err(PoolError::Panicked(_))));
    drop_within(ex);
}

#[test]
fn a_cancelled_future_resolves_at_once_and_the_executor_shuts_down_without_it() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let w = window(1) as u64;
    let futures: Vec<_> = (0..=w)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    let mut futures = futures.into_iter();
    let head: Vec<_> = futures.by_ref().take(w as usize).collect();
    let last = futures.next().unwrap();
    assert!(last.cancel());
    // No waiting: the gate is still closed and nothing else is done.
    let t = Instant::now();
    last.wait();
    assert!(matches!(last.result(), Err(PoolError::Cancelled)));
    assert!(t.elapsed() < PROMPTLY);
    assert!(head.iter().all(|f| !f.done()));
    s.open();
    drop_within(ex);
    for f in head {
        assert!(f.done(), "the drop waited for it");
        f.result().unwrap();
    }
    assert!(!s.started(w));
}

// ---------------------------------------------------------------------------------------------
// add_done_callback

/// Python's `add_done_callback`: each callback runs once, with the outcome, in the order
/// added, in the parent process; at once if the future is already done; also for failed and
/// cancelled futures.
#[test]
fn done_callbacks_run_once_in_order_with_the_outcome() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let (tx, rx) = mpsc::channel::<(String, u32)>();
    let me = std::process::id();

    let gated = ex.submit(run_job, s.gated(0)).unwrap();
    for n in 0..3 {
        let tx = tx.clone();
        gated.add_done_callback(move |r| {
            tx.send((format!("cb{n} {r:?}"), std::process::id()))
                .unwrap()
        });
    }
    assert!(
        rx.try_recv().is_err(),
        "no callback before the task is done"
    );
    s.open();
    for n in 0..3 {
        let (what, in_pid) = rx.recv_timeout(LONG).expect("the callback ran");
        assert_eq!(what, format!("cb{n} Ok(0)"));
        assert_eq!(in_pid, me, "callbacks run in the parent");
    }
    assert_eq!(resolve(gated).unwrap(), 0, "the value is still there");

    // Added after completion: runs at once, in this thread.
    let done = ex.submit(square, 9).unwrap();
    done.wait();
    let here = std::thread::current().id();
    let tx2 = tx.clone();
    done.add_done_callback(move |r| {
        assert_eq!(std::thread::current().id(), here);
        tx2.send((format!("late {r:?}"), std::process::id()))
            .unwrap();
    });
    assert_eq!(rx.try_recv().unwrap(), ("late Ok(81)".to_string(), me));
    assert_eq!(resolve(done).unwrap(), 81);

    // A failure.
    let failed = ex.submit(always_panics, ()).unwrap();
    let tx2 = tx.clone();
    failed.add_done_callback(move |r| {
        let what = match r {
            Err(PoolError::Panicked(p)) => format!("panicked {}", p.message),
            other => format!("{other:?}"),
        };
        tx2.send((what, std::process::id())).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        ("panicked no luck".to_string(), me)
    );

    // Cancelled: the callback runs at the cancel.
    let s2 = Scratch::new();
    let busy: Vec<_> = (0..window(1) as u64)
        .map(|i| ex.submit(run_job, s2.gated(i)).unwrap())
        .collect();
    let waiting = ex.submit(run_job, s2.gated(99)).unwrap();
    let tx2 = tx.clone();
    waiting.add_done_callback(move |r| tx2.send((format!("{r:?}"), std::process::id())).unwrap());
    assert!(rx.try_recv().is_err());
    assert!(waiting.cancel());
    assert_eq!(rx.try_recv().unwrap(), ("Err(Cancelled)".to_string(), me));
    s2.open();
    for f in busy {
        resolve(f).unwrap();
    }

    drop(tx);
    drop_within(ex);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "each callback ran exactly once"
    );
}

#[test]
fn a_panicking_callback_does_not_break_the_executor() {
    let _g = common::guard();
    let ex = executor_of(2);
    let before = ready_crew(&ex);
    let s = Scratch::new();
    let (tx, rx) = mpsc::channel();
    let f = ex.submit(run_job, s.gated(0)).unwrap();
    f.add_done_callback(|_| panic!("deliberate panic in a callback"));
    let tx2 = tx.clone();
    f.add_done_callback(move |r| tx2.send(*r.as_ref().unwrap()).unwrap());
    s.open();
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        0,
        "the next callback still ran"
    );
    assert_eq!(resolve(f).unwrap(), 0, "the value is still there");

    let failed = ex.submit(always_panics, ()).unwrap();
    failed.add_done_callback(|_| panic!("deliberate panic in a callback of a failure"));
    assert!(matches!(resolve(failed), Err(PoolError::Panicked(_))));
    // Added when done: the panic stays in the callback.
    let done = ex.submit(square, 2).unwrap();
    done.wait();
    done.add_done_callback(|_| panic!("deliberate panic in an immediate callback"));
    assert_eq!(resolve(done).unwrap(), 4);

    let squares: Vec<u64> = ex
        .map(square, 0..100)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(
        ex.pids().into_iter().collect::<HashSet<_>>(),
        before.into_iter().collect::<HashSet<_>>()
    );
    drop_within(ex);
}

/// Callbacks run in the executor's result thread; `shutdown(wait = true)` there cannot
/// wait for that thread, and must not deadlock. The work submitted still completes.
#[test]
fn shutdown_from_a_done_callback_does_not_deadlock() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let first = ex.submit(run_job, s.own(0)).unwrap();
    let others: Vec<_> = (1..8)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel();
    let handle = ex.clone();
    first.add_done_callback(move |_| {
        handle.shutdown(true, false);
        tx.send(handle.submit(square, 1).map(drop)).unwrap();
    });
    s.open_one(0);
    let submitted = rx.recv_timeout(LONG).expect("the callback returned");
    assert!(matches!(submitted, Err(PoolError::Closed)), "{submitted:?}");
    s.open();
    for (i, f) in others.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64 + 1);
    }
    assert_eq!(resolve(first).unwrap(), 0);
    drop_within(ex);
}

/// `terminate` from a callback (the executor's result thread) must not deadlock either.
#[test]
fn terminate_from_a_done_callback_does_not_deadlock() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let first = ex.submit(run_job, s.own(0)).unwrap();
    let others: Vec<_> = (1..8)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let handle = ex.clone();
    first.add_done_callback(move |_| handle.terminate());
    s.open_one(0);
    assert_eq!(resolve(first).unwrap(), 0);
    for f in others {
        assert!(matches!(resolve(f), Err(PoolError::Terminated)));
    }
    assert!(matches!(ex.submit(square, 1), Err(PoolError::Closed)));
    drop_within(ex);
}

/// A callback may hold the last handle on the executor; dropping it there is
/// `shutdown(wait = true)` from the result thread, which cannot wait: the work submitted
/// must still complete (as in Python, where the executor's manager thread finishes the
/// pending work once the executor is gone), not be killed.
#[test]
fn dropping_the_last_handle_in_a_callback_lets_the_work_finish() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let first = ex.submit(run_job, s.own(0)).unwrap();
    let others: Vec<_> = (1..8)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let (tx, rx) = mpsc::channel();
    let last = ex.clone();
    first.add_done_callback(move |_| {
        drop(last);
        tx.send(()).unwrap();
    });
    drop(ex);
    s.open_one(0);
    rx.recv_timeout(LONG).expect("the callback returned");
    assert_eq!(resolve(first).unwrap(), 0);
    s.open();
    let outcomes: Vec<_> = others.into_iter().map(resolve).collect();
    for (i, r) in outcomes.iter().enumerate() {
        assert_eq!(
            *r.as_ref()
                .unwrap_or_else(|e| panic!("job {}: {e:?}", i + 1)),
            i as u64 + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// map

#[test]
fn map_yields_results_in_input_order() {
    let _g = common::guard();
    let ex = executor_of(2);
    let squares: Vec<u64> = ex
        .map(square, 0..1000)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..1000).map(|x| x * x).collect::<Vec<_>>());
    // They finish out of order (the 200 and 100 last), come in order.
    let naps = [200, 0, 0, 100, 0, 0, 0, 0];
    let got: Vec<u64> = ex
        .map(nap, naps)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, naps);
    assert_eq!(ex.map(square, Vec::new()).unwrap().count(), 0);
    drop_within(ex);
}

/// Python's `map` submits every item at once; the iterator only collects. Not iterating
/// does not hold the work back.
#[test]
fn map_submits_every_item_at_once() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let results = ex.map(run_job, (0..20).map(|i| s.quick(i))).unwrap();
    let ex2 = ex.clone();
    within(LONG, move || ex2.shutdown(true, false));
    for i in 0..20 {
        assert!(s.ran(i), "job {i} did not run before the map was consumed");
    }
    let got: Vec<u64> = results.collect::<Result<_, _>>().unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    drop_within(ex);
}

/// Each item gets its own `Result`, in order, whatever the chunk size; a panicking item
/// fails only itself. With a worker per task (`max_tasks_per_child(1)`), the chunks show:
/// the items of a chunk run in one worker.
#[test]
fn map_chunked_gives_one_result_per_item_for_any_chunk_size() {
    let _g = common::guard();
    let ex = executor_of(2);
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    for chunksize in [1, 2, 7, 100, 999, 1000, 5000] {
        let got: Vec<u64> = ex
            .map_chunked(square, 0..1000, chunksize, None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("chunksize {chunksize}: {e:?}"));
        assert_eq!(got, expected, "chunksize {chunksize}");
        let with_failure: Vec<_> = ex
            .map_chunked(panics_on_three, 0..10, chunksize, None)
            .unwrap()
            .collect();
        assert_eq!(with_failure.len(), 10, "chunksize {chunksize}");
        for (i, r) in with_failure.iter().enumerate() {
            match r {
                Err(PoolError::Panicked(p)) if i == 3 => assert_eq!(p.message, THREE_MESSAGE),
                Ok(v) if i != 3 => assert_eq!(*v, i as u64 * 10),
                other => panic!("chunksize {chunksize}, item {i}: {other:?}"),
            }
        }
    }
    drop_within(ex);

    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let pids: Vec<u32> = ex
        .map_chunked(pid, 0..12, 4, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (i, chunk) in pids.chunks(4).enumerate() {
        assert!(
            chunk.iter().all(|p| *p == chunk[0]),
            "chunk {i} ran in several workers: {pids:?}"
        );
    }
    assert_eq!(
        pids.iter().collect::<HashSet<_>>().len(),
        3,
        "3 chunks, 3 workers: {pids:?}"
    );
    drop_within(ex);
}

/// A chunk that fails as a whole (terminated, cancelled) still gives one `Result` per item.
#[test]
fn a_chunk_that_fails_as_a_whole_gives_one_error_per_item() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let results = ex
        .map_chunked(run_job, (0..12).map(|i| s.gated(i)), 4, None)
        .unwrap();
    s.wait_started(0);
    within(PROMPTLY, {
        let ex = Arc::new(ex);
        move || ex.terminate()
    });
    let results: Vec<_> = results.collect();
    assert_eq!(results.len(), 12, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(PoolError::Terminated))),
        "{results:?}"
    );

    // Cancelled by shutdown(cancel_futures): chunks of 2, 3 handed to the one worker.
    let ex = Arc::new(executor_of(1));
    let s = Scratch::new();
    let results = ex
        .map_chunked(run_job, (0..20).map(|i| s.gated(i)), 2, None)
        .unwrap();
    s.wait_started(0);
    ex.shutdown(false, true);
    s.open();
    let results: Vec<_> = within(LONG, move || results.collect::<Vec<_>>());
    assert_eq!(results.len(), 20, "{results:?}");
    for (i, r) in results.iter().enumerate() {
        if i < 2 * window(1) {
            assert_eq!(*r.as_ref().unwrap(), i as u64, "{results:?}");
        } else {
            assert!(matches!(r, Err(PoolError::Cancelled)), "item {i}: {r:?}");
        }
    }
    drop_within(ex);
}

/// Python's `map(timeout=)`: the limit counts from the call; a result not there by then is
/// a `ResultTimeout`, which ends the iteration and cancels what has not started.
#[test]
fn map_timeout_yields_result_timeout_then_ends_and_cancels_the_rest() {
    let _g = common::guard();
    let ex = executor_of(1);
    ready_crew(&ex);
    let s = Scratch::new();
    let timeout = Duration::from_millis(700);
    let jobs = (0..10).map(|i| if i == 0 { s.quick(i) } else { s.gated(i) });
    let t = Instant::now();
    let mut results = ex.map_timeout(run_job, jobs, timeout).unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 0);
    assert!(matches!(
        results.next(),
        Some(Err(PoolError::ResultTimeout))
    ));
    common::assert_on_time(t.elapsed(), timeout);
    let t = Instant::now();
    assert!(results.next().is_none(), "the timeout ends the iteration");
    assert!(results.next().is_none());
    assert!(t.elapsed() < PROMPTLY);
    drop(results);
    s.open();
    drop_within(ex);
    // When the time ran out, job 0 was done and the window's jobs (1 running, the next
    // handed to the worker) followed it: they ran; the others had not started and were
    // cancelled.
    let w = window(1) as u64;
    for i in 0..=w {
        assert!(s.ran(i), "job {i}");
    }
    for i in w + 1..10 {
        assert!(!s.started(i), "job {i} ran after the map timed out");
    }
}

/// Dropping the iterator of `map` cancels the tasks that have not started (Python's
/// `result_iterator` cancels the remaining futures when it is closed).
#[test]
fn dropping_a_map_early_cancels_the_tasks_not_started() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let jobs = (0..10).map(|i| if i == 0 { s.quick(i) } else { s.gated(i) });
    let mut results = ex.map(run_job, jobs).unwrap();
    assert_eq!(results.next().unwrap().unwrap(), 0);
    s.wait_started(1);
    drop(results);
    s.open();
    drop_within(ex);
    let w = window(1) as u64;
    for i in 0..=w {
        assert!(s.ran(i), "job {i} had been handed to the worker");
    }
    for i in w + 1..10 {
        assert!(!s.started(i), "job {i} ran after its map was dropped");
    }
}

// ---------------------------------------------------------------------------------------------
// as_completed

/// Python's `as_completed`: futures already done first, then in the order they finish.
#[test]
fn as_completed_yields_futures_in_the_order_they_finish() {
    let _g = common::guard();
    let ex = executor_of(4);
    let s = Scratch::new();
    let early = ex.submit(run_job, s.quick(100)).unwrap();
    assert!(early.wait_timeout(LONG));
    let (tx, rx) = mpsc::channel();
    let mut futures: Vec<_> = (0..4)
        .map(|i| {
            let f = ex.submit(run_job, s.own(i)).unwrap();
            let tx = tx.clone();
            f.add_done_callback(move |_| tx.send(i).unwrap());
            f
        })
        .collect();
    for i in 0..4 {
        s.wait_started(i);
    }
    futures.insert(2, early);
    let order = [2, 0, 3, 1];
    // Created before any gate opens: `early` is the only future done.
    let completed = as_completed(futures, Some(LONG));
    let results = race(
        move || {
            completed
                .map(|f| resolve(f.expect("as_completed timed out")).unwrap())
                .collect::<Vec<_>>()
        },
        || {
            // Each gate opens once the job before it has completed in the parent (its
            // callbacks run in the result thread, before the next result is handled).
            for i in order {
                s.open_one(i);
                assert_eq!(rx.recv_timeout(LONG), Ok(i));
            }
        },
    );
    assert_eq!(results, [100, 2, 0, 3, 1]);
    drop_within(ex);
}

#[test]
fn as_completed_yields_every_future_exactly_once() {
    let _g = common::guard();
    let ex = executor_of(2);
    let mut futures = Vec::new();
    for x in 0..300u64 {
        futures.push(match x % 3 {
            0 => ex.submit(panics_on_three, 3).unwrap(),
            1 => ex.submit(nap, x % 7).unwrap(),
            _ => ex.submit(square, x).unwrap(),
        });
    }
    let submitted: HashSet<u64> = futures.iter().map(|f| f.id()).collect();
    let yielded = within(LONG, move || {
        as_completed(futures, None)
            .map(|f| {
                let f = f.expect("no timeout given");
                assert!(f.done(), "handed out before it was done");
                let id = f.id();
                (id, f.result())
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(yielded.len(), 300);
    let seen: HashSet<u64> = yielded.iter().map(|(id, _)| *id).collect();
    assert_eq!(seen, submitted, "each future exactly once");
    let failures = yielded.iter().filter(|(_, r)| r.is_err()).count();
    assert_eq!(failures, 100, "failed futures are handed out too");
    drop_within(ex);
}

#[test]
fn as_completed_timeout_yields_result_timeout_and_into_pending_returns_the_rest() {
    let _g = common::guard();
    let ex = executor_of(2);
    ready_crew(&ex);
    let s = Scratch::new();
    // 0 and 2 finish; 1 and 3 hold the two workers.
    let futures = vec![
        ex.submit(run_job, s.quick(0)).unwrap(),
        ex.submit(run_job, s.gated(1)).unwrap(),
        ex.submit(run_job, s.quick(2)).unwrap(),
        ex.submit(run_job, s.gated(3)).unwrap(),
    ];
    let all: Vec<u64> = futures.iter().map(|f| f.id()).collect();
    let timeout = Duration::from_millis(700);
    let t = Instant::now();
    let mut it = as_completed(futures, Some(timeout));
    let mut quick: Vec<u64> = (0..2)
        .map(|_| resolve(it.next().unwrap().unwrap()).unwrap())
        .collect();
    quick.sort_unstable();
    assert_eq!(quick, [0, 2]);
    assert!(matches!(it.next(), Some(Err(PoolError::ResultTimeout))));
    common::assert_on_time(t.elapsed(), timeout);
    assert!(it.next().is_none(), "the timeout ends the iteration");
    let pending = it.into_pending();
    assert_eq!(
        pending.iter().map(|f| f.id()).collect::<Vec<_>>(),
        [all[1], all[3]]
    );
    assert!(pending.iter().all(|f| !f.done()));
    s.open();
    let rest: Vec<u64> = pending.into_iter().map(|f| resolve(f).unwrap()).collect();
    assert_eq!(rest, [1, 3]);

    // Before any iteration, into_pending gives everything back.
    let futures: Vec<_> = (0..3).map(|x| ex.submit(square, x).unwrap()).collect();
    let back = as_completed(futures, None).into_pending();
    assert_eq!(back.len(), 3);
    let values: Vec<u64> = back.into_iter().map(|f| resolve(f).unwrap()).collect();
    assert_eq!(values, [0, 1, 4]);
    drop_within(ex);
}

#[test]
fn as_completed_of_nothing_ends_at_once() {
    let _g = common::guard();
    let t = Instant::now();
    assert!(
        as_completed(Vec::<PoolFuture<u64>>::new(), None)
            .next()
            .is_none()
    );
    assert!(
        as_completed(Vec::<PoolFuture<u64>>::new(), Some(LONG))
            .next()
            .is_none()
    );
    assert!(
        as_completed(Vec::<PoolFuture<u64>>::new(), Some(Duration::ZERO))
            .next()
            .is_none()
    );
    assert!(t.elapsed() < PROMPTLY);
}

// ---------------------------------------------------------------------------------------------
// executor::wait

/// `executor::wait` run on another thread (`timeout: None` has no bound of its own): the
/// ids of the done and not-done futures, and the futures back.
fn wait_ids<R: Send + 'static>(
    futures: Vec<PoolFuture<R>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
    meanwhile: impl FnOnce(),
) -> (Vec<u64>, Vec<u64>, Duration, Vec<PoolFuture<R>>) {
    race(
        move || {
            let t = Instant::now();
            let waited = executor::wait(&futures, timeout, return_when);
            let took = t.elapsed();
            let (done, not_done) = (ids(&waited.done), ids(&waited.not_done));
            (done, not_done, took, futures)
        },
        meanwhile,
    )
}

#[test]
fn wait_first_completed_returns_when_any_future_is_done() {
    let _g = common::guard();
    let ex = executor_of(3);
    let s = Scratch::new();
    let futures: Vec<_> = (0..3)
        .map(|i| ex.submit(run_job, s.own(i)).unwrap())
        .collect();
    let id = |i: usize| futures[i].id();
    let all = [id(0), id(1), id(2)];
    for i in 0..3 {
        s.wait_started(i);
    }

    // Nothing finishes: the timeout.
    let timeout = Duration::from_millis(200);
    let (done, not_done, took, futures) =
        wait_ids(futures, Some(timeout), ReturnWhen::FirstCompleted, || {});
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(not_done, all);
    common::assert_on_time(took, timeout);

    // No timeout: returns once job 1 finishes, with the others not done.
    let (done, not_done, _, futures) =
        wait_ids(futures, None, ReturnWhen::FirstCompleted, || s.open_one(1));
    assert_eq!(done, [all[1]]);
    assert_eq!(not_done, [all[0], all[2]], "in the given order");

    // Already done: at once.
    let (done, _, took, futures) = wait_ids(futures, Some(LONG), ReturnWhen::FirstCompleted, || {});
    assert_eq!(done, [all[1]]);
    assert!(took < PROMPTLY);

    s.open_one(0);
    s.open_one(2);
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64);
    }
    drop_within(ex);
}

/// `FIRST_EXCEPTION`: returns when a future fails, with the slow ones not done; a cancelled
/// future is done but is no exception; with no failure it is `ALL_COMPLETED`.
#[test]
fn wait_first_exception_returns_at_the_first_failure_only() {
    let _g = common::guard();
    let ex = executor_of(2);
    let s = Scratch::new();
    // One worker runs 0 (stuck); the other runs 1 (fails), then 2 (stuck).
    let futures = vec![
        ex.submit(run_job, s.gated(0)).unwrap(),
        ex.submit(failing_job, s.quick(1)).unwrap(),
        ex.submit(run_job, s.gated(2)).unwrap(),
    ];
    let all: Vec<u64> = futures.iter().map(|f| f.id()).collect();
    let (done, not_done, _, mut futures) =
        wait_ids(futures, None, ReturnWhen::FirstException, || {});
    assert_eq!(done, [all[1]]);
    assert_eq!(not_done, [all[0], all[2]]);
    let failed = futures.remove(1);
    assert!(matches!(failed.error(), Some(PoolError::Panicked(_))));
    s.wait_started(2);

    // A cancelled future does not count as an exception: wait runs to its timeout.
    let mut queued: Vec<_> = (3..3 + window(2) as u64)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let cancelled = queued.pop().unwrap();
    assert!(cancelled.cancel());
    let cancelled_id = cancelled.id();
    futures.push(cancelled);
    let timeout = Duration::from_millis(300);
    let (done, not_done, took, futures) =
        wait_ids(futures, Some(timeout), ReturnWhen::FirstException, || {});
    assert_eq!(done, [cancelled_id]);
    assert_eq!(not_done, [all[0], all[2]]);
    common::assert_on_time(took, timeout);
    // FIRST_COMPLETED counts it.
    let (done, _, took, futures) = wait_ids(futures, Some(LONG), ReturnWhen::FirstCompleted, || {});
    assert_eq!(done, [cancelled_id]);
    assert!(took < PROMPTLY);

    // No failure among them: returns when everything is done.
    let (done, not_done, _, futures) =
        wait_ids(futures, None, ReturnWhen::FirstException, || s.open());
    assert_eq!(done, [all[0], all[2], cancelled_id]);
    assert!(not_done.is_empty());
    for f in futures.into_iter().chain(queued) {
        assert!(f.wait_timeout(LONG));
    }
    drop_within(ex);
}

#[test]
fn wait_all_completed_with_and_without_timeout() {
    let _g = common::guard();
    let ex = executor_of(2);
    let s = Scratch::new();
    // Quick and gated jobs in turn: 0 and 2 finish, 1 and 3 hold the two workers, 4 and 5
    // wait for them.
    let futures: Vec<_> = (0..6)
        .map(|i| {
            let job = if i % 2 == 0 { s.quick(i) } else { s.gated(i) };
            ex.submit(run_job, job).unwrap()
        })
        .collect();
    let all: Vec<u64> = futures.iter().map(|f| f.id()).collect();
    s.wait_started(1);
    s.wait_started(3);
    let timeout = Duration::from_millis(300);
    let (done, not_done, took, futures) =
        wait_ids(futures, Some(timeout), ReturnWhen::AllCompleted, || {});
    common::assert_on_time(took, timeout);
    assert_eq!(done, [all[0], all[2]]);
    assert_eq!(not_done, [all[1], all[3], all[4], all[5]]);
    let (done, not_done, _, futures) =
        wait_ids(futures, None, ReturnWhen::AllCompleted, || s.open());
    assert_eq!(done, all);
    assert!(not_done.is_empty());
    // All done already: at once.
    let (done, _, took, futures) = wait_ids(futures, None, ReturnWhen::AllCompleted, || {});
    assert_eq!(done, all);
    assert!(took < PROMPTLY);
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64);
    }
    drop_within(ex);
}

#[test]
fn wait_on_nothing_or_on_futures_already_done_returns_at_once() {
    let _g = common::guard();
    let ex = executor_of(2);
    let futures: Vec<_> = (0..4).map(|x| ex.submit(square, x).unwrap()).collect();
    let failed = ex.submit(always_panics, ()).unwrap();
    for f in &futures {
        assert!(f.wait_timeout(LONG));
    }
    assert!(failed.wait_timeout(LONG));
    let mut futures = futures;
    futures.push(failed);
    for mode in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let (done, not_done, took, back) = wait_ids(futures, None, mode, || {});
        futures = back;
        assert_eq!(done.len(), 5, "{mode:?}");
        assert!(not_done.is_empty(), "{mode:?}");
        assert!(took < PROMPTLY, "{mode:?}");
        let (done, not_done, took, _) = wait_ids(Vec::<PoolFuture<u64>>::new(), None, mode, || {});
        assert!(done.is_empty() && not_done.is_empty() && took < PROMPTLY);
    }
    assert_eq!(ReturnWhen::default(), ReturnWhen::AllCompleted);
    drop_within(ex);
}

// ---------------------------------------------------------------------------------------------
// shutdown, drop, terminate

/// `shutdown(wait = true)` returns once every submitted task is done (also those still in
/// the parent when it was called) and the workers have exited.
#[test]
fn shutdown_wait_waits_for_all_submitted_work() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let workers = full_crew(&ex);
    let s = Scratch::new();
    let futures: Vec<_> = (0..12)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let ex2 = ex.clone();
    let (done_then, futures) = race(
        move || {
            ex2.shutdown(true, false);
            let done = futures.iter().filter(|f| f.done()).count();
            (done, futures)
        },
        || {
            s.wait_started(0);
            s.open();
        },
    );
    assert_eq!(done_then, 12, "shutdown returned before the work was done");
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64);
    }
    assert_eq!(ex.pids(), Vec::<u32>::new(), "no workers after shutdown");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} still running after shutdown");
    }
    assert!(matches!(ex.submit(square, 1), Err(PoolError::Closed)));
    // Again: nothing to do.
    let ex2 = ex.clone();
    within(PROMPTLY, move || ex2.shutdown(true, false));
    drop_within(ex);
}

#[test]
fn shutdown_without_wait_returns_at_once_and_the_work_completes() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let futures: Vec<_> = (0..10)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    let ex2 = ex.clone();
    within(PROMPTLY, move || ex2.shutdown(false, false));
    assert!(futures.iter().all(|f| !f.done() && !f.cancelled()));
    assert!(matches!(ex.submit(square, 1), Err(PoolError::Closed)));
    assert!(matches!(ex.map(square, [1, 2]), Err(PoolError::Closed)));
    s.open();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64);
    }
    // The workers exit by themselves once the work is done.
    assert!(
        common::wait_until(Instant::now() + PROMPTLY, || ex.pids().is_empty()),
        "workers {:?} after the work was done",
        ex.pids()
    );
    drop_within(ex);
}

/// Python's `shutdown(cancel_futures=True)`: the tasks that have not started are cancelled,
/// the running ones (and those handed to the workers) finish; with `wait`, it returns once
/// they have.
#[test]
fn shutdown_cancel_futures_cancels_queued_tasks_and_lets_running_ones_finish() {
    let _g = common::guard();
    let w = window(2) as u64;
    for wait in [false, true] {
        let ex = Arc::new(executor_of(2));
        let s = Scratch::new();
        let futures: Vec<_> = (0..12)
            .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
            .collect();
        s.wait_started(0);
        s.wait_started(1);
        let (tx, rx) = mpsc::channel();
        futures[11].add_done_callback(move |r| {
            let _ = tx.send(matches!(r, Err(PoolError::Cancelled)));
        });
        let ex2 = ex.clone();
        let (done_then, futures) = race(
            move || {
                ex2.shutdown(wait, true);
                let done = futures.iter().filter(|f| f.done()).count();
                (done, futures)
            },
            || {
                // The queued tasks are cancelled before shutdown waits for the others.
                let cancelled = rx
                    .recv_timeout(LONG)
                    .expect("the last task was not cancelled");
                assert!(cancelled, "wait {wait}: the last task was not cancelled");
                s.open();
            },
        );
        if wait {
            assert_eq!(
                done_then, 12,
                "shutdown(wait) returned before the work was done"
            );
        }
        for (i, f) in futures.into_iter().enumerate() {
            let r = resolve(f);
            if (i as u64) < w {
                assert_eq!(r.unwrap(), i as u64, "wait {wait}");
            } else {
                assert!(matches!(r, Err(PoolError::Cancelled)), "wait {wait}: {r:?}");
            }
        }
        drop_within(ex);
        for i in w..12 {
            assert!(!s.started(i), "wait {wait}: cancelled job {i} ran");
        }
    }
}

/// Dropping the executor is `shutdown(wait = true)` (Python's `with` block): the work
/// finishes first, and the futures outlive the executor.
#[test]
fn dropping_the_executor_waits_for_its_work() {
    let _g = common::guard();
    let ex = executor_of(2);
    let workers = full_crew(&ex);
    let s = Scratch::new();
    let futures: Vec<_> = (0..12)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let (done_then, futures) = race(
        move || {
            drop(ex);
            let done = futures.iter().filter(|f| f.done()).count();
            (done, futures)
        },
        || {
            s.wait_started(0);
            s.open();
        },
    );
    assert_eq!(done_then, 12, "the drop returned before the work was done");
    for f in &futures {
        assert!(!f.running() && !f.cancel() && !f.cancelled());
    }
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), i as u64);
    }
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its executor");
    }
}

/// `terminate` (no Python equivalent): the workers are killed at once; every future not
/// done fails with `Terminated`; finished ones keep their values.
#[test]
fn terminate_fails_unfinished_futures_with_terminated_promptly() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let workers = full_crew(&ex);
    let finished = ex.submit(square, 2).unwrap();
    assert!(finished.wait_timeout(LONG));
    let s = Scratch::new();
    let futures: Vec<_> = (0..12)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    s.wait_started(1);
    let t = Instant::now();
    let ex2 = ex.clone();
    within(LONG, move || ex2.terminate());
    assert!(t.elapsed() < PROMPTLY, "terminate took {:?}", t.elapsed());
    for f in futures {
        assert!(f.done(), "not failed by terminate: {f:?}");
        assert!(matches!(resolve(f), Err(PoolError::Terminated)));
    }
    assert_eq!(resolve(finished).unwrap(), 4);
    for pid in workers {
        assert!(!alive(pid), "worker {pid} still running after terminate");
    }
    assert!(matches!(ex.submit(square, 1), Err(PoolError::Closed)));
    let ex2 = ex.clone();
    within(PROMPTLY, move || ex2.shutdown(true, true));
    drop_within(ex);
    for i in 2..12 {
        assert!(!s.ran(i), "job {i} ran after terminate");
    }
}

/// Threads blocked without a timeout in `as_completed`, `wait` and `result` are released
/// by `terminate` (every future becomes done).
#[test]
fn terminate_releases_threads_blocked_in_as_completed_wait_and_result() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(2));
    let s = Scratch::new();
    let submit = |ids: std::ops::Range<u64>| -> Vec<_> {
        ids.map(|i| ex.submit(run_job, s.gated(i)).unwrap())
            .collect()
    };
    let (a, b, c) = (submit(0..4), submit(4..8), submit(8..9));
    let (tx, rx) = mpsc::channel();
    let tx2 = tx.clone();
    let tx3 = tx.clone();
    std::thread::spawn(move || {
        let errors = as_completed(a, None)
            .filter(|f| matches!(f.as_ref().unwrap().error(), Some(PoolError::Terminated)))
            .count();
        tx.send(("as_completed", errors)).unwrap();
    });
    std::thread::spawn(move || {
        let waited = executor::wait(&b, None, ReturnWhen::AllCompleted);
        tx2.send(("wait", waited.done.len())).unwrap();
    });
    std::thread::spawn(move || {
        let r = c.into_iter().next().unwrap().result();
        tx3.send(("result", matches!(r, Err(PoolError::Terminated)) as usize))
            .unwrap();
    });
    s.wait_started(0);
    let ex2 = ex.clone();
    within(PROMPTLY, move || ex2.terminate());
    let mut released: Vec<_> = (0..3)
        .map(|_| {
            rx.recv_timeout(PROMPTLY)
                .expect("a thread is still blocked")
        })
        .collect();
    released.sort();
    assert_eq!(released, [("as_completed", 4), ("result", 1), ("wait", 4)]);
    drop_within(ex);
}

// ---------------------------------------------------------------------------------------------
// Workers that die
//
// Python's ProcessPoolExecutor marks itself broken when a worker dies: every pending future
// fails with BrokenProcessPool and the executor refuses new work. Here the future of the
// task the dead worker was running fails with WorkerDied (naming the signal), a new worker
// takes its place, and every other future completes.

/// A task that ends its worker fails only its own future, with `WorkerDied` naming
/// `signal_name`; the futures submitted before and after complete; the executor goes on.
fn check_death_fails_only_its_future(task: fn(u64) -> u64, signal_name: &str) {
    let _g = common::guard();
    let ex = executor_of(2);
    let before = ready_crew(&ex);
    let futures: Vec<_> = (0..40).map(|x| ex.submit(task, x).unwrap()).collect();
    let mut dead = None;
    for (x, f) in futures.into_iter().enumerate() {
        match resolve(f) {
            Err(PoolError::WorkerDied {
                name, pid, cause, ..
            }) if x as u64 == DEADLY => {
                assert!(cause.contains(signal_name), "{cause:?}");
                assert!(before.contains(&pid), "pid {pid} is not one of {before:?}");
                assert!(name.starts_with("ProcessPoolExecutorWorker"), "{name}");
                dead = Some(pid);
            }
            Ok(v) if x as u64 != DEADLY => assert_eq!(v, x as u64 * 10),
            other => panic!("task {x}: {other:?}"),
        }
    }
    let dead = dead.unwrap();
    let after = full_crew(&ex);
    assert!(!after.contains(&dead), "{dead} replaced: {after:?}");
    // Usable: more of the same, the deadly input among them.
    let again: Vec<_> = ex.map(task, 0..20).unwrap().collect();
    assert_eq!(again.len(), 20);
    for (x, r) in again.iter().enumerate() {
        match r {
            Err(e) if x as u64 == DEADLY => assert!(is_worker_died_by(e, signal_name), "{e:?}"),
            Ok(v) if x as u64 != DEADLY => assert_eq!(*v, x as u64 * 10),
            other => panic!("task {x}: {other:?}"),
        }
    }
    assert_eq!(full_crew(&ex).len(), 2);
    drop_within(ex);
}

#[test]
fn a_task_that_aborts_fails_only_its_own_future() {
    check_death_fails_only_its_future(aborts_on_13, "SIGABRT");
}

#[test]
fn a_task_that_segfaults_fails_only_its_own_future() {
    check_death_fails_only_its_future(segfaults_on_13, "SIGSEGV");
}

#[test]
fn a_task_that_sigkills_its_worker_fails_only_its_own_future() {
    check_death_fails_only_its_future(kills_itself_on_13, "SIGKILL");
}

/// A worker killed from outside in the middle of a task: that future fails with
/// `WorkerDied`, promptly; the replacement worker takes the queued work at once.
#[test]
fn a_worker_killed_from_outside_fails_only_its_task() {
    let _g = common::guard();
    let ex = executor_of(2);
    ready_crew(&ex);
    let s = Scratch::new();
    let stuck = [
        ex.submit(run_job, s.gated(0)).unwrap(),
        ex.submit(run_job, s.gated(1)).unwrap(),
    ];
    let victim = s.wait_started(0);
    s.wait_started(1);
    let quick: Vec<_> = (0..30).map(|x| ex.submit(square, x).unwrap()).collect();
    assert!(quick.iter().all(|f| !f.done()), "both workers are busy");
    let t = Instant::now();
    signal(victim, libc::SIGKILL);
    let [first, second] = stuck;
    match resolve(first) {
        Err(PoolError::WorkerDied { pid, cause, .. }) => {
            assert_eq!(pid, victim);
            assert!(cause.contains("SIGKILL"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < PROMPTLY, "took {:?}", t.elapsed());
    // Job 1 still holds the other worker: the new worker runs all of these.
    for (x, f) in quick.into_iter().enumerate() {
        assert_eq!(resolve(f).unwrap(), (x * x) as u64);
    }
    assert!(!second.done());
    assert!(!ex.pids().contains(&victim));
    s.open();
    assert_eq!(resolve(second).unwrap(), 1);
    assert_eq!(resolve(ex.submit(square, 7).unwrap()).unwrap(), 49);
    drop_within(ex);
}

/// Random workers killed over and over while ~2000 small tasks (submitted before and
/// between the kills) run: every future resolves, with its value or `WorkerDied` (at most
/// one per kill), none hangs, and the executor goes on.
#[test]
fn killing_random_workers_while_2000_tasks_run_resolves_every_future() {
    let _g = common::guard();
    let ex = executor_of(2);
    let mut rng = Rng::new();
    let seed = rng.0;
    const TOTAL: u64 = 2000;
    const FIRST: u64 = 1000;
    const KILLS: usize = 20;
    let mut futures: Vec<PoolFuture<u64>> = Vec::with_capacity(TOTAL as usize);
    let submit = |futures: &mut Vec<PoolFuture<u64>>, n: u64| {
        for _ in 0..n {
            let x = futures.len() as u64;
            futures.push(ex.submit(spin_then_triple, (x, 2)).unwrap());
        }
    };
    submit(&mut futures, FIRST);
    let mut victims = Vec::new();
    let mut kills_during_work = 0;
    let started = Instant::now();
    while victims.len() < KILLS {
        std::thread::sleep(Duration::from_millis(20 + rng.below(50)));
        let pending = futures.iter().any(|f| !f.done());
        if !pending && futures.len() as u64 == TOTAL {
            break;
        }
        victims.push(kill_random_worker(&ex, &mut rng));
        kills_during_work += pending as usize;
        let more = (TOTAL - futures.len() as u64).min((TOTAL - FIRST) / KILLS as u64);
        submit(&mut futures, more);
    }
    let left = TOTAL - futures.len() as u64;
    submit(&mut futures, left);
    let deadline = Instant::now() + LONG;
    let mut failed = Vec::new();
    for (x, f) in futures.into_iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        match f.result_timeout(left) {
            Ok(v) => assert_eq!(v, x as u64 * 3, "(seed {seed}) task {x}"),
            Err(PoolError::WorkerDied { pid, cause, .. })
                if victims.contains(&pid) && cause.contains("SIGKILL") =>
            {
                failed.push(x)
            }
            Err(e) => panic!("(seed {seed}) task {x}: {e:?}"),
        }
    }
    eprintln!(
        "{} kills ({kills_during_work} while tasks ran) failed {} of {TOTAL} tasks in {:?}",
        victims.len(),
        failed.len(),
        started.elapsed()
    );
    assert!(
        failed.len() <= victims.len(),
        "(seed {seed}) {} kills failed tasks {failed:?}",
        victims.len()
    );
    assert!(
        kills_during_work >= 5,
        "(seed {seed}) only {kills_during_work} kills landed while tasks ran"
    );
    assert_eq!(full_crew(&ex).len(), 2);
    let squares: Vec<u64> = ex
        .map(square, 0..100)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
    drop_within(ex);
}

// ---------------------------------------------------------------------------------------------
// Builder settings: task_timeout, max_tasks_per_child, initializer

#[test]
fn a_task_past_the_task_timeout_fails_with_timeout_and_its_worker_is_replaced() {
    let _g = common::guard();
    let timeout = Duration::from_millis(300);
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .task_timeout(timeout)
        .build()
        .unwrap();
    let before = ready_crew(&ex);
    let t = Instant::now();
    let slow = ex.submit(nap, 20_000).unwrap();
    let short: Vec<_> = (0..6).map(|_| ex.submit(nap, 20).unwrap()).collect();
    let killed = match resolve(slow) {
        Err(PoolError::Timeout { after, pid, name }) => {
            assert_eq!(after, timeout);
            assert!(before.contains(&pid), "{pid} not in {before:?}");
            assert!(name.starts_with("ProcessPoolExecutorWorker"), "{name}");
            pid
        }
        other => panic!("{other:?}"),
    };
    let took = t.elapsed();
    assert!(
        took >= timeout && took < PROMPTLY,
        "timed out after {took:?} with a {timeout:?} timeout"
    );
    for f in short {
        assert_eq!(resolve(f).unwrap(), 20);
    }
    let after = full_crew(&ex);
    assert!(!after.contains(&killed), "{killed} replaced: {after:?}");
    assert_eq!(resolve(ex.submit(square, 4).unwrap()).unwrap(), 16);
    // The limit is on running, not on waiting: 3 tasks of 200 ms in a row per worker.
    let queued: Vec<_> = (0..6).map(|_| ex.submit(nap, 200).unwrap()).collect();
    for f in queued {
        assert_eq!(resolve(f).unwrap(), 200);
    }
    drop_within(ex);
}

/// `max_tasks_per_child`: each worker runs at most that many tasks, then a new one (new
/// pid) takes its place; the initializer runs once in each, never in the parent.
#[test]
fn max_tasks_per_child_replaces_workers_and_the_initializer_runs_in_each() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(3)
        .initializer(count_init, 7)
        .build()
        .unwrap();
    let first = full_crew(&ex);
    let futures: Vec<_> = (0..30).map(|x| ex.submit(init_state, x).unwrap()).collect();
    let seen: Vec<(u64, u64, u32)> = futures.into_iter().map(|f| resolve(f).unwrap()).collect();
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for s in &seen {
        *per_worker.entry(s.2).or_default() += 1;
    }
    assert!(
        per_worker.values().all(|&n| n <= 3) && per_worker.len() >= 10,
        "30 tasks, at most 3 per worker: {per_worker:?}"
    );
    assert!(
        seen.iter().all(|s| s.0 == 1 && s.1 == 7),
        "every worker ran the initializer once: {seen:?}"
    );
    assert_eq!(INIT_CALLS.load(Ordering::SeqCst), 0, "never in the parent");
    let now = full_crew(&ex);
    assert_ne!(now, first, "the workers changed");
    drop_within(ex);
}

/// An initializer that fails (panics or kills its process) fails the futures with
/// `InitializerFailed`, promptly, and the executor does not start workers over and over.
fn check_initializer_failure(ex: ProcessPoolExecutor, expected: &str) {
    let t = Instant::now();
    let outcomes: Vec<Result<u64, PoolError>> = (0..10)
        .map(|x| {
            ex.submit(square, x)
                .and_then(|f| resolve_within(f, PROMPTLY))
        })
        .collect();
    assert!(t.elapsed() < PROMPTLY, "took {:?}", t.elapsed());
    for r in &outcomes {
        match r {
            Err(e @ PoolError::InitializerFailed(report)) => {
                assert!(report.message.contains(expected), "{report:?}");
                assert!(e.to_string().contains(expected), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    let mapped: Vec<_> = match ex.map(square, 0..3) {
        Ok(it) => it.collect(),
        Err(e) => vec![Err(e)],
    };
    assert!(
        mapped
            .iter()
            .all(|r| matches!(r, Err(PoolError::InitializerFailed(_)))),
        "{mapped:?}"
    );
    // No endless respawning: the workers are gone and stay gone.
    assert!(
        common::wait_until(Instant::now() + PROMPTLY, || ex.pids().is_empty()),
        "workers {:?}",
        ex.pids()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ex.pids(), Vec::<u32>::new(), "workers started again");
    drop_within(ex);
}

#[test]
fn a_panicking_initializer_fails_futures_with_initializer_failed() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, 0)
        .build()
        .unwrap();
    check_initializer_failure(ex, "the initializer refuses");
}

#[test]
fn an_initializer_that_aborts_fails_futures_with_initializer_failed() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(aborting_init, 0)
        .build()
        .unwrap();
    check_initializer_failure(ex, "SIGABRT");
}

// ---------------------------------------------------------------------------------------------
// async: a PoolFuture is a std::future::Future

/// Drop the executor (which waits for its work) off the runtime's threads.
async fn drop_off_runtime(ex: ProcessPoolExecutor) {
    tokio::time::timeout(LONG, tokio::task::spawn_blocking(move || drop(ex)))
        .await
        .expect("dropping the executor hangs")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_futures_awaited_concurrently_on_a_multi_thread_runtime() {
    let _g = common::guard();
    let ex = executor_of(2);
    let mut set = tokio::task::JoinSet::new();
    for x in 0..300u64 {
        let f = ex.submit(square, x).unwrap();
        set.spawn(async move { (x, f.await) });
    }
    let mut seen = HashSet::new();
    while let Some(joined) = tokio::time::timeout(LONG, set.join_next())
        .await
        .expect("a future never resolved")
    {
        let (x, r) = joined.expect("the awaiting task panicked");
        assert_eq!(r.unwrap(), x * x);
        assert!(seen.insert(x));
    }
    assert_eq!(seen.len(), 300);

    let (a, b, c) = tokio::time::timeout(LONG, async {
        tokio::join!(
            ex.submit(nap, 100).unwrap(),
            ex.submit(square, 7).unwrap(),
            ex.submit(always_panics, ()).unwrap()
        )
    })
    .await
    .expect("join! hangs");
    assert_eq!(a.unwrap(), 100);
    assert_eq!(b.unwrap(), 49);
    assert!(matches!(c, Err(PoolError::Panicked(_))));

    let spawned = tokio::spawn(ex.submit(square, 9).unwrap());
    assert_eq!(
        tokio::time::timeout(LONG, spawned)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        81
    );
    drop_off_runtime(ex).await;
}

#[tokio::test(flavor = "current_thread")]
async fn many_futures_awaited_concurrently_on_a_current_thread_runtime() {
    let _g = common::guard();
    let ex = executor_of(2);
    let handles: Vec<_> = (0..100u64)
        .map(|x| {
            let f = ex.submit(square, x).unwrap();
            tokio::spawn(f)
        })
        .collect();
    for (x, h) in handles.into_iter().enumerate() {
        let r = tokio::time::timeout(LONG, h).await.expect("hangs").unwrap();
        assert_eq!(r.unwrap(), (x * x) as u64);
    }
    let (a, b) = tokio::join!(ex.submit(nap, 50).unwrap(), ex.submit(square, 3).unwrap());
    assert_eq!((a.unwrap(), b.unwrap()), (50, 9));
    drop_off_runtime(ex).await;
}

/// A tokio interval keeps ticking (every 10 ms, never a gap near the task's length) while
/// a task of the runtime awaits a 300 ms task: awaiting does not block the runtime's
/// thread. Both run as spawned tasks, so on a runtime of one worker thread they share it
/// (the test's own body runs on another thread under `#[tokio::test]`).
async fn a_timer_keeps_ticking_while_a_task_runs() {
    let _g = common::guard();
    let ex = executor_of(1);
    assert_eq!(
        tokio::time::timeout(LONG, ex.submit(square, 2).unwrap())
            .await
            .unwrap()
            .unwrap(),
        4,
        "warm up"
    );
    let ticks = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                ticks.lock().unwrap().push(Instant::now());
            }
        })
    };
    // Measured before the submit: the worker naps from about then, so the spawned task may
    // start late on a loaded machine and see less than the whole nap.
    let start = Instant::now();
    let slow = ex.submit(nap, 300).unwrap();
    let awaiting = tokio::spawn(async move {
        let r = slow.await;
        (start, r, Instant::now())
    });
    let (start, r, end) = tokio::time::timeout(LONG, awaiting)
        .await
        .expect("the task never finished")
        .unwrap();
    ticker.abort();
    assert_eq!(r.unwrap(), 300);
    assert!(end - start >= Duration::from_millis(300));
    let mut times: Vec<Instant> = ticks
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| (start..end).contains(t))
        .collect();
    let n = times.len();
    times.insert(0, start);
    times.push(end);
    let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(n >= 10, "{n} ticks during the 300 ms task");
    assert!(
        longest < Duration::from_millis(200),
        "the runtime stalled for {longest:?} while awaiting"
    );
    drop_off_runtime(ex).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_timer_keeps_ticking_on_a_current_thread_runtime_while_a_task_runs() {
    a_timer_keeps_ticking_while_a_task_runs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_timer_keeps_ticking_on_a_one_thread_multi_thread_runtime_while_a_task_runs() {
    a_timer_keeps_ticking_while_a_task_runs().await;
}

/// Awaiting gives the error of a failed, cancelled or terminated future, also when the
/// cancellation or termination happens while a task awaits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_a_failed_cancelled_or_terminated_future_gives_the_error() {
    let _g = common::guard();
    let ex = Arc::new(executor_of(1));
    let failed = ex.submit(always_panics, ()).unwrap();
    match tokio::time::timeout(LONG, failed).await.expect("hangs") {
        Err(PoolError::Panicked(p)) => assert_eq!(p.message, "no luck"),
        other => panic!("{other:?}"),
    }

    let s = Scratch::new();
    let w = window(1) as u64;
    let busy: Vec<_> = (0..w)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    let cancelled = ex.submit(run_job, s.gated(w)).unwrap();
    assert!(cancelled.cancel());
    assert!(matches!(
        tokio::time::timeout(LONG, cancelled).await.expect("hangs"),
        Err(PoolError::Cancelled)
    ));

    // Cancelled by shutdown(cancel_futures) while awaited.
    let queued: Vec<_> = (w + 1..w + 4)
        .map(|i| {
            let f = ex.submit(run_job, s.gated(i)).unwrap();
            tokio::spawn(f)
        })
        .collect();
    tokio::task::yield_now().await;
    ex.shutdown(false, true);
    for h in queued {
        let r = tokio::time::timeout(LONG, h).await.expect("hangs").unwrap();
        assert!(matches!(r, Err(PoolError::Cancelled)), "{r:?}");
    }

    // Terminated while awaited.
    let running: Vec<_> = busy.into_iter().map(tokio::spawn).collect();
    s.wait_started(0);
    let ex2 = ex.clone();
    tokio::task::spawn_blocking(move || ex2.terminate())
        .await
        .unwrap();
    for h in running {
        let r = tokio::time::timeout(LONG, h).await.expect("hangs").unwrap();
        assert!(matches!(r, Err(PoolError::Terminated)), "{r:?}");
    }
    let ex = Arc::into_inner(ex).expect("the only handle");
    drop_off_runtime(ex).await;
}

/// A future polled by one task and then another (each poll with a different waker), or
/// given up on by `timeout` several times, still wakes its last poller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_polled_with_changing_wakers_still_completes() {
    let _g = common::guard();
    let ex = executor_of(1);
    let s = Scratch::new();
    let mut f = ex.submit(run_job, s.gated(0)).unwrap();
    for _ in 0..5 {
        assert!(
            tokio::time::timeout(Duration::from_millis(5), &mut f)
                .await
                .is_err(),
            "done before the gate opened"
        );
    }
    let h = tokio::spawn(f);
    tokio::task::yield_now().await;
    s.open();
    let r = tokio::time::timeout(LONG, h)
        .await
        .expect("the last poller was never woken")
        .unwrap();
    assert_eq!(r.unwrap(), 0);
    drop_off_runtime(ex).await;
}

// ---------------------------------------------------------------------------------------------
// Each start method

fn executor_runs_tasks(method: StartMethod) {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(2)
        .start_method(method)
        .initializer(count_init, 5)
        .build()
        .unwrap();
    assert_eq!(resolve(ex.submit(square, 11).unwrap()).unwrap(), 121);
    let squares: Vec<u64> = ex
        .map_chunked(square, 0..100, 10, None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(squares, (0..100).map(|x| x * x).collect::<Vec<_>>());
    let futures: Vec<_> = (0..20).map(|x| ex.submit(init_state, x).unwrap()).collect();
    let seen: Vec<_> = as_completed(futures, Some(LONG))
        .map(|f| f.unwrap().result().unwrap())
        .collect();
    assert_eq!(seen.len(), 20);
    assert!(seen.iter().all(|s| s.0 == 1 && s.1 == 5), "{seen:?}");

    // Cancellation beyond the window.
    let s = Scratch::new();
    let futures: Vec<_> = (0..8)
        .map(|i| ex.submit(run_job, s.gated(i)).unwrap())
        .collect();
    s.wait_started(0);
    assert!(futures[7].cancel());
    s.open();
    for (i, f) in futures.into_iter().enumerate() {
        let r = resolve(f);
        if i == 7 {
            assert!(matches!(r, Err(PoolError::Cancelled)), "{r:?}");
        } else {
            assert_eq!(r.unwrap(), i as u64);
        }
    }

    // A dying task: only its future fails.
    let futures: Vec<_> = (10..16)
        .map(|x| ex.submit(aborts_on_13, x).unwrap())
        .collect();
    for (x, f) in (10..16).zip(futures) {
        match resolve(f) {
            Err(e) if x == DEADLY => assert!(is_worker_died_by(&e, "SIGABRT"), "{e:?}"),
            Ok(v) if x != DEADLY => assert_eq!(v, x * 10),
            other => panic!("task {x}: {other:?}"),
        }
    }
    assert_eq!(full_crew(&ex).len(), 2);
    assert_eq!(resolve(ex.submit(init_state, 0).unwrap()).unwrap().0, 1);
    drop_within(ex);
    assert!(!s.started(7));
}

per_start_method!(executor_runs_tasks);
