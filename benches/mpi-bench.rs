//! The MPI benchmark (feature `mpi`), the counterpart of `bench/mpi4py_baseline.py`: the
//! pool cases of `multiproc-bench` on MPI worker ranks, plus the same cases on local
//! workers in the same run for the cost-per-task comparison. Run it under a launcher
//! (`bench/compare.sh --mpi` does, with mpi4py next to it):
//!
//! ```text
//! cargo bench --features mpi --bench mpi-bench --no-run
//! mpirun -n 3 --oversubscribe --mca pml ob1 target/release/deps/mpi_bench-*
//! ```
//!
//! One JSON object per line: `{"case": ..., "value": ..., "unit": ..., "params": {...}}`.

use std::time::Instant;

use multiproc::executor::{ReturnWhen, wait};
use multiproc::mpi::Backend;
use multiproc::{Pool, PoolError, ProcessPoolExecutor};

const REPS: usize = 5;
const MAP_TASKS: usize = 200_000;
const CHUNK1_TASKS: usize = 20_000;
const SUBMIT_TASKS: usize = 20_000;
const PRIME_LIMIT: u64 = 200_000;
const PRIME_CHUNKS: u64 = 16;

fn noop_item(_: u64) {}

fn count_primes((lo, hi): (u64, u64)) -> u64 {
    let mut c = 0;
    for n in lo.max(2)..hi {
        if n < 4 {
            c += 1;
            continue;
        }
        if n.is_multiple_of(2) {
            continue;
        }
        let mut i = 3;
        let mut prime = true;
        while i * i <= n {
            if n.is_multiple_of(i) {
                prime = false;
                break;
            }
            i += 2;
        }
        c += u64::from(prime);
    }
    c
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn emit(case: &str, value: f64, unit: &str, params: &str) {
    println!(
        r#"{{"case": "{case}", "value": {value:.6}, "unit": "{unit}", "params": {{{params}}}}}"#
    );
    eprintln!("  {case:36} {value:.4} {unit}");
}

/// Microseconds per task of `run(n)`, median of [`REPS`] after one warm-up.
fn per_task(
    n: usize,
    mut run: impl FnMut(usize) -> Result<(), PoolError>,
) -> Result<f64, PoolError> {
    run(n / 10)?;
    let mut samples = Vec::new();
    for _ in 0..REPS {
        let t0 = Instant::now();
        run(n)?;
        samples.push(t0.elapsed().as_secs_f64() / n as f64 * 1e6);
    }
    Ok(median(samples))
}

fn pool_cases(prefix: &str, pool: &Pool) -> Result<(), PoolError> {
    let workers = pool.processes();
    let us = per_task(MAP_TASKS, |n| {
        let done = pool.map(noop_item, 0..n as u64)?;
        assert_eq!(done.len(), n);
        Ok(())
    })?;
    let chunk = MAP_TASKS.div_ceil(4 * workers);
    emit(
        &format!("{prefix}pool_map_noop"),
        us,
        "us",
        &format!(r#""tasks": {MAP_TASKS}, "workers": {workers}, "chunksize": {chunk}"#),
    );
    let us = per_task(CHUNK1_TASKS, |n| {
        let done = pool.chunksize(1).map(noop_item, 0..n as u64)?;
        assert_eq!(done.len(), n);
        Ok(())
    })?;
    emit(
        &format!("{prefix}pool_map_noop_chunk1"),
        us,
        "us",
        &format!(r#""tasks": {CHUNK1_TASKS}, "workers": {workers}, "chunksize": 1"#),
    );
    Ok(())
}

fn executor_case(prefix: &str, ex: &ProcessPoolExecutor) -> Result<(), PoolError> {
    let us = per_task(SUBMIT_TASKS, |n| {
        let futures = (0..n)
            .map(|_| ex.submit(noop_item, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let waited = wait(&futures, None, ReturnWhen::AllCompleted);
        assert_eq!(waited.done.len(), n);
        Ok(())
    })?;
    emit(
        &format!("{prefix}executor_submit_noop"),
        us,
        "us",
        &format!(
            r#""tasks": {SUBMIT_TASKS}, "workers": {}, "pattern": "submit all, then wait(all)""#,
            ex.max_workers()
        ),
    );
    Ok(())
}

fn speedup_case(prefix: &str, pool: &Pool) -> Result<(), PoolError> {
    let step = PRIME_LIMIT / PRIME_CHUNKS;
    let bounds: Vec<(u64, u64)> = (0..PRIME_CHUNKS)
        .map(|i| {
            (
                i * step,
                if i == PRIME_CHUNKS - 1 {
                    PRIME_LIMIT
                } else {
                    (i + 1) * step
                },
            )
        })
        .collect();
    let serial = || {
        let t0 = Instant::now();
        let c: u64 = std::hint::black_box(&bounds)
            .iter()
            .map(|&b| count_primes(b))
            .sum();
        assert_eq!(c, 17_984);
        t0.elapsed().as_secs_f64()
    };
    let parallel = || -> Result<f64, PoolError> {
        let t0 = Instant::now();
        let c: u64 = pool.map(count_primes, bounds.iter().copied())?.iter().sum();
        assert_eq!(c, 17_984);
        Ok(t0.elapsed().as_secs_f64())
    };
    serial();
    parallel()?;
    let mut ratios = Vec::new();
    for _ in 0..REPS {
        let s = serial();
        ratios.push(s / parallel()?);
    }
    emit(
        &format!("{prefix}cpu_bound_speedup"),
        median(ratios),
        "x",
        &format!(
            r#""workers": {}, "chunks": {PRIME_CHUNKS}"#,
            pool.processes()
        ),
    );
    Ok(())
}

fn main() -> Result<(), PoolError> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; use --release for meaningful numbers");
    }
    if !multiproc::mpi::is_active() {
        eprintln!("mpi-bench: run under mpirun with at least 2 ranks (bench/compare.sh --mpi)");
        std::process::exit(2);
    }
    let pool = Pool::builder().backend(Backend::Mpi).build()?;
    let workers = pool.processes();
    pool_cases("mpi_", &pool)?;
    speedup_case("mpi_", &pool)?;
    drop(pool);
    let ex = ProcessPoolExecutor::builder()
        .backend(Backend::Mpi)
        .build()?;
    executor_case("mpi_", &ex)?;
    drop(ex);
    // The same cases on as many local workers, for the cost per task on one machine.
    let local = Pool::builder()
        .processes(workers)
        .backend(Backend::Local)
        .build()?;
    pool_cases("local_", &local)?;
    drop(local);
    let ex = ProcessPoolExecutor::builder()
        .max_workers(workers)
        .backend(Backend::Local)
        .build()?;
    executor_case("local_", &ex)?;
    Ok(())
}
