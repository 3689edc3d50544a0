//! `put_async`/`get_async` for [`Queue`] and [`SimpleQueue`].
//!
//! Each attempt is the queue's own non-blocking `put`/`get`; between attempts the call sleeps
//! through the process's futex watcher on the ring's *space* or *data* signal, after
//! announcing itself on it and re-checking (the ring's `Signal` protocol, unchanged). When
//! the signal cannot tell (the side lock is held by another producer or consumer of this or
//! another process, which will not signal when it lets go), the call yields to the runtime a
//! few times and then looks every millisecond until the holder is done.
//!
//! Cancellation: an attempt either puts or takes a whole item or nothing, so a dropped
//! future has put nothing / left the item in the queue.
//!
//! Items that stream through the ring (larger than a quarter of its buffer) are the
//! exception to "no thread waits": a `get_async` that has taken the first piece of such an
//! item reads the rest as the producer writes it, and a `put_async` of an item larger than
//! the whole buffer writes it as consumers make room, both in the calling thread. Give such
//! queues a buffer larger than their items ([`crate::QueueBuilder::buffer_size`]) when that
//! matters.

use std::borrow::Borrow;
use std::future::poll_fn;
use std::sync::atomic::AtomicU32;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::watcher::Sleeper;
use crate::handle;
use crate::queue::{Core, Queue, QueueError, SimpleQueue, with_encoded};

/// Yields to the runtime before a contended side lock is looked at every millisecond.
const YIELDS: u32 = 16;
const CONTENDED_POLL: Duration = Duration::from_millis(1);

enum Attempt {
    Done,
    /// Nothing done; the item was this many encoded bytes.
    Again(usize),
}

/// How a call waits after an attempt that did nothing.
struct Waiting {
    sleeper: Sleeper,
    yields: u32,
}

impl Waiting {
    fn new() -> Waiting {
        Waiting {
            sleeper: Sleeper::default(),
            yields: 0,
        }
    }

    /// The signal says "go on" already but the attempt failed (a side lock is held): try
    /// again soon.
    fn contended(&mut self, cx: &Context<'_>, core: &Core) -> Result<(), QueueError> {
        if self.yields < YIELDS {
            self.yields += 1;
            cx.waker().wake_by_ref();
            return Ok(());
        }
        let ring = &core.0.ring;
        let (word, announced) = ring.announce_data();
        let deadline = Some(Instant::now() + CONTENDED_POLL);
        Ok(self
            .sleeper
            .sleep(cx, word, announced, deadline, core.clone())?)
    }

    /// After an attempt that did nothing: wait until the next one may succeed. `ready` says
    /// whether it may already (room for the item, or data), `announce` announces the call on
    /// the signal that tells (space or data), and `deadline` bounds the sleep. `None`: attempt
    /// again at once; otherwise what the call's poll returns.
    fn wait_for<'r, T>(
        &mut self,
        cx: &Context<'_>,
        core: &Core,
        ready: impl Fn() -> bool,
        announce: impl FnOnce() -> (&'r AtomicU32, u32),
        deadline: impl FnOnce() -> Option<Instant>,
    ) -> Option<Poll<Result<T, QueueError>>> {
        if ready() {
            // Ready, yet the attempt did nothing: the side lock (put or get) is held.
            return Some(match self.contended(cx, core) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            });
        }
        // Announce on the signal, then look again: a consumer that frees room (a producer
        // that publishes data) after the announcement changes the word and wakes the watcher.
        let (word, announced) = announce();
        if ready() {
            return None;
        }
        let deadline = deadline();
        Some(
            match self
                .sleeper
                .sleep(cx, word, announced, deadline, core.clone())
            {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e.into())),
            },
        )
    }
}

impl Core {
    async fn put_async<T: Serialize + ?Sized>(&self, item: &T) -> Result<(), QueueError> {
        self.check_open()?;
        let ring = &self.0.ring;
        let mut waiting = Waiting::new();
        poll_fn(|cx| {
            loop {
                let attempt = with_encoded(item, |bytes| {
                    if !ring.fits_at_once(bytes.len()) {
                        // Only goes through while consumers take pieces: see the module docs.
                        return match ring.put(bytes, None)? {
                            true => Ok(Attempt::Done),
                            false => Err(QueueError::Io(std::io::Error::other(
                                "an untimed put timed out",
                            ))),
                        };
                    }
                    Ok(match ring.put(bytes, Some(Instant::now()))? {
                        true => Attempt::Done,
                        false => Attempt::Again(bytes.len()),
                    })
                });
                let len = match attempt {
                    Ok(Attempt::Done) => return Poll::Ready(Ok(())),
                    Ok(Attempt::Again(len)) => len,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                // Room, yet nothing put: the put lock is held; no room: sleep on the space
                // signal.
                let room = || ring.room_for(len);
                if let Some(poll) =
                    waiting.wait_for(cx, self, room, || ring.announce_space(), || None)
                {
                    return poll;
                }
            }
        })
        .await
    }

    async fn get_async<T: DeserializeOwned>(&self) -> Result<T, QueueError> {
        self.check_open()?;
        let ring = &self.0.ring;
        let mut waiting = Waiting::new();
        poll_fn(|cx| {
            loop {
                let got = ring.get(Some(Instant::now()), |bytes| {
                    handle::decode::<T>(bytes, Vec::new())
                });
                match got {
                    Ok(Some(decoded)) => return Poll::Ready(decoded.map_err(QueueError::from)),
                    Ok(None) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                // A producer that died inside a put leaves an item that only a repair
                // completes: look every HEAL_INTERVAL while one is open, as blocking `get`s do.
                let deadline = || {
                    if ring.needs_healing() {
                        ring.heal_now();
                        Some(Instant::now() + crate::queue::ring::Ring::HEAL_INTERVAL)
                    } else {
                        None
                    }
                };
                // Data, yet nothing taken: the get lock is held; no data: sleep on the data
                // signal.
                let data = || ring.has_data();
                if let Some(poll) =
                    waiting.wait_for(cx, self, data, || ring.announce_data(), deadline)
                {
                    return poll;
                }
            }
        })
        .await
    }
}

impl<T: Serialize> Queue<T> {
    /// Put an item, waiting for room as a future (no thread sleeps for it; see
    /// [`crate::aio`]). Dropping the future before it completes puts nothing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), multiproc::QueueError> {
    /// let q = multiproc::Queue::with_maxsize(1)?;
    /// q.put_async(1u32).await?;
    /// let q2 = q.clone();
    /// let consumer = tokio::spawn(async move { q2.get_async().await });
    /// q.put_async(2u32).await?; // waits until the consumer has taken 1
    /// assert_eq!(consumer.await.unwrap()?, 1);
    /// assert_eq!(q.get_async().await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_async(&self, item: impl Borrow<T>) -> Result<(), QueueError> {
        self.core.put_async(item.borrow()).await
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Take the next item as a future (no thread sleeps for it; see [`crate::aio`]).
    /// Dropping the future before it completes leaves the item in the queue. For a timeout,
    /// wrap it in `tokio::time::timeout`.
    ///
    /// ```
    /// use multiproc::{Process, Queue};
    ///
    /// fn produce(q: Queue<String>) { q.put("from the child".to_string()).unwrap(); }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let q = Queue::new()?;
    /// let child = Process::start(produce, q.clone())?;
    /// assert_eq!(q.get_async().await?, "from the child");
    /// child.join_async().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_async(&self) -> Result<T, QueueError> {
        self.core.get_async().await
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Put an item as a future (it waits only if the buffer is full); see
    /// [`Queue::put_async`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), multiproc::QueueError> {
    /// let q: multiproc::SimpleQueue<String> = multiproc::SimpleQueue::new()?;
    /// q.put_async("a".to_string()).await?;
    /// assert_eq!(q.get_async().await?, "a");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_async(&self, item: impl Borrow<T>) -> Result<(), QueueError> {
        self.core.put_async(item.borrow()).await
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Take the next item as a future; see [`Queue::get_async`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), multiproc::QueueError> {
    /// let q = multiproc::SimpleQueue::new()?;
    /// let q2 = q.clone();
    /// let consumer = tokio::spawn(async move { q2.get_async().await });
    /// q.put_async(7u8).await?;
    /// assert_eq!(consumer.await.unwrap()?, 7);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_async(&self) -> Result<T, QueueError> {
        self.core.get_async().await
    }
}
