//! A counter shared by several processes, protected by a lock.
//!
//! The Python originals, from two of the tutorials:
//!
//! ```python
//! def func(lock, counter):
//!     lock.acquire()
//!     try:
//!         for i in range(5):
//!             counter.value += 1
//!             print(counter.value)
//!     finally:
//!         lock.release()
//!
//! if __name__ == '__main__':
//!     lock = Lock()
//!     counter = Value('i', 0)
//!     processes = []
//!     for i in range(2):
//!         p = Process(target=func, args=(lock, counter))
//!         processes.append(p)
//!         p.start()
//!     for p in processes:
//!         p.join()
//! ```
//!
//! ```python
//! def increment(shared_num, lock):
//!     with lock:
//!         shared_num.value += 1
//!
//! if __name__ == '__main__':
//!     num = Value('i', 0)
//!     lock = Lock()
//!     processes = [Process(target=increment, args=(num, lock)) for _ in range(10)]
//!     for p in processes:
//!         p.start()
//!     for p in processes:
//!         p.join()
//!     print(num.value)  # Output: 10
//! ```
//!
//! A third part shows why the lock is needed and two shorter ways to get the same safety:
//! the `Value`'s own lock held across the update (Python's
//! `with counter.get_lock(): counter.value += 1`) and a lock-free atomic add, which Python
//! does not have.
//!
//! Run with `cargo run --release --example lock_counter`.

use std::error::Error;
use std::time::Instant;

use multiproc::{Lock, Process, Value};

/// The first tutorial's worker: five increments while holding the lock.
fn func((lock, counter): (Lock, Value<i32>)) {
    // Python's `lock.acquire()` ... `finally: lock.release()`: the guard releases the lock
    // when it goes out of scope, on a panic too. (`acquire` fails only in unusual cases,
    // such as a previous holder that died holding the lock: see examples/owner_died.rs.)
    let _guard = lock.acquire().expect("acquire the lock");
    for _ in 0..5 {
        // `counter.value += 1`: a read, then a write (each takes the Value's own lock
        // briefly, and fails only if that lock is broken). It is the outer `lock` that makes
        // the pair safe.
        let seen = counter.get().expect("value lock");
        counter.set(seen + 1).expect("value lock");
        println!("{}", seen + 1);
    }
}

/// The second tutorial's worker: one increment under the lock (`with lock:`).
fn increment((shared_num, lock): (Value<i32>, Lock)) {
    let _guard = lock.acquire().expect("acquire the lock");
    let seen = shared_num.get().expect("value lock");
    shared_num.set(seen + 1).expect("value lock");
}

/// Start `workers` processes running `f(arg)`, then join them all.
fn run_all<A>(workers: usize, f: fn(A), arg: A) -> Result<(), Box<dyn Error>>
where
    A: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let processes = (0..workers)
        .map(|_| Process::start(f, arg.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    for p in processes {
        p.join()?;
    }
    Ok(())
}

const WORKERS: usize = 10;
const ROUNDS: i32 = 50_000;

/// `counter.value += 1` without any lock: two processes can read the same value and both
/// write it plus one, so increments get lost.
fn add_unlocked(counter: Value<i32>) {
    for _ in 0..ROUNDS {
        let seen = counter.get().expect("value lock");
        counter.set(seen + 1).expect("value lock");
    }
}

/// The Value's own lock held across the read-modify-write: `update` reads, applies the
/// function and writes back before it releases the lock.
fn add_locked(counter: Value<i32>) {
    for _ in 0..ROUNDS {
        counter.update(|n| n + 1).expect("value lock");
    }
}

/// One atomic instruction, no lock at all (integer values only).
fn add_atomic(counter: Value<i32>) {
    for _ in 0..ROUNDS {
        counter.fetch_add(1);
    }
}

/// Run `f` in `WORKERS` processes on a new counter; print and return the final count.
fn count_with(what: &str, f: fn(Value<i32>)) -> Result<i32, Box<dyn Error>> {
    let counter = Value::new(0i32)?;
    let start = Instant::now();
    run_all(WORKERS, f, counter.clone())?;
    let got = counter.get()?;
    println!(
        "{what:<42} {got:>7} of {} in {:>7.1?}",
        WORKERS as i32 * ROUNDS,
        start.elapsed()
    );
    Ok(got)
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("--- 2 processes, 5 increments each, under a Lock ---");
    // Python's `Value('i', 0)`: the type code becomes the Rust type.
    let lock = Lock::new()?;
    let counter = Value::new(0i32)?;
    // Both handles are cloned into each child: a clone is the same lock and the same shared
    // integer, not a copy.
    run_all(2, func, (lock.clone(), counter.clone()))?;
    println!("final value: {}", counter.get()?);
    // Each child held the lock for its five increments, so the children printed 1..=5 and
    // 6..=10 in two unbroken runs.
    assert_eq!(counter.get()?, 10);

    println!("\n--- 10 processes, 1 increment each (`with lock:`) ---");
    let num = Value::new(0i32)?;
    run_all(10, increment, (num.clone(), lock.clone()))?;
    println!("num.value = {}", num.get()?);
    assert_eq!(num.get()?, 10);

    println!("\n--- {WORKERS} processes x {ROUNDS} increments, three ways ---");
    let expected = WORKERS as i32 * ROUNDS;
    let got = count_with("no lock: counter.set(counter.get() + 1)", add_unlocked)?;
    // How many updates are lost depends on scheduling, so it is shown, not checked.
    println!("{:<42} ({} increments lost)", "", expected - got);
    assert_eq!(
        count_with("the Value's lock: counter.update(|n| n + 1)", add_locked)?,
        expected
    );
    assert_eq!(
        count_with("atomic: counter.fetch_add(1)", add_atomic)?,
        expected
    );
    Ok(())
}
