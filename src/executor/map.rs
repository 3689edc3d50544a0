//! [`ExecutorMap`]: the results of
//! [`ProcessPoolExecutor::map`](super::ProcessPoolExecutor::map) in input order.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::pool::progress::Progress;
use crate::pool::{Delivery, Engine, PoolError, ResultCell, deliver};

type ChunkCell<R> = ResultCell<Vec<Result<R, PoolError>>>;

/// The iterator of [`ProcessPoolExecutor::map`](super::ProcessPoolExecutor::map): one
/// `Result` per item, in input order. Dropping it cancels the tasks that have not started.
pub struct ExecutorMap<R> {
    /// Each task's id and where its items' results land.
    pub(super) chunks: VecDeque<(u64, Arc<ChunkCell<R>>)>,
    pub(super) buffer: VecDeque<Result<R, PoolError>>,
    pub(super) deadline: Option<Instant>,
    pub(super) engine: Weak<Engine>,
    pub(super) progress: Progress,
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
