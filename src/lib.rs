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
//! - [`process`]: [`Process`], [`Builder`], [`StartMethod`], [`current_process`],
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
//!   [`Connection::recv_pickle`]).
//! - [`shared`]: [`Value`], [`Array`], [`RawValue`], [`RawArray`], [`SharedMemory`].

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
pub mod connection;
pub mod context;
mod deadline;
pub mod executor;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handle;
pub mod listener;
pub mod logging;
pub mod manager;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod pickle;
pub mod pool;
pub mod process;
pub mod queue;
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
pub use pool::{AsyncResult, Imap, MapWith, Pool, PoolBuilder, PoolError, StarFn};
pub use process::{
    Builder, ChildInfo, Location, ParentProcess, Process, ProcessError, ProcessInfo, RemotePanic,
    Run, StartMethod, active_children, allow_fork_with_threads, cpu_count, current_process,
    forkserver_pid, get_start_method, parent_process, set_start_method,
};
pub use queue::{DEFAULT_BUFFER_SIZE, JoinableQueue, Queue, QueueBuilder, QueueError, SimpleQueue};
pub use shared::{
    Array, ArrayGuard, AtomicInt, RawArray, RawValue, SharedMemory, Value, ValueGuard,
    resource_tracker_pid,
};
pub use sync::{
    AcquireError, Barrier, BoundedSemaphore, CondGuard, Condition, Event, Lock, LockGuard, RLock,
    RLockGuard, Semaphore, SemaphoreGuard, SyncError,
};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
