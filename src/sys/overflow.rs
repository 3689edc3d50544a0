//! std's stack-overflow report for processes that run before std's runtime start-up.
//!
//! A spawned or fork-server child runs its task from the `.init_array` boot hook, so std's
//! `lang_start` never installs its SIGSEGV handler there: an overflow would end the child with
//! a bare SIGSEGV. [`report_stack_overflow`] installs the same behaviour std has: on an
//! alternate signal stack, a fault just below the main thread's stack prints
//! `thread '<name>' has overflowed its stack` and aborts (SIGABRT); any other fault restores
//! the default action and returns, so the fault repeats and ends the process as before.
//!
//! Why by hand: this is std's internal handler, which no crate exposes for a process that
//! std did not start.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The lowest address of the main thread's stack region, and the message, set before the
/// handler is installed and only read by it.
static GUARD_LOW: AtomicUsize = AtomicUsize::new(0);
static GUARD_HIGH: AtomicUsize = AtomicUsize::new(0);
static MESSAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// How far below the stack's lowest address a fault still counts as an overflow (the
/// kernel's stack guard gap is 256 pages by default; a frame can skip a few pages).
const GUARD_SPAN: usize = 1 << 20;
const ALT_STACK: usize = 64 * 1024;

extern "C" fn on_fault(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler of SIGSEGV/SIGBUS.
    let address = unsafe { (*info).si_addr() } as usize;
    let (low, high) = (
        GUARD_LOW.load(Ordering::Relaxed),
        GUARD_HIGH.load(Ordering::Relaxed),
    );
    if (low..high).contains(&address) {
        if let Some(message) = MESSAGE.get() {
            // SAFETY: write(2) and abort(3) are async-signal-safe; the buffer is immutable.
            unsafe {
                libc::write(2, message.as_ptr().cast(), message.len());
            }
        }
        // SAFETY: as above.
        unsafe { libc::abort() };
    }
    // Not an overflow: the default action, which the repeated fault then takes.
    // SAFETY: resetting a signal to SIG_DFL is async-signal-safe.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// Report a main-thread stack overflow as std does, naming the process `name`.
pub fn report_stack_overflow(name: &str) {
    let message = format!(
        "\nthread '{name}' has overflowed its stack\nfatal runtime error: stack overflow, aborting\n"
    );
    let _ = MESSAGE.set(message.into_bytes());
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which is then read and
    // destroyed once; sigaltstack gets a fresh anonymous mapping that is never unmapped (the
    // process keeps it until it exits); sigaction installs a handler that only touches
    // atomics, an immutable buffer and async-signal-safe calls.
    unsafe {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return;
        }
        let mut stack: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut stack, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if got != 0 {
            return;
        }
        let low = stack as usize;
        GUARD_LOW.store(low.saturating_sub(GUARD_SPAN), Ordering::Relaxed);
        GUARD_HIGH.store(low.saturating_add(4096), Ordering::Relaxed);

        let alt = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if alt == libc::MAP_FAILED {
            return;
        }
        let altstack = libc::stack_t {
            ss_sp: alt,
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        if libc::sigaltstack(&altstack, std::ptr::null_mut()) != 0 {
            return;
        }
        let mut action: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fault;
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}
