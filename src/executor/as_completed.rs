//! [`as_completed`]: futures in the order they finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pool::progress::Progress;
use crate::pool::{PoolError, Watch};

use super::PoolFuture;

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
///
/// ```
/// use multiproc::{AsCompleted, ProcessPoolExecutor, as_completed};
/// fn square(x: u64) -> u64 { x * x }
/// let ex = ProcessPoolExecutor::new(2)?;
/// let futures = (1..=4).map(|x| ex.submit(square, x)).collect::<Result<Vec<_>, _>>()?;
/// let finished: AsCompleted<u64> = as_completed(futures, None);
/// let mut squares = finished.map(|f| f?.result()).collect::<Result<Vec<_>, _>>()?;
/// squares.sort(); // they came in the order they finished
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
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
