//! [`ExecutorBuilder`]: the settings of a new [`ProcessPoolExecutor`].

use std::sync::Arc;
use std::time::Duration;

use crate::pool::{Engine, PoolBuilder, PoolError, TaskArg};
use crate::process::StartMethod;

use super::ProcessPoolExecutor;

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
    pub fn initializer<A: TaskArg>(mut self, f: fn(A), arg: A) -> Self {
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
