//! [`PoolFuture`]: the result of one submitted task, to wait for, cancel, kill or `.await`.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::pool::{Delivery, Engine, PoolError, ResultCell, deliver};

/// The result of a task submitted to a [`ProcessPoolExecutor`](super::ProcessPoolExecutor)
/// (Python's `concurrent.futures.Future`). Wait for it with [`result`](PoolFuture::result),
/// or `.await` it: it is a [`std::future::Future`], so an async program waits without
/// blocking its runtime.
///
/// ```
/// fn square(x: u64) -> u64 { x * x }
/// let ex = multiproc::ProcessPoolExecutor::new(1)?;
/// let f = ex.submit(square, 6)?;
/// f.wait();
/// assert!(f.done());
/// assert!(f.error().is_none());
/// assert_eq!(f.result()?, 36);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
///
/// Dropping a `PoolFuture` does not cancel its task (as in Python): the task runs and its
/// result is dropped, so `ex.submit(f, x)?;` alone is fire-and-forget. Use
/// [`cancel`](PoolFuture::cancel) (queued tasks) or [`kill`](PoolFuture::kill) (any task)
/// to stop it.
pub struct PoolFuture<R> {
    pub(super) cell: Arc<ResultCell<R>>,
    pub(super) id: u64,
    pub(super) engine: Weak<Engine>,
}

impl<R> std::fmt::Debug for PoolFuture<R> {
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
        f.debug_struct("PoolFuture")
            .field("id", &self.id)
            .field("state", &state)
            .finish()
    }
}

impl<R> PoolFuture<R> {
    /// The task's number in its executor (in submission order; tells futures apart, e.g.
    /// those [`as_completed`](fn@super::as_completed) hands back).
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let (a, b) = (ex.submit(one, ())?, ex.submit(one, ())?);
    /// assert!(a.id() < b.id());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether it finished (with a value, an error, or cancelled).
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
        self.cell.is_ready()
    }

    /// Whether a worker has taken it and it is not done (it can no longer be cancelled).
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
        !self.done()
            && self
                .engine
                .upgrade()
                .is_some_and(|engine| !engine.is_queued(self.id))
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

    /// Cancel it if no worker has taken it yet; `true` if it is (now or already) cancelled,
    /// `false` if it runs or is done. A cancelled future's result is
    /// [`PoolError::Cancelled`].
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let first = ex.submit(nap, 300)?;
    /// let queued: Vec<_> = (0..5).map(|_| ex.submit(nap, 1)).collect::<Result<_, _>>()?;
    /// assert!(queued.last().unwrap().cancel());
    /// std::thread::sleep(std::time::Duration::from_millis(100));
    /// assert!(!first.cancel()); // running
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.done() {
            return self.cancelled();
        }
        let Some(engine) = self.engine.upgrade() else {
            return false;
        };
        match engine.cancel(self.id) {
            Some(sink) => {
                deliver(sink, Delivery::Failed(PoolError::Cancelled));
                true
            }
            None => false,
        }
    }

    /// Stop the task now, queued or running: the worker running it is killed and replaced,
    /// and the result is [`PoolError::Killed`]. `true` if it was not done yet. (Python's
    /// futures cannot do this.)
    ///
    /// ```
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(spin, ())?;
    /// assert!(f.kill());
    /// assert!(matches!(f.result(), Err(multiproc::PoolError::Killed)));
    /// assert_eq!(ex.submit(one, ())?.result()?, 1); // a new worker took its place
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn kill(&self) -> bool {
        !self.done()
            && self
                .engine
                .upgrade()
                .is_some_and(|engine| engine.kill(&[self.id]))
    }

    /// Wait until it is done.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// ex.submit(one, ())?.wait();
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait(&self) {
        self.cell.wait_until(None);
    }

    /// Wait at most `timeout`; `true` if it is done.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 500)?;
    /// assert!(!f.wait_timeout(std::time::Duration::from_millis(10)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.cell.wait_until(crate::deadline::after(timeout))
    }

    /// Wait for the result and take it: the value, or why there is none (the task's panic
    /// with its message, location and backtrace, its worker's death, a timeout,
    /// cancellation).
    ///
    /// ```
    /// fn boom(_: ()) -> u8 { panic!("no luck") }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let err = ex.submit(boom, ())?.result().unwrap_err();
    /// assert!(err.to_string().contains("no luck"));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result(self) -> Result<R, PoolError> {
        self.cell.wait_and_take(None)
    }

    /// Wait at most `timeout` for the result (Python's `result(timeout)`):
    /// [`PoolError::ResultTimeout`] if it is not there (the task goes on; use
    /// [`wait_timeout`](PoolFuture::wait_timeout) to keep the future).
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let ex = multiproc::ProcessPoolExecutor::new(1)?;
    /// let f = ex.submit(nap, 500)?;
    /// assert!(matches!(f.result_timeout(std::time::Duration::from_millis(10)), Err(multiproc::PoolError::ResultTimeout)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn result_timeout(self, timeout: Duration) -> Result<R, PoolError> {
        self.cell.wait_and_take(Some(timeout))
    }

    /// Wait until it is done; a copy of its error if it failed (Python's `exception()`).
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

    /// Call `f` with the outcome once it is done (Python's `add_done_callback`): in the
    /// executor's result thread, or at once in this thread if it is done already.
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
    pub fn add_done_callback(&self, f: impl FnOnce(&Result<R, PoolError>) + Send + 'static) {
        self.cell.on_complete(Box::new(f));
    }
}

/// `.await` gives the result, as [`result`](PoolFuture::result) does, without blocking the
/// runtime's thread.
impl<R> std::future::Future for PoolFuture<R> {
    type Output = Result<R, PoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.cell.poll_take(cx)
    }
}
