//! [`RobustMutex`]: the process-shared, robust, priority-inheritance pthread mutex.

use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::time::Instant;

use super::clock::{monotonic_deadline, realtime_deadline};
use super::robust_list::{NEXT_OFFSET, PI_BIT, PREV_OFFSET, ThreadList};

// glibc's values on Linux (the libc crate does not export all of them for every target).
pub(super) const PTHREAD_PROCESS_SHARED: libc::c_int = 1;
pub(super) const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;
pub(super) const PTHREAD_MUTEX_ERRORCHECK: libc::c_int = 2;
pub(super) const PTHREAD_PRIO_INHERIT: libc::c_int = 1;
/// The owner's thread id in a PI futex word (the kernel's `FUTEX_TID_MASK`).
pub(super) const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Set in a PI futex word by the kernel while threads sleep in its queue.
const FUTEX_WAITERS: u32 = 0x8000_0000;

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
/// # Ordering
/// Every unlock acts as a `SeqCst` operation on the lock word: inline it is a `SeqCst`
/// compare-and-swap; through glibc or the kernel it is followed by a `SeqCst` fence. The
/// inline lock reads the word with a `SeqCst` load before its `SeqCst` compare-and-swap. So
/// a releaser that unlocks and then reads another word `w` with `SeqCst`, and an acquirer
/// that writes `w` with a `SeqCst` read-modify-write and then tries the lock, cannot both
/// miss each other (the store-buffering pattern): `LockState::notify_released` relies on it
/// to wake async acquirers without a lost wake-up.
///
/// The uncontended paths run inline (see `robust_list.rs`): the same steps as glibc's, in the
/// same order, on glibc's own robust list, without the call and the dispatch on the mutex
/// kind; anything else (a taken lock, waiters, a dead owner, a thread whose robust list is
/// not in glibc's format) goes through the pthread functions, which find the mutex in the
/// state they themselves would have left it in. The kernel is entered only to sleep and
/// hand over. Timed waits use `CLOCK_MONOTONIC` (`FUTEX_LOCK_PI2`, Linux 5.14+),
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

/// glibc's `struct __pthread_mutex_s` on 64-bit Linux (sysdeps/nptl/bits/struct_mutex.h),
/// the fields the inline paths read and write. Every field is an atomic so that a reference
/// to it is sound while glibc (holding the mutex) or the kernel (the lock word) changes it;
/// apart from the lock word, each field is written only by the mutex's holder, so the lock
/// word's acquire/release orders those accesses between holders (glibc's plain accesses
/// included).
#[repr(C)]
struct GlibcMutex {
    /// The futex word: owner's thread id, `FUTEX_WAITERS`, `FUTEX_OWNER_DIED`.
    lock: AtomicU32,
    /// Recursion depth (1 for an error-checking mutex while held).
    count: AtomicU32,
    /// The owner's thread id, or glibc's markers for an inconsistent or unrecoverable mutex.
    owner: AtomicI32,
    /// How many lock calls hold it (glibc uses it only in `pthread_mutex_destroy`).
    nusers: AtomicU32,
    /// The mutex kind glibc set at `init` ([`INLINE_KIND`] for ours; never changed).
    kind: AtomicI32,
    _spins: AtomicI32,
    prev: AtomicUsize,
    next: AtomicUsize,
}

/// glibc's `__kind` of the mutexes `init` makes: `PTHREAD_MUTEX_ERRORCHECK_NP` (2) |
/// `PTHREAD_MUTEX_ROBUST_NORMAL_NP` (16) | `PTHREAD_MUTEX_PRIO_INHERIT_NP` (32) |
/// `PTHREAD_MUTEX_PSHARED_BIT` (128). The inline paths serve only mutexes of exactly this
/// kind: any other value (another glibc's encoding, or memory someone overwrote) goes to glibc,
/// which decides (and refuses a kind it does not know with `EINVAL`).
const INLINE_KIND: i32 = 2 | 16 | 32 | 128;

const _: () = {
    assert!(std::mem::size_of::<GlibcMutex>() == std::mem::size_of::<libc::pthread_mutex_t>());
    assert!(std::mem::offset_of!(GlibcMutex, prev) == PREV_OFFSET);
    assert!(std::mem::offset_of!(GlibcMutex, next) == NEXT_OFFSET);
};

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

    /// glibc's fields, for the inline paths.
    fn glibc(&self) -> &GlibcMutex {
        // SAFETY: `GlibcMutex` has the size and field offsets of glibc's `pthread_mutex_t`
        // on the targets where the inline paths run (checked at compile time above; they
        // are only used where `ThreadList::of` found glibc's format), and a
        // `pthread_mutex_t` is at least 8-aligned. Every field is an atomic, so a shared
        // reference permits the concurrent changes glibc and the kernel make.
        unsafe { &*self.inner.get().cast::<GlibcMutex>() }
    }

    /// The uncontended lock, inline: `true` if it took the mutex; `false` if the mutex is
    /// not free (or this thread's robust list is not glibc's), and nothing was changed.
    ///
    /// Order, as glibc's: announce the entry in `list_op_pending`, take the word with a
    /// compare-and-swap, link the entry, withdraw the announcement, record the owner. A
    /// death before the swap leaves the word untouched; after it, the entry is announced or
    /// linked (or both), so the kernel finds the word holding the dead thread's id, marks it
    /// `OWNER_DIED` and hands it to the next waiter.
    #[inline]
    fn lock_inline(&self, tid: u32) -> bool {
        let Some(list) = ThreadList::of(tid) else {
            return false;
        };
        let m = self.glibc();
        if m.kind.load(Ordering::Relaxed) != INLINE_KIND {
            return false;
        }
        // Taken, marked OWNER_DIED, or held by us (EDEADLK): glibc's path decides. SeqCst
        // (a plain load on x86): see "Ordering" on `RobustMutex`.
        if m.lock.load(Ordering::SeqCst) != 0 {
            return false;
        }
        let entry = &raw const m.next as usize;
        list.set_pending(entry | PI_BIT);
        // SeqCst: see "Ordering" on `RobustMutex`.
        if m.lock
            .compare_exchange(0, list.tid, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            list.set_pending(0);
            return false;
        }
        m.count.store(1, Ordering::Relaxed);
        // SAFETY: we hold the mutex now, so its entry is on no list; the caller keeps the
        // mapping alive while it holds the lock (the same rule as for glibc's own paths).
        unsafe { list.link(entry) };
        list.set_pending(0);
        m.owner.store(list.tid as i32, Ordering::Relaxed);
        let users = m.nusers.load(Ordering::Relaxed);
        m.nusers.store(users.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// The unlock, inline, when this thread holds the mutex in the plain state (its id in
    /// the word, recorded as owner); `None` otherwise, and nothing was changed.
    ///
    /// Order, as glibc's: announce the entry, unlink it, clear the owner, release the word
    /// (a compare-and-swap of our id to 0, or `FUTEX_UNLOCK_PI` when the kernel has marked
    /// waiters: it then hands the lock to the first of them), withdraw the announcement. A
    /// death before the word is released leaves the entry announced, so the kernel finds the
    /// dead thread's id in the word and hands the lock on; after it, the word no longer holds
    /// our id and the kernel leaves it alone.
    #[inline]
    fn unlock_inline(&self, tid: u32) -> Option<io::Result<()>> {
        let list = ThreadList::of(tid)?;
        let m = self.glibc();
        if m.kind.load(Ordering::Relaxed) != INLINE_KIND
            || m.lock.load(Ordering::Relaxed) & FUTEX_TID_MASK != list.tid
            || m.owner.load(Ordering::Relaxed) != list.tid as i32
        {
            return None;
        }
        let entry = &raw const m.next as usize;
        list.set_pending(entry | PI_BIT);
        // SAFETY: we hold the mutex with `owner` recorded, so it was linked into this
        // thread's list when it was taken (inline or by glibc) and is still there.
        unsafe { list.unlink(entry) };
        m.owner.store(0, Ordering::Relaxed);
        let users = m.nusers.load(Ordering::Relaxed);
        m.nusers.store(users.wrapping_sub(1), Ordering::Relaxed);
        let released = m
            .lock
            .compare_exchange(list.tid, 0, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        let r = if released {
            Ok(())
        } else {
            // FUTEX_WAITERS is set: the kernel hands the lock to the first waiter.
            let r = super::futex::futex_unlock_pi(&m.lock);
            std::sync::atomic::fence(Ordering::SeqCst);
            r
        };
        list.set_pending(0);
        Some(r)
    }

    /// Lock, waiting at most until `deadline` (`None`: forever).
    #[inline]
    pub fn lock(&self, deadline: Option<Instant>) -> io::Result<MutexLock> {
        self.lock_as(super::current_ids().1, deadline)
    }

    /// [`lock`](RobustMutex::lock) for a caller that knows its kernel thread id `tid`
    /// already (one lookup of the cached ids instead of two).
    #[inline]
    pub fn lock_as(&self, tid: u32, deadline: Option<Instant>) -> io::Result<MutexLock> {
        if self.lock_inline(tid) {
            return Ok(MutexLock::Acquired);
        }
        self.lock_contended(tid, deadline)
    }

    /// The lock is taken: poll it for a while (the holder of a short critical section lets
    /// go within microseconds), then sleep in the kernel's queue.
    ///
    /// Without the poll every contended acquire sleeps, and every release with a sleeper hands
    /// the lock through the kernel to a thread that is not running yet: a lock convoy, where
    /// two processes taking the lock in a loop trade it with a wake-up per turn (a contended
    /// counter ran at half the speed of Python's, whose lock lets the releaser take it
    /// again). A poll is the whole inline lock, whose steps keep the robust-list argument
    /// above at every instruction, so a poller's death changes nothing; a poller owes and is
    /// owed nothing, and one that gives up sleeps in the queue as before. Polling stops once
    /// the kernel has sleepers (`FUTEX_WAITERS`): the lock then goes to them, never to a
    /// poller, so only the kernel's order hands it on from there.
    #[cold]
    fn lock_contended(&self, tid: u32, deadline: Option<Instant>) -> io::Result<MutexLock> {
        let m = self.glibc();
        // Only where the inline path can take the lock, and not for our own lock (EDEADLK).
        let pollable = m.kind.load(Ordering::Relaxed) == INLINE_KIND
            && ThreadList::of(tid).is_some()
            && m.lock.load(Ordering::Relaxed) & FUTEX_TID_MASK != tid;
        if pollable {
            let mut acquired = false;
            super::spin_until(deadline, || {
                if m.lock.load(Ordering::Relaxed) & FUTEX_WAITERS != 0 {
                    return true;
                }
                acquired = self.lock_inline(tid);
                acquired
            });
            if acquired {
                return Ok(MutexLock::Acquired);
            }
        }
        self.lock_slow(deadline)
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> io::Result<MutexLock> {
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
    #[inline]
    pub fn unlock(&self) -> io::Result<()> {
        self.unlock_as(super::current_ids().1)
    }

    /// [`unlock`](RobustMutex::unlock) for a caller that knows its kernel thread id `tid`.
    #[inline]
    pub fn unlock_as(&self, tid: u32) -> io::Result<()> {
        match self.unlock_inline(tid) {
            Some(r) => r,
            None => self.unlock_slow(),
        }
    }

    #[cold]
    fn unlock_slow(&self) -> io::Result<()> {
        // SAFETY: initialised mutex (see `lock`); unlocking a mutex we do not hold is reported
        // as EPERM by an error-checking mutex, not undefined behaviour.
        let r = check(unsafe { libc::pthread_mutex_unlock(self.inner.get()) });
        // glibc's release is its own atomic (or the kernel's): the fence gives it the
        // SeqCst contract of the inline path (see "Ordering" on `RobustMutex`).
        std::sync::atomic::fence(Ordering::SeqCst);
        r
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

#[cfg(test)]
mod tests {
    use super::{MutexLock, RobustMutex};
    use std::sync::atomic::Ordering;

    /// Mutexes initialised in place, as they would be in shared memory (the vector is never
    /// resized afterwards, so they do not move).
    fn mutexes(n: usize) -> Vec<RobustMutex> {
        // SAFETY: a zeroed pthread_mutex_t is valid memory for `init` to initialise.
        let mut all: Vec<RobustMutex> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for m in &mut all {
            // SAFETY: `m` is writable, unused memory for a RobustMutex.
            unsafe { RobustMutex::init(m) }.expect("init");
        }
        all
    }

    #[test]
    fn init_makes_the_kind_the_inline_paths_serve() {
        for m in &mutexes(1) {
            assert_eq!(m.glibc().kind.load(Ordering::Relaxed), super::INLINE_KIND);
        }
    }

    #[test]
    fn inline_and_glibc_paths_share_one_robust_list_in_any_release_order() {
        let m = mutexes(4);
        // Taken inline and through glibc, interleaved, then released out of order by the
        // other path: every step must leave glibc's list consistent.
        assert_eq!(m[0].lock(None).expect("lock"), MutexLock::Acquired);
        assert_eq!(m[1].lock_slow(None).expect("lock"), MutexLock::Acquired);
        assert_eq!(m[2].lock(None).expect("lock"), MutexLock::Acquired);
        assert_eq!(m[3].lock_slow(None).expect("lock"), MutexLock::Acquired);
        assert_eq!(m[2].lock(None).expect("relock"), MutexLock::WouldDeadlock);
        m[1].unlock().expect("unlock 1 inline (taken by glibc)");
        m[2].unlock_slow()
            .expect("unlock 2 by glibc (taken inline)");
        m[0].unlock().expect("unlock 0");
        assert!(m[0].unlock().is_err(), "a second unlock is EPERM");
        m[3].unlock().expect("unlock 3");
        for x in &m {
            assert_eq!(x.owner_tid(), 0);
        }
    }

    #[test]
    fn a_thread_that_ends_holding_inline_locks_hands_each_on_as_owner_died() {
        let m = mutexes(3);
        let addrs: Vec<usize> = m.iter().map(|x| x as *const RobustMutex as usize).collect();
        std::thread::spawn(move || {
            // SAFETY: the mutexes outlive the thread (joined below) and do not move.
            let x = |i: usize| unsafe { &*(addrs[i] as *const RobustMutex) };
            for i in 0..3 {
                assert_eq!(x(i).lock(None).expect("lock"), MutexLock::Acquired);
            }
            // The middle one released: the list must stay whole for the other two.
            x(1).unlock().expect("unlock");
        })
        .join()
        .expect("thread");
        let expected = [
            MutexLock::OwnerDied,
            MutexLock::Acquired,
            MutexLock::OwnerDied,
        ];
        for (x, want) in m.iter().zip(expected) {
            assert_eq!(x.lock(None).expect("lock"), want);
            x.unlock().expect("unlock");
        }
    }
}
