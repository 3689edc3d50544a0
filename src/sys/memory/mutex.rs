//! [`RobustMutex`]: the process-shared, robust, priority-inheritance pthread mutex.

use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use super::clock::{monotonic_deadline, realtime_deadline};

// glibc's values on Linux (the libc crate does not export all of them for every target).
pub(super) const PTHREAD_PROCESS_SHARED: libc::c_int = 1;
pub(super) const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;
pub(super) const PTHREAD_MUTEX_ERRORCHECK: libc::c_int = 2;
pub(super) const PTHREAD_PRIO_INHERIT: libc::c_int = 1;
/// The owner's thread id in a PI futex word (the kernel's `FUTEX_TID_MASK`).
pub(super) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

unsafe extern "C" {
    // glibc 2.30+; not (yet) in the libc crate. Same contract as `pthread_mutex_timedlock`,
    // with the clock named.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// A process-shared, robust, error-checking, priority-inheritance pthread mutex, to be placed
/// in shared memory.
///
/// Why pthread and not a hand-written futex lock: only the kernel's robust-futex list, which
/// glibc maintains per thread, can tell the next acquirer promptly and reliably that the
/// previous owner died while holding the lock (`EOWNERDEAD`), and only glibc may register
/// entries on that list.
///
/// Why priority inheritance (`FUTEX_LOCK_PI`): it is the only futex protocol in which the
/// *kernel* keeps the queue of waiters and hands the lock over. With a plain futex mutex an
/// unlock clears the word and wakes one sleeper; if that sleeper is killed before it takes
/// the lock, nobody else is ever woken (the lost wake-up this design exists to rule out).
/// With a PI futex:
/// - a waiter sleeps *in the kernel's queue* of the lock; if it is killed while queued, the
///   kernel removes it and nothing is owed to it;
/// - an unlock with waiters goes through the kernel, which writes the next waiter's thread id
///   into the word before waking it: the lock is never free while someone waits, so no wake-up
///   can be lost;
/// - if that new owner (or any owner) dies before it returns to user space or while holding
///   the lock, the kernel finds the word on its robust list (glibc records the lock as
///   `list_op_pending` before the attempt), marks it `OWNER_DIED` and hands it to the next
///   waiter, which sees `EOWNERDEAD`.
///
/// The word always holds the owner's thread id (or 0), so "does this thread hold it" is one
/// load compared with our own thread id ([`RobustMutex::owner_tid`]): a dead owner's id is
/// cleared by the kernel before that id can be reused.
///
/// The uncontended path is a userspace compare-and-swap in glibc; the kernel is entered only
/// to sleep and hand over. Timed waits use `CLOCK_MONOTONIC` (`FUTEX_LOCK_PI2`, Linux 5.14+),
/// so a step of the wall clock changes no timeout.
#[repr(C)]
pub struct RobustMutex {
    inner: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a pthread mutex is designed to be used concurrently from many threads (and, with
// PTHREAD_PROCESS_SHARED, processes); all access goes through the pthread functions (and
// one atomic load of the lock word, see `owner_tid`).
unsafe impl Sync for RobustMutex {}
// SAFETY: as above; it contains no thread-affine pointers.
unsafe impl Send for RobustMutex {}

/// What an attempt to lock a [`RobustMutex`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MutexLock {
    /// Locked.
    Acquired,
    /// Locked, but the previous owner died holding it; it has been marked consistent again.
    OwnerDied,
    /// Not locked before the deadline.
    TimedOut,
    /// The calling thread already holds it.
    WouldDeadlock,
}

impl RobustMutex {
    /// Initialise a mutex in place.
    ///
    /// # Safety
    /// `this` must point to writable memory (typically shared) large enough for a
    /// `RobustMutex` that no thread or process is using yet.
    pub unsafe fn init(this: *mut RobustMutex) -> io::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is initialised by `pthread_mutexattr_init` before use and destroyed
        // once; `this` is valid per the caller's contract.
        unsafe {
            check(libc::pthread_mutexattr_init(attr.as_mut_ptr()))?;
            let r = (|| {
                check(libc::pthread_mutexattr_setpshared(
                    attr.as_mut_ptr(),
                    PTHREAD_PROCESS_SHARED,
                ))?;
                check(libc::pthread_mutexattr_setrobust(
                    attr.as_mut_ptr(),
                    PTHREAD_MUTEX_ROBUST,
                ))?;
                check(libc::pthread_mutexattr_settype(
                    attr.as_mut_ptr(),
                    PTHREAD_MUTEX_ERRORCHECK,
                ))?;
                check(libc::pthread_mutexattr_setprotocol(
                    attr.as_mut_ptr(),
                    PTHREAD_PRIO_INHERIT,
                ))?;
                check(libc::pthread_mutex_init(
                    UnsafeCell::raw_get(&raw const (*this).inner),
                    attr.as_ptr(),
                ))
            })();
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            r
        }
    }

    /// Lock, waiting at most until `deadline` (`None`: forever).
    pub fn lock(&self, deadline: Option<Instant>) -> io::Result<MutexLock> {
        let m = self.inner.get();
        // SAFETY: `m` points to a mutex initialised by `init` (type invariant of the shared
        // structures that contain it); `ts` outlives the call.
        let rc = unsafe {
            match deadline {
                None => libc::pthread_mutex_lock(m),
                Some(d) => {
                    let rc = libc::pthread_mutex_trylock(m);
                    if rc != libc::EBUSY || d <= Instant::now() {
                        rc
                    } else {
                        let ts = monotonic_deadline(d);
                        let rc = pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &ts);
                        if rc == libc::EINVAL {
                            // A kernel before 5.14 has no FUTEX_LOCK_PI2, the only PI lock
                            // with a monotonic deadline: fall back to the wall clock.
                            let ts = realtime_deadline(d);
                            libc::pthread_mutex_timedlock(m, &ts)
                        } else {
                            rc
                        }
                    }
                }
            }
        };
        match rc {
            0 => Ok(MutexLock::Acquired),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD returns it locked).
                unsafe { libc::pthread_mutex_consistent(m) };
                Ok(MutexLock::OwnerDied)
            }
            libc::ETIMEDOUT | libc::EBUSY => Ok(MutexLock::TimedOut),
            libc::EDEADLK => Ok(MutexLock::WouldDeadlock),
            e => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// Unlock; `EPERM` if the calling thread does not hold it.
    pub fn unlock(&self) -> io::Result<()> {
        // SAFETY: initialised mutex (see `lock`); unlocking a mutex we do not hold is reported
        // as EPERM by an error-checking mutex, not undefined behaviour.
        check(unsafe { libc::pthread_mutex_unlock(self.inner.get()) })
    }

    /// The kernel thread id of the owner (0: free). For a PI mutex glibc and the kernel keep
    /// the owner's id in the first word of the mutex (`__data.__lock`, part of glibc's ABI),
    /// and the kernel clears a dead owner's id before that id can be given to a new thread;
    /// so `owner_tid() == gettid()` exactly when the calling thread holds the lock.
    pub fn owner_tid(&self) -> u32 {
        // SAFETY: the lock word is the first `int` of glibc's `pthread_mutex_t` (aligned to 4
        // at least); glibc and the kernel only ever change it atomically, so an atomic load
        // of it is a well-defined read of a value they may concurrently change.
        let word = unsafe { &*(self.inner.get() as *const AtomicU32) };
        word.load(std::sync::atomic::Ordering::Relaxed) & FUTEX_TID_MASK
    }
}

pub(super) fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}
