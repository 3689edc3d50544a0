//! The "hello world" of process pools: square ten numbers on four worker processes.
//!
//! The Python original:
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def square(x):
//!     return x * x
//!
//! if __name__ == '__main__':
//!     with Pool(processes=4) as pool:
//!         results = pool.map(square, range(10))
//!         print(results)
//! ```
//!
//! `Pool::map` splits the items into chunks, the workers take chunks from a shared queue,
//! and the results come back in input order. The task is a plain function (a closure that
//! captures nothing would do too); its argument and result are any serde types. Python's
//! `with` block terminates the pool at its end; dropping a `Pool` does the same, and
//! `close` + `join` let the workers finish and exit cleanly instead.
//!
//! Run with `cargo run --release --example pool_square`.

use multiproc::{Pool, PoolError};

fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), PoolError> {
    let pool = Pool::new(4)?;
    let results = pool.map(square, 0..10)?;
    println!("{results:?}");
    assert_eq!(results, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    pool.close();
    pool.join()
}
