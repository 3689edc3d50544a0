//! `Semaphore` and `BoundedSemaphore`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::waiters::{self, WAITERS};
use super::{SyncError, deadline};
use crate::segment::{Shared, SharedState};
use crate::sys::memory;

/// The shared part: the count in the low 31 bits of one futex word, plus the
/// [`waiters::WAITERS`] bit (see `sync/waiters.rs` for why no wake-up can be lost).
#[repr(C)]
pub(crate) struct SemState {
    count: AtomicU32,
    /// Largest value `release` may reach ([`MAX_VALUE`]: unbounded).
    max: AtomicU32,
}

/// The largest value a semaphore can hold (the top bit of the word is the waiters bit).
const MAX_VALUE: u32 = !WAITERS;

// SAFETY: only atomics; zeroed memory is a valid (empty) state.
unsafe impl SharedState for SemState {
    const KIND: u32 = 4;
}

impl SemState {
    fn value(&self) -> u32 {
        self.count.load(Ordering::SeqCst) & !WAITERS
    }

    /// Take a permit if there is one; `Err(seen)` with the word seen if not.
    fn try_take_seen(&self) -> Result<(), u32> {
        let mut c = self.count.load(Ordering::SeqCst);
        while c & !WAITERS > 0 {
            // Keeps the waiters bit: the others may still sleep.
            match self
                .count
                .compare_exchange_weak(c, c - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return Ok(()),
                Err(now) => c = now,
            }
        }
        Err(c)
    }

    fn try_take(&self) -> bool {
        self.try_take_seen().is_ok()
    }

    fn acquire(&self, deadline: Option<Instant>) -> bool {
        if memory::spin_until(deadline, || self.try_take()) {
            return true;
        }
        loop {
            let seen = match self.try_take_seen() {
                Ok(()) => return true,
                Err(seen) => seen,
            };
            if !waiters::sleep(&self.count, seen, deadline) {
                return self.try_take();
            }
        }
    }

    fn release(&self, n: u32) -> Result<(), SyncError> {
        let max = self.max.load(Ordering::Relaxed);
        let mut c = self.count.load(Ordering::SeqCst);
        loop {
            let next = (c & !WAITERS)
                .checked_add(n)
                .filter(|v| *v <= max)
                .ok_or(SyncError::ReleasedTooManyTimes(max))?;
            // Clears the waiters bit: every sleeper is woken below and re-announces itself.
            match self
                .count
                .compare_exchange_weak(c, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => break,
                Err(now) => c = now,
            }
        }
        waiters::wake_if_waiters(&self.count, c);
        Ok(())
    }
}

/// A counting semaphore shared between processes (Python's `multiprocessing.Semaphore`).
///
/// ```
/// use multiproc::{Process, Semaphore};
///
/// fn worker(slots: Semaphore) -> u32 {
///     let _slot = slots.acquire(); // at most two workers hold a slot at once
///     slots.get_value()
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let slots = Semaphore::new(2)?;
/// let kids: Vec<_> = (0..3).map(|_| Process::start(worker, slots.clone())).collect::<Result<_, _>>()?;
/// for k in kids { assert!(k.join()? <= 1); }
/// assert_eq!(slots.get_value(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Semaphore {
    state: Shared<SemState>,
}

impl Semaphore {
    /// The largest value a semaphore can hold, 2<sup>31</sup> - 1 (larger values are refused
    /// with [`SyncError::Invalid`]).
    ///
    /// ```
    /// assert!(multiproc::Semaphore::new(multiproc::Semaphore::MAX_VALUE).is_ok());
    /// assert!(multiproc::Semaphore::new(multiproc::Semaphore::MAX_VALUE + 1).is_err());
    /// ```
    pub const MAX_VALUE: u32 = MAX_VALUE;

    /// A semaphore with `value` permits.
    ///
    /// ```
    /// assert_eq!(multiproc::Semaphore::new(3)?.get_value(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(value: u32) -> Result<Semaphore, SyncError> {
        Semaphore::with_max(value, MAX_VALUE)
    }

    fn with_max(value: u32, max: u32) -> Result<Semaphore, SyncError> {
        if value > MAX_VALUE || max > MAX_VALUE {
            return Err(SyncError::Invalid(
                "a semaphore's value must be at most Semaphore::MAX_VALUE (2^31 - 1)",
            ));
        }
        let state: Shared<SemState> = Shared::new(0)?;
        state.count.store(value, Ordering::SeqCst);
        state.max.store(max, Ordering::SeqCst);
        Ok(Semaphore { state })
    }

    /// Take a permit, waiting as long as needed; it is given back when the guard drops.
    ///
    /// ```
    /// let s = multiproc::Semaphore::new(1)?;
    /// let permit = s.acquire();
    /// assert_eq!(s.get_value(), 0);
    /// drop(permit);
    /// assert_eq!(s.get_value(), 1);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.state.acquire(None);
        SemaphoreGuard { sem: self }
    }

    /// Take a permit, waiting at most `timeout`; `None` if none became free.
    ///
    /// ```
    /// let s = multiproc::Semaphore::new(0)?;
    /// assert!(s.acquire_timeout(std::time::Duration::from_millis(10)).is_none());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.state
            .acquire(deadline(Some(timeout)))
            .then(|| SemaphoreGuard { sem: self })
    }

    /// Take a permit only if one is free now.
    ///
    /// ```
    /// let s = multiproc::Semaphore::new(1)?;
    /// let a = s.try_acquire();
    /// assert!(a.is_some() && s.try_acquire().is_none());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.state.try_take().then(|| SemaphoreGuard { sem: self })
    }

    /// Add a permit without a guard (Python's `release()`; any process may call it, e.g. to
    /// signal another one). Fails only for a [`BoundedSemaphore`] at its initial value.
    ///
    /// ```
    /// let s = multiproc::Semaphore::new(0)?;
    /// s.release()?;
    /// assert_eq!(s.get_value(), 1);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn release(&self) -> Result<(), SyncError> {
        self.state.release(1)
    }

    /// The number of free permits now (may change at once).
    ///
    /// ```
    /// assert_eq!(multiproc::Semaphore::new(4)?.get_value(), 4);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get_value(&self) -> u32 {
        self.state.value()
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish()
    }
}

/// A permit of a [`Semaphore`] or [`BoundedSemaphore`]; given back when dropped.
///
/// ```
/// let slots = multiproc::Semaphore::new(2)?;
/// let first = slots.acquire();
/// let _second = slots.acquire();
/// assert!(slots.try_acquire().is_none()); // both permits are out
/// drop(first); // given back
/// assert_eq!(slots.get_value(), 1);
/// assert!(slots.try_acquire().is_some());
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[must_use = "the permit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
}

impl SemaphoreGuard<'_> {
    /// Keep the permit taken (give it back later with `release`).
    ///
    /// ```
    /// let s = multiproc::Semaphore::new(1)?;
    /// s.acquire().forget();
    /// assert_eq!(s.get_value(), 0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        let _ = self.sem.state.release(1);
    }
}

/// A semaphore whose value may not be released above its initial value (Python's
/// `BoundedSemaphore`): releasing too often is [`SyncError::ReleasedTooManyTimes`].
///
/// ```
/// let s = multiproc::BoundedSemaphore::new(1)?;
/// assert!(s.release().is_err());
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits, which is also its maximum.
    ///
    /// ```
    /// let s = multiproc::BoundedSemaphore::new(2)?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(value: u32) -> Result<BoundedSemaphore, SyncError> {
        Ok(BoundedSemaphore {
            inner: Semaphore::with_max(value, value)?,
        })
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.inner
    }
}
