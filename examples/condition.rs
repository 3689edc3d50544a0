//! A condition variable: consumers wait until a producer has published something.
//!
//! The Python original (from a tutorial's "advanced concurrency" chapter):
//!
//! ```python
//! condition = multiprocessing.Condition()
//!
//! def worker_with_condition(condition):
//!     with condition:
//!         condition.wait()  # 等待通知 (wait to be notified)
//!         # 执行任务 (do the work)
//! ```
//!
//! Completed into a program: three consumer processes wait for a producer process to
//! publish a value in shared memory; the producer sets it and notifies them all. Then the
//! producer waits, on the same condition, until every consumer has acknowledged.
//!
//! One change from the tutorial: a bare `condition.wait()` can miss the notification (if the
//! producer notifies before the consumer starts waiting, the consumer sleeps forever) and
//! may wake spuriously. Waiting for the *state* with `wait_for(predicate)` avoids both; in
//! Python that is `condition.wait_for(lambda: ...)`.
//!
//! Run with `cargo run --release --example condition`.

use std::error::Error;
use std::time::{Duration, SystemTime};

use multiproc::{Condition, Process, ProcessBuilder, RawValue, current_process};
use serde::{Deserialize, Serialize};

const CONSUMERS: u32 = 3;
/// No wait in this program is unbounded: if a process died, the others would report it
/// instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The condition and the state it is about. The values need no lock of their own (they are
/// `RawValue`s): every access happens while holding the condition's lock.
#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    cond: Condition,
    /// The published value; 0 until the producer publishes.
    answer: RawValue<u64>,
    /// How many consumers have seen it.
    acks: RawValue<u32>,
}

/// Waits for the answer, acknowledges it, returns it and when this consumer woke.
fn consumer(s: Shared) -> (u64, SystemTime) {
    let me = current_process().name;
    // Python's `with condition:`: the guard holds the condition's lock.
    let mut guard = s.cond.acquire().expect("condition lock");
    println!("{me}: waiting for the answer");
    // Releases the lock while sleeping, takes it back before checking again.
    let published = guard.wait_for(|| s.answer.get() != 0, Some(TIMEOUT));
    let woke = SystemTime::now();
    assert!(published, "{me}: nothing was published within {TIMEOUT:?}");
    let answer = s.answer.get();
    println!("{me}: got {answer}");
    s.acks.set(s.acks.get() + 1);
    guard.notify_all(); // the producer waits for the acknowledgements
    (answer, woke)
}

/// Computes the answer, publishes it, notifies, then waits until everyone has seen it.
/// Returns when it notified.
fn producer(s: Shared) -> SystemTime {
    std::thread::sleep(Duration::from_millis(200)); // computing the answer...
    let mut guard = s.cond.acquire().expect("condition lock");
    s.answer.set(42);
    let notified = SystemTime::now();
    guard.notify_all();
    println!("producer: published 42 and notified everyone");

    let all_acked = guard.wait_for(|| s.acks.get() == CONSUMERS, Some(TIMEOUT));
    assert!(all_acked, "only {} acknowledgements", s.acks.get());
    println!("producer: all {CONSUMERS} consumers acknowledged");
    notified
}

fn main() -> Result<(), Box<dyn Error>> {
    let shared = Shared {
        cond: Condition::new()?, // over an RLock, as in Python
        answer: RawValue::new(0)?,
        acks: RawValue::new(0)?,
    };
    let consumers = (1..=CONSUMERS)
        .map(|i| {
            ProcessBuilder::new()
                .name(format!("consumer-{i}"))
                .start(consumer, shared.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let producer = Process::start(producer, shared.clone())?;

    let notified = producer.join()?;
    for c in consumers {
        let (answer, woke) = c.join()?;
        assert_eq!(answer, 42);
        // Each consumer woke because of the notification, not because its wait timed out.
        let delay = woke.duration_since(notified).unwrap_or_default();
        assert!(
            delay < Duration::from_secs(1),
            "a consumer woke {delay:?} after notify_all"
        );
    }
    println!("every consumer got the answer and woke right after notify_all");
    Ok(())
}
