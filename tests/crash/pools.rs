//! `Pool` (`map`, `imap`, `apply_async`) and `ProcessPoolExecutor` (`result`,
//! `as_completed`): one or two workers killed at random moments while the parent waits for
//! results. Every item must come back with its right value or `PoolError::WorkerDied`, at most
//! one failed item per kill, and the pool must still work afterwards.

use std::thread::JoinHandle;
use std::time::Duration;

use multiproc::{Pool, PoolError, ProcessPoolExecutor, as_completed};

use crate::harness::{Round, run, spin_us};

const WORKERS: usize = 2;
const ITEMS: u64 = 40;

/// A task of a few hundred microseconds.
fn work(x: u64) -> u64 {
    spin_us(150 + (x * 37) % 300);
    x * x
}

/// Kill `n` of the workers `pids` from another thread, after random delays; returns how many
/// kills were sent.
fn killers(r: &mut Round, pids: &[u32], n: usize) -> JoinHandle<usize> {
    let mut plan = Vec::new();
    for k in 0..n {
        let pid = pids[r.rng.pick(pids.len())];
        let delay = r.rng.below(15_000);
        plan.push((r.killer.arm(pid, &format!("worker (kill {k})")), delay));
    }
    r.stats.kills += n as u64;
    std::thread::spawn(move || {
        let mut sent = 0;
        for (armed, delay) in plan {
            if delay > 2000 {
                std::thread::sleep(Duration::from_micros(delay));
            } else {
                spin_us(delay);
            }
            sent += usize::from(armed.fire(&format!("{delay} µs into the run")));
        }
        sent
    })
}

/// One result: the right value, or the item's worker died.
fn check_item(x: u64, res: &Result<u64, PoolError>, failed: &mut usize) {
    match res {
        Ok(v) => assert_eq!(*v, x * x, "item {x}: wrong result"),
        Err(PoolError::WorkerDied { .. }) => *failed += 1,
        Err(e) => panic!("item {x}: unexpected error {e}"),
    }
}

fn pool(r: &mut Round) -> (Pool, JoinHandle<usize>) {
    let pool = Pool::builder()
        .processes(WORKERS)
        .start_method(r.method)
        .build()
        .expect("starting the pool");
    let pids = pool.pids();
    for (i, &pid) in pids.iter().enumerate() {
        r.killer.watch(pid, &format!("pool worker {i}"));
    }
    let n = if r.rng.chance(1, 4) { 2 } else { 1 };
    let k = killers(r, &pids, n);
    (pool, k)
}

fn finish_pool(r: &mut Round, pool: Pool, killers: JoinHandle<usize>, failed: usize) {
    let sent = killers.join().expect("killer thread");
    assert!(failed <= sent, "{failed} items failed after {sent} kills");
    // The pool still works.
    let again = pool.map(work, 0..4).expect("the pool after the kills");
    assert_eq!(again, vec![0, 1, 4, 9]);
    pool.close();
    pool.join().expect("joining the pool");
    r.stats.items += ITEMS;
    r.note(format!(
        "{failed} item(s) failed with WorkerDied after {sent} kill(s)"
    ));
}

fn pool_map(r: &mut Round) {
    let (pool, k) = pool(r);
    let failed = match pool.chunksize(1).map(work, 0..ITEMS) {
        Ok(v) => {
            assert_eq!(v, (0..ITEMS).map(|x| x * x).collect::<Vec<_>>());
            0
        }
        Err(PoolError::WorkerDied { .. }) => 1,
        Err(e) => panic!("map: unexpected error {e}"),
    };
    finish_pool(r, pool, k, failed);
}

fn pool_imap(r: &mut Round) {
    let (pool, k) = pool(r);
    let mut failed = 0;
    let mut n = 0;
    for (x, res) in (0..ITEMS).zip(pool.imap(work, 0..ITEMS).expect("imap")) {
        check_item(x, &res, &mut failed);
        n += 1;
    }
    assert_eq!(n, ITEMS, "imap yielded {n} results for {ITEMS} items");
    finish_pool(r, pool, k, failed);
}

fn pool_apply_async(r: &mut Round) {
    let (pool, k) = pool(r);
    let results: Vec<_> = (0..ITEMS)
        .map(|x| pool.apply_async(work, x).expect("apply_async"))
        .collect();
    let mut failed = 0;
    for (x, a) in (0..ITEMS).zip(results) {
        check_item(x, &a.get(), &mut failed);
    }
    finish_pool(r, pool, k, failed);
}

#[test]
fn pool_map_worker_killed() {
    run("pool_map_worker_killed", pool_map);
}

#[test]
fn pool_imap_worker_killed() {
    run("pool_imap_worker_killed", pool_imap);
}

#[test]
fn pool_apply_async_worker_killed() {
    run("pool_apply_async_worker_killed", pool_apply_async);
}

// ---------------------------------------------------------------------------------------------
// ProcessPoolExecutor

fn executor(r: &mut Round) -> (ProcessPoolExecutor, JoinHandle<usize>) {
    let ex = ProcessPoolExecutor::builder()
        .max_workers(WORKERS)
        .start_method(r.method)
        .build()
        .expect("starting the executor");
    let pids = ex.pids();
    for (i, &pid) in pids.iter().enumerate() {
        r.killer.watch(pid, &format!("executor worker {i}"));
    }
    let n = if r.rng.chance(1, 4) { 2 } else { 1 };
    let k = killers(r, &pids, n);
    (ex, k)
}

fn finish_executor(
    r: &mut Round,
    ex: ProcessPoolExecutor,
    killers: JoinHandle<usize>,
    failed: usize,
) {
    let sent = killers.join().expect("killer thread");
    assert!(failed <= sent, "{failed} futures failed after {sent} kills");
    let again = ex.submit(work, 7).expect("submit after the kills");
    assert_eq!(again.result().expect("the executor after the kills"), 49);
    ex.shutdown(true, false);
    r.stats.items += ITEMS;
    r.note(format!(
        "{failed} future(s) failed with WorkerDied after {sent} kill(s)"
    ));
}

fn executor_result(r: &mut Round) {
    let (ex, k) = executor(r);
    let futures: Vec<_> = (0..ITEMS)
        .map(|x| ex.submit(work, x).expect("submit"))
        .collect();
    let mut failed = 0;
    for (x, f) in (0..ITEMS).zip(futures) {
        check_item(x, &f.result(), &mut failed);
    }
    finish_executor(r, ex, k, failed);
}

fn executor_as_completed(r: &mut Round) {
    let (ex, k) = executor(r);
    let futures: Vec<_> = (0..ITEMS)
        .map(|x| ex.submit(work, x).expect("submit"))
        .collect();
    let ids: Vec<u64> = futures.iter().map(|f| f.id()).collect();
    let mut failed = 0;
    let mut n = 0;
    for f in as_completed(futures, None) {
        let f = f.expect("as_completed without a timeout");
        let x = ids
            .iter()
            .position(|&id| id == f.id())
            .expect("a known future") as u64;
        check_item(x, &f.result(), &mut failed);
        n += 1;
    }
    assert_eq!(n, ITEMS, "as_completed yielded {n} futures of {ITEMS}");
    finish_executor(r, ex, k, failed);
}

#[test]
fn executor_result_worker_killed() {
    run("executor_result_worker_killed", executor_result);
}

#[test]
fn executor_as_completed_worker_killed() {
    run("executor_as_completed_worker_killed", executor_as_completed);
}
