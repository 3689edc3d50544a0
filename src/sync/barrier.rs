//! `Barrier`: release a fixed number of processes together.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::condition::CondState;
use super::lock::{LockState, Obtained};
use super::{SyncError, deadline};
use crate::process::code;
use crate::shared::segment::{Shared, SharedState};

const FILLING: i32 = 0;
const DRAINING: i32 = 1;
const RESETTING: i32 = -1;
const BROKEN: i32 = -2;

#[repr(C)]
pub(crate) struct BarrierState {
    lock: LockState,
    cond: CondState,
    parties: AtomicU32,
    count: AtomicU32,
    state: AtomicI32,
    has_action: AtomicU32,
    action_offset: AtomicI64,
    action_fingerprint: AtomicI64,
}

// SAFETY: a LockState (initialised below) and atomics.
unsafe impl SharedState for BarrierState {
    unsafe fn init(this: *mut Self) -> io::Result<()> {
        // SAFETY: forwarded contract: zeroed writable memory for a BarrierState.
        unsafe { LockState::init(&raw mut (*this).lock) }
    }
}

/// A barrier for a fixed number of parties (Python's `multiprocessing.Barrier`): each
/// `wait` blocks until `parties` processes (or threads) are waiting, then all go on. An
/// optional action runs in the last party to arrive before the others are released.
///
/// A timeout, [`abort`](Self::abort), a panicking action or a dead peer holding its lock
/// *breaks* the barrier: every waiter, present and future, gets
/// [`SyncError::BrokenBarrier`] until [`reset`](Self::reset).
///
/// ```
/// use multiproc::{Barrier, Process};
///
/// fn party(barrier: Barrier) -> u32 {
///     barrier.wait().unwrap()
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let barrier = Barrier::new(3)?;
/// let kids: Vec<_> = (0..2).map(|_| Process::start(party, barrier.clone())).collect::<Result<_, _>>()?;
/// let mine = barrier.wait()?;
/// let mut indices: Vec<u32> = kids.into_iter().map(|k| k.join()).collect::<Result<_, _>>()?;
/// indices.push(mine);
/// indices.sort();
/// assert_eq!(indices, vec![0, 1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Barrier {
    state: Shared<BarrierState>,
}

/// Releases the barrier's internal lock on every path out of `wait`.
struct Held<'a>(&'a LockState);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock_plain();
    }
}

impl Barrier {
    /// A barrier for `parties` (at least 1).
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(4)?.parties(), 4);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(parties: u32) -> Result<Barrier, SyncError> {
        if parties == 0 {
            return Err(SyncError::Invalid("a barrier needs at least one party"));
        }
        let state: Shared<BarrierState> = Shared::new(0)?;
        state.parties.store(parties, Ordering::SeqCst);
        Ok(Barrier { state })
    }

    /// A barrier that runs `action` in the last party to arrive, before releasing the others.
    /// `action` is a plain function so that every process (spawned ones included) can find it.
    ///
    /// ```
    /// fn announce() { println!("all here"); }
    /// let b = multiproc::Barrier::with_action(1, announce)?;
    /// b.wait()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn with_action(parties: u32, action: fn()) -> Result<Barrier, SyncError> {
        let barrier = Barrier::new(parties)?;
        let (offset, fingerprint) = code::offset_of(action as usize);
        barrier.state.action_offset.store(offset, Ordering::SeqCst);
        barrier
            .state
            .action_fingerprint
            .store(fingerprint, Ordering::SeqCst);
        barrier.state.has_action.store(1, Ordering::SeqCst);
        Ok(barrier)
    }

    /// The number of parties.
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(2)?.parties(), 2);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn parties(&self) -> u32 {
        self.state.parties.load(Ordering::SeqCst)
    }

    /// How many parties are waiting now.
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(2)?.n_waiting(), 0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn n_waiting(&self) -> u32 {
        if self.state.state.load(Ordering::SeqCst) == FILLING {
            self.state.count.load(Ordering::SeqCst)
        } else {
            0
        }
    }

    /// Whether the barrier is broken.
    ///
    /// ```
    /// let b = multiproc::Barrier::new(2)?;
    /// b.abort()?;
    /// assert!(b.broken());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn broken(&self) -> bool {
        self.state.state.load(Ordering::SeqCst) == BROKEN
    }

    /// Wait for the other parties; returns this party's arrival index (`0..parties`).
    ///
    /// ```
    /// assert_eq!(multiproc::Barrier::new(1)?.wait()?, 0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait(&self) -> Result<u32, SyncError> {
        self.wait_until(None)
    }

    /// Wait at most `timeout`; a timeout breaks the barrier for everyone.
    ///
    /// ```
    /// let b = multiproc::Barrier::new(2)?;
    /// assert!(b.wait_timeout(std::time::Duration::from_millis(10)).is_err());
    /// assert!(b.broken());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, SyncError> {
        self.wait_until(deadline(Some(timeout)))
    }

    /// Break the barrier: current and future waiters get [`SyncError::BrokenBarrier`].
    ///
    /// ```
    /// let b = multiproc::Barrier::new(3)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn abort(&self) -> Result<(), SyncError> {
        let _held = self.lock()?;
        self.break_barrier();
        Ok(())
    }

    /// Return the barrier to its initial state; current waiters get
    /// [`SyncError::BrokenBarrier`].
    ///
    /// ```
    /// let b = multiproc::Barrier::new(1)?;
    /// b.abort()?;
    /// b.reset()?;
    /// assert!(!b.broken());
    /// assert_eq!(b.wait()?, 0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn reset(&self) -> Result<(), SyncError> {
        let _held = self.lock()?;
        let st = &self.state;
        if st.count.load(Ordering::SeqCst) > 0 {
            let s = st.state.load(Ordering::SeqCst);
            if s == FILLING || s == BROKEN {
                st.state.store(RESETTING, Ordering::SeqCst);
            }
        } else {
            st.state.store(FILLING, Ordering::SeqCst);
        }
        st.cond.notify(u32::MAX);
        Ok(())
    }

    /// Take the internal lock; a dead holder leaves the state suspect, so it breaks.
    fn lock(&self) -> Result<Held<'_>, SyncError> {
        match self.state.lock.lock_plain(None) {
            Ok(Obtained::Clean) => Ok(Held(&self.state.lock)),
            Ok(Obtained::OwnerDied) | Err(super::AcquireError::OwnerDied(())) => {
                let held = Held(&self.state.lock);
                self.break_barrier();
                Ok(held)
            }
            Err(super::AcquireError::Io(e)) => Err(SyncError::Io(e)),
            Err(_) => Err(SyncError::BrokenBarrier),
        }
    }

    fn break_barrier(&self) {
        self.state.state.store(BROKEN, Ordering::SeqCst);
        self.state.cond.notify(u32::MAX);
    }

    fn cond_wait(&self, deadline: Option<Instant>) -> bool {
        self.state.cond.wait(&self.state.lock, false, deadline)
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<u32, SyncError> {
        let _held = self.lock()?;
        let st = &self.state;
        // Wait for a previous cycle to drain (or a reset to finish).
        loop {
            let s = st.state.load(Ordering::SeqCst);
            if s != DRAINING && s != RESETTING {
                break;
            }
            if !self.cond_wait(deadline) && deadline.is_some_and(|d| Instant::now() >= d) {
                self.break_barrier();
                return Err(SyncError::BrokenBarrier);
            }
        }
        if st.state.load(Ordering::SeqCst) == BROKEN {
            return Err(SyncError::BrokenBarrier);
        }
        let index = st.count.fetch_add(1, Ordering::SeqCst);
        let result = if index + 1 == st.parties.load(Ordering::SeqCst) {
            self.release_all()
        } else {
            self.wait_released(deadline)
        };
        let left = st.count.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 {
            let s = st.state.load(Ordering::SeqCst);
            if s == RESETTING || s == DRAINING {
                st.state.store(FILLING, Ordering::SeqCst);
                st.cond.notify(u32::MAX);
            }
        }
        result.map(|()| index)
    }

    /// The last party: run the action, then let everyone go.
    fn release_all(&self) -> Result<(), SyncError> {
        let st = &self.state;
        if st.has_action.load(Ordering::SeqCst) == 1 {
            let address = code::address_of(
                st.action_offset.load(Ordering::SeqCst),
                st.action_fingerprint.load(Ordering::SeqCst),
            );
            let Some(address) = address else {
                self.break_barrier();
                return Err(SyncError::BrokenBarrier);
            };
            // SAFETY: `address_of` checked that this process runs the executable the action
            // was registered in, so the address is that of the `fn()` given to `with_action`.
            let action: fn() = unsafe { std::mem::transmute::<usize, fn()>(address) };
            if panic::catch_unwind(AssertUnwindSafe(action)).is_err() {
                self.break_barrier();
                return Err(SyncError::BrokenBarrier);
            }
        }
        st.state.store(DRAINING, Ordering::SeqCst);
        st.cond.notify(u32::MAX);
        Ok(())
    }

    /// Not the last party: wait until released, broken or timed out.
    fn wait_released(&self, deadline: Option<Instant>) -> Result<(), SyncError> {
        let st = &self.state;
        while st.state.load(Ordering::SeqCst) == FILLING {
            if !self.cond_wait(deadline) && deadline.is_some_and(|d| Instant::now() >= d) {
                if st.state.load(Ordering::SeqCst) == FILLING {
                    self.break_barrier();
                    return Err(SyncError::BrokenBarrier);
                }
                break;
            }
        }
        if st.state.load(Ordering::SeqCst) < 0 {
            return Err(SyncError::BrokenBarrier);
        }
        Ok(())
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}
