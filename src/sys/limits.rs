//! Resource limits, scheduling priority and memory figures of the calling process, and the
//! report of an allocation failure that a memory limit caused.
//!
//! `setrlimit`/`getrlimit`/`setpriority` come from `rustix`. The allocation-failure report is
//! written by hand because nothing else can see it: Rust's allocation error handler (on
//! stable, and without a `#[global_allocator]`, which a library must not impose) prints
//! `memory allocation of N bytes failed` and calls `abort`. What it leaves behind is `errno`:
//! `malloc` failed with `ENOMEM` (its `mmap`/`brk` hit `RLIMIT_AS`), the message's `write`s
//! succeed and leave `errno` alone, and `abort` raises `SIGABRT` in that same thread. So a
//! `SIGABRT` handler that finds `errno == ENOMEM` in the aborting thread knows the abort
//! follows an allocation failure. It then writes a frame prepared in advance (the child's
//! "memory limit" outcome) to the status socket with one `send`, async-signal-safe, and
//! returns; `abort` goes on to end the process with `SIGABRT` as before. Any other abort is
//! left untouched.
//!
//! The one gap: when `RUST_BACKTRACE` asks std to print a backtrace after the message and
//! enough memory is left to resolve it (one huge allocation failed, not the last of many),
//! its debug-file lookups change `errno` (`ENOENT`) before `abort`, and the abort is not
//! recognised (the child is reported as ended by `SIGABRT`). A process that runs out of
//! memory by growing, the case a limit is for, leaves `ENOMEM` either way.

use std::io;
use std::os::fd::RawFd;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use rustix::process::{Resource, Rlimit};

/// A limit the kernel enforces per process (`RLIMIT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rlim {
    /// `RLIMIT_AS`: bytes of address space.
    AddressSpace,
    /// `RLIMIT_CPU`: seconds of CPU time (`SIGXCPU` at the soft limit, `SIGKILL` at the hard).
    CpuSeconds,
    /// `RLIMIT_NOFILE`: one more than the highest descriptor number that can be opened.
    OpenFiles,
}

impl Rlim {
    fn resource(self) -> Resource {
        match self {
            Rlim::AddressSpace => Resource::As,
            Rlim::CpuSeconds => Resource::Cpu,
            Rlim::OpenFiles => Resource::Nofile,
        }
    }
}

/// The soft and hard values of a limit (`None`: unlimited).
pub fn get_limit(which: Rlim) -> (Option<u64>, Option<u64>) {
    let Rlimit { current, maximum } = rustix::process::getrlimit(which.resource());
    (current, maximum)
}

/// Set the soft and hard values of a limit for this process (and the children it starts).
pub fn set_limit(which: Rlim, soft: u64, hard: Option<u64>) -> io::Result<()> {
    rustix::process::setrlimit(
        which.resource(),
        Rlimit {
            current: Some(soft),
            maximum: hard,
        },
    )?;
    Ok(())
}

/// Set this process's nice value. Lowering it below the current value needs
/// `CAP_SYS_NICE` or room in `RLIMIT_NICE`.
pub fn set_nice_value(value: i32) -> io::Result<()> {
    Ok(rustix::process::setpriority_process(None, value)?)
}

/// This process's resident memory in bytes (`/proc/self/statm`, second field, in pages).
pub fn resident_bytes() -> io::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages = statm
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/self/statm: {statm:?}")))?;
    Ok(pages * rustix::param::page_size() as u64)
}

/// `SIGXCPU`: what the kernel sends at the soft CPU-time limit.
pub const SIGXCPU: i32 = libc::SIGXCPU;
/// `SIGABRT`: how an allocation failure ends a Rust process.
pub const SIGABRT: i32 = libc::SIGABRT;

/// The status socket and the frame the `SIGABRT` handler sends on it.
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);
static REPORT_FRAME: OnceLock<Vec<u8>> = OnceLock::new();
/// Sends of other frames on the status socket in progress: the handler must not put its
/// frame in the middle of one.
static BUSY: AtomicUsize = AtomicUsize::new(0);
/// Cleared once a decisive outcome was sent (or the handler sent its frame).
static ARMED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_abort(_: libc::c_int) {
    // SAFETY: `__errno_location` returns this thread's errno, readable from a signal handler
    // running in that thread.
    let errno = unsafe { *libc::__errno_location() };
    if errno != libc::ENOMEM || BUSY.load(Ordering::SeqCst) != 0 {
        return;
    }
    if !ARMED.swap(false, Ordering::SeqCst) {
        return;
    }
    let fd = REPORT_FD.load(Ordering::SeqCst);
    if let Some(frame) = REPORT_FRAME.get() {
        // SAFETY: send(2) is async-signal-safe; the frame is immutable once set and the
        // descriptor stays open until the process exits (the child runtime owns it).
        unsafe {
            libc::send(fd, frame.as_ptr().cast(), frame.len(), libc::MSG_NOSIGNAL);
        }
    }
    // Returning lets `abort` go on: it restores the default action and raises again.
}

/// In this (child) process, send `frame` on `fd` when the process aborts right after an
/// allocation failed (see the module documentation). Install once, before the task runs.
pub fn report_allocation_failure(fd: RawFd, frame: Vec<u8>) {
    if REPORT_FRAME.set(frame).is_err() {
        return;
    }
    REPORT_FD.store(fd, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    // SAFETY: the handler only reads atomics, this thread's errno and an immutable buffer,
    // and calls send(2), all async-signal-safe. SA_RESETHAND puts the default action back
    // for the repeated raise inside `abort`.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int) = on_abort;
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
}

/// While the returned guard lives, the allocation-failure frame is held back (this thread
/// sends another frame on the status socket).
pub fn hold_allocation_report() -> impl Drop {
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            BUSY.fetch_sub(1, Ordering::SeqCst);
        }
    }
    BUSY.fetch_add(1, Ordering::SeqCst);
    Release
}

/// A decisive outcome was sent: the allocation-failure frame must never follow it.
pub fn disarm_allocation_report() {
    ARMED.store(false, Ordering::SeqCst);
}
