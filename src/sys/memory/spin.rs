//! The poll-before-sleep policy: how long, and whether, a waiter spins first.

use std::time::{Duration, Instant};

/// How long a waiter keeps polling (yielding the CPU) before it sleeps in the kernel.
pub const SPIN_BEFORE_BLOCKING: Duration = Duration::from_micros(50);

/// Whether waiting by polling can pay off: only when the other party can run meanwhile on
/// another CPU. Polling before sleeping avoids the wake-up of an idle CPU, which on virtual
/// machines costs more than a whole round trip.
pub fn spin_enabled() -> bool {
    static SPIN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPIN.get_or_init(|| crate::sys::cpu_count() > 1)
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
