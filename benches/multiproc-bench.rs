//! `multiproc-bench`: the Rust counterpart of `python_baseline.py`, the reference benchmark of
//! CPython's `multiprocessing` (`../shared/bench/python_baseline.py`).
//!
//! ```text
//! cargo bench --bench multiproc-bench -- [--cases a,b,...] [--scale F]
//! ```
//!
//! It is a bench target (`harness = false`) rather than a binary so that its reference
//! libraries (`rayon`) stay dev-dependencies; `bench/compare.sh` builds it with
//! `cargo bench --no-run` and runs the executable directly.
//!
//! Same flags, case names, units, workload sizes and methodology as the Python script: one
//! JSON object per line on stdout, `{"case": ..., "value": ..., "unit": ..., "params": {...}}`,
//! the first one the "machine" record; progress goes to stderr. Every case is warmed up once
//! and then run `REPS` = 5 times; "value" is the median of the 5 repetitions and
//! `params.samples` holds all of them. Worker processes are started before the timed region
//! (with the fork start method, like Python's fork context) and are always stopped and reaped
//! afterwards, whatever happened. Two-party latency cases also report `params.same_cpu_us` and
//! `params.cross_cpu_us`, measured with explicit `sched_setaffinity` pinning.
//!
//! Adding a case: write `fn case_xxx(ctx: &Ctx) -> CaseResult` (and its worker bodies, if
//! any) and add it to [`CASES`]. A case of the Python script that is not in `CASES` yet is
//! reported as an error record ("not implemented yet") instead of aborting the run.
//!
//! A few cases have no Python case of the same name ([`EXTRA_CASES`], e.g.
//! `queue_throughput_1mb`, and the in-process `rayon` references `rayon_map_noop` and
//! `rayon_cpu_bound_speedup`); each names the Python case it is compared with, and
//! `bench/compare.sh` shows it against that one.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::error::Error;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use multiproc::aio::AsyncConnection;
use multiproc::executor::{self, ReturnWhen};
use multiproc::manager::DictProxy;
use multiproc::{
    Array, Barrier, Condition, Connection, ConnectionError, Event, Lock, Manager, Pool, Process,
    ProcessBuilder, ProcessPoolExecutor, Queue, QueueError, RawValue, SharedMemory, SimpleQueue,
    StartMethod, SyncError, Value, pipe,
};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Timed repetitions per case; "value" is their median.
const REPS: usize = 5;
/// A case that runs longer is aborted (its children are killed) and reported as an error.
const CASE_TIMEOUT: Duration = Duration::from_secs(100);
/// Cases not started within this many seconds of the run are reported as skipped.
const BUDGET: Duration = Duration::from_secs(230);
const MIB: usize = 1 << 20;

/// Every case of `python_baseline.py`, in its order (the run order here too), and the
/// multiproc-only cases of [`EXTRA_CASES`], next to the Python cases they relate to.
const ALL_CASES: &[&str] = &[
    "machine",
    "spawn_join_fork",
    "spawn_join_spawn",
    "spawn_join_forkserver",
    "pipe_rtt_small",
    "pipe_rtt_small_bytes",
    "async_pipe_roundtrip",
    "pipe_throughput_1mb",
    "queue_throughput_small",
    "async_queue_throughput",
    "queue_throughput_small_2p2c",
    "simplequeue_throughput_small",
    "queue_throughput_1mb",
    "log_records_from_children",
    "pool_map_noop",
    "pool_map_noop_logging_on",
    "rayon_map_noop",
    "pool_map_noop_chunk1",
    "pool_apply_async_latency",
    "pool_imap_unordered_noop",
    "pool_task_panic_report",
    "executor_submit_noop",
    "lock_uncontended",
    "lock_contended_counter",
    "value_lock_builtin",
    "event_pingpong",
    "condition_pingpong",
    "barrier_wait_2p",
    "manager_dict_setget",
    "shared_memory_write_bw",
    "array_sum_shared",
    "cpu_bound_speedup",
    "rayon_cpu_bound_speedup",
];

/// Cases without a Python counterpart of the same name: `(case, the Python case it is compared
/// with)`. `bench/compare.sh` keeps the same list (`extra_cases`).
const EXTRA_CASES: &[(&str, &str)] = &[
    ("queue_throughput_1mb", "pipe_throughput_1mb"),
    ("rayon_map_noop", "pool_map_noop"),
    ("rayon_cpu_bound_speedup", "cpu_bound_speedup"),
    // Python's way to log from children is a QueueHandler feeding a Queue: its floor.
    ("log_records_from_children", "queue_throughput_small"),
    ("pool_map_noop_logging_on", "pool_map_noop"),
    // Python reports a task's exception through the same path as a value.
    ("pool_task_panic_report", "pool_apply_async_latency"),
    // The async forms (multiproc::aio, on a current-thread tokio runtime) of the blocking
    // cases; the ratio to those is what matters.
    ("async_pipe_roundtrip", "pipe_rtt_small"),
    ("async_queue_throughput", "queue_throughput_small"),
];

/// What a case returns; on `Err` an error record is emitted (unless the case emitted its own).
type CaseResult = Result<(), Box<dyn Error>>;
/// A benchmark case.
type CaseFn = fn(&Ctx) -> CaseResult;

/// The implemented cases. Every name must be one of [`ALL_CASES`].
const CASES: &[(&str, CaseFn)] = &[
    ("machine", case_machine),
    ("spawn_join_fork", case_spawn_join_fork),
    ("spawn_join_spawn", case_spawn_join_spawn),
    ("spawn_join_forkserver", case_spawn_join_forkserver),
    ("pipe_rtt_small", case_pipe_rtt_small),
    ("pipe_rtt_small_bytes", case_pipe_rtt_small_bytes),
    ("async_pipe_roundtrip", case_async_pipe_roundtrip),
    ("async_queue_throughput", case_async_queue_throughput),
    ("pipe_throughput_1mb", case_pipe_throughput_1mb),
    ("queue_throughput_small", case_queue_throughput_small),
    (
        "queue_throughput_small_2p2c",
        case_queue_throughput_small_2p2c,
    ),
    (
        "simplequeue_throughput_small",
        case_simplequeue_throughput_small,
    ),
    ("queue_throughput_1mb", case_queue_throughput_1mb),
    ("log_records_from_children", case_log_records_from_children),
    ("manager_dict_setget", case_manager_dict_setget),
    ("pool_map_noop", case_pool_map_noop),
    ("pool_map_noop_logging_on", case_pool_map_noop_logging_on),
    ("rayon_map_noop", case_rayon_map_noop),
    ("pool_map_noop_chunk1", case_pool_map_noop_chunk1),
    ("pool_apply_async_latency", case_pool_apply_async_latency),
    ("pool_imap_unordered_noop", case_pool_imap_unordered_noop),
    ("pool_task_panic_report", case_pool_task_panic_report),
    ("executor_submit_noop", case_executor_submit_noop),
    ("lock_uncontended", case_lock_uncontended),
    ("lock_contended_counter", case_lock_contended_counter),
    ("value_lock_builtin", case_value_lock_builtin),
    ("event_pingpong", case_event_pingpong),
    ("condition_pingpong", case_condition_pingpong),
    ("barrier_wait_2p", case_barrier_wait_2p),
    ("shared_memory_write_bw", case_shared_memory_write_bw),
    ("array_sum_shared", case_array_sum_shared),
    ("cpu_bound_speedup", case_cpu_bound_speedup),
    ("rayon_cpu_bound_speedup", case_rayon_cpu_bound_speedup),
];

// ------------------------------------------------------------------------------------ JSON

/// A JSON value whose objects keep their insertion order (as Python's dicts do).
#[derive(Clone, Debug)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

/// A JSON object under construction.
type Params = Vec<(String, J)>;

impl From<f64> for J {
    fn from(x: f64) -> J {
        J::Float(x)
    }
}
impl From<usize> for J {
    fn from(x: usize) -> J {
        J::Int(x as i64)
    }
}
impl From<u32> for J {
    fn from(x: u32) -> J {
        J::Int(x.into())
    }
}
impl From<i64> for J {
    fn from(x: i64) -> J {
        J::Int(x)
    }
}
impl From<bool> for J {
    fn from(x: bool) -> J {
        J::Bool(x)
    }
}
impl From<&str> for J {
    fn from(x: &str) -> J {
        J::Str(x.to_string())
    }
}
impl From<String> for J {
    fn from(x: String) -> J {
        J::Str(x)
    }
}
impl From<&[f64]> for J {
    fn from(x: &[f64]) -> J {
        J::Arr(x.iter().map(|&v| J::Float(v)).collect())
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(x: Option<T>) -> J {
        x.map_or(J::Null, Into::into)
    }
}

/// Build a [`Params`] list: `params! { "key" => value, ... }`.
macro_rules! params {
    ($($k:expr => $v:expr),* $(,)?) => {
        vec![$(($k.to_string(), J::from($v))),*]
    };
}

impl J {
    /// Round every float to `sig` significant digits (Python's `_r`).
    fn rounded(self, sig: usize) -> J {
        match self {
            J::Float(x) => J::Float(round_sig(x, sig)),
            J::Arr(v) => J::Arr(v.into_iter().map(|x| x.rounded(sig)).collect()),
            J::Obj(v) => J::Obj(v.into_iter().map(|(k, x)| (k, x.rounded(sig))).collect()),
            other => other,
        }
    }

    /// Serialize like Python's `json.dumps` (", " and ": " separators, ASCII only).
    fn write(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => {
                let _ = write!(out, "{i}");
            }
            J::Float(x) => out.push_str(&py_float(*x)),
            J::Str(s) => write_json_str(s, out),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_json_str(k, out);
                    out.push_str(": ");
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn round_sig(x: f64, sig: usize) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    format!("{:.*e}", sig.saturating_sub(1), x)
        .parse()
        .unwrap_or(x)
}

/// A float as Python's `repr` writes it (JSON `null` for NaN and infinities).
fn py_float(x: f64) -> String {
    if !x.is_finite() {
        return "null".into();
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') { s } else { s + ".0" }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ------------------------------------------------------------------------------------ output

/// State shared by the cases: the workload scale and the output bookkeeping.
struct Ctx {
    scale: f64,
    case_start: Cell<Instant>,
    case_cpu: Cell<Option<(u64, u64)>>,
    emitted: RefCell<HashSet<String>>,
}

impl Ctx {
    /// Workload size after `--scale` (Python's `sz`).
    fn sz(&self, n: usize) -> usize {
        ((n as f64 * self.scale) as usize).max(1)
    }

    fn begin_case(&self) {
        self.case_start.set(Instant::now());
        self.case_cpu.set(cpu_jiffies());
    }

    /// Print one record (Python's `emit`): adds `case_wall_s` and `cpu_steal_pct`.
    fn emit(&self, case: &str, value: J, unit: &str, mut params: Params) {
        let wall = self.case_start.get().elapsed().as_secs_f64();
        params.push(("case_wall_s".into(), wall.into()));
        if let (Some(now), Some(then)) = (cpu_jiffies(), self.case_cpu.get())
            && now.1 > then.1
        {
            // Share of all CPUs' time stolen by the hypervisor during this case (noise).
            let pct = 100.0 * (now.0 - then.0) as f64 / (now.1 - then.1) as f64;
            params.push(("cpu_steal_pct".into(), ((pct * 10.0).round() / 10.0).into()));
        }
        let progress = match &value {
            J::Null => "ERROR".to_string(),
            J::Float(x) => format!("{} {unit}", py_float(round_sig(*x, 4))),
            J::Int(i) => format!("{i} {unit}"),
            other => format!("{other:?} {unit}"),
        };
        print_record(case, value.rounded(5), unit, J::Obj(params).rounded(5));
        self.emitted.borrow_mut().insert(case.to_string());
        eprintln!("  {case:32} {progress}   ({wall:.1}s)");
    }

    fn emit_error(&self, case: &str, error: String) {
        self.emit(case, J::Null, "", params! { "error" => error });
    }
}

fn print_record(case: &str, value: J, unit: &str, params: J) {
    let rec = J::Obj(vec![
        ("case".into(), case.into()),
        ("value".into(), value),
        ("unit".into(), unit.into()),
        ("params".into(), params),
    ]);
    let mut line = String::new();
    rec.write(&mut line);
    line.push('\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}

/// `(steal, total)` jiffies from `/proc/stat`: steal = time the hypervisor ran someone else.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (v.len() == 8).then(|| (v[7], v.iter().sum()))
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `samples`, `min`, `max` (Python's `stats`).
fn stats(samples: &[f64]) -> Params {
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    params! { "samples" => samples, "min" => min, "max" => max }
}

type Measured<T> = Result<T, Box<dyn Error>>;

/// One warmup call, then `REPS` timed calls: `(warm_result, results)` (Python's `repeat`).
fn repeat(
    mut run: impl FnMut(usize) -> Measured<f64>,
    warm_size: usize,
    size: usize,
) -> Measured<(f64, Vec<f64>)> {
    let warm = run(warm_size)?;
    let samples = (0..REPS)
        .map(|_| run(size))
        .collect::<Measured<Vec<f64>>>()?;
    Ok((warm, samples))
}

/// The consumer of `k` numbered items got the last one last.
fn expect_last(x: Option<u64>, k: usize) -> Result<(), Box<dyn Error>> {
    if x == Some(k as u64 - 1) {
        Ok(())
    } else {
        Err(bench_error(format!(
            "last item {x:?}, expected Some({})",
            k - 1
        )))
    }
}

fn bench_error(msg: impl Into<String>) -> Box<dyn Error> {
    msg.into().into()
}

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
struct WorkerArgs<A> {
    conn: Connection,
    other_end: RawFd,
    args: A,
}

impl<A> WorkerArgs<A> {
    /// Close the inherited copy of the parent's end and hand out the worker's connection.
    fn open(self) -> (Connection, A) {
        // SAFETY: workers are forked (never spawned), so `other_end` is this process's copy of
        // the parent's end of the pipe. The `Connection` owning that number in this process's
        // copy of the parent's memory is never used or dropped here: the worker exits with
        // `_exit` when its function returns.
        unsafe { libc::close(self.other_end) };
        (self.conn, self.args)
    }
}

/// How a worker ended: `Err` for anything but a clean stop or the parent going away.
type WorkerExit = Result<(), String>;

fn worker_exit(r: Result<(), ConnectionError>) -> WorkerExit {
    match r {
        Ok(()) | Err(ConnectionError::Eof | ConnectionError::PeerClosed) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A running worker child and the parent's end of its pipe.
struct Worker {
    conn: Connection,
    process: Option<Process<WorkerExit>>,
}

impl Worker {
    /// Fork a daemonic worker running `f` (Python's `start_worker`).
    fn start<A>(f: fn(WorkerArgs<A>) -> WorkerExit, args: A) -> Measured<Worker>
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

    fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.pid())
    }

    /// Stop and reap the worker (Python's `reap`): a stop command and end of file, then
    /// SIGTERM and SIGKILL if it does not exit within 3 s each.
    fn stop(&mut self) {
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
fn w_echo(w: WorkerArgs<()>) -> WorkerExit {
    let (mut conn, ()) = w.open();
    worker_exit((|| {
        while let Some(m) = conn.recv::<Option<Vec<u8>>>()? {
            conn.send(&m)?;
        }
        Ok(())
    })())
}

/// Echo 16-byte byte messages; any other length (the typed stop command) stops.
fn w_echo_bytes(w: WorkerArgs<()>) -> WorkerExit {
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
fn w_sink_bytes(w: WorkerArgs<()>) -> WorkerExit {
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
fn serve<A, C: serde::de::DeserializeOwned>(
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
fn w_counter_explicit(w: WorkerArgs<(RawValue<i32>, Lock)>) -> WorkerExit {
    serve(w, |conn, (v, lock), n: u64| {
        for _ in 0..n {
            let _g = lock.acquire().map_err(SyncError::from)?;
            v.set(v.get() + 1);
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`: `n` increments of `v` under its built-in lock, then `true`.
fn w_counter_builtin(w: WorkerArgs<Value<i32>>) -> WorkerExit {
    serve(w, |conn, v, n: u64| {
        for _ in 0..n {
            v.update(|x| x + 1)?;
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `n`: `n` times `e1.wait(); e1.clear(); e2.set()`, then `true`.
fn w_event(w: WorkerArgs<(Event, Event)>) -> WorkerExit {
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
fn w_condition(w: WorkerArgs<(Condition, RawValue<i32>)>) -> WorkerExit {
    serve(w, |conn, (cond, turn), n: u64| {
        {
            let mut g = cond.acquire().map_err(SyncError::from)?;
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
fn w_barrier(w: WorkerArgs<Barrier>) -> WorkerExit {
    serve(w, |conn, barrier, n: u64| {
        for _ in 0..n {
            barrier.wait()?;
        }
        Ok(conn.send(&true)?)
    })
}

/// For each command `size`: write `size` bytes of 0xA5 into the segment in `chunk`-byte
/// pieces, reply with the seconds it took.
fn w_shm_writer(w: WorkerArgs<(SharedMemory, usize)>) -> WorkerExit {
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
fn sum_f64(xs: &[f64]) -> f64 {
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
fn w_array_sum(w: WorkerArgs<Array<f64>>) -> WorkerExit {
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
trait BenchQueue: Clone + Serialize + DeserializeOwned + 'static {
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
type SmallItem = Option<u64>;

/// For each command `(n, end)`: put `Some(0)` .. `Some(n - 1)` into the queue, then `None`
/// if `end` (Python's `w_q_producer`).
fn w_q_producer<Q: BenchQueue<Item = SmallItem>>(w: WorkerArgs<Q>) -> WorkerExit {
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
fn w_q_consumer(w: WorkerArgs<Queue<SmallItem>>) -> WorkerExit {
    serve(w, |conn, q, _go: bool| {
        let mut count = 0u64;
        while q.get()?.is_some() {
            count += 1;
        }
        Ok(conn.send(&count)?)
    })
}

/// For each command `n`: put the same 1 MiB buffer (0xA5 bytes) `n` times.
fn w_q_bytes_producer(w: WorkerArgs<Queue<ByteBuf>>) -> WorkerExit {
    let payload = ByteBuf::from(vec![0xA5u8; MIB]);
    serve(w, |_, q, n: u64| {
        for _ in 0..n {
            q.put(&payload)?;
        }
        Ok(())
    })
}

// ------------------------------------------------------------------------------------ CPU placement

/// Pin every thread of `pid` to `cpus`.
fn pin(pid: u32, cpus: &[usize]) {
    let tids: Vec<i32> = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => vec![pid as i32],
    };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within its bounds for
    // CPU numbers below CPU_SETSIZE, which the kernel's affinity list guarantees.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        for tid in tids {
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// The CPUs this process may run on, ascending.
fn affinity_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set; CPU_ISSET reads within its bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Re-run `run(k)` (1 warmup + REPS) with the `near` pids on the first CPU and the `far` pids
/// on the same CPU ("same_cpu") and then on the second CPU ("cross_cpu") (Python's `pinned`).
fn pinned(
    mut run: impl FnMut(usize) -> Measured<f64>,
    k: usize,
    near: &[u32],
    far: &[u32],
    unit: &str,
) -> Measured<Params> {
    let cpus = affinity_cpus();
    if cpus.len() < 2 {
        return Ok(params! { "pinned" => "skipped (needs 2 CPUs and sched_setaffinity)" });
    }
    let mut out = params! { "pinned_iterations" => k };
    let mut body = || -> Measured<()> {
        for (label, far_cpu) in [("same_cpu", cpus[0]), ("cross_cpu", cpus[1])] {
            for &pid in near {
                pin(pid, &cpus[..1]);
            }
            for &pid in far {
                pin(pid, &[far_cpu]);
            }
            run((k / 5).max(1))?;
            let samples = (0..REPS).map(|_| run(k)).collect::<Measured<Vec<f64>>>()?;
            out.push((format!("{label}_{unit}"), median(&samples).into()));
            out.push((format!("{label}_samples"), samples.as_slice().into()));
        }
        Ok(())
    };
    let result = body();
    for &pid in near.iter().chain(far) {
        pin(pid, &cpus);
    }
    result.map(|()| out)
}

// ------------------------------------------------------------------------------------ cases

fn case_machine(ctx: &Ctx) -> CaseResult {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or(String::new(), |(_, m)| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| (kb / (1 << 20) as f64 * 10.0).round() / 10.0);
    let nproc = std::fs::read_dir("/sys/devices/system/cpu")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("cpu")
                        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    ctx.emit(
        "machine",
        J::from(nproc),
        "cpus",
        params! {
            "nproc" => nproc,
            "affinity_cpus" => affinity_cpus().len(),
            "multiproc_cpu_count" => multiproc::cpu_count(),
            "multiproc_version" => env!("CARGO_PKG_VERSION"),
            "rustc" => rustc,
            "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
            "executable" => exe,
            "platform" => platform(),
            "machine" => std::env::consts::ARCH,
            "cpu_model" => cpu_model,
            "mem_total_gib" => mem_total_gib,
            "default_start_method" => multiproc::get_start_method().as_str(),
            "reps" => REPS,
            "statistic" => "median",
            "scale" => ctx.scale,
            "timer" => "std::time::Instant (CLOCK_MONOTONIC)",
            "timestamp_utc" => timestamp_utc(),
        },
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; use --release for meaningful numbers");
    }
    Ok(())
}

/// Like Python's `platform.platform()`: `Linux-<release>-<machine>-with-glibc<version>`.
fn platform() -> String {
    // SAFETY: uname fills the zeroed struct with NUL-terminated strings; gnu_get_libc_version
    // returns a static NUL-terminated string.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "Linux".into();
        }
        let s = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        let glibc = std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()).to_string_lossy();
        format!(
            "{}-{}-{}-with-glibc{glibc}",
            s(&u.sysname),
            s(&u.release),
            s(&u.machine)
        )
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
fn timestamp_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn noop(_: ()) {}

/// Start and join `n` no-op children, sequentially (Python's `make_spawn_join`).
fn spawn_join(ctx: &Ctx, method: StartMethod) -> CaseResult {
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

fn case_spawn_join_fork(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::Fork)
}

fn case_spawn_join_spawn(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::Spawn)
}

fn case_spawn_join_forkserver(ctx: &Ctx) -> CaseResult {
    spawn_join(ctx, StartMethod::ForkServer)
}

fn case_pipe_rtt_small(ctx: &Ctx) -> CaseResult {
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
fn async_runtime() -> Measured<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `pipe_rtt_small` through `multiproc::aio::AsyncConnection`: the same echo worker, the
/// parent's sends and receives awaited on a current-thread tokio runtime.
fn case_async_pipe_roundtrip(ctx: &Ctx) -> CaseResult {
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
fn case_async_queue_throughput(ctx: &Ctx) -> CaseResult {
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

fn case_pipe_rtt_small_bytes(ctx: &Ctx) -> CaseResult {
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

fn case_pipe_throughput_1mb(ctx: &Ctx) -> CaseResult {
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

/// The small-item workload sizes of Python's queue cases: messages, warm-up messages.
const QUEUE_MESSAGES: (usize, usize) = (200_000, 20_000);

/// A producer child puts `k` small items, the parent gets them (Python's `_queue_1p1c` and
/// the emit of its two callers): timed from the request to the last `get`.
fn queue_1p1c<Q: BenchQueue<Item = SmallItem>>(
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

fn case_queue_throughput_small(ctx: &Ctx) -> CaseResult {
    queue_1p1c(
        ctx,
        "queue_throughput_small",
        Queue::<SmallItem>::new()?,
        "multiproc::Queue (default buffer)",
    )
}

fn case_simplequeue_throughput_small(ctx: &Ctx) -> CaseResult {
    queue_1p1c(
        ctx,
        "simplequeue_throughput_small",
        SimpleQueue::<SmallItem>::new()?,
        "multiproc::SimpleQueue",
    )
}

fn case_queue_throughput_small_2p2c(ctx: &Ctx) -> CaseResult {
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
fn proc_status_mib(pid: u32, field: &str) -> Option<f64> {
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

fn case_queue_throughput_1mb(ctx: &Ctx) -> CaseResult {
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

fn case_lock_uncontended(ctx: &Ctx) -> CaseResult {
    let lock = Lock::new()?;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        for _ in 0..k {
            // acquire() + release() (the guard's drop)
            drop(lock.acquire().map_err(SyncError::from)?);
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
fn counter_case(
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

fn case_lock_contended_counter(ctx: &Ctx) -> CaseResult {
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

fn case_value_lock_builtin(ctx: &Ctx) -> CaseResult {
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
struct Rounds(usize, usize, usize);

/// The ping-pong rounds of Python's event/condition/barrier cases.
const PINGPONG: Rounds = Rounds(5000, 500, 1000);
/// The round trips of Python's pipe latency cases.
const PIPE_RTT: Rounds = Rounds(20000, 2000, 2000);

/// Emit a two-party latency case: `run(k)` timed 1 + REPS times unpinned, then pinned with
/// this process (all its threads) as the near party and the `far` pids as the other.
fn pingpong_case(
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
fn w_manager_dict(w: WorkerArgs<DictProxy<u64, u64>>) -> WorkerExit {
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

fn case_manager_dict_setget(ctx: &Ctx) -> CaseResult {
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

fn case_event_pingpong(ctx: &Ctx) -> CaseResult {
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

fn case_condition_pingpong(ctx: &Ctx) -> CaseResult {
    let cond = Condition::new()?;
    let turn = RawValue::new(0i32)?;
    let mut w = Worker::start(w_condition, (cond.clone(), turn.clone()))?;
    let pid = w.pid();
    let conn = &mut w.conn;
    let run = |k: usize| -> Measured<f64> {
        let t0 = Instant::now();
        conn.send(&Some(k as u64))?;
        {
            let mut g = cond.acquire().map_err(SyncError::from)?;
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

fn case_barrier_wait_2p(ctx: &Ctx) -> CaseResult {
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

fn case_shared_memory_write_bw(ctx: &Ctx) -> CaseResult {
    let size = ctx.sz(256) * MIB;
    let chunk = MIB;
    let shm = SharedMemory::create(size)?;
    let result = (|| -> CaseResult {
        let mut w = Worker::start(w_shm_writer, (SharedMemory::attach(shm.name())?, chunk))?;
        let conn = &mut w.conn;
        let run = |_: usize| -> Measured<f64> {
            conn.send(&Some(size as u64))?;
            let dt: f64 = conn.recv()?;
            Ok(size as f64 / dt / 1e9)
        };
        let (first_touch, samples) = repeat(run, 0, 0)?;
        let (mut a, mut b) = ([0u8], [0u8]);
        shm.read_at(0, &mut a)?;
        shm.read_at(size - 1, &mut b)?;
        let ok = a[0] == 0xA5 && b[0] == 0xA5;
        drop(w);
        let mut params = params! {
            "bytes" => size,
            "chunk_bytes" => chunk,
            "method" => "SharedMemory::write_at(off, &[0xA5; chunk]) (1 MiB chunks)",
            "writer" => "child process (timed in child)",
            "GB" => "1e9 bytes",
            "first_touch_GBps" => first_touch,
            "note" => "warmup = first write into fresh /dev/shm pages (page faults); \
                       timed reps rewrite the same, already-populated segment",
            "data_ok" => ok,
        };
        params.extend(stats(&samples));
        ctx.emit(
            "shared_memory_write_bw",
            median(&samples).into(),
            "GB/s",
            params,
        );
        if !ok {
            return Err(bench_error("shared memory contents wrong"));
        }
        Ok(())
    })();
    let unlinked = shm.unlink();
    result?;
    Ok(unlinked?)
}

fn case_array_sum_shared(ctx: &Ctx) -> CaseResult {
    let n = ctx.sz(10_000_000);
    let arr = Array::<f64>::zeroed(n)?;
    let data: Vec<f64> = (0..n).map(|i| i as f64).collect();
    arr.copy_from_slice(0, &data)?;
    drop(data);
    let expected = (n as u64 * (n as u64 - 1) / 2) as f64;
    let mut workers = vec![
        Worker::start(w_array_sum, arr.clone())?,
        Worker::start(w_array_sum, arr.clone())?,
    ];
    let mut par = |parts: usize| -> Measured<f64> {
        let step = n / parts;
        let t0 = Instant::now();
        for (i, w) in workers.iter_mut().take(parts).enumerate() {
            let hi = if i == parts - 1 { n } else { (i + 1) * step };
            w.conn.send(&Some(((i * step) as u64, hi as u64)))?;
        }
        let mut total = 0.0;
        for w in workers.iter_mut().take(parts) {
            total += w.conn.recv::<f64>()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        if total != expected {
            return Err(bench_error(format!("sum {total} != {expected}")));
        }
        Ok(dt * 1e3)
    };
    par(1)?;
    par(2)?; // warmup
    let (mut one, mut two) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        one.push(par(1)?);
        two.push(par(2)?);
    }
    drop(workers);
    let ratios: Vec<f64> = one.iter().zip(&two).map(|(a, b)| a / b).collect();
    let mut params = params! {
        "elements" => n,
        "array" => "multiproc::Array::<f64>::zeroed(N) (with lock, read via as_slice_unlocked())",
        "method" => "sum of a slice (8 accumulators) in pre-started worker processes, timed from command to results",
        "processes" => 2usize,
        "one_process_ms" => median(&one),
        "speedup" => median(&ratios),
        "speedup_def" => "median over 5 reps of one_process_ms / two_process_ms (run back to back)",
        "speedup_samples" => ratios.as_slice(),
        "one_process_samples" => one.as_slice(),
    };
    params.extend(stats(&two));
    ctx.emit("array_sum_shared", median(&two).into(), "ms", params);
    Ok(())
}

// ------------------------------------------------------------------------------------ pools

/// The task of the pool no-op cases: Python's `noop(i)`, an integer in, nothing (`None`) out.
fn noop_item(_: u64) {}

/// Start a pool of `processes` workers with the fork start method, timed, run
/// `body(&pool, create_ms)`, then close and join the pool, or terminate it if the body failed
/// (Python's `_with_pool`). A panicking body drops the pool, which terminates it.
fn with_pool(processes: usize, body: impl FnOnce(&Pool, f64) -> CaseResult) -> CaseResult {
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

fn check_count(what: &str, got: usize, expected: usize) -> Measured<()> {
    if got != expected {
        return Err(bench_error(format!(
            "{what}: {got} results, expected {expected}"
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ logging

/// Counts the records of target `bench` that reach the parent's logger.
struct CountingLogger;

static LOGGED: AtomicU64 = AtomicU64::new(0);

impl log::Log for CountingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "bench" {
            LOGGED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// Install the counting logger (once) and turn logging on at `Info`.
fn enable_logging() -> Measured<()> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        result = multiproc::logging::install(CountingLogger, log::LevelFilter::Info);
    });
    result?;
    log::set_max_level(log::LevelFilter::Info);
    Ok(())
}

/// Logging off again: children started from now on forward nothing.
fn disable_logging() {
    log::set_max_level(log::LevelFilter::Off);
}

fn log_burst(n: u64) {
    for i in 0..n {
        log::info!(target: "bench", "record {i} of {n}");
    }
}

/// Total records of `log_records_from_children`, before `--scale`.
const LOG_RECORDS: usize = 200_000;

/// Two forked children log `k / 2` records each; records per second from their start until
/// the parent's logger has seen every record (`join` flushes).
fn case_log_records_from_children(ctx: &Ctx) -> CaseResult {
    enable_logging()?;
    let run = |k: usize| -> Measured<f64> {
        let before = LOGGED.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let children = (0..2)
            .map(|_| {
                ProcessBuilder::new()
                    .start_method(StartMethod::Fork)
                    .start(log_burst, (k / 2) as u64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for child in children {
            child.join()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        let got = (LOGGED.load(Ordering::Relaxed) - before) as usize;
        check_count("records", got, k / 2 * 2)?;
        Ok(k as f64 / dt)
    };
    let n = ctx.sz(LOG_RECORDS);
    let result = repeat(run, n / 10, n);
    disable_logging();
    let (_, samples) = result?;
    let mut params = params! {
        "records" => n,
        "children" => 2usize,
        "api" => "log::info!(target: \"bench\", \"record {i} of {n}\") in 2 fork children, counted by the parent's logger",
        "python_counterpart" => "queue_throughput_small (Python forwards child logs with QueueHandler over a Queue)",
        "includes" => "starting and joining the 2 children",
    };
    params.extend(stats(&samples));
    ctx.emit(
        "log_records_from_children",
        median(&samples).into(),
        "msg/s",
        params,
    );
    Ok(())
}

/// The workload sizes of Python's `pool_map_noop`, before `--scale` (also `rayon_map_noop`).
const POOL_MAP_TASKS: usize = 200_000;

fn case_pool_map_noop(ctx: &Ctx) -> CaseResult {
    pool_map_noop_as(ctx, "pool_map_noop")
}

/// `pool_map_noop` with a logger in the parent, so that the workers forward records (the
/// tasks log nothing): what having logging on costs a pool.
fn case_pool_map_noop_logging_on(ctx: &Ctx) -> CaseResult {
    enable_logging()?;
    let result = pool_map_noop_as(ctx, "pool_map_noop_logging_on");
    disable_logging();
    result
}

fn pool_map_noop_as(ctx: &Ctx, name: &str) -> CaseResult {
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
            "chunksize" => format!("default ({})", n.div_ceil(2 * 4)),
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
fn rayon_pool(threads: usize) -> Measured<(rayon::ThreadPool, f64)> {
    let t0 = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    Ok((pool, t0.elapsed().as_secs_f64() * 1e3))
}

/// In-process reference for `pool_map_noop`: the same map on 2 threads of one process.
fn case_rayon_map_noop(ctx: &Ctx) -> CaseResult {
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

fn case_pool_map_noop_chunk1(ctx: &Ctx) -> CaseResult {
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

fn case_pool_apply_async_latency(ctx: &Ctx) -> CaseResult {
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

fn case_pool_imap_unordered_noop(ctx: &Ctx) -> CaseResult {
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
fn panicking_item(_: u64) {
    panic!("pool_task_panic_report");
}

/// The cost of reporting a task's panic from a freshly started worker (its first panic:
/// nothing cached yet): `apply(panicking)` minus `apply(noop)`, both in the same fresh worker
/// right after a first no-op warmed it up. A fresh one-worker pool per sample.
fn case_pool_task_panic_report(ctx: &Ctx) -> CaseResult {
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

fn case_executor_submit_noop(ctx: &Ctx) -> CaseResult {
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

// ---- CPU-bound work

/// The prime-counting workload of Python's `cpu_bound_speedup` (fixed, not scaled).
const PRIME_LIMIT: u64 = 200_000;
const PRIME_CHUNKS: u64 = 16;
/// The number of primes below [`PRIME_LIMIT`].
const PRIMES_BELOW_LIMIT: u64 = 17_984;

/// `[lo, hi)` of each of the [`PRIME_CHUNKS`] chunks, the last one taking the remainder.
fn prime_bounds() -> Vec<(u64, u64)> {
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
fn count_primes((lo, hi): (u64, u64)) -> u64 {
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
fn speedup_case(
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

fn case_cpu_bound_speedup(ctx: &Ctx) -> CaseResult {
    with_pool(2, |pool, create_ms| {
        speedup_case(
            ctx,
            "cpu_bound_speedup",
            |bounds| Ok(pool.map(count_primes, bounds.iter().copied())?.iter().sum()),
            params! {
                "processes" => 2usize,
                "api" => format!(
                    "Pool(2).map (default chunksize = {})",
                    (PRIME_CHUNKS as usize).div_ceil(2 * 4)
                ),
                "pool_create_ms" => create_ms,
            },
        )
    })
}

/// In-process reference for `cpu_bound_speedup`: the same chunks on a 2-thread rayon pool.
fn case_rayon_cpu_bound_speedup(ctx: &Ctx) -> CaseResult {
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

// ------------------------------------------------------------------------------------ driver

/// Kills the children of a case that overruns [`CASE_TIMEOUT`], so whatever the case is
/// blocked on (a join, a recv from a worker) fails and the run goes on.
struct Watchdog {
    shared: Arc<(Mutex<WatchState>, Condvar)>,
}

#[derive(Default)]
struct WatchState {
    deadline: Option<Instant>,
    fired: bool,
}

impl Watchdog {
    fn start() -> Watchdog {
        // SAFETY: the watchdog thread holds only its own mutex (never used by a forked
        // worker) and otherwise sleeps on its condition variable or kills children; the
        // allocator is fork-safe. So a fork while it runs leaves the child nothing locked.
        unsafe { multiproc::allow_fork_with_threads() };
        let shared: Arc<(Mutex<WatchState>, Condvar)> = Arc::default();
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("bench-watchdog".into())
            .spawn(move || watchdog_loop(&theirs));
        if let Err(e) = spawned {
            eprintln!("warning: no case timeout (could not start the watchdog thread: {e})");
        }
        Watchdog { shared }
    }

    fn arm(&self, timeout: Duration) {
        let mut st = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        st.deadline = Some(Instant::now() + timeout);
        st.fired = false;
        self.shared.1.notify_all();
    }

    /// Disarm; whether the timeout fired during the case.
    fn disarm(&self) -> bool {
        let mut st = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        st.deadline = None;
        std::mem::take(&mut st.fired)
    }
}

fn watchdog_loop(shared: &(Mutex<WatchState>, Condvar)) {
    let (lock, cvar) = shared;
    let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        st = match st.deadline {
            None => cvar.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(d) if Instant::now() >= d => {
                st.deadline = None;
                st.fired = true;
                drop(st);
                for child in multiproc::active_children() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(child.pid as i32, libc::SIGKILL) };
                }
                lock.lock().unwrap_or_else(|e| e.into_inner())
            }
            Some(d) => {
                let wait = d.saturating_duration_since(Instant::now());
                cvar.wait_timeout(st, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

const USAGE: &str = "usage: multiproc-bench [-h] [--cases CASES] [--scale SCALE]";

fn usage_error(msg: &str) -> ! {
    eprintln!("{USAGE}\nmultiproc-bench: error: {msg}");
    std::process::exit(2)
}

struct Args {
    cases: Option<String>,
    scale: f64,
}

fn parse_args() -> Args {
    let mut args = Args {
        cases: None,
        scale: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| usage_error(&format!("argument {name}: expected one argument")))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!(
                    "{USAGE}\n\nmultiproc's benchmark, case for case like python_baseline.py.\n\n\
                     options:\n  -h, --help     show this help message and exit\n  \
                     --cases CASES  comma-separated case names (default: all)\n  \
                     --scale SCALE  multiply workload sizes (smoke tests)"
                );
                std::process::exit(0);
            }
            // `cargo bench` appends it to the arguments after `--`.
            "--bench" => {}
            "--cases" => args.cases = Some(value("--cases")),
            "--scale" => {
                let v = value("--scale");
                args.scale = v.parse().unwrap_or_else(|_| {
                    usage_error(&format!("argument --scale: invalid float value: '{v}'"))
                });
            }
            other => usage_error(&format!("unrecognized arguments: {other}")),
        }
    }
    args
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".into())
}

fn main() {
    debug_assert!(CASES.iter().all(|(n, _)| ALL_CASES.contains(n)));
    debug_assert!(
        EXTRA_CASES
            .iter()
            .all(|(n, py)| ALL_CASES.contains(n) && ALL_CASES.contains(py))
    );
    let args = parse_args();
    // As in Python: an empty --cases means all cases; "machine" always runs.
    let wanted: Option<HashSet<String>> =
        args.cases.as_deref().filter(|c| !c.is_empty()).map(|c| {
            let mut set: HashSet<String> = c.split(',').map(str::to_string).collect();
            set.insert("machine".into());
            set
        });
    if let Some(wanted) = &wanted {
        let mut unknown: Vec<&String> = wanted
            .iter()
            .filter(|n| !ALL_CASES.contains(&n.as_str()))
            .collect();
        if !unknown.is_empty() {
            unknown.sort();
            usage_error(&format!("unknown cases: {unknown:?}"));
        }
    }

    let ctx = Ctx {
        scale: args.scale,
        case_start: Cell::new(Instant::now()),
        case_cpu: Cell::new(None),
        emitted: RefCell::new(HashSet::new()),
    };
    let watchdog = Watchdog::start();
    let t_all = Instant::now();
    let cpu_all = cpu_jiffies();
    for &name in ALL_CASES {
        if wanted.as_ref().is_some_and(|w| !w.contains(name)) {
            continue;
        }
        ctx.begin_case();
        let Some(&(_, case)) = CASES.iter().find(|(n, _)| *n == name) else {
            print_record(
                name,
                J::Null,
                "",
                J::Obj(params! { "error" => "not implemented yet" }),
            );
            eprintln!("  {name:32} not implemented yet");
            continue;
        };
        if t_all.elapsed() > BUDGET {
            ctx.emit_error(
                name,
                format!(
                    "skipped: run exceeded its {}s budget before this case",
                    BUDGET.as_secs()
                ),
            );
            continue;
        }
        watchdog.arm(CASE_TIMEOUT);
        let result = panic::catch_unwind(AssertUnwindSafe(|| case(&ctx)));
        let timed_out = watchdog.disarm();
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(payload) => Some(format!("panic: {}", panic_message(payload.as_ref()))),
        };
        if let Some(error) = error
            && !ctx.emitted.borrow().contains(name)
        {
            let error = if timed_out {
                format!(
                    "CaseTimeout: case exceeded {}s ({error})",
                    CASE_TIMEOUT.as_secs()
                )
            } else {
                error
            };
            ctx.emit_error(name, error);
        }
    }
    let left = multiproc::active_children().len();
    let mut steal = String::new();
    if let (Some(now), Some(then)) = (cpu_jiffies(), cpu_all)
        && now.1 > then.1
    {
        let pct = 100.0 * (now.0 - then.0) as f64 / (now.1 - then.1) as f64;
        steal = format!("; cpu steal {pct:.1}%");
    }
    eprintln!(
        "total {:.1}s; children still alive: {left}{steal}",
        t_all.elapsed().as_secs_f64()
    );
}
