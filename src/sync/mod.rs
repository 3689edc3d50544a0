//! Synchronization between processes: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Event`], [`Condition`] and [`Barrier`].
//!
//! Each primitive lives in an anonymous shared memory segment (see `crate::segment`) and is
//! a handle: clone it to use it from several threads, pass it to a child process as (part of)
//! an argument, or send it over a [`Connection`](crate::Connection). Every blocking call has a
//! timeout variant, and guards release on drop (the Rust form of `with lock:`).
//!
//! # Algorithms
//! - `Lock` and `RLock` are a process-shared *robust* pthread mutex plus an owner
//!   `(pid, tid)` and recursion count. The uncontended path is one compare-and-swap in
//!   userspace. If a process dies holding it, the kernel's robust-futex list marks it and the
//!   next acquirer gets the lock with a guard whose `owner_died()` is true, so it can repair
//!   the protected state; Python's locks would block forever.
//! - `Semaphore`, `Event` and `Condition` are counters in shared memory with a waiter count;
//!   a waiter sleeps with `FUTEX_WAIT` on the counter only after announcing itself, and a
//!   releaser issues `FUTEX_WAKE` only when someone announced. The announce/check pairs use
//!   sequentially consistent operations (a Dekker-style handshake), so no wake-up is lost and
//!   an uncontended release makes no system call.
//! - `Condition` waits on a sequence number bumped by `notify`; like every condition
//!   variable it may wake spuriously, so wait in a loop or use `wait_for`. There is no
//!   internal state a dead process could leave half-updated, so with a timeout a dead peer
//!   never hangs the others.
//! - Every wait first polls its condition for up to 50 µs, yielding the CPU, before it sleeps
//!   in the kernel (only on machines with more than one CPU): in a hand-off the other party
//!   usually answers within that time, and not sleeping saves the wake-up of an idle CPU,
//!   which on virtual machines costs tens of microseconds.
//! - `Barrier` counts arrivals and generations in shared words: the last party runs the
//!   action and moves the generation, waking all sleepers at once; a timeout breaks it for
//!   all, as in Python.

mod barrier;
mod condition;
mod event;
mod lock;
mod semaphore;
pub(crate) mod waiters;

use std::io;

pub use barrier::Barrier;
pub use condition::{CondGuard, Condition};
pub use event::Event;
pub(crate) use lock::LockState;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

/// Errors of the synchronization primitives.
///
/// ```
/// use multiproc::{BoundedSemaphore, Lock, SyncError};
/// let lock = Lock::new()?;
/// let held = lock.acquire()?;
/// assert!(matches!(lock.acquire(), Err(SyncError::WouldDeadlock))); // instead of hanging
/// drop(held);
/// assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
/// let sem = BoundedSemaphore::new(1)?;
/// assert!(matches!(sem.release(), Err(SyncError::ReleasedTooManyTimes(1))));
/// # Ok::<(), SyncError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Releasing a lock the calling thread does not hold.
    #[error("cannot release a lock that this thread does not hold")]
    NotOwner,
    /// Releasing a bounded semaphore past its initial value.
    #[error("semaphore released too many times (past its initial value {0})")]
    ReleasedTooManyTimes(u32),
    /// The barrier is broken (aborted, timed out, a party failed, or reset while waiting).
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// The calling thread already holds this non-recursive lock.
    #[error("this thread already holds the lock; acquiring it again would deadlock")]
    WouldDeadlock,
    /// An invalid argument (zero barrier parties, ...).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// An operating-system error (creating the shared memory, ...).
    #[error("I/O error in a synchronization primitive: {0}")]
    Io(#[from] io::Error),
}

/// Deadline of a timeout (`None`, or a timeout past the clock's range: no deadline).
pub(crate) fn deadline(timeout: Option<std::time::Duration>) -> Option<std::time::Instant> {
    crate::deadline::after_opt(timeout)
}
