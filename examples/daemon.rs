//! Daemonic children and `join`: what happens to a child when its parent ends first.
//!
//! The Python original (sleeps shortened from 2 s to 200 ms):
//!
//! ```python
//! def run_proc(wTime):
//!     n = 0
//!     while n < 3:
//!         print("subProcess %s run," % os.getpid(), time.ctime())
//!         time.sleep(wTime)
//!         n += 1
//!
//! if __name__ == "__main__":
//!     p = Process(target=run_proc, args=(2,))
//!     p.daemon = True     # (1) left out, (2) and (3) as here
//!     p.start()
//!     p.join()            # (3) only
//!     print("Parent process run. subProcess is ", p.pid)
//!     print("Parent process end,", time.ctime())
//! ```
//!
//! 1. Not daemonic, no `join`: the parent's last line comes first, but the program's exit
//!    waits for the child, which prints all three lines.
//! 2. Daemonic, no `join`: when the parent exits, the daemon is terminated (`SIGTERM`), so
//!    it prints at most one line.
//! 3. Daemonic, with `join`: the parent waits for the three lines, then prints its own.
//!
//! What happens when a parent *exits* can only be shown by letting a parent exit, so each
//! scenario runs as its own program: this example re-runs itself with the scenario's name.
//!
//! Run with `cargo run --release --example daemon`.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use multiproc::{ProcessBuilder, current_process};

fn run_proc(w_time: Duration) {
    for _ in 0..3 {
        println!("  subProcess {} run, {}", current_process().pid, clock());
        std::thread::sleep(w_time);
    }
}

/// One scenario, in a program of its own.
fn scenario(daemon: bool, join: bool) -> Result<(), multiproc::ProcessError> {
    // Python sets `p.daemon = True` on the object before `start`; here it is a builder option.
    let p = ProcessBuilder::new()
        .daemon(daemon)
        .start(run_proc, Duration::from_millis(200))?;
    let pid = p.pid();
    if join {
        p.join()?;
    }
    // Without `join`, `p` is dropped at the end of `main`; dropping the handle does not stop
    // the child (just as in Python). It is the normal end of the program (returning from
    // `main`) that terminates daemonic children and waits for the others.
    println!("  Parent process run. subProcess is {pid}");
    println!("  Parent process end, {}", clock());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    match std::env::args().nth(1).as_deref() {
        Some("plain-no-join") => return Ok(scenario(false, false)?),
        Some("daemon-no-join") => return Ok(scenario(true, false)?),
        Some("daemon-join") => return Ok(scenario(true, true)?),
        _ => {}
    }
    let me = std::env::current_exe()?;
    for (title, arg) in [
        (
            "1. not daemonic, no join: the exit waits for the child",
            "plain-no-join",
        ),
        (
            "2. daemonic, no join: the exit terminates the child",
            "daemon-no-join",
        ),
        (
            "3. daemonic, with join: the parent waits for the child",
            "daemon-join",
        ),
    ] {
        println!("{title}");
        let status = Command::new(&me).arg(arg).status()?;
        assert!(status.success(), "scenario {arg} failed: {status}");
    }
    Ok(())
}

/// The time of day (UTC) to the millisecond, standing in for Python's `time.ctime()`.
fn clock() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600 % 24,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}
