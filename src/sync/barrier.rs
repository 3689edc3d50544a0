//! `Barrier`: release a fixed number of processes together.
//!
//! A generation-counting barrier on two shared words, without a lock: each party takes an
//! arrival index with `fetch_add` on `count`; the last one runs the action, zeroes `count`,
//! records how the generation ended and bumps `generation`, then wakes every sleeper with one
//! `FUTEX_WAKE`. The others sleep on `generation` until it moves. One wake-up per cycle,
//! against the lock + condition hand-offs of CPython's `threading.Barrier` design, whose
//! observable behaviour (indices, action, timeout breaking, abort, reset, `n_waiting`) this
//! keeps. `count` is zeroed *before* `generation` moves, so a released party that comes
//! straight back always joins the next cycle cleanly.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{SyncError, deadline};
use crate::process::code::CodeRef;
use crate::shared::segment::{Shared, SharedState};
use crate::sys::memory;

#[repr(C)]
pub(crate) struct BarrierState {
    generation: AtomicU32,
    count: AtomicU32,
    waiters: AtomicU32,
    /// 1 while broken (until `reset`).
    broken: AtomicU32,
    /// Whether the generation that ended last ended by a normal release (1) or not (0).
    released_ok: AtomicU32,
    parties: AtomicU32,
    has_action: AtomicU32,
    action_offset: AtomicI64,
    action_fingerprint: AtomicI64,
}

// SAFETY: only atomics; zeroed memory is a valid (empty, unbroken) barrier.
unsafe impl SharedState for BarrierState {
    const KIND: u32 = 6;

    unsafe fn init(_: *mut Self) -> io::Result<()> {
        Ok(())
    }
}

/// A barrier for a fixed number of parties (Python's `multiprocessing.Barrier`): each
/// `wait` blocks until `parties` processes (or threads) are waiting, then all go on. An
/// optional action runs in the last party to arrive before the others are released.
///
/// A timeout, [`abort`](Self::abort) or a panicking action *breaks* the barrier: every waiter, present and future, gets
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
        let (offset, fingerprint) = CodeRef::of(action).to_parts();
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
        if self.broken() {
            0
        } else {
            self.state.count.load(Ordering::SeqCst)
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
        self.state.broken.load(Ordering::SeqCst) == 1
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
        self.break_barrier();
        Ok(())
    }

    /// Return the barrier to its initial state; parties waiting now get
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
        let st = &self.state;
        st.count.store(0, Ordering::SeqCst);
        st.broken.store(0, Ordering::SeqCst);
        self.end_generation(false);
        Ok(())
    }

    fn break_barrier(&self) {
        self.state.broken.store(1, Ordering::SeqCst);
        self.end_generation(false);
    }

    fn end_generation(&self, ok: bool) {
        let st = &self.state;
        st.released_ok.store(u32::from(ok), Ordering::SeqCst);
        st.generation.fetch_add(1, Ordering::SeqCst);
        // Always, once per cycle: a count of sleepers would stay raised forever after a
        // sleeper was killed, and one wake per cycle is cheap.
        memory::futex_wake(&st.generation, u32::MAX);
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<u32, SyncError> {
        let st = &self.state;
        if st.broken.load(Ordering::SeqCst) == 1 {
            return Err(SyncError::BrokenBarrier);
        }
        let generation = st.generation.load(Ordering::SeqCst);
        let index = st.count.fetch_add(1, Ordering::SeqCst);
        if index + 1 == st.parties.load(Ordering::SeqCst) {
            // The last party: run the action, then release everyone.
            if !self.run_action() {
                self.break_barrier();
                return Err(SyncError::BrokenBarrier);
            }
            st.count.store(0, Ordering::SeqCst);
            self.end_generation(true);
            return Ok(index);
        }
        memory::spin_until(deadline, || {
            st.generation.load(Ordering::SeqCst) != generation
        });
        let mut timed_out = false;
        while st.generation.load(Ordering::SeqCst) == generation {
            if !memory::futex_wait(&st.generation, generation, deadline)
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                timed_out = st.generation.load(Ordering::SeqCst) == generation;
                break;
            }
        }
        if timed_out {
            // As in Python: a party that gives up breaks the barrier for everyone.
            self.break_barrier();
            return Err(SyncError::BrokenBarrier);
        }
        if st.released_ok.load(Ordering::SeqCst) == 1 {
            Ok(index)
        } else {
            Err(SyncError::BrokenBarrier)
        }
    }

    /// Run the action, if any; `false` if it could not be found or panicked.
    fn run_action(&self) -> bool {
        let st = &self.state;
        if st.has_action.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let action = CodeRef::<fn()>::from_parts((
            st.action_offset.load(Ordering::SeqCst),
            st.action_fingerprint.load(Ordering::SeqCst),
        ))
        .resolve();
        // Registered by another build (a barrier sent to another program): refused.
        let Ok(action) = action else {
            return false;
        };
        panic::catch_unwind(AssertUnwindSafe(action)).is_ok()
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
