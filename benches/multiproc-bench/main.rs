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
    StartMethod, Value, pipe,
};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

#[macro_use]
mod json;
mod harness;
#[macro_use]
mod workers;
mod cases;
mod placement;

use cases::*;
use harness::*;
use json::*;
use placement::*;
use workers::*;

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
