//! Queues: throughput of small and large items.

#[allow(unused_imports)]
use crate::*;

/// The small-item workload sizes of Python's queue cases: messages, warm-up messages.
pub(crate) const QUEUE_MESSAGES: (usize, usize) = (200_000, 20_000);

/// A producer child puts `k` small items, the parent gets them (Python's `_queue_1p1c` and
/// the emit of its two callers): timed from the request to the last `get`.
pub(crate) fn queue_1p1c<Q: BenchQueue<Item = SmallItem>>(
    ctx: &Ctx,
    name: &str,
    q: Q,
    queue_desc: &str,
) -> CaseResult {
    let mut w = Worker::start(w_q_producer::<Q>, q.clone())?;
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some((k as u64, false)))?;
        let mut x = None;
        for _ in 0..k {
            x = q.get_item()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        expect_last(x, k)?;
        Ok(k as f64 / dt)
    };
    let (n, warm) = (ctx.sz(QUEUE_MESSAGES.0), ctx.sz(QUEUE_MESSAGES.1));
    let (_, samples) = repeat(run, warm, n)?;
    let mut params = params! {
        "messages" => n,
        "item" => "small int (Option<u64>: Some(i))",
        "producers" => 1usize,
        "consumers" => "1 (the parent)",
        "queue" => queue_desc,
        "warmup_messages" => warm,
    };
    params.extend(stats(&samples));
    ctx.emit(name, median(&samples).into(), "msg/s", params);
    Ok(())
}

pub(crate) fn case_queue_throughput_small(ctx: &Ctx) -> CaseResult {
    queue_1p1c(
        ctx,
        "queue_throughput_small",
        Queue::<SmallItem>::new()?,
        "multiproc::Queue (default buffer)",
    )
}

pub(crate) fn case_simplequeue_throughput_small(ctx: &Ctx) -> CaseResult {
    queue_1p1c(
        ctx,
        "simplequeue_throughput_small",
        SimpleQueue::<SmallItem>::new()?,
        "multiproc::SimpleQueue",
    )
}

pub(crate) fn case_queue_throughput_small_2p2c(ctx: &Ctx) -> CaseResult {
    let q = Queue::<SmallItem>::new()?;
    let mut prods = vec![
        Worker::start(w_q_producer::<Queue<SmallItem>>, q.clone())?,
        Worker::start(w_q_producer::<Queue<SmallItem>>, q.clone())?,
    ];
    let mut cons = vec![
        Worker::start(w_q_consumer, q.clone())?,
        Worker::start(w_q_consumer, q.clone())?,
    ];
    let mut counts: Vec<Vec<u64>> = Vec::new();
    let run = |k: usize| -> Measured<f64> {
        let half = (k / 2) as u64;
        let t0 = Instant::now();
        for c in cons.iter_mut() {
            c.conn.send(&Some(true))?;
        }
        for p in prods.iter_mut() {
            p.conn.send(&Some((half, true)))?; // each producer ends with one None
        }
        let got = cons
            .iter_mut()
            .map(|c| c.conn.recv::<u64>())
            .collect::<Result<Vec<u64>, _>>()?;
        let dt = t0.elapsed().as_secs_f64();
        let sum: u64 = got.iter().sum();
        if sum != 2 * half {
            return Err(bench_error(format!(
                "consumed {sum}, expected {}",
                2 * half
            )));
        }
        counts.push(got);
        Ok((2 * half) as f64 / dt)
    };
    let (n, warm) = (ctx.sz(QUEUE_MESSAGES.0), ctx.sz(QUEUE_MESSAGES.1));
    let (_, samples) = repeat(run, warm, n)?;
    drop((prods, cons));
    let last = counts.last().map_or(J::Null, |c| {
        J::Arr(c.iter().map(|&x| J::Int(x as i64)).collect())
    });
    let mut params = params! {
        "messages" => n,
        "item" => "small int (Option<u64>: Some(i); None ends a consumer)",
        "producers" => 2usize,
        "consumers" => 2usize,
        "queue" => "multiproc::Queue (one shared queue, default buffer)",
        "per_consumer_counts" => last,
        "timed_until" => "both consumers report their counts (each stops at one None)",
        "warmup_messages" => warm,
    };
    params.extend(stats(&samples));
    ctx.emit(
        "queue_throughput_small_2p2c",
        median(&samples).into(),
        "msg/s",
        params,
    );
    Ok(())
}

/// A `kB` field (`VmRSS`, `VmHWM`...) of `/proc/<pid>/status`, in MiB.
pub(crate) fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub(crate) fn case_queue_throughput_1mb(ctx: &Ctx) -> CaseResult {
    let me = std::process::id();
    // Reset this process's VmHWM to its current RSS (Linux >= 4.0), so the peak is this case's.
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = proc_status_mib(me, "VmRSS");
    let q = Queue::<ByteBuf>::new()?;
    let mut w = Worker::start(w_q_bytes_producer, q.clone())?;
    let producer = w.pid();
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        let mut total = 0;
        for _ in 0..k {
            let item = q.get()?;
            if item.first() != Some(&0xA5) || item.last() != Some(&0xA5) {
                return Err(bench_error("item contents wrong"));
            }
            total += item.len();
        }
        let dt = t0.elapsed().as_secs_f64();
        if total != k * MIB {
            return Err(bench_error(format!(
                "received {total} bytes, expected {}",
                k * MIB
            )));
        }
        Ok(total as f64 / dt / 1e6)
    };
    let (n, warm) = (ctx.sz(2000), ctx.sz(200));
    let (_, samples) = repeat(run, warm, n)?;
    let producer_peak = proc_status_mib(producer, "VmHWM");
    drop(w);
    let parent_peak = proc_status_mib(me, "VmHWM");
    let med = median(&samples);
    let mut params = params! {
        "messages" => n,
        "message_bytes" => MIB,
        "direction" => "child -> parent",
        "api" => "Queue::<ByteBuf>::put(&buf) in the child / get() in the parent",
        "queue" => "multiproc::Queue (default buffer)",
        "queue_buffer_bytes" => q.buffer_size(),
        "MB" => "1e6 bytes",
        "MiB_per_s" => med * 1e6 / MIB as f64,
        "timed_until" => "the parent got the last item",
        "warmup_messages" => warm,
        "python_counterpart" => "pipe_throughput_1mb (Python has no 1 MB queue case)",
        "parent_rss_before_mib" => rss_before,
        "parent_peak_rss_mib" => parent_peak,
        "parent_peak_since" => if peak_reset { "case start (clear_refs 5)" } else { "process start" },
        "producer_peak_rss_mib" => producer_peak,
        "peak_rss_source" => "VmHWM in /proc/<pid>/status (includes the queue's shared pages touched)",
    };
    params.extend(stats(&samples));
    ctx.emit("queue_throughput_1mb", med.into(), "MB/s", params);
    Ok(())
}
