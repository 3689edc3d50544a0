//! [`PoolError`]: why a pool task (or the pool) failed.

use std::time::Duration;

use crate::process::{LimitError, RemotePanic};

/// Why a pool task (or the pool) failed.
///
/// ```
/// use multiproc::{Pool, PoolError};
/// fn check(x: i32) -> i32 { assert!(x >= 0, "negative input"); x }
/// let pool = Pool::new(1)?;
/// match pool.apply(check, -1) {
///     Err(PoolError::Panicked(p)) => assert_eq!(p.message, "negative input"),
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// assert_eq!(pool.apply(check, 1)?, 1); // the pool goes on
/// # Ok::<(), PoolError>(())
/// ```
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
    /// The task's worker went past its CPU-time limit ([`Limits::cpu_time`](crate::process::Limits::cpu_time), set with
    /// [`PoolBuilder::limits`](crate::pool::PoolBuilder::limits)) while running it; the worker was replaced and the pool goes
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
    /// An allocation failed under the worker's memory limit ([`Limits::memory`](crate::process::Limits::memory), set with
    /// [`PoolBuilder::limits`](crate::pool::PoolBuilder::limits)) while it ran this task; the worker was replaced and the pool
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
    /// The workers' [`Limits`](crate::process::Limits) cannot be put in place (refused when the pool is built, or
    /// by the first worker): the pool accepts no work.
    ///
    /// ```
    /// use multiproc::{Limits, Pool, PoolError};
    /// let refused = Pool::builder().limits(Limits::new().nice(-21)).build();
    /// assert!(matches!(refused, Err(PoolError::Limits(_))));
    /// ```
    #[error("the pool's worker limits: {0}")]
    Limits(LimitError),
    /// The task was stopped by [`AsyncResult::kill`](crate::pool::AsyncResult::kill) or
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
    Mpi(#[from] super::mpi::MpiError),
}

pub(crate) fn zero_chunksize() -> PoolError {
    PoolError::InvalidArgument("chunksize must be at least 1".into())
}
