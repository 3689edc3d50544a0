//! [`ExecutorMap`]: the results of
//! [`ProcessPoolExecutor::map`](super::ProcessPoolExecutor::map) in input order.

use std::collections::VecDeque;
use std::time::Instant;

use crate::pool::progress::Handout;
use crate::pool::{AsyncResult, PoolError};

/// The iterator of [`ProcessPoolExecutor::map`](super::ProcessPoolExecutor::map): one
/// `Result` per item, in input order. Dropping it cancels the tasks that have not started.
///
/// ```
/// use multiproc::{ExecutorMap, PoolError, ProcessPoolExecutor};
/// fn halve(x: u32) -> u32 { assert!(x % 2 == 0, "odd input"); x / 2 }
/// let ex = ProcessPoolExecutor::new(2)?;
/// let results: ExecutorMap<u32> = ex.map(halve, [4, 3, 8])?;
/// // One Result per item, in input order: a failed item does not hide the others.
/// let results: Vec<Result<u32, PoolError>> = results.collect();
/// assert_eq!(results[0].as_ref().ok(), Some(&2));
/// assert!(matches!(results[1], Err(PoolError::Panicked(_))));
/// assert_eq!(results[2].as_ref().ok(), Some(&4));
/// # Ok::<(), PoolError>(())
/// ```
pub struct ExecutorMap<R> {
    /// Each task's results, one per item, in input order.
    pub(super) chunks: VecDeque<AsyncResult<Vec<Result<R, PoolError>>>>,
    pub(super) out: Handout<R>,
    pub(super) deadline: Option<Instant>,
    /// The number of items, for the progress bar.
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(super) len: u64,
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
        self.out.progress = crate::pool::progress::Progress::new(Some(self.len));
        self
    }

    fn cancel_rest(&mut self) {
        for chunk in std::mem::take(&mut self.chunks) {
            chunk.cancel();
        }
    }
}

impl<R> Iterator for ExecutorMap<R> {
    type Item = Result<R, PoolError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.out.next() {
                return Some(item);
            }
            let Some(front) = self.chunks.front() else {
                // Every result handed out.
                self.out.progress.finish();
                return None;
            };
            if !front.cell.wait_until(self.deadline) {
                self.cancel_rest();
                self.out.progress.finish();
                return Some(Err(PoolError::ResultTimeout));
            }
            let chunk = self.chunks.pop_front()?;
            match chunk.get() {
                Ok(items) => self.out.receive(items),
                Err(e) => self.out.receive([Err(e)]),
            }
        }
    }
}

impl<R> Drop for ExecutorMap<R> {
    fn drop(&mut self) {
        self.cancel_rest();
    }
}
