//! Shared memory and the primitives that sleep in it: memfd segments, POSIX named shared
//! memory, futexes and robust process-shared mutexes.

use std::cell::UnsafeCell;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use rustix::fs::{MemfdFlags, Mode};

/// A `MAP_SHARED` read-write mapping of a whole file (memmap2 does the mapping and unmaps on
/// drop).
pub struct Mapping(memmap2::MmapRaw);

impl Mapping {
    /// Map all of `file`.
    pub fn new(file: &File) -> io::Result<Mapping> {
        Ok(Mapping(memmap2::MmapRaw::map_raw(file)?))
    }

    /// The first byte of the mapping.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// An anonymous, zero-filled shared memory file of `len` bytes (`memfd_create`). It has no
/// name anywhere, so it cannot outlive the last descriptor or mapping of it. Its size is
/// sealed (`F_SEAL_SHRINK | F_SEAL_GROW`): no process that receives the descriptor can
/// truncate it under the others' mappings (which would turn their next access into SIGBUS).
pub fn memfd(len: usize) -> io::Result<File> {
    let fd =
        rustix::fs::memfd_create("multiproc", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    rustix::fs::fcntl_add_seals(
        &fd,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL,
    )?;
    Ok(File::from(fd))
}

fn shm_path(name: &str) -> io::Result<CString> {
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || name.contains('/') || name.len() > 250 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid shared memory name {name:?} (1-250 characters, no '/')"),
        ));
    }
    CString::new(format!("/{name}")).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "shared memory name contains a NUL byte",
        )
    })
}

/// Create a new named shared memory object (`shm_open(O_CREAT | O_EXCL)`) of `len` bytes.
pub fn shm_create(name: &str, len: usize) -> io::Result<File> {
    let path = shm_path(name)?;
    let fd = rustix::shm::open(
        path.as_c_str(),
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )?;
    if let Err(e) = rustix::fs::ftruncate(&fd, len as u64) {
        let _ = rustix::shm::unlink(path.as_c_str());
        return Err(e.into());
    }
    Ok(File::from(fd))
}

/// Open an existing named shared memory object; returns it and its size.
pub fn shm_open(name: &str) -> io::Result<(File, usize)> {
    let path = shm_path(name)?;
    let fd = rustix::shm::open(path.as_c_str(), rustix::shm::OFlags::RDWR, Mode::empty())?;
    let size = rustix::fs::fstat(&fd)?.st_size as usize;
    Ok((File::from(fd), size))
}

/// Remove a named shared memory object (existing mappings stay valid).
pub fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    Ok(rustix::shm::unlink(path.as_c_str())?)
}

/// Sleep while `*word == expected`, at most until `deadline`. Returns `false` on timeout.
/// Spurious wake-ups are possible; callers re-check their condition. The futex is *shared*
/// (not `FUTEX_PRIVATE`), so it works across processes mapping the same memory.
pub fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> bool {
    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if remaining == Some(Duration::ZERO) {
        return false;
    }
    let ts = remaining.map(|r| rustix::thread::futex::Timespec {
        tv_sec: r.as_secs() as _,
        tv_nsec: r.subsec_nanos() as _,
    });
    let result = rustix::thread::futex::wait(
        word,
        rustix::thread::futex::Flags::empty(),
        expected,
        ts.as_ref(),
    );
    !matches!(result, Err(rustix::io::Errno::TIMEDOUT))
}

/// Wake up to `n` processes sleeping on `word` (`u32::MAX`: all of them).
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // The kernel reads the count as a signed int: u32::MAX would be -1, which wakes one.
    let n = n.min(i32::MAX as u32);
    let _ = rustix::thread::futex::wake(word, rustix::thread::futex::Flags::empty(), n);
}

#[cfg(feature = "async")]
/// Sleep until one of `words` no longer holds its expected value, a wake-up on one of them,
/// or `deadline` (`futex_waitv`, Linux 5.16+; at most 128 words). Returns at once if a word
/// already differs. Spurious returns are possible; callers re-check. Shared futexes, as
/// [`futex_wait`] and [`futex_wake`] use. On a kernel without `futex_waitv` it sleeps for at
/// most a millisecond instead, so callers degrade to polling.
pub fn futex_waitv(words: &[(&AtomicU32, u32)], deadline: Option<Instant>) {
    use rustix::thread::futex::{Wait, WaitFlags, WaitPtr, WaitvFlags};
    let waiters: Vec<Wait> = words
        .iter()
        .take(FUTEX_WAITV_MAX)
        .map(|&(word, expected)| {
            let mut w = Wait::new();
            w.val = u64::from(expected);
            w.uaddr = WaitPtr::new(word.as_ptr().cast());
            w.flags = WaitFlags::SIZE_U32;
            w
        })
        .collect();
    let ts = deadline.map(|d| {
        let t = monotonic_deadline(d);
        rustix::time::Timespec {
            tv_sec: t.tv_sec as _,
            tv_nsec: t.tv_nsec as _,
        }
    });
    // Every word lives in memory the caller keeps mapped for the duration of the call (the
    // kernel reads them once, while it queues the waiter).
    // Any other outcome (a word already changed: EAGAIN, a wake-up, a timeout, a signal)
    // means "look again".
    if let Err(rustix::io::Errno::NOSYS) = rustix::thread::futex::waitv(
        &waiters,
        WaitvFlags::empty(),
        ts.as_ref(),
        rustix::time::ClockId::Monotonic,
    ) {
        let pause = Duration::from_millis(1);
        let pause = deadline.map_or(pause, |d| {
            d.saturating_duration_since(Instant::now()).min(pause)
        });
        std::thread::sleep(pause);
    }
}

#[cfg(feature = "async")]
/// The most words one [`futex_waitv`] call sleeps on (the kernel's `FUTEX_WAITV_MAX`).
pub const FUTEX_WAITV_MAX: usize = 128;

/// The calling thread's kernel id.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

// glibc's values on Linux (the libc crate does not export all of them for every target).
const PTHREAD_PROCESS_SHARED: libc::c_int = 1;
const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;
const PTHREAD_MUTEX_ERRORCHECK: libc::c_int = 2;
const PTHREAD_PRIO_INHERIT: libc::c_int = 1;
/// The owner's thread id in a PI futex word (the kernel's `FUTEX_TID_MASK`).
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

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

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `deadline` as an absolute `CLOCK_MONOTONIC` time (the clock `Instant` reads).
fn monotonic_deadline(deadline: Instant) -> libc::timespec {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    add_to(now.tv_sec, now.tv_nsec, remaining)
}

/// `sec.nsec + d`, saturating.
fn add_to(sec: i64, nsec: i64, d: Duration) -> libc::timespec {
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    let mut sec = sec.saturating_add(secs);
    let mut nsec = nsec + i64::from(d.subsec_nanos());
    if nsec >= 1_000_000_000 {
        sec = sec.saturating_add(1);
        nsec -= 1_000_000_000;
    }
    libc::timespec {
        tv_sec: sec as _,
        tv_nsec: nsec as _,
    }
}

/// `deadline` as an absolute `CLOCK_REALTIME` time (only for kernels without a monotonic PI
/// lock: a wall-clock step then changes the wait).
fn realtime_deadline(deadline: Instant) -> libc::timespec {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    add_to(now.tv_sec, now.tv_nsec, remaining)
}

/// Whether `tid` is a thread of this process (`tgkill` with signal 0 delivers nothing).
pub fn is_own_thread(tid: u32) -> bool {
    // SAFETY: signal 0 only checks that the thread exists in our thread group.
    tid != 0
        && unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid as libc::c_int, 0) } == 0
}

static FORK_GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static ATFORK: std::sync::Once = std::sync::Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

thread_local! {
    static IDS: std::cell::Cell<(u32, u32, u32)> = const { std::cell::Cell::new((u32::MAX, 0, 0)) };
}

/// `(pid, tid)` of the calling thread, cached per thread without system calls (the cache is
/// invalidated in a forked child, whose ids differ).
pub fn current_ids() -> (u32, u32) {
    ATFORK.call_once(|| {
        // SAFETY: registering a plain extern "C" function as the atfork child handler.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    let generation = FORK_GENERATION.load(std::sync::atomic::Ordering::Relaxed);
    IDS.with(|ids| {
        let (g, pid, tid) = ids.get();
        if g == generation {
            return (pid, tid);
        }
        let fresh = (super::getpid(), gettid());
        ids.set((generation, fresh.0, fresh.1));
        fresh
    })
}

/// How long a waiter keeps polling (yielding the CPU) before it sleeps in the kernel.
pub const SPIN_BEFORE_BLOCKING: Duration = Duration::from_micros(50);

/// Whether waiting by polling can pay off: only when the other party can run meanwhile on
/// another CPU. Polling before sleeping avoids the wake-up of an idle CPU, which on virtual
/// machines costs more than a whole round trip.
pub fn spin_enabled() -> bool {
    static SPIN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| super::cpu_count() > 1)
}

/// Poll `ready` for up to [`SPIN_BEFORE_BLOCKING`] (never past `deadline`), yielding in
/// between; `true` as soon as it holds, `false` if the time ran out (or spinning is
/// disabled).
pub fn spin_until(deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
    if !spin_enabled() {
        return false;
    }
    let mut end = Instant::now() + SPIN_BEFORE_BLOCKING;
    if let Some(d) = deadline {
        end = end.min(d);
    }
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        rustix::thread::sched_yield();
    }
}

/// Give the pages of `len` bytes at `offset` of a shared memory file back to the kernel
/// (`fallocate(PUNCH_HOLE)`); they read as zeros afterwards and occupy no memory until
/// written again. The file keeps its size.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    Ok(rustix::fs::fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_segment_cannot_be_resized_by_anyone_who_holds_it() {
        let file = super::memfd(8192).expect("memfd");
        assert!(file.set_len(0).is_err(), "shrinking must be refused");
        assert!(file.set_len(1 << 20).is_err(), "growing must be refused");
        assert_eq!(file.metadata().expect("stat").len(), 8192);
    }
}
