//! The sleeping protocol of every counter-like primitive (`Semaphore`, `Event`): a futex word
//! whose top bit, [`WAITERS`], says "someone may be asleep on me".
//!
//! A waiter that finds nothing to take sets the bit with a compare-and-swap from the exact
//! value it saw, then sleeps with `FUTEX_WAIT` on `value | WAITERS`. Anyone who changes the
//! value does it with one read-modify-write that also clears the bit, and wakes *every*
//! sleeper if the bit was set ([`wake_if_waiters`]).
//!
//! Why no wake-up can be lost, whatever process dies between any two instructions:
//! - A waiter sleeps only if the word still equals the value it saw with the bit set (the
//!   kernel checks this atomically with queueing it). A change that happened before that check
//!   makes the wait return at once; a change after it finds the bit and wakes the queue.
//! - A change wakes *all* sleepers, not one. A woken waiter that is killed before it takes
//!   anything therefore takes nothing from the others: they were woken too, re-check, and the
//!   ones that still find nothing set the bit again and sleep. (Waking one, the classic
//!   choice, loses the wake-up when that one dies; the price here is a wake of every waiter on
//!   a contended change, paid only when someone sleeps.)
//! - A waiter killed while asleep is removed from the futex queue by the kernel and owes
//!   nothing.
//!
//! Why no count can drift: there is no count. A bit left set by a waiter that died costs the
//! next change one `FUTEX_WAKE` (which finds nobody) and is cleared by it.
//!
//! Orderings: every access is `SeqCst`, the value *is* the shared state, and the futex word is
//! the value itself, so there is no second location whose ordering would need an argument.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Instant;

use crate::sys::memory;

/// The "someone may sleep on this word" bit; the other 31 bits are the primitive's value.
pub(crate) const WAITERS: u32 = 1 << 31;

/// Announce a sleeper on `word`, which was seen holding `seen`, then sleep until the word
/// changes or `deadline` passes. Returns `false` only on timeout; `true` means "look again"
/// (changed, woken, or spurious).
pub(crate) fn sleep(word: &AtomicU32, seen: u32, deadline: Option<Instant>) -> bool {
    let announced = seen | WAITERS;
    if seen & WAITERS == 0
        && word
            .compare_exchange(seen, announced, SeqCst, SeqCst)
            .is_err()
    {
        return true; // it changed meanwhile: look again
    }
    memory::futex_wait(word, announced, deadline)
}

/// After a read-modify-write that replaced `old` (and cleared [`WAITERS`]), wake every sleeper
/// if one had announced itself.
pub(crate) fn wake_if_waiters(word: &AtomicU32, old: u32) {
    if old & WAITERS != 0 {
        memory::futex_wake(word, u32::MAX);
    }
}
