//! [`AsyncResult`]: the handle on one submitted task or map, and the [`Tasks`] behind it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::engine::{Delivery, Engine, deliver};
use super::{PoolError, ResultCell};

/// A result that is computed in the pool (Python's `AsyncResult`).
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
/// Dropping an `AsyncResult` does not cancel its task: the task runs and its result is
/// dropped (as in Python). Use [`cancel`](AsyncResult::cancel) or
/// [`kill`](AsyncResult::kill) to stop it.
pub struct AsyncResult<O> {
    pub(super) cell: Arc<ResultCell<O>>,
    pub(super) tasks: Tasks,
}

/// The chunks behind a result, to cancel or kill them.
#[derive(Clone, Debug)]
pub(crate) struct Tasks {
    pub(crate) engine: Weak<Engine>,
    pub(crate) ids: Vec<u64>,
}

impl Tasks {
    /// Withdraw them all if none has started: `true` if that happened.
    pub(crate) fn cancel(&self) -> bool {
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
    pub(crate) fn kill(&self) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|engine| engine.kill(&self.ids))
    }
}

impl<O> std::fmt::Debug for AsyncResult<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<O> AsyncResult<O> {
    /// Whether the result is there.
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

    /// Wait for the result and take it.
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

    /// Call `f` with the value once it is there (Python's `callback`), in the pool's
    /// result thread, or right away in this thread if it is already there.
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
        self.cell.on_complete(Box::new(move |r| {
            if let Ok(v) = r {
                f(v)
            }
        }));
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
        self.cell.on_complete(Box::new(move |r| {
            if let Err(e) = r {
                f(e)
            }
        }));
        self
    }

    /// Cancel the task if it has not been handed to the workers yet (for a `map_async`, if
    /// none of its chunks has): `true` if it is now (or was already) cancelled, and its
    /// result is [`PoolError::Cancelled`]; `false` if it runs or is done (Python's
    /// `Future.cancel` semantics). A pool hands tasks to its workers' shared ring at once
    /// while there is room, so only work waiting in the parent behind a full ring can be
    /// cancelled; [`kill`](AsyncResult::kill) stops a task wherever it is.
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let r = pool.apply_async(nap, 1)?;
    /// r.wait();
    /// assert!(!r.cancel()); // done
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn cancel(&self) -> bool {
        if self.ready() {
            return self.cell.error_is(|e| matches!(e, PoolError::Cancelled));
        }
        self.tasks.cancel()
    }

    /// Stop the task now, running or not: the worker running it is killed and replaced,
    /// and the result is [`PoolError::Killed`]. `true` if the task was not done yet. For a
    /// `map_async`, every chunk not done is stopped.
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
        !self.ready() && self.tasks.kill()
    }
}
