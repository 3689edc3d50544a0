//! Graceful shutdown of worker processes with an `Event` as the stop signal.
//!
//! The Python original (a tutorial's answer to "how to terminate processes gracefully"):
//!
//! ```python
//! def worker(stop_event):
//!     while not stop_event.is_set():
//!         print("Doing work")
//!         # Do some work here
//!     print("Exiting")
//!
//! if __name__ == "__main__":
//!     stop_event = Event()
//!     p = Process(target=worker, args=(stop_event,))
//!     p.start()
//!     # Do other things
//!     stop_event.set()  # Signal the process to terminate
//!     p.join()          # Wait for the process to exit
//! ```
//!
//! Two kinds of workers share one event:
//! - `worker` is the tutorial's loop: it checks the flag between units of work, so it stops
//!   after finishing the unit in progress;
//! - `ticker` does something periodically and uses `wait_timeout` as its pause: the wait
//!   returns at once when the event is set, so it stops without waiting out its period.
//!
//! Unlike `terminate()`, which kills a worker wherever it is, a graceful stop lets each
//! worker finish cleanly and return a result (here, how much it did).
//!
//! Run with `cargo run --release --example event_shutdown`.

use std::error::Error;
use std::time::{Duration, Instant};

use multiproc::{Event, ProcessBuilder, current_process};

/// One unit of the worker's work.
const UNIT: Duration = Duration::from_millis(50);
/// The ticker's period: long, to show that it does not delay the shutdown.
const PERIOD: Duration = Duration::from_secs(10);

fn worker(stop: Event) -> u32 {
    let me = current_process().name;
    let mut units = 0;
    while !stop.is_set() {
        println!("{me}: doing work (unit {units})");
        std::thread::sleep(UNIT); // stands for real work that cannot be interrupted
        units += 1;
    }
    println!("{me}: exiting after {units} units");
    units
}

fn ticker(stop: Event) -> u32 {
    let me = current_process().name;
    let mut ticks = 0;
    // `wait_timeout` returns `true` as soon as the event is set, `false` after the period.
    while !stop.wait_timeout(PERIOD) {
        ticks += 1;
        println!("{me}: tick {ticks}");
    }
    println!("{me}: exiting after {ticks} ticks");
    ticks
}

fn main() -> Result<(), Box<dyn Error>> {
    let stop = Event::new()?;
    let workers = (1..=2)
        .map(|i| {
            ProcessBuilder::new()
                .name(format!("worker-{i}"))
                .start(worker, stop.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ticker = ProcessBuilder::new()
        .name("ticker")
        .start(ticker, stop.clone())?;

    // "Do other things".
    std::thread::sleep(Duration::from_millis(300));

    println!("main: setting the stop event");
    let asked = Instant::now();
    stop.set();
    for w in workers {
        let units = w.join()?;
        assert!(units > 0);
    }
    // The ticker was in the middle of a 10 s wait: it returns at once all the same.
    assert_eq!(ticker.join()?, 0);
    let took = asked.elapsed();
    println!("main: every worker stopped {took:.0?} after the event was set");
    // At most one unit of work in progress, plus scheduling.
    assert!(took < UNIT + Duration::from_secs(1));
    Ok(())
}
