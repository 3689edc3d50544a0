//! The map plumbing shared by pools and executors: [`MapWith`] (maps with options), chunk
//! submission, and the decoding of a chunk's results.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::{Delivery, Engine, Sink};
use super::imap::{ImapShared, ImapState};
use super::progress::{Handout, Progress};
use super::task::{
    Apply, Call, ChunkOutput, Chunks, Code, ItemFailure, StarArgs, StarCall, TaskArg, TaskOutput,
};
use super::{AsyncResult, Imap, Pool, PoolError, ResultCell, zero_chunksize};
use crate::handle;

/// Submit the call `f(arg)` as a chunk of one item (`apply_async` and the executor's
/// `submit`).
pub(crate) fn submit_one<A: TaskArg, R: TaskOutput>(
    engine: &Arc<Engine>,
    f: fn(A) -> R,
    arg: A,
) -> Result<AsyncResult<R>, PoolError> {
    let task = Chunks::<Call<A, R>>::new(f);
    let payload = task
        .payload(std::slice::from_ref(&arg))
        .map_err(PoolError::Failed)?;
    submit_chunk(engine, task.code(), payload, 1, |results| {
        results
            .into_items(1)
            .pop()
            .unwrap_or_else(|| Err(PoolError::Failed("a task's result is missing".into())))
    })
}

/// Submit the encoded chunk `payload` of `n` items of `code`; the handle's value is what
/// `finish` makes of the chunk's results.
pub(crate) fn submit_chunk<R, O>(
    engine: &Arc<Engine>,
    code: Code,
    payload: Vec<u8>,
    n: usize,
    finish: impl FnOnce(ChunkResults<R>) -> Result<O, PoolError> + Send + 'static,
) -> Result<AsyncResult<O>, PoolError>
where
    R: DeserializeOwned + 'static,
    O: Send + 'static,
{
    let cell = Arc::new(ResultCell::new());
    let done = cell.clone();
    let sink: Sink = Box::new(move |delivery| done.complete(finish(decode_chunk(delivery, n))));
    let id = engine.submit(code, payload, chunk_len(n), sink, false)?;
    Ok(AsyncResult::new(cell, engine, vec![id]))
}

/// The most items in one chunk: its count travels as a `u32`.
pub(crate) const MAX_CHUNK: usize = u32::MAX as usize;

/// A chunk's item count as it travels (chunk sizes are capped at [`MAX_CHUNK`]).
pub(crate) fn chunk_len(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

/// A [`Pool`]'s map functions with options: a fixed chunk size ([`Pool::chunksize`]) or a
/// progress bar ([`Pool::progress`]).
///
/// ```
/// use multiproc::{MapWith, Pool};
/// fn inc(x: u32) -> u32 { x + 1 }
/// let pool = Pool::new(2)?;
/// let tens: MapWith<'_> = pool.chunksize(10); // ten items per task
/// // It is Copy: one set of options serves several maps.
/// assert_eq!(tens.map(inc, 0..100)?.len(), 100);
/// assert_eq!(tens.imap(inc, [1, 2])?.collect::<Result<Vec<_>, _>>()?, [2, 3]);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MapWith<'p> {
    pub(super) pool: &'p Pool,
    pub(super) chunksize: Option<usize>,
    pub(super) progress: bool,
}

impl<'p> MapWith<'p> {
    /// Send `chunksize` items per task instead of the default (for `map`, chunks that shrink
    /// as the map goes on, see [`Pool::map`]; 1 for `imap`).
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

    /// The sizes of the chunks of a map of `len` items, in order.
    fn chunk_sizes(&self, len: usize) -> Vec<usize> {
        match self.chunksize {
            Some(size) => fixed_chunks(len, size),
            None => guided_chunks(len, self.pool.processes()),
        }
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
        if len == 0 {
            cell.complete(Ok(Vec::new()));
            return Ok(AsyncResult::new(cell, &self.pool.engine, Vec::new()));
        }
        let sizes = self.chunk_sizes(len);
        let chunks = sizes.len();
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
        let mut ids = Vec::with_capacity(chunks);
        let mut start = 0;
        for (index, n) in sizes.into_iter().enumerate() {
            let chunk = &items[start..start + n];
            let payload = task.payload(chunk).map_err(PoolError::Failed)?;
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
                        None => Ok(concat(std::mem::take(&mut g.chunks))),
                    };
                    drop(g);
                    cell.complete(outcome);
                }
            });
            let id = self
                .pool
                .engine
                .submit(code, payload, chunk_len(n), sink, false)?;
            ids.push(id);
            start += n;
        }
        Ok(AsyncResult::new(cell, &self.pool.engine, ids))
    }

    /// [`Pool::map`] with this chunk size.
    ///
    /// ```
    /// fn inc(x: u8) -> u8 { x + 1 }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.chunksize(2).map(inc, [1, 2, 3])?, [2, 3, 4]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError> {
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
    pub fn map_async<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
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
    pub fn starmap<Args: StarArgs + TaskArg, R: TaskOutput>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<R>, PoolError> {
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
    pub fn starmap_async<Args: StarArgs + TaskArg, R: TaskOutput>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
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
    pub fn imap<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError> {
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
    pub fn imap_unordered<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError> {
        self.lazy(f, items, false)
    }

    fn lazy<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
        ordered: bool,
    ) -> Result<Imap<'p, R>, PoolError> {
        let size = self.checked_chunksize()?.unwrap_or(1).min(MAX_CHUNK);
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
            let n = chunk_len(chunk.len());
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
            out: Handout::new(if self.progress {
                Progress::new(len)
            } else {
                Progress::default()
            }),
            len,
        })
    }
}

/// `len` items in chunks of `size` (the last one shorter).
fn fixed_chunks(len: usize, size: usize) -> Vec<usize> {
    let size = size.clamp(1, MAX_CHUNK);
    let mut sizes = vec![size; len / size];
    if !len.is_multiple_of(size) {
        sizes.push(len % size);
    }
    sizes
}

/// The default chunks of a map of `len` items on `workers` workers (guided scheduling, as
/// OpenMP's `schedule(guided)`, capped by Python's fixed size): each chunk takes
/// 1/(2·workers) of the items not yet given out, but at most Python's 1/(4·workers) of them
/// all and at least 1/(16·workers). The first chunks are Python's, so the workers start as
/// soon as with Python's chunking (a larger first chunk keeps them waiting while it is
/// encoded); the last ones shrink, so that when a worker is slowed (a busy machine, items of
/// uneven cost) the others take what is left and no worker idles long while the last chunk
/// runs: with Python's fixed chunks the map waits for a whole 1/(4·workers) of the work at
/// the end.
fn guided_chunks(len: usize, workers: usize) -> Vec<usize> {
    let workers = workers.max(1);
    let cap = len.div_ceil(4 * workers).max(1);
    let floor = len.div_ceil(16 * workers).max(1);
    let mut sizes = Vec::new();
    let mut left = len;
    while left > 0 {
        let size = left
            .div_ceil(2 * workers)
            .min(cap)
            .max(floor)
            .min(left)
            .min(MAX_CHUNK);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// The chunks' values in order, in one `Vec` allocated once (each chunk moves in with one
/// copy; collecting an iterator of iterators would grow the `Vec` step by step, on the map's
/// critical path: this runs after the last chunk arrived).
fn concat<R>(chunks: Vec<Option<Vec<R>>>) -> Vec<R> {
    let total = chunks.iter().flatten().map(Vec::len).sum();
    let mut all = Vec::with_capacity(total);
    for mut chunk in chunks.into_iter().flatten() {
        all.append(&mut chunk);
    }
    all
}

pub(super) struct Gather<R> {
    pub(super) chunks: Vec<Option<Vec<R>>>,
    pub(super) first_error: Option<(usize, PoolError)>,
    pub(super) left: usize,
}

/// A chunk's outcome in the parent: the values of the items that succeeded (in order) and
/// the errors of the others, by index.
pub(crate) struct ChunkResults<R> {
    pub(super) values: Vec<R>,
    pub(super) errors: Vec<(usize, PoolError)>,
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
pub(crate) fn decode_chunk<R: DeserializeOwned + 'static>(
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
                            crate::panic_report::payload_message(payload.as_ref())
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
                            crate::event::event!(
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

#[cfg(test)]
mod tests {
    use super::{fixed_chunks, guided_chunks};

    #[test]
    fn guided_chunks_cover_every_item_and_shrink() {
        for workers in 1..=8 {
            for len in (0..300).chain([10_000, 1_000_000]) {
                let sizes = guided_chunks(len, workers);
                assert_eq!(
                    sizes.iter().sum::<usize>(),
                    len,
                    "{len} items, {workers} workers"
                );
                assert!(sizes.iter().all(|&s| s > 0));
                assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
                // Few chunks: about as many as Python's 4 per worker, times a small factor.
                assert!(sizes.len() <= 16 * workers, "{len} items: {sizes:?}");
            }
        }
        assert_eq!(guided_chunks(64, 2), [8, 8, 8, 8, 8, 6, 5, 4, 3, 2, 2, 2]);
    }

    #[test]
    fn fixed_chunks_end_with_the_remainder() {
        assert_eq!(fixed_chunks(7, 3), [3, 3, 1]);
        assert_eq!(fixed_chunks(6, 3), [3, 3]);
        assert_eq!(fixed_chunks(2, usize::MAX), [2]);
        assert!(fixed_chunks(0, 4).is_empty());
    }
}
