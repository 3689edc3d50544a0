//! Sixteen sleepy tasks on a pool of eight workers: the pool limits how many run at once.
//!
//! The Python original (Python 2, from a tutorial on `Pool`), where each task sleeps
//! 5 x 0.2 s = 1 s:
//!
//! ```python
//! def run_proc(name):
//!     for i in range(5):
//!         time.sleep(0.2)
//!         print 'Run child process %s (%s)' % (name, os.getpid())
//!
//! if __name__ == '__main__':
//!     print 'Run the main process (%s).' % (os.getpid())
//!     mainStart = time.time()
//!     p = Pool(8)
//!     for i in range(16):
//!         p.apply_async(run_proc, args=('Process' + str(i),))
//!     print 'Waiting for all subprocesses done ...'
//!     p.close()
//!     p.join()
//!     print 'All subprocesses done'
//!     mainEnd = time.time()
//!     print 'All process ran %0.2f seconds.' % (mainEnd - mainStart)
//! ```
//!
//! To keep the example short each task here sleeps 5 x 0.1 s = 0.5 s instead of 1 s. Eight
//! tasks run at a time, so the sixteen take two rounds: about 1 s in all (16 x 0.5 s = 8 s
//! one after the other). Each task also returns its name and pid: a callback prints each
//! result as it arrives (in the pool's result thread, like Python's `callback=`), and after
//! `join` the main thread collects them all with `get`.
//!
//! Run with `cargo run --release --example pool_sleepy`.

use std::time::{Duration, Instant};

use multiproc::{Pool, PoolError};

/// Sleeps 5 x 0.1 s, saying so each time; returns its name and pid.
fn run_proc(name: String) -> (String, u32) {
    let pid = std::process::id();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(100));
        println!("Run child process {name} ({pid})");
    }
    (name, pid)
}

fn main() -> Result<(), PoolError> {
    println!("Run the main process ({}).", std::process::id());
    let start = Instant::now();
    let pool = Pool::new(8)?;
    let pending = (0..16)
        .map(|i| {
            let r = pool.apply_async(run_proc, format!("Process{i}"))?;
            Ok(r.callback(|(name, pid)| println!("  callback: {name} done in pid {pid}")))
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    println!("Waiting for all subprocesses done ...");
    pool.close();
    pool.join()?;
    println!("All subprocesses done");
    println!(
        "All process ran {:.2} seconds.",
        start.elapsed().as_secs_f64()
    );

    let results = pending
        .into_iter()
        .map(|r| r.get())
        .collect::<Result<Vec<_>, _>>()?;
    let mut pids: Vec<u32> = results.iter().map(|(_, pid)| *pid).collect();
    pids.sort();
    pids.dedup();
    println!(
        "{} results, from {} different worker processes",
        results.len(),
        pids.len()
    );
    assert_eq!(results.len(), 16);
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, (name, _))| *name == format!("Process{i}"))
    );
    Ok(())
}
