// long file: several concepts (executor, builder, futures, as_completed/wait, maps); to split like pool/ (issue 16)
//! [`ProcessPoolExecutor`] (Python's `concurrent.futures.ProcessPoolExecutor`): submit a
//! function call, get a [`PoolFuture`]; wait for many with [`as_completed`] and [`wait`], or
//! `.await` them from any async runtime. (`multiproc::wait` at the crate root is
//! `multiprocessing.connection.wait`; this module's [`wait`] is the futures one.)
//!
//! It runs on the same engine as [`Pool`](crate::Pool) (workers, shared-memory rings, a
//! collector thread), with one difference: only a few tasks (one per worker, plus one, as in Python) are
//! handed to the workers at a time; the others wait in the parent, where
//! [`PoolFuture::cancel`] and `shutdown(cancel_futures)` can still withdraw them.
//!
//! # A worker that dies fails only its task
//! Python's executor declares itself broken (`BrokenProcessPool`) when a worker dies and fails
//! every pending future. Here the future of the task the worker was running fails with
//! [`PoolError::WorkerDied`] (naming the signal), a new worker takes the dead one's place, and
//! every other future completes normally: one crashing input does not cost the whole batch.
//! Only an initializer that keeps failing makes the executor give up
//! ([`PoolError::InitializerFailed`] for everything).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pool::progress::Progress;
use crate::pool::worker::{Call, Chunks};
use crate::pool::{
    Delivery, Engine, PoolBuilder, PoolError, ResultCell, Sink, Watch, decode_chunk, deliver,
    submit_one,
};
use crate::process::StartMethod;

/// Orders in the workers' ring at once, per worker (plus one); the rest wait in the parent.
const WINDOW_PER_WORKER: usize = 1;

/// Settings for a new [`ProcessPoolExecutor`]: see [`ProcessPoolExecutor::builder`].
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(2).max_tasks_per_child(50).build()?;
/// assert_eq!(ex.submit(square, 9)?.result()?, 81);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Debug, Default)]
pub struct ExecutorBuilder {
    pool: PoolBuilder,
}

impl ExecutorBuilder {
    /// The number of worker processes (default: [`cpu_count`](crate::cpu_count)).
    ///
    /// ```
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(3).build()?;
    /// assert_eq!(ex.max_workers(), 3);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn max_workers(mut self, n: usize) -> Self {
        self.pool = self.pool.processes(n);
        self
    }

    /// How workers are started (Python's `mp_context`; default: the program-wide method).
    ///
    /// ```
    /// use multiproc::StartMethod;
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .start_method(StartMethod::ForkServer)
    ///     .build()?;
    /// assert_eq!(ex.submit(one, ())?.result()?, 1);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.pool = self.pool.start_method(method);
        self
    }

    /// Run `f(arg)` once in every worker before it takes work (Python's `initializer` and
    /// `initargs`).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// static SCALE: AtomicU64 = AtomicU64::new(1);
    /// fn setup(scale: u64) { SCALE.store(scale, Ordering::Relaxed); }
    /// fn scaled(x: u64) -> u64 { x * SCALE.load(Ordering::Relaxed) }
    ///
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(1).initializer(setup, 10).build()?;
    /// assert_eq!(ex.submit(scaled, 4)?.result()?, 40);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.pool = self.pool.initializer(f, arg);
        self
    }

    /// Replace each worker after it has run `n` tasks (0, the default: never).
    ///
    /// ```
    /// fn pid(_: u8) -> u32 { std::process::id() }
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(1).max_tasks_per_child(1).build()?;
    /// let a = ex.submit(pid, 0)?.result()?;
    /// let b = ex.submit(pid, 1)?.result()?;
    /// assert_ne!(a, b);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.pool = self.pool.maxtasksperchild(n);
        self
    }

    /// Replace each worker whose resident memory is `bytes` or more after a task (see
    /// [`PoolBuilder::max_memory_per_child`]); the task's result is kept.
    ///
    /// ```
    /// fn leak(mib: usize) -> u32 {
    ///     std::hint::black_box(Box::leak(vec![1u8; mib << 20].into_boxed_slice()));
    ///     std::process::id()
    /// }
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(1).max_memory_per_child(64 << 20).build()?;
    /// let first = ex.submit(leak, 100)?.result()?;
    /// assert_ne!(ex.submit(leak, 0)?.result()?, first);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.pool = self.pool.max_memory_per_child(bytes);
        self
    }

    /// Resource limits for every worker (see [`PoolBuilder::limits`]): a task that takes
    /// its worker past the memory or CPU limit fails alone with [`PoolError::MemoryLimit`]
    /// or [`PoolError::CpuLimit`].
    ///
    /// ```
    /// use multiproc::{Limits, PoolError};
    /// fn hoard(_: ()) { let mut v: Vec<Vec<u8>> = Vec::new(); loop { v.push(vec![7; 1 << 20]) } }
    /// let ex = multiproc::ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .limits(Limits::new().memory(512 << 20))
    ///     .build()?;
    /// assert!(matches!(ex.submit(hoard, ())?.result(), Err(PoolError::MemoryLimit { .. })));
    /// # Ok::<(), PoolError>(())
    /// ```
    pub fn limits(mut self, limits: crate::Limits) -> Self {
        self.pool = self.pool.limits(limits);
        self
    }

    /// Stop any task that runs longer than `timeout`: its worker is killed and replaced, and
    /// its future fails with [`PoolError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::builder()
    ///     .max_workers(1)
    ///     .task_timeout(Duration::from_millis(100))
    ///     .build()?;
    /// let slow = ex.submit(nap, 10_000)?;
    /// assert!(matches!(slow.result(), Err(multiproc::PoolError::Timeout { .. })));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.pool = self.pool.task_timeout(timeout);
        self
    }

    /// Where the workers run (feature `mpi`): MPI ranks or local processes; by default MPI
    /// ranks under an MPI launcher with more than one rank (see [`mpi`](crate::mpi)).
    ///
    /// ```
    /// use multiproc::mpi::Backend;
    /// fn double(x: u64) -> u64 { 2 * x }
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(1).backend(Backend::Local).build()?;
    /// assert_eq!(ex.submit(double, 21)?.result()?, 42);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "mpi")]
    pub fn backend(mut self, backend: crate::pool::mpi::Backend) -> Self {
        self.pool = self.pool.backend(backend);
        self
    }

    /// Start the workers.
    ///
    /// ```
    /// let ex = multiproc::ProcessPoolExecutor::builder().build()?;
    /// assert_eq!(ex.max_workers(), multiproc::cpu_count());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn build(self) -> Result<ProcessPoolExecutor, PoolError> {
        let config = self
            .pool
            .into_config(Some(WINDOW_PER_WORKER), "ProcessPoolExecutorWorker")?;
        Ok(ProcessPoolExecutor {
            engine: Arc::new(Engine::start(config)?),
        })
    }
}

/// A pool of worker processes that runs submitted calls and hands back [`PoolFuture`]s
/// (Python's `concurrent.futures.ProcessPoolExecutor`).
///
/// Dropping it is `shutdown(wait = true)`, like leaving Python's `with` block: the submitted
/// work finishes first. [`terminate`](ProcessPoolExecutor::terminate) stops at once.
///
/// ```
/// use multiproc::{ProcessPoolExecutor, as_completed};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> Result<(), multiproc::PoolError> {
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = (0..5).map(|x| ex.submit(square, x)).collect::<Result<Vec<_>, _>>()?;
/// let mut squares = Vec::new();
/// for done in as_completed(futures, None) {
///     squares.push(done?.result()?);
/// }
/// squares.sort();
/// assert_eq!(squares, [0, 1, 4, 9, 16]);
/// # Ok(())
/// # }
/// ```
pub struct ProcessPoolExecutor {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.max_workers())
            .field("running", &self.engine.is_running())
            .finish()
    }
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` worker processes (at least one; 0 is an error).
    ///
    /// ```
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// assert_eq!(ex.max_workers(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor, PoolError> {
        ExecutorBuilder::default().max_workers(max_workers).build()
    }

    /// Settings: start method, initializer, `max_tasks_per_child`, task timeout.
    ///
    /// ```
    /// let ex = multiproc::ProcessPoolExecutor::builder().max_workers(1).build()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn builder() -> ExecutorBuilder {
        ExecutorBuilder::default()
    }

    /// The number of workers.
    ///
    /// ```
    /// assert_eq!(multiproc::ProcessPoolExecutor::new(2)?.max_workers(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn max_workers(&self) -> usize {
        self.engine.processes()
    }

    /// Pids of the workers alive now.
    ///
    /// ```
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// assert_eq!(ex.pids().len(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.engine.pids()
    }

    /// Run `f(arg)` in a worker; the [`PoolFuture`] gives the result. For several
    /// arguments, take a tuple. [`PoolError::Closed`] after
    /// [`shutdown`](ProcessPoolExecutor::shutdown).
    ///
    /// ```
    /// fn add((a, b): (i32, i32)) -> i32 { a + b }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let sum = ex.submit(add, (2, 3))?;
    /// assert_eq!(sum.result()?, 5);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<PoolFuture<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let (id, cell) = submit_one(&self.engine, f, arg)?;
        Ok(PoolFuture {
            cell,
            id,
            engine: Arc::downgrade(&self.engine),
        })
    }

    /// `f` on every item, submitted now; the results in input order as they become
    /// available (Python's `executor.map`). Each item is its own task.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// let squares: Vec<u64> = ex.map(square, 0..4)?.collect::<Result<_, _>>()?;
    /// assert_eq!(squares, [0, 1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<ExecutorMap<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_chunked(f, items, 1, None)
    }

    /// [`map`](ProcessPoolExecutor::map) with a time limit, counted from this call: a result
    /// not there by then is an `Err(`[`PoolError::ResultTimeout`]`)`, which ends the
    /// iteration and cancels the tasks that have not started (Python's `map(timeout=)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let mut results = ex.map_timeout(nap, [1, 5_000], Duration::from_millis(500))?;
    /// assert_eq!(results.next().unwrap()?, 1);
    /// assert!(matches!(results.next(), Some(Err(multiproc::PoolError::ResultTimeout))));
    /// assert!(results.next().is_none());
    /// ex.terminate();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map_timeout<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        timeout: Duration,
    ) -> Result<ExecutorMap<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_chunked(f, items, 1, Some(timeout))
    }

    /// [`map`](ProcessPoolExecutor::map) sending `chunksize` items per task (Python's
    /// `chunksize`; larger chunks cost less per item), with an optional time limit as in
    /// [`map_timeout`](ProcessPoolExecutor::map_timeout). A `chunksize` of 0 is
    /// [`PoolError::InvalidArgument`] (Python's `ValueError`).
    ///
    /// ```
    /// fn double(x: u32) -> u32 { 2 * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// let doubled: Vec<u32> = ex.map_chunked(double, 0..1000, 100, None)?.collect::<Result<_, _>>()?;
    /// assert_eq!(doubled[999], 1998);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        timeout: Option<Duration>,
    ) -> Result<ExecutorMap<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        if chunksize == 0 {
            return Err(crate::pool::zero_chunksize());
        }
        let deadline = crate::deadline::after_opt(timeout);
        let items: Vec<A> = items.into_iter().collect();
        let task = Chunks::<Call<A, R>>::new(f);
        // All encoded before any is submitted: an item that cannot be sent fails the call.
        let payloads = items
            .chunks(chunksize)
            .map(|chunk| task.payload(chunk).map(|payload| (payload, chunk.len())))
            .collect::<Result<Vec<_>, String>>()
            .map_err(PoolError::Failed)?;
        drop(items);
        let code = task.code();
        let mut map = ExecutorMap {
            chunks: VecDeque::with_capacity(payloads.len()),
            buffer: VecDeque::new(),
            deadline,
            engine: Arc::downgrade(&self.engine),
            progress: Progress::default(),
            len: payloads.iter().map(|(_, n)| *n as u64).sum(),
        };
        for (payload, n) in payloads {
            let cell = Arc::new(ResultCell::new());
            let done = cell.clone();
            let sink: Sink = Box::new(move |delivery| {
                done.complete(Ok(decode_chunk::<R>(delivery, n).into_items(n)));
            });
            // On failure the map drops and cancels what was submitted.
            let id = self.engine.submit(code, payload, n as u32, sink, false)?;
            map.chunks.push_back((id, cell));
        }
        Ok(map)
    }

    /// Take no more work (Python's `shutdown`). With `cancel_futures`, tasks that have not
    /// started are cancelled (their futures fail with [`PoolError::Cancelled`]). With
    /// `wait`, return once the other tasks are done and the workers have exited; without,
    /// at once (the work goes on; dropping the executor waits for it).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(square, 3)?;
    /// ex.shutdown(true, false);
    /// assert_eq!(f.result()?, 9);
    /// assert!(matches!(ex.submit(square, 4), Err(multiproc::PoolError::Closed)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_futures: bool) {
        self.engine.close();
        if cancel_futures {
            for sink in self.engine.cancel_queued() {
                deliver(sink, Delivery::Failed(PoolError::Cancelled));
            }
        }
        if wait && !self.engine.on_pool_thread() {
            self.engine.join();
        }
    }

    /// Stop now: kill the workers; futures not done fail with [`PoolError::Terminated`]
    /// (Python has no equivalent: its workers cannot be stopped mid-task).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let slow = ex.submit(nap, 60_000)?;
    /// ex.terminate();
    /// assert!(matches!(slow.result(), Err(multiproc::PoolError::Terminated)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn terminate(&self) {
        self.engine.terminate();
    }

    /// Stop every worker with `SIGTERM` now (Python 3.14's `terminate_workers`); a worker
    /// still there a second later is killed. The executor is shut down: futures not done
    /// fail with [`PoolError::Terminated`], and it takes no more work.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let slow = ex.submit(nap, 60_000)?;
    /// ex.terminate_workers();
    /// assert!(matches!(slow.result(), Err(multiproc::PoolError::Terminated)));
    /// assert!(ex.pids().is_empty());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn terminate_workers(&self) {
        self.engine.terminate_gently();
    }

    /// Stop every worker with `SIGKILL` now (Python 3.14's `kill_workers`): as
    /// [`terminate`](ProcessPoolExecutor::terminate).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let slow = ex.submit(nap, 60_000)?;
    /// ex.kill_workers();
    /// assert!(matches!(slow.result(), Err(multiproc::PoolError::Terminated)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn kill_workers(&self) {
        self.engine.terminate();
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        if self.engine.on_pool_thread() {
            // Dropped in a callback: the collector is this thread, so waiting here would
            // wait for itself. The work still finishes; a helper thread waits for it.
            self.engine.close();
            let engine = self.engine.clone();
            let waiter =
                crate::library_thread::spawn("multiproc-executor-shutdown", move || engine.join());
            if waiter.is_ok() {
                return;
            }
        }
        self.shutdown(true, false);
    }
}

/// The result of a task submitted to a [`ProcessPoolExecutor`] (Python's
/// `concurrent.futures.Future`). Wait for it with [`result`](PoolFuture::result), or
/// `.await` it: it is a [`std::future::Future`], so an async program waits without
/// blocking its runtime.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let ex = multiproc::ProcessPoolExecutor::new(1)?;
/// let f = ex.submit(square, 6)?;
/// f.wait();
/// assert!(f.done());
/// assert!(f.error().is_none());
/// assert_eq!(f.result()?, 36);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
///
/// Dropping a `PoolFuture` does not cancel its task (as in Python): the task runs and its
/// result is dropped, so `ex.submit(f, x)?;` alone is fire-and-forget. Use
/// [`cancel`](PoolFuture::cancel) (queued tasks) or [`kill`](PoolFuture::kill) (any task)
/// to stop it.
pub struct PoolFuture<R> {
    cell: Arc<ResultCell<R>>,
    id: u64,
    engine: Weak<Engine>,
}

impl<R> std::fmt::Debug for PoolFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.cancelled() {
            "cancelled"
        } else if self.done() {
            "finished"
        } else if self.running() {
            "running"
        } else {
            "pending"
        };
        f.debug_struct("PoolFuture")
            .field("id", &self.id)
            .field("state", &state)
            .finish()
    }
}

impl<R> PoolFuture<R> {
    /// The task's number in its executor (in submission order; tells futures apart, e.g.
    /// those [`as_completed`] hands back).
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let (a, b) = (ex.submit(one, ())?, ex.submit(one, ())?);
    /// assert!(a.id() < b.id());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether it finished (with a value, an error, or cancelled).
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(one, ())?;
    /// f.wait();
    /// assert!(f.done());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn done(&self) -> bool {
        self.cell.is_ready()
    }

    /// Whether a worker has taken it and it is not done (it can no longer be cancelled).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 300)?;
    /// std::thread::sleep(std::time::Duration::from_millis(100));
    /// assert!(f.running());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn running(&self) -> bool {
        !self.done()
            && self
                .engine
                .upgrade()
                .is_some_and(|engine| !engine.is_queued(self.id))
    }

    /// Whether it was cancelled.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let _busy: Vec<_> = (0..4).map(|_| ex.submit(nap, 200)).collect::<Result<_, _>>()?;
    /// let last = ex.submit(nap, 200)?;
    /// assert!(last.cancel());
    /// assert!(last.cancelled());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cell.error_is(|e| matches!(e, PoolError::Cancelled))
    }

    /// Cancel it if no worker has taken it yet; `true` if it is (now or already) cancelled,
    /// `false` if it runs or is done. A cancelled future's result is
    /// [`PoolError::Cancelled`].
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let first = ex.submit(nap, 300)?;
    /// let queued: Vec<_> = (0..5).map(|_| ex.submit(nap, 1)).collect::<Result<_, _>>()?;
    /// assert!(queued.last().unwrap().cancel());
    /// std::thread::sleep(std::time::Duration::from_millis(100));
    /// assert!(!first.cancel()); // running
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.done() {
            return self.cancelled();
        }
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        match engine.cancel(self.id) {
            Some(sink) => {
                deliver(sink, Delivery::Failed(PoolError::Cancelled));
                true
            }
            None => false,
        }
    }

    /// Stop the task now, queued or running: the worker running it is killed and replaced,
    /// and the result is [`PoolError::Killed`]. `true` if it was not done yet. (Python's
    /// futures cannot do this.)
    ///
    /// ```
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(spin, ())?;
    /// assert!(f.kill());
    /// assert!(matches!(f.result(), Err(multiproc::PoolError::Killed)));
    /// assert_eq!(ex.submit(one, ())?.result()?, 1); // a new worker took its place
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn kill(&self) -> bool {
        !self.done()
            && self
                .engine
                .upgrade()
                .is_some_and(|engine| engine.kill(&[self.id]))
    }

    /// Wait until it is done.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// ex.submit(one, ())?.wait();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait(&self) {
        self.cell.wait_until(None);
    }

    /// Wait at most `timeout`; `true` if it is done.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 500)?;
    /// assert!(!f.wait_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait_until(crate::deadline::after(timeout))
    }

    /// Wait for the result and take it: the value, or why there is none (the task's panic
    /// with its message, location and backtrace, its worker's death, a timeout,
    /// cancellation).
    ///
    /// ```
    /// fn boom(_: ()) -> u8 { panic!("no luck") }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let err = ex.submit(boom, ())?.result().unwrap_err();
    /// assert!(err.to_string().contains("no luck"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result(self) -> Result<R, PoolError> {
        self.cell.wait_and_take(None)
    }

    /// Wait at most `timeout` for the result (Python's `result(timeout)`):
    /// [`PoolError::ResultTimeout`] if it is not there (the task goes on; use
    /// [`wait_timeout`](PoolFuture::wait_timeout) to keep the future).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 500)?;
    /// assert!(matches!(f.result_timeout(std::time::Duration::from_millis(10)), Err(multiproc::PoolError::ResultTimeout)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result_timeout(self, timeout: Duration) -> Result<R, PoolError> {
        self.cell.wait_and_take(Some(timeout))
    }

    /// Wait until it is done; a copy of its error if it failed (Python's `exception()`).
    ///
    /// ```
    /// fn boom(_: ()) { panic!("bad input") }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(boom, ())?;
    /// assert!(matches!(f.error(), Some(multiproc::PoolError::Panicked(_))));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn error(&self) -> Option<PoolError> {
        self.cell.wait_until(None);
        self.cell.error()
    }

    /// Call `f` with the outcome once it is done (Python's `add_done_callback`): in the
    /// executor's result thread, or at once in this thread if it is done already.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// ex.submit(square, 5)?.add_done_callback(move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&Result<R, PoolError>) + Send + 'static) {
        self.cell.on_complete(Box::new(f));
    }
}

/// `.await` gives the result, as [`result`](PoolFuture::result) does, without blocking the
/// runtime's thread.
impl<R> std::future::Future for PoolFuture<R> {
    type Output = Result<R, PoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_take(cx)
    }
}

type ChunkCell<R> = ResultCell<Vec<Result<R, PoolError>>>;

/// The iterator of [`ProcessPoolExecutor::map`]: one `Result` per item, in input order.
/// Dropping it cancels the tasks that have not started.
pub struct ExecutorMap<R> {
    /// Each task's id and where its items' results land.
    chunks: VecDeque<(u64, Arc<ChunkCell<R>>)>,
    buffer: VecDeque<Result<R, PoolError>>,
    deadline: Option<Instant>,
    engine: Weak<Engine>,
    progress: Progress,
    /// The number of items, for the progress bar.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    len: u64,
}

impl<R> std::fmt::Debug for ExecutorMap<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorMap")
            .field("tasks_left", &self.chunks.len())
            .finish()
    }
}

impl<R> ExecutorMap<R> {
    /// Draw a progress bar (count, rate, ETA) on stderr while iterating, if stderr is a
    /// terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// let total: u64 = ex.map(square, 0..100)?.progress().map(Result::unwrap).sum();
    /// assert_eq!(total, 328_350);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self) -> Self {
        self.progress = Progress::new(Some(self.len));
        self
    }

    fn cancel_rest(&mut self) {
        let chunks = std::mem::take(&mut self.chunks);
        if let Some(engine) = self.engine.upgrade() {
            for (id, _) in chunks {
                if let Some(sink) = engine.cancel(id) {
                    deliver(sink, Delivery::Failed(PoolError::Cancelled));
                }
            }
        }
    }
}

impl<R> Iterator for ExecutorMap<R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                self.progress.inc(1);
                return Some(item);
            }
            let (_, cell) = self.chunks.front()?;
            if !cell.wait_until(self.deadline) {
                self.cancel_rest();
                self.progress.finish();
                return Some(Err(PoolError::ResultTimeout));
            }
            let results = cell.take();
            self.chunks.pop_front();
            match results {
                Ok(items) => self.buffer.extend(items),
                Err(e) => self.buffer.push_back(Err(e)),
            }
            if self.chunks.is_empty() && self.buffer.len() <= 1 {
                self.progress.finish();
            }
        }
    }
}

impl<R> Drop for ExecutorMap<R> {
    fn drop(&mut self) {
        self.cancel_rest();
    }
}

/// The futures in the order they finish (Python's `concurrent.futures.as_completed`); with
/// a `timeout` (counted from this call), an `Err(`[`PoolError::ResultTimeout`]`)` when it
/// runs out, which ends the iteration (the unfinished futures: see
/// [`AsCompleted::into_pending`]).
///
/// ```
/// use multiproc::{ProcessPoolExecutor, as_completed};
/// use std::time::Duration;
///
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = vec![ex.submit(nap, 300)?, ex.submit(nap, 10)?];
/// let order: Vec<u64> = as_completed(futures, None).map(|f| f?.result()).collect::<Result<_, _>>()?;
/// assert_eq!(order, [10, 300]);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
pub fn as_completed<R>(
    futures: impl IntoIterator<Item = PoolFuture<R>>,
    timeout: Option<Duration>,
) -> AsCompleted<R> {
    let deadline = crate::deadline::after_opt(timeout);
    let futures: Vec<Option<PoolFuture<R>>> = futures.into_iter().map(Some).collect();
    let watch = Arc::new(Watch::default());
    for (key, f) in futures.iter().enumerate() {
        if let Some(f) = f {
            f.cell.watch(&watch, key);
        }
    }
    AsCompleted {
        left: futures.len(),
        futures,
        watch,
        deadline,
        timed_out: false,
        progress: Progress::default(),
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<R> {
    futures: Vec<Option<PoolFuture<R>>>,
    watch: Arc<Watch>,
    left: usize,
    deadline: Option<Instant>,
    timed_out: bool,
    progress: Progress,
}

impl<R> std::fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish()
    }
}

impl<R> AsCompleted<R> {
    /// Draw a progress bar (count, rate, ETA) on stderr while iterating, if stderr is a
    /// terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(2)?;
    /// let futures = (0..10).map(|x| ex.submit(square, x)).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(multiproc::as_completed(futures, None).progress().count(), 10);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self) -> Self {
        self.progress = Progress::new(Some(self.left as u64));
        self
    }

    /// The futures not handed out yet (unfinished ones, after a timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let futures = vec![ex.submit(nap, 2_000)?];
    /// let mut waiting = multiproc::as_completed(futures, Some(Duration::from_millis(20)));
    /// assert!(waiting.next().unwrap().is_err());
    /// let rest = waiting.into_pending();
    /// assert_eq!(rest.len(), 1);
    /// ex.terminate();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn into_pending(mut self) -> Vec<PoolFuture<R>> {
        let futures = std::mem::take(&mut self.futures);
        let rest: Vec<PoolFuture<R>> = futures.into_iter().flatten().collect();
        for f in &rest {
            f.cell.unwatch(&self.watch);
        }
        rest
    }
}

impl<R> Iterator for AsCompleted<R> {
    type Item = Result<PoolFuture<R>, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.left > 0 && !self.timed_out {
            let Some(key) = self.watch.next(self.deadline) else {
                self.timed_out = true;
                self.progress.finish();
                return Some(Err(PoolError::ResultTimeout));
            };
            if let Some(f) = self.futures.get_mut(key).and_then(Option::take) {
                self.left -= 1;
                self.progress.inc(1);
                if self.left == 0 {
                    self.progress.finish();
                }
                return Some(Ok(f));
            }
        }
        None
    }
}

impl<R> Drop for AsCompleted<R> {
    fn drop(&mut self) {
        for f in self.futures.iter().flatten() {
            f.cell.unwatch(&self.watch);
        }
    }
}

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any future is done (or cancelled).
    FirstCompleted,
    /// As soon as any future fails (not counting cancelled ones), or when all are done.
    FirstException,
    /// When all are done.
    #[default]
    AllCompleted,
}

/// What [`wait`] found: the futures done and those not done, each in the given order, each
/// future once (even if it was given more than once).
#[derive(Debug)]
pub struct Waited<'a, R> {
    /// Done: finished, failed or cancelled.
    pub done: Vec<&'a PoolFuture<R>>,
    /// Not done when `wait` returned.
    pub not_done: Vec<&'a PoolFuture<R>>,
}

/// Wait for some or all of `futures` (Python's `concurrent.futures.wait`), at most
/// `timeout`; what is done and what is not.
///
/// ```
/// use multiproc::executor::{ProcessPoolExecutor, ReturnWhen, wait};
/// use std::time::Duration;
///
/// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
///
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = vec![ex.submit(nap, 10)?, ex.submit(nap, 2_000)?];
/// let first = wait(&futures, None, ReturnWhen::FirstCompleted);
/// assert_eq!((first.done.len(), first.not_done.len()), (1, 1));
/// let all = wait(&futures, Some(Duration::from_secs(30)), ReturnWhen::AllCompleted);
/// assert_eq!(all.done.len(), 2);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
pub fn wait<'a, R: 'a>(
    futures: impl IntoIterator<Item = &'a PoolFuture<R>>,
    timeout: Option<Duration>,
    return_when: ReturnWhen,
) -> Waited<'a, R> {
    let deadline = crate::deadline::after_opt(timeout);
    // A future given twice counts once (Python returns sets).
    let mut seen = std::collections::HashSet::new();
    let futures: Vec<&PoolFuture<R>> = futures
        .into_iter()
        .filter(|f| seen.insert(Arc::as_ptr(&f.cell)))
        .collect();
    // Every future reports its completion to the watch exactly once (at once if done):
    // count them as they come, O(1) each.
    let watch = Arc::new(Watch::default());
    for (key, f) in futures.iter().enumerate() {
        f.cell.watch(&watch, key);
    }
    let mut done = 0;
    loop {
        let enough = match return_when {
            ReturnWhen::FirstCompleted => done > 0 || futures.is_empty(),
            ReturnWhen::FirstException | ReturnWhen::AllCompleted => done == futures.len(),
        };
        if enough {
            break;
        }
        let Some(key) = watch.next(deadline) else {
            break;
        };
        done += 1;
        let f = futures[key];
        if return_when == ReturnWhen::FirstException
            && f.cell.failed() == Some(true)
            && !f.cancelled()
        {
            break;
        }
    }
    for f in &futures {
        f.cell.unwatch(&watch);
    }
    let (done, not_done) = futures.into_iter().partition(|f| f.done());
    Waited { done, not_done }
}
