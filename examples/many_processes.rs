//! Several processes started in a loop, then joined, with timing.
//!
//! The Python original (sleep shortened from 2 s to 300 ms, timing added as in the
//! tutorial's process-pool example):
//!
//! ```python
//! def worker(num):
//!     print(f"进程 {num} 启动")   # process {num} started
//!     time.sleep(2)
//!     print(f"进程 {num} 结束")   # process {num} finished
//!
//! if __name__ == '__main__':
//!     processes = []
//!     for i in range(3):
//!         p = multiprocessing.Process(target=worker, args=(i,))
//!         processes.append(p)
//!         p.start()
//!     for p in processes:
//!         p.join()
//!     print("所有进程完成")        # all processes finished
//! ```
//!
//! A second round does CPU work instead of sleeping, one process per CPU, to show the
//! processes really running in parallel.
//!
//! Run with `cargo run --release --example many_processes`.

use std::time::{Duration, Instant};

use multiproc::{Process, cpu_count, current_process};

const NAP: Duration = Duration::from_millis(300);

fn worker(num: usize) {
    println!("process {num} started (pid {})", current_process().pid);
    std::thread::sleep(NAP);
    println!("process {num} finished");
}

/// A deliberately slow computation.
fn busy(rounds: u64) -> u64 {
    (0..rounds).fold(0u64, |acc, i| {
        acc.wrapping_mul(6364136223846793005)
            .wrapping_add(std::hint::black_box(i))
    })
}

/// How many rounds of `busy` take about `target` here (in a release or a debug build alike).
fn rounds_taking(target: Duration) -> u64 {
    let mut rounds = 1 << 20;
    loop {
        let start = Instant::now();
        std::hint::black_box(busy(rounds));
        let took = start.elapsed();
        if took >= target / 4 {
            return (rounds as f64 * target.as_secs_f64() / took.as_secs_f64()) as u64;
        }
        rounds *= 2;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("main process {}", current_process().pid);

    // Round 1: the seed program, with timing.
    let n = 4;
    let start = Instant::now();
    // `collect` into a `Result` stops at the first process that fails to start.
    let processes = (0..n)
        .map(|i| Process::start(worker, i))
        .collect::<Result<Vec<_>, _>>()?;
    for p in processes {
        // `join` takes the handle by value, so a `Vec` of handles is consumed by the loop.
        p.join()?;
    }
    let elapsed = start.elapsed();
    println!(
        "all {n} processes finished in {:.2} s (one after the other: {:.2} s)\n",
        elapsed.as_secs_f64(),
        (NAP * n as u32).as_secs_f64()
    );
    assert!(elapsed < NAP * n as u32);

    // Round 2: CPU-bound work. Time it once in this process, then once per CPU in parallel.
    let rounds = rounds_taking(NAP);
    let start = Instant::now();
    let expected = busy(rounds);
    let one = start.elapsed();
    let cpus = cpu_count();
    let start = Instant::now();
    let processes = (0..cpus)
        .map(|_| Process::start(busy, rounds))
        .collect::<Result<Vec<_>, _>>()?;
    for p in processes {
        assert_eq!(p.join()?, expected);
    }
    let all = start.elapsed();
    println!(
        "one computation: {:.2} s; {cpus} of them in {cpus} processes: {:.2} s \
         ({:.1}x the work per second)",
        one.as_secs_f64(),
        all.as_secs_f64(),
        cpus as f64 * one.as_secs_f64() / all.as_secs_f64()
    );
    Ok(())
}
