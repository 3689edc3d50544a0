//! Pools and executors on MPI ranks (feature `mpi`). Not a libtest harness: rank 0 runs
//! these cases one after the other (the ranks serve one pool at a time) and the other
//! ranks are workers before `main`. Run by `tests/mpi/run.sh` under `mpirun`:
//!
//! ```text
//! mpirun -n 3 --oversubscribe target/debug/deps/mpi-*        # every case below
//! mpirun -n 3 ... mpi-* dead-rank                            # one named case
//! ```
//!
//! Outside a launcher it says so and succeeds (nothing to test without worker ranks).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use multiproc::executor::{ReturnWhen, as_completed, wait};
use multiproc::mpi::{Backend, MpiError};
use multiproc::{Pool, PoolError, ProcessPoolExecutor, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: u32) -> u32 {
    std::process::id()
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn fail_on_three(x: u64) -> u64 {
    assert_ne!(x, 3, "three is refused");
    x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn die(code: i32) -> u64 {
    std::process::exit(code)
}

fn lock_arg(_: multiproc::Lock) {}

fn value_arg(_: multiproc::Value<u64>) {}

fn mpi_pool() -> Pool {
    Pool::builder()
        .backend(Backend::Mpi)
        .build()
        .expect("a pool on the MPI ranks")
}

fn pool_runs_on_every_worker_rank_and_not_here() {
    let pool = mpi_pool();
    let workers = std::env::var("MPI_TEST_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    assert_eq!(pool.processes(), workers);
    let pids: HashSet<u32> = pool
        .chunksize(1)
        .map(pid, 0..200)
        .unwrap()
        .into_iter()
        .collect();
    assert!(!pids.contains(&std::process::id()));
    assert_eq!(pids.len(), workers, "every rank took tasks: {pids:?}");
    let mut listed = pool.pids();
    listed.sort_unstable();
    let mut seen: Vec<u32> = pids.into_iter().collect();
    seen.sort_unstable();
    assert_eq!(listed, seen);
}

fn map_returns_results_in_order() {
    let pool = mpi_pool();
    let expected: Vec<u64> = (0..10_000).map(square).collect();
    assert_eq!(pool.map(square, 0..10_000).unwrap(), expected);
}

fn map_with_chunksize_one_and_progress() {
    let pool = mpi_pool();
    let expected: Vec<u64> = (0..300).map(square).collect();
    assert_eq!(pool.chunksize(1).map(square, 0..300).unwrap(), expected);
    assert_eq!(pool.progress().map(square, 0..300).unwrap(), expected);
}

fn large_chunks_cross_in_both_directions() {
    let pool = mpi_pool();
    let expected: Vec<u64> = (0..200_000).map(square).collect();
    assert_eq!(
        pool.chunksize(50_000).map(square, 0..200_000).unwrap(),
        expected
    );
}

fn imap_in_order_and_unordered() {
    let pool = mpi_pool();
    let ordered: Vec<u64> = pool
        .imap(square, 0..100)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, (0..100).map(square).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..100)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, ordered);
}

fn starmap_spreads_tuples() {
    let pool = mpi_pool();
    assert_eq!(
        pool.starmap(add as fn(u64, u64) -> u64, vec![(1, 2), (3, 4), (5, 6)])
            .unwrap(),
        [3, 7, 11]
    );
}

fn apply_async_with_callback() {
    let pool = mpi_pool();
    let (tx, rx) = mpsc::channel();
    let result = pool
        .apply_async(square, 12)
        .unwrap()
        .callback(move |v| tx.send(*v).unwrap());
    assert_eq!(result.get().unwrap(), 144);
    assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), 144);
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
}

fn task_panic_reports_message_and_location() {
    let pool = mpi_pool();
    let results: Vec<Result<u64, PoolError>> = pool.imap(fail_on_three, 0..6).unwrap().collect();
    for (i, r) in results.iter().enumerate() {
        if i == 3 {
            match r {
                Err(PoolError::Panicked(p)) => {
                    assert!(p.message.contains("three is refused"), "{}", p.message);
                    let at = p.location.as_ref().expect("a location");
                    assert!(at.file.ends_with("mpi.rs"), "{at:?}");
                    assert!(
                        p.process_name.starts_with("MpiWorker-"),
                        "{}",
                        p.process_name
                    );
                }
                other => panic!("item 3: {other:?}"),
            }
        } else {
            assert_eq!(r.as_ref().ok(), Some(&(i as u64)));
        }
    }
}

fn executor_submit_as_completed_and_wait() {
    let ex = ProcessPoolExecutor::builder()
        .backend(Backend::Mpi)
        .build()
        .unwrap();
    assert_eq!(ex.submit(square, 9).unwrap().result().unwrap(), 81);
    let futures: Vec<_> = [300, 10]
        .iter()
        .map(|ms| ex.submit(nap, *ms).unwrap())
        .collect();
    let order: Vec<u64> = as_completed(futures, None)
        .map(|f| f.unwrap().result().unwrap())
        .collect();
    assert_eq!(order, [10, 300]);
    let futures = vec![ex.submit(nap, 10).unwrap(), ex.submit(nap, 1_500).unwrap()];
    let first = wait(&futures, None, ReturnWhen::FirstCompleted);
    assert_eq!((first.done.len(), first.not_done.len()), (1, 1));
    let all = wait(&futures, None, ReturnWhen::AllCompleted);
    assert_eq!(all.done.len(), 2);
    let mapped: Vec<u64> = ex.map(square, 0..50).unwrap().map(Result::unwrap).collect();
    assert_eq!(mapped, (0..50).map(square).collect::<Vec<_>>());
}

fn initializer_runs_on_each_rank() {
    fn remember(n: u64) {
        STATE.store(n, std::sync::atomic::Ordering::SeqCst);
    }
    fn recall(_: u8) -> u64 {
        STATE.load(std::sync::atomic::Ordering::SeqCst)
    }
    static STATE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let pool = Pool::builder()
        .backend(Backend::Mpi)
        .initializer(remember, 77)
        .build()
        .unwrap();
    assert!(
        pool.chunksize(1)
            .map(recall, 0..20)
            .unwrap()
            .iter()
            .all(|v| *v == 77)
    );
}

fn fork_start_method_is_refused() {
    let refused = Pool::builder()
        .backend(Backend::Mpi)
        .start_method(StartMethod::Fork)
        .build();
    assert!(
        matches!(refused, Err(PoolError::Mpi(MpiError::Fork))),
        "{refused:?}"
    );
}

fn os_handles_and_shared_memory_in_arguments_are_refused() {
    let pool = mpi_pool();
    let lock = pool.apply(lock_arg, multiproc::Lock::new().unwrap());
    assert!(
        matches!(&lock, Err(PoolError::Failed(m)) if m.contains("OS handles")),
        "{lock:?}"
    );
    let value = pool.apply(value_arg, multiproc::Value::new(1u64).unwrap());
    assert!(
        matches!(&value, Err(PoolError::Failed(m)) if m.contains("OS handles")),
        "{value:?}"
    );
    // The pool goes on.
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

fn a_second_pool_at_once_is_refused() {
    let first = mpi_pool();
    let second = Pool::builder().backend(Backend::Mpi).build();
    assert!(
        matches!(second, Err(PoolError::Mpi(MpiError::Busy))),
        "{second:?}"
    );
    drop(first);
    let third = mpi_pool();
    assert_eq!(third.apply(square, 4).unwrap(), 16);
}

fn terminated_pool_leaves_the_ranks_clean_for_the_next() {
    let pool = mpi_pool();
    let slow = pool.apply_async(nap, 300).unwrap();
    pool.terminate();
    assert!(matches!(slow.get(), Err(PoolError::Terminated)));
    drop(pool);
    let next = mpi_pool();
    assert_eq!(
        next.map(square, 0..10).unwrap(),
        (0..10).map(square).collect::<Vec<_>>()
    );
}

fn local_backend_still_works_under_mpirun() {
    let pool = Pool::builder()
        .processes(2)
        .backend(Backend::Local)
        .build()
        .unwrap();
    assert_eq!(
        pool.map(square, 0..10).unwrap(),
        (0..10).map(square).collect::<Vec<_>>()
    );
    drop(pool);
}

/// Last of the default run: it gives one rank up for good.
fn task_timeout_gives_the_rank_up_and_the_others_go_on() {
    let pool = Pool::builder()
        .backend(Backend::Mpi)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let slow = pool.apply_async(nap, 3_000).unwrap();
    match slow.get() {
        Err(PoolError::Timeout { after, name, .. }) => {
            assert_eq!(after, Duration::from_millis(500));
            assert!(name.starts_with("MpiWorker-"), "{name}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pool.map(square, 0..100).unwrap(),
        (0..100).map(square).collect::<Vec<_>>()
    );
}

/// Run with `--mca orte_abort_on_non_zero_status 0`: a rank that exits in a task fails that
/// task with a timeout, and the job goes on on the other ranks.
fn dead_rank() {
    let pool = Pool::builder()
        .backend(Backend::Mpi)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let gone = pool.apply_async(die, 3).unwrap();
    assert!(matches!(gone.get(), Err(PoolError::Timeout { .. })));
    assert_eq!(
        pool.map(square, 0..100).unwrap(),
        (0..100).map(square).collect::<Vec<_>>()
    );
}

/// Run as `mpirun -n 1 ./this build-mismatch : -n 1 ./other-build build-mismatch`.
fn build_mismatch() {
    match Pool::builder().backend(Backend::Mpi).build() {
        Err(PoolError::Mpi(MpiError::BuildMismatch { rank, .. })) => assert_eq!(rank, 1),
        other => panic!("{:?}", other.map(|p| p.processes())),
    }
}

fn hostname(_: u32) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Run by tests/mpi/netns.sh on three "hosts" (network namespaces): the tasks run on the
/// two other hosts.
fn three_hosts() {
    let pool = mpi_pool();
    let hosts: HashSet<String> = pool
        .chunksize(1)
        .map(hostname, 0..50)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    assert!(!hosts.contains(&hostname(0)), "{hosts:?}");
}

/// Run without a launcher: `MPI_Comm_spawn` two workers.
fn spawn() {
    assert_eq!(multiproc::mpi::spawn_workers(2), Ok(2));
    let pool = Pool::new(8).unwrap();
    assert_eq!(pool.processes(), 2);
    let pids: HashSet<u32> = pool
        .chunksize(1)
        .map(pid, 0..100)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(!pids.contains(&std::process::id()));
}

type Case = (&'static str, fn());

const DEFAULT: &[Case] = &[
    (
        "pool_runs_on_every_worker_rank_and_not_here",
        pool_runs_on_every_worker_rank_and_not_here,
    ),
    ("map_returns_results_in_order", map_returns_results_in_order),
    (
        "map_with_chunksize_one_and_progress",
        map_with_chunksize_one_and_progress,
    ),
    (
        "large_chunks_cross_in_both_directions",
        large_chunks_cross_in_both_directions,
    ),
    ("imap_in_order_and_unordered", imap_in_order_and_unordered),
    ("starmap_spreads_tuples", starmap_spreads_tuples),
    ("apply_async_with_callback", apply_async_with_callback),
    (
        "task_panic_reports_message_and_location",
        task_panic_reports_message_and_location,
    ),
    (
        "executor_submit_as_completed_and_wait",
        executor_submit_as_completed_and_wait,
    ),
    (
        "initializer_runs_on_each_rank",
        initializer_runs_on_each_rank,
    ),
    ("fork_start_method_is_refused", fork_start_method_is_refused),
    (
        "os_handles_and_shared_memory_in_arguments_are_refused",
        os_handles_and_shared_memory_in_arguments_are_refused,
    ),
    (
        "a_second_pool_at_once_is_refused",
        a_second_pool_at_once_is_refused,
    ),
    (
        "terminated_pool_leaves_the_ranks_clean_for_the_next",
        terminated_pool_leaves_the_ranks_clean_for_the_next,
    ),
    (
        "local_backend_still_works_under_mpirun",
        local_backend_still_works_under_mpirun,
    ),
    (
        "task_timeout_gives_the_rank_up_and_the_others_go_on",
        task_timeout_gives_the_rank_up_and_the_others_go_on,
    ),
];

const NAMED: &[Case] = &[
    ("dead-rank", dead_rank),
    ("build-mismatch", build_mismatch),
    ("spawn", spawn),
    ("three-hosts", three_hosts),
];

fn main() {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cases: Vec<Case> = if named.is_empty() {
        if !multiproc::mpi::is_active() {
            println!("mpi tests: not under an MPI launcher; run tests/mpi/run.sh");
            return;
        }
        DEFAULT.to_vec()
    } else {
        NAMED
            .iter()
            .chain(DEFAULT)
            .filter(|(name, _)| named.iter().any(|n| n == name))
            .copied()
            .collect()
    };
    for (name, case) in cases {
        let started = std::time::Instant::now();
        case();
        println!("mpi test {name} ... ok ({:?})", started.elapsed());
    }
}
