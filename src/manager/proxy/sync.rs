//! Locks, events, semaphores, conditions and barriers in a manager.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::{Op, Reply};
use crate::manager::session::{FromRemote, Remote, count, done, flag, millis, unexpected};

/// A lock in a manager (Python's `manager.Lock()` proxy); see [`Manager::lock`](crate::manager::Manager::lock).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let lock = m.lock()?;
/// let held = lock.acquire()?;
/// assert!(lock.try_acquire()?.is_none()); // refused, even to its holder (not an RLock)
/// assert!(lock.locked()?); // and still held: a refused acquire releases nothing
/// drop(held);
/// assert!(!lock.locked()?);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct LockProxy {
    remote: Remote,
}

untyped_proxy!(LockProxy);

/// Holds a [`LockProxy`]; releases it when dropped.
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let lock = m.lock()?;
/// {
///     let _held = lock.acquire()?;
///     assert!(lock.locked()?);
/// } // dropping the guard releases the lock on the server
/// assert!(!lock.locked()?);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockProxyGuard<'a> {
    remote: &'a Remote,
}

impl<'a> LockProxyGuard<'a> {
    /// Take the lock behind `remote` (a lock, an RLock or a condition's), waiting for it.
    fn take(remote: &'a Remote) -> Result<Self, ManagerError> {
        Self::take_within(remote, None)?.ok_or_else(|| {
            ManagerError::Refused("the server gave up a wait without a time limit".into())
        })
    }

    /// Take the lock behind `remote` if the server grants it within `timeout` (`None`: as
    /// long as needed). This is the only place a guard is made, and only for a granted
    /// lock: a refused or timed-out acquire took nothing, so it has nothing to release
    /// (a guard made for it would release the lock its caller already holds).
    fn take_within(
        remote: &'a Remote,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, ManagerError> {
        if flag(remote.call(Op::LockAcquire(millis(timeout)))?)? {
            Ok(Some(LockProxyGuard { remote }))
        } else {
            Ok(None)
        }
    }
}

impl Drop for LockProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.remote.call(Op::LockRelease);
    }
}

impl LockProxy {
    /// Take the lock, waiting as long as needed.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// let _g = lock.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<LockProxyGuard<'_>, ManagerError> {
        LockProxyGuard::take(&self.remote)
    }

    /// Take the lock if it is free within `timeout`.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// assert!(lock.acquire_timeout(std::time::Duration::from_secs(1))?.is_some());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<LockProxyGuard<'_>>, ManagerError> {
        LockProxyGuard::take_within(&self.remote, Some(timeout))
    }

    /// Take the lock only if it is free now.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.lock()?.try_acquire()?.is_some());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockProxyGuard<'_>>, ManagerError> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Whether some thread holds it now.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.lock()?.locked()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn locked(&self) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::LockHeld)?)
    }
}

/// An event in a manager (Python's `manager.Event()` proxy).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let e = m.event()?;
/// assert!(!e.is_set()?);
/// e.set()?;
/// e.wait()?;
/// e.clear()?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct EventProxy {
    remote: Remote,
}

untyped_proxy!(EventProxy);

impl EventProxy {
    /// Set the flag, waking every waiter.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.event()?.set()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::EventSet)?)
    }

    /// Clear the flag.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.event()?.clear()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn clear(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::EventClear)?)
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.event()?.is_set()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::EventIsSet)?)
    }

    /// Wait until the flag is set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// e.wait()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::EventWait(None))?).map(drop)
    }

    /// Wait at most `timeout`; whether the flag was set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.event()?.wait_timeout(std::time::Duration::from_millis(10))?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::EventWait(millis(Some(timeout))))?)
    }
}

/// A semaphore in a manager (Python's `manager.Semaphore()` / `BoundedSemaphore()` proxy).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let s = m.semaphore(2)?;
/// s.acquire()?;
/// assert_eq!(s.value()?, 1);
/// s.release()?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct SemaphoreProxy {
    remote: Remote,
}

untyped_proxy!(SemaphoreProxy);

impl SemaphoreProxy {
    /// Take one unit, waiting for it.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.semaphore(1)?.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::SemAcquire(None))?).map(drop)
    }

    /// Take one unit if one comes within `timeout`.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.semaphore(0)?.acquire_timeout(std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::SemAcquire(millis(Some(timeout))))?)
    }

    /// Give one unit back (a bounded semaphore refuses to exceed its start value).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.semaphore(0)?.release()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn release(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::SemRelease)?)
    }

    /// The current value.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.semaphore(3)?.value()?, 3);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn value(&self) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::SemValue)?).map(|n| n as u64)
    }
}

/// A condition variable in a manager (Python's `manager.Condition()` proxy): take its lock
/// with [`acquire`](Self::acquire), then [`wait`](Self::wait) (which gives the lock up while
/// waiting and takes it back) or [`notify`](Self::notify).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let cond = m.condition()?;
/// let held = cond.acquire()?;
/// cond.notify(1)?;
/// drop(held);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ConditionProxy {
    remote: Remote,
}

untyped_proxy!(ConditionProxy);

impl ConditionProxy {
    /// Take the condition's (reentrant) lock.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<LockProxyGuard<'_>, ManagerError> {
        LockProxyGuard::take(&self.remote)
    }

    /// Wait until notified; this thread must hold the lock, which is released meanwhile
    /// and held again on return.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// assert!(cond.wait().is_err()); // the lock is not held
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::CondWait(None))?).map(drop)
    }

    /// [`wait`](Self::wait) for at most `timeout`; `false` if not notified in time (the
    /// lock is held again either way).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// assert!(!cond.wait_timeout(std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::CondWait(millis(Some(timeout))))?)
    }

    /// Wake up to `n` waiting threads (this thread must hold the lock).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// cond.notify(2)?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn notify(&self, n: u64) -> Result<(), ManagerError> {
        done(self.remote.call(Op::CondNotify(n))?)
    }

    /// Wake every waiting thread (this thread must hold the lock).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// cond.notify_all()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn notify_all(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::CondNotifyAll)?)
    }
}

/// A barrier in a manager (Python's `manager.Barrier()` proxy). A party that times out, or
/// [`abort`](Self::abort), breaks it: every waiter then gets [`ManagerError::Refused`].
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let b = m.barrier(2)?;
/// assert!(b.wait_timeout(std::time::Duration::from_millis(10)).is_err()); // alone: broken
/// assert!(b.broken()?);
/// b.reset()?;
/// assert!(!b.broken()?);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct BarrierProxy {
    remote: Remote,
}

untyped_proxy!(BarrierProxy);

impl BarrierProxy {
    /// Wait for all parties; this party's arrival index (`0..parties`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(1)?.wait()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::BarrierWait(None))?).map(|n| n as u64)
    }

    /// [`wait`](Self::wait) for at most `timeout`; on time-out the barrier breaks.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(1)?.wait_timeout(std::time::Duration::from_secs(1))?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::BarrierWait(millis(Some(timeout))))?).map(|n| n as u64)
    }

    /// Break the barrier: waiting and later parties fail until [`reset`](Self::reset).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn abort(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::BarrierAbort)?)
    }

    /// Make it usable again (parties waiting now fail, as in Python).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.barrier(2)?.reset()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn reset(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::BarrierReset)?)
    }

    fn state(&self) -> Result<(u64, u64, bool), ManagerError> {
        match self.remote.call(Op::BarrierState)? {
            Reply::Barrier(parties, waiting, broken) => Ok((parties, waiting, broken)),
            other => Err(unexpected(&other)),
        }
    }

    /// How many parties it waits for.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(3)?.parties()?, 3);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn parties(&self) -> Result<u64, ManagerError> {
        Ok(self.state()?.0)
    }

    /// How many parties are waiting now (Python's `n_waiting`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(3)?.n_waiting()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u64, ManagerError> {
        Ok(self.state()?.1)
    }

    /// Whether it is broken.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.barrier(3)?.broken()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn broken(&self) -> Result<bool, ManagerError> {
        Ok(self.state()?.2)
    }
}
