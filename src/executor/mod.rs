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
mod map;
mod wait;

pub use api::ProcessPoolExecutor;
pub use as_completed::{AsCompleted, as_completed};
pub use builder::ExecutorBuilder;

/// The result of a task submitted to a [`ProcessPoolExecutor`] (Python's
/// `concurrent.futures.Future`): the pool's [`AsyncResult`](crate::AsyncResult), one handle
/// for both, with the futures names ([`done`](crate::AsyncResult::done),
/// [`result`](crate::AsyncResult::result), [`add_done_callback`](crate::AsyncResult::add_done_callback),
/// ...) beside the pool's. It is a [`std::future::Future`]: `.await` it.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let ex = multiproc::ProcessPoolExecutor::new(1)?;
/// let f: multiproc::PoolFuture<u64> = ex.submit(square, 6)?;
/// f.wait();
/// assert!(f.done());
/// assert!(f.error().is_none());
/// assert_eq!(f.result()?, 36);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
pub type PoolFuture<R> = crate::pool::AsyncResult<R>;
pub use map::ExecutorMap;
pub use wait::{ReturnWhen, Waited, wait};
