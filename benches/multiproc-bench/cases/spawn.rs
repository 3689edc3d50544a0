//! Starting and joining processes, per start method.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn noop(_: ()) {}

/// Start and join `n` no-op children, sequentially (Python's `make_spawn_join`).
pub(crate) fn spawn_join(ctx: &Ctx, method: StartMethod) -> CaseResult {
    let n = ctx.sz(50);
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        for _ in 0..k {
            let p = ProcessBuilder::new().start_method(method).start(noop, ())?;
            p.join()?; // an error for a non-zero exit, a signal or a panic
        }
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e3)
    };
    let first = run(1)?; // includes starting the fork server, if any
    let (_, samples) = repeat(run, ctx.sz(5), n)?;
    let mut params = params! {
        "start_method" => method.as_str(),
        "processes_per_rep" => n,
        "unit_of_work" => "start()+join() of one no-op Process, sequential",
        "first_process_ms" => first,
        "warmup" => format!("1 + {} processes", ctx.sz(5)),
    };
    params.extend(stats(&samples));
    ctx.emit(
        &format!("spawn_join_{}", method.as_str()),
        median(&samples).into(),
        "ms",
        params,
    );
    Ok(())
}

pub(crate) fn case_spawn_join_fork(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::Fork)
}

pub(crate) fn case_spawn_join_spawn(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::Spawn)
}

pub(crate) fn case_spawn_join_forkserver(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::ForkServer)
}
