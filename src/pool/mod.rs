//! Process pools: [`Pool`] (Python's `multiprocessing.Pool`).
//!
//! A pool keeps `n` worker processes and runs functions on them: `map`, `imap`,
//! `imap_unordered`, `starmap`, `apply` and their `_async` forms. Work travels as *chunks*
//! of items through a shared-memory ring that every worker takes from (see `engine.rs`);
//! results come back through a second ring to a collector thread in the parent.
//!
//! # Failures stay local
//! - A task that panics fails only itself: its result is [`PoolError::Panicked`] with the
//!   message, location and backtrace from the worker; the other tasks go on.
//! - A worker that dies (killed, aborted, a segfault in native code) never hangs the pool:
//!   the item it was running fails with [`PoolError::WorkerDied`] naming the signal, a new
//!   worker takes its place, and every other item completes. Items of the same chunk that
//!   had not run are run by another worker; items of that chunk that had *finished* are run
//!   again, because their results died with the worker (use a chunk size of 1 for at most
//!   one run per item).
//! - With [`PoolBuilder::task_timeout`], an item running longer is stopped by killing its
//!   worker (which is replaced) and fails with [`PoolError::Timeout`]. An item that panicked
//!   is reported as the panic however long its report takes (a backtrace is captured only
//!   when `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE` ask, and resolving it is slow).
//! - A result whose `Deserialize` fails or panics in the parent fails only its task, with
//!   [`PoolError::ResultDecode`]; callbacks that panic lose nothing either.
//! - With [`PoolBuilder::limits`], a task that takes its worker past the memory or CPU-time
//!   limit fails alone with [`PoolError::MemoryLimit`] or [`PoolError::CpuLimit`], and the
//!   worker is replaced; [`PoolBuilder::max_memory_per_child`] retires a worker that has grown
//!   past a resident size after a task, keeping the task's result.
//! - [`AsyncResult::kill`] stops one task (killing and replacing its worker) without
//!   terminating the pool.
//!
//! # Tasks
//! A task is a function pointer, `fn(A) -> R`: a function item or a closure that captures
//! nothing (a worker is another process, which finds the function in its own copy of the
//! program). A closure that captures a variable is refused where it is passed, by the type
//! checker ("closures can only be coerced to `fn` types if they do not capture any
//! variables"). The task's data goes in the items, which like the results are any serde
//! types; [`apply_async!`](crate::apply_async!) puts named variables there for you.

mod cell;
pub(crate) mod engine;
pub(crate) mod progress;
pub(crate) mod worker;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handle;
use crate::process::{LimitError, Limits, RemotePanic, StartMethod};
pub(crate) use cell::{ResultCell, Watch};
pub(crate) use engine::{Delivery, Engine, EngineConfig, Sink, deliver};
use progress::Progress;
pub use worker::StarArgs;
use worker::{Apply, Call, ChunkOutput, Chunks, Code, InitCode, ItemFailure, StarCall};

/// Why a pool task (or the pool) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The task panicked in its worker.
    #[error(
        "the task panicked in worker '{}' (pid {}){}: {}",
        .0.process_name,
        .0.pid,
        .0.location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default(),
        .0.message
    )]
    Panicked(Box<RemotePanic>),
    /// The worker running the task died. `signal` or `exit_code` tells how, as
    /// [`ProcessError::Signaled`](crate::ProcessError::Signaled) and
    /// [`ProcessError::Exited`](crate::ProcessError::Exited) do; `cause` says it in words.
    ///
    /// ```
    /// fn abort(_: ()) { std::process::abort() }
    /// let pool = multiproc::Pool::new(1)?;
    /// match pool.apply(abort, ()) {
    ///     Err(multiproc::PoolError::WorkerDied { signal, signal_name, exit_code, .. }) => {
    ///         assert_eq!((signal, signal_name, exit_code), (Some(6), Some("SIGABRT"), None));
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[error("worker '{name}' (pid {pid}) died while running this task: {cause}")]
    #[non_exhaustive]
    WorkerDied {
        /// The worker's process name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The signal that ended it, if one did (e.g. 9).
        signal: Option<i32>,
        /// That signal's conventional name (e.g. "SIGKILL").
        signal_name: Option<&'static str>,
        /// Its exit code, if it exited.
        exit_code: Option<i32>,
        /// How it ended, in words, e.g. "killed by signal 9 (SIGKILL)".
        cause: String,
    },
    /// The task's worker went past its CPU-time limit ([`Limits::cpu_time`], set with
    /// [`PoolBuilder::limits`]) while running it; the worker was replaced and the pool goes
    /// on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{Limits, Pool, PoolError};
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// let pool = Pool::builder().processes(1).limits(Limits::new().cpu_time(Duration::from_secs(1))).build()?;
    /// assert!(matches!(pool.apply(spin, ()), Err(PoolError::CpuLimit { .. })));
    /// # Ok::<(), PoolError>(())
    /// ```
    #[error(
        "worker '{name}' (pid {pid}) used up its CPU-time limit of {limit:?} while running this \
         task (it was replaced); raise the limit or give the task less work"
    )]
    CpuLimit {
        /// The worker's process name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The workers' CPU-time limit.
        limit: Duration,
    },
    /// An allocation failed under the worker's memory limit ([`Limits::memory`], set with
    /// [`PoolBuilder::limits`]) while it ran this task; the worker was replaced and the pool
    /// goes on.
    ///
    /// ```
    /// use multiproc::{Limits, Pool, PoolError};
    /// fn hoard(_: ()) { let mut v: Vec<Vec<u8>> = Vec::new(); loop { v.push(vec![7; 1 << 20]) } }
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = Pool::builder().processes(1).limits(Limits::new().memory(512 << 20)).build()?;
    /// assert!(matches!(pool.apply(hoard, ()), Err(PoolError::MemoryLimit { .. })));
    /// assert_eq!(pool.apply(one, ())?, 1);
    /// # Ok::<(), PoolError>(())
    /// ```
    #[error(
        "worker '{name}' (pid {pid}) ran out of memory under its limit of {limit} bytes while \
         running this task (it was replaced); raise the limit or make the task use less"
    )]
    MemoryLimit {
        /// The worker's process name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The workers' memory (address-space) limit in bytes.
        limit: u64,
    },
    /// The workers' [`Limits`] cannot be put in place (refused when the pool is built, or
    /// by the first worker): the pool accepts no work.
    ///
    /// ```
    /// use multiproc::{Limits, Pool, PoolError};
    /// let refused = Pool::builder().limits(Limits::new().nice(-21)).build();
    /// assert!(matches!(refused, Err(PoolError::Limits(_))));
    /// ```
    #[error("the pool's worker limits: {0}")]
    Limits(LimitError),
    /// The task was stopped by [`AsyncResult::kill`] or
    /// [`PoolFuture::kill`](crate::PoolFuture::kill): its worker was killed and replaced
    /// (or it had not started).
    #[error("the task was killed on request")]
    Killed,
    /// The task's result reached the parent but could not be decoded there (its
    /// `Deserialize` failed or panicked); the pool goes on.
    #[error("a task's result could not be decoded: {message}")]
    ResultDecode {
        /// What went wrong.
        message: String,
    },
    /// An argument is out of range, e.g. a chunk size of 0 (Python's `ValueError`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The task ran longer than the pool's task timeout; its worker was killed and replaced.
    #[error("task timed out after {after:?}; worker '{name}' (pid {pid}) was killed and replaced")]
    Timeout {
        /// The pool's task timeout.
        after: Duration,
        /// The worker's process name.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// The pool's initializer failed in a worker; the pool accepts no more work.
    #[error("the pool's initializer failed: {0}")]
    InitializerFailed(Box<RemotePanic>),
    /// The pool was closed or terminated: it takes no new work.
    #[error("the pool is not running (closed or terminated)")]
    Closed,
    /// The pool was terminated before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// `join` was called on a pool that is still running (call `close` or `terminate`).
    #[error("join() needs close() or terminate() first")]
    StillRunning,
    /// `join` was called from a callback, which runs in the pool's own result thread: it
    /// would wait for itself.
    #[error("join() cannot be called from a pool callback (it would wait for itself)")]
    JoinFromCallback,
    /// The task was cancelled before it started.
    #[error("the task was cancelled")]
    Cancelled,
    /// The result was not ready within the timeout.
    #[error("timed out waiting for the result")]
    ResultTimeout,
    /// The task could not run: its items or result could not be encoded or decoded, or the
    /// pool could not start a worker.
    #[error("{0}")]
    Failed(String),
    /// The MPI backend refused the pool or could not serve it (feature `mpi`).
    #[cfg(feature = "mpi")]
    #[error(transparent)]
    Mpi(#[from] crate::mpi::MpiError),
}

/// Settings for a new [`Pool`]: see [`Pool::builder`].
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let pool = multiproc::Pool::builder().processes(2).maxtasksperchild(100).build()?;
/// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    start_method: Option<StartMethod>,
    init: Option<Result<(InitCode, Vec<u8>), String>>,
    max_tasks: u64,
    max_memory: u64,
    limits: Limits,
    timeout: Option<Duration>,
    #[cfg(feature = "mpi")]
    backend: crate::mpi::Backend,
}

impl PoolBuilder {
    /// Where the workers run (feature `mpi`): MPI ranks or local processes; by default MPI
    /// ranks under an MPI launcher with more than one rank (see [`crate::mpi`]).
    ///
    /// ```
    /// use multiproc::mpi::Backend;
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::builder().processes(2).backend(Backend::Local).build()?;
    /// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "mpi")]
    pub fn backend(mut self, backend: crate::mpi::Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The number of worker processes (default: [`cpu_count`](crate::cpu_count)); 0 is an
    /// error at [`build`](PoolBuilder::build), as in Python.
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// How workers are started (default: the program-wide start method).
    ///
    /// ```
    /// use multiproc::StartMethod;
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::builder().processes(1).start_method(StartMethod::Spawn).build()?;
    /// assert_eq!(pool.apply(one, ())?, 1);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Run `f(arg)` once in every worker before it takes work (Python's `initializer`).
    /// If it panics, the pool fails every task with [`PoolError::InitializerFailed`].
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// static BASE: AtomicU64 = AtomicU64::new(0);
    /// fn setup(base: u64) { BASE.store(base, Ordering::Relaxed); }
    /// fn add_base(x: u64) -> u64 { BASE.load(Ordering::Relaxed) + x }
    ///
    /// let pool = multiproc::Pool::builder().processes(2).initializer(setup, 100).build()?;
    /// assert_eq!(pool.map(add_base, [1, 2])?, [101, 102]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        self.init = Some(worker::initializer(f, &arg));
        self
    }

    /// Replace each worker after it has run `n` chunks (Python's `maxtasksperchild`;
    /// 0, the default: never).
    ///
    /// ```
    /// fn pid(_: u32) -> u32 { std::process::id() }
    /// let pool = multiproc::Pool::builder().processes(1).maxtasksperchild(1).build()?;
    /// let pids = pool.chunksize(1).map(pid, 0..3)?;
    /// assert!(pids[0] != pids[1] && pids[1] != pids[2]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.max_tasks = n;
        self
    }

    /// Replace each worker whose resident memory is `bytes` or more after a chunk
    /// (billiard's `max_memory_per_child`, in bytes here; 0, the default: never). The
    /// chunk's results are kept; the worker exits and a new one takes its place, so a task
    /// that leaks cannot make its worker grow without bound.
    ///
    /// ```
    /// fn leak(mib: usize) -> u32 {
    ///     std::hint::black_box(Box::leak(vec![1u8; mib << 20].into_boxed_slice()));
    ///     std::process::id()
    /// }
    /// let pool = multiproc::Pool::builder().processes(1).max_memory_per_child(64 << 20).build()?;
    /// let first = pool.apply(leak, 100)?; // kept, and its worker retired
    /// let second = pool.apply(leak, 0)?;
    /// assert_ne!(first, second);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn max_memory_per_child(mut self, bytes: u64) -> Self {
        self.max_memory = bytes;
        self
    }

    /// Resource limits for every worker (memory, CPU time, open files, nice value; see
    /// [`Limits`]), set in each worker before it takes work. A task that takes its worker
    /// past the memory or CPU limit fails alone with [`PoolError::MemoryLimit`] or
    /// [`PoolError::CpuLimit`], and a new worker takes the old one's place. The limits are
    /// per worker process, counting every task it ran: a CPU-time limit is a budget for
    /// the worker's life (combine with [`maxtasksperchild`](Self::maxtasksperchild)).
    ///
    /// ```
    /// use multiproc::Limits;
    /// fn nice(_: ()) -> String {
    ///     let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    ///     stat.rsplit(')').next().unwrap().split_whitespace().nth(16).unwrap().to_string()
    /// }
    /// let pool = multiproc::Pool::builder().processes(1).limits(Limits::new().nice(19)).build()?;
    /// assert_eq!(pool.apply(nice, ())?, "19");
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Stop any item that runs longer than `timeout`: its worker is killed and replaced,
    /// and the item fails with [`PoolError::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let pool = multiproc::Pool::builder().processes(1).task_timeout(Duration::from_millis(200)).build()?;
    /// assert!(matches!(pool.apply(nap, 10_000), Err(multiproc::PoolError::Timeout { .. })));
    /// assert_eq!(pool.apply(nap, 1)?, 1); // the pool goes on with a new worker
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Start the workers.
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().build()?;
    /// assert_eq!(pool.processes(), multiproc::cpu_count());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn build(self) -> Result<Pool, PoolError> {
        let engine = Engine::start(self.into_config(None, "PoolWorker")?)?;
        Ok(Pool {
            engine: Arc::new(engine),
        })
    }

    /// The engine's settings; `window`: most orders in the task ring at once, as a multiple
    /// of the number of workers, plus one (`None`: no limit, nothing waits in the parent).
    pub(crate) fn into_config(
        self,
        window: Option<usize>,
        prefix: &'static str,
    ) -> Result<EngineConfig, PoolError> {
        let init = self.init.transpose().map_err(PoolError::Failed)?;
        self.limits.check().map_err(PoolError::Limits)?;
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(PoolError::Failed(
                "the number of worker processes must be at least 1".into(),
            ));
        }
        #[cfg(feature = "mpi")]
        let (processes, remote) = match crate::mpi::remote_for(self.backend, self.start_method)? {
            // On MPI the job's size decides: every worker rank, unless fewer were asked for.
            Some((remote, ranks)) => (self.processes.map_or(ranks, |n| n.min(ranks)), Some(remote)),
            None => (processes, None),
        };
        #[cfg(not(feature = "mpi"))]
        let remote = None;
        Ok(EngineConfig {
            processes,
            start_method: self.start_method,
            init,
            max_tasks: self.max_tasks,
            max_memory: self.max_memory,
            limits: self.limits,
            timeout: self.timeout,
            window: window.map_or(usize::MAX, |per_worker| per_worker * processes + 1),
            prefix,
            remote,
        })
    }
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("start_method", &self.start_method)
            .field("initializer", &self.init.is_some())
            .field("maxtasksperchild", &self.max_tasks)
            .field("max_memory_per_child", &self.max_memory)
            .field("limits", &self.limits)
            .field("task_timeout", &self.timeout)
            .finish()
    }
}

/// Submit the call `f(arg)` as a chunk of one item: its id and where its result lands
/// (`apply_async` and the executor's `submit`).
pub(crate) fn submit_one<A, R>(
    engine: &Engine,
    f: fn(A) -> R,
    arg: A,
) -> Result<(u64, Arc<ResultCell<R>>), PoolError>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let task = Chunks::<Call<A, R>>::new(f);
    let payload = task
        .payload(std::slice::from_ref(&arg))
        .map_err(PoolError::Failed)?;
    let cell = Arc::new(ResultCell::new());
    let done = cell.clone();
    let sink: Sink = Box::new(move |delivery| {
        let result = decode_chunk::<R>(delivery, 1)
            .into_items(1)
            .pop()
            .unwrap_or_else(|| Err(PoolError::Failed("a task's result is missing".into())));
        done.complete(result);
    });
    let id = engine.submit(task.code(), payload, 1, sink, false)?;
    Ok((id, cell))
}

/// Encode a value holding `T`s, which must not carry OS handles (they cannot go through the
/// rings; the error names `T`).
pub(crate) fn encode_plain<T: ?Sized>(
    value: &(impl Serialize + ?Sized),
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let fds = handle::encode(value, &mut out).map_err(|e| e.to_string())?;
    if !fds.is_empty() {
        return Err(format!(
            "a value of type {} carries OS handles, which cannot be sent to pool workers",
            std::any::type_name::<T>()
        ));
    }
    Ok(out)
}

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Dropping the pool terminates it, like leaving Python's `with Pool(...)` block; call
/// [`close`](Pool::close) and [`join`](Pool::join) to let the work finish first.
///
/// ```
/// use multiproc::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> Result<(), multiproc::PoolError> {
/// let pool = Pool::new(4)?;
/// assert_eq!(pool.map(square, 0..10)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// let pending = pool.apply_async(square, 12)?;
/// assert_eq!(pending.get()?, 144);
/// pool.close();
/// pool.join()?;
/// # Ok(())
/// # }
/// ```
pub struct Pool {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("running", &self.engine.is_running())
            .finish()
    }
}

impl Pool {
    /// A pool of `processes` workers (at least one; 0 is an error).
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        PoolBuilder::default().processes(processes).build()
    }

    /// Settings: start method, initializer, `maxtasksperchild`, task timeout.
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(1).build()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of workers.
    ///
    /// ```
    /// assert_eq!(multiproc::Pool::new(2)?.processes(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.engine.processes()
    }

    /// Pids of the workers alive now.
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.pids().len(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.engine.pids()
    }

    /// Map with a fixed chunk size instead of the default heuristic.
    ///
    /// ```
    /// fn double(x: i32) -> i32 { 2 * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.chunksize(1).map(double, [1, 2, 3])?, [2, 4, 6]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn chunksize(&self, chunksize: usize) -> MapWith<'_> {
        self.default_chunks().chunksize(chunksize)
    }

    /// Map with a progress bar on stderr (items done, rate, ETA), drawn only if stderr is
    /// a terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let squares = pool.progress().chunksize(100).map(square, 0..10_000)?;
    /// assert_eq!(squares[9_999], 99_980_001);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(&self) -> MapWith<'_> {
        self.default_chunks().progress()
    }

    fn default_chunks(&self) -> MapWith<'_> {
        MapWith {
            pool: self,
            chunksize: None,
            progress: false,
        }
    }

    /// Apply `f` to every item, in parallel; the results in input order. The first failed
    /// item (in input order) is the error, as Python's `map` raises it.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.map(square, vec![1, 2, 3])?, [1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().map(f, items)
    }

    /// Like [`map`](Pool::map), for functions of several arguments: each item is a tuple of
    /// them (Python's `starmap`). `f` is a closure that captures nothing, or a named function
    /// cast to its pointer type (`add as fn(i32, i32) -> i32`): Rust turns a function into a
    /// pointer only where it knows the pointer's type, and here the number of arguments comes
    /// from the items, which come after `f` (see [`StarArgs`]). The compiler's error for a
    /// bare `add` says so.
    ///
    /// ```
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.starmap(|a, b| add(a, b), [(1, 2), (3, 4)])?, [3, 7]);
    /// assert_eq!(pool.starmap(add as fn(i32, i32) -> i32, [(5, 6)])?, [11]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap<Args, R>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<R>, PoolError>
    where
        Args: StarArgs + Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().starmap(f, items)
    }

    /// [`map`](Pool::map) without waiting: an [`AsyncResult`] for the whole list.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let pending = pool.map_async(square, 0..3)?;
    /// assert_eq!(pending.get()?, [0, 1, 4]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().map_async(f, items)
    }

    /// [`starmap`](Pool::starmap) without waiting.
    ///
    /// ```
    /// fn mul(a: u8, b: u8) -> u16 { a as u16 * b as u16 }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.starmap_async(|a, b| mul(a, b), [(2, 3)])?.get()?, [6]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap_async<Args, R>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        Args: StarArgs + Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().starmap_async(f, items)
    }

    /// Run `f(arg)` in a worker and wait for the result.
    ///
    /// ```
    /// fn pid(_: ()) -> u32 { std::process::id() }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_ne!(pool.apply(pid, ())?, std::process::id());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Start `f(arg)` in a worker; the [`AsyncResult`] gives its result later.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let a = pool.apply_async(square, 3)?;
    /// let b = pool.apply_async(square, 4)?;
    /// assert_eq!(a.get()? + b.get()?, 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let (id, cell) = submit_one(&self.engine, f, arg)?;
        Ok(AsyncResult {
            cell,
            tasks: Tasks {
                engine: Arc::downgrade(&self.engine),
                ids: vec![id],
            },
        })
    }

    /// Apply `f` to every item lazily: items are taken from `items` as results are
    /// consumed (a bounded number of chunks in flight), so an endless iterator works.
    /// Results in input order, one `Result` per item. Chunk size 1 unless set with
    /// [`chunksize`](Pool::chunksize).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let first: Vec<u64> = pool.imap(square, 0..)?.take(4).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().imap(f, items)
    }

    /// Like [`imap`](Pool::imap), yielding results in the order they finish.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let mut all: Vec<u64> = pool.imap_unordered(square, 0..5)?.collect::<Result<_, _>>()?;
    /// all.sort();
    /// assert_eq!(all, [0, 1, 4, 9, 16]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap_unordered<'p, A, R>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.default_chunks().imap_unordered(f, items)
    }

    /// Take no more work; the workers exit once the work already given is done.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.close();
    /// assert!(matches!(pool.apply(one, ()), Err(multiproc::PoolError::Closed)));
    /// pool.join()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn close(&self) {
        self.engine.close();
    }

    /// Stop now: kill the workers; unfinished tasks fail with [`PoolError::Terminated`].
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let slow = pool.apply_async(nap, 60_000)?;
    /// pool.terminate();
    /// assert!(matches!(slow.get(), Err(multiproc::PoolError::Terminated)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn terminate(&self) {
        self.engine.terminate();
    }

    /// Wait for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate); [`PoolError::StillRunning`] otherwise. An
    /// [`imap`](Pool::imap) iterator still in use keeps a closed pool working until it is
    /// exhausted or dropped (it submits its items lazily), and `join` waits for that;
    /// [`PoolError::JoinFromCallback`] in a callback, which would wait for itself.
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// assert!(matches!(pool.join(), Err(multiproc::PoolError::StillRunning)));
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn join(&self) -> Result<(), PoolError> {
        if self.engine.is_running() {
            return Err(PoolError::StillRunning);
        }
        if self.engine.on_pool_thread() {
            return Err(PoolError::JoinFromCallback);
        }
        self.engine.join();
        Ok(())
    }
}

/// A [`Pool`]'s map functions with options: a fixed chunk size ([`Pool::chunksize`]) or a
/// progress bar ([`Pool::progress`]).
#[derive(Clone, Copy, Debug)]
pub struct MapWith<'p> {
    pool: &'p Pool,
    chunksize: Option<usize>,
    progress: bool,
}

impl<'p> MapWith<'p> {
    /// Send `chunksize` items per task instead of the default (Python's heuristic for
    /// `map`: about four chunks per worker; 1 for `imap`).
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.progress().chunksize(2).map(inc, [1, 2, 3])?, [2, 3, 4]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    ///
    /// A chunk size of 0 makes the map fail with [`PoolError::InvalidArgument`], as Python
    /// rejects a `chunksize` below 1.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// let e = pool.chunksize(0).map(inc, [1]);
    /// assert!(matches!(e, Err(multiproc::PoolError::InvalidArgument(_))));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize);
        self
    }

    /// The chunk size if it was set, checked.
    fn checked_chunksize(&self) -> Result<Option<usize>, PoolError> {
        match self.chunksize {
            Some(0) => Err(zero_chunksize()),
            size => Ok(size),
        }
    }

    /// Draw a progress bar (items done, rate, ETA) on stderr, if it is a terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.chunksize(1).progress().map(inc, [1])?, [2]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self) -> Self {
        self.progress = true;
        self
    }

    /// Python's default: four chunks per worker.
    fn size_for(&self, len: usize) -> usize {
        self.chunksize.unwrap_or_else(|| {
            let parts = 4 * self.pool.processes();
            len.div_ceil(parts).max(1)
        })
    }

    fn run_map<C: Apply>(
        &self,
        task: Chunks<C>,
        items: Vec<C::Item>,
    ) -> Result<AsyncResult<Vec<C::Output>>, PoolError>
    where
        C::Output: Send,
    {
        self.checked_chunksize()?;
        if !self.pool.engine.is_running() {
            return Err(PoolError::Closed);
        }
        let len = items.len();
        let cell = Arc::new(ResultCell::new());
        let mut tasks = Tasks {
            engine: Arc::downgrade(&self.pool.engine),
            ids: Vec::new(),
        };
        if len == 0 {
            cell.complete(Ok(Vec::new()));
            return Ok(AsyncResult { cell, tasks });
        }
        let size = self.size_for(len);
        let chunks = len.div_ceil(size);
        let bar = if self.progress {
            Progress::new(Some(len as u64))
        } else {
            Progress::default()
        };
        let gather = Arc::new(Mutex::new(Gather {
            chunks: (0..chunks).map(|_| None).collect(),
            first_error: None,
            left: chunks,
        }));
        let code = task.code();
        // Each chunk is submitted as soon as it is encoded, so the workers start while the
        // rest is encoded. An item that cannot be encoded fails the call (the chunks already
        // submitted run for nothing, as in Python).
        for (index, chunk) in items.chunks(size).enumerate() {
            let payload = task.payload(chunk).map_err(PoolError::Failed)?;
            let (start, n) = (index * size, chunk.len());
            let gather = gather.clone();
            let cell = cell.clone();
            let bar = bar.clone();
            let sink: Sink = Box::new(move |delivery| {
                let results = decode_chunk::<C::Output>(delivery, n);
                bar.inc(n as u64);
                let mut g = gather.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((i, e)) = results.errors.into_iter().next()
                    && g.first_error.as_ref().is_none_or(|(at, _)| start + i < *at)
                {
                    g.first_error = Some((start + i, e));
                }
                g.chunks[index] = Some(results.values);
                g.left -= 1;
                if g.left == 0 {
                    bar.finish();
                    let outcome = match g.first_error.take() {
                        Some((_, e)) => Err(e),
                        None => Ok(g.chunks.drain(..).flatten().flatten().collect()),
                    };
                    drop(g);
                    cell.complete(outcome);
                }
            });
            let id = self
                .pool
                .engine
                .submit(code, payload, n as u32, sink, false)?;
            tasks.ids.push(id);
        }
        Ok(AsyncResult { cell, tasks })
    }

    /// [`Pool::map`] with this chunk size.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.chunksize(2).map(inc, [1, 2, 3])?, [2, 3, 4]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items)?.get()
    }

    /// [`Pool::map_async`] with this chunk size.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.chunksize(1).map_async(inc, [1])?.get()?, [2]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.run_map(Chunks::<Call<A, R>>::new(f), items.into_iter().collect())
    }

    /// [`Pool::starmap`] with this chunk size.
    ///
    /// ```
    /// fn add(a: u8, b: u8) -> u8 { a + b }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.chunksize(1).starmap(|a, b| add(a, b), [(1, 1)])?, [2]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap<Args, R>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<R>, PoolError>
    where
        Args: StarArgs + Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.starmap_async(f, items)?.get()
    }

    /// [`Pool::starmap_async`] with this chunk size.
    ///
    /// ```
    /// fn add(a: u8, b: u8) -> u8 { a + b }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.chunksize(1).starmap_async(|a, b| add(a, b), [(1, 1)])?.get()?, [2]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap_async<Args, R>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError>
    where
        Args: StarArgs + Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.run_map(
            Chunks::<StarCall<Args, R>>::new(f),
            items.into_iter().collect(),
        )
    }

    /// [`Pool::imap`] with this chunk size.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(2)?;
    /// let v: Vec<u8> = pool.chunksize(3).imap(inc, 0..5)?.collect::<Result<_, _>>()?;
    /// assert_eq!(v, [1, 2, 3, 4, 5]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.lazy(f, items, true)
    }

    /// [`Pool::imap_unordered`] with this chunk size.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(2)?;
    /// let n = pool.chunksize(2).imap_unordered(inc, 0..5)?.count();
    /// assert_eq!(n, 5);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap_unordered<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.lazy(f, items, false)
    }

    fn lazy<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        ordered: bool,
    ) -> Result<Imap<'p, R>, PoolError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let size = self.checked_chunksize()?.unwrap_or(1);
        let lease = self.pool.engine.lease()?;
        let mut items = items.into_iter();
        let len = match items.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        };
        let task = Chunks::<Call<A, R>>::new(f);
        let code = task.code();
        let next_chunk = Box::new(move || -> Option<(Result<Vec<u8>, PoolError>, u32)> {
            let chunk: Vec<A> = items.by_ref().take(size).collect();
            if chunk.is_empty() {
                return None;
            }
            let n = chunk.len() as u32;
            Some((task.payload(&chunk).map_err(PoolError::Failed), n))
        });
        Ok(Imap {
            pool: self.pool,
            lease: Some(lease),
            code,
            next_chunk,
            shared: Arc::new(ImapShared {
                state: Mutex::new(ImapState {
                    chunks: HashMap::new(),
                    arrived: VecDeque::new(),
                }),
                cv: Condvar::new(),
            }),
            ordered,
            submitted: 0,
            yielded: 0,
            exhausted: false,
            window: (8 * self.pool.processes()).max(64),
            buffer: VecDeque::new(),
            progress: if self.progress {
                Progress::new(len)
            } else {
                Progress::default()
            },
            len,
        })
    }
}

struct Gather<R> {
    chunks: Vec<Option<Vec<R>>>,
    first_error: Option<(usize, PoolError)>,
    left: usize,
}

/// A chunk's outcome in the parent: the values of the items that succeeded (in order) and
/// the errors of the others, by index.
pub(crate) struct ChunkResults<R> {
    values: Vec<R>,
    errors: Vec<(usize, PoolError)>,
}

impl<R> ChunkResults<R> {
    /// One result per item.
    pub(crate) fn into_items(self, n: usize) -> Vec<Result<R, PoolError>> {
        let mut values = self.values.into_iter();
        let mut errors = self.errors.into_iter().peekable();
        (0..n)
            .map(|i| match errors.next_if(|(at, _)| *at == i) {
                Some((_, e)) => Err(e),
                None => values
                    .next()
                    .ok_or_else(|| PoolError::Failed("a task's result is missing".into())),
            })
            .collect()
    }
}

/// Turn a chunk's delivery into its values and errors.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    delivery: Delivery<'_>,
    n: usize,
) -> ChunkResults<R> {
    let all_failed = |e: PoolError| ChunkResults {
        values: Vec::new(),
        errors: (0..n).map(|i| (i, e.clone())).collect(),
    };
    match delivery {
        Delivery::Failed(e) => all_failed(e),
        Delivery::Done {
            bytes,
            failed,
            worker,
        } => {
            let earlier = |i: usize| {
                failed
                    .iter()
                    .find(|(at, _)| *at as usize == i)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_else(|| PoolError::Failed("the item's result was lost".into()))
            };
            let Some(bytes) = bytes else {
                return ChunkResults {
                    values: Vec::new(),
                    errors: (0..n).map(|i| (i, earlier(i))).collect(),
                };
            };
            // The user's `Deserialize` runs here, in the collector thread: a panic in it fails
            // this chunk, never the thread (every later result would hang).
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle::decode::<ChunkOutput<R>>(bytes, Vec::new())
            }));
            let output: ChunkOutput<R> = match decoded {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    return all_failed(PoolError::ResultDecode {
                        message: e.to_string(),
                    });
                }
                Err(payload) => {
                    return all_failed(PoolError::ResultDecode {
                        message: format!(
                            "decoding panicked: {}",
                            crate::process::child::payload_message(payload.as_ref())
                        ),
                    });
                }
            };
            let mut errors: Vec<(usize, PoolError)> = output
                .failures
                .into_iter()
                .map(|(i, failure)| {
                    let i = i as usize;
                    let e = match failure {
                        ItemFailure::Panicked(report) => {
                            let remote = report.into_remote(worker.0.clone(), worker.1);
                            crate::logging::event!(
                                log::Level::Warn,
                                "a task failed in pool worker '{}' (pid {}): {}",
                                remote.process_name,
                                remote.pid,
                                remote.message
                            );
                            PoolError::Panicked(Box::new(remote))
                        }
                        ItemFailure::Skipped => earlier(i),
                    };
                    (i, e)
                })
                .collect();
            errors.sort_by_key(|(i, _)| *i);
            ChunkResults {
                values: output.values,
                errors,
            }
        }
    }
}

/// A result that is computed in the pool (Python's `AsyncResult`).
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let pool = multiproc::Pool::new(1)?;
/// let r = pool.apply_async(square, 7)?;
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.successful(), Some(true));
/// assert_eq!(r.get()?, 49);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
///
/// Dropping an `AsyncResult` does not cancel its task: the task runs and its result is
/// dropped (as in Python). Use [`cancel`](AsyncResult::cancel) or
/// [`kill`](AsyncResult::kill) to stop it.
pub struct AsyncResult<O> {
    cell: Arc<ResultCell<O>>,
    tasks: Tasks,
}

/// The chunks behind a result, to cancel or kill them.
#[derive(Clone, Debug)]
pub(crate) struct Tasks {
    pub(crate) engine: Weak<Engine>,
    pub(crate) ids: Vec<u64>,
}

impl Tasks {
    /// Withdraw them all if none has started: `true` if that happened.
    pub(crate) fn cancel(&self) -> bool {
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        match engine.cancel_all(&self.ids) {
            Some(sinks) => {
                for sink in sinks {
                    deliver(sink, Delivery::Failed(PoolError::Cancelled));
                }
                true
            }
            None => false,
        }
    }

    /// Stop those not done, killing the workers that run them: `true` if any was not done.
    pub(crate) fn kill(&self) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|engine| engine.kill(&self.ids))
    }
}

pub(crate) fn zero_chunksize() -> PoolError {
    PoolError::InvalidArgument("chunksize must be at least 1".into())
}

impl<O> std::fmt::Debug for AsyncResult<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<O> AsyncResult<O> {
    /// Whether the result is there.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(one, ())?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.cell.is_ready()
    }

    /// `Some(true)` if it finished without error, `Some(false)` if it failed, `None` if
    /// not ready (Python raises `ValueError` then).
    ///
    /// ```
    /// fn boom(_: ()) { panic!("no") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(boom, ())?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(false));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        self.cell.failed().map(|failed| !failed)
    }

    /// Wait until the result is there.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.apply_async(one, ())?.wait();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait(&self) {
        self.cell.wait_until(None);
    }

    /// Wait at most `timeout`; `true` if the result is there.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 500)?;
    /// assert!(!r.wait_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait_until(crate::deadline::after(timeout))
    }

    /// Wait for the result and take it.
    ///
    /// ```
    /// fn boom(_: ()) -> u8 { panic!("no luck") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let err = pool.apply_async(boom, ())?.get().unwrap_err();
    /// assert!(err.to_string().contains("no luck"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn get(self) -> Result<O, PoolError> {
        self.cell.wait_and_take(None)
    }

    /// Wait at most `timeout` for the result; [`PoolError::ResultTimeout`] if it is not
    /// there (the task goes on; use [`wait_timeout`](AsyncResult::wait_timeout) to keep
    /// the handle).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 500)?;
    /// let e = r.get_timeout(std::time::Duration::from_millis(10));
    /// assert!(matches!(e, Err(multiproc::PoolError::ResultTimeout)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn get_timeout(self, timeout: Duration) -> Result<O, PoolError> {
        self.cell.wait_and_take(Some(timeout))
    }

    /// Call `f` with the value once it is there (Python's `callback`), in the pool's
    /// result thread, or right away in this thread if it is already there.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// pool.apply_async(square, 5)?.callback(move |v| tx.send(*v).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn callback(self, f: impl FnOnce(&O) + Send + 'static) -> Self {
        self.cell.on_complete(Box::new(move |r| {
            if let Ok(v) = r {
                f(v)
            }
        }));
        self
    }

    /// Call `f` with the error if the task fails (Python's `error_callback`), like
    /// [`callback`](AsyncResult::callback).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn boom(_: ()) { panic!("bad") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// pool.apply_async(boom, ())?.error_callback(move |e| tx.send(e.to_string()).unwrap());
    /// assert!(rx.recv().unwrap().contains("bad"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn error_callback(self, f: impl FnOnce(&PoolError) + Send + 'static) -> Self {
        self.cell.on_complete(Box::new(move |r| {
            if let Err(e) = r {
                f(e)
            }
        }));
        self
    }

    /// Cancel the task if it has not been handed to the workers yet (for a `map_async`, if
    /// none of its chunks has): `true` if it is now (or was already) cancelled, and its
    /// result is [`PoolError::Cancelled`]; `false` if it runs or is done (Python's
    /// `Future.cancel` semantics). A pool hands tasks to its workers' shared ring at once
    /// while there is room, so only work waiting in the parent behind a full ring can be
    /// cancelled; [`kill`](AsyncResult::kill) stops a task wherever it is.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 1)?;
    /// r.wait();
    /// assert!(!r.cancel()); // done
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.ready() {
            return self.cell.error_is(|e| matches!(e, PoolError::Cancelled));
        }
        self.tasks.cancel()
    }

    /// Stop the task now, running or not: the worker running it is killed and replaced,
    /// and the result is [`PoolError::Killed`]. `true` if the task was not done yet. For a
    /// `map_async`, every chunk not done is stopped.
    ///
    /// ```
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(spin, ())?;
    /// assert!(r.kill());
    /// assert!(matches!(r.get(), Err(multiproc::PoolError::Killed)));
    /// fn one(_: ()) -> u8 { 1 }
    /// assert_eq!(pool.apply(one, ())?, 1); // a new worker took its place
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn kill(&self) -> bool {
        !self.ready() && self.tasks.kill()
    }
}

struct ImapShared<R> {
    state: Mutex<ImapState<R>>,
    cv: Condvar,
}

struct ImapState<R> {
    chunks: HashMap<u64, Vec<Result<R, PoolError>>>,
    arrived: VecDeque<Vec<Result<R, PoolError>>>,
}

/// The next chunk's encoded items (or why they could not be encoded) and their number.
type NextChunk<'p> = Box<dyn FnMut() -> Option<(Result<Vec<u8>, PoolError>, u32)> + 'p>;

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one `Result` per item.
pub struct Imap<'p, R> {
    pool: &'p Pool,
    /// Lets this iterator finish after the pool is closed; dropped once all is submitted.
    lease: Option<engine::Lease>,
    code: Code,
    next_chunk: NextChunk<'p>,
    shared: Arc<ImapShared<R>>,
    ordered: bool,
    submitted: u64,
    yielded: u64,
    exhausted: bool,
    window: usize,
    buffer: VecDeque<Result<R, PoolError>>,
    progress: Progress,
    /// The number of items, if the iterator knew it (for the progress bar).
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    len: Option<u64>,
}

impl<R> std::fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("in_flight", &(self.submitted - self.yielded))
            .finish()
    }
}

impl<R> Imap<'_, R> {
    /// Draw a progress bar on stderr (items done and rate, plus ETA when the number of
    /// items is known), if stderr is a terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let total: u64 = pool.imap(square, 0..100)?.progress().map(Result::unwrap).sum();
    /// assert_eq!(total, 328_350);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(mut self) -> Self {
        self.progress = Progress::new(self.len);
        self
    }
}

impl<R: DeserializeOwned + Send + 'static> Imap<'_, R> {
    fn top_up(&mut self) {
        while !self.exhausted && ((self.submitted - self.yielded) as usize) < self.window {
            let Some((chunk, n)) = (self.next_chunk)() else {
                self.exhausted = true;
                self.lease = None;
                break;
            };
            let index = self.submitted;
            self.submitted += 1;
            let shared = self.shared.clone();
            let ordered = self.ordered;
            let store = move |results: Vec<Result<R, PoolError>>| {
                let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if ordered {
                    st.chunks.insert(index, results);
                } else {
                    st.arrived.push_back(results);
                }
                drop(st);
                shared.cv.notify_all();
            };
            let fail_all = |e: PoolError| (0..n).map(|_| Err(e.clone())).collect();
            match chunk {
                Err(e) => store(fail_all(e)),
                Ok(payload) => {
                    let store2 = store.clone();
                    let sink: Sink = Box::new(move |d| {
                        store2(decode_chunk::<R>(d, n as usize).into_items(n as usize))
                    });
                    if let Err(e) = self.pool.engine.submit(self.code, payload, n, sink, true) {
                        store(fail_all(e));
                    }
                }
            }
        }
    }
}

impl<R: DeserializeOwned + Send + 'static> Iterator for Imap<'_, R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.buffer.pop_front() {
                self.progress.inc(1);
                return Some(item);
            }
            self.top_up();
            if self.yielded == self.submitted {
                self.progress.finish();
                return None;
            }
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let got = if self.ordered {
                    st.chunks.remove(&self.yielded)
                } else {
                    st.arrived.pop_front()
                };
                if let Some(results) = got {
                    self.buffer.extend(results);
                    self.yielded += 1;
                    break;
                }
                st = self.shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
