//! [`AsyncResult`]: the one handle on submitted work, for pools and executors alike (the
//! executor's [`PoolFuture`](crate::PoolFuture) is this type), and the [`Tasks`] behind it.
//!
//! Python has two handles for the same thing, `multiprocessing.pool.AsyncResult` and
//! `concurrent.futures.Future`; here both vocabularies name the methods of one type, so a
//! result of `apply_async` can be `.await`ed or passed to [`as_completed`](crate::as_completed),
//! and a future of `submit` can be asked `ready()` or `get()`.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use super::engine::{Delivery, Engine, deliver};
use super::{PoolError, ResultCell};

/// A result that is computed in the pool: Python's `AsyncResult` and
/// `concurrent.futures.Future` in one handle (the executor calls it
/// [`PoolFuture`](crate::PoolFuture)). Wait for it with [`get`](AsyncResult::get) (or
/// [`result`](AsyncResult::result)), or `.await` it: it is a [`std::future::Future`], so an
/// async program waits without blocking its runtime.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let pool = multiproc::Pool::new(1)?;
/// let r = pool.apply_async(square, 7)?;
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.successful(), Some(true));
/// assert_eq!(r.get()?, 49);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
///
/// Dropping it does not cancel its task (as in Python): the task runs and its result is
/// dropped, so `ex.submit(f, x)?;` alone is fire-and-forget. Use
/// [`cancel`](AsyncResult::cancel) (work not handed to a worker yet) or
/// [`kill`](AsyncResult::kill) (any work) to stop it.
pub struct AsyncResult<O> {
    pub(crate) cell: Arc<ResultCell<O>>,
    tasks: Tasks,
}

/// The chunks behind a result, to cancel or kill them.
#[derive(Clone, Debug)]
struct Tasks {
    engine: Weak<Engine>,
    /// In submission order; never empty for a result that waits for work (an empty map's
    /// result is complete at once).
    ids: Vec<u64>,
}

impl Tasks {
    /// Withdraw them all if none has been taken by a worker: `true` if that happened.
    fn cancel(&self) -> bool {
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        match engine.cancel_all(&self.ids) {
            Some(sinks) => {
                for sink in sinks {
                    deliver(sink, Delivery::Failed(PoolError::Cancelled));
                }
                true
            }
            None => false,
        }
    }

    /// Stop those not done, killing the workers that run them: `true` if any was not done.
    fn kill(&self) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|engine| engine.kill(&self.ids))
    }

    /// Whether a worker has taken any of them.
    fn started(&self) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|engine| engine.any_started(&self.ids))
    }
}

impl<O> AsyncResult<O> {
    /// A handle on `cell`, which the chunks `ids` of `engine` fill.
    pub(crate) fn new(cell: Arc<ResultCell<O>>, engine: &Arc<Engine>, ids: Vec<u64>) -> Self {
        AsyncResult {
            cell,
            tasks: Tasks {
                engine: Arc::downgrade(engine),
                ids,
            },
        }
    }
}

impl<O> std::fmt::Debug for AsyncResult<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.cancelled() {
            "cancelled"
        } else if self.done() {
            "finished"
        } else if self.running() {
            "running"
        } else {
            "pending"
        };
        f.debug_struct("AsyncResult")
            .field("id", &self.id())
            .field("state", &state)
            .finish()
    }
}

impl<O> AsyncResult<O> {
    /// The number of its (first) task in its pool or executor, in submission order: tells
    /// results apart, e.g. those [`as_completed`](fn@crate::as_completed) hands back.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let (a, b) = (ex.submit(one, ())?, ex.submit(one, ())?);
    /// assert!(a.id() < b.id());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.tasks.ids.first().copied().unwrap_or(0)
    }

    /// Whether the result is there: a value, an error, or cancelled (Python's `ready()`;
    /// [`done`](AsyncResult::done) is the futures name).
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(one, ())?;
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.cell.is_ready()
    }

    /// Whether it finished, with a value, an error, or cancelled (Python's `Future.done()`;
    /// the same as [`ready`](AsyncResult::ready)).
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(one, ())?;
    /// f.wait();
    /// assert!(f.done());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn done(&self) -> bool {
        self.ready()
    }

    /// Whether a worker has taken its work and it is not done (it can no longer be
    /// cancelled).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 300)?;
    /// std::thread::sleep(std::time::Duration::from_millis(100));
    /// assert!(f.running());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn running(&self) -> bool {
        !self.done() && self.tasks.started()
    }

    /// Whether it was cancelled.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let _busy: Vec<_> = (0..4).map(|_| ex.submit(nap, 200)).collect::<Result<_, _>>()?;
    /// let last = ex.submit(nap, 200)?;
    /// assert!(last.cancel());
    /// assert!(last.cancelled());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancelled(&self) -> bool {
        self.cell.error_is(|e| matches!(e, PoolError::Cancelled))
    }

    /// `Some(true)` if it finished without error, `Some(false)` if it failed, `None` if
    /// not ready (Python raises `ValueError` then).
    ///
    /// ```
    /// fn boom(_: ()) { panic!("no") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(boom, ())?;
    /// r.wait();
    /// assert_eq!(r.successful(), Some(false));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn successful(&self) -> Option<bool> {
        self.cell.failed().map(|failed| !failed)
    }

    /// Wait until it is done; a copy of its error if it failed (Python's
    /// `Future.exception()`).
    ///
    /// ```
    /// fn boom(_: ()) { panic!("bad input") }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(boom, ())?;
    /// assert!(matches!(f.error(), Some(multiproc::PoolError::Panicked(_))));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn error(&self) -> Option<PoolError> {
        self.cell.wait_until(None);
        self.cell.error()
    }

    /// Wait until the result is there.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.apply_async(one, ())?.wait();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait(&self) {
        self.cell.wait_until(None);
    }

    /// Wait at most `timeout`; `true` if the result is there.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 500)?;
    /// assert!(!r.wait_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait_until(crate::deadline::after(timeout))
    }

    /// Wait for the result and take it: the value, or why there is none (the task's panic
    /// with its message, location and backtrace, its worker's death, a timeout,
    /// cancellation). Python's `AsyncResult.get()`; [`result`](AsyncResult::result) is the
    /// futures name.
    ///
    /// ```
    /// fn boom(_: ()) -> u8 { panic!("no luck") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let err = pool.apply_async(boom, ())?.get().unwrap_err();
    /// assert!(err.to_string().contains("no luck"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn get(self) -> Result<O, PoolError> {
        self.cell.wait_and_take(None)
    }

    /// Wait at most `timeout` for the result; [`PoolError::ResultTimeout`] if it is not
    /// there (the task goes on; use [`wait_timeout`](AsyncResult::wait_timeout) to keep
    /// the handle).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 500)?;
    /// let e = r.get_timeout(std::time::Duration::from_millis(10));
    /// assert!(matches!(e, Err(multiproc::PoolError::ResultTimeout)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn get_timeout(self, timeout: Duration) -> Result<O, PoolError> {
        self.cell.wait_and_take(Some(timeout))
    }

    /// [`get`](AsyncResult::get) by its futures name (Python's `Future.result()`).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// assert_eq!(ex.submit(square, 6)?.result()?, 36);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result(self) -> Result<O, PoolError> {
        self.get()
    }

    /// [`get_timeout`](AsyncResult::get_timeout) by its futures name (Python's
    /// `Future.result(timeout)`).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 500)?;
    /// assert!(matches!(f.result_timeout(std::time::Duration::from_millis(10)), Err(multiproc::PoolError::ResultTimeout)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result_timeout(self, timeout: Duration) -> Result<O, PoolError> {
        self.get_timeout(timeout)
    }

    /// Call `f` with the outcome once it is there (Python's `Future.add_done_callback`):
    /// in the pool's result thread, or at once in this thread if it is there already.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn square(x: u64) -> u64 { x * x }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// ex.submit(square, 5)?.add_done_callback(move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn add_done_callback(&self, f: impl FnOnce(&Result<O, PoolError>) + Send + 'static) {
        self.cell.on_complete(Box::new(f));
    }

    /// Call `f` with the value once it is there (Python's `callback` of `apply_async`), like
    /// [`add_done_callback`](AsyncResult::add_done_callback) but only on success.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// pool.apply_async(square, 5)?.callback(move |v| tx.send(*v).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn callback(self, f: impl FnOnce(&O) + Send + 'static) -> Self {
        self.add_done_callback(move |r| {
            if let Ok(v) = r {
                f(v)
            }
        });
        self
    }

    /// Call `f` with the error if the task fails (Python's `error_callback`), like
    /// [`callback`](AsyncResult::callback).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// fn boom(_: ()) { panic!("bad") }
    /// let pool = multiproc::Pool::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// pool.apply_async(boom, ())?.error_callback(move |e| tx.send(e.to_string()).unwrap());
    /// assert!(rx.recv().unwrap().contains("bad"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn error_callback(self, f: impl FnOnce(&PoolError) + Send + 'static) -> Self {
        self.add_done_callback(move |r| {
            if let Err(e) = r {
                f(e)
            }
        });
        self
    }

    /// Cancel it if no worker has taken its work yet (for a `map_async`, none of its
    /// chunks): `true` if it is now (or was already) cancelled, and its result is
    /// [`PoolError::Cancelled`]; `false` if it runs or is done (Python's `Future.cancel`).
    /// A pool hands tasks to its workers' shared ring at once while there is room, so only
    /// work waiting in the parent behind a full ring can be cancelled (an executor keeps
    /// all but a few tasks in the parent); [`kill`](AsyncResult::kill) stops a task
    /// wherever it is.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let first = ex.submit(nap, 300)?;
    /// let queued: Vec<_> = (0..5).map(|_| ex.submit(nap, 1)).collect::<Result<_, _>>()?;
    /// assert!(queued.last().unwrap().cancel());
    /// first.wait();
    /// assert!(!first.cancel()); // done
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.done() {
            return self.cancelled();
        }
        self.tasks.cancel()
    }

    /// Stop the work now, queued or running: the workers running it are killed and
    /// replaced, and the result is [`PoolError::Killed`]. `true` if it was not done yet.
    /// For a `map_async`, every chunk not done is stopped. (Python cannot do this.)
    ///
    /// ```
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(spin, ())?;
    /// assert!(r.kill());
    /// assert!(matches!(r.get(), Err(multiproc::PoolError::Killed)));
    /// fn one(_: ()) -> u8 { 1 }
    /// assert_eq!(pool.apply(one, ())?, 1); // a new worker took its place
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn kill(&self) -> bool {
        !self.done() && self.tasks.kill()
    }
}

/// `.await` gives the result, as [`get`](AsyncResult::get) does, without blocking the
/// runtime's thread.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), multiproc::PoolError> {
/// let pool = multiproc::Pool::new(1)?;
/// assert_eq!(pool.apply_async(square, 3)?.await?, 9);
/// # Ok(())
/// # }
/// ```
impl<O> std::future::Future for AsyncResult<O> {
    type Output = Result<O, PoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_take(cx)
    }
}
