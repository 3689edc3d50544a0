//! The library's own threads (log drain, output relay, reaper, pool collectors, ...): started
//! here with a `multiproc-*` name and counted while they start, so that `fork` can tell them
//! from the program's threads (it refuses to fork while any of those run; the library's own
//! never hold a lock across `fork` that the fork path does not take first).
//!
//! A leaf (it uses only `sys`), so that every layer that runs a thread starts it here without
//! depending on the process layer.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys;

/// The prefix of every thread this library starts.
const LIBRARY_THREAD_PREFIX: &str = "multiproc";

/// Library threads spawned whose name may not be set yet (std names a thread from inside it,
/// just before its body runs): a fork in that instant must not count them as foreign.
static STARTING: AtomicUsize = AtomicUsize::new(0);

/// Start one of the library's own threads, named `name` (which starts with `multiproc`).
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> io::Result<std::thread::JoinHandle<T>> {
    debug_assert!(name.starts_with(LIBRARY_THREAD_PREFIX));
    STARTING.fetch_add(1, Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            STARTING.fetch_sub(1, Ordering::SeqCst);
            body()
        });
    if spawned.is_err() {
        STARTING.fetch_sub(1, Ordering::SeqCst);
    }
    spawned
}

/// The names of this process's threads that are neither the caller nor the library's own.
pub(crate) fn foreign_threads() -> Vec<String> {
    let mut names = sys::other_thread_names();
    names.retain(|n| !n.starts_with(LIBRARY_THREAD_PREFIX));
    // A library thread being born still carries its creator's name.
    let starting = STARTING.load(Ordering::SeqCst);
    names.truncate(names.len().saturating_sub(starting));
    names
}
