// long file: `Queue` and the two thin types built on it (`SimpleQueue`, `JoinableQueue`) share one implementation and its docs
//! Process-safe FIFO queues: [`Queue`], [`SimpleQueue`] and [`JoinableQueue`] (Python's
//! `multiprocessing.Queue` and friends).
//!
//! A queue is a ring buffer in anonymous shared memory (see `ring/mod.rs`), shared by every
//! process that has a handle: clone it for more threads, pass it to a child as (part of) its
//! argument, or send it over a [`Connection`](crate::Connection). Items are any serde type,
//! encoded with postcard.
//!
//! # How it differs from Python's
//! - There is no feeder thread. `put` copies the item into shared memory and returns; when
//!   it returns, the item is in the queue, and it stays there if the putting process exits
//!   or is killed right after. (Python's `put` hands the item to a thread that may not have
//!   written it yet when the process exits.)
//! - Items of any size: an item larger than the buffer streams through it while a consumer
//!   reads it, so memory stays bounded by the buffer size (default
//!   [`DEFAULT_BUFFER_SIZE`]; only the pages in use occupy memory). An item whose encoding
//!   passes 64 KiB is encoded straight into the buffer (copied once), so its `Serialize`
//!   runs while this process holds the queue's put lock: other producers wait for it, and a
//!   `Serialize` that itself puts into the same queue gets an error. If encoding fails or
//!   panics part-way, nothing of the item is put.
//! - "Unbounded" ([`Queue::new`]) means no limit on the number of items; the bytes waiting
//!   are limited by the buffer size, and a `put` that finds the buffer full waits for room
//!   like a `put` on a full bounded queue (`put_timeout`/`put_nowait` return `Ok(false)`).
//!   Raise the buffer with [`QueueBuilder::buffer_size`].
//! - `qsize` is exact (it counts items whose `put` has begun and whose `get` has not
//!   finished) and works on every platform.
//!
//! # Processes that die
//! A process killed in the middle of `put` or `get` never leaves the others waiting:
//! - killed inside `put`: its item is dropped whole, and consumers never see part of it (the
//!   next producer, or a consumer waiting for the rest of the item, cancels it within about
//!   20 ms); every other item arrives;
//! - killed inside `get`: an item it had begun to take out of the buffer is lost with it (as
//!   in Python), while an item it was still decoding in place stays for the next consumer;
//!   the queue stays consistent and the other consumers go on.
//!
//! # Handles inside items
//! Items cannot carry OS handles (a [`Connection`](crate::Connection), a lock, another
//! queue...): `put` reports a [`QueueError::Codec`] error. Pass handles as process
//! arguments or send them over a `Connection`.
//!
//! # Byte buffers
//! serde encodes `Vec<u8>` element by element. For large byte payloads use
//! `serde_bytes::ByteBuf` (or `#[serde(with = "serde_bytes")]`), which is copied in one go.

mod encode;
pub(crate) mod ring;

use std::borrow::Borrow;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::{self, CodecError};
use crate::sync::deadline;
#[cfg(feature = "async")]
pub(crate) use encode::with_encoded;
use ring::{Ring, RingConfig};

/// The default size of a queue's buffer in shared memory: 64 MiB of address space, of which
/// only the pages holding items occupy memory (about 1 MiB when consumers keep up).
///
/// ```
/// use multiproc::{DEFAULT_BUFFER_SIZE, Queue};
/// assert_eq!(Queue::<u8>::new()?.buffer_size(), DEFAULT_BUFFER_SIZE);
/// // Many small queues: a smaller buffer each.
/// let small = Queue::<u8>::builder().buffer_size(DEFAULT_BUFFER_SIZE / 64).build()?;
/// assert_eq!(small.buffer_size(), 1 << 20);
/// # Ok::<(), multiproc::QueueError>(())
/// ```
pub const DEFAULT_BUFFER_SIZE: usize = 64 << 20;

/// Why a queue operation failed.
///
/// ```
/// use multiproc::{Connection, Queue, QueueError};
/// let q = Queue::<u8>::new()?;
/// q.close();
/// assert!(matches!(q.put(1), Err(QueueError::Closed)));
/// // Items travel as bytes in shared memory: one carrying an OS handle cannot.
/// let conns = Queue::<Connection>::new()?;
/// let (a, _b) = multiproc::pipe()?;
/// assert!(matches!(conns.put(a), Err(QueueError::Codec(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// This handle was closed with `close()`.
    #[error("queue is closed")]
    Closed,
    /// `task_done` was called more times than items were put.
    #[error("task_done() called more times than there were items")]
    TaskDoneTooManyTimes,
    /// The item could not be encoded, or the bytes received do not decode as the item type.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// An operating-system error, or a corrupt queue.
    #[error("queue: {0}")]
    Io(#[from] io::Error),
}

/// What every queue handle holds: the ring, and this process's `closed` flag.
pub(crate) struct Local {
    pub(crate) ring: Ring,
    pub(crate) closed: AtomicBool,
}

/// The untyped core of the three queue kinds.
#[derive(Clone)]
pub(crate) struct Core(pub(crate) Arc<Local>);

impl Core {
    fn new(config: RingConfig) -> Result<Core, QueueError> {
        Ok(Core::from_ring(Ring::new(config)?))
    }

    fn from_ring(ring: Ring) -> Core {
        Core(Arc::new(Local {
            ring,
            closed: AtomicBool::new(false),
        }))
    }

    pub(crate) fn check_open(&self) -> Result<(), QueueError> {
        if self.0.closed.load(Ordering::Relaxed) {
            Err(QueueError::Closed)
        } else {
            Ok(())
        }
    }

    /// Put `item`; `Ok(false)` if `deadline` passed before there was room.
    fn put<T: Serialize>(&self, item: &T, deadline: Option<Instant>) -> Result<bool, QueueError> {
        self.check_open()?;
        encode::put(&self.0.ring, item, deadline)
    }

    /// Take the next item; `Ok(None)` if `deadline` passed before one came.
    fn get<T: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<Option<T>, QueueError> {
        self.check_open()?;
        match self
            .0
            .ring
            .get(deadline, |bytes| handle::decode::<T>(bytes, Vec::new()))?
        {
            Some(decoded) => Ok(Some(decoded?)),
            None => Ok(None),
        }
    }

    /// [`Core::put`] without a deadline.
    fn put_untimed<T: Serialize>(&self, item: &T) -> Result<(), QueueError> {
        match self.put(item, None)? {
            true => Ok(()),
            false => Err(QueueError::Io(io::Error::other("an untimed put timed out"))),
        }
    }

    /// [`Core::get`] without a deadline.
    fn get_untimed<T: DeserializeOwned>(&self) -> Result<T, QueueError> {
        self.get(None)?
            .ok_or_else(|| QueueError::Io(io::Error::other("an untimed get timed out")))
    }
}

impl Serialize for Core {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.ring.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Core {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Core::from_ring(Ring::deserialize(deserializer)?))
    }
}

/// Settings for a new [`Queue`] or [`JoinableQueue`]: see [`Queue::builder`].
///
/// ```
/// let q: multiproc::Queue<u64> = multiproc::Queue::builder().maxsize(10).buffer_size(1 << 20).build()?;
/// assert_eq!(q.maxsize(), 10);
/// # Ok::<(), multiproc::QueueError>(())
/// ```
pub struct QueueBuilder<T> {
    maxsize: usize,
    buffer_size: usize,
    _items: PhantomData<fn(T) -> T>,
}

impl<T> QueueBuilder<T> {
    /// Default settings: unbounded, [`DEFAULT_BUFFER_SIZE`] bytes of buffer.
    ///
    /// ```
    /// let q: multiproc::Queue<u8> = multiproc::QueueBuilder::new().build()?;
    /// assert_eq!(q.maxsize(), 0);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn new() -> Self {
        QueueBuilder {
            maxsize: 0,
            buffer_size: DEFAULT_BUFFER_SIZE,
            _items: PhantomData,
        }
    }

    /// At most `maxsize` items in the queue at once (0, the default: no limit).
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().maxsize(1).build()?;
    /// q.put(1)?;
    /// assert!(q.full());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// Bytes of shared memory for items in transit (rounded up to whole pages; default
    /// [`DEFAULT_BUFFER_SIZE`]). Items larger than a quarter of it stream through it in
    /// pieces, so this bounds memory, not item size.
    ///
    /// ```
    /// let q = multiproc::Queue::<Vec<u32>>::builder().buffer_size(64 << 10).build()?;
    /// assert_eq!(q.buffer_size(), 64 << 10);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.buffer_size = bytes;
        self
    }

    fn config(&self, joinable: bool) -> RingConfig {
        RingConfig {
            capacity: self.buffer_size as u64,
            maxsize: self.maxsize as u64,
            joinable,
        }
    }

    /// Create the queue.
    ///
    /// ```
    /// let q = multiproc::Queue::<String>::builder().build()?;
    /// q.put("hi".to_string())?;
    /// assert_eq!(q.get()?, "hi");
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn build(self) -> Result<Queue<T>, QueueError> {
        Ok(Queue {
            core: Core::new(self.config(false))?,
            _items: PhantomData,
        })
    }

    /// Create a [`JoinableQueue`].
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().maxsize(4).build_joinable()?;
    /// q.put(1)?;
    /// assert_eq!(q.unfinished_tasks(), 1);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn build_joinable(self) -> Result<JoinableQueue<T>, QueueError> {
        Ok(JoinableQueue {
            queue: Queue {
                core: Core::new(self.config(true))?,
                _items: PhantomData,
            },
        })
    }
}

impl<T> Default for QueueBuilder<T> {
    fn default() -> Self {
        QueueBuilder::new()
    }
}

impl<T> Clone for QueueBuilder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for QueueBuilder<T> {}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("maxsize", &self.maxsize)
            .field("buffer_size", &self.buffer_size)
            .finish()
    }
}

/// A multi-producer, multi-consumer FIFO queue between processes (Python's
/// `multiprocessing.Queue`).
///
/// Items from one producer arrive in the order it put them. A clone is another handle on
/// the same queue; so is the copy a child gets when the queue is (part of) its argument.
///
/// ```
/// use multiproc::{Process, Queue};
///
/// fn produce(q: Queue<Option<u32>>) {
///     for i in 0..3 {
///         q.put(Some(i)).unwrap();
///     }
///     q.put(None).unwrap(); // end marker
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = Queue::new()?;
/// let child = Process::start(produce, q.clone())?;
/// let mut got = Vec::new();
/// while let Some(i) = q.get()? {
///     got.push(i);
/// }
/// child.join()?;
/// assert_eq!(got, [0, 1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct Queue<T> {
    pub(crate) core: Core,
    #[serde(skip)]
    _items: PhantomData<fn(T) -> T>,
}

impl<T> Queue<T> {
    /// An unbounded queue (no limit on the number of items) with the default buffer.
    ///
    /// ```
    /// let q = multiproc::Queue::<i32>::new()?;
    /// assert!(q.empty());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn new() -> Result<Queue<T>, QueueError> {
        QueueBuilder::new().build()
    }

    /// A queue holding at most `maxsize` items (0: no limit), like Python's `Queue(maxsize)`.
    ///
    /// ```
    /// let q = multiproc::Queue::with_maxsize(1)?;
    /// q.put(1)?;
    /// assert!(!q.put_nowait(2)?); // full
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>, QueueError> {
        QueueBuilder::new().maxsize(maxsize).build()
    }

    /// Settings beyond `maxsize`: the buffer size, or a joinable queue.
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::builder().buffer_size(1 << 16).build()?;
    /// q.put(7)?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder::new()
    }

    /// The number of items in the queue: those whose `put` has begun and whose `get` has
    /// not finished. Another process may change it at any moment.
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// q.put('a')?;
    /// q.put('b')?;
    /// assert_eq!(q.qsize(), 2);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn qsize(&self) -> usize {
        self.core.0.ring.len() as usize
    }

    /// Whether the queue holds no item (at this instant).
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// assert!(q.empty());
    /// q.put(1u8)?;
    /// assert!(!q.empty());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether a bounded queue holds `maxsize` items (always `false` without a bound).
    ///
    /// ```
    /// let q = multiproc::Queue::with_maxsize(1)?;
    /// assert!(!q.full());
    /// q.put(1u8)?;
    /// assert!(q.full());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn full(&self) -> bool {
        let max = self.maxsize();
        max != 0 && self.qsize() >= max
    }

    /// The item limit (0: none).
    ///
    /// ```
    /// assert_eq!(multiproc::Queue::<u8>::with_maxsize(3)?.maxsize(), 3);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn maxsize(&self) -> usize {
        self.core.0.ring.maxsize() as usize
    }

    /// Bytes of shared memory the queue has for items in transit.
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::new()?;
    /// assert_eq!(q.buffer_size(), multiproc::DEFAULT_BUFFER_SIZE);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn buffer_size(&self) -> usize {
        self.core.0.ring.capacity() as usize
    }

    /// Close this process's handle (and its clones): later `put` and `get` calls through it
    /// fail with [`QueueError::Closed`]. Other processes' handles are unaffected, and items
    /// already put stay in the queue.
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::new()?;
    /// q.close();
    /// assert!(matches!(q.put(1), Err(multiproc::QueueError::Closed)));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.core.0.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`close`](Queue::close) was called on this handle or a clone of it.
    ///
    /// ```
    /// let q = multiproc::Queue::<u8>::new()?;
    /// assert!(!q.is_closed());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.core.0.closed.load(Ordering::Relaxed)
    }
}

impl<T: Serialize> Queue<T> {
    /// Put an item, waiting for room if the queue is full. Takes the item or a reference
    /// to it. When `put` returns, the item is in the queue, even if this process exits
    /// right away.
    ///
    /// ```
    /// let q: multiproc::Queue<Vec<i32>> = multiproc::Queue::new()?;
    /// q.put(vec![1, 2])?;
    /// let v = vec![3];
    /// q.put(&v)?;
    /// assert_eq!(q.get()?, [1, 2]);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), QueueError> {
        self.core.put_untimed(item.borrow())
    }

    /// Put an item, waiting at most `timeout` for room: `Ok(true)` if it was put,
    /// `Ok(false)` if the queue stayed full (Python raises `queue.Full`; see
    /// [the timeout table](crate#timeouts)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::with_maxsize(1)?;
    /// assert!(q.put_timeout(1, Duration::from_millis(10))?);
    /// assert!(!q.put_timeout(2, Duration::from_millis(10))?); // full: not put
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    #[must_use = "`false` means the item was not put"]
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<bool, QueueError> {
        self.core.put(item.borrow(), deadline(Some(timeout)))
    }

    /// Put an item only if there is room right now: `Ok(false)` if there is none.
    ///
    /// ```
    /// let q = multiproc::Queue::with_maxsize(1)?;
    /// assert!(q.put_nowait(1)?);
    /// assert!(!q.put_nowait(2)?);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    #[must_use = "`false` means the item was not put"]
    pub fn put_nowait(&self, item: impl Borrow<T>) -> Result<bool, QueueError> {
        self.core.put(item.borrow(), Some(Instant::now()))
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Take the next item, waiting as long as needed.
    ///
    /// ```
    /// let q: multiproc::Queue<String> = multiproc::Queue::new()?;
    /// q.put("x".to_string())?;
    /// assert_eq!(q.get()?, "x");
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn get(&self) -> Result<T, QueueError> {
        self.core.get_untimed()
    }

    /// Take the next item, waiting at most `timeout`: `Ok(None)` if none came (Python
    /// raises `queue.Empty`; see [the timeout table](crate#timeouts)). A `get` that has begun
    /// to receive a large item waits for the rest of it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::<u8>::new()?;
    /// assert_eq!(q.get_timeout(Duration::from_millis(10))?, None);
    /// q.put(7)?;
    /// assert_eq!(q.get_timeout(Duration::from_secs(1))?, Some(7));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, QueueError> {
        self.core.get(deadline(Some(timeout)))
    }

    /// Take an item only if one is there now (`Ok(None)` otherwise).
    ///
    /// ```
    /// let q = multiproc::Queue::new()?;
    /// assert_eq!(q.get_nowait()?, None);
    /// q.put(5u8)?;
    /// assert_eq!(q.get_nowait()?, Some(5));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn get_nowait(&self) -> Result<Option<T>, QueueError> {
        self.core.get(Some(Instant::now()))
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            core: self.core.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.maxsize())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A [`Queue`] that also counts unfinished tasks (Python's `multiprocessing.JoinableQueue`):
/// every `put` adds one, every [`task_done`](JoinableQueue::task_done) removes one, and
/// [`join`](JoinableQueue::join) waits until none is left.
///
/// It dereferences to [`Queue`] for `put`, `get` and the rest.
///
/// ```
/// use multiproc::{JoinableQueue, Process};
///
/// fn worker(q: JoinableQueue<u64>) {
///     while let Ok(n) = q.get() {
///         let _ = n * n; // the work
///         q.task_done().unwrap();
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = JoinableQueue::new()?;
/// let w = multiproc::ProcessBuilder::new().daemon(true).start(worker, q.clone())?;
/// for n in 0..10 {
///     q.put(n)?;
/// }
/// q.join(); // every item was processed
/// assert_eq!(q.unfinished_tasks(), 0);
/// w.terminate()?;
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::new()?;
    /// assert_eq!(q.unfinished_tasks(), 0);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn new() -> Result<JoinableQueue<T>, QueueError> {
        QueueBuilder::new().build_joinable()
    }

    /// A joinable queue holding at most `maxsize` items (0: no limit).
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::with_maxsize(2)?;
    /// assert_eq!(q.maxsize(), 2);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn with_maxsize(maxsize: usize) -> Result<JoinableQueue<T>, QueueError> {
        QueueBuilder::new().maxsize(maxsize).build_joinable()
    }

    /// Mark one task (an item got earlier) as done.
    /// [`QueueError::TaskDoneTooManyTimes`] if no task is unfinished.
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// q.get()?;
    /// q.task_done()?;
    /// assert!(matches!(q.task_done(), Err(multiproc::QueueError::TaskDoneTooManyTimes)));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.queue.core.0.ring.finish_tasks(1)
    }

    /// Items put and not yet marked done.
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// assert_eq!(q.unfinished_tasks(), 1);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn unfinished_tasks(&self) -> usize {
        self.queue.core.0.ring.unfinished_tasks() as usize
    }

    /// Wait until every item put has been marked done.
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::<u8>::new()?;
    /// q.join(); // nothing was put
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn join(&self) {
        self.queue.core.0.ring.join_tasks(None);
    }

    /// Like [`join`](JoinableQueue::join), waiting at most `timeout`; `false` if tasks
    /// were still unfinished.
    ///
    /// ```
    /// let q = multiproc::JoinableQueue::new()?;
    /// q.put(1u8)?;
    /// assert!(!q.join_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.queue.core.0.ring.join_tasks(deadline(Some(timeout)))
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("qsize", &self.qsize())
            .field("unfinished_tasks", &self.unfinished_tasks())
            .finish()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let queue = Queue::deserialize(deserializer)?;
        if !queue.core.0.ring.joinable() {
            return Err(serde::de::Error::custom(
                "expected a JoinableQueue, got a plain Queue",
            ));
        }
        Ok(JoinableQueue { queue })
    }
}

/// The simplest queue (Python's `multiprocessing.SimpleQueue`): unbounded, `put`, `get`,
/// `empty` and `close`, with the same shared-memory ring as [`Queue`].
///
/// ```
/// use multiproc::{Process, SimpleQueue};
///
/// fn square(q: SimpleQueue<u64>) {
///     let n = q.get().unwrap();
///     q.put(n * n).unwrap();
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let q = SimpleQueue::new()?;
/// q.put(12)?;
/// let child = Process::start(square, q.clone())?;
/// child.join()?;
/// assert_eq!(q.get()?, 144);
/// # Ok(())
/// # }
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct SimpleQueue<T> {
    pub(crate) core: Core,
    #[serde(skip)]
    _items: PhantomData<fn(T) -> T>,
}

impl<T> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// ```
    /// assert!(multiproc::SimpleQueue::<u8>::new()?.empty());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn new() -> Result<SimpleQueue<T>, QueueError> {
        Ok(SimpleQueue {
            core: Core::new(QueueBuilder::<T>::new().config(false))?,
            _items: PhantomData,
        })
    }

    /// Whether no item is waiting (at this instant).
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::new()?;
    /// q.put(1u8)?;
    /// assert!(!q.empty());
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn empty(&self) -> bool {
        self.core.0.ring.len() == 0
    }

    /// Close this process's handle: later `put`/`get` through it fail with
    /// [`QueueError::Closed`].
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::<u8>::new()?;
    /// q.close();
    /// assert!(matches!(q.get(), Err(multiproc::QueueError::Closed)));
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn close(&self) {
        self.core.0.closed.store(true, Ordering::Relaxed);
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Put an item (waiting only if the buffer is full). Takes the item or a reference.
    ///
    /// ```
    /// let q: multiproc::SimpleQueue<&str> = multiproc::SimpleQueue::new()?;
    /// q.put("a")?;
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), QueueError> {
        self.core.put_untimed(item.borrow())
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Take the next item, waiting as long as needed.
    ///
    /// ```
    /// let q = multiproc::SimpleQueue::new()?;
    /// q.put(3.5f64)?;
    /// assert_eq!(q.get()?, 3.5);
    /// # Ok::<(), multiproc::QueueError>(())
    /// ```
    pub fn get(&self) -> Result<T, QueueError> {
        self.core.get_untimed()
    }
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue {
            core: self.core.clone(),
            _items: PhantomData,
        }
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &self.empty())
            .finish()
    }
}
