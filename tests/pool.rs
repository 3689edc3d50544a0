//! Specification of the process pool, `Pool` (Python's `multiprocessing.Pool`): `map`,
//! `starmap`, `imap`, `imap_unordered`, `apply` and their `_async` forms, `AsyncResult`,
//! the builder's settings, the pool's life cycle (`close`, `join`, `terminate`, drop), and
//! above all that failures stay local: a task that panics, a worker that dies (aborts,
//! segfaults, is killed from outside) or an item that runs too long fails only its own item,
//! never hangs the pool, and the pool goes on with a new worker.
//!
//! A few tests run once per start method (see `per_start_method!` at the end of the file);
//! the others use the default start method.
//!
//! Where the pool could plausibly hang (deaths, kills, timeouts, shutdown, callbacks), the
//! blocking calls run under `within`, `on_pool` or `race`, or use `get_timeout`, with a bound
//! (`LONG`) that only a broken library reaches. Every test holds `common::guard()`, so a pool
//! that leaves a worker behind fails the test.
//!
//! `cargo nextest run --test pool --run-ignored only`.

#[macro_use]
mod common;

use common::children::{LONG, abort_without_core, within};

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use multiproc::{Lock, Pool, PoolError, StartMethod};

/// Generous bound for things that take milliseconds (a worker noticed dead and replaced, a
/// timeout enforced), so a loaded 2-core machine does not fail them.
const PROMPTLY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Tasks run by the workers of these tests.

fn square(x: u64) -> u64 {
    x * x
}

fn double(x: i64) -> i64 {
    2 * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn describe3(name: String, times: u32, suffix: char) -> String {
    format!("{}{suffix}", name.repeat(times as usize))
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

/// (the item, the worker's pid): which worker ran which item.
fn item_and_pid(x: u64) -> (u64, u32) {
    (x, std::process::id())
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn nap_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

fn len_of(v: Vec<u8>) -> usize {
    v.len()
}

/// The message of the panic in `panics_on_three` (the test finds its line by this text).
const THREE_MESSAGE: &str = "three is not allowed";

fn panics_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three is not allowed");
    }
    if x == 7 {
        panic!("seven is not allowed either");
    }
    x * 10
}

fn panics_on_seven_quickly_three_slowly(x: u64) -> u64 {
    if x == 3 {
        std::thread::sleep(Duration::from_millis(300));
        panic!("three is not allowed");
    }
    if x == 7 {
        panic!("seven is not allowed either");
    }
    x * 10
}

fn always_panics(_: ()) -> u64 {
    panic!("no luck")
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

fn aborts_on_four(x: u64) -> u64 {
    if x == 4 {
        abort_without_core();
    }
    x * 10
}

fn segfaults_on_four(x: u64) -> u64 {
    if x == 4 {
        die_by_signal(libc::SIGSEGV);
    }
    x * 10
}

/// SIGKILL sent to itself with `kill(getpid())`, as another process would.
fn kills_itself_on_four(x: u64) -> u64 {
    if x == 4 {
        // SAFETY: kill and getpid have no preconditions; the process ends here.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        std::thread::sleep(LONG);
    }
    x * 10
}

/// A little work per item, so that a long map lasts long enough to be hit by a kill.
fn busy(x: u64) -> u64 {
    let mut acc = x;
    for i in 0..SPIN {
        acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    black_box(acc);
    x.wrapping_mul(3)
}

/// Iterations of `busy`'s loop: about 6 µs per item in a debug build, so a long map
/// (`LONG_MAP` items) lasts about 300 ms on two workers.
const SPIN: u64 = 500;

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

fn takes_lock(lock: Lock) -> bool {
    matches!(lock.try_acquire(), Ok(Some(_)))
}

fn makes_lock(_: u64) -> Lock {
    Lock::new().expect("creating a lock in a worker")
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn pool(n: usize) -> Pool {
    Pool::new(n).unwrap_or_else(|e| panic!("starting a pool of {n}: {e}"))
}

/// Close the pool and wait (at most `LONG`) for its workers to exit.
fn close_and_join(pool: impl Into<Arc<Pool>>) {
    let pool = pool.into();
    pool.close();
    on_pool(&pool, |p| p.join()).expect("joining a closed pool");
}

/// Run `f` with the pool on another thread; fail the test if it does not return within
/// `LONG` (a hang).
fn on_pool<T: Send + 'static>(pool: &Arc<Pool>, f: impl FnOnce(&Pool) -> T + Send + 'static) -> T {
    let pool = pool.clone();
    within(LONG, move || f(&pool))
}

/// Whether the process `pid` is there and not dead.
fn alive(pid: u32) -> bool {
    common::proc_stat(pid).is_some_and(|p| !p.is_dead())
}

/// Wait until the pool has its full number of workers, all alive; their pids.
fn full_crew(pool: &Pool) -> Vec<u32> {
    let mut pids = Vec::new();
    let ok = common::wait_until(Instant::now() + PROMPTLY, || {
        pids = pool.pids();
        pids.len() == pool.processes() && pids.iter().all(|&p| alive(p))
    });
    assert!(
        ok,
        "the pool has workers {pids:?}, expected {} live ones",
        pool.processes()
    );
    pids
}

/// Wait until every worker of the pool has started and taken work (so it is past its start-up
/// and initializer); their pids.
fn ready_crew(pool: &Pool) -> Vec<u32> {
    let deadline = Instant::now() + LONG;
    loop {
        let crew: HashSet<u32> = full_crew(pool).into_iter().collect();
        let n = pool.processes();
        let ran: HashSet<u32> = pool
            .chunksize(1)
            .map(nap_then_pid, vec![20; 4 * n])
            .expect("warming up the pool")
            .into_iter()
            .collect();
        if ran == crew && pool.pids().len() == n {
            return crew.into_iter().collect();
        }
        assert!(
            Instant::now() < deadline,
            "workers {crew:?}, {ran:?} took work"
        );
    }
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

// ---------------------------------------------------------------------------------------------
// map, starmap, apply

#[test]
fn map_returns_results_in_input_order() {
    let _g = common::guard();
    let pool = pool(2);
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..1000).unwrap(), expected);
    assert_eq!(
        pool.chunksize(1).map(square, 0..100).unwrap(),
        expected[..100]
    );
    assert_eq!(pool.chunksize(7).map(square, 0..1000).unwrap(), expected);
    assert_eq!(pool.chunksize(5000).map(square, 0..1000).unwrap(), expected);
    assert_eq!(
        pool.map(double, vec![-3, 0, 5]).unwrap(),
        [-6, 0, 10],
        "items of another type, from a Vec"
    );
    close_and_join(pool);
}

/// Chunks of primitive numbers travel packed (one byte string, not one serde call per
/// element): every such type, its extremes and every varint length, through real workers
/// and back, in chunks of every size from one item up.
#[test]
fn map_carries_every_primitive_number_exactly() {
    fn same<T>(x: T) -> T {
        x
    }
    let _g = common::guard();
    let pool = pool(2);
    let wide: Vec<u64> = (0..64)
        .flat_map(|s| [(1u64 << s) - 1, 1 << s, (1 << s) | 1])
        .chain([u64::MAX, u64::MAX - 1])
        .collect();
    for size in [1, 3, 64, 1000] {
        let chunks = pool.chunksize(size);
        assert_eq!(chunks.map(same::<u64>, wide.clone()).unwrap(), wide);
        let signed: Vec<i64> = wide.iter().map(|&v| v as i64).collect();
        assert_eq!(chunks.map(same::<i64>, signed.clone()).unwrap(), signed);
    }
    assert_eq!(
        pool.map(same::<u8>, 0..=255).unwrap(),
        (0..=255).collect::<Vec<u8>>()
    );
    assert_eq!(
        pool.map(same::<i8>, [i8::MIN, -1, 0, i8::MAX]).unwrap(),
        [i8::MIN, -1, 0, i8::MAX]
    );
    assert_eq!(
        pool.map(same::<u16>, [0, 300, u16::MAX]).unwrap(),
        [0, 300, u16::MAX]
    );
    assert_eq!(
        pool.map(same::<i16>, [i16::MIN, 0, i16::MAX]).unwrap(),
        [i16::MIN, 0, i16::MAX]
    );
    assert_eq!(pool.map(same::<u32>, [0, u32::MAX]).unwrap(), [0, u32::MAX]);
    assert_eq!(
        pool.map(same::<i32>, [i32::MIN, -1, i32::MAX]).unwrap(),
        [i32::MIN, -1, i32::MAX]
    );
    assert_eq!(
        pool.map(same::<usize>, [0, usize::MAX]).unwrap(),
        [0, usize::MAX]
    );
    assert_eq!(
        pool.map(same::<isize>, [isize::MIN, isize::MAX]).unwrap(),
        [isize::MIN, isize::MAX]
    );
    let floats = [
        0.0,
        -0.0,
        1.5,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::NEG_INFINITY,
    ];
    let back = pool.map(same::<f64>, floats).unwrap();
    assert_eq!(
        back.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
        floats.map(f64::to_bits)
    );
    assert!(pool.map(same::<f64>, [f64::NAN]).unwrap()[0].is_nan());
    assert_eq!(
        pool.map(same::<f32>, [-2.5f32, f32::MAX]).unwrap(),
        [-2.5f32, f32::MAX]
    );
    // Mixed: a number in, something else out, and back; and through the other entry points.
    assert_eq!(
        pool.map(|x: u32| x.to_string(), [7, 8]).unwrap(),
        ["7", "8"]
    );
    assert_eq!(
        pool.map(|s: String| s.len() as u64, ["abc".to_string()])
            .unwrap(),
        [3]
    );
    assert_eq!(
        pool.apply_async(same::<u64>, u64::MAX)
            .unwrap()
            .get()
            .unwrap(),
        u64::MAX
    );
    let mut got: Vec<i32> = pool
        .imap_unordered(same::<i32>, [-1, 2])
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, [-1, 2]);
    close_and_join(pool);
}

#[test]
fn map_runs_an_unannotated_closure_that_captures_nothing() {
    let _g = common::guard();
    let pool = pool(2);
    assert_eq!(
        pool.map(|x| x * 2, 0..10u64).unwrap(),
        (0..10u64).map(|x| x * 2).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

#[test]
fn apply_async_macro_runs_a_closure_with_the_named_variables() {
    let _g = common::guard();
    let pool = pool(1);
    let text = String::from("ab");
    let times = 3;
    let pending = multiproc::apply_async!(pool, (text, times) || text.repeat(times)).unwrap();
    assert_eq!(pending.get().unwrap(), "ababab");
    close_and_join(pool);
}

#[test]
fn map_runs_in_the_workers_not_in_the_parent() {
    let _g = common::guard();
    let pool = pool(2);
    let workers: HashSet<u32> = pool.pids().into_iter().collect();
    assert_eq!(workers.len(), 2);
    assert!(!workers.contains(&std::process::id()));
    let ran_in: HashSet<u32> = pool
        .chunksize(1)
        .map(pid, 0..50)
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        ran_in.is_subset(&workers),
        "tasks ran in {ran_in:?}, the workers are {workers:?}"
    );
    close_and_join(pool);
}

#[test]
fn map_of_nothing_is_empty() {
    let _g = common::guard();
    let pool = pool(2);
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    assert_eq!(
        pool.chunksize(1).map(square, 0..0).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(
        pool.map_async(square, 0..0).unwrap().get().unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(pool.imap(square, 0..0).unwrap().count(), 0);
    assert_eq!(pool.imap_unordered(square, 0..0).unwrap().count(), 0);
    assert_eq!(
        pool.starmap(add as fn(u64, u64) -> u64, Vec::<(u64, u64)>::new())
            .unwrap(),
        Vec::<u64>::new()
    );
    close_and_join(pool);
}

/// The default chunks shrink as the map goes on (guided scheduling: 1/(2·workers) of what is
/// left, at most Python's 1/(4·workers) of all items and at least 1/(16·workers)). A worker that runs one chunk and retires
/// (`maxtasksperchild(1)`) makes the chunks visible: one pid per chunk.
#[test]
fn map_default_chunks_shrink_as_the_map_goes_on() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let ran = pool.map(item_and_pid, 0..80).unwrap();
    assert_eq!(
        ran.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
        (0..80).collect::<Vec<_>>()
    );
    // 80 items, 2 workers: a quarter of what is left each time, at most Python's 10 (an
    // eighth of all) and at least 3.
    let sizes = [10, 10, 10, 10, 10, 8, 6, 4, 3, 3, 3, 3];
    let mut start = 0;
    for (i, size) in sizes.into_iter().enumerate() {
        let chunk = &ran[start..start + size];
        assert!(
            chunk.iter().all(|(_, p)| *p == chunk[0].1),
            "chunk {i} ran in several workers: {chunk:?}"
        );
        start += size;
    }
    let pids: HashSet<u32> = ran.iter().map(|(_, p)| *p).collect();
    assert_eq!(pids.len(), sizes.len(), "one worker per chunk: {ran:?}");
    close_and_join(pool);
}

#[test]
fn map_with_chunksize_one_sends_items_one_by_one() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let ran = pool.chunksize(1).map(item_and_pid, 0..6).unwrap();
    assert_eq!(
        ran.iter().map(|(x, _)| *x).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5]
    );
    let pids: HashSet<u32> = ran.iter().map(|(_, p)| *p).collect();
    assert_eq!(pids.len(), 6, "one worker per item: {ran:?}");
    close_and_join(pool);
}

#[test]
fn starmap_calls_functions_of_two_and_three_arguments() {
    let _g = common::guard();
    let pool = pool(2);
    assert_eq!(
        pool.starmap(add as fn(_, _) -> _, (0..100u64).map(|i| (i, 1000 * i)))
            .unwrap(),
        (0..100u64).map(|i| 1001 * i).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.chunksize(1)
            .starmap(
                describe3 as fn(String, u32, char) -> String,
                [("ab".to_string(), 2, '!'), ("x".to_string(), 0, '?')]
            )
            .unwrap(),
        ["abab!", "?"]
    );
    assert_eq!(
        pool.starmap_async(
            |name: String, times: u32, suffix| name.repeat(times as usize) + &suffix.to_string(),
            [("z".to_string(), 3, '.')]
        )
        .unwrap()
        .get()
        .unwrap(),
        ["zzz."]
    );
    close_and_join(pool);
}

#[test]
fn map_async_gives_the_whole_list_later() {
    let _g = common::guard();
    let pool = pool(2);
    let pending = pool.map_async(square, 0..500).unwrap();
    let other = pool.chunksize(3).map_async(square, 500..600).unwrap();
    assert_eq!(
        other.get().unwrap(),
        (500..600u64).map(|x| x * x).collect::<Vec<_>>()
    );
    assert_eq!(
        pending.get_timeout(LONG).unwrap(),
        (0..500u64).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

#[test]
fn apply_runs_one_call_in_a_worker() {
    let _g = common::guard();
    let pool = pool(2);
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    assert_ne!(pool.apply(pid, 0).unwrap(), std::process::id());
    let results: Vec<_> = (0..20)
        .map(|i| pool.apply_async(square, i).unwrap())
        .collect();
    let values: Vec<u64> = results.into_iter().map(|r| r.get().unwrap()).collect();
    assert_eq!(values, (0..20).map(|x| x * x).collect::<Vec<_>>());
    assert_eq!(
        pool.apply(len_of, vec![7u8; 3 << 20]).unwrap(),
        3 << 20,
        "a large argument"
    );
    close_and_join(pool);
}

#[test]
fn apply_async_callbacks_run_in_the_parent() {
    let _g = common::guard();
    let pool = pool(2);
    let (tx, rx) = mpsc::channel::<(String, u32)>();

    let (ok, err) = (tx.clone(), tx.clone());
    let r = pool
        .apply_async(nap, 200)
        .unwrap()
        .callback(move |v| ok.send((format!("value {v}"), std::process::id())).unwrap())
        .error_callback(move |e| {
            err.send((format!("error {e}"), std::process::id()))
                .unwrap()
        });
    let (what, in_pid) = rx.recv_timeout(LONG).expect("the callback ran");
    assert_eq!(what, "value 200");
    assert_eq!(in_pid, std::process::id(), "callbacks run in the parent");
    assert_eq!(
        r.get().unwrap(),
        200,
        "the value is still there after the callback"
    );

    let (ok, err) = (tx.clone(), tx.clone());
    let r = pool
        .apply_async(always_panics, ())
        .unwrap()
        .callback(move |v| ok.send((format!("value {v}"), std::process::id())).unwrap())
        .error_callback(move |e| {
            err.send((format!("error {e}"), std::process::id()))
                .unwrap()
        });
    let (what, in_pid) = rx.recv_timeout(LONG).expect("the error callback ran");
    assert!(what.starts_with("error "), "{what}");
    assert!(what.contains("no luck"), "{what}");
    assert_eq!(
        in_pid,
        std::process::id(),
        "error callbacks run in the parent"
    );
    assert!(matches!(r.get(), Err(PoolError::Panicked(_))));

    // Registered after the result arrived: runs at once, in this thread.
    let r = pool.apply_async(square, 9).unwrap();
    r.wait();
    let ok = tx.clone();
    let _r = r.callback(move |v| ok.send((format!("value {v}"), std::process::id())).unwrap());
    assert_eq!(
        rx.try_recv().expect("an immediate callback"),
        ("value 81".to_string(), std::process::id())
    );

    drop(tx);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "each result ran exactly one of its callbacks"
    );
    close_and_join(pool);
}

#[test]
fn a_panicking_callback_does_not_break_the_pool() {
    let _g = common::guard();
    let pool = pool(2);
    let r = pool
        .apply_async(square, 4)
        .unwrap()
        .callback(|_| panic!("deliberate panic in a callback"));
    assert_eq!(r.get_timeout(LONG).unwrap(), 16);
    let r = pool
        .apply_async(always_panics, ())
        .unwrap()
        .error_callback(|_| panic!("deliberate panic in an error callback"));
    assert!(matches!(r.get_timeout(LONG), Err(PoolError::Panicked(_))));
    assert_eq!(
        pool.map(square, 0..100).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

/// Callbacks run in the pool's result thread; one that takes long must not make
/// `wait_timeout` and `get_timeout` of its result wait past their timeout (Python sets the
/// result's event after the callback and its waits honour their timeout).
#[test]
fn a_slow_callback_does_not_stretch_the_timeouts_of_its_result() {
    let _g = common::guard();
    let pool = pool(1);
    let (tx, rx) = mpsc::channel();
    let r = pool.apply_async(square, 4).unwrap().callback(move |_| {
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    });
    rx.recv_timeout(LONG).expect("the callback started");
    let r = within(LONG, move || {
        let t = Instant::now();
        let ready = r.wait_timeout(Duration::from_millis(50));
        (ready, t.elapsed(), r)
    });
    assert!(
        r.1 < Duration::from_millis(1000),
        "wait_timeout(50ms) returned {} after {:?}",
        r.0,
        r.1
    );
    assert_eq!(r.2.get_timeout(LONG).unwrap(), 16);
    close_and_join(pool);
}

/// A callback may hold the last handle on the pool (to submit more work, say): dropping it
/// there terminates the pool from the pool's own result thread, which must not deadlock.
#[test]
fn dropping_the_last_pool_handle_in_a_callback_does_not_deadlock() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let last = pool.clone();
    let r = pool
        .apply_async(nap, 200)
        .unwrap()
        .callback(move |_| drop(last));
    drop(pool);
    let value = within(PROMPTLY, move || r.get());
    assert_eq!(value.unwrap(), 200);
}

#[test]
fn async_result_ready_successful_and_timeouts() {
    let _g = common::guard();
    let pool = pool(2);

    let slow = pool.apply_async(nap, 400).unwrap();
    assert!(!slow.ready());
    assert_eq!(slow.successful(), None, "not ready yet");
    let t = Instant::now();
    assert!(!slow.wait_timeout(Duration::from_millis(50)));
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < PROMPTLY,
        "wait_timeout(50ms) took {waited:?}"
    );
    assert!(slow.wait_timeout(LONG));
    assert!(slow.ready());
    assert_eq!(slow.successful(), Some(true));
    assert_eq!(slow.get().unwrap(), 400);

    let slow = pool.apply_async(nap, 400).unwrap();
    let t = Instant::now();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(50)),
        Err(PoolError::ResultTimeout)
    ));
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );

    let failed = pool.apply_async(always_panics, ()).unwrap();
    failed.wait();
    assert!(failed.ready());
    assert_eq!(failed.successful(), Some(false));
    assert!(matches!(
        failed.get_timeout(LONG),
        Err(PoolError::Panicked(_))
    ));

    let quick = pool.apply_async(square, 3).unwrap();
    assert_eq!(quick.get_timeout(LONG).unwrap(), 9);
    // The abandoned nap still runs; close+join waits for it.
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// imap, imap_unordered

#[test]
fn imap_on_an_endless_iterator_takes_only_what_is_consumed() {
    let _g = common::guard();
    let pool = pool(2);
    let first: Vec<u64> = pool
        .imap(square, 0..)
        .unwrap()
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 4, 9, 16]);

    let mut it = pool.chunksize(10).imap(square, 0..).unwrap();
    for i in 0..1234u64 {
        assert_eq!(it.next().unwrap().unwrap(), i * i);
    }
    drop(it);

    // The pool goes on after the iterators were dropped with work in flight.
    assert_eq!(
        pool.map(square, 0..100).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

#[test]
fn imap_yields_in_input_order_even_when_items_finish_out_of_order() {
    let _g = common::guard();
    let pool = pool(2);
    let naps = [300, 0, 0, 0, 200, 0, 0, 0];
    let got: Vec<u64> = pool
        .imap(nap, naps)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got, naps);
    close_and_join(pool);
}

#[test]
fn imap_unordered_returns_every_item_exactly_once() {
    let _g = common::guard();
    let pool = pool(2);
    for chunksize in [1, 7, 100] {
        let mut got: Vec<u64> = pool
            .chunksize(chunksize)
            .imap_unordered(square, 0..2000)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        got.sort_unstable();
        assert_eq!(
            got,
            (0..2000).map(|x| x * x).collect::<Vec<_>>(),
            "chunksize {chunksize}"
        );
    }
    // In the order they finish: the slow one comes last.
    let got: Vec<u64> = pool
        .imap_unordered(nap, [500, 0, 0, 0])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.last(), Some(&500), "{got:?}");
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Builder settings

#[test]
fn pool_has_the_requested_number_of_workers() {
    let _g = common::guard();
    let pool = pool(3);
    assert_eq!(pool.processes(), 3);
    let pids = full_crew(&pool);
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3);
    let default = Pool::builder().build().unwrap();
    assert_eq!(default.processes(), multiproc::cpu_count());
    close_and_join(default);
    // As Python's ValueError: no pool without workers.
    let zero = Pool::new(0).unwrap_err();
    assert!(zero.to_string().contains("at least 1"), "{zero}");
    close_and_join(pool);
}

#[test]
fn initializer_runs_once_in_every_worker() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .initializer(count_init, 42)
        .build()
        .unwrap();
    let seen = pool.chunksize(1).map(init_state, 0..200).unwrap();
    for (calls, base, pid) in &seen {
        assert_eq!(*calls, 1, "initializer calls in worker {pid}");
        assert_eq!(*base, 42);
    }
    assert_eq!(INIT_CALLS.load(Ordering::SeqCst), 0, "never in the parent");
    close_and_join(pool);
}

#[test]
fn maxtasksperchild_replaces_workers() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(3)
        .initializer(count_init, 7)
        .build()
        .unwrap();
    let seen = pool.chunksize(1).map(init_state, 0..30).unwrap();
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
        "every new worker ran the initializer once: {seen:?}"
    );
    let crew = full_crew(&pool);
    assert_eq!(crew.len(), 2);
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Panicking tasks

#[test]
fn a_panicking_task_fails_only_itself() {
    let _g = common::guard();
    let pool = pool(2);
    let results: Vec<Result<u64, PoolError>> = pool
        .chunksize(3)
        .imap(panics_on_three, 0..7)
        .unwrap()
        .collect();
    assert_eq!(results.len(), 7);
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            assert!(matches!(r, Err(PoolError::Panicked(_))), "item 3: {r:?}");
        } else {
            assert_eq!(*r.as_ref().unwrap(), i as u64 * 10, "item {i}");
        }
    }
    let Err(PoolError::Panicked(report)) = &results[3] else {
        unreachable!()
    };
    assert_eq!(report.message, THREE_MESSAGE);
    assert!(report.process_name.starts_with("PoolWorker"), "{report:?}");
    let location = report.location.as_ref().expect("the panic's location");
    assert!(
        location.file.ends_with("pool.rs"),
        "panic location {location}"
    );
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pool.rs"))
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
    let text = results[3].as_ref().unwrap_err().to_string();
    assert!(text.contains(THREE_MESSAGE), "{text}");

    // The worker that panicked goes on: no worker was replaced.
    let before = full_crew(&pool);
    assert_eq!(
        pool.chunksize(1).map(panics_on_three, [1, 2]).unwrap(),
        [10, 20]
    );
    let err = pool.apply(always_panics, ()).unwrap_err();
    assert!(err.to_string().contains("no luck"), "{err}");
    assert_eq!(
        pool.pids().into_iter().collect::<HashSet<_>>(),
        before.into_iter().collect::<HashSet<_>>(),
        "a panic does not cost the worker"
    );
    close_and_join(pool);
}

#[test]
fn map_returns_the_error_of_the_first_failing_item() {
    let _g = common::guard();
    let pool = pool(2);
    for chunksize in [1, 2, 4] {
        // Item 7 fails first in time, item 3 first in order.
        let err = pool
            .chunksize(chunksize)
            .map(panics_on_seven_quickly_three_slowly, 0..10)
            .unwrap_err();
        match &err {
            PoolError::Panicked(report) => {
                assert_eq!(report.message, THREE_MESSAGE, "chunksize {chunksize}")
            }
            other => panic!("chunksize {chunksize}: {other:?}"),
        }
    }
    let err = pool.map(panics_on_three, 0..100).unwrap_err();
    assert!(err.to_string().contains(THREE_MESSAGE), "{err}");
    assert!(
        pool.starmap(add as fn(u64, u64) -> u64, [(1, 2)]).is_ok(),
        "the pool goes on"
    );
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Workers that die

/// A worker that dies on item 4 of `0..9` (chunks of 3: items 3, 4 and 5 in one chunk)
/// fails item 4 only, with a cause naming `signal_name`; items 3 and 5 (run again, or for
/// the first time, by another worker) and the other chunks succeed; the dead worker is
/// replaced and the pool goes on.
fn check_death_fails_only_its_item(task: fn(u64) -> u64, signal_name: &str) {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let before = full_crew(&pool);
    let results = on_pool(&pool, move |p| {
        p.chunksize(3).imap(task, 0..9).unwrap().collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 9, "{results:?}");
    let mut dead = None;
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(PoolError::WorkerDied {
                name, pid, cause, ..
            }) if i == 4 => {
                assert!(
                    cause.contains(signal_name),
                    "cause {cause:?} should name {signal_name}"
                );
                assert!(before.contains(pid), "pid {pid} is not one of {before:?}");
                assert!(name.starts_with("PoolWorker"), "{name}");
                dead = Some(*pid);
            }
            Ok(v) if i != 4 => assert_eq!(*v, i as u64 * 10, "item {i}"),
            other => panic!("item {i}: {other:?} ({results:?})"),
        }
    }
    let text = results[4].as_ref().unwrap_err().to_string();
    assert!(text.contains(signal_name), "{text}");
    let dead = dead.unwrap();
    assert!(!alive(dead), "the dead worker {dead} is gone");
    let after = full_crew(&pool);
    assert!(!after.contains(&dead), "{dead} replaced: {after:?}");
    assert_eq!(
        on_pool(&pool, |p| p.map(square, 0..100)).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    // imap_unordered: every other item once, the dying one as an error.
    let unordered = on_pool(&pool, move |p| {
        p.chunksize(3)
            .imap_unordered(task, 0..9)
            .unwrap()
            .collect::<Vec<_>>()
    });
    let mut values: Vec<u64> = unordered
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    values.sort_unstable();
    assert_eq!(values, [0, 10, 20, 30, 50, 60, 70, 80], "{unordered:?}");
    assert_eq!(unordered.len(), 9, "{unordered:?}");
    assert!(
        unordered
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| is_worker_died_by(e, signal_name)),
        "{unordered:?}"
    );
    // map reports the death as the error of the whole list.
    let err = on_pool(&pool, move |p| p.chunksize(2).map(task, 0..9)).unwrap_err();
    assert!(is_worker_died_by(&err, signal_name), "{err:?}");
    full_crew(&pool);
    close_and_join(pool);
}

#[test]
fn a_worker_that_aborts_fails_only_the_item_it_was_running() {
    check_death_fails_only_its_item(aborts_on_four, "SIGABRT");
}

#[test]
fn a_worker_that_segfaults_fails_only_the_item_it_was_running() {
    check_death_fails_only_its_item(segfaults_on_four, "SIGSEGV");
}

#[test]
fn a_worker_that_sigkills_itself_fails_only_the_item_it_was_running() {
    check_death_fails_only_its_item(kills_itself_on_four, "SIGKILL");
}

#[test]
fn apply_on_a_worker_killed_from_outside_is_worker_died() {
    let _g = common::guard();
    let pool = Arc::new(pool(1));
    let [victim] = ready_crew(&pool)[..] else {
        unreachable!()
    };
    let long = pool.apply_async(nap, 60_000).unwrap();
    // Wait until the worker is running it, then kill the worker.
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    signal(victim, libc::SIGKILL);
    match long.get_timeout(PROMPTLY) {
        Err(PoolError::WorkerDied { pid, cause, .. }) => {
            assert_eq!(pid, victim);
            assert!(cause.contains("SIGKILL"), "{cause}");
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < PROMPTLY);
    let after = full_crew(&pool);
    assert_ne!(after, [victim]);
    assert_eq!(on_pool(&pool, |p| p.apply(square, 5)).unwrap(), 25);
    close_and_join(pool);
}

#[test]
fn an_idle_worker_killed_from_outside_is_replaced_and_nothing_fails() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let before = ready_crew(&pool);
    signal(before[0], libc::SIGKILL);
    let replaced = common::wait_until(Instant::now() + PROMPTLY, || {
        let now = pool.pids();
        now.len() == 2 && !now.contains(&before[0]) && now.iter().all(|&p| alive(p))
    });
    assert!(
        replaced,
        "workers {:?}, {} was killed",
        pool.pids(),
        before[0]
    );
    assert_eq!(
        on_pool(&pool, |p| p.chunksize(1).map(square, 0..100)).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

/// A worker killed while it starts (before it is ready) is a worker that died: the pool
/// must replace it, not give up. Nothing about it is the initializer's fault (there is
/// none).
#[test]
fn a_worker_killed_while_starting_is_replaced() {
    let _g = common::guard();
    let pool = Arc::new(
        Pool::builder()
            .processes(2)
            .start_method(StartMethod::Spawn)
            .build()
            .unwrap(),
    );
    // A spawned worker takes a while to start (exec, then its bootstrap): kill it now.
    for pid in pool.pids() {
        signal(pid, libc::SIGKILL);
    }
    let result = on_pool(&pool, |p| p.map(square, 0..10));
    assert_eq!(result.unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Killing workers from outside during long maps (the pool must never hang)

/// Items of the long maps, and their chunk size: 100 chunks of 1000.
const LONG_MAP: u64 = 100_000;
const LONG_MAP_CHUNK: usize = 1000;

/// The result of `f(&pool)`, run on another thread; the test fails if it does not return
/// within `LONG`. Meanwhile `meanwhile` runs on this thread.
fn race<T: Send + 'static>(
    pool: &Arc<Pool>,
    f: impl FnOnce(&Pool) -> T + Send + 'static,
    meanwhile: impl FnOnce(),
) -> T {
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(f(&p));
    });
    meanwhile();
    rx.recv_timeout(LONG)
        .unwrap_or_else(|e| panic!("the pool did not finish within {LONG:?}: it hangs ({e})"))
}

/// Kill a random worker of the pool with SIGKILL; its pid.
///
/// Only workers that have been running for a while are chosen: a worker killed while it
/// starts is another matter (`a_worker_killed_while_starting_is_replaced`).
fn kill_random_worker(pool: &Pool, rng: &mut Rng) -> u32 {
    let mut settled = Vec::new();
    let found = common::wait_until(Instant::now() + PROMPTLY, || {
        settled = pool
            .pids()
            .into_iter()
            .filter(|&p| age(p).is_some_and(|a| a >= SETTLED))
            .collect();
        !settled.is_empty()
    });
    assert!(found, "the pool has no settled workers: {:?}", pool.pids());
    let victim = settled[rng.below(settled.len() as u64) as usize];
    signal(victim, libc::SIGKILL);
    victim
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

#[test]
fn killing_a_random_worker_during_a_long_map_never_hangs_it() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let mut rng = Rng::new();
    let seed = rng.0;
    let expected: Vec<u64> = (0..LONG_MAP).map(|x| x * 3).collect();
    let started = Instant::now();
    let mut failed_rounds = 0;
    for round in 0..20 {
        full_crew(&pool);
        let delay = Duration::from_millis(20 + rng.below(230));
        let mut victim = 0;
        let t = Instant::now();
        let result = race(
            &pool,
            |p| p.chunksize(LONG_MAP_CHUNK).map(busy, 0..LONG_MAP),
            || {
                std::thread::sleep(delay);
                victim = kill_random_worker(&pool, &mut rng);
            },
        );
        let took = t.elapsed();
        match result {
            Ok(values) => assert!(
                values == expected,
                "round {round} (seed {seed}): wrong values"
            ),
            Err(PoolError::WorkerDied { pid, cause, .. }) => {
                assert!(
                    cause.contains("SIGKILL"),
                    "round {round} (seed {seed}): {cause}"
                );
                assert_eq!(pid, victim, "round {round} (seed {seed})");
                failed_rounds += 1;
            }
            Err(e) => panic!("round {round} (seed {seed}), kill after {delay:?}: {e:?}"),
        }
        // The pool goes on.
        let after = on_pool(&pool, |p| p.map(square, 0..100));
        assert_eq!(
            after.unwrap_or_else(|e| panic!("round {round} (seed {seed}), map after: {e:?}")),
            (0..100).map(|x| x * x).collect::<Vec<_>>(),
        );
        eprintln!("round {round}: kill after {delay:?}, map took {took:?}");
    }
    eprintln!(
        "{failed_rounds} of 20 maps hit by the kill, in {:?}",
        started.elapsed()
    );
    assert!(
        failed_rounds > 0,
        "no kill landed during a map (seed {seed})"
    );
    let after = full_crew(&pool);
    assert_eq!(after.len(), 2);
    close_and_join(pool);
}

#[test]
fn killing_a_random_worker_during_a_long_imap_fails_at_most_one_item() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let mut rng = Rng::new();
    let seed = rng.0;
    let mut hit = 0;
    for round in 0..10 {
        full_crew(&pool);
        let delay = Duration::from_millis(20 + rng.below(230));
        let mut victim = 0;
        let results = race(
            &pool,
            |p| {
                p.chunksize(LONG_MAP_CHUNK)
                    .imap(busy, 0..LONG_MAP)
                    .unwrap()
                    .collect::<Vec<_>>()
            },
            || {
                std::thread::sleep(delay);
                victim = kill_random_worker(&pool, &mut rng);
            },
        );
        assert_eq!(results.len(), LONG_MAP as usize);
        let mut failed = Vec::new();
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u64 * 3, "round {round} (seed {seed}) item {i}"),
                Err(PoolError::WorkerDied { pid, cause, .. })
                    if *pid == victim && cause.contains("SIGKILL") =>
                {
                    failed.push(i)
                }
                Err(e) => panic!("round {round} (seed {seed}) item {i}: {e:?}"),
            }
        }
        assert!(
            failed.len() <= 1,
            "round {round} (seed {seed}): one kill failed items {failed:?}"
        );
        hit += failed.len();
    }
    eprintln!("{hit} of 10 imaps hit by the kill");
    assert!(hit > 0, "no kill landed during an item (seed {seed})");
    close_and_join(pool);
}

/// Several kills during one imap: at most one failed item per kill, the rest correct.
#[test]
fn repeated_kills_during_one_imap_fail_at_most_one_item_each() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let mut rng = Rng::new();
    let seed = rng.0;
    let kills = 8;
    let mut victims = Vec::new();
    let results = race(
        &pool,
        |p| {
            p.chunksize(LONG_MAP_CHUNK / 2)
                .imap(busy, 0..3 * LONG_MAP)
                .unwrap()
                .collect::<Vec<_>>()
        },
        || {
            for _ in 0..kills {
                std::thread::sleep(Duration::from_millis(30 + rng.below(50)));
                victims.push(kill_random_worker(&pool, &mut rng));
            }
        },
    );
    assert_eq!(results.len(), 3 * LONG_MAP as usize);
    let mut failed = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u64 * 3, "(seed {seed}) item {i}"),
            Err(PoolError::WorkerDied { pid, cause, .. })
                if victims.contains(pid) && cause.contains("SIGKILL") =>
            {
                failed.push(i)
            }
            Err(e) => panic!("(seed {seed}) item {i}: {e:?}"),
        }
    }
    assert!(
        failed.len() <= kills,
        "(seed {seed}): {kills} kills failed items {failed:?}"
    );
    eprintln!("{kills} kills failed {} items", failed.len());
    assert_eq!(full_crew(&pool).len(), 2);
    assert_eq!(
        on_pool(&pool, |p| p.map(square, 0..100)).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

/// Workers retire (`maxtasksperchild`) while others are killed from outside: every item is
/// still either correct or `WorkerDied`, at most one per kill.
#[test]
fn kills_while_workers_retire_fail_at_most_one_item_each() {
    let _g = common::guard();
    let pool = Arc::new(
        Pool::builder()
            .processes(2)
            .maxtasksperchild(100)
            .build()
            .unwrap(),
    );
    let mut rng = Rng::new();
    let seed = rng.0;
    let kills = 6;
    let mut victims = Vec::new();
    let results = race(
        &pool,
        |p| {
            p.chunksize(250)
                .imap(busy, 0..2 * LONG_MAP)
                .unwrap()
                .collect::<Vec<_>>()
        },
        || {
            for _ in 0..kills {
                std::thread::sleep(Duration::from_millis(20 + rng.below(30)));
                victims.push(kill_random_worker(&pool, &mut rng));
            }
        },
    );
    let mut failed = Vec::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u64 * 3, "(seed {seed}) item {i}"),
            Err(PoolError::WorkerDied { pid, cause, .. })
                if victims.contains(pid) && cause.contains("SIGKILL") =>
            {
                failed.push(i)
            }
            Err(e) => panic!("(seed {seed}) item {i}: {e:?}"),
        }
    }
    assert!(failed.len() <= kills, "(seed {seed}): {failed:?}");
    assert_eq!(
        on_pool(&pool, |p| p.map(square, 0..100)).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

/// Workers killed while the pool closes: `join` still returns, once the work is done.
#[test]
fn killing_workers_while_the_pool_closes_never_hangs_join() {
    let _g = common::guard();
    let mut rng = Rng::new();
    let seed = rng.0;
    for round in 0..10 {
        let pool = Arc::new(pool(2));
        ready_crew(&pool);
        let pending = pool
            .chunksize(LONG_MAP_CHUNK)
            .map_async(busy, 0..LONG_MAP / 4)
            .unwrap();
        pool.close();
        let delay = Duration::from_millis(rng.below(120));
        race(
            &pool,
            |p| p.join(),
            || {
                std::thread::sleep(delay);
                for pid in pool.pids() {
                    signal(pid, libc::SIGKILL);
                }
            },
        )
        .unwrap_or_else(|e| panic!("round {round} (seed {seed}): join: {e:?}"));
        match pending.get_timeout(PROMPTLY) {
            Ok(v) => assert_eq!(v.len(), LONG_MAP as usize / 4),
            Err(e) => assert!(
                is_worker_died_by(&e, "SIGKILL"),
                "round {round} (seed {seed}), kill after {delay:?}: {e:?}"
            ),
        }
        assert_eq!(pool.pids(), Vec::<u32>::new());
    }
}

fn len_of_bytes(b: serde_bytes::ByteBuf) -> usize {
    b.len()
}

/// Anonymous memory of the process `pid` (kB), from `/proc/<pid>/status`.
fn rss_anon_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An order larger than a ring piece (a quarter of the 64 MiB ring) reaches the worker in
/// pieces. A worker killed after it took the first pieces, before it had the whole order,
/// must not lose the order: the task completes (run by the new worker) or fails with
/// `WorkerDied`, it never waits forever.
///
/// The kill is timed by the worker's anonymous memory: the order is being assembled once
/// it has grown by more than one piece.
#[test]
fn a_worker_killed_while_receiving_a_large_order_does_not_lose_it() {
    let _g = common::guard();
    let pool = Arc::new(pool(1));
    const SIZE: usize = 64 << 20;
    for round in 0..3 {
        let [victim] = full_crew(&pool)[..] else {
            unreachable!()
        };
        let baseline = rss_anon_kb(victim).expect("the worker's memory");
        let p = pool.clone();
        let submit = std::thread::spawn(move || {
            p.apply_async(len_of_bytes, serde_bytes::ByteBuf::from(vec![7u8; SIZE]))
        });
        // Into the second piece (16 MiB each): the first has left the ring.
        let assembling = common::wait_until(Instant::now() + LONG, || {
            rss_anon_kb(victim).is_none_or(|kb| kb > baseline + 24 * 1024)
        });
        signal(victim, libc::SIGKILL);
        assert!(
            assembling,
            "round {round}: the worker never received the order"
        );
        let pending = submit.join().unwrap().unwrap();
        match pending.get_timeout(PROMPTLY) {
            Ok(n) => assert_eq!(n, SIZE),
            Err(e) if is_worker_died_by(&e, "SIGKILL") => {}
            Err(e) => panic!("round {round}: {e:?} (the order was lost with the worker)"),
        }
    }
    close_and_join(pool);
}

fn bytes_of_len(n: usize) -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(vec![9u8; n])
}

/// Shared memory the process `pid` has touched (kB), from `/proc/<pid>/status`.
fn rss_shmem_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssShmem:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Results larger than a ring piece come back in pieces; a worker killed in the middle of
/// sending one leaves a partial result in the ring, which the pool drops: the task fails
/// with `WorkerDied` (or completes, if the kill came too late), it never waits forever.
///
/// The kill is timed by the shared memory the worker has touched: a new worker touches the
/// ring's pages as it writes its result into them.
#[test]
fn a_worker_killed_while_sending_a_large_result_fails_the_task() {
    let _g = common::guard();
    let pool = Arc::new(pool(1));
    const SIZE: usize = 100 << 20;
    for round in 0..3 {
        // A new worker each round: the one killed in the round before was replaced.
        let [victim] = ready_crew(&pool)[..] else {
            unreachable!()
        };
        let baseline = rss_shmem_kb(victim).expect("the worker's memory");
        let pending = pool.apply_async(bytes_of_len, SIZE).unwrap();
        let sending = common::wait_until(Instant::now() + LONG, || {
            rss_shmem_kb(victim).is_none_or(|kb| kb > baseline + (12 << 10))
        });
        signal(victim, libc::SIGKILL);
        assert!(sending, "round {round}: the worker never sent its result");
        let outcome = pending.get_timeout(PROMPTLY);
        eprintln!("round {round}: {:?}", outcome.as_ref().map(|b| b.len()));
        match outcome {
            Ok(bytes) => assert_eq!(bytes.len(), SIZE),
            Err(e) if is_worker_died_by(&e, "SIGKILL") => {}
            Err(e) => panic!("round {round}: {e:?}"),
        }
    }
    assert_eq!(
        on_pool(&pool, |p| p.apply(bytes_of_len, 20 << 20))
            .unwrap()
            .len(),
        20 << 20,
        "the pool goes on, with results in pieces"
    );
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Task timeout

#[test]
fn an_item_running_past_the_task_timeout_fails_with_timeout() {
    let _g = common::guard();
    let timeout = Duration::from_millis(300);
    let pool = Arc::new(
        Pool::builder()
            .processes(2)
            .task_timeout(timeout)
            .build()
            .unwrap(),
    );
    let before = full_crew(&pool);
    let t = Instant::now();
    let results = on_pool(&pool, |p| {
        p.chunksize(2)
            .imap(nap, [10, 20_000, 10, 10, 10, 10])
            .unwrap()
            .collect::<Vec<_>>()
    });
    let took = t.elapsed();
    assert!(
        took >= timeout && took < PROMPTLY,
        "the imap took {took:?} with a {timeout:?} timeout"
    );
    let mut killed = None;
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(PoolError::Timeout { after, pid, .. }) if i == 1 => {
                assert_eq!(*after, timeout);
                assert!(before.contains(pid));
                killed = Some(*pid);
            }
            Ok(10) if i != 1 => {}
            other => panic!("item {i}: {other:?}"),
        }
    }
    let killed = killed.unwrap();
    let after = full_crew(&pool);
    assert!(!after.contains(&killed), "{killed} replaced: {after:?}");
    // Items shorter than the timeout are fine, however many.
    assert_eq!(
        on_pool(&pool, |p| p.chunksize(1).map(nap, [100; 6])).unwrap(),
        [100; 6]
    );
    let err = on_pool(&pool, |p| p.apply(nap, 20_000)).unwrap_err();
    assert!(matches!(err, PoolError::Timeout { .. }), "{err:?}");
    assert_eq!(on_pool(&pool, |p| p.apply(square, 4)).unwrap(), 16);
    close_and_join(pool);
}

/// The timeout applies to the time an item runs, not to the time a worker spends
/// decoding a chunk before the item starts, nor to how long the worker was idle before.
#[test]
fn task_timeout_does_not_fire_on_an_item_that_has_not_started() {
    let _g = common::guard();
    let timeout = Duration::from_millis(40);
    let pool = Arc::new(
        Pool::builder()
            .processes(1)
            .task_timeout(timeout)
            .build()
            .unwrap(),
    );
    assert_eq!(
        on_pool(&pool, |p| p.apply(len_of, vec![1u8; 10])).unwrap(),
        10
    );
    // Idle for longer than the timeout, then a chunk that takes a while to decode.
    std::thread::sleep(Duration::from_millis(200));
    let big = vec![1u8; 4 << 20];
    let r = on_pool(&pool, move |p| p.apply(len_of, big));
    assert_eq!(r.unwrap(), 4 << 20);
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// A failing initializer

/// The pool reports an initializer that fails (panics, or kills its process) on every task,
/// promptly, and does not start workers over and over.
fn check_initializer_failure(pool: Pool, expected: &str) {
    let pool = Arc::new(pool);
    let t = Instant::now();
    let err = on_pool(&pool, |p| p.map(square, 0..100)).unwrap_err();
    assert!(t.elapsed() < PROMPTLY, "took {:?}", t.elapsed());
    match &err {
        PoolError::InitializerFailed(report) => {
            assert!(report.message.contains(expected), "{report:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(expected), "{err}");
    for r in [
        on_pool(&pool, |p| p.apply(square, 1)),
        on_pool(&pool, |p| p.apply_async(square, 1).and_then(|r| r.get())),
    ] {
        assert!(matches!(r, Err(PoolError::InitializerFailed(_))), "{r:?}");
    }
    let imapped = on_pool(&pool, |p| match p.imap(square, 0..3) {
        Ok(it) => it.collect::<Vec<_>>(),
        Err(e) => vec![Err(e)],
    });
    assert!(
        !imapped.is_empty()
            && imapped
                .iter()
                .all(|r| matches!(r, Err(PoolError::InitializerFailed(_)))),
        "{imapped:?}"
    );
    // No endless respawning: the workers are gone and stay gone.
    assert!(
        common::wait_until(Instant::now() + PROMPTLY, || pool.pids().is_empty()),
        "workers {:?}",
        pool.pids()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(pool.pids(), Vec::<u32>::new(), "workers started again");
    close_and_join(pool);
}

#[test]
fn a_panicking_initializer_fails_every_task_with_initializer_failed() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .initializer(failing_init, 0)
        .build()
        .unwrap();
    check_initializer_failure(pool, "the initializer refuses");
}

#[test]
fn an_initializer_that_aborts_fails_every_task_with_initializer_failed() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .initializer(aborting_init, 0)
        .build()
        .unwrap();
    check_initializer_failure(pool, "SIGABRT");
}

// ---------------------------------------------------------------------------------------------
// Life cycle: close, join, terminate, drop

#[test]
fn close_then_apply_is_closed() {
    let _g = common::guard();
    let pool = pool(1);
    pool.close();
    assert!(matches!(pool.apply(square, 2), Err(PoolError::Closed)));
    assert!(matches!(
        pool.apply_async(square, 2),
        Err(PoolError::Closed)
    ));
    assert!(matches!(pool.map(square, 0..3), Err(PoolError::Closed)));
    assert!(matches!(
        pool.chunksize(1).map(square, 0..3),
        Err(PoolError::Closed)
    ));
    assert!(matches!(
        pool.map_async(square, 0..3),
        Err(PoolError::Closed)
    ));
    assert!(matches!(
        pool.starmap(add as fn(u64, u64) -> u64, [(1, 2)]),
        Err(PoolError::Closed)
    ));
    assert!(matches!(pool.imap(square, 0..3), Err(PoolError::Closed)));
    assert!(matches!(
        pool.imap_unordered(square, 0..3),
        Err(PoolError::Closed)
    ));
    close_and_join(pool);
}

/// Python raises "Pool not running" for any map on a closed pool, even of no items.
#[test]
fn close_then_map_of_nothing_is_closed() {
    let _g = common::guard();
    let pool = pool(1);
    pool.close();
    let r = pool.map(square, 0..0);
    assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
    close_and_join(pool);
}

#[test]
fn join_before_close_is_still_running() {
    let _g = common::guard();
    let pool = pool(1);
    assert!(matches!(pool.join(), Err(PoolError::StillRunning)));
    assert_eq!(pool.apply(square, 3).unwrap(), 9, "and the pool goes on");
    close_and_join(pool);
}

#[test]
fn close_and_join_wait_for_outstanding_work() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let workers = full_crew(&pool);
    let applied: Vec<_> = (0..4)
        .map(|_| pool.apply_async(nap, 150).unwrap())
        .collect();
    let mapped = pool.chunksize(1).map_async(nap, [100, 120, 140]).unwrap();
    let t = Instant::now();
    pool.close();
    on_pool(&pool, |p| p.join()).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "join returned after {:?}, before the work was done",
        t.elapsed()
    );
    assert!(applied.iter().all(|r| r.ready()) && mapped.ready());
    for r in applied {
        assert_eq!(r.get().unwrap(), 150);
    }
    assert_eq!(mapped.get().unwrap(), [100, 120, 140]);
    assert_eq!(pool.pids(), Vec::<u32>::new(), "no workers after join");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} still running after join");
    }
    assert!(matches!(pool.apply(square, 1), Err(PoolError::Closed)));
    on_pool(&pool, |p| p.join()).expect("joining again");
}

#[test]
fn close_while_a_map_runs_lets_it_finish() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let pending = pool
        .chunksize(LONG_MAP_CHUNK)
        .map_async(busy, 0..LONG_MAP)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !pending.ready(),
        "the map should still run when the pool is closed"
    );
    pool.close();
    assert_eq!(
        pending.get_timeout(LONG).unwrap(),
        (0..LONG_MAP).map(|x| x * 3).collect::<Vec<_>>()
    );
    close_and_join(pool);
}

/// Python's idiom: `it = pool.imap(f, items); pool.close(); for r in it: ...; pool.join()`.
/// Python hands the whole input of `imap` to the pool at once, so `close` lets it finish.
/// Here `imap` submits lazily, as results are consumed; the items of an `imap` created
/// before `close` must still run, not fail with `Closed`.
#[test]
fn close_after_creating_an_imap_lets_it_finish() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let results = on_pool(&pool, |p| {
        let it = p.chunksize(1).imap(square, 0..1000).unwrap();
        p.close();
        it.collect::<Vec<_>>()
    });
    let failed: Vec<_> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .collect();
    assert_eq!(results.len(), 1000);
    assert!(
        failed.is_empty(),
        "{} items failed after close, the first: {:?}",
        failed.len(),
        failed.first()
    );
    close_and_join(pool);
}

#[test]
fn terminate_fails_outstanding_tasks_with_terminated() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let workers = full_crew(&pool);
    let quick = pool.apply_async(square, 2).unwrap();
    assert!(quick.wait_timeout(LONG));
    let applied = pool.apply_async(nap, 60_000).unwrap();
    let mapped = pool.chunksize(1).map_async(nap, [60_000; 4]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    on_pool(&pool, |p| p.terminate());
    assert!(t.elapsed() < PROMPTLY, "terminate took {:?}", t.elapsed());
    assert!(matches!(
        applied.get_timeout(PROMPTLY),
        Err(PoolError::Terminated)
    ));
    assert!(matches!(
        mapped.get_timeout(PROMPTLY),
        Err(PoolError::Terminated)
    ));
    assert_eq!(quick.get().unwrap(), 4, "finished before terminate");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} still running after terminate");
    }
    assert!(matches!(pool.apply(square, 1), Err(PoolError::Closed)));
    on_pool(&pool, |p| p.join()).expect("join after terminate");
}

#[test]
fn terminate_unblocks_an_imap_consumer() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let results = race(
        &pool,
        |p| {
            p.chunksize(1)
                .imap(nap, [0, 0, 60_000, 60_000, 60_000, 0])
                .unwrap()
                .collect::<Vec<_>>()
        },
        || {
            std::thread::sleep(Duration::from_millis(300));
            pool.terminate();
        },
    );
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        results[2..]
            .iter()
            .all(|r| matches!(r, Err(PoolError::Terminated))),
        "{results:?}"
    );
}

#[test]
fn dropping_a_pool_with_running_tasks_kills_its_workers() {
    let _g = common::guard();
    let pool = pool(2);
    let workers = full_crew(&pool);
    let running = pool.apply_async(nap, 60_000).unwrap();
    let queued = pool.chunksize(1).map_async(nap, [60_000; 5]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    within(LONG, move || drop(pool));
    assert!(t.elapsed() < PROMPTLY, "drop took {:?}", t.elapsed());
    assert!(matches!(
        running.get_timeout(PROMPTLY),
        Err(PoolError::Terminated)
    ));
    assert!(matches!(
        queued.get_timeout(PROMPTLY),
        Err(PoolError::Terminated)
    ));
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its pool");
    }
}

// ---------------------------------------------------------------------------------------------
// Items and results that cannot travel

#[test]
fn items_carrying_os_handles_are_an_error_not_a_hang() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let r = on_pool(&pool, |p| p.apply(takes_lock, Lock::new().unwrap()));
    assert!(
        matches!(&r, Err(PoolError::Failed(m)) if m.contains("OS handles")),
        "{r:?}"
    );
    let r = on_pool(&pool, |p| {
        p.apply_async(takes_lock, Lock::new().unwrap()).map(drop)
    });
    assert!(matches!(r, Err(PoolError::Failed(_))), "{r:?}");
    let r = on_pool(&pool, |p| {
        p.map(
            takes_lock,
            (0..5).map(|_| Lock::new().unwrap()).collect::<Vec<_>>(),
        )
    });
    assert!(matches!(r, Err(PoolError::Failed(_))), "{r:?}");
    assert_eq!(
        on_pool(&pool, |p| p.map(square, 0..10)).unwrap(),
        (0..10).map(|x| x * x).collect::<Vec<_>>(),
        "the pool goes on"
    );
    close_and_join(pool);
}

/// `imap` gives one `Result` per item, also when the items cannot be sent.
#[test]
fn imap_of_items_carrying_os_handles_fails_each_item() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let results = on_pool(&pool, |p| {
        let locks: Vec<Lock> = (0..5).map(|_| Lock::new().unwrap()).collect();
        p.chunksize(2)
            .imap(takes_lock, locks)
            .unwrap()
            .collect::<Vec<_>>()
    });
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(PoolError::Failed(_)))),
        "{results:?}"
    );
    assert_eq!(results.len(), 5, "{results:?}");
    close_and_join(pool);
}

#[test]
fn results_carrying_os_handles_are_an_error_not_a_hang() {
    let _g = common::guard();
    let pool = Arc::new(pool(2));
    let r = on_pool(&pool, |p| p.apply(makes_lock, 0).map(drop));
    assert!(matches!(r, Err(PoolError::ResultDecode { .. })), "{r:?}");
    let r = on_pool(&pool, |p| p.chunksize(2).map(makes_lock, 0..5).map(drop));
    assert!(matches!(r, Err(PoolError::ResultDecode { .. })), "{r:?}");
    let n = on_pool(&pool, |p| {
        p.chunksize(2)
            .imap(makes_lock, 0..5)
            .unwrap()
            .filter(|r| matches!(r, Err(PoolError::ResultDecode { .. })))
            .count()
    });
    assert_eq!(n, 5, "one error per item");
    assert_eq!(
        on_pool(&pool, |p| p.map(square, 0..10)).unwrap(),
        (0..10).map(|x| x * x).collect::<Vec<_>>(),
        "the pool goes on"
    );
    close_and_join(pool);
}

// ---------------------------------------------------------------------------------------------
// Each start method

fn builder(method: StartMethod) -> multiproc::PoolBuilder {
    Pool::builder().processes(2).start_method(method)
}

fn map_apply_and_initializer_work(method: StartMethod) {
    let _g = common::guard();
    let pool = builder(method).initializer(count_init, 5).build().unwrap();
    assert_eq!(
        pool.map(square, 0..100).unwrap(),
        (0..100).map(|x| x * x).collect::<Vec<_>>()
    );
    assert_eq!(
        pool.starmap(|a, b| a + b, [(1, 2), (3, 4)]).unwrap(),
        [3, 7]
    );
    let seen = pool.chunksize(1).map(init_state, 0..20).unwrap();
    assert!(seen.iter().all(|s| s.0 == 1 && s.1 == 5), "{seen:?}");
    assert_eq!(pool.apply(square, 11).unwrap(), 121);
    let first: Vec<u64> = pool
        .imap(square, 0..)
        .unwrap()
        .take(3)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 4]);
    close_and_join(pool);
}

fn a_dead_worker_is_replaced(method: StartMethod) {
    let _g = common::guard();
    let pool = Arc::new(builder(method).build().unwrap());
    let before = full_crew(&pool);
    let results = on_pool(&pool, |p| {
        p.chunksize(3)
            .imap(aborts_on_four, 0..9)
            .unwrap()
            .collect::<Vec<_>>()
    });
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) if i == 4 => assert!(is_worker_died_by(e, "SIGABRT"), "{e:?}"),
            Ok(v) if i != 4 => assert_eq!(*v, i as u64 * 10),
            other => panic!("item {i}: {other:?}"),
        }
    }
    let after = ready_crew(&pool);
    assert_ne!(
        after.iter().collect::<HashSet<_>>(),
        before.iter().collect::<HashSet<_>>()
    );
    // Killed from outside, mid-item.
    let long = pool.apply_async(nap, 60_000).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for pid in after {
        signal(pid, libc::SIGKILL);
    }
    let r = long.get_timeout(PROMPTLY);
    assert!(
        matches!(&r, Err(e) if is_worker_died_by(e, "SIGKILL")),
        "{r:?}"
    );
    full_crew(&pool);
    assert_eq!(on_pool(&pool, |p| p.apply(square, 6)).unwrap(), 36);
    close_and_join(pool);
}

fn maxtasksperchild_and_timeout_work(method: StartMethod) {
    let _g = common::guard();
    let pool = Arc::new(
        builder(method)
            .maxtasksperchild(2)
            .task_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let pids = on_pool(&pool, |p| p.chunksize(1).map(pid, 0..8)).unwrap();
    let mut per_worker: BTreeMap<u32, usize> = BTreeMap::new();
    for p in &pids {
        *per_worker.entry(*p).or_default() += 1;
    }
    assert!(
        per_worker.values().all(|&n| n <= 2) && per_worker.len() >= 4,
        "8 tasks, at most 2 per worker: {per_worker:?}"
    );
    let r = on_pool(&pool, |p| p.apply(nap, 60_000));
    assert!(matches!(r, Err(PoolError::Timeout { .. })), "{r:?}");
    assert_eq!(on_pool(&pool, |p| p.apply(nap, 1)).unwrap(), 1);
    close_and_join(pool);
}

fn own_pid(_: u32) -> u32 {
    std::process::id()
}

/// The name `ps` and `top` show for process `pid` (`/proc/<pid>/comm`).
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim_end()
        .to_string()
}

fn workers_show_in_ps_under_their_multiproc_name(method: StartMethod) {
    let _g = common::guard();
    let pool = builder(method).build().unwrap();
    let pids: HashSet<u32> = pool.map(own_pid, 0..20).unwrap().into_iter().collect();
    for pid in pids {
        let name = comm(pid);
        assert!(
            name.starts_with("PoolWorker-"),
            "worker {pid} is named {name:?}"
        );
    }
    close_and_join(pool);
}

/// The fork server shows as `multiproc-fork` (names are cut at 15 bytes).
#[test]
fn the_fork_server_shows_in_ps_under_its_name() {
    let _g = common::guard();
    let pool = builder(StartMethod::ForkServer).build().unwrap();
    assert_eq!(pool.map(own_pid, [1]).unwrap().len(), 1);
    let server = multiproc::forkserver_pid().expect("a fork server runs");
    assert_eq!(comm(server), "multiproc-fork");
    close_and_join(pool);
}

per_start_method!(
    workers_show_in_ps_under_their_multiproc_name,
    map_apply_and_initializer_work,
    a_dead_worker_is_replaced,
    maxtasksperchild_and_timeout_work,
);

// ---------------------------------------------------------------------------------------------
// One result handle: a pool's `AsyncResult` is the executor's `PoolFuture`.

#[test]
fn a_pool_result_is_a_future_for_as_completed_wait_and_await() {
    let _g = common::guard();
    let pool = pool(2);
    let results: Vec<multiproc::PoolFuture<u64>> = (1..=4)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    let mut done: Vec<u64> = multiproc::as_completed(results, Some(LONG))
        .map(|r| r.unwrap().result().unwrap())
        .collect();
    done.sort();
    assert_eq!(done, [1, 4, 9, 16]);

    let whole = pool.map_async(square, 0..10).unwrap();
    let waited =
        multiproc::executor::wait([&whole], Some(LONG), multiproc::ReturnWhen::AllCompleted);
    assert_eq!(waited.done.len(), 1);
    assert!(whole.done() && !whole.running() && !whole.cancelled());
    assert_eq!(whole.error().map(|e| e.to_string()), None);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let awaited = runtime.block_on(async { pool.apply_async(square, 12).unwrap().await });
    assert_eq!(awaited.unwrap(), 144);
    assert_eq!(whole.get().unwrap()[9], 81);
}
