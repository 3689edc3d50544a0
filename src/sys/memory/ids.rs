//! The calling thread's ids: its kernel thread id, and `(pid, tid)` cached per thread
//! across forks.

/// The calling thread's kernel id.
pub fn gettid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
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
#[inline]
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
        let fresh = (crate::sys::getpid(), gettid());
        ids.set((generation, fresh.0, fresh.1));
        fresh
    })
}
