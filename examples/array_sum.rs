//! A large array in shared memory, filled once and summed in parts by several processes.
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
//! There, every part is pickled and copied to a worker. Here the data lives in a shared
//! `Array<f64>` of ten million elements (80 MB): each child receives a handle to it (a file
//! descriptor) and a range, and reads its part in place. Nothing is copied.
//!
//! What the timings show: a plain sum is limited by memory bandwidth and takes only
//! milliseconds, about as long as starting a process and having it map 40 MB (each page
//! costs a page fault on its first touch in a new mapping). So at this size the parallel sum
//! is no faster than the serial one; sharing instead of copying pays off when each element
//! needs real work, or when the workers use the data more than once.
//!
//! Run with `cargo run --release --example array_sum`.

use std::error::Error;
use std::ops::Range;
use std::time::{Duration, Instant};

use multiproc::{Array, Process, cpu_count};

const LEN: usize = 10_000_000;

/// Sums `range` of the shared array; returns the sum and how long the summing took.
fn partial_sum((data, range): (Array<f64>, Range<usize>)) -> (f64, Duration) {
    let start = Instant::now();
    // SAFETY: the parent filled the array before starting the workers and writes nothing
    // until it has joined them all; the workers only read. So no one writes while this
    // slice lives, and reading without the lock is sound (and avoids serializing the
    // workers on the array's lock).
    let all = unsafe { data.as_slice_unlocked() };
    let sum = all[range].iter().sum();
    (sum, start.elapsed())
}

/// Pseudo-random numbers in [0, 1) (xorshift64), in place of `np.random.rand`.
fn fill_random(values: &mut [f64]) {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for v in values {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *v = (state >> 11) as f64 / (1u64 << 53) as f64;
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let data = Array::<f64>::zeroed(LEN)?;
    // Filled once: the numbers are made in private memory and copied in under the array's
    // lock (shared memory is only ever read and written by copying, never borrowed as a
    // `&mut [f64]` that another process could write under).
    let mut values = vec![0.0; LEN];
    fill_random(&mut values);
    data.copy_from_slice(0, &values)?;
    drop(values);
    println!(
        "filled {LEN} f64 ({} MB) in shared memory in {:.1?}",
        LEN * 8 / 1_000_000,
        start.elapsed()
    );

    // Serial: this process sums everything.
    let start = Instant::now();
    // SAFETY: nothing else uses the array yet.
    let serial: f64 = unsafe { data.as_slice_unlocked() }.iter().sum();
    let serial_time = start.elapsed();
    println!("serial sum   {serial:.6} in {serial_time:.1?}");

    // Parallel: one contiguous part per CPU.
    let parts = cpu_count().max(2);
    let start = Instant::now();
    let workers = (0..parts)
        .map(|i| LEN * i / parts..LEN * (i + 1) / parts)
        .map(|range| Process::start(partial_sum, (data.clone(), range)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parallel = 0.0;
    for (i, w) in workers.into_iter().enumerate() {
        let (sum, took) = w.join()?;
        println!("  part {i}: {sum:.6}, summed in {took:.1?} by its process");
        parallel += sum;
    }
    let parallel_time = start.elapsed();
    println!(
        "parallel sum {parallel:.6} in {parallel_time:.1?} with {parts} processes \
         (starting and joining them included)"
    );

    // Adding in a different order rounds differently: equal up to rounding, not bit for bit.
    let relative = ((parallel - serial) / serial).abs();
    assert!(relative < 1e-12, "sums differ by {relative:e}");
    println!(
        "mean {:.6} (expected about 0.5); the sums agree to {relative:.0e}",
        parallel / LEN as f64
    );
    Ok(())
}
