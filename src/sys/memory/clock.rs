//! Deadlines as absolute kernel times (`timespec`) for futex and mutex waits.

use std::time::{Duration, Instant};

/// `deadline` as an absolute `CLOCK_MONOTONIC` time (the clock `Instant` reads).
pub(super) fn monotonic_deadline(deadline: Instant) -> libc::timespec {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    add_to(now.tv_sec, now.tv_nsec, remaining)
}

/// `sec.nsec + d`, saturating.
pub(super) fn add_to(sec: i64, nsec: i64, d: Duration) -> libc::timespec {
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
pub(super) fn realtime_deadline(deadline: Instant) -> libc::timespec {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    add_to(now.tv_sec, now.tv_nsec, remaining)
}
