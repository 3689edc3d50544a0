//! [`PoolBuilder`]: the settings of a new pool.

use std::sync::Arc;
use std::time::Duration;

use super::engine::{Engine, EngineConfig};
use super::task::InitCode;
use super::task::{self, TaskArg};
use super::{Pool, PoolError};
use crate::process::{Limits, StartMethod};

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
    pub(super) processes: Option<usize>,
    pub(super) start_method: Option<StartMethod>,
    pub(super) init: Option<Result<(InitCode, Vec<u8>), String>>,
    pub(super) max_tasks: u64,
    pub(super) max_memory: u64,
    pub(super) limits: Limits,
    pub(super) timeout: Option<Duration>,
    #[cfg(feature = "mpi")]
    pub(super) backend: super::mpi::Backend,
}

impl PoolBuilder {
    /// Where the workers run (feature `mpi`): MPI ranks or local processes; by default MPI
    /// ranks under an MPI launcher with more than one rank (see [`mpi`](crate::mpi)).
    ///
    /// ```
    /// use multiproc::mpi::Backend;
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::builder().processes(2).backend(Backend::Local).build()?;
    /// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "mpi")]
    pub fn backend(mut self, backend: super::mpi::Backend) -> Self {
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
    pub fn initializer<A: TaskArg>(mut self, f: fn(A), arg: A) -> Self {
        self.init = Some(task::initializer(f, &arg));
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
        let (processes, remote) = match super::mpi::remote_for(self.backend, self.start_method)? {
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
