//! A process defined as a type: the Rust form of subclassing `Process` and overriding `run`.
//!
//! The Python original (sleep shortened from 2 s to 200 ms):
//!
//! ```python
//! class Myprocess(Process):
//!     def __init__(self, wTime):
//!         Process.__init__(self)
//!         self.wTime = wTime
//!
//!     def run(self):
//!         n = 0
//!         while n < 3:
//!             print("subProcess %s run," % os.getpid(), time.ctime())
//!             time.sleep(self.wTime)
//!             n += 1
//!
//! if __name__ == "__main__":
//!     p = Myprocess(2)
//!     p.daemon = True
//!     p.start()  # Automatically calls run
//!     p.join()
//!     print("Parent process run. subProcess is ", p.pid)
//!     print("Parent process end,", time.ctime())
//! ```
//!
//! Rust has no inheritance. The task is a plain struct holding the child's data, and
//! implementing [`multiproc::Run`] is what makes it runnable in a child. The *process* settings
//! (name, daemon flag, start method) live on the [`ProcessBuilder`], not on the task, and what `run`
//! returns comes back from `join`.
//!
//! Run with `cargo run --release --example class_process`.

use std::time::{Duration, Instant};

use multiproc::{ProcessBuilder, Run, current_process};
use serde::{Deserialize, Serialize};

/// The fields are what `__init__` stored on `self`. They are sent to the child, so the type
/// derives `Serialize` and `Deserialize`: with the default start method the child is forked
/// from the fork server, not from this process, and sees only what it is sent.
#[derive(Serialize, Deserialize)]
struct MyProcess {
    w_time: Duration,
    rounds: u32,
}

impl Run for MyProcess {
    /// What the child hands back: the pid it saw for itself on each round.
    type Output = Vec<u32>;

    /// Runs in the child. `self` is taken by value: the child owns its copy of the data.
    fn run(self) -> Vec<u32> {
        let start = Instant::now();
        let mut pids = Vec::new();
        for _ in 0..self.rounds {
            let me = current_process();
            println!(
                "subProcess {} ({}) run, +{:.1} s",
                me.pid,
                me.name,
                start.elapsed().as_secs_f64()
            );
            pids.push(me.pid);
            std::thread::sleep(self.w_time);
        }
        pids
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let task = MyProcess {
        w_time: Duration::from_millis(200),
        rounds: 3,
    };
    // `p.daemon = True; p.start()`: `start_run` starts a child that calls `task.run()`.
    let p = ProcessBuilder::new()
        .name("Myprocess")
        .daemon(true)
        .start_run(task)?;
    let pid = p.pid();
    let pids = p.join()?;
    assert!(pids.iter().all(|&p| p == pid));
    println!("Parent process run. subProcess is {pid}");
    println!("Parent process end: the child ran {} rounds", pids.len());
    Ok(())
}
