//! Shared futexes: sleeping on a word of shared memory, and waking its sleepers.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

#[cfg(feature = "async")]
use super::clock::monotonic_deadline;

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

/// Release a priority-inheritance futex `word` that the calling thread owns and that has
/// waiters: the kernel writes the first waiter's id into the word and wakes it. The futex
/// is shared, as glibc's robust mutexes are.
pub fn futex_unlock_pi(word: &AtomicU32) -> std::io::Result<()> {
    rustix::thread::futex::unlock_pi(word, rustix::thread::futex::Flags::empty())
        .map_err(std::io::Error::from)
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
