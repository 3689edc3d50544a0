//! [`Imap`]: the lazy iterator of `imap` and `imap_unordered`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use serde::de::DeserializeOwned;

use super::engine::{self, Sink};
use super::progress::Handout;
use super::task::Code;
use super::{Pool, PoolError, decode_chunk};

pub(super) struct ImapShared<R> {
    pub(super) state: Mutex<ImapState<R>>,
    pub(super) cv: Condvar,
}

pub(super) struct ImapState<R> {
    pub(super) chunks: HashMap<u64, Vec<Result<R, PoolError>>>,
    pub(super) arrived: VecDeque<Vec<Result<R, PoolError>>>,
}

/// The next chunk's encoded items (or why they could not be encoded) and their number.
pub(super) type NextChunk<'p> = Box<dyn FnMut() -> Option<(Result<Vec<u8>, PoolError>, u32)> + 'p>;

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one `Result` per item.
///
/// ```
/// use multiproc::{Imap, Pool, PoolError};
/// fn check(x: i32) -> i32 { assert!(x >= 0, "negative input"); x }
/// let pool = Pool::new(2)?;
/// let results: Imap<'_, i32> = pool.imap(check, [1, -2, 3])?;
/// // One Result per item, in input order: a failed item does not end the iteration.
/// let results: Vec<Result<i32, PoolError>> = results.collect();
/// assert_eq!(results.len(), 3);
/// assert!(matches!(results[1], Err(PoolError::Panicked(_))));
/// assert_eq!(results[2].as_ref().ok(), Some(&3));
/// # Ok::<(), PoolError>(())
/// ```
pub struct Imap<'p, R> {
    pub(super) pool: &'p Pool,
    /// Lets this iterator finish after the pool is closed; dropped once all is submitted.
    pub(super) lease: Option<engine::Lease>,
    pub(super) code: Code,
    pub(super) next_chunk: NextChunk<'p>,
    pub(super) shared: Arc<ImapShared<R>>,
    pub(super) ordered: bool,
    pub(super) submitted: u64,
    pub(super) yielded: u64,
    pub(super) exhausted: bool,
    pub(super) window: usize,
    pub(super) out: Handout<R>,
    /// The number of items, if the iterator knew it (for the progress bar).
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(super) len: Option<u64>,
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
        self.out.progress = super::progress::Progress::new(self.len);
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
            if let Some(item) = self.out.next() {
                return Some(item);
            }
            self.top_up();
            if self.yielded == self.submitted {
                self.out.progress.finish();
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
                    self.out.receive(results);
                    self.yielded += 1;
                    break;
                }
                st = self.shared.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}
