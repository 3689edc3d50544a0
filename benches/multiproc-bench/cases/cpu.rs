//! CPU-bound work: speed-up over one process.

#[allow(unused_imports)]
use crate::*;

// ---- CPU-bound work

/// The prime-counting workload of Python's `cpu_bound_speedup` (fixed, not scaled).
pub(crate) const PRIME_LIMIT: u64 = 200_000;
pub(crate) const PRIME_CHUNKS: u64 = 16;
/// The number of primes below [`PRIME_LIMIT`].
pub(crate) const PRIMES_BELOW_LIMIT: u64 = 17_984;

/// `[lo, hi)` of each of the [`PRIME_CHUNKS`] chunks, the last one taking the remainder.
pub(crate) fn prime_bounds() -> Vec<(u64, u64)> {
    let step = PRIME_LIMIT / PRIME_CHUNKS;
    (0..PRIME_CHUNKS)
        .map(|i| {
            let hi = if i == PRIME_CHUNKS - 1 {
                PRIME_LIMIT
            } else {
                (i + 1) * step
            };
            (i * step, hi)
        })
        .collect()
}

/// The number of primes in `[lo, hi)` by trial division, step for step Python's
/// `count_primes`.
pub(crate) fn count_primes((lo, hi): (u64, u64)) -> u64 {
    let mut c = 0;
    for n in lo.max(2)..hi {
        if n < 4 {
            c += 1;
            continue;
        }
        if n % 2 == 0 {
            continue;
        }
        let mut i = 3;
        let mut prime = true;
        while i * i <= n {
            if n % i == 0 {
                prime = false;
                break;
            }
            i += 2;
        }
        if prime {
            c += 1;
        }
    }
    c
}

/// Serial vs `parallel` prime counting (Python's `cpu_bound_speedup`): one warm-up of each,
/// then `REPS` pairs run back to back; the value is the median of the per-pair ratios.
pub(crate) fn speedup_case(
    ctx: &Ctx,
    name: &str,
    mut parallel: impl FnMut(&[(u64, u64)]) -> Measured<u64>,
    describe: Params,
) -> CaseResult {
    let bounds = prime_bounds();
    let checked = |what: &str, count: u64, t0: Instant| -> Measured<f64> {
        let dt = t0.elapsed().as_secs_f64();
        if count != PRIMES_BELOW_LIMIT {
            return Err(bench_error(format!("{what} count {count}")));
        }
        Ok(dt)
    };
    let serial = || -> Measured<f64> {
        let t0 = Instant::now();
        let c = std::hint::black_box(&bounds)
            .iter()
            .map(|&b| count_primes(b))
            .sum();
        checked("serial", c, t0)
    };
    let mut parallel = || -> Measured<f64> {
        let t0 = Instant::now();
        let c = parallel(std::hint::black_box(&bounds))?;
        checked("parallel", c, t0)
    };
    serial()?;
    parallel()?; // warmup
    let (mut s, mut p) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        // Serial and parallel back to back, so each ratio is a fair pair.
        s.push(serial()?);
        p.push(parallel()?);
    }
    let ratios: Vec<f64> = s.iter().zip(&p).map(|(a, b)| a / b).collect();
    let mut params = params! {
        "work" => format!(
            "count primes below {PRIME_LIMIT} by trial division, {PRIME_CHUNKS} chunks \
             (fixed size, not scaled)"
        ),
        "primes" => PRIMES_BELOW_LIMIT as usize,
    };
    params.extend(describe);
    params.extend(params! {
        "serial_s" => median(&s),
        "parallel_s" => median(&p),
        "speedup_def" => "median over 5 reps of serial_s / parallel_s (each rep runs both back \
                          to back; pool started beforehand)",
        "ratio_of_medians" => median(&s) / median(&p),
        "ideal" => 2.0,
        "serial_samples" => s.as_slice(),
        "parallel_samples" => p.as_slice(),
    });
    params.extend(stats(&ratios));
    ctx.emit(name, median(&ratios).into(), "x", params);
    Ok(())
}

pub(crate) fn case_cpu_bound_speedup(ctx: &Ctx) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        speedup_case(
            ctx,
            "cpu_bound_speedup",
            |bounds| Ok(pool.map(count_primes, bounds.iter().copied())?.iter().sum()),
            params! {
                "processes" => 2usize,
                "api" => "Pool(2).map (default, guided chunks)",
                "pool_create_ms" => create_ms,
            },
        )
    })
}

/// In-process reference for `cpu_bound_speedup`: the same chunks on a 2-thread rayon pool.
pub(crate) fn case_rayon_cpu_bound_speedup(ctx: &Ctx) -> CaseResult {
    let (pool, create_ms) = rayon_pool(2)?;
    speedup_case(
        ctx,
        "rayon_cpu_bound_speedup",
        |bounds| Ok(pool.install(|| bounds.par_iter().map(|&b| count_primes(b)).sum())),
        params! {
            "threads" => 2usize,
            "api" => "rayon ThreadPool(2).install(|| bounds.par_iter().map(count_primes).sum())",
            "python_counterpart" => "cpu_bound_speedup (an in-process reference: threads)",
            "pool_create_ms" => create_ms,
        },
    )
}
