//! What Python's pool cannot do: survive a worker that dies, and stop a task that hangs.
//!
//! In CPython, a pool worker killed in the middle of a task (a segfault in a C extension,
//! the OOM killer, `os.abort()`) is replaced, but the task it was running is lost without a
//! trace: `pool.map` never returns. Here only that task fails, with
//! [`PoolError::WorkerDied`] naming the signal; a new worker takes the dead one's place and
//! every other task completes. A task that panics fails with [`PoolError::Panicked`],
//! carrying the message and location from the worker (Python re-raises the exception too).
//!
//! With [`PoolBuilder::task_timeout`](multiproc::PoolBuilder::task_timeout), a task that
//! runs too long is stopped by killing its worker, which is replaced; the task fails with
//! [`PoolError::Timeout`] (Python's `AsyncResult.get(timeout)` only stops *waiting*: the
//! task keeps its worker busy until it ends on its own, if ever).
//!
//! `Pool::map` returns the first failure, as Python's `map` raises it. To see every item's
//! own outcome, this example uses `imap` (one `Result` per item, in input order) with a
//! chunk size of 1: a worker that dies takes down only the item it was running, but the
//! items of its chunk that had already finished are run again, so with chunks of one item
//! nothing runs twice.
//!
//! The workers print nothing themselves: the panic's message, location and backtrace come
//! back with the error, and the worker's death is reported as the failed item's error.
//!
//! Run with `cargo run --release --example pool_crash`.

use std::time::{Duration, Instant};

use multiproc::{Pool, PoolError};

/// Doubles `x`, except that 3 aborts the worker process and 5 panics.
fn fragile(x: u32) -> u32 {
    match x {
        3 => std::process::abort(),
        5 => panic!("five is right out"),
        _ => 2 * x,
    }
}

/// Sleeps `ms` milliseconds, returns `ms`.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn main() -> Result<(), PoolError> {
    let pool = Pool::new(2)?;
    let pids_before = pool.pids();
    let results: Vec<Result<u32, PoolError>> = pool.chunksize(1).imap(fragile, 0..8)?.collect();
    for (x, r) in results.iter().enumerate() {
        match r {
            Ok(v) => println!("fragile({x}) = {v}"),
            Err(PoolError::WorkerDied {
                name, pid, cause, ..
            }) => {
                println!("fragile({x}): worker {name} (pid {pid}) died: {cause}")
            }
            Err(PoolError::Panicked(p)) => {
                let at = p.location.as_ref().map(ToString::to_string);
                println!(
                    "fragile({x}): panicked: {:?} at {}",
                    p.message,
                    at.unwrap_or_default()
                )
            }
            Err(e) => println!("fragile({x}): {e}"),
        }
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    println!("{ok} of {} results arrived", results.len());
    assert_eq!(ok, 6);
    assert!(
        matches!(&results[3], Err(PoolError::WorkerDied { cause, .. }) if cause.contains("SIGABRT"))
    );
    assert!(matches!(&results[5], Err(PoolError::Panicked(p)) if p.message == "five is right out"));
    println!(
        "workers before: {pids_before:?}, after: {:?} (the dead one was replaced)",
        pool.pids()
    );

    // `map` reports the first failure in input order, as Python's `map` raises it.
    let first = pool.map(fragile, [1, 5, 2]).unwrap_err();
    println!("map over [1, 5, 2]: {first}");
    pool.close();
    pool.join()?;

    // A task that hangs: stopped after 300 ms, its worker killed and replaced.
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .build()?;
    let start = Instant::now();
    let naps: Vec<Result<u64, PoolError>> =
        pool.chunksize(1).imap(nap, [10, 60_000, 20, 30])?.collect();
    for r in &naps {
        match r {
            Ok(ms) => println!("nap({ms}) done"),
            Err(e) => println!("nap: {e}"),
        }
    }
    println!("all four back after {:.2?}", start.elapsed());
    assert!(matches!(naps[1], Err(PoolError::Timeout { .. })));
    assert_eq!(naps.iter().filter(|r| r.is_ok()).count(), 3);
    assert_eq!(pool.apply(nap, 1)?, 1); // the pool goes on
    pool.close();
    pool.join()
}
