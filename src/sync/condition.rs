//! `Condition`: wait for a state change announced by another process.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lock::{LockState, Obtained};
use super::{Lock, RLock, SyncError, deadline};
use crate::segment::{Shared, SharedState};
use crate::sys::memory;

/// The shared part of a condition.
///
/// - `seq`: the futex word sleepers wait on; every notify that wakes anyone bumps it.
/// - `waiters`: waiters that have not yet been given a notification; `tickets`: notifications
///   given and not yet taken. Both are read and written only under the condition's lock.
///
/// A notify of `n` issues `min(n, waiters - tickets)` tickets and wakes *every* sleeper; a
/// waiter returns as notified only once it holds the lock again and takes a ticket. Woken
/// waiters that find none left go back to sleep without returning.
///
/// Why no notification can be lost when a process dies between any two instructions: a
/// ticket is taken only under the lock by a waiter that is about to return; every sleeper is
/// woken by every notify, so a waiter that is killed after the notify and before it takes a
/// ticket leaves the ticket to the others, which were woken too. (Waking exactly `n`, as a
/// futex wake of `n` would, loses the notification when one of those `n` dies.) A waiter that
/// dies while holding the lock after taking its ticket is like one that died after `wait`
/// returned: the next holder's guard reports `owner_died()`.
///
/// What a death can change: a waiter killed while waiting stays counted in `waiters`, so a
/// later notify may issue one ticket too many, which a later waiter takes: a spurious
/// wake-up, which every condition variable allows (callers re-check, or use `wait_for`).
/// It never makes a notify wake fewer waiters than asked, and it is bounded by the number of
/// waiters that died.
#[repr(C)]
pub(crate) struct CondState {
    seq: AtomicU32,
    waiters: AtomicU32,
    tickets: AtomicU32,
}

// SAFETY: only atomics; zeroed memory is a valid state.
unsafe impl SharedState for CondState {
    const KIND: u32 = 3;
}

impl CondState {
    /// With `lock` held by this thread: release it completely, sleep until notified or
    /// `deadline`, then take it back at the same depth. Returns `false` on timeout.
    pub(crate) fn wait(
        &self,
        lock: &LockState,
        recursive: bool,
        deadline: Option<Instant>,
    ) -> bool {
        // Under the lock: notifies (which need the lock) see this waiter from now on.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut levels = 1;
        loop {
            // Read while still holding the lock: a notify cannot slip in between this read
            // and the sleep unnoticed.
            let seq = self.seq.load(Ordering::SeqCst);
            levels = if recursive {
                lock.unlock_all().unwrap_or(levels)
            } else {
                let _ = lock.unlock_plain();
                1
            };
            // A notify usually follows within microseconds in a hand-off: poll for it first.
            memory::spin_until(deadline, || self.seq.load(Ordering::SeqCst) != seq);
            while self.seq.load(Ordering::SeqCst) == seq {
                if !memory::futex_wait(&self.seq, seq, deadline) {
                    break;
                }
            }
            relock(lock, recursive, levels);
            // Under the lock again.
            let tickets = self.tickets.load(Ordering::SeqCst);
            if tickets > 0 {
                self.tickets.store(tickets - 1, Ordering::SeqCst);
                self.give_up_waiting();
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.give_up_waiting();
                return false;
            }
        }
    }

    /// Under the lock: this waiter no longer waits.
    fn give_up_waiting(&self) {
        let w = self.waiters.load(Ordering::SeqCst);
        self.waiters.store(w.saturating_sub(1), Ordering::SeqCst);
    }

    /// Notify up to `n` waiters (the caller holds the lock).
    pub(crate) fn notify(&self, n: u32) {
        let waiting = self.waiters.load(Ordering::SeqCst);
        let tickets = self.tickets.load(Ordering::SeqCst);
        let k = n.min(waiting.saturating_sub(tickets));
        if k > 0 {
            self.tickets.store(tickets + k, Ordering::SeqCst);
            self.seq.fetch_add(1, Ordering::SeqCst);
            memory::futex_wake(&self.seq, u32::MAX);
        }
    }
}

/// Take `lock` back at `levels` after a wait. The notifier still holds it and usually
/// releases it right away (by waiting itself, or leaving its critical section): try for it
/// before sleeping on it. (A dead previous owner is reported by the lock itself; the lock is
/// held either way.)
fn relock(lock: &LockState, recursive: bool, levels: u32) {
    let now = || Some(Instant::now());
    let mut relocked = Ok(None);
    memory::spin_until(None, || {
        relocked = if recursive {
            lock.lock(now(), levels.max(1))
        } else {
            lock.lock_plain(now())
        };
        !matches!(relocked, Ok(None))
    });
    if matches!(relocked, Ok(None)) {
        let _ = if recursive {
            lock.lock(None, levels.max(1))
        } else {
            lock.lock_plain(None)
        };
    }
}

#[derive(Clone, Serialize, Deserialize)]
enum Underlying {
    Lock(Lock),
    RLock(RLock),
}

/// A condition variable shared between processes (Python's `multiprocessing.Condition`),
/// over an [`RLock`] (the default) or a [`Lock`].
///
/// Hold the lock through a [`CondGuard`] (the Rust form of `with cond:`), then `wait`,
/// `wait_for` or `notify`. As with every condition variable, a wait may end spuriously:
/// re-check the condition, or use [`CondGuard::wait_for`].
///
/// ```
/// use multiproc::{Condition, Process, Value};
///
/// fn producer((cond, ready): (Condition, Value<u32>)) {
///     let guard = cond.acquire().expect("acquire");
///     ready.set(1).expect("set");
///     guard.notify_all();
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cond = Condition::new()?;
/// let ready = Value::new(0u32)?;
/// let mut guard = cond.acquire()?;
/// let child = Process::start(producer, (cond.clone(), ready.clone()))?;
/// assert!(guard.wait_for(|| ready.get().is_ok_and(|r| r == 1), Some(std::time::Duration::from_secs(10))));
/// drop(guard);
/// child.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: Underlying,
    state: Shared<CondState>,
}

impl Condition {
    /// A condition over a new [`RLock`].
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new() -> Result<Condition, SyncError> {
        Condition::with_rlock(RLock::new()?)
    }

    /// A condition over an existing [`Lock`].
    ///
    /// ```
    /// let cond = multiproc::Condition::with_lock(multiproc::Lock::new()?)?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn with_lock(lock: Lock) -> Result<Condition, SyncError> {
        Ok(Condition {
            lock: Underlying::Lock(lock),
            state: Shared::new(0)?,
        })
    }

    /// A condition over an existing [`RLock`].
    ///
    /// ```
    /// let cond = multiproc::Condition::with_rlock(multiproc::RLock::new()?)?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn with_rlock(lock: RLock) -> Result<Condition, SyncError> {
        Ok(Condition {
            lock: Underlying::RLock(lock),
            state: Shared::new(0)?,
        })
    }

    fn recursive(&self) -> bool {
        matches!(self.lock, Underlying::RLock(_))
    }

    fn lock_state(&self) -> &LockState {
        match &self.lock {
            Underlying::Lock(l) => l.state(),
            Underlying::RLock(l) => l.state(),
        }
    }

    fn acquire_until(&self, deadline: Option<Instant>) -> Result<Option<CondGuard<'_>>, SyncError> {
        let obtained = match &self.lock {
            Underlying::Lock(l) => l.state().lock_plain(deadline),
            Underlying::RLock(l) => l.state().lock_recursive(deadline),
        }?;
        Ok(obtained.map(|obtained| CondGuard {
            cond: self,
            owner_died: obtained == Obtained::OwnerDied,
            _not_send: PhantomData,
        }))
    }

    /// Take the underlying lock.
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let guard = cond.acquire()?;
    /// guard.notify(1); // nobody is waiting: nothing happens
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire(&self) -> Result<CondGuard<'_>, SyncError> {
        self.acquire_until(None)?
            .ok_or_else(|| SyncError::Io(std::io::Error::other("an untimed lock wait timed out")))
    }

    /// Take the underlying lock, waiting at most `timeout` (`Ok(None)` if it stayed taken).
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let g = cond.acquire_timeout(std::time::Duration::from_secs(1))?;
    /// assert!(g.is_some());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<CondGuard<'_>>, SyncError> {
        self.acquire_until(deadline(Some(timeout)))
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}

/// The lock of a [`Condition`], held: wait and notify through it.
///
/// ```
/// use std::time::Duration;
/// use multiproc::{Condition, SyncError, Value};
/// let (cond, jobs) = (Condition::new()?, Value::new(0u32)?);
/// let (c, j) = (cond.clone(), jobs.clone());
/// let worker = std::thread::spawn(move || -> Result<u32, SyncError> {
///     let mut guard = c.acquire()?;
///     // Sleeps with the lock released; holds it again when it returns.
///     guard.wait_for(|| j.get().is_ok_and(|n| n > 0), Some(Duration::from_secs(10)));
///     j.get()
/// });
/// {
///     let guard = cond.acquire()?;
///     jobs.set(3)?;
///     guard.notify_all(); // the waiter runs once this guard is dropped
/// }
/// assert_eq!(worker.join().expect("the worker thread panicked")?, 3);
/// # Ok::<(), SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CondGuard<'a> {
    cond: &'a Condition,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl CondGuard<'_> {
    /// Whether this acquire found the lock's previous holder dead (see
    /// [`LockGuard::owner_died`](crate::LockGuard::owner_died)).
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// assert!(!cond.acquire()?.owner_died());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Release the lock, sleep until notified, take the lock back.
    ///
    /// ```no_run
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.acquire()?;
    /// guard.wait(); // until another process notifies
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait(&mut self) {
        self.cond
            .state
            .wait(self.cond.lock_state(), self.cond.recursive(), None);
    }

    /// Like [`wait`](Self::wait) for at most `timeout`; `false` if it timed out.
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.acquire()?;
    /// assert!(!guard.wait_timeout(std::time::Duration::from_millis(5)));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait_timeout(&mut self, timeout: Duration) -> bool {
        self.cond.state.wait(
            self.cond.lock_state(),
            self.cond.recursive(),
            deadline(Some(timeout)),
        )
    }

    /// Wait until `predicate()` is true, at most `timeout` in all (`None`: no limit); returns
    /// the predicate's last value (Python's `wait_for`).
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// let mut guard = cond.acquire()?;
    /// assert!(guard.wait_for(|| true, None));
    /// assert!(!guard.wait_for(|| false, Some(std::time::Duration::from_millis(5))));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait_for(
        &mut self,
        mut predicate: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        let end = deadline(timeout);
        loop {
            if predicate() {
                return true;
            }
            if end.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            self.cond
                .state
                .wait(self.cond.lock_state(), self.cond.recursive(), end);
        }
    }

    /// Wake up to `n` waiting processes (threads).
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// cond.acquire()?.notify(2);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn notify(&self, n: u32) {
        self.cond.state.notify(n);
    }

    /// Wake every waiter.
    ///
    /// ```
    /// let cond = multiproc::Condition::new()?;
    /// cond.acquire()?.notify_all();
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn notify_all(&self) {
        self.cond.state.notify(u32::MAX);
    }
}

impl Drop for CondGuard<'_> {
    fn drop(&mut self) {
        let state = self.cond.lock_state();
        let _ = if self.cond.recursive() {
            state.unlock_one()
        } else {
            state.unlock_plain()
        };
    }
}
