//! A barrier: worker processes go through phases in step, released together each time.
//!
//! One tutorial's FAQ answers "how to make sure processes start in a given order" with
//! `multiprocessing.Barrier` or `Condition`. A Python program of that kind:
//!
//! ```python
//! def phase_complete():
//!     print("=== phase complete ===")
//!
//! def worker(i, barrier):
//!     for phase in range(3):
//!         time.sleep(...)          # this worker's part of the phase
//!         barrier.wait()           # wait for the others
//!
//! if __name__ == '__main__':
//!     barrier = multiprocessing.Barrier(3, action=phase_complete)
//!     workers = [Process(target=worker, args=(i, barrier)) for i in range(3)]
//!     ...
//! ```
//!
//! The workers take different times for each phase, so each phase some wait for others.
//! The action runs once per phase, in whichever process arrives last, before anyone is
//! released. The program checks that nobody passed the barrier before everyone arrived,
//! that the action ran once per phase, and that each phase handed out the arrival indices
//! `0..parties` once each.
//!
//! Run with `cargo run --release --example barrier`.

use std::error::Error;
use std::sync::OnceLock;
use std::time::Duration;

use multiproc::{Barrier, Process, RawValue};
use serde::{Deserialize, Serialize};

const WORKERS: u32 = 3;
const PHASES: u32 = 3;
/// Waiting longer than this breaks the barrier for everyone (a worker died, say) instead of
/// leaving the others waiting forever.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The action is a plain `fn()`: every process must be able to find it, so it cannot be a
/// capturing closure (in Python, with the spawn and forkserver start methods, it must be a
/// picklable module-level function for the same reason). It reaches shared state through a
/// per-process static, set by each worker when it starts.
static PHASES_DONE: OnceLock<RawValue<u32>> = OnceLock::new();

fn phase_complete() {
    let phase = PHASES_DONE.get().map_or(0, |done| done.fetch_add(1));
    println!("=== phase {phase} complete: everyone arrived, releasing all ===");
}

#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    barrier: Barrier,
    /// Arrivals at the barrier, all phases together.
    arrived: RawValue<u32>,
    /// Phases completed, counted by the action.
    phases_done: RawValue<u32>,
}

/// Goes through the phases; returns its arrival index in each.
fn worker((id, s): (u32, Shared)) -> Vec<u32> {
    PHASES_DONE.get_or_init(|| s.phases_done.clone());
    let mut indices = Vec::new();
    for phase in 0..PHASES {
        // Each phase a different worker is the slowest.
        let work = Duration::from_millis(40 * u64::from((id + phase) % WORKERS + 1));
        std::thread::sleep(work);
        println!("worker {id}: phase {phase} done in {work:?}, waiting");
        s.arrived.fetch_add(1);

        let index = s.barrier.wait_timeout(TIMEOUT).expect("barrier broken");

        // Nobody gets here before all have arrived for this phase.
        assert!(s.arrived.load() >= (phase + 1) * WORKERS);
        indices.push(index);
    }
    indices
}

fn main() -> Result<(), Box<dyn Error>> {
    let shared = Shared {
        barrier: Barrier::with_action(WORKERS, phase_complete)?,
        arrived: RawValue::new(0)?,
        phases_done: RawValue::new(0)?,
    };
    let workers = (0..WORKERS)
        .map(|id| Process::start(worker, (id, shared.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let indices = workers
        .into_iter()
        .map(|w| w.join())
        .collect::<Result<Vec<_>, _>>()?;

    assert_eq!(shared.phases_done.get(), PHASES); // the action ran once per phase
    for phase in 0..PHASES as usize {
        let mut got: Vec<u32> = indices.iter().map(|ix| ix[phase]).collect();
        println!("phase {phase}: arrival index of worker 0, 1, 2: {got:?}");
        got.sort();
        assert_eq!(got, (0..WORKERS).collect::<Vec<_>>());
    }
    assert!(!shared.barrier.broken());
    Ok(())
}
