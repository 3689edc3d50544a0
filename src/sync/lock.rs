//! `Lock` and `RLock`: robust, process-shared mutual exclusion.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{SyncError, deadline};
use crate::segment::{Shared, SharedState};
use crate::sys::memory::{self, MutexLock, RobustMutex};

/// The shared part of a `Lock` or `RLock` (also embedded in `Value`, `Array`, `Barrier`).
///
/// Who holds the lock is decided by the mutex alone: its word holds the owner's thread id,
/// maintained by glibc and the kernel (see [`RobustMutex`]). The other fields are written only
/// by the holder, after it has the mutex:
/// - `owner_pid`: the last acquirer's process, for `RLock::owner` and for naming a dead
///   owner in the library's warning. Never used to decide anything, so a stale value left by a
///   dead process (whose ids may since have been reused) cannot make anyone skip the mutex.
/// - `count`: an `RLock`'s depth; read and written only by the thread that holds the mutex
///   (the mutex's acquire/release orders it between successive holders).
/// - `released`: a futex word for *async* acquirers (`crate::aio`), which cannot queue in
///   the kernel on the PI mutex (the kernel hands a PI lock only to a thread blocked in
///   `FUTEX_LOCK_PI`, and a plain waiter on a PI word is not allowed). It follows the
///   protocol of `sync/waiters.rs`: a change counter and a waiters bit that async acquirers
///   set; every release reads it and, only when the bit is set, bumps the counter and
///   wakes. See [`LockState::notify_released`] for why no release is missed.
#[repr(C)]
pub(crate) struct LockState {
    mutex: RobustMutex,
    owner_pid: AtomicU32,
    count: AtomicU32,
    released: AtomicU32,
}

// SAFETY: a robust pthread mutex (initialised by `init`) and atomics; all shared access goes
// through pthread calls and atomic operations.
unsafe impl SharedState for LockState {
    const KIND: u32 = 2;

    unsafe fn init(this: *mut Self) -> io::Result<()> {
        // SAFETY: forwarded contract: `this` is zeroed writable memory for a LockState.
        unsafe { RobustMutex::init(&raw mut (*this).mutex) }
    }
}

/// How a lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Obtained {
    Clean,
    OwnerDied,
}

impl LockState {
    /// Whether the calling thread holds the mutex (the kernel-maintained owner id).
    fn held_by_me(&self) -> bool {
        self.mutex.owner_tid() == memory::current_ids().1
    }

    /// Take the mutex as the thread `(pid, tid)` (the caller's cached ids, looked up once);
    /// `Ok(None)` if `deadline` passed first.
    #[inline]
    fn take(
        &self,
        (pid, tid): (u32, u32),
        deadline: Option<Instant>,
    ) -> Result<Option<Obtained>, SyncError> {
        let obtained = match self.mutex.lock_as(tid, deadline)? {
            MutexLock::Acquired => Obtained::Clean,
            MutexLock::OwnerDied => Obtained::OwnerDied,
            MutexLock::TimedOut => return Ok(None),
            MutexLock::WouldDeadlock => return Err(SyncError::WouldDeadlock),
        };
        self.note(obtained);
        self.owner_pid.store(pid, Ordering::Relaxed);
        Ok(Some(obtained))
    }

    /// Take the mutex and record this thread as owner with `count` levels.
    pub(crate) fn lock(
        &self,
        deadline: Option<Instant>,
        count: u32,
    ) -> Result<Option<Obtained>, SyncError> {
        self.take_levels(memory::current_ids(), deadline, count)
    }

    #[inline]
    fn take_levels(
        &self,
        ids: (u32, u32),
        deadline: Option<Instant>,
        count: u32,
    ) -> Result<Option<Obtained>, SyncError> {
        let obtained = self.take(ids, deadline)?;
        if obtained.is_some() {
            self.count.store(count, Ordering::Relaxed);
        }
        Ok(obtained)
    }

    /// The library's lifecycle event for a lock whose owner died holding it (read before the
    /// new owner is recorded, so it names the dead one).
    #[inline]
    fn note(&self, obtained: Obtained) {
        if obtained == Obtained::OwnerDied {
            self.note_owner_died();
        }
    }

    #[cold]
    #[inline(never)]
    fn note_owner_died(&self) {
        let dead = self.owner_pid.load(Ordering::Relaxed);
        crate::event::event!(
            log::Level::Warn,
            "the owner of a lock (pid {dead}) died holding it; the lock was recovered and \
             the data it guards may be inconsistent"
        );
    }

    /// Take the mutex without depth bookkeeping (`Lock`, internal locks).
    #[inline]
    pub(crate) fn lock_plain(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Obtained>, SyncError> {
        self.take(memory::current_ids(), deadline)
    }

    /// Release a mutex taken with `lock_plain`; `NotOwner` if this thread does not hold it
    /// (the error-checking mutex refuses, and nothing shared was written on the way).
    #[inline]
    pub(crate) fn unlock_plain(&self) -> Result<(), SyncError> {
        self.mutex.unlock().map_err(|_| SyncError::NotOwner)?;
        self.notify_released();
        Ok(())
    }

    /// After a release: wake the async acquirers if one announced itself on `released`.
    ///
    /// No lost wake-up: an async acquirer sets the waiters bit (a `SeqCst` read-modify-write)
    /// and *then* tries the mutex once more before it sleeps on `released`; a releaser
    /// unlocks the mutex (a `SeqCst` operation on the mutex word, see "Ordering" on
    /// [`RobustMutex`]), then reads `released` with `SeqCst`. In the single order of `SeqCst`
    /// operations either the releaser's read comes after the bit was set (it sees the bit,
    /// and bumps the word, which wakes the sleeper or makes its futex wait fail at once), or
    /// the bit was set after the read, so the acquirer's retry comes after the unlock and
    /// finds the mutex free (or taken by a later holder, whose release notifies in turn).
    /// Cost when no async acquirer exists: one load.
    ///
    /// A holder that dies never gets here; async acquirers therefore also look at the lock
    /// every 20 ms while they wait (see `aio::sync`), as queue waiters do for a dead producer.
    #[inline]
    fn notify_released(&self) {
        let seen = self.released.load(Ordering::SeqCst);
        if seen & super::waiters::WAITERS != 0 {
            let old = self.released.swap(
                seen.wrapping_add(1) & !super::waiters::WAITERS,
                Ordering::SeqCst,
            );
            super::waiters::wake_if_waiters(&self.released, old);
        }
    }

    /// The futex word async acquirers wait on (see [`LockState::notify_released`]).
    #[cfg(feature = "async")]
    pub(crate) fn released_word(&self) -> &AtomicU32 {
        &self.released
    }

    /// Whether a thread of this process holds the lock now.
    pub(crate) fn held_by_this_process(&self) -> bool {
        memory::is_own_thread(self.mutex.owner_tid())
    }

    /// Release every level this thread holds; returns how many there were.
    pub(crate) fn unlock_all(&self) -> Result<u32, SyncError> {
        self.unlock_all_as(memory::current_ids().1)
    }

    /// [`unlock_all`](LockState::unlock_all) by the thread `tid`.
    #[inline]
    fn unlock_all_as(&self, tid: u32) -> Result<u32, SyncError> {
        if self.mutex.owner_tid() != tid {
            return Err(SyncError::NotOwner);
        }
        // Only the holder writes `count`: a load and a store, not a `swap` (a locked
        // instruction on x86, which would cost as much as the unlock itself).
        let levels = self.count.load(Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
        self.mutex.unlock_as(tid).map_err(|_| SyncError::NotOwner)?;
        self.notify_released();
        Ok(levels)
    }

    /// Release one level.
    #[inline]
    pub(crate) fn unlock_one(&self) -> Result<(), SyncError> {
        let tid = memory::current_ids().1;
        if self.mutex.owner_tid() != tid {
            return Err(SyncError::NotOwner);
        }
        let depth = self.count.load(Ordering::Relaxed);
        if depth > 1 {
            // The holder's own word (see `unlock_all_as`).
            self.count.store(depth - 1, Ordering::Relaxed);
            return Ok(());
        }
        self.unlock_all_as(tid).map(|_| ())
    }

    /// Recursive acquire: one more level if held by this thread, else lock.
    pub(crate) fn lock_recursive(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Obtained>, SyncError> {
        let ids = memory::current_ids();
        if self.mutex.owner_tid() == ids.1 {
            let depth = self.count.load(Ordering::Relaxed);
            let deeper = depth.checked_add(1).ok_or(SyncError::Invalid(
                "an RLock cannot be acquired more than u32::MAX times",
            ))?;
            self.count.store(deeper, Ordering::Relaxed);
            return Ok(Some(Obtained::Clean));
        }
        self.take_levels(ids, deadline, 1)
    }

    /// `(pid, tid)` of the holder, if the lock is held.
    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        let tid = self.mutex.owner_tid();
        if tid == 0 {
            return None;
        }
        // The recorded pid belongs to `tid` once the holder has written it; just after a
        // hand-over it may still name the previous holder, so report the tid the kernel knows.
        Some((self.owner_pid.load(Ordering::Relaxed), tid))
    }

    /// The depth of an `RLock` (0 if free).
    pub(crate) fn depth(&self) -> u32 {
        if self.mutex.owner_tid() == 0 {
            0
        } else {
            self.count.load(Ordering::Relaxed)
        }
    }
}

/// Turn what the mutex said into a guard (`None`: timed out).
#[inline]
fn wrap<G>(
    r: Result<Option<Obtained>, SyncError>,
    guard: impl FnOnce(bool) -> G,
) -> Result<Option<G>, SyncError> {
    Ok(r?.map(|obtained| guard(obtained == Obtained::OwnerDied)))
}

/// [`wrap`] for a wait without a deadline, which cannot time out.
#[inline]
fn wrap_untimed<G>(
    r: Result<Option<Obtained>, SyncError>,
    guard: impl FnOnce(bool) -> G,
) -> Result<G, SyncError> {
    wrap(r, guard)?.ok_or_else(|| SyncError::Io(io::Error::other("an untimed lock wait timed out")))
}

/// A non-recursive lock shared between processes (Python's `multiprocessing.Lock`).
///
/// Clone it (or pass it to a child) to share it. If a process dies while holding it, the
/// next acquirer gets the lock instead of waiting forever, and its guard says so
/// ([`LockGuard::owner_died`]): the data the lock protects may be half-updated.
///
/// ```
/// use multiproc::{Lock, Process};
///
/// fn work(lock: Lock) -> bool {
///     let Ok(_guard) = lock.acquire() else { return false }; // released at the end of the scope
///     true
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = Lock::new()?;
/// let child = Process::start(work, lock.clone())?;
/// assert!(child.join()?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Lock {
    state: Shared<LockState>,
}

impl Lock {
    /// A new, unlocked lock.
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new() -> Result<Lock, SyncError> {
        Ok(Lock {
            state: Shared::new(0)?,
        })
    }

    /// Wait for the lock. A thread that already holds it gets [`SyncError::WouldDeadlock`]
    /// instead of hanging. If the previous holder died holding it, the lock is acquired all
    /// the same and [`LockGuard::owner_died`] says so.
    ///
    /// ```
    /// fn critical(lock: &multiproc::Lock) -> Result<u32, Box<dyn std::error::Error>> {
    ///     let _guard = lock.acquire()?;
    ///     Ok(42)
    /// }
    /// let lock = multiproc::Lock::new()?;
    /// assert_eq!(critical(&lock)?, 42);
    /// let guard = lock.acquire()?;
    /// assert!(matches!(lock.acquire(), Err(multiproc::SyncError::WouldDeadlock)));
    /// drop(guard);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn acquire(&self) -> Result<LockGuard<'_>, SyncError> {
        wrap_untimed(self.state.lock_plain(None), |died| self.guard(died))
    }

    /// Wait at most `timeout` for the lock: `Ok(None)` if it stayed taken (the crate's rule
    /// for every timed call; see [the timeout table](crate#timeouts)).
    ///
    /// ```
    /// use std::time::Duration;
    /// let lock = multiproc::Lock::new()?;
    /// let held = lock.clone();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let t = std::thread::spawn(move || {
    ///     let _g = held.acquire().unwrap();
    ///     tx.send(()).unwrap();
    ///     std::thread::sleep(Duration::from_millis(100));
    /// });
    /// rx.recv()?; // the other thread holds it now
    /// assert!(lock.acquire_timeout(Duration::from_millis(10))?.is_none());
    /// t.join().unwrap();
    /// assert!(lock.acquire_timeout(Duration::from_secs(1))?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>, SyncError> {
        wrap(self.state.lock_plain(deadline(Some(timeout))), |died| {
            self.guard(died)
        })
    }

    /// Take the lock only if it is free now (`Ok(None)` if it is taken).
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// let guard = lock.try_acquire()?;
    /// assert!(guard.is_some());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>, SyncError> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Release a lock held without a guard (after `std::mem::forget(guard)`, Python's
    /// explicit `acquire()`/`release()` style). Releasing a lock this thread does not hold is
    /// [`SyncError::NotOwner`].
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(lock.release().is_err()); // not held
    /// std::mem::forget(lock.acquire()?);
    /// lock.release()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn release(&self) -> Result<(), SyncError> {
        self.state.unlock_plain()
    }

    fn guard(&self, owner_died: bool) -> LockGuard<'_> {
        LockGuard {
            state: &self.state,
            owner_died,
            _not_send: PhantomData,
        }
    }

    pub(crate) fn state(&self) -> &Shared<LockState> {
        &self.state
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

/// The kernel marks a robust mutex `OWNER_DIED` by walking the dying thread's robust list,
/// which points into the mapping. A handle dropped while this process still holds the lock
/// (a guard was forgotten, Python-style) must therefore not unmap the page, or a later death
/// would go unreported and the lock would stay taken forever: the mapping is kept instead.
/// Only the last handle on a mapping matters: other clones keep the same mapping alive, and
/// forgetting one for each dropped clone (a lock passed to children while held, say) would
/// leak a mapping and a descriptor every time.
fn keep_mapped_if_held(state: &Shared<LockState>) {
    if state.is_last_handle() && state.held_by_this_process() {
        std::mem::forget(state.clone());
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        keep_mapped_if_held(&self.state);
    }
}

impl Drop for RLock {
    fn drop(&mut self) {
        keep_mapped_if_held(&self.state);
    }
}

/// Holds a [`Lock`]; releases it when dropped.
///
/// ```
/// use multiproc::{Lock, Process};
/// fn free(lock: Lock) -> bool { matches!(lock.try_acquire(), Ok(Some(_))) }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = Lock::new()?;
/// let guard = lock.acquire()?;
/// assert!(!Process::start(free, lock.clone())?.join()?); // held here: no one else gets it
/// drop(guard);
/// assert!(Process::start(free, lock.clone())?.join()?);
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    state: &'a LockState,
    owner_died: bool,
    /// The owning thread must release a pthread mutex.
    _not_send: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Whether the previous holder died holding the lock: the data it protects may be
    /// half-updated, so check or repair it before relying on it. The library also logs the
    /// event (a warning with target `multiproc`).
    ///
    /// ```
    /// let lock = multiproc::Lock::new()?;
    /// assert!(!lock.acquire()?.owner_died());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

impl Drop for LockGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.state.unlock_plain();
    }
}

/// A recursive lock shared between processes (Python's `multiprocessing.RLock`): the thread
/// holding it may acquire it again; it is free once released as many times.
///
/// ```
/// let lock = multiproc::RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?;
/// assert_eq!(lock.count(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(lock.owner().is_none());
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct RLock {
    state: Shared<LockState>,
}

impl RLock {
    /// A new, unlocked recursive lock.
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new() -> Result<RLock, SyncError> {
        Ok(RLock {
            state: Shared::new(0)?,
        })
    }

    pub(crate) fn from_state(state: Shared<LockState>) -> RLock {
        RLock { state }
    }

    /// Acquire (again, if this thread holds it already).
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// let _g = lock.acquire()?;
    /// assert!(lock.is_owned());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire(&self) -> Result<RLockGuard<'_>, SyncError> {
        wrap_untimed(self.state.lock_recursive(None), |died| self.guard(died))
    }

    /// Acquire, waiting at most `timeout` (`Ok(None)` if it stayed taken).
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// let g = lock.acquire_timeout(std::time::Duration::from_secs(1))?;
    /// assert!(g.is_some());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<RLockGuard<'_>>, SyncError> {
        wrap(self.state.lock_recursive(deadline(Some(timeout))), |died| {
            self.guard(died)
        })
    }

    /// Acquire only if possible without waiting (`Ok(None)` if another thread holds it).
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// assert!(lock.try_acquire()?.is_some());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<RLockGuard<'_>>, SyncError> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Release one level held without a guard; [`SyncError::NotOwner`] if this thread does
    /// not hold the lock (Python raises an error in that case too).
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// assert!(matches!(lock.release(), Err(multiproc::SyncError::NotOwner)));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn release(&self) -> Result<(), SyncError> {
        self.state.unlock_one()
    }

    /// Whether the calling thread holds the lock.
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// assert!(!lock.is_owned());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn is_owned(&self) -> bool {
        self.state.held_by_me()
    }

    /// `(pid, thread id)` of the holder, if any.
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// let _g = lock.acquire()?;
    /// assert_eq!(lock.owner().map(|(pid, _)| pid), Some(std::process::id()));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.state.owner()
    }

    /// How many times the holder has acquired it (0 if free).
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// assert_eq!(lock.count(), 0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn count(&self) -> u32 {
        self.state.depth()
    }

    fn guard(&self, owner_died: bool) -> RLockGuard<'_> {
        RLockGuard {
            state: &self.state,
            owner_died,
            _not_send: PhantomData,
        }
    }

    pub(crate) fn state(&self) -> &Shared<LockState> {
        &self.state
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.owner())
            .field("count", &self.count())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it when dropped.
///
/// ```
/// let lock = multiproc::RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?; // the holder may take it again
/// assert_eq!(lock.count(), 2);
/// drop(inner); // each guard gives back one level
/// assert_eq!(lock.count(), 1);
/// drop(outer);
/// assert!(lock.owner().is_none());
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    state: &'a LockState,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// Whether this acquire found the previous holder dead (see [`LockGuard::owner_died`]);
    /// a nested acquire by the holder never does.
    ///
    /// ```
    /// let lock = multiproc::RLock::new()?;
    /// assert!(!lock.acquire()?.owner_died());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        let _ = self.state.unlock_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A dead owner's ids may be reused by a live thread: they must never stand for holding
    /// the lock, which only the kernel-kept mutex word says.
    #[test]
    fn stale_owner_ids_equal_to_ours_do_not_grant_the_lock() {
        let lock = RLock::new().expect("lock");
        let other = lock.clone();
        let (held_tx, held_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _g = other.acquire().expect("acquire");
            held_tx.send(()).expect("send");
            let _ = done_rx.recv();
        });
        held_rx.recv().expect("held");
        // What a dead owner whose ids now belong to this thread would have left behind.
        // (The owner's thread id is only ever read from the mutex word.)
        lock.state
            .owner_pid
            .store(memory::current_ids().0, Ordering::Relaxed);
        lock.state.count.store(1, Ordering::Relaxed);
        assert!(!lock.is_owned());
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(20)),
            Ok(None)
        ));
        assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
        drop(done_tx);
        holder.join().expect("holder");
        assert!(matches!(lock.try_acquire(), Ok(Some(_))));
    }

    /// A release by a thread that does not hold a `Lock` is refused and changes nothing.
    #[test]
    fn a_wrong_release_writes_nothing() {
        let lock = Lock::new().expect("lock");
        let _g = lock.acquire().expect("acquire");
        let before = lock.state.owner_pid.load(Ordering::Relaxed);
        let other = lock.clone();
        let released = std::thread::spawn(move || other.release())
            .join()
            .expect("thread");
        assert!(matches!(released, Err(SyncError::NotOwner)));
        assert_eq!(lock.state.owner_pid.load(Ordering::Relaxed), before);
        assert!(lock.state.held_by_this_process());
    }
}
