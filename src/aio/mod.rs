//! Waiting on processes and IPC from async code (feature `async`, on by default): futures
//! for [`AsyncConnection`] send/receive, [`Queue`](crate::Queue) and
//! [`SimpleQueue`](crate::SimpleQueue) `put_async`/`get_async`,
//! [`Event::wait_async`](crate::Event::wait_async),
//! [`Lock::acquire_async`](crate::Lock::acquire_async),
//! [`Process::join_async`](crate::Process::join_async) /
//! [`wait_async`](crate::Process::wait_async) and [`AsyncListener::accept`]. None of them
//! ties up a thread per waiting call. They run on tokio (1.x, a runtime with I/O enabled;
//! the listener's handshake also uses its timers).
//!
//! ```
//! use multiproc::aio::AsyncConnection;
//! use multiproc::{pipe, Connection, Process, Queue};
//!
//! fn worker((mut conn, results): (Connection, Queue<u64>)) {
//!     while let Ok(n) = conn.recv::<u64>() {
//!         results.put(n * n).unwrap();
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (here, there) = pipe()?;
//! let results = Queue::new()?;
//! let child = Process::start(worker, (there, results.clone()))?;
//! let mut here = AsyncConnection::new(here)?;
//! for n in 1..=3u64 {
//!     here.send(&n).await?;
//!     assert_eq!(results.get_async().await?, n * n);
//! }
//! drop(here); // end of file: the worker returns
//! child.join_async().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # How each kind of object is waited for
//! - **Descriptors** (connections, the listening socket, a child's pidfd and status
//!   connection) are registered with tokio's reactor (`tokio::io::unix::AsyncFd`, epoll);
//!   reads and writes are the non-blocking forms of the blocking calls' own reads and writes.
//! - **Shared-memory primitives** (`Queue`, `SimpleQueue`, `Event`, `Lock`) sleep on futex
//!   words, which epoll cannot watch. They are waited for by the process's *futex watcher*:
//!   one thread (`multiproc-aio`, started on first use) that sleeps on the words of every
//!   waiting call at once with `futex_waitv` (Linux 5.16+; 128 words per call, beyond that
//!   it also polls every millisecond) and wakes the tasks whose word changed.
//!
//! # Why a watcher thread and not an eventfd
//! The primitives are shared between processes, and whoever wakes a waiter may be another
//! process (or a process started without async code at all). An eventfd or pipe belongs to
//! one process: a notifier elsewhere would need it passed over first, for every primitive
//! and every waiting process, and the primitives' wake paths (today: one load when nobody
//! sleeps, a `FUTEX_WAKE` otherwise) would grow a registry of descriptors to write to. The
//! watcher needs none of that: to the primitive it is one more sleeper of this process,
//! following the same protocol as a blocking waiter (announce on the word, re-check, sleep
//! while the word holds the announced value), so the lost-wake-up arguments of
//! `sync/waiters.rs` and of the queue's `Signal` apply unchanged and the queue and event
//! code is untouched. It costs one thread per process in total (not one per call), and a
//! wake-up passes through it (a few microseconds). The exception is [`Lock`](crate::Lock): a
//! priority-inheritance mutex cannot be slept on by anyone but a thread that will own it, so
//! the lock gained a small release notification (`released`, the same waiters-bit protocol;
//! a release reads it and writes it only when an async acquirer announced itself), and an
//! async acquirer also looks every 20 ms so that a holder's death is noticed.
//!
//! # Cancellation
//! Every future here may be dropped at any `.await` without losing data: a receive keeps
//! what it read of a message buffered for the next one, a queue `get_async` takes an item
//! whole or not at all, a `put_async` puts it whole or not at all, a lock is only held once
//! the guard is returned, and a committed send is finished by the next send (see
//! [`AsyncConnection`]). Timeouts are therefore `tokio::time::timeout(d, future)`.

mod connection;
mod fd;
mod listener;
mod process;
mod queue;
mod sync;
mod watcher;

pub use connection::AsyncConnection;
pub use listener::AsyncListener;
