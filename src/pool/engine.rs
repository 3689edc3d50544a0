// long file: one state machine (the engine: rings, collector, watcher) whose invariants span all of it; to split by thread next (issue 16)
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

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::PoolError;
use super::worker::{self, Code, InitCode, Order, Report, WorkerArgs, WorkerExit, WorkerStatus};
use crate::handle;
use crate::process::{Limits, Process, ProcessBuilder, ProcessError, StartMethod};
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

    /// Withdraw a chunk that no worker has taken yet: its sink, to be told why; `None` if a
    /// worker has (or may have) taken it, or it is done.
    pub(crate) fn cancel(&self, id: u64) -> Option<Sink> {
        let mut st = self.inner.lock();
        if st.pending.get(&id).is_none_or(|p| p.dispatched) {
            return None;
        }
        // Its id stays in the backlog, where the dispatchers skip what is not pending.
        let p = st.pending.remove(&id)?;
        self.inner.maybe_send_stops(&mut st);
        Some(p.sink)
    }

    /// Withdraw the chunks `ids` if no worker has taken any of them and none is done: their
    /// sinks; `None` (and nothing changes) otherwise.
    pub(crate) fn cancel_all(&self, ids: &[u64]) -> Option<Vec<Sink>> {
        let mut st = self.inner.lock();
        if ids.is_empty()
            || ids
                .iter()
                .any(|id| st.pending.get(id).is_none_or(|p| p.dispatched))
        {
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

    /// Whether the chunk waits in the parent (no worker has taken it).
    pub(crate) fn is_queued(&self, id: u64) -> bool {
        self.inner
            .lock()
            .pending
            .get(&id)
            .is_some_and(|p| !p.dispatched)
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
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake_watcher(&self) {
        let _ = sys::send_all(self.wake.0.as_fd(), &[&[1]], &[]);
    }

    /// Connect the remote workers to this engine, one per slot.
    fn attach_remote(&self, st: &mut State, remote: &dyn Remote) -> Result<(), PoolError> {
        for slot in &st.slots {
            slot.status.reset(self.config.timeout.is_some());
        }
        let workers = remote.attach(RemoteLink {
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            statuses: st.slots.iter().map(|s| s.status.clone()).collect(),
            init: self.config.init.clone(),
        })?;
        for (slot, (name, pid)) in st.slots.iter_mut().zip(workers) {
            slot.name = name;
            slot.pid = pid;
            slot.generation = REMOTE_GENERATION;
            slot.remote = true;
            slot.reported = false;
            st.live += 1;
        }
        Ok(())
    }

    fn start_worker(&self, st: &mut State, w: usize) -> Result<(), PoolError> {
        let number = st.next_worker_number;
        st.next_worker_number += 1;
        let slot = &mut st.slots[w];
        slot.status.reset(self.config.timeout.is_some());
        let args = WorkerArgs {
            index: w as u32,
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            status: slot.status.clone(),
            init: self
                .config
                .init
                .as_ref()
                .map(|(code, arg)| (*code, serde_bytes::ByteBuf::from(arg.clone()))),
            max_tasks: self.config.max_tasks,
            max_memory: self.config.max_memory,
        };
        let name = format!("{}-{number}", self.config.prefix);
        let mut builder = ProcessBuilder::new()
            .name(name.clone())
            .daemon(true)
            .limits(self.config.limits.clone());
        if let Some(method) = self.config.start_method {
            builder = builder.start_method(method);
        }
        let process = builder
            .start(worker::worker_main, args)
            .map_err(|e| PoolError::Failed(format!("could not start a pool worker: {e}")))?;
        let pidfd = process
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| PoolError::Failed(format!("could not watch a pool worker: {e}")))?;
        slot.pid = process.pid();
        slot.name = name;
        slot.process = Some(process);
        slot.pidfd = Some(Arc::new(pidfd));
        slot.generation += 1;
        slot.timed_out = None;
        slot.reported = false;
        st.live += 1;
        self.wake_watcher();
        Ok(())
    }

    /// Put waiting orders into the ring while there is room (never blocks).
    fn dispatch_backlog(&self, st: &mut State) {
        while st.in_ring < self.config.window {
            let Some(&id) = st.backlog.front() else {
                break;
            };
            let Some(p) = st.pending.get(&id) else {
                st.backlog.pop_front();
                continue;
            };
            let message = p.order(id);
            match self.tasks.put(&message, Some(Instant::now())) {
                Ok(true) => {
                    st.backlog.pop_front();
                    st.in_ring += 1;
                    if let Some(p) = st.pending.get_mut(&id) {
                        p.dispatched = true;
                    }
                }
                // No room now (or the ring failed): the feeder waits for room (or reports
                // the failure).
                _ => {
                    st.stalled = true;
                    self.changed.notify_all();
                    break;
                }
            }
        }
        self.maybe_send_stops(st);
    }

    /// After `close`, once every chunk is done and no lazy map can submit more, tell each
    /// worker to exit.
    fn maybe_send_stops(&self, st: &mut State) {
        if st.phase != Phase::Closed || st.stops_sent || !st.pending.is_empty() || st.leases > 0 {
            return;
        }
        st.stops_sent = true;
        let stop = encode_order(&Order::Stop, &[]);
        for _ in 0..st.live {
            // The ring is empty of work by now, so there is room.
            let _ = self
                .tasks
                .put(&stop, Some(Instant::now() + Duration::from_secs(1)));
        }
        self.changed.notify_all();
    }

    fn fail_chunk(&self, id: u64, mut error: PoolError) {
        let sink = {
            let mut st = self.lock();
            let p = st.pending.remove(&id);
            if p.as_ref().is_some_and(|p| p.killed) {
                error = PoolError::Killed;
            }
            if p.as_ref().is_some_and(|p| p.dispatched) {
                st.in_ring -= 1;
            }
            self.dispatch_backlog(&mut st);
            p.map(|p| p.sink)
        };
        if let Some(sink) = sink {
            deliver(sink, Delivery::Failed(error));
        }
    }

    /// The collector thread: results, failures and deaths, in the order they happened.
    fn collect(self: Arc<Inner>) {
        loop {
            // Nothing a report leads to (user callbacks, decoding, a logger) may stop this
            // thread: every later result would never arrive.
            let handled = self.results.get(None, |bytes| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle_report(bytes)))
                    .unwrap_or(true)
            });
            match handled {
                Ok(Some(false)) | Err(_) => return,
                _ => {}
            }
        }
    }

    /// `false` to stop collecting.
    fn handle_report(&self, bytes: &[u8]) -> bool {
        let Ok((report, rest)) = postcard::take_from_bytes::<Report>(bytes) else {
            return true;
        };
        match report {
            Report::Done { id, worker } => {
                let (p, who) = {
                    let mut st = self.lock();
                    let p = st.pending.remove(&id);
                    if p.as_ref().is_some_and(|p| p.dispatched) {
                        st.in_ring -= 1;
                    }
                    self.dispatch_backlog(&mut st);
                    let who = st
                        .slots
                        .get(worker as usize)
                        .map(|s| (s.name.clone(), s.pid))
                        .unwrap_or_default();
                    (p, who)
                };
                if let Some(p) = p {
                    let delivery = if p.killed {
                        Delivery::Failed(PoolError::Killed)
                    } else {
                        Delivery::Done {
                            bytes: Some(rest),
                            failed: p.failed,
                            worker: who,
                        }
                    };
                    deliver(p.sink, delivery);
                }
            }
            Report::Failed { id, reason } => self.fail_chunk(id, PoolError::Failed(reason)),
            Report::InitFailed { worker, report } => {
                let st = self.lock();
                let (name, pid) = st
                    .slots
                    .get(worker as usize)
                    .map(|s| (s.name.clone(), s.pid))
                    .unwrap_or_default();
                drop(st);
                let remote = report.into_remote(name, pid);
                self.break_pool(PoolError::InitializerFailed(Box::new(remote)));
            }
            Report::Ended { worker, generation } => self.handle_end(worker as usize, generation),
            Report::Returned { ids } => {
                let mut st = self.lock();
                for id in ids.into_iter().rev() {
                    if let Some(p) = st.pending.get_mut(&id)
                        && p.dispatched
                    {
                        p.dispatched = false;
                        st.in_ring -= 1;
                        st.backlog.push_front(id);
                    }
                }
                self.dispatch_backlog(&mut st);
                self.changed.notify_all();
            }
            Report::Shutdown => return false,
        }
        true
    }

    /// Fail everything, now and later, with `error`.
    fn break_pool(&self, error: PoolError) {
        let sinks: Vec<Sink> = {
            let mut st = self.lock();
            if st.broken.is_none() {
                st.broken = Some(error.clone());
            }
            st.backlog.clear();
            st.in_ring = 0;
            let sinks = st.pending.drain().map(|(_, p)| p.sink).collect();
            // Closed already: nothing is pending any more, so the live workers may go.
            self.maybe_send_stops(&mut st);
            self.changed.notify_all();
            sinks
        };
        for sink in sinks {
            deliver(sink, Delivery::Failed(error.clone()));
        }
    }

    fn handle_end(&self, w: usize, generation: u64) {
        let mut st = self.lock();
        let Some(slot) = st.slots.get_mut(w) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        if slot.remote {
            self.handle_remote_end(st, w);
            return;
        }
        if slot.process.is_none() {
            return;
        }
        // The worker is dead: nothing writes its record any more.
        let at_death = slot.status.read_fields();
        let (task, item) = (at_death.task, at_death.item);
        let ready = slot.status.ready.load(SeqCst) != 0;
        let timed_out = slot.timed_out.take();
        let (name, pid) = (slot.name.clone(), slot.pid);
        let exit = slot.process.take().map(|p| {
            // The watcher saw the process end, so this does not wait.
            p.join_unflushed()
        });
        slot.pidfd = None;
        st.live -= 1;
        let death = match &exit {
            Some(Ok(Ok(WorkerExit::Stopped | WorkerExit::Retired | WorkerExit::Grew(_)))) => None,
            Some(Ok(Err(reason))) => Some(Death {
                cause: reason.clone(),
                signal: None,
                signal_name: None,
                exit_code: None,
                limit: None,
            }),
            Some(Err(e)) => Some(describe_exit(e)),
            None => Some(Death {
                cause: "lost".into(),
                signal: None,
                signal_name: None,
                exit_code: None,
                limit: None,
            }),
        };
        // A limit the workers cannot have fails every start the same way: the pool breaks.
        let unappliable = match &exit {
            Some(Err(ProcessError::Limits(e))) => Some(PoolError::Limits(e.clone())),
            _ => None,
        };
        let retired = match &exit {
            Some(Ok(Ok(WorkerExit::Grew(resident)))) => format!(
                "retired with {} MiB resident, past max_memory_per_child",
                resident >> 20
            ),
            _ => "retired after its task limit".to_string(),
        };
        let cause = death.as_ref().map(|d| d.cause.clone());
        let stopped = matches!(exit, Some(Ok(Ok(WorkerExit::Stopped))));
        let died = || match &death {
            Some(Death {
                limit: Some(error), ..
            }) => error.clone(),
            Some(d) => PoolError::WorkerDied {
                name: name.clone(),
                pid,
                signal: d.signal,
                signal_name: d.signal_name,
                exit_code: d.exit_code,
                cause: d.cause.clone(),
            },
            None => PoolError::WorkerDied {
                name: name.clone(),
                pid,
                signal: None,
                signal_name: None,
                exit_code: Some(0),
                cause: "exited".into(),
            },
        };
        // The chunk it had taken, if any: the running item fails, the rest goes again.
        let mut delivery = None;
        let id = task.wrapping_sub(1);
        if task != 0
            && let Some(p) = st.pending.get_mut(&id)
            && p.dispatched
        {
            // Killed for an item that finished just before the kill landed (the watcher
            // read the record, then the worker moved on): the item it was running is not
            // to blame and runs again.
            let innocent = timed_out.is_some_and(|blamed| blamed != (task, item));
            // The watcher's kill decides only if it is what ended the worker: one that
            // aborted (or exited) on its own before the kill landed failed by itself.
            let killed_by_us = death
                .as_ref()
                .is_some_and(|d| d.signal == Some(sys::SIGKILL));
            let timed_out = timed_out.filter(|_| killed_by_us);
            let innocent = innocent && killed_by_us;
            if p.killed {
                // Killed on request: the whole chunk fails, nothing runs again.
                for i in 0..p.items {
                    if let Err(at) = p.skip.binary_search(&i) {
                        p.skip.insert(at, i);
                        p.failed.push((i, PoolError::Killed));
                    }
                }
            } else if item == worker::NOT_STARTED {
                // Died between taking the chunk and starting it (killed while receiving it):
                // nothing ran, so it all goes again, unless that keeps happening.
                p.lost += 1;
                if p.lost >= LOST_LIMIT {
                    for i in 0..p.items {
                        if let Err(at) = p.skip.binary_search(&i) {
                            p.skip.insert(at, i);
                            p.failed.push((i, died()));
                        }
                    }
                }
            } else if !innocent {
                let error = match (timed_out, self.config.timeout) {
                    (Some(_), Some(after)) => {
                        crate::event::event!(
                            log::Level::Warn,
                            "a task in pool worker '{name}' (pid {pid}) ran past its timeout of \
                             {after:?}; the worker was killed"
                        );
                        PoolError::Timeout {
                            after,
                            name: name.clone(),
                            pid,
                        }
                    }
                    _ => died(),
                };
                let item = item as u32;
                if let Err(at) = p.skip.binary_search(&item) {
                    p.skip.insert(at, item);
                    p.failed.push((item, error));
                }
            }
            p.dispatched = false;
            let finished = p.skip.len() as u32 >= p.items;
            st.in_ring -= 1;
            if finished {
                delivery = st.pending.remove(&id).map(|p| (p.sink, p.failed));
            } else {
                st.backlog.push_front(id);
            }
        }
        // Deaths before the initializer finished: a deterministic failure breaks the pool
        // (CPython would start workers forever); one killed worker does not.
        let mut broken = unappliable;
        if ready {
            st.init_deaths = 0;
        } else if cause.is_some() && self.config.init.is_some() {
            st.init_deaths += 1;
            if st.init_deaths >= LOST_LIMIT && st.broken.is_none() {
                broken = Some(PoolError::InitializerFailed(Box::new(
                    crate::panic_report::PanicReport {
                        message: format!(
                            "{LOST_LIMIT} workers in a row died during initialization, the \
                             last one '{name}' (pid {pid}): {}",
                            cause.clone().unwrap_or_default()
                        ),
                        location: None,
                        backtrace: String::new(),
                        thread: None,
                    }
                    .into_remote(name.clone(), pid),
                )));
            }
        }
        if broken.is_none() {
            // A broken pool (its initializer failed) starts no worker again, whatever the
            // phase: after `close` that would start failing workers forever.
            let replace = st.broken.is_none()
                && match st.phase {
                    Phase::Running => true,
                    Phase::Closed => {
                        !stopped
                            && (!st.pending.is_empty()
                                || st.leases > 0
                                || self.tasks.len() > st.live as u64)
                    }
                    Phase::Terminated => false,
                };
            if replace && let Err(e) = self.start_worker(&mut st, w) {
                broken = Some(e);
            }
            let after = if replace && broken.is_none() {
                let slot = &st.slots[w];
                format!("replaced by '{}' (pid {})", slot.name, slot.pid)
            } else {
                "not replaced".to_string()
            };
            match &cause {
                Some(cause) if !matches!(st.phase, Phase::Terminated) => {
                    crate::event::event!(
                        log::Level::Warn,
                        "pool worker '{name}' (pid {pid}) {cause}; {after}"
                    );
                }
                None if !stopped => crate::event::event!(
                    log::Level::Info,
                    "pool worker '{name}' (pid {pid}) {retired}; {after}"
                ),
                _ => {}
            }
        }
        if broken.is_none() {
            self.dispatch_backlog(&mut st);
        }
        self.changed.notify_all();
        drop(st);
        if let Some((sink, failed)) = delivery {
            deliver_empty_done(sink, failed, (name, pid));
        }
        if let Some(error) = broken {
            self.break_pool(error);
        }
    }

    /// A remote worker's end: after a `Stop`, or given up (its chunk ran past the task
    /// timeout, and the whole chunk fails with `Timeout`: a remote worker reports no
    /// progress within a chunk). Remote workers are never replaced; once none is left, the
    /// pool breaks instead of waiting forever.
    fn handle_remote_end(&self, mut st: MutexGuard<'_, State>, w: usize) {
        let slot = &mut st.slots[w];
        slot.remote = false;
        slot.reported = true;
        let timed_out = slot.timed_out.take();
        let at = slot.status.read_fields();
        let (name, pid) = (slot.name.clone(), slot.pid);
        st.live -= 1;
        let mut delivery = None;
        if timed_out.is_some() {
            let after = self.config.timeout.unwrap_or_default();
            crate::event::event!(
                log::Level::Warn,
                "a task on worker '{name}' (pid {pid}) ran past its timeout of {after:?}; the \
                 worker is no longer used"
            );
            let id = at.task.wrapping_sub(1);
            if at.task != 0
                && let Some(p) = st.pending.get_mut(&id)
                && p.dispatched
            {
                p.dispatched = false;
                let error = if p.killed {
                    PoolError::Killed
                } else {
                    PoolError::Timeout {
                        after,
                        name: name.clone(),
                        pid,
                    }
                };
                for i in 0..p.items {
                    if let Err(at) = p.skip.binary_search(&i) {
                        p.skip.insert(at, i);
                        p.failed.push((i, error.clone()));
                    }
                }
                st.in_ring -= 1;
                delivery = st.pending.remove(&id).map(|p| (p.sink, p.failed));
            }
        }
        let stranded = st.live == 0
            && st.phase != Phase::Terminated
            && (st.phase == Phase::Running || !st.pending.is_empty() || st.leases > 0);
        self.dispatch_backlog(&mut st);
        self.changed.notify_all();
        drop(st);
        if let Some((sink, failed)) = delivery {
            deliver_empty_done(sink, failed, (name, pid));
        }
        if stranded {
            self.break_pool(PoolError::Failed(
                "every remote worker of this pool was given up after a task timeout; start \
                 a new pool (or a new MPI job) to go on"
                    .into(),
            ));
        }
    }

    /// The feeder thread: puts the backlog's next order into the task ring when it did not
    /// fit at once, waiting for room (which the others must never do: they hold the state
    /// lock, or are the collector that makes room).
    fn feed(self: Arc<Inner>) {
        let mut st = self.lock();
        loop {
            if st.threads_stopped {
                return;
            }
            if st.stalled && st.in_ring < self.config.window {
                st.stalled = false;
                if let Some(id) = st.backlog.pop_front()
                    && let Some(p) = st.pending.get_mut(&id)
                {
                    p.dispatched = true;
                    let message = p.order(id);
                    st.in_ring += 1;
                    drop(st);
                    if let Err(e) = self.tasks.put(&message, None) {
                        self.fail_chunk(id, PoolError::Failed(e.to_string()));
                    }
                    st = self.lock();
                    self.dispatch_backlog(&mut st);
                }
                continue;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The watcher thread: report worker ends, kill workers whose item ran too long.
    fn watch(self: Arc<Inner>) {
        let timeout_tick = self
            .config
            .timeout
            .map(|t| (t / 4).clamp(Duration::from_millis(1), Duration::from_millis(100)));
        loop {
            let mut watched: Vec<(usize, u64, Arc<OwnedFd>)> = Vec::new();
            let mut tick = timeout_tick;
            {
                let mut st = self.lock();
                if st.threads_stopped {
                    return;
                }
                let now = worker::monotonic_ns();
                let mut killing = false;
                let State {
                    slots,
                    pending,
                    kill_requests,
                    ..
                } = &mut *st;
                for (w, slot) in slots.iter_mut().enumerate() {
                    if slot.reported {
                        continue;
                    }
                    if let Some(p) = &slot.process
                        && slot.timed_out.is_none()
                    {
                        // One consistent record: this item and its own start time.
                        let progress = slot.status.read();
                        if let (Some(limit), Some(at)) = (self.config.timeout, progress)
                            && at.task != 0
                            && at.item != worker::NOT_STARTED
                            && at.started_ns != 0
                        {
                            let limit = limit.as_nanos() as u64;
                            let mut deadline = at.started_ns.saturating_add(limit);
                            if at.panicked_ns != 0 {
                                // Its panic report is on its way: it ended as a panic, not
                                // a timeout, however long the report takes (within reason).
                                deadline = deadline.max(
                                    at.panicked_ns
                                        .saturating_add(REPORT_GRACE.as_nanos() as u64),
                                );
                            }
                            if now >= deadline {
                                slot.timed_out = Some((at.task, at.item));
                                let _ = p.kill();
                            }
                        }
                        if *kill_requests > 0
                            && let Some(at) = progress
                            && at.task != 0
                            && let Some(chunk) = pending.get(&(at.task - 1))
                            && chunk.killed
                        {
                            let _ = p.kill();
                        }
                    }
                    if slot.remote
                        && slot.timed_out.is_none()
                        && let (Some(limit), Some(at)) = (self.config.timeout, slot.status.read())
                        && at.task != 0
                        && at.started_ns != 0
                        && now >= at.started_ns.saturating_add(limit.as_nanos() as u64)
                        && let Some(remote) = &self.config.remote
                    {
                        // No process to kill: the transport gives the worker up.
                        slot.timed_out = Some((at.task, at.item));
                        remote.lost(w);
                    }
                    if let Some(fd) = &slot.pidfd {
                        watched.push((w, slot.generation, fd.clone()));
                    }
                }
                if *kill_requests > 0 {
                    killing = pending.values().any(|p| p.killed && p.dispatched);
                    if !killing {
                        *kill_requests = 0;
                    }
                }
                if killing {
                    tick = Some(tick.map_or(KILL_TICK, |t| t.min(KILL_TICK)));
                }
            }
            let mut fds: Vec<std::os::fd::BorrowedFd<'_>> = vec![self.wake.1.as_fd()];
            fds.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
            let Ok(ready) = sys::wait_readable(&fds, tick) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            if ready[0] {
                let mut buf = [0u8; 64];
                let _ = sys::try_recv_some(self.wake.1.as_fd(), &mut buf, &mut VecDeque::new());
            }
            for ((w, generation, _), _) in watched
                .iter()
                .zip(&ready[1..])
                .filter(|(_, readable)| **readable)
            {
                {
                    let mut st = self.lock();
                    match st.slots.get_mut(*w) {
                        Some(slot) if slot.generation == *generation && !slot.reported => {
                            slot.reported = true;
                        }
                        _ => continue,
                    }
                }
                let mut report = Vec::new();
                let _ = handle::encode(
                    &Report::Ended {
                        worker: *w as u32,
                        generation: *generation,
                    },
                    &mut report,
                );
                let _ = self.results.put(&report, None);
            }
        }
    }
}

fn describe_exit(e: &ProcessError) -> Death {
    match e {
        ProcessError::CpuLimit { name, pid, limit } => Death {
            cause: format!("used up its CPU-time limit of {limit:?} (SIGXCPU)"),
            signal: Some(sys::limits::SIGXCPU),
            signal_name: Some(sys::signal_name(sys::limits::SIGXCPU)),
            exit_code: None,
            limit: Some(PoolError::CpuLimit {
                name: name.clone(),
                pid: *pid,
                limit: *limit,
            }),
        },
        ProcessError::MemoryLimit { name, pid, limit } => Death {
            cause: format!("ran out of memory under its limit of {limit} bytes (SIGABRT)"),
            signal: Some(sys::limits::SIGABRT),
            signal_name: Some(sys::signal_name(sys::limits::SIGABRT)),
            exit_code: None,
            limit: Some(PoolError::MemoryLimit {
                name: name.clone(),
                pid: *pid,
                limit: *limit,
            }),
        },
        ProcessError::Signaled {
            signal,
            signal_name,
            ..
        } => Death {
            cause: format!("killed by signal {signal} ({signal_name})"),
            signal: Some(*signal),
            signal_name: Some(signal_name),
            exit_code: None,
            limit: None,
        },
        ProcessError::Exited { code, .. } => Death {
            cause: format!("exited with code {code}"),
            signal: None,
            signal_name: None,
            exit_code: Some(*code),
            limit: None,
        },
        other => Death {
            cause: other.to_string(),
            signal: None,
            signal_name: None,
            exit_code: None,
            limit: None,
        },
    }
}
