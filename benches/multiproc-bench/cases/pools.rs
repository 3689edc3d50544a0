//! Pools and executors (and rayon for comparison).

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ pools

/// The task of the pool no-op cases: Python's `noop(i)`, an integer in, nothing (`None`) out.
pub(crate) fn noop_item(_: u64) {}

/// Start a pool of `processes` workers with the fork start method, timed, run
/// `body(&pool, create_ms)`, then close and join the pool, or terminate it if the body failed
/// (Python's `_with_pool`). A panicking body drops the pool, which terminates it.
pub(crate) fn with_pool(
    processes: usize,
    body: impl FnOnce(&Pool, f64) -> CaseResult,
) -> CaseResult {
    let t0 = Instant::now();
    let pool = Pool::builder()
        .processes(processes)
        .start_method(StartMethod::Fork)
        .build()?;
    let create_ms = t0.elapsed().as_secs_f64() * 1e3;
    let result = body(&pool, create_ms);
    if result.is_ok() {
        pool.close();
    } else {
        pool.terminate();
    }
    pool.join()?;
    result
}

pub(crate) fn check_count(what: &str, got: usize, expected: usize) -> Measured<()> {
    if got != expected {
        return Err(bench_error(format!(
            "{what}: {got} results, expected {expected}"
        )));
    }
    Ok(())
}

/// The workload sizes of Python's `pool_map_noop`, before `--scale` (also `rayon_map_noop`).
pub(crate) const POOL_MAP_TASKS: usize = 200_000;

pub(crate) fn case_pool_map_noop(ctx: &Ctx) -> CaseResult {
    pool_map_noop_as(ctx, "pool_map_noop")
}

/// `pool_map_noop` with a logger in the parent, so that the workers forward records (the
/// tasks log nothing): what having logging on costs a pool.
pub(crate) fn case_pool_map_noop_logging_on(ctx: &Ctx) -> CaseResult {
    enable_logging()?;
    let result = pool_map_noop_as(ctx, "pool_map_noop_logging_on");
    disable_logging();
    result
}

pub(crate) fn pool_map_noop_as(ctx: &Ctx, name: &str) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        let run = |k: usize| -> Measured<f64> {
            let t0 = Instant::now();
            let res = pool.map(noop_item, 0..k as u64)?;
            let dt = t0.elapsed().as_secs_f64();
            check_count("map", res.len(), k)?;
            Ok(dt / k as f64 * 1e6)
        };
        let n = ctx.sz(POOL_MAP_TASKS);
        let (_, samples) = repeat(run, n, n)?;
        let mut params = params! {
            "tasks" => n,
            "processes" => 2usize,
            "chunksize" => "default (guided: 1/4 of what is left, between 1/32 and 1/8 of all)",
            "per" => "task",
            "api" => "pool.map(noop_item, 0..k) (u64 in, () out)",
            "pool_create_ms" => create_ms,
            "warmup" => "1 full map",
        };
        params.extend(stats(&samples));
        ctx.emit(name, median(&samples).into(), "us", params);
        Ok(())
    })
}

/// A rayon thread pool of `threads` threads, timed (ms).
pub(crate) fn rayon_pool(threads: usize) -> Measured<(rayon::ThreadPool, f64)> {
    let t0 = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok((pool, t0.elapsed().as_secs_f64() * 1e3))
}

/// In-process reference for `pool_map_noop`: the same map on 2 threads of one process.
pub(crate) fn case_rayon_map_noop(ctx: &Ctx) -> CaseResult {
    let (pool, create_ms) = rayon_pool(2)?;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        let res: Vec<()> = pool.install(|| {
            (0..k as u64)
                .into_par_iter()
                .map(|i| noop_item(std::hint::black_box(i)))
                .collect()
        });
        let dt = t0.elapsed().as_secs_f64();
        check_count("par_iter", res.len(), k)?;
        Ok(dt / k as f64 * 1e6)
    };
    let n = ctx.sz(POOL_MAP_TASKS);
    let (_, samples) = repeat(run, n, n)?;
    let mut params = params! {
        "tasks" => n,
        "threads" => 2usize,
        "per" => "item",
        "api" => "rayon ThreadPool(2).install(|| (0..k).into_par_iter().map(noop_item).collect::<Vec<()>>())",
        "python_counterpart" => "pool_map_noop (an in-process reference: threads, no serialization)",
        "pool_create_ms" => create_ms,
        "warmup" => "1 full map",
    };
    params.extend(stats(&samples));
    ctx.emit("rayon_map_noop", median(&samples).into(), "us", params);
    Ok(())
}

pub(crate) fn case_pool_map_noop_chunk1(ctx: &Ctx) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        let run = |k: usize| -> Measured<f64> {
            let t0 = Instant::now();
            let res = pool.chunksize(1).map(noop_item, 0..k as u64)?;
            let dt = t0.elapsed().as_secs_f64();
            check_count("map", res.len(), k)?;
            Ok(dt / k as f64 * 1e6)
        };
        let (n, warm) = (ctx.sz(20_000), ctx.sz(2_000));
        let (_, samples) = repeat(run, warm, n)?;
        let mut params = params! {
            "tasks" => n,
            "processes" => 2usize,
            "chunksize" => 1usize,
            "per" => "task",
            "api" => "pool.chunksize(1).map(noop_item, 0..k)",
            "pool_create_ms" => create_ms,
            "warmup_tasks" => warm,
        };
        params.extend(stats(&samples));
        ctx.emit(
            "pool_map_noop_chunk1",
            median(&samples).into(),
            "us",
            params,
        );
        Ok(())
    })
}

pub(crate) fn case_pool_apply_async_latency(ctx: &Ctx) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        let workers = pool.pids();
        let run = |k: usize| -> Measured<f64> {
            let t0 = Instant::now();
            for _ in 0..k {
                pool.apply_async(noop, ())?.get()?;
            }
            Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
        };
        pingpong_case(
            ctx,
            "pool_apply_async_latency",
            &workers,
            run,
            PINGPONG,
            "round_trips",
            params! {
                "processes" => 2usize,
                "pattern" => "sequential pool.apply_async(noop, ())?.get()?",
                "pool_create_ms" => create_ms,
                "pinning" => "near = parent incl. its pool threads (results collector, watcher), \
                              far = both workers",
            },
        )
    })
}

pub(crate) fn case_pool_imap_unordered_noop(ctx: &Ctx) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        let run = |k: usize| -> Measured<f64> {
            let t0 = Instant::now();
            let mut count = 0;
            for r in pool.chunksize(1).imap_unordered(noop_item, 0..k as u64)? {
                r?;
                count += 1;
            }
            let dt = t0.elapsed().as_secs_f64();
            check_count("imap_unordered", count, k)?;
            Ok(dt / k as f64 * 1e6)
        };
        let (n, warm) = (ctx.sz(50_000), ctx.sz(5_000));
        let (_, samples) = repeat(run, warm, n)?;
        let mut params = params! {
            "tasks" => n,
            "processes" => 2usize,
            "chunksize" => 1usize,
            "per" => "task (results consumed as they arrive)",
            "api" => "pool.chunksize(1).imap_unordered(noop_item, 0..k)",
            "pool_create_ms" => create_ms,
            "warmup_tasks" => warm,
        };
        params.extend(stats(&samples));
        ctx.emit(
            "pool_imap_unordered_noop",
            median(&samples).into(),
            "us",
            params,
        );
        Ok(())
    })
}

/// The task of `pool_task_panic_report`.
pub(crate) fn panicking_item(_: u64) {
    panic!("pool_task_panic_report");
}

/// The cost of reporting a task's panic from a freshly started worker (its first panic:
/// nothing cached yet): `apply(panicking)` minus `apply(noop)`, both in the same fresh worker
/// right after a first no-op warmed it up. A fresh one-worker pool per sample.
pub(crate) fn case_pool_task_panic_report(ctx: &Ctx) -> CaseResult {
    let run = |k: usize| -> Measured<f64> {
        let mut total = 0.0;
        for _ in 0..k {
            let mut sample = 0.0;
            with_pool(1, |pool, _| {
                pool.apply(noop_item, 0)?;
                let t0 = Instant::now();
                pool.apply(noop_item, 0)?;
                let noop = t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                let r = pool.apply(panicking_item, 0);
                let panicked = t0.elapsed().as_secs_f64();
                if !matches!(r, Err(multiproc::PoolError::Panicked(_))) {
                    return Err(bench_error(format!("expected a panic, got {r:?}")));
                }
                sample = (panicked - noop).max(0.0);
                Ok(())
            })?;
            total += sample;
        }
        Ok(total / k as f64 * 1e3)
    };
    let (n, warm) = (ctx.sz(20), ctx.sz(2));
    let (_, samples) = repeat(run, warm, n)?;
    let mut params = params! {
        "pools" => n,
        "processes" => 1usize,
        "per" => "panic report (the first in a fresh worker), beyond a no-op round trip",
        "api" => "pool.apply(panicking_item, 0) - pool.apply(noop_item, 0)",
        "rust_backtrace" => std::env::var("RUST_BACKTRACE").unwrap_or_default(),
        "warmup_pools" => warm,
    };
    params.extend(stats(&samples));
    ctx.emit(
        "pool_task_panic_report",
        median(&samples).into(),
        "ms",
        params,
    );
    Ok(())
}

pub(crate) fn case_executor_submit_noop(ctx: &Ctx) -> CaseResult {
    let t0 = Instant::now();
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .start_method(StartMethod::Fork)
        .build()?;
    let create_ms = t0.elapsed().as_secs_f64() * 1e3;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        let futures = (0..k)
            .map(|_| executor.submit(noop_item, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let waited = executor::wait(&futures, None, ReturnWhen::AllCompleted);
        let dt = t0.elapsed().as_secs_f64();
        check_count("wait(all)", waited.done.len(), k)?;
        for f in futures {
            f.result()?;
        }
        Ok(dt / k as f64 * 1e6)
    };
    let (n, warm) = (ctx.sz(20_000), ctx.sz(2_000));
    let result = repeat(run, warm, n);
    executor.shutdown(true, true);
    let (_, samples) = result?;
    let mut params = params! {
        "tasks" => n,
        "max_workers" => 2usize,
        "pattern" => "submit all, then executor::wait(all, AllCompleted)",
        "per" => "task",
        "executor_create_ms" => create_ms,
        "warmup_tasks" => warm,
    };
    params.extend(stats(&samples));
    ctx.emit(
        "executor_submit_noop",
        median(&samples).into(),
        "us",
        params,
    );
    Ok(())
}
