//! The mean of a large data set, computed in chunks on a pool, checked against a plain loop.
//!
//! The Python original (a tutorial's "parallel data analysis" project):
//!
//! ```python
//! def analyze(data):
//!     return np.mean(data)
//!
//! with Pool(processes=5) as pool:
//!     data = np.random.rand(100000)
//!     sub_datas = [data[i::5] for i in range(5)]
//!     results = pool.map(analyze, sub_datas)
//! print(np.mean(results))
//! ```
//!
//! Here the data are ten million pseudo-random numbers in [0, 1) (a fixed-seed xorshift, so
//! every run sees the same numbers). They are cut into 16 contiguous chunks and
//! `partial_sum` is mapped over the chunks; each returns its sum and its length, so the
//! parent can combine chunks of any size exactly (a mean of means is only right when all
//! chunks have the same length, as in the original).
//!
//! What the timings show: like Python's `pool.map`, `Pool::map` copies every chunk to a
//! worker (80 MB here), and summing a number costs less than copying it, so the pool is not
//! faster than the plain loop for this job. It pays off when each item needs real work
//! (see `pool_primes`); to share a large array without copying, see `array_sum`.
//!
//! Run with `cargo run --release --example pool_chunked_mean`.

use std::error::Error;
use std::time::Instant;

use multiproc::{Pool, cpu_count};

const LEN: usize = 10_000_000;
const CHUNKS: usize = 16;

/// The sum and the number of values of one chunk.
fn partial_sum(chunk: Vec<f64>) -> (f64, usize) {
    (chunk.iter().sum(), chunk.len())
}

/// `len` pseudo-random numbers in [0, 1) (xorshift64), in place of `np.random.rand`.
fn random_data(len: usize) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn main() -> Result<(), Box<dyn Error>> {
    let data = random_data(LEN);

    let start = Instant::now();
    let serial_mean = data.iter().sum::<f64>() / LEN as f64;
    let serial_time = start.elapsed();

    let pool = Pool::new(cpu_count())?;
    let start = Instant::now();
    let chunks = data.chunks(LEN.div_ceil(CHUNKS)).map(<[f64]>::to_vec);
    let partials = pool.map(partial_sum, chunks)?;
    let (sum, count) = partials
        .iter()
        .fold((0.0, 0), |(s, n), (cs, cn)| (s + cs, n + cn));
    let pool_mean = sum / count as f64;
    let pool_time = start.elapsed();
    pool.close();
    pool.join()?;

    println!(
        "{LEN} values in {} chunks on a pool of {} workers",
        partials.len(),
        pool.processes()
    );
    println!("pool mean:   {pool_mean:.12}  ({pool_time:.1?}, chunks copied to the workers)");
    println!("serial mean: {serial_mean:.12}  ({serial_time:.1?}, one loop)");
    // The chunks are summed in a different order, so the last bits may differ.
    let diff = (pool_mean - serial_mean).abs();
    println!("difference:  {diff:.1e}");
    assert_eq!(count, LEN);
    assert!(diff < 1e-12, "means differ by {diff}");
    assert!((pool_mean - 0.5).abs() < 1e-3);
    Ok(())
}
