//! `Event`: a flag processes can wait for.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::waiters;
use super::{SyncError, deadline};
use crate::segment::{Shared, SharedState};
use crate::sys::memory;

/// The shared part: one futex word, [`SET`] or not, plus the waiters bit (see
/// `sync/waiters.rs` for why no wake-up can be lost).
#[repr(C)]
pub(crate) struct EventState {
    flag: AtomicU32,
}

const SET: u32 = 1;

// SAFETY: only atomics; zeroed memory is a valid (unset) event.
unsafe impl SharedState for EventState {
    const KIND: u32 = 5;
}

/// A flag shared between processes (Python's `multiprocessing.Event`): `set`, `clear`,
/// `is_set`, and `wait` until it is set.
///
/// ```
/// use multiproc::{Event, Process};
/// use std::time::Duration;
///
/// fn worker(stop: Event) -> u32 {
///     let mut rounds = 0;
///     while !stop.wait_timeout(Duration::from_millis(1)) { rounds += 1; }
///     rounds
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let stop = Event::new()?;
/// let child = Process::start(worker, stop.clone())?;
/// std::thread::sleep(Duration::from_millis(20));
/// stop.set();
/// child.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    state: Shared<EventState>,
}

impl Event {
    /// A new event, not set.
    ///
    /// ```
    /// assert!(!multiproc::Event::new()?.is_set());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new() -> Result<Event, SyncError> {
        Ok(Event {
            state: Shared::new(0)?,
        })
    }

    /// Whether the event is set.
    ///
    /// ```
    /// let e = multiproc::Event::new()?;
    /// e.set();
    /// assert!(e.is_set());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn is_set(&self) -> bool {
        self.state.flag.load(Ordering::SeqCst) & SET != 0
    }

    /// Set the event, waking every waiter.
    ///
    /// ```
    /// let e = multiproc::Event::new()?;
    /// e.set();
    /// assert!(e.wait_timeout(std::time::Duration::ZERO));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self) {
        let old = self.state.flag.swap(SET, Ordering::SeqCst);
        waiters::wake_if_waiters(&self.state.flag, old);
    }

    /// Reset the event.
    ///
    /// ```
    /// let e = multiproc::Event::new()?;
    /// e.set();
    /// e.clear();
    /// assert!(!e.is_set());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn clear(&self) {
        // Only a set event changes: a waiter's announcement on an unset one stays.
        let _ = self
            .state
            .flag
            .compare_exchange(SET, 0, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Wait until the event is set.
    ///
    /// ```
    /// let e = multiproc::Event::new()?;
    /// e.set();
    /// e.wait();
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Wait at most `timeout`; returns whether the event is set (Python's `wait(timeout)`).
    ///
    /// ```
    /// let e = multiproc::Event::new()?;
    /// assert!(!e.wait_timeout(std::time::Duration::from_millis(5)));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(deadline(Some(timeout)))
    }

    /// The futex word async waiters sleep on (see `crate::aio`).
    #[cfg(feature = "async")]
    pub(crate) fn flag_word(&self) -> &AtomicU32 {
        &self.state.flag
    }

    fn wait_until(&self, deadline: Option<std::time::Instant>) -> bool {
        if memory::spin_until(deadline, || self.is_set()) {
            return true;
        }
        loop {
            let seen = self.state.flag.load(Ordering::SeqCst);
            if seen & SET != 0 {
                return true;
            }
            if !waiters::sleep(&self.state.flag, seen, deadline) {
                return self.is_set();
            }
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
