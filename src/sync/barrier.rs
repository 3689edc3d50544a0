//! `Barrier`: release a fixed number of processes together.
//!
//! A generation-counting barrier on shared words, without a lock: each party takes an
//! arrival index with `fetch_add` on `count`; the last one runs the action, zeroes `count`,
//! and *ends* the generation, waking every sleeper with one `FUTEX_WAKE`. The others sleep on
//! the generation word until it moves. One wake-up per cycle, against the lock + condition
//! hand-offs of CPython's `threading.Barrier` design, whose observable behaviour (indices,
//! action, timeout breaking, abort, reset, `n_waiting`) this keeps. `count` is zeroed
//! *before* the generation ends, so a released party that comes straight back always joins
//! the next cycle cleanly.
//!
//! # How each party learns how *its* generation ended
//! The generation word (the futex word) holds a 24-bit generation number and, in its low
//! 8 bits, how the last 8 generations ended (bit 0: the latest; 1 = released, 0 = broken by
//! a timeout, `abort`, a failed action or `reset`). A generation ends by one compare-and-swap
//! from its own word to the next, so of a release and a timeout racing for the same
//! generation exactly one wins, and the outcome and the new number appear together. A party
//! that slept through generation `g` reads the word once when it wakes: `d` generations
//! later, its own outcome is bit `d - 1`. CPython keeps released threads "draining" until
//! all have left, so that a later generation cannot break before a slow one has looked;
//! counting leavers would let a killed party block the barrier forever, so this barrier
//! keeps the history instead. Only a party descheduled for more than 8 further generations
//! (possible only when more processes than `parties` use the barrier) cannot tell, and
//! reports `BrokenBarrier`.
//!
//! # Processes that die
//! No count of sleepers exists (the wake is unconditional), so a killed sleeper leaves
//! nothing behind. A party killed after arriving and before the generation ends cannot be
//! told apart from one that is late: the others wait for it until their timeout, which
//! breaks the barrier, as in Python. Every word is updated by a single atomic operation, so
//! a death between two of them leaves each word valid.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{SyncError, deadline};
use crate::code::CodeRef;
use crate::segment::{Shared, SharedState};
use crate::sys::memory;

/// Bits of the generation word holding the outcomes of the latest generations.
const HISTORY_BITS: u32 = 8;

/// The generation number in a generation word.
fn generation_of(word: u32) -> u32 {
    word >> HISTORY_BITS
}

/// The word after the generation of `word` ends, released (`true`) or broken.
fn next_word(word: u32, released: bool) -> u32 {
    let generation = generation_of(word).wrapping_add(1) << HISTORY_BITS;
    let history = (word << 1) & ((1 << HISTORY_BITS) - 1);
    generation | history | u32::from(released)
}

/// How the generation of `seen` ended, read from a later word `now`: `None` while it has
/// not ended, `Some(released)` once it has (`Some(false)` when too many generations passed
/// to tell; see the module docs).
fn outcome(seen: u32, now: u32) -> Option<bool> {
    let passed = generation_of(now).wrapping_sub(generation_of(seen)) & (u32::MAX >> HISTORY_BITS);
    match passed {
        0 => None,
        d if d <= HISTORY_BITS => Some((now >> (d - 1)) & 1 == 1),
        _ => Some(false),
    }
}

/// Ordering: every access is `SeqCst`; the argument needs only that a party's `count`
/// increment and its load of the generation word are ordered against the last party's
/// `count` reset and generation CAS, which `SeqCst` gives without further thought.
#[repr(C)]
pub(crate) struct BarrierState {
    /// The generation word (see the module docs); the futex word sleepers wait on.
    generation: AtomicU32,
    count: AtomicU32,
    waiters: AtomicU32,
    /// 1 while broken (until `reset`).
    broken: AtomicU32,
    /// No longer used (the outcome lives in the generation word); kept for the layout.
    _unused: AtomicU32,
    parties: AtomicU32,
    has_action: AtomicU32,
    action_offset: AtomicI64,
    action_fingerprint: AtomicI64,
}

// SAFETY: only atomics; zeroed memory is a valid (empty, unbroken) barrier.
unsafe impl SharedState for BarrierState {
    const KIND: u32 = 6;
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
        self.end_current(false);
        Ok(())
    }

    /// Break the barrier: mark it broken, then end the current generation as broken (its
    /// sleepers wake with `BrokenBarrier`; later arrivals see the mark).
    fn break_barrier(&self) {
        self.state.broken.store(1, Ordering::SeqCst);
        self.end_current(false);
    }

    /// End whatever generation is current.
    fn end_current(&self, released: bool) {
        let mut word = self.state.generation.load(Ordering::SeqCst);
        while let Err(now) = self.try_end(word, released) {
            word = now;
        }
    }

    /// End the generation of `word`, if it is still current: `Err(current word)` otherwise.
    fn try_end(&self, word: u32, released: bool) -> Result<(), u32> {
        let st = &self.state;
        st.generation.compare_exchange(
            word,
            next_word(word, released),
            Ordering::SeqCst,
            Ordering::SeqCst,
        )?;
        // Always, once per cycle: a count of sleepers would stay raised forever after a
        // sleeper was killed, and one wake per cycle is cheap.
        memory::futex_wake(&st.generation, u32::MAX);
        Ok(())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<u32, SyncError> {
        let st = &self.state;
        if st.broken.load(Ordering::SeqCst) == 1 {
            return Err(SyncError::BrokenBarrier);
        }
        let seen = st.generation.load(Ordering::SeqCst);
        let index = st.count.fetch_add(1, Ordering::SeqCst);
        if index + 1 == st.parties.load(Ordering::SeqCst) {
            // The last party: run the action, then release everyone.
            if !self.run_action() {
                self.break_barrier();
                return Err(SyncError::BrokenBarrier);
            }
            st.count.store(0, Ordering::SeqCst);
            return match self.try_end(seen, true) {
                Ok(()) => Ok(index),
                // A timeout or `abort` ended this generation first: it is broken.
                Err(_) => Err(SyncError::BrokenBarrier),
            };
        }
        let ended = || outcome(seen, st.generation.load(Ordering::SeqCst));
        memory::spin_until(deadline, || ended().is_some());
        let released = loop {
            if let Some(released) = ended() {
                break released;
            }
            if !memory::futex_wait(&st.generation, seen, deadline)
                && deadline.is_some_and(|d| Instant::now() >= d)
            {
                // As in Python: a party that gives up breaks the barrier for everyone,
                // unless its generation ended meanwhile (then the outcome stands).
                match self.try_end(seen, false) {
                    Ok(()) => {
                        st.broken.store(1, Ordering::SeqCst);
                        // A party that arrived between the two lines above joined the next
                        // generation: end it too, so that it learns of the break.
                        self.end_current(false);
                        break false;
                    }
                    Err(now) => match outcome(seen, now) {
                        Some(released) => break released,
                        None => continue,
                    },
                }
            }
        };
        if released {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_reads_its_own_generations_outcome_after_later_ones_ended() {
        let seen = next_word(0, true);
        let released = next_word(seen, true);
        // A party that slept through its release while the next generation broke (a
        // timeout of a party that came straight back) was still released.
        let then_broken = next_word(released, false);
        assert_eq!(outcome(seen, seen), None);
        assert_eq!(outcome(seen, released), Some(true));
        assert_eq!(outcome(seen, then_broken), Some(true));
        // And the other way round.
        let broken = next_word(seen, false);
        let then_reset = next_word(broken, false);
        let then_released = next_word(then_reset, true);
        assert_eq!(outcome(seen, broken), Some(false));
        assert_eq!(outcome(seen, then_released), Some(false));
    }

    #[test]
    fn outcomes_are_kept_for_eight_generations_then_reported_broken() {
        let seen = 0x1234_5600;
        let mut now = next_word(seen, true);
        for _ in 1..HISTORY_BITS {
            now = next_word(now, false);
        }
        assert_eq!(outcome(seen, now), Some(true), "8 generations later");
        assert_eq!(outcome(seen, next_word(now, true)), Some(false), "9 later");
    }

    #[test]
    fn the_generation_number_wraps_around() {
        let seen = !((1u32 << HISTORY_BITS) - 1);
        let now = next_word(seen, true);
        assert_eq!(generation_of(now), 0);
        assert_eq!(outcome(seen, now), Some(true));
    }

    #[test]
    fn a_timed_out_party_breaks_the_barrier_and_a_late_release_loses() {
        let b = Barrier::new(2).unwrap();
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(1)),
            Err(SyncError::BrokenBarrier)
        ));
        assert!(b.broken());
        b.reset().unwrap();
        assert!(!b.broken());
        let seen = b.state.generation.load(Ordering::SeqCst);
        b.break_barrier();
        // The last arrival of the generation that was broken cannot release it.
        assert_eq!(
            b.try_end(seen, true),
            Err(b.state.generation.load(Ordering::SeqCst))
        );
    }
}
