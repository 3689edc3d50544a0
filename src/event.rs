//! The library's own lifecycle events (process started and exited, worker replaced, task
//! failed, lock owner died): the `event!` macro every one of them goes through, their `log`
//! target and the library's own level.
//!
//! A leaf (it uses only `log`), so that every layer, from the locks up, reports through it
//! without depending on the logging machinery that carries records between processes
//! (`crate::logging`, which shows and adjusts the level set here).

use std::sync::atomic::{AtomicUsize, Ordering};

use log::LevelFilter;

/// The `log` target of multiproc's own records (Python's `multiprocessing` logger name).
///
/// ```
/// assert_eq!(multiproc::logging::TARGET, "multiproc");
/// // With env_logger: RUST_LOG=multiproc=debug shows the library's lifecycle events.
/// ```
pub const TARGET: &str = "multiproc";

/// The library's own level: an extra filter on its records, below whatever the installed
/// logger allows (`Trace`, i.e. no extra filter, by default). Children inherit it.
static LIBRARY_LEVEL: AtomicUsize = AtomicUsize::new(LevelFilter::Trace as usize);

/// Set the library's own level (see `logging::LibraryLogger::set_level`).
pub(crate) fn set_library_level(level: LevelFilter) {
    LIBRARY_LEVEL.store(level as usize, Ordering::Relaxed);
}

/// The library's own level.
pub(crate) fn library_level() -> LevelFilter {
    level_filter(LIBRARY_LEVEL.load(Ordering::Relaxed))
}

/// Whether the library should emit a record at `level` (cheap: two relaxed loads).
pub(crate) fn library_enabled(level: log::Level) -> bool {
    level <= log::max_level() && level as usize <= LIBRARY_LEVEL.load(Ordering::Relaxed)
}

/// The level filter whose number (`LevelFilter as usize`) is `n`; `Trace` for a number that
/// names none.
pub(crate) fn level_filter(n: usize) -> LevelFilter {
    LevelFilter::iter()
        .find(|l| *l as usize == n)
        .unwrap_or(LevelFilter::Trace)
}

/// Emit one of the library's own records (target [`TARGET`]) if its level is enabled.
macro_rules! event {
    ($level:expr, $($arg:tt)+) => {
        if $crate::event::library_enabled($level) {
            // A logger that panics loses this record, never the caller (often a pool's
            // collector thread).
            let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                ::log::log!(target: $crate::event::TARGET, $level, $($arg)+);
            }));
        }
    };
}
pub(crate) use event;
