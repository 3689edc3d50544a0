//! [`ProcessPoolExecutor`] and its calls: submit, map, shutdown, terminate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::pool::progress::{Handout, Progress};
use crate::pool::task::{Call, Chunks, TaskArg, TaskOutput};
use crate::pool::{Delivery, Engine, MAX_CHUNK, PoolError, deliver, submit_chunk, submit_one};

use super::{ExecutorBuilder, ExecutorMap, PoolFuture};

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
    pub(super) engine: Arc<Engine>,
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
    pub fn submit<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, PoolError> {
        submit_one(&self.engine, f, arg)
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
    pub fn map<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<ExecutorMap<R>, PoolError> {
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
    pub fn map_timeout<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        timeout: Duration,
    ) -> Result<ExecutorMap<R>, PoolError> {
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
    pub fn map_chunked<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
        timeout: Option<Duration>,
    ) -> Result<ExecutorMap<R>, PoolError> {
        if chunksize == 0 {
            return Err(crate::pool::zero_chunksize());
        }
        let deadline = crate::deadline::after_opt(timeout);
        let items: Vec<A> = items.into_iter().collect();
        let task = Chunks::<Call<A, R>>::new(f);
        // All encoded before any is submitted: an item that cannot be sent fails the call.
        let payloads = items
            .chunks(chunksize.min(MAX_CHUNK))
            .map(|chunk| task.payload(chunk).map(|payload| (payload, chunk.len())))
            .collect::<Result<Vec<_>, String>>()
            .map_err(PoolError::Failed)?;
        drop(items);
        let code = task.code();
        let mut map = ExecutorMap {
            chunks: VecDeque::with_capacity(payloads.len()),
            out: Handout::new(Progress::default()),
            deadline,
            len: payloads.iter().map(|(_, n)| *n as u64).sum(),
        };
        for (payload, n) in payloads {
            // On failure the map drops and cancels what was submitted.
            let chunk = submit_chunk(&self.engine, code, payload, n, move |results| {
                Ok(results.into_items(n))
            })?;
            map.chunks.push_back(chunk);
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
