//! A semaphore limiting how many worker processes use a resource at once.
//!
//! The Python original (from a tutorial's "advanced concurrency" chapter), completed with
//! workers that announce themselves:
//!
//! ```python
//! semaphore = multiprocessing.Semaphore(2)  # 允许两个进程同时访问资源 (two at a time)
//!
//! def worker(semaphore):
//!     semaphore.acquire()
//!     try:
//!         pass  # 执行任务 (do the work)
//!     finally:
//!         semaphore.release()
//! ```
//!
//! Six workers share two permits. Each counts itself in and out of a shared counter with
//! atomic `fetch_add`/`fetch_sub`, and records the highest count it saw, so the program can
//! check that never more than two were inside at once.
//!
//! Run with `cargo run --release --example semaphore`.

use std::error::Error;
use std::time::{Duration, SystemTime};

use multiproc::{Process, RawValue, Semaphore};
use serde::{Deserialize, Serialize};

const WORKERS: usize = 6;
const PERMITS: u32 = 2;
const WORK: Duration = Duration::from_millis(150);

/// What every worker gets: handles to the same semaphore and counters (cloning a handle
/// shares the object, it does not copy it), and the common start time for the printout.
#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    slots: Semaphore,
    /// Workers holding a permit now. A `RawValue` (no lock): it is only touched atomically.
    inside: RawValue<u32>,
    /// The most that were ever inside together.
    peak: RawValue<u32>,
    start: SystemTime,
}

fn worker((id, s): (usize, Shared)) {
    // Python's `acquire()` ... `finally: release()`: the permit is given back when the guard
    // is dropped, even if the work panics.
    let permit = s.slots.acquire();
    let now = s.inside.fetch_add(1) + 1;
    raise_to(&s.peak, now);
    println!(
        "{:>4} ms  worker {id} enters ({now} inside)",
        ms_since(s.start)
    );

    std::thread::sleep(WORK); // the work that needs the resource

    let now = s.inside.fetch_sub(1) - 1; // count out *before* giving the permit back
    println!(
        "{:>4} ms  worker {id} leaves ({now} inside)",
        ms_since(s.start)
    );
    drop(permit);
}

/// Atomically raise `peak` to at least `value`. There is no `fetch_max`, so this is the
/// usual compare-exchange loop: retry if another process changed it in between.
fn raise_to(peak: &RawValue<u32>, value: u32) {
    let mut current = peak.load();
    while current < value {
        match peak.compare_exchange(current, value) {
            Ok(_) => break,
            Err(now) => current = now,
        }
    }
}

fn ms_since(start: SystemTime) -> u128 {
    start.elapsed().unwrap_or_default().as_millis()
}

fn main() -> Result<(), Box<dyn Error>> {
    let shared = Shared {
        slots: Semaphore::new(PERMITS)?,
        inside: RawValue::new(0)?,
        peak: RawValue::new(0)?,
        start: SystemTime::now(),
    };
    let workers = (0..WORKERS)
        .map(|id| Process::start(worker, (id, shared.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    for w in workers {
        w.join()?;
    }

    let peak = shared.peak.get();
    println!(
        "{WORKERS} workers, {PERMITS} permits: at most {peak} inside at once; \
         all done in {} ms (about {WORKERS} / {PERMITS} x {} ms)",
        ms_since(shared.start),
        WORK.as_millis()
    );
    assert!(peak <= PERMITS, "{peak} workers were inside at once");
    assert_eq!(shared.inside.get(), 0);
    assert_eq!(shared.slots.get_value(), PERMITS); // every permit was given back
    Ok(())
}
