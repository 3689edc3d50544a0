//! The parent side of a pool, shared by [`Pool`](super::Pool) and
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor): workers, the task and result rings,
//! the collector thread (results, deaths, replacements) and the watcher thread (process
//! ends, task timeouts).
//!
//! Orders go through one task ring that every worker takes from, so the load balances by
//! itself. A worker writes the chunk it takes into its `WorkerStatus` *before* the order
//! leaves the ring, so when a worker dies the collector knows exactly which chunk and item
//! it was running: that item fails with the cause of death, the rest of the chunk is sent
//! again, and a new worker takes the dead one's place. CPython's pool cannot tell, and hangs.
//!
//! Deaths reach the collector through the result ring, behind every result the worker put
//! before it died, so a finished chunk is never failed.
//!
//! This file holds the state (the [`State`] table of pending chunks and worker slots, under
//! one lock) and the calls of the pools' API; each thread's part is a file of its own:
//! `workers.rs` (starting workers, dispatching orders from the backlog, stop orders),
//! `collector.rs` (the collector thread's loop and reports), `deaths.rs` (a worker's end:
//! the running item fails, the rest of its chunk is sent again, a new worker takes its
//! place), `watcher.rs` (the watcher thread: pidfds, task timeouts, kills) and `feeder.rs`
//! (the feeder thread: orders that did not fit in the task ring at once).

mod collector;
mod deaths;
mod feeder;
mod watcher;
mod workers;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::PoolError;
use super::status::WorkerStatus;
use super::task::{Code, InitCode};
use super::worker::{Order, Report, WorkerExit};
use crate::handle;
use crate::process::{Limits, Process, StartMethod};
use crate::queue::ring::{Ring, RingConfig};
use crate::segment::Shared;
use crate::sys;

/// How many times a chunk may be lost with its worker before it has started (or workers
/// may die in a row during initialization) before that is taken as the work's own fault.
const LOST_LIMIT: u32 = 3;

/// How long `submit` may wait for room in the task ring before leaving the order to the
/// feeder thread (submitting never blocks, as in Python).
const SUBMIT_GRACE: Duration = Duration::from_micros(200);

/// How long after a task panicked its worker may take to report it (unwinding, resolving a
/// backtrace's symbols: 100+ ms in a fresh worker when `RUST_BACKTRACE` asks for one) before
/// the task timeout applies again. Only a `Drop` that hangs during unwinding, or a task that
/// catches its own panic and goes on running, can reach it.
const REPORT_GRACE: Duration = Duration::from_secs(5);

/// How long [`Engine::terminate_gently`] waits for workers to exit after `SIGTERM` before
/// it kills them.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// The watcher's tick while a task is to be killed as soon as a worker takes it.
const KILL_TICK: Duration = Duration::from_millis(2);

/// The feeder thread's name (told apart when the pool stops).
const FEEDER: &str = "multiproc-pool-feeder";

/// How an engine is set up.
pub(crate) struct EngineConfig {
    pub processes: usize,
    pub start_method: Option<StartMethod>,
    pub init: Option<(InitCode, Vec<u8>)>,
    pub max_tasks: u64,
    /// Retire a worker whose resident memory reaches this after a chunk (0: never).
    pub max_memory: u64,
    /// Set in every worker.
    pub limits: Limits,
    pub timeout: Option<Duration>,
    /// Most orders in the task ring at once (the rest wait in the parent, cancellable).
    pub window: usize,
    /// Worker names are `{prefix}-{n}`.
    pub prefix: &'static str,
    /// Workers that are not children of this process (MPI ranks): `processes` of them
    /// take the orders instead of local worker processes.
    pub remote: Option<Arc<dyn Remote>>,
}

/// Workers that are not child processes of this one (the MPI ranks of `pool::mpi`). The
/// engine works as with local workers: it puts orders into its task ring and reads reports
/// from its result ring; the transport carries orders to the workers and puts their
/// reports into the result ring as they are, writes each worker's `WorkerStatus` (the
/// chunk it runs and since when), and reports a worker's end (`Report::Ended`, after the
/// `Report::Returned` chunks it had not started) when it takes a `Stop` for it or was
/// given up ([`Remote::lost`]).
pub(crate) trait Remote: Send + Sync {
    /// Connect the first `link.statuses.len()` workers to this engine: each one's name and
    /// pid. Their initializer reports arrive later, as with local workers.
    fn attach(&self, link: RemoteLink) -> Result<Vec<(String, u32)>, PoolError>;
    /// The watcher gave up on worker `w` (its chunk ran past the task timeout): stop using
    /// it, return its other chunks, report its end.
    fn lost(&self, w: usize);
    /// The engine is gone or terminated: forget its chunks (results still on their way are
    /// dropped) and leave the workers free for the next engine.
    fn detach(&self);
}

/// What a [`Remote`] transport serves an engine with (read only by the transports, which
/// exist only with the feature `mpi`).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) struct RemoteLink {
    pub tasks: Ring,
    pub results: Ring,
    pub statuses: Vec<Shared<WorkerStatus>>,
    pub init: Option<(InitCode, Vec<u8>)>,
}

/// The generation of a remote worker's slot (never replaced).
pub(crate) const REMOTE_GENERATION: u64 = 1;

/// What a chunk's job receives.
pub(crate) enum Delivery<'a> {
    /// The worker's encoded `Vec<ItemResult<R>>` (`None` if every item failed before it
    /// could run), and the failures of items in the skip list.
    Done {
        bytes: Option<&'a [u8]>,
        failed: Vec<(u32, PoolError)>,
        worker: (String, u32),
    },
    /// The whole chunk failed.
    Failed(PoolError),
}

/// Receives a chunk's outcome, in the collector thread (or the thread that terminates).
pub(crate) type Sink = Box<dyn FnOnce(Delivery<'_>) + Send>;

struct Pending {
    code: Code,
    payload: Arc<[u8]>,
    items: u32,
    skip: Vec<u32>,
    failed: Vec<(u32, PoolError)>,
    sink: Sink,
    /// In the task ring (or taken by a worker), not in the backlog.
    dispatched: bool,
    /// Workers that died after taking this chunk and before starting any of its items.
    lost: u32,
    /// Killed on request ([`Engine::kill`]): fails with `Killed`, whatever comes back.
    killed: bool,
}

impl Pending {
    /// The order that runs this chunk (its items not yet failed), ready for the ring.
    fn order(&self, id: u64) -> Vec<u8> {
        let order = Order::Run {
            id,
            code: self.code,
            skip: self.skip.clone(),
        };
        encode_order(&order, &self.payload)
    }
}

struct Slot {
    process: Option<Process<Result<WorkerExit, String>>>,
    pidfd: Option<Arc<OwnedFd>>,
    status: Shared<WorkerStatus>,
    generation: u64,
    name: String,
    pid: u32,
    /// The watcher killed it for running `(chunk id + 1, item)` too long.
    timed_out: Option<(u64, u64)>,
    /// The watcher already reported its end.
    reported: bool,
    /// A remote worker still in this engine's service (see [`Remote`]).
    remote: bool,
}

/// How a worker ended, for [`PoolError::WorkerDied`] (or the limit error that replaces it).
struct Death {
    cause: String,
    signal: Option<i32>,
    signal_name: Option<&'static str>,
    exit_code: Option<i32>,
    /// It went past one of its limits: the error its item fails with.
    limit: Option<PoolError>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Running,
    Closed,
    Terminated,
}

struct State {
    slots: Vec<Slot>,
    pending: HashMap<u64, Pending>,
    backlog: VecDeque<u64>,
    /// Orders in the ring or running, not yet finished.
    in_ring: usize,
    next_id: u64,
    next_worker_number: u64,
    phase: Phase,
    stops_sent: bool,
    broken: Option<PoolError>,
    live: usize,
    threads_stopped: bool,
    /// Lazy maps (`imap`) that may still submit after `close`.
    leases: usize,
    /// The backlog's next order did not fit in the task ring: the feeder thread takes over.
    stalled: bool,
    /// Workers that died before their initializer finished, in a row.
    init_deaths: u32,
    /// Kills requested for chunks that may be in the ring, not yet taken by a worker: the
    /// watcher looks for them at every tick (reset when none is left).
    kill_requests: usize,
}

impl State {
    /// Whether a worker has taken (or may have taken) chunk `id`, or it is done: it can no
    /// longer be withdrawn.
    fn started(&self, id: u64) -> bool {
        self.pending.get(&id).is_none_or(|p| p.dispatched)
    }
}

struct Inner {
    tasks: Ring,
    results: Ring,
    config: EngineConfig,
    state: Mutex<State>,
    changed: Condvar,
    /// Written to wake the watcher when the set of workers changes.
    wake: (OwnedFd, OwnedFd),
}

/// A running pool of worker processes.
pub(crate) struct Engine {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn encode_order(order: &Order, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    // Our own enum into a Vec: cannot fail.
    let _ = handle::encode(order, &mut out);
    out.extend_from_slice(payload);
    out
}

impl Engine {
    pub(crate) fn start(config: EngineConfig) -> Result<Engine, PoolError> {
        let ring = |joinable| {
            Ring::new(RingConfig {
                capacity: crate::queue::DEFAULT_BUFFER_SIZE as u64,
                maxsize: 0,
                joinable,
            })
        };
        let io = |e: std::io::Error| PoolError::Failed(format!("could not create the pool: {e}"));
        let tasks = ring(false).map_err(io)?;
        let results = ring(false).map_err(io)?;
        let wake = sys::socketpair().map_err(io)?;
        let processes = config.processes.max(1);
        let inner = Arc::new(Inner {
            tasks,
            results,
            config,
            state: Mutex::new(State {
                slots: Vec::with_capacity(processes),
                pending: HashMap::new(),
                backlog: VecDeque::new(),
                in_ring: 0,
                next_id: 0,
                next_worker_number: 1,
                phase: Phase::Running,
                stops_sent: false,
                broken: None,
                live: 0,
                threads_stopped: false,
                leases: 0,
                init_deaths: 0,
                stalled: false,
                kill_requests: 0,
            }),
            changed: Condvar::new(),
            wake,
        });
        let engine = Engine {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
        };
        {
            let mut st = inner.lock();
            for _ in 0..processes {
                let status = Shared::new(0).map_err(io)?;
                let slot = Slot {
                    process: None,
                    pidfd: None,
                    status,
                    generation: 0,
                    name: String::new(),
                    pid: 0,
                    timed_out: None,
                    reported: true,
                    remote: false,
                };
                st.slots.push(slot);
            }
            if let Some(remote) = &inner.config.remote
                && let Err(e) = inner.attach_remote(&mut st, remote.as_ref())
            {
                drop(st);
                engine.terminate();
                return Err(e);
            }
            for w in 0..processes {
                if inner.config.remote.is_some() {
                    break;
                }
                if let Err(e) = inner.start_worker(&mut st, w) {
                    drop(st);
                    engine.terminate();
                    return Err(e);
                }
            }
        }
        let collector = {
            let inner = inner.clone();
            crate::library_thread::spawn("multiproc-pool-results", move || inner.collect())
        };
        let watcher = {
            let inner = inner.clone();
            crate::library_thread::spawn("multiproc-pool-watcher", move || inner.watch())
        };
        let feeder = {
            let inner = inner.clone();
            crate::library_thread::spawn(FEEDER, move || inner.feed())
        };
        let started: Vec<_> = [collector, watcher, feeder].into_iter().collect();
        let failed = started.iter().any(|t| t.is_err());
        *engine.threads.lock().unwrap_or_else(|e| e.into_inner()) =
            started.into_iter().flatten().collect();
        if failed {
            engine.terminate();
            return Err(PoolError::Failed(
                "could not start the pool's threads".into(),
            ));
        }
        Ok(engine)
    }

    pub(crate) fn processes(&self) -> usize {
        self.inner.config.processes.max(1)
    }

    /// Queue a chunk of `items` items for `code`; its outcome goes to `sink`. `leased`: the
    /// caller holds a [`Lease`], so the pool takes the chunk even if it was closed since.
    pub(crate) fn submit(
        &self,
        code: Code,
        payload: Vec<u8>,
        items: u32,
        sink: Sink,
        leased: bool,
    ) -> Result<u64, PoolError> {
        let payload: Arc<[u8]> = payload.into();
        let mut st = self.inner.lock();
        if let Some(broken) = &st.broken {
            return Err(broken.clone());
        }
        let open = match st.phase {
            Phase::Running => true,
            Phase::Closed => leased,
            Phase::Terminated => false,
        };
        if !open {
            return Err(PoolError::Closed);
        }
        let id = st.next_id;
        st.next_id += 1;
        let direct = st.backlog.is_empty() && st.in_ring < self.inner.config.window;
        st.pending.insert(
            id,
            Pending {
                code,
                payload: payload.clone(),
                items,
                skip: Vec::new(),
                failed: Vec::new(),
                sink,
                dispatched: direct,
                lost: 0,
                killed: false,
            },
        );
        if !direct {
            st.backlog.push_back(id);
            return Ok(id);
        }
        st.in_ring += 1;
        drop(st);
        let order = encode_order(
            &Order::Run {
                id,
                code,
                skip: Vec::new(),
            },
            &payload,
        );
        // Outside the state lock, and never waiting long: an order that does not fit now
        // (the ring is full, or it is larger than the room left) goes to the feeder.
        let grace = Instant::now() + SUBMIT_GRACE;
        match self.inner.tasks.put(&order, Some(grace)) {
            Ok(true) => {}
            Ok(false) => {
                let mut st = self.inner.lock();
                if let Some(p) = st.pending.get_mut(&id)
                    && p.dispatched
                {
                    p.dispatched = false;
                    st.in_ring -= 1;
                    st.backlog.push_front(id);
                    st.stalled = true;
                    self.inner.changed.notify_all();
                }
            }
            Err(e) => self.inner.fail_chunk(id, PoolError::Failed(e.to_string())),
        }
        Ok(id)
    }

    /// Keep the pool open to the caller's future submissions even after `close` (what a
    /// lazy map needs to finish what it started); an error if the pool takes no work.
    pub(crate) fn lease(&self) -> Result<Lease, PoolError> {
        let mut st = self.inner.lock();
        if let Some(broken) = &st.broken {
            return Err(broken.clone());
        }
        if st.phase != Phase::Running {
            return Err(PoolError::Closed);
        }
        st.leases += 1;
        Ok(Lease {
            inner: self.inner.clone(),
        })
    }

    /// Whether the calling thread is one of the pool's own (callbacks run there).
    pub(crate) fn on_pool_thread(&self) -> bool {
        let me = std::thread::current().id();
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|t| t.thread().id() == me)
    }

    /// Withdraw the chunks `ids` if no worker has taken (or may have taken) any of them and
    /// none is done: their sinks, to be told why; `None` (and nothing changes) otherwise.
    /// Their ids stay in the backlog, where the dispatchers skip what is not pending.
    pub(crate) fn cancel_all(&self, ids: &[u64]) -> Option<Vec<Sink>> {
        let mut st = self.inner.lock();
        if ids.is_empty() || ids.iter().any(|&id| st.started(id)) {
            return None;
        }
        let sinks = ids
            .iter()
            .filter_map(|id| st.pending.remove(id))
            .map(|p| p.sink)
            .collect();
        self.inner.maybe_send_stops(&mut st);
        Some(sinks)
    }

    /// Stop the chunks `ids` that are not done: queued ones are withdrawn, a worker running
    /// one is killed (and replaced), one in the ring is killed as soon as a worker takes it.
    /// Each fails with [`PoolError::Killed`]. `true` if any was not done.
    pub(crate) fn kill(&self, ids: &[u64]) -> bool {
        let mut st = self.inner.lock();
        let mut any = false;
        let mut withdrawn = Vec::new();
        for id in ids {
            let Some(p) = st.pending.get_mut(id) else {
                continue;
            };
            any = true;
            if !p.dispatched {
                if let Some(p) = st.pending.remove(id) {
                    withdrawn.push(p.sink);
                }
                continue;
            }
            if p.killed {
                continue;
            }
            p.killed = true;
            let mut found = false;
            for slot in &mut st.slots {
                if slot.status.read_fields().task != id + 1 {
                    continue;
                }
                if let Some(process) = &slot.process {
                    let _ = process.kill();
                    found = true;
                } else if slot.remote {
                    // A remote worker cannot be killed: its result, when it comes, is
                    // dropped and the chunk fails with `Killed`.
                    found = true;
                }
            }
            if !found {
                st.kill_requests += 1;
            }
        }
        self.inner.maybe_send_stops(&mut st);
        drop(st);
        self.inner.wake_watcher();
        for sink in withdrawn {
            deliver(sink, Delivery::Failed(PoolError::Killed));
        }
        any
    }

    /// Withdraw every chunk no worker has taken yet: their sinks.
    pub(crate) fn cancel_queued(&self) -> Vec<Sink> {
        let mut st = self.inner.lock();
        let queued: Vec<u64> = std::mem::take(&mut st.backlog).into_iter().collect();
        let sinks = queued
            .into_iter()
            .filter_map(|id| st.pending.remove(&id))
            .map(|p| p.sink)
            .collect();
        self.inner.maybe_send_stops(&mut st);
        sinks
    }

    /// Whether a worker has taken (or may have taken) any of the chunks `ids`, or one is
    /// done: anything but all of them waiting in the parent. One look under the lock.
    pub(crate) fn any_started(&self, ids: &[u64]) -> bool {
        let st = self.inner.lock();
        ids.iter().any(|&id| st.started(id))
    }

    /// No more submissions; workers exit once every chunk is done.
    pub(crate) fn close(&self) {
        let mut st = self.inner.lock();
        if st.phase == Phase::Running {
            st.phase = Phase::Closed;
        }
        self.inner.maybe_send_stops(&mut st);
    }

    pub(crate) fn is_running(&self) -> bool {
        self.inner.lock().phase == Phase::Running
    }

    /// Stop at once: fail what is not done, kill and reap the workers, stop the threads.
    /// Safe to call from a callback (the collector thread): nothing here waits for it.
    pub(crate) fn terminate(&self) {
        self.terminate_with(false);
    }

    /// [`terminate`](Engine::terminate) with `SIGTERM` instead of `SIGKILL` (a worker not
    /// gone `TERM_GRACE` later is killed).
    pub(crate) fn terminate_gently(&self) {
        self.terminate_with(true);
    }

    fn terminate_with(&self, gently: bool) {
        let (sinks, workers) = {
            let mut st = self.inner.lock();
            st.phase = Phase::Terminated;
            st.backlog.clear();
            st.in_ring = 0;
            let mut workers = Vec::new();
            for slot in &mut st.slots {
                if let Some(p) = slot.process.take() {
                    let _ = if gently { p.terminate() } else { p.kill() };
                    workers.push(p);
                }
                slot.pidfd = None;
                slot.reported = true;
                slot.remote = false;
            }
            st.live = 0;
            if let Some(remote) = &self.inner.config.remote {
                remote.detach();
            }
            let sinks: Vec<Sink> = st.pending.drain().map(|(_, p)| p.sink).collect();
            self.inner.changed.notify_all();
            (sinks, workers)
        };
        for sink in sinks {
            deliver(sink, Delivery::Failed(PoolError::Terminated));
        }
        for worker in workers {
            if gently && !matches!(worker.join_timeout(TERM_GRACE), Ok(true)) {
                let _ = worker.kill();
            }
            // Killed above: this returns as soon as the kernel has reaped it.
            let _ = worker.join();
        }
        self.stop_threads();
    }

    /// Wait for the workers to exit (after `close` or `terminate`), then stop the threads.
    pub(crate) fn join(&self) {
        let mut st = self.inner.lock();
        while st.live > 0 && !st.threads_stopped {
            st = self
                .inner
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
        drop(st);
        if let Some(remote) = &self.inner.config.remote {
            remote.detach();
        }
        self.stop_threads();
    }

    /// Stop the collector and watcher threads (once); waits for them unless called from
    /// one of them.
    fn stop_threads(&self) {
        {
            let mut st = self.inner.lock();
            if st.threads_stopped {
                return;
            }
            st.threads_stopped = true;
            self.inner.changed.notify_all();
        }
        let mut shutdown = Vec::new();
        let _ = handle::encode(&Report::Shutdown, &mut shutdown);
        let _ = self.inner.results.put(&shutdown, None);
        self.inner.wake_watcher();
        let me = std::thread::current().id();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            // From a callback the collector is this thread: it returns by itself once the
            // callback is done, at the Shutdown report.
            if t.thread().id() == me {
                continue;
            }
            if t.thread().name() == Some(FEEDER) {
                // It may be blocked putting an order no worker will take: take it.
                while !t.is_finished() {
                    let soon = Instant::now() + Duration::from_millis(5);
                    let _ = self.inner.tasks.get(Some(soon), |_| ());
                }
            }
            let _ = t.join();
        }
    }

    /// Pids of the current workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let st = self.inner.lock();
        st.slots
            .iter()
            .filter(|s| s.process.is_some() || s.remote)
            .map(|s| s.pid)
            .collect()
    }
}

/// Held by a lazy map: see [`Engine::lease`]. Dropping it lets a closed pool wind down.
pub(crate) struct Lease {
    inner: Arc<Inner>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        st.leases -= 1;
        self.inner.maybe_send_stops(&mut st);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Run a sink; a panicking callback must not take the collector down with it.
pub(crate) fn deliver(sink: Sink, delivery: Delivery<'_>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(delivery)));
}

/// Tell a chunk's sink that it is done with no more results (its worker ended after the
/// last one was delivered).
fn deliver_empty_done(sink: Sink, failed: Vec<(u32, PoolError)>, worker: (String, u32)) {
    deliver(
        sink,
        Delivery::Done {
            bytes: None,
            failed,
            worker,
        },
    );
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn wake_watcher(&self) {
        let _ = sys::send_all(self.wake.0.as_fd(), &[&[1]], &[]);
    }
}
