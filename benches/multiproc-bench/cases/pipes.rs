//! Pipes: round trips and throughput, blocking and async.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn case_pipe_rtt_small(ctx: &Ctx) -> CaseResult {
    let mut w = Worker::start(w_echo, ())?;
    let pid = w.pid();
    let msg = vec![b'x'; 16];
    w.conn.send(&Some(&msg))?;
    if w.conn.recv::<Vec<u8>>()? != msg {
        return Err(bench_error("echo mismatch"));
    }
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        for _ in 0..k {
            conn.send(&Some(&msg))?;
            std::hint::black_box(conn.recv::<Vec<u8>>()?);
        }
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
    };
    pingpong_case(
        ctx,
        "pipe_rtt_small",
        &[pid],
        run,
        PIPE_RTT,
        "round_trips",
        params! {
            "payload" => "16-byte Vec<u8> (sent as Some(&vec), echoed back as Vec<u8>)",
            "api" => "Connection::send/recv (serde + postcard)",
            "pipe" => "pipe() duplex (AF_UNIX socketpair)",
        },
    )
}

/// A current-thread tokio runtime for the async cases (the waiting happens on this thread,
/// as in a single-threaded server).
pub(crate) fn async_runtime() -> Measured<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `pipe_rtt_small` through `multiproc::aio::AsyncConnection`: the same echo worker, the
/// parent's sends and receives awaited on a current-thread tokio runtime.
pub(crate) fn case_async_pipe_roundtrip(ctx: &Ctx) -> CaseResult {
    let w = Worker::start(w_echo, ())?;
    let pid = w.pid();
    let rt = async_runtime()?;
    // A second descriptor for the parent's end: the worker's own `conn` stays for `stop`.
    let fd = w.conn.as_fd().try_clone_to_owned()?;
    let mut conn = rt.block_on(async { AsyncConnection::new(Connection::new(fd)) })?;
    let msg = vec![b'x'; 16];
    let run = |k: usize| -> Measured<f64> {
        rt.block_on(async {
            let t0 = Instant::now();
            for _ in 0..k {
                conn.send(&Some(&msg)).await?;
                std::hint::black_box(conn.recv::<Vec<u8>>().await?);
            }
            Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
        })
    };
    pingpong_case(
        ctx,
        "async_pipe_roundtrip",
        &[pid],
        run,
        PIPE_RTT,
        "round_trips",
        params! {
            "payload" => "16-byte Vec<u8> (sent as Some(&vec), echoed back as Vec<u8>)",
            "api" => "aio::AsyncConnection::send/recv on a current-thread tokio runtime",
            "pipe" => "pipe() duplex (AF_UNIX socketpair)",
        },
    )
}

/// `queue_throughput_small` with the parent taking the items with `Queue::get_async` on a
/// current-thread tokio runtime.
pub(crate) fn case_async_queue_throughput(ctx: &Ctx) -> CaseResult {
    let q = Queue::<SmallItem>::new()?;
    let mut w = Worker::start(w_q_producer::<Queue<SmallItem>>, q.clone())?;
    let rt = async_runtime()?;
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some((k as u64, false)))?;
        let x = rt.block_on(async {
            let mut x = None;
            for _ in 0..k {
                x = q.get_async().await?;
            }
            Ok::<_, QueueError>(x)
        })?;
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
        "consumers" => "1 (the parent, Queue::get_async on a current-thread tokio runtime)",
        "queue" => "multiproc::Queue (default buffer)",
        "warmup_messages" => warm,
    };
    params.extend(stats(&samples));
    ctx.emit(
        "async_queue_throughput",
        median(&samples).into(),
        "msg/s",
        params,
    );
    Ok(())
}

pub(crate) fn case_pipe_rtt_small_bytes(ctx: &Ctx) -> CaseResult {
    let mut w = Worker::start(w_echo_bytes, ())?;
    let pid = w.pid();
    let msg = [b'x'; 16];
    w.conn.send_bytes(&msg)?;
    if w.conn.recv_bytes()? != msg {
        return Err(bench_error("echo mismatch"));
    }
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        for _ in 0..k {
            conn.send_bytes(&msg)?;
            std::hint::black_box(conn.recv_bytes()?);
        }
        Ok(t0.elapsed().as_secs_f64() / k as f64 * 1e6)
    };
    pingpong_case(
        ctx,
        "pipe_rtt_small_bytes",
        &[pid],
        run,
        PIPE_RTT,
        "round_trips",
        params! {
            "payload" => "16 bytes",
            "api" => "Connection::send_bytes/recv_bytes",
            "pipe" => "pipe() duplex (AF_UNIX socketpair)",
        },
    )
}

pub(crate) fn case_pipe_throughput_1mb(ctx: &Ctx) -> CaseResult {
    let mut w = Worker::start(w_sink_bytes, ())?;
    // Written, so its pages are real memory (Python's `bytes(MiB)` is calloc'ed zero pages).
    let payload = vec![0xA5u8; MIB];
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        for _ in 0..k {
            conn.send_bytes(&payload)?;
        }
        let total: u64 = conn.recv()?;
        let dt = t0.elapsed().as_secs_f64();
        if total != (k * MIB) as u64 {
            return Err(bench_error(format!(
                "received {total} bytes, expected {}",
                k * MIB
            )));
        }
        Ok((k * MIB) as f64 / dt / 1e6)
    };
    let n = ctx.sz(2000);
    let (_, samples) = repeat(run, ctx.sz(200), n)?;
    let med = median(&samples);
    let mut params = params! {
        "messages" => n,
        "message_bytes" => MIB,
        "direction" => "parent -> child",
        "api" => "send_bytes / recv_bytes",
        "pipe" => "pipe() duplex (AF_UNIX socketpair)",
        "MB" => "1e6 bytes",
        "MiB_per_s" => med * 1e6 / MIB as f64,
        "timed_until" => "child acknowledges byte count",
        "warmup_messages" => ctx.sz(200),
    };
    params.extend(stats(&samples));
    ctx.emit("pipe_throughput_1mb", med.into(), "MB/s", params);
    Ok(())
}
