//! CPU-bound work on a pool: counting primes, one process vs all cores.
//!
//! The Python counterpart is the `cpu_bound_speedup` case of the reference benchmark
//! (`python_baseline.py`): count primes by trial division, with the range cut into chunks
//! and `Pool.map` over the chunks, the classic demonstration that processes get around the
//! GIL:
//!
//! ```python
//! def count_primes(bounds):
//!     lo, hi = bounds
//!     ...  # trial division of every n in [lo, hi) by 3, 5, 7, ... up to sqrt(n)
//!     return c
//!
//! with Pool(2) as pool:
//!     total = sum(pool.map(count_primes, bounds))
//! ```
//!
//! Rust has no GIL, but the pattern is the same: the chunks are small messages (two
//! numbers), the work is all in the workers, so the speedup is close to the number of cores.
//! The chunks near the end of the range take longer (bigger numbers have more candidate
//! divisors), which is why there are many more chunks than workers: a worker that finishes
//! early takes the next chunk.
//!
//! Run with `cargo run --release --example pool_primes`.

use std::error::Error;
use std::time::Instant;

use multiproc::{Pool, cpu_count};

const LIMIT: u64 = 2_000_000;
const CHUNKS: u64 = 64;

/// The number of primes in `[lo, hi)`, by trial division by odd numbers.
fn count_primes((lo, hi): (u64, u64)) -> u64 {
    (lo.max(2)..hi)
        .filter(|&n| {
            n == 2
                || (n % 2 == 1
                    && (3..)
                        .step_by(2)
                        .take_while(|i| i * i <= n)
                        .all(|i| n % i != 0))
        })
        .count() as u64
}

fn main() -> Result<(), Box<dyn Error>> {
    let step = LIMIT / CHUNKS;
    let chunks: Vec<(u64, u64)> = (0..CHUNKS)
        .map(|i| {
            (
                i * step,
                if i == CHUNKS - 1 {
                    LIMIT
                } else {
                    (i + 1) * step
                },
            )
        })
        .collect();

    let start = Instant::now();
    let serial: u64 = chunks.iter().map(|&c| count_primes(c)).sum();
    let serial_time = start.elapsed();
    println!("serial:  {serial} primes below {LIMIT} in {serial_time:.1?}");

    let pool = Pool::new(cpu_count())?;
    let start = Instant::now();
    let parallel: u64 = pool.map(count_primes, chunks)?.iter().sum();
    let pool_time = start.elapsed();
    pool.close();
    pool.join()?;
    println!(
        "pool:    {parallel} primes below {LIMIT} in {pool_time:.1?} ({} workers, {CHUNKS} chunks)",
        pool.processes()
    );
    println!(
        "speedup: {:.2}x",
        serial_time.as_secs_f64() / pool_time.as_secs_f64()
    );
    assert_eq!(serial, parallel);
    assert_eq!(serial, 148_933); // π(2 000 000)
    Ok(())
}
