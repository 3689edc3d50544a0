//! `ProcessPoolExecutor` with `as_completed`: the Rust form of the tutorial's
//!
//! ```python
//! with ProcessPoolExecutor() as executor:
//!     futures = {executor.submit(task, i) for i in range(10)}
//!     for future in as_completed(futures):
//!         result = future.result()
//! ```
//!
//! Ten tasks of different lengths; results are printed in the order they finish, not the
//! order they were submitted. One input panics: only its future fails.
//!
//! ```text
//! cargo run --release --example executor_as_completed
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use multiproc::{PoolError, ProcessPoolExecutor, as_completed};

/// Stands for an I/O-bound or CPU-bound job: sleeps `(10 - i) * 30` ms, then answers.
fn task(i: u64) -> String {
    if i == 7 {
        panic!("input {i} is not allowed");
    }
    std::thread::sleep(Duration::from_millis((10 - i) * 30));
    format!("task {i} done in process {}", std::process::id())
}

fn main() -> Result<(), PoolError> {
    let start = Instant::now();
    let executor = ProcessPoolExecutor::new(4)?;
    // Remember which input each future belongs to.
    let mut inputs = HashMap::new();
    let mut futures = Vec::new();
    for i in 0..10 {
        let future = executor.submit(task, i)?;
        inputs.insert(future.id(), i);
        futures.push(future);
    }
    for done in as_completed(futures, None) {
        let future = done?;
        let i = inputs[&future.id()];
        match future.result() {
            Ok(message) => println!("[{:>4} ms] {message}", start.elapsed().as_millis()),
            Err(e) => println!(
                "[{:>4} ms] input {i} failed: {e}",
                start.elapsed().as_millis()
            ),
        }
    }
    Ok(())
}
