//! The same pool code on one machine or on the ranks of an MPI job (feature `mpi`).
//!
//! ```text
//! cargo build --release --features mpi --example mpi_pool
//! # locally: worker processes on this machine
//! target/release/examples/mpi_pool
//! # a laptop: 4 ranks, rank 0 runs main, ranks 1-3 are the workers
//! mpirun -n 4 --oversubscribe --mca pml ob1 target/release/examples/mpi_pool
//! # a cluster: the same executable on every host (same path, same build)
//! mpirun -n 64 --hostfile hosts --mca btl self,vader,tcp target/release/examples/mpi_pool
//! srun -n 64 --mpi=pmix target/release/examples/mpi_pool
//! ```
//!
//! Rank 0 prints where each task ran; every other rank serves tasks and prints nothing.

use std::time::Instant;

fn where_am_i(task: u32) -> (u32, String, u32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    (task, host.trim().to_string(), std::process::id())
}

/// A little CPU work per item.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

fn main() -> Result<(), multiproc::PoolError> {
    let pool = multiproc::Pool::new(multiproc::cpu_count())?;
    let on_mpi = cfg!(feature = "mpi") && multiproc::mpi::is_active();
    println!(
        "{} workers ({})",
        pool.processes(),
        if on_mpi {
            "MPI ranks"
        } else {
            "local processes"
        }
    );
    for (task, host, pid) in pool.map(where_am_i, 0..pool.processes() as u32)? {
        println!("task {task} ran on {host} in pid {pid}");
    }
    let started = Instant::now();
    let steps = pool.chunksize(10_000).map(collatz_steps, 1..1_000_001u64)?;
    let longest = steps.iter().max().copied().unwrap_or(0);
    println!(
        "longest Collatz chain below 1,000,001: {longest} steps ({:?})",
        started.elapsed()
    );
    Ok(())
}
