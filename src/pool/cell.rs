//! Where an asynchronous result lands: the shared part of [`AsyncResult`](super::AsyncResult)
//! and [`PoolFuture`](crate::PoolFuture). It is filled once, by the pool's collector thread
//! (or whoever fails or cancels the task), and can be waited on by blocking threads, by an
//! async task (a `Waker`) and by [`Watch`]es, which `wait` and `as_completed` use to sleep
//! on many results at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::PoolError;

type Callback<O> = Box<dyn FnOnce(&Result<O, PoolError>) + Send>;

pub(crate) struct ResultCell<O> {
    state: Mutex<CellState<O>>,
    cv: Condvar,
    ready: AtomicBool,
}

struct CellState<O> {
    value: Option<Result<O, PoolError>>,
    /// Whether `value` was an error (kept after the value is taken).
    failed: Option<bool>,
    callbacks: Vec<Callback<O>>,
    waker: Option<Waker>,
    watches: Vec<(Arc<Watch>, usize)>,
}

/// Many results waited on at once: each pushes its key here when it completes.
#[derive(Default)]
pub(crate) struct Watch {
    completed: Mutex<VecDeque<usize>>,
    cv: Condvar,
}

impl Watch {
    /// The next key completed, waiting until `deadline`.
    pub(crate) fn next(&self, deadline: Option<Instant>) -> Option<usize> {
        let mut completed = self.completed.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(key) = completed.pop_front() {
                return Some(key);
            }
            completed = match deadline {
                None => self.cv.wait(completed).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.cv
                        .wait_timeout(completed, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn push(&self, key: usize) {
        self.completed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(key);
        self.cv.notify_all();
    }
}

impl<O> ResultCell<O> {
    pub(crate) fn new() -> ResultCell<O> {
        ResultCell {
            state: Mutex::new(CellState {
                value: None,
                failed: None,
                callbacks: Vec::new(),
                waker: None,
                watches: Vec::new(),
            }),
            cv: Condvar::new(),
            ready: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CellState<O>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run the callbacks (outside the lock: they may use the pool), then publish the value
    /// and wake every waiter (so `get` returns after the callbacks ran, as in Python).
    /// Only the first completion counts.
    pub(crate) fn complete(&self, value: Result<O, PoolError>) {
        if self.is_ready() {
            return;
        }
        let (waker, watches) = loop {
            let callbacks = {
                let mut st = self.lock();
                if st.failed.is_some() {
                    return;
                }
                if st.callbacks.is_empty() {
                    st.failed = Some(value.is_err());
                    st.value = Some(value);
                    self.ready.store(true, Ordering::SeqCst);
                    break (st.waker.take(), std::mem::take(&mut st.watches));
                }
                std::mem::take(&mut st.callbacks)
            };
            for cb in callbacks {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&value)));
            }
        };
        self.cv.notify_all();
        if let Some(waker) = waker {
            // A user's waker that panics must not take the collector thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
        }
        for (watch, key) in watches {
            watch.push(key);
        }
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// `Some(true)` if it completed with an error, `None` while not ready.
    pub(crate) fn failed(&self) -> Option<bool> {
        self.lock().failed
    }

    /// Whether it completed with an error matching `f` (the value must not be taken yet).
    pub(crate) fn error_is(&self, f: impl FnOnce(&PoolError) -> bool) -> bool {
        matches!(&self.lock().value, Some(Err(e)) if f(e))
    }

    /// A copy of the error, if it completed with one and it was not taken.
    pub(crate) fn error(&self) -> Option<PoolError> {
        match &self.lock().value {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// Wait until ready or `deadline`; `true` if ready.
    pub(crate) fn wait_until(&self, deadline: Option<Instant>) -> bool {
        if self.is_ready() || crate::sys::memory::spin_until(deadline, || self.is_ready()) {
            return true;
        }
        let mut st = self.lock();
        while st.failed.is_none() {
            match deadline {
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    st = self
                        .cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }

    /// Wait (at most `timeout`) and take the value; [`PoolError::ResultTimeout`] if it is
    /// not there by then.
    pub(crate) fn wait_and_take(&self, timeout: Option<Duration>) -> Result<O, PoolError> {
        if self.wait_until(crate::deadline::after_opt(timeout)) {
            self.take()
        } else {
            Err(PoolError::ResultTimeout)
        }
    }

    pub(crate) fn take(&self) -> Result<O, PoolError> {
        self.lock()
            .value
            .take()
            .unwrap_or_else(|| Err(PoolError::Failed("the result was already taken".into())))
    }

    /// Call `cb` with the value when it is there (now, in this thread, if it is).
    pub(crate) fn on_complete(&self, cb: Callback<O>) {
        let mut st = self.lock();
        if st.failed.is_none() {
            st.callbacks.push(cb);
            return;
        }
        // Complete already, so nothing sleeps on this lock: call it here.
        if let Some(v) = &st.value {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(v)));
        }
    }

    /// Report completion to `watch` under `key` (at once if already complete).
    pub(crate) fn watch(&self, watch: &Arc<Watch>, key: usize) {
        let mut st = self.lock();
        if st.failed.is_some() {
            drop(st);
            watch.push(key);
        } else {
            st.watches.push((watch.clone(), key));
        }
    }

    /// Stop reporting to `watch`.
    pub(crate) fn unwatch(&self, watch: &Arc<Watch>) {
        self.lock().watches.retain(|(w, _)| !Arc::ptr_eq(w, watch));
    }

    /// The value if it is there, else remember `cx`'s waker.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<O, PoolError>> {
        let mut st = self.lock();
        if st.failed.is_some() {
            drop(st);
            return Poll::Ready(self.take());
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
