//! [`ProcessPoolExecutor`] (Python's `concurrent.futures.ProcessPoolExecutor`): submit a
//! function call, get a [`PoolFuture`]; wait for many with [`as_completed`](fn@as_completed)
//! and [`wait`](fn@wait), or `.await` them from any async runtime. (`multiproc::wait` at the
//! crate root is `multiprocessing.connection.wait`; this module's [`wait`](fn@wait) is the
//! futures one.)
//!
//! It runs on the same engine as [`Pool`](crate::Pool) (workers, shared-memory rings, a
//! collector thread), with one difference: only a few tasks (one per worker, plus one, as in Python) are
//! handed to the workers at a time; the others wait in the parent, where
//! [`PoolFuture::cancel`] and `shutdown(cancel_futures)` can still withdraw them.
//!
//! # A worker that dies fails only its task
//! Python's executor declares itself broken (`BrokenProcessPool`) when a worker dies and fails
//! every pending future. Here the future of the task the worker was running fails with
//! [`PoolError::WorkerDied`](crate::PoolError::WorkerDied) (naming the signal), a new
//! worker takes the dead one's place, and every other future completes normally: one
//! crashing input does not cost the whole batch.
//! Only an initializer that keeps failing makes the executor give up
//! ([`PoolError::InitializerFailed`](crate::PoolError::InitializerFailed) for everything).

mod api;
mod as_completed;
mod builder;
mod future;
mod map;
mod wait;

pub use api::ProcessPoolExecutor;
pub use as_completed::{AsCompleted, as_completed};
pub use builder::ExecutorBuilder;
pub use future::PoolFuture;
pub use map::ExecutorMap;
pub use wait::{ReturnWhen, Waited, wait};
