//! # multiproc
//!
//! Everything Python's `multiprocessing` gives Python programs, for Rust programs that need
//! *processes* rather than threads: isolation of crashy or leaky native code, work that can
//! be killed on a timeout, memory isolation, and parallel work that one bad task cannot take
//! down.
//!
//! ```
//! use multiproc::{pipe, Connection, Process};
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! fn echo_upper(mut conn: Connection) {
//!     while let Ok(s) = conn.recv::<String>() {
//!         conn.send(&s.to_uppercase()).unwrap();
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A function and its argument run in a new process; the result comes back on join.
//! assert_eq!(Process::start(square, 7)?.join()?, 49);
//!
//! // Pipes carry any serde value, and are themselves passed to children.
//! let (mut here, there) = pipe()?;
//! let child = Process::start(echo_upper, there)?;
//! here.send(&"hello")?;
//! assert_eq!(here.recv::<String>()?, "HELLO");
//! drop(here); // the child sees end of file and returns
//! child.join()?;
//! # Ok(())
//! # }
//! ```
//!
//! No set-up is needed in `main`, in tests or in examples: see [`StartMethod`] for how
//! children find their code.
//!
//! ## Platform support
//! Linux is supported (x86_64 first-class; other Linux architectures should work). Other
//! platforms are not supported yet: the crate does not compile there, and says so. All OS
//! calls live in one private module (`sys`), the only part a port would replace.
//!
//! ## Map
//! - [`process`]: [`Process`], [`ProcessBuilder`], [`StartMethod`], [`current_process`],
//!   [`parent_process`], [`active_children`], [`cpu_count`].
//! - [`context`]: [`Context`], [`get_context`]: a start method chosen per group of objects.
//! - [`connection`]: [`pipe`], [`pipe_oneway`], [`Connection`], [`wait`].
//! - [`handle`]: [`Handle`], how OS handles travel between processes.
//! - [`listener`]: [`listener::Listener`], [`listener::Client`]: connections between unrelated
//!   processes (Unix or TCP), with Python's authentication handshake.
//! - [`sync`]: [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`],
//!   [`Condition`], [`Barrier`].
//! - [`logging`]: children's `log`/`tracing` records in the parent, [`logging::log_to_stderr`],
//!   output prefixing.
//! - [`manager`]: [`Manager`], a server process owning shared dicts, lists, namespaces and
//!   values, used through proxies, also over TCP.
//! - [`pickle`]: Python's pickle for plain data ([`Connection::send_pickle`],
//!   [`Connection::recv_pickle`]; feature `pickle`, on by default).
//! - [`shared`]: [`Value`], [`Array`], [`RawValue`], [`RawArray`], [`SharedMemory`],
//!   [`ShareableList`], [`SharedMemoryManager`].
//!
//! ## Timeouts
//! One rule for every blocking call: **running out of time is not an error.** The timed form
//! returns `Ok(None)` (or `None`) where the call gives a value, and `Ok(false)` (or `false`)
//! where it does not; `Err` always means something went wrong. The `try_`/`_nowait` forms are
//! the same calls with a zero timeout. A timeout too large for the clock (`Duration::MAX`)
//! means "wait forever". Futures (`multiproc::aio`) have no timed forms: wrap them in your
//! runtime's timeout (`tokio::time::timeout`), and dropping one loses nothing.
//!
//! | blocking call | timed form | on timeout |
//! |---|---|---|
//! | [`Process::join`] | [`Process::join_timeout`] | `Ok(false)` (still running) |
//! | [`ParentProcess::join_timeout`](process::ParentProcess::join_timeout) | — | `false` |
//! | [`Connection::recv`] | [`Connection::recv_timeout`], [`Connection::poll`] | `Ok(None)`, `Ok(false)` |
//! | [`Lock::acquire`], [`RLock::acquire`], [`Condition::acquire`] | `acquire_timeout`, `try_acquire` | `Ok(None)` |
//! | [`Semaphore::acquire`] | [`Semaphore::acquire_timeout`], [`Semaphore::try_acquire`] | `None` |
//! | [`Event::wait`] | [`Event::wait_timeout`] | `false` |
//! | [`CondGuard::wait`] | [`CondGuard::wait_timeout`], [`CondGuard::wait_for`] | `false` |
//! | [`Queue::get`] | [`Queue::get_timeout`], [`Queue::get_nowait`] | `Ok(None)` |
//! | [`Queue::put`] | [`Queue::put_timeout`], [`Queue::put_nowait`] | `Ok(false)` (not put) |
//! | [`JoinableQueue::join`] | [`JoinableQueue::join_timeout`] | `false` |
//! | [`AsyncResult::wait`], [`PoolFuture::wait`] | `wait_timeout` | `false` |
//! | manager proxies: `get`, `put`, `join`, `acquire`, `wait` | `get_timeout`, `put_timeout`, `join_timeout`, `acquire_timeout`, `wait_timeout` | `Ok(None)` / `Ok(false)`, as the local type |
//!
//! Three calls follow Python instead, because a timeout there changes more than the caller's
//! wait: [`Barrier::wait_timeout`] (and the manager's barrier) *breaks the barrier* for every
//! party, so it is `Err(SyncError::BrokenBarrier)`, as Python's `BrokenBarrierError`; and
//! [`AsyncResult::get_timeout`] and [`PoolFuture::result_timeout`] (and the items of
//! [`ProcessPoolExecutor::map_timeout`]) *consume* the handle, so they return
//! `Err(PoolError::ResultTimeout)`, as Python's `TimeoutError`, and the task goes on; use
//! `wait_timeout` first to keep the handle.
//!
//! ```
//! use std::time::Duration;
//! let q = multiproc::Queue::<u32>::with_maxsize(1)?;
//! assert!(q.put_timeout(1, Duration::from_millis(10))?); // put
//! assert!(!q.put_timeout(2, Duration::from_millis(10))?); // full: timed out
//! assert_eq!(q.get_timeout(Duration::from_millis(10))?, Some(1));
//! assert_eq!(q.get_timeout(Duration::from_millis(10))?, None); // empty: timed out
//! let lock = multiproc::Lock::new()?;
//! let guard = lock.acquire_timeout(Duration::MAX)?; // no deadline at all
//! assert!(guard.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

/// Re-export of `bytemuck`, whose `Pod` trait marks the element types [`Value`] and
/// [`Array`] accept (derive it for your own `#[repr(C)]` structs).
///
/// ```
/// assert_eq!(multiproc::Value::new(3u32)?.get()?, 3);
/// fn accepts<T: multiproc::bytemuck::Pod>() {}
/// accepts::<[f64; 4]>();
/// # Ok::<(), multiproc::SyncError>(())
/// ```
pub use bytemuck;

#[cfg(feature = "async")]
pub mod aio;
mod boot;
mod capture;
pub(crate) mod code;
pub mod connection;
pub mod context;
mod deadline;
mod event;
pub mod executor;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handle;
mod identity;
mod library_thread;
pub mod listener;
pub mod logging;
pub mod manager;
#[cfg(feature = "mpi")]
pub use pool::mpi;
mod panic_report;
#[cfg(feature = "pickle")]
pub mod pickle;
pub mod pool;
pub mod process;
pub mod queue;
mod segment;
pub mod shared;
pub mod sync;
mod sys;

pub use connection::{
    Connection, ConnectionError, DEFAULT_MAX_MESSAGE_SIZE, pipe, pipe_oneway, wait,
};
pub use context::{Context, get_context};
pub use executor::{
    AsCompleted, ExecutorBuilder, ExecutorMap, PoolFuture, ProcessPoolExecutor, ReturnWhen, Waited,
    as_completed,
};
pub use handle::{CodecError, Handle};
pub use manager::Manager;
pub use pool::{
    AsyncResult, Imap, MapWith, Pool, PoolBuilder, PoolError, StarArgs, TaskArg, TaskOutput,
};
#[allow(deprecated)]
pub use process::Builder;
pub use process::{
    ChildInfo, Limit, LimitError, Limits, Location, ParentProcess, Process, ProcessBuilder,
    ProcessError, ProcessInfo, RemotePanic, Run, StartMethod, active_children,
    allow_fork_with_threads, cpu_count, current_process, forkserver_pid, get_start_method,
    parent_process, set_start_method,
};
pub use queue::{DEFAULT_BUFFER_SIZE, JoinableQueue, Queue, QueueBuilder, QueueError, SimpleQueue};
pub use shared::{
    Array, ArrayGuard, AtomicInt, RawArray, RawValue, ShareableItem, ShareableList,
    ShareableListError, SharedMemory, SharedMemoryManager, Value, ValueGuard, resource_tracker_pid,
};
pub use sync::{
    Barrier, BoundedSemaphore, CondGuard, Condition, Event, Lock, LockGuard, RLock, RLockGuard,
    Semaphore, SemaphoreGuard, SyncError,
};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
