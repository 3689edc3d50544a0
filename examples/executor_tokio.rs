//! CPU-bound work from an async (tokio) program without blocking the runtime: the Rust form
//! of Python's `await loop.run_in_executor(ProcessPoolExecutor(), cpu_bound, n)`.
//!
//! A `PoolFuture` is a `std::future::Future`, so a task simply `.await`s it: the runtime's
//! threads stay free while worker processes count primes. A ticker task keeps printing
//! while the work runs, which shows the runtime is not blocked.
//!
//! ```text
//! cargo run --release --example executor_tokio
//! ```

use std::time::{Duration, Instant};

use multiproc::{PoolError, ProcessPoolExecutor};

/// Primes below `limit`, by trial division (deliberately CPU-bound).
fn count_primes(limit: u64) -> u64 {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), PoolError> {
    let executor = ProcessPoolExecutor::new(multiproc::cpu_count())?;
    let start = Instant::now();

    // A heartbeat on the same (single-threaded) runtime.
    let ticker = tokio::spawn(async move {
        let mut beats = 0;
        let mut interval = tokio::time::interval(Duration::from_millis(100));
        loop {
            interval.tick().await;
            beats += 1;
            println!(
                "[{:>4} ms] runtime alive (beat {beats})",
                start.elapsed().as_millis()
            );
        }
    });

    let limits = [1_500_000, 2_000_000, 2_500_000, 3_000_000];
    let futures = limits
        .iter()
        .map(|&limit| executor.submit(count_primes, limit))
        .collect::<Result<Vec<_>, _>>()?;
    // Await them all concurrently; each resolves when its worker process answers.
    let mut handles = Vec::new();
    for (limit, future) in limits.into_iter().zip(futures) {
        handles.push(tokio::spawn(async move { (limit, future.await) }));
    }
    for handle in handles {
        let (limit, primes) = handle.await.expect("the awaiting task panicked");
        println!(
            "[{:>4} ms] primes below {limit}: {}",
            start.elapsed().as_millis(),
            primes?
        );
    }
    ticker.abort();
    println!("all done in {:.2?}", start.elapsed());
    Ok(())
}
