//! Worker processes that cases drive over their own pipes, and their bodies.

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ workers
//
// A worker is a child process (fork start method, daemonic) that loops on commands received
// over its own duplex pipe: a typed `None` means "exit". `Worker`'s `Drop` stops and reaps
// it, escalating to SIGTERM and SIGKILL, so every worker is reaped whatever the case did
// (error return or panic).

/// What a worker child receives: its end of the pipe, the descriptor number of the parent's
/// end (inherited through fork; closed first thing, so the worker sees end of file if the
/// parent goes), and the case's arguments.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs<A> {
    pub(crate) conn: Connection,
    pub(crate) other_end: RawFd,
    pub(crate) args: A,
}

impl<A> WorkerArgs<A> {
    /// Close the inherited copy of the parent's end and hand out the worker's connection.
    pub(crate) fn open(self) -> (Connection, A) {
        // SAFETY: workers are forked (never spawned), so `other_end` is this process's copy of
        // the parent's end of the pipe. The `Connection` owning that number in this process's
        // copy of the parent's memory is never used or dropped here: the worker exits with
        // `_exit` when its function returns.
        unsafe { libc::close(self.other_end) };
        (self.conn, self.args)
    }
}

/// How a worker ended: `Err` for anything but a clean stop or the parent going away.
pub(crate) type WorkerExit = Result<(), String>;

pub(crate) fn worker_exit(r: Result<(), ConnectionError>) -> WorkerExit {
    match r {
        Ok(()) | Err(ConnectionError::Eof | ConnectionError::PeerClosed) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A running worker child and the parent's end of its pipe.
pub(crate) struct Worker {
    pub(crate) conn: Connection,
    pub(crate) process: Option<Process<WorkerExit>>,
}

impl Worker {
    /// Fork a daemonic worker running `f` (Python's `start_worker`).
    pub(crate) fn start<A>(f: fn(WorkerArgs<A>) -> WorkerExit, args: A) -> Measured<Worker>
    where
        A: Serialize + serde::de::DeserializeOwned + 'static,
    {
        let (parent_end, child_end) = pipe()?;
        let wargs = WorkerArgs {
            conn: child_end,
            other_end: parent_end.as_raw_fd(),
            args,
        };
        let process = ProcessBuilder::new()
            .start_method(StartMethod::Fork)
            .daemon(true)
            .start(f, wargs)?;
        Ok(Worker {
            conn: parent_end,
            process: Some(process),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.pid())
    }

    /// Stop and reap the worker (Python's `reap`): a stop command and end of file, then
    /// SIGTERM and SIGKILL if it does not exit within 3 s each.
    pub(crate) fn stop(&mut self) {
        let Some(p) = self.process.take() else {
            return;
        };
        let _ = self.conn.send(&None::<()>);
        // End of file after the stop command, in case the worker is in the middle of reading
        // something else (the fd stays owned by `conn` and is closed when it drops).
        // SAFETY: shutdown on a descriptor we own; it does not invalidate it.
        unsafe { libc::shutdown(self.conn.as_raw_fd(), libc::SHUT_WR) };
        let grace = Duration::from_secs(3);
        let mut ended = p.join_timeout(grace).unwrap_or(false);
        if !ended {
            let _ = p.terminate();
            ended = p.join_timeout(grace).unwrap_or(false);
        }
        if !ended {
            let _ = p.kill();
        }
        let pid = p.pid();
        match p.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("worker {pid} failed: {e}"),
            Err(e) => eprintln!("worker {pid}: {e}"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---- worker bodies

/// Echo typed messages: `Some(bytes)` comes back as `bytes`, `None` stops.
pub(crate) fn w_echo(w: WorkerArgs<()>) -> WorkerExit {
    let (mut conn, ()) = w.open();
    worker_exit((|| {
        while let Some(m) = conn.recv::<Option<Vec<u8>>>()? {
            conn.send(&m)?;
        }
        Ok(())
    })())
}

/// Echo 16-byte byte messages; any other length (the typed stop command) stops.
pub(crate) fn w_echo_bytes(w: WorkerArgs<()>) -> WorkerExit {
    let (mut conn, ()) = w.open();
    worker_exit((|| loop {
        let m = conn.recv_bytes()?;
        if m.len() != 16 {
            return Ok(());
        }
        conn.send_bytes(&m)?;
    })())
}

/// For each command `n`: receive `n` byte messages, reply with their total length.
pub(crate) fn w_sink_bytes(w: WorkerArgs<()>) -> WorkerExit {
    let (mut conn, ()) = w.open();
    worker_exit((|| {
        while let Some(n) = conn.recv::<Option<u64>>()? {
            let mut total = 0u64;
            for _ in 0..n {
                total += conn.recv_bytes()?.len() as u64;
            }
            conn.send(&total)?;
        }
        Ok(())
    })())
}

/// Serve commands `Some(cmd)` with `on` until `None` (or end of file): the loop of every
/// synchronization worker below (Python's `_commands`).
pub(crate) fn serve<A, C: serde::de::DeserializeOwned>(
    w: WorkerArgs<A>,
    mut on: impl FnMut(&mut Connection, &A, C) -> Measured<()>,
) -> WorkerExit {
    let (mut conn, args) = w.open();
    loop {
        let cmd = match conn.recv::<Option<C>>() {
            Ok(Some(cmd)) => cmd,
            Ok(None) => return Ok(()),
            Err(e) => return worker_exit(Err(e)),
        };
        if let Err(e) = on(&mut conn, &args, cmd) {
            return match e.downcast::<ConnectionError>() {
                Ok(e) => worker_exit(Err(*e)),
                Err(e) => Err(e.to_string()),
            };
        }
    }
}

/// For each command `n`: `n` increments of `v` under the explicit `lock`, then `true`.
pub(crate) fn w_counter_explicit(w: WorkerArgs<(RawValue<i32>, Lock)>) -> WorkerExit {
    serve(w, |conn, (v, lock), n: u64| {
        for _ in 0..n {
            let _g = lock.acquire()?;
            v.set(v.get() + 1);
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`: `n` increments of `v` under its built-in lock, then `true`.
pub(crate) fn w_counter_builtin(w: WorkerArgs<Value<i32>>) -> WorkerExit {
    serve(w, |conn, v, n: u64| {
        for _ in 0..n {
            v.update(|x| x + 1)?;
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`: `n` times `e1.wait(); e1.clear(); e2.set()`, then `true`.
pub(crate) fn w_event(w: WorkerArgs<(Event, Event)>) -> WorkerExit {
    serve(w, |conn, (e1, e2), n: u64| {
        for _ in 0..n {
            e1.wait();
            e1.clear();
            e2.set();
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`, holding `cond`: `n` times wait for `turn == 1`, set it to 0 and
/// notify; then `true`.
pub(crate) fn w_condition(w: WorkerArgs<(Condition, RawValue<i32>)>) -> WorkerExit {
    serve(w, |conn, (cond, turn), n: u64| {
        {
            let mut g = cond.acquire()?;
            for _ in 0..n {
                while turn.get() != 1 {
                    g.wait();
                }
                turn.set(0);
                g.notify(1);
            }
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`: `n` barrier cycles, then `true`.
pub(crate) fn w_barrier(w: WorkerArgs<Barrier>) -> WorkerExit {
    serve(w, |conn, barrier, n: u64| {
        for _ in 0..n {
            barrier.wait()?;
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `size`: write `size` bytes of 0xA5 into the segment in `chunk`-byte
/// pieces, reply with the seconds it took.
pub(crate) fn w_shm_writer(w: WorkerArgs<(SharedMemory, usize)>) -> WorkerExit {
    let src = vec![0xA5u8; w.args.1];
    serve(w, |conn, (shm, chunk), size: u64| {
        let size = size as usize;
        let t0 = Instant::now();
        for off in (0..size).step_by(*chunk) {
            shm.write_at(off, &src[..(*chunk).min(size - off)])?;
        }
        Ok(conn.send(&t0.elapsed().as_secs_f64())?)
    })
}

/// Sum of `xs` with 8 independent accumulators (exact for the integer-valued data here).
pub(crate) fn sum_f64(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f64>() + rest
}

/// For each command `(lo, hi)`: reply with the sum of `arr[lo..hi]`, read without the lock.
pub(crate) fn w_array_sum(w: WorkerArgs<Array<f64>>) -> WorkerExit {
    serve(w, |conn, arr, (lo, hi): (u64, u64)| {
        // SAFETY: the parent filled the array before starting the workers; nobody writes it
        // while the workers read.
        let xs = unsafe { arr.as_slice_unlocked() };
        let part = xs
            .get(lo as usize..hi as usize)
            .ok_or_else(|| bench_error("range out of bounds"))?;
        Ok(conn.send(&sum_f64(part))?)
    })
}

/// [`Queue`] and [`SimpleQueue`] alike, for the queue cases.
pub(crate) trait BenchQueue: Clone + Serialize + DeserializeOwned + 'static {
    type Item: Serialize + DeserializeOwned;
    fn put_item(&self, item: &Self::Item) -> Result<(), QueueError>;
    fn get_item(&self) -> Result<Self::Item, QueueError>;
}

macro_rules! bench_queue {
    ($($q:ident),*) => {$(
        impl<T: Serialize + DeserializeOwned + 'static> BenchQueue for $q<T> {
            type Item = T;
            fn put_item(&self, item: &T) -> Result<(), QueueError> {
                self.put(item)
            }
            fn get_item(&self) -> Result<T, QueueError> {
                self.get()
            }
        }
    )*};
}
bench_queue!(Queue, SimpleQueue);

/// The small items of the queue cases: `Some(i)`; `None` is a consumer's end marker.
pub(crate) type SmallItem = Option<u64>;

/// For each command `(n, end)`: put `Some(0)` .. `Some(n - 1)` into the queue, then `None`
/// if `end` (Python's `w_q_producer`).
pub(crate) fn w_q_producer<Q: BenchQueue<Item = SmallItem>>(w: WorkerArgs<Q>) -> WorkerExit {
    serve(w, |_, q, (n, end): (u64, bool)| {
        for i in 0..n {
            q.put_item(&Some(i))?;
        }
        if end {
            q.put_item(&None)?;
        }
        Ok(())
    })
}

/// For each command: get items until a `None`, reply with how many came before it (Python's
/// `w_q_consumer`).
pub(crate) fn w_q_consumer(w: WorkerArgs<Queue<SmallItem>>) -> WorkerExit {
    serve(w, |conn, q, _go: bool| {
        let mut count = 0u64;
        while q.get()?.is_some() {
            count += 1;
        }
        Ok(conn.send(&count)?)
    })
}

/// For each command `n`: put the same 1 MiB buffer (0xA5 bytes) `n` times.
pub(crate) fn w_q_bytes_producer(w: WorkerArgs<Queue<ByteBuf>>) -> WorkerExit {
    let payload = ByteBuf::from(vec![0xA5u8; MIB]);
    serve(w, |_, q, n: u64| {
        for _ in 0..n {
            q.put(&payload)?;
        }
        Ok(())
    })
}
