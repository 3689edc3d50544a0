//! Process pools: [`Pool`] (Python's `multiprocessing.Pool`).
//!
//! A pool keeps `n` worker processes and runs functions on them: `map`, `imap`,
//! `imap_unordered`, `starmap`, `apply` and their `_async` forms. Work travels as *chunks*
//! of items through a shared-memory ring that every worker takes from (see `engine/`);
//! results come back through a second ring to a collector thread in the parent.
//!
//! # Failures stay local
//! - A task that panics fails only itself: its result is [`PoolError::Panicked`] with the
//!   message, location and backtrace from the worker; the other tasks go on.
//! - A worker that dies (killed, aborted, a segfault in native code) never hangs the pool:
//!   the item it was running fails with [`PoolError::WorkerDied`] naming the signal, a new
//!   worker takes its place, and every other item completes. Items of the same chunk that
//!   had not run are run by another worker; items of that chunk that had *finished* are run
//!   again, because their results died with the worker (use a chunk size of 1 for at most
//!   one run per item).
//! - With [`PoolBuilder::task_timeout`], an item running longer is stopped by killing its
//!   worker (which is replaced) and fails with [`PoolError::Timeout`]. An item that panicked
//!   is reported as the panic however long its report takes (a backtrace is captured only
//!   when `RUST_BACKTRACE`/`RUST_LIB_BACKTRACE` ask, and resolving it is slow).
//! - A result whose `Deserialize` fails or panics in the parent fails only its task, with
//!   [`PoolError::ResultDecode`]; callbacks that panic lose nothing either.
//! - With [`PoolBuilder::limits`], a task that takes its worker past the memory or CPU-time
//!   limit fails alone with [`PoolError::MemoryLimit`] or [`PoolError::CpuLimit`], and the
//!   worker is replaced; [`PoolBuilder::max_memory_per_child`] retires a worker that has grown
//!   past a resident size after a task, keeping the task's result.
//! - [`AsyncResult::kill`] stops one task (killing and replacing its worker) without
//!   terminating the pool.
//!
//! # Tasks
//! A task is a function pointer, `fn(A) -> R`: a function item or a closure that captures
//! nothing (a worker is another process, which finds the function in its own copy of the
//! program). A closure that captures a variable is refused where it is passed, by the type
//! checker ("closures can only be coerced to `fn` types if they do not capture any
//! variables"). The task's data goes in the items, which like the results are any serde
//! types ([`TaskArg`], [`TaskOutput`]); [`apply_async!`](crate::apply_async!) puts named variables there for you.

mod api;
mod builder;
mod cell;
pub(crate) mod engine;
mod error;
mod imap;
mod map;
#[cfg(feature = "mpi")]
pub mod mpi;
mod packed;
pub(crate) mod progress;
mod result;
pub(crate) mod status;
pub(crate) mod task;
pub(crate) mod worker;

pub use api::Pool;
pub use builder::PoolBuilder;
pub(crate) use cell::{ResultCell, Watch};
pub(crate) use engine::{Delivery, Engine, deliver};
pub use error::PoolError;
pub(crate) use error::zero_chunksize;
pub use imap::Imap;
pub use map::MapWith;
pub(crate) use map::{MAX_CHUNK, decode_chunk, encode_plain, submit_chunk, submit_one};
pub use result::AsyncResult;
pub use task::{StarArgs, TaskArg, TaskOutput};
