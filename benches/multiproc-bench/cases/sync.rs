//! Locks, shared counters, the manager dict, events, conditions and barriers.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn case_lock_uncontended(ctx: &Ctx) -> CaseResult {
    let lock = Lock::new()?;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        for _ in 0..k {
            // acquire() + release() (the guard's drop)
            drop(lock.acquire()?);
        }
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e9)
    };
    let empty = |k: usize| -> f64 {
        let t0 = Instant::now();
        for i in 0..k {
            std::hint::black_box(i);
        }
        t0.elapsed().as_secs_f64() / k as f64 * 1e9
    };
    let n = ctx.sz(1_000_000);
    let (_, samples) = repeat(run, ctx.sz(100_000), n)?;
    let loop_ns = median(&[empty(n), empty(n), empty(n)]);
    let mut params = params! {
        "iterations" => n,
        "per" => "acquire()+release() pair, single process",
        "lock" => "multiproc::Lock (drop(lock.acquire()?))",
        "includes_loop_overhead" => true,
        "empty_loop_ns" => loop_ns,
        "warmup_iterations" => ctx.sz(100_000),
    };
    params.extend(stats(&samples));
    ctx.emit("lock_uncontended", median(&samples).into(), "ns", params);
    Ok(())
}

/// Two pre-started workers each do `n` locked increments of a shared counter (Python's
/// `_counter_case`): `reset` zeroes it, `read` reads it.
pub(crate) fn counter_case(
    ctx: &Ctx,
    name: &str,
    start: impl Fn() -> Measured<Worker>,
    reset: impl Fn() -> Measured<()>,
    read: impl Fn() -> Measured<i32>,
    lock_desc: &str,
) -> CaseResult {
    let mut workers = vec![start()?, start()?];
    let mut finals: Vec<i64> = Vec::new();
    let run = |k: usize| -> Measured<f64> {
        reset()?;
        let t0 = Instant::now();
        for w in workers.iter_mut() {
            w.conn.send(&Some(k as u64))?;
        }
        for w in workers.iter_mut() {
            w.conn.recv::<bool>()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        finals.push(read()?.into());
        Ok(dt)
    };
    let n = ctx.sz(100_000);
    let (_, samples) = repeat(run, ctx.sz(10_000), n)?;
    drop(workers);
    let finals = &finals[1..]; // drop the warmup
    let expected = 2 * n as i64;
    let correct = finals.iter().all(|&f| f == expected);
    let total = median(&samples);
    let mut params = params! {
        "processes" => 2usize,
        "increments_per_process" => n,
        "lock" => lock_desc,
        "ops_per_s" => 2.0 * n as f64 / total,
        "us_per_op" => total / (2.0 * n as f64) * 1e6,
        "final_counts" => J::Arr(finals.iter().map(|&f| J::Int(f)).collect()),
        "expected" => expected,
        "correct" => correct,
        "warmup_increments_per_process" => ctx.sz(10_000),
    };
    params.extend(stats(&samples));
    ctx.emit(name, total.into(), "s", params);
    if !correct {
        return Err(bench_error(format!("{name}: lost updates {finals:?}")));
    }
    Ok(())
}

pub(crate) fn case_lock_contended_counter(ctx: &Ctx) -> CaseResult {
    let v = RawValue::new(0i32)?;
    let lock = Lock::new()?;
    counter_case(
        ctx,
        "lock_contended_counter",
        || Worker::start(w_counter_explicit, (v.clone(), lock.clone())),
        || {
            v.set(0);
            Ok(())
        },
        || Ok(v.get()),
        "RawValue<i32> + explicit multiproc::Lock, `let _g = lock.acquire()?; v.set(v.get() + 1)`",
    )
}

pub(crate) fn case_value_lock_builtin(ctx: &Ctx) -> CaseResult {
    let v = Value::new(0i32)?;
    counter_case(
        ctx,
        "value_lock_builtin",
        || Worker::start(w_counter_builtin, v.clone()),
        || Ok(v.set(0)?),
        || Ok(v.get()?),
        "Value<i32> built-in RLock, `v.update(|x| x + 1)?`",
    )
}

/// Workload sizes of a two-party latency case, before `--scale`: timed rounds, warm-up
/// rounds, rounds per pinned sample.
pub(crate) struct Rounds(pub(crate) usize, pub(crate) usize, pub(crate) usize);

/// The ping-pong rounds of Python's event/condition/barrier cases.
pub(crate) const PINGPONG: Rounds = Rounds(5000, 500, 1000);
/// The round trips of Python's pipe latency cases.
pub(crate) const PIPE_RTT: Rounds = Rounds(20000, 2000, 2000);

/// Emit a two-party latency case: `run(k)` timed 1 + REPS times unpinned, then pinned with
/// this process (all its threads) as the near party and the `far` pids as the other.
pub(crate) fn pingpong_case(
    ctx: &Ctx,
    name: &str,
    far: &[u32],
    mut run: impl FnMut(usize) -> Measured<f64>,
    rounds: Rounds,
    count_key: &str,
    describe: Params,
) -> CaseResult {
    let Rounds(timed, warm, per_pin) = rounds;
    let n = ctx.sz(timed);
    let (_, samples) = repeat(&mut run, ctx.sz(warm), n)?;
    let pin = pinned(&mut run, ctx.sz(per_pin), &[std::process::id()], far, "us")?;
    let mut params = params! { count_key => n };
    params.extend(describe);
    params.push((format!("warmup_{count_key}"), ctx.sz(warm).into()));
    params.extend(stats(&samples));
    params.extend(pin);
    ctx.emit(name, median(&samples).into(), "us", params);
    Ok(())
}

/// For each command `n`: `d[i] = i` then `d[i]` for `i` in `0..n` through the proxy, then
/// `(seconds, all values right)` (Python's `w_manager_dict`).
pub(crate) fn w_manager_dict(w: WorkerArgs<DictProxy<u64, u64>>) -> WorkerExit {
    serve(w, |conn, d, n: u64| {
        let mut ok = true;
        let t0 = Instant::now();
        for i in 0..n {
            d.insert(&i, &i)?;
            ok &= d.get(&i)? == Some(i);
        }
        Ok(conn.send(&(t0.elapsed().as_secs_f64(), ok))?)
    })
}

pub(crate) fn case_manager_dict_setget(ctx: &Ctx) -> CaseResult {
    let t0 = Instant::now();
    let manager = Manager::start()?;
    let start_ms = t0.elapsed().as_secs_f64() * 1e3;
    let d = manager.dict::<u64, u64>()?;
    let mut w = Worker::start(w_manager_dict, d)?;
    let near = [w.pid()];
    let far = [manager.server_pid().unwrap_or(0)];
    let mut oks = Vec::new();
    let conn = &mut w.conn;
    let mut run = |k: usize| -> Measured<f64> {
        conn.send(&Some(k as u64))?;
        let (dt, ok): (f64, bool) = conn.recv()?;
        oks.push(ok);
        Ok(dt / k as f64 * 1e6)
    };
    let n = ctx.sz(5000);
    let (_, samples) = repeat(&mut run, ctx.sz(500), n)?;
    let pin = pinned(&mut run, ctx.sz(1000), &near, &far, "us")?;
    let mut params = params! {
        "ops" => n,
        "per" => "d.insert(&k, &v) followed by d.get(&k) (2 proxy round trips)",
        "from" => "child process",
        "timed_in" => "child",
        "manager_start_ms" => start_ms,
        "values_ok" => oks.iter().all(|&ok| ok),
        "warmup_ops" => ctx.sz(500),
        "pinning" => "near = the child using the proxy, far = the manager server process",
    };
    params.extend(stats(&samples));
    params.extend(pin);
    ctx.emit("manager_dict_setget", median(&samples).into(), "us", params);
    drop(w);
    manager.shutdown()?;
    Ok(())
}

pub(crate) fn case_event_pingpong(ctx: &Ctx) -> CaseResult {
    let (e1, e2) = (Event::new()?, Event::new()?);
    let mut w = Worker::start(w_event, (e1.clone(), e2.clone()))?;
    let pid = w.pid();
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        for _ in 0..k {
            e1.set();
            e2.wait();
            e2.clear();
        }
        conn.recv::<bool>()?;
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
    };
    pingpong_case(
        ctx,
        "event_pingpong",
        &[pid],
        run,
        PINGPONG,
        "round_trips",
        params! {
            "pattern" => "parent: e1.set(); e2.wait(); e2.clear()  child: e1.wait(); e1.clear(); e2.set()",
        },
    )
}

pub(crate) fn case_condition_pingpong(ctx: &Ctx) -> CaseResult {
    let cond = Condition::new()?;
    let turn = RawValue::new(0i32)?;
    let mut w = Worker::start(w_condition, (cond.clone(), turn.clone()))?;
    let pid = w.pid();
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        {
            let mut g = cond.acquire()?;
            for _ in 0..k {
                turn.set(1);
                g.notify(1);
                while turn.get() != 0 {
                    g.wait();
                }
            }
        }
        conn.recv::<bool>()?;
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
    };
    pingpong_case(
        ctx,
        "condition_pingpong",
        &[pid],
        run,
        PINGPONG,
        "round_trips",
        params! {
            "pattern" => "Condition (default RLock) + RawValue<i32> turn flag, notify(1)/wait() both ways",
        },
    )
}

pub(crate) fn case_barrier_wait_2p(ctx: &Ctx) -> CaseResult {
    let barrier = Barrier::new(2)?;
    let mut w = Worker::start(w_barrier, barrier.clone())?;
    let pid = w.pid();
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        for _ in 0..k {
            barrier.wait()?;
        }
        conn.recv::<bool>()?;
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
    };
    pingpong_case(
        ctx,
        "barrier_wait_2p",
        &[pid],
        run,
        PINGPONG,
        "cycles",
        params! {
            "parties" => 2usize,
            "per" => "Barrier::wait() cycle (both parties pass)",
        },
    )
}
