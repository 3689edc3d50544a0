//! Logging and diagnostics across processes.
//!
//! Every process of a multi-process program writes on its own; this module brings it back
//! together in the parent:
//!
//! - **Records from children.** What a child (started by any method, a pool or executor worker
//!   included) logs through [`log`](https://docs.rs/log) or, with the default `tracing`
//!   feature, [`tracing`](https://docs.rs/tracing), reaches the *parent's* logger or
//!   subscriber, labelled with the child's name and pid (`Process-1 (pid 4242): message`, plus
//!   `process_name` and `pid` key-values for structured loggers). Records arrive whole and in
//!   order per child thread, and none is lost while the parent runs: a child whose records
//!   outpace the parent waits for room.
//! - **Zero cost when off.** Forwarding is on when the parent has a logger (`log`'s max level
//!   is not `Off`) or a `tracing` subscriber when it starts a child. Otherwise children install
//!   nothing and a log call in them is the usual disabled-level check.
//! - **The library's own events** (process started, exited with its code, pool worker
//!   replaced, task failed, lock owner died) are logged under the target [`TARGET`].
//!   [`log_to_stderr`] shows them, and everything else, on standard error with the process
//!   name, like Python's `multiprocessing.log_to_stderr`; [`get_logger`] adjusts the library's
//!   own level.
//! - **Output prefixing** (off by default): with [`prefix_child_output`], each line a child
//!   prints on its stdout or stderr reaches the parent's with the child's name in front, so
//!   concurrent prints stay readable.
//! - **Panics** of a child are shown once, with its name: as an error record when forwarding
//!   is on, otherwise as one line on the child's standard error. The full report (message,
//!   location, backtrace) is also the error its `join` returns.
//!
//! ```
//! use multiproc::{logging, Process};
//!
//! fn work(n: u32) -> u32 {
//!     log::info!("working on {n}");
//!     n + 1
//! }
//!
//! logging::log_to_stderr(log::LevelFilter::Info)?;
//! let child = Process::start(work, 41)?;
//! assert_eq!(child.join()?, 42);
//! // stderr: "[INFO/Process-1 (pid 4242)] working on 41", and the library's own lines
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How records travel
//! The process that starts the first child while logging is on (the *root*) creates one
//! shared-memory ring (the crash-tolerant ring behind [`Queue`](crate::Queue)) and a drain
//! thread. Every descendant, grandchildren included, writes its records into that ring; the
//! drain thread re-emits them through the root's `log::logger()` (or its `tracing`
//! dispatcher). [`flush`] waits until every record written so far has been emitted;
//! `Process::join` does so for the records of the joined child.
//!
//! # Fork and foreign loggers
//! A *spawn* or *forkserver* child starts without any logger, so multiproc installs its
//! forwarding logger there. A *fork* child inherits the parent's logger object, which `log`
//! does not let anyone replace: install your logger through [`install`] (or use
//! [`log_to_stderr`]) and fork children forward too; a logger installed directly with
//! `log::set_logger` keeps writing from the fork child itself, unlabelled. `tracing` has no
//! such limit: fork children forward `tracing` events whatever subscriber the parent set.

mod forward;
mod hub;
mod output;
mod stderr;
#[cfg(feature = "tracing")]
mod tracing_forward;

use std::sync::{Mutex, MutexGuard};

use log::LevelFilter;

pub(crate) use forward::{ChildSetup, become_child, forward_panic, prepare_child};

/// Hold the logging threads still across `fork` (they write through the logger and the
/// standard streams, whose locks a child must not inherit held).
pub(crate) fn lock_for_fork() -> ForkGuard {
    ForkGuard {
        _records: hub::lock_for_fork(),
        _output: output::lock_for_fork(),
    }
}

/// See [`lock_for_fork`].
pub(crate) struct ForkGuard {
    _records: MutexGuard<'static, ()>,
    _output: MutexGuard<'static, ()>,
}

/// The state of one of this module's library threads (the log drain, the output relay),
/// and the lock the thread holds while it writes, which `fork` takes too
/// ([`lock_for_fork`]).
struct ThreadState<T> {
    state: Mutex<Option<T>>,
    writing: Mutex<()>,
    /// The pid of the process that set a state.
    owner: fn(&T) -> u32,
}

impl<T> ThreadState<T> {
    const fn new(owner: fn(&T) -> u32) -> ThreadState<T> {
        ThreadState {
            state: Mutex::new(None),
            writing: Mutex::new(()),
            owner,
        }
    }

    /// Lock the state, which belongs to the process that set it: a forked child, which has
    /// none of its parent's threads, finds it empty.
    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .as_ref()
            .is_some_and(|s| (self.owner)(s) != crate::sys::getpid())
        {
            *state = None;
        }
        state
    }

    /// Hold the thread's writing off (also after a writer panicked).
    fn lock_writing(&self) -> MutexGuard<'_, ()> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Emit the records children have written so far (not the relayed output), e.g. before
/// the library reports that a child ended.
pub(crate) fn flush_records() {
    hub::flush_quietly();
}

pub use crate::event::TARGET;

/// Why a logger could not be installed.
///
/// ```
/// use log::LevelFilter;
/// use multiproc::logging::{self, LoggingError};
/// struct Quiet;
/// impl log::Log for Quiet {
///     fn enabled(&self, _: &log::Metadata) -> bool { false }
///     fn log(&self, _: &log::Record) {}
///     fn flush(&self) {}
/// }
/// logging::install(Quiet, LevelFilter::Info)?;
/// // `log` allows one logger per process: a second one is refused, and nothing changes.
/// assert!(matches!(logging::install(Quiet, LevelFilter::Debug), Err(LoggingError::AlreadyInstalled)));
/// assert_eq!(log::max_level(), LevelFilter::Info);
/// # Ok::<(), LoggingError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoggingError {
    /// Another logger was installed with `log::set_logger` before; `log` allows only one.
    #[error(
        "a logger is already installed in this process (log allows one); install it through \
         multiproc::logging::install instead of log::set_logger"
    )]
    AlreadyInstalled,
}

/// Show every record at `level` or above on standard error, labelled with the name and pid of
/// the process it comes from, children's records and the library's own events included
/// (Python's `multiprocessing.log_to_stderr`). Lines look like
/// `[INFO/Process-1 (pid 4242)] message`.
///
/// Calling it again changes the level. It fails if a different logger was installed
/// directly with `log::set_logger`.
///
/// ```
/// use log::LevelFilter;
/// multiproc::logging::log_to_stderr(LevelFilter::Warn)?;
/// multiproc::logging::log_to_stderr(LevelFilter::Info)?; // just changes the level
/// assert_eq!(log::max_level(), LevelFilter::Info);
/// # Ok::<(), multiproc::logging::LoggingError>(())
/// ```
pub fn log_to_stderr(level: LevelFilter) -> Result<(), LoggingError> {
    if stderr::is_installed() {
        log::set_max_level(level);
        return Ok(());
    }
    forward::install_global(Box::new(stderr::StderrLogger), level)?;
    stderr::mark_installed();
    Ok(())
}

/// Install `logger` as this process's `log` logger (instead of `log::set_boxed_logger`),
/// with `level` as `log`'s max level. It works exactly as your logger in this process, and
/// makes children started by *fork*, which inherit it, forward their records to the parent
/// instead of writing on their own (see the [module documentation](self)).
///
/// ```
/// struct Collect;
/// impl log::Log for Collect {
///     fn enabled(&self, _: &log::Metadata) -> bool { true }
///     fn log(&self, record: &log::Record) { let _ = record; /* write it somewhere */ }
///     fn flush(&self) {}
/// }
/// multiproc::logging::install(Collect, log::LevelFilter::Debug)?;
/// assert_eq!(log::max_level(), log::LevelFilter::Debug);
/// # Ok::<(), multiproc::logging::LoggingError>(())
/// ```
pub fn install(logger: impl log::Log + 'static, level: LevelFilter) -> Result<(), LoggingError> {
    forward::install_global(Box::new(logger), level)
}

/// Wait until every record that children wrote before this call has been emitted by this
/// process's logger, and every complete line they printed has been relayed (with
/// [`prefix_child_output`]). Returns at once when nothing is pending or logging is off; never
/// waits forever (a stalled logger is given up on after a few seconds without progress).
///
/// ```
/// fn shout(_: ()) { log::warn!("from a child"); }
/// multiproc::logging::log_to_stderr(log::LevelFilter::Warn)?;
/// multiproc::Process::start(shout, ())?.join()?; // join already flushes its child's records
/// multiproc::logging::flush();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn flush() {
    flush_records();
    output::flush();
}

/// Prefix each line that children started from now on print on their standard output and
/// error with `[name] `, when it reaches this process's own stdout and stderr. Off by
/// default. Pool and executor workers started later are covered too; a child's own children
/// print under that child's name.
///
/// ```
/// fn chatty(_: ()) { println!("hello"); }
/// multiproc::logging::prefix_child_output(true);
/// multiproc::Process::builder().name("talker").start(chatty, ())?.join()?;
/// // stdout: "[talker] hello"
/// multiproc::logging::prefix_child_output(false);
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
pub fn prefix_child_output(enabled: bool) {
    output::set_enabled(enabled);
}

/// The library's own logger: the records multiproc itself emits under [`TARGET`]
/// (Python's `multiprocessing.get_logger()`).
///
/// ```
/// let logger = multiproc::logging::get_logger();
/// assert_eq!(logger.target(), "multiproc");
/// ```
pub fn get_logger() -> &'static LibraryLogger {
    static LOGGER: LibraryLogger = LibraryLogger { _private: () };
    &LOGGER
}

/// See [`get_logger`].
///
/// ```
/// let logger = multiproc::logging::get_logger();
/// logger.set_level(log::LevelFilter::Warn); // lifecycle events are Info: hidden
/// assert!(!logger.enabled(log::Level::Info));
/// logger.set_level(log::LevelFilter::Trace);
/// ```
#[derive(Debug)]
pub struct LibraryLogger {
    _private: (),
}

impl LibraryLogger {
    /// The `log` target of the library's records, [`TARGET`].
    ///
    /// ```
    /// assert_eq!(multiproc::logging::get_logger().target(), multiproc::logging::TARGET);
    /// ```
    pub fn target(&self) -> &'static str {
        TARGET
    }

    /// Show only the library's records at `level` or above (the installed logger still
    /// filters too). Children started afterwards inherit the setting.
    ///
    /// ```
    /// multiproc::logging::get_logger().set_level(log::LevelFilter::Off);
    /// assert_eq!(multiproc::logging::get_logger().level(), log::LevelFilter::Off);
    /// multiproc::logging::get_logger().set_level(log::LevelFilter::Trace);
    /// ```
    pub fn set_level(&self, level: LevelFilter) {
        crate::event::set_library_level(level);
    }

    /// The level set with [`set_level`](Self::set_level).
    ///
    /// ```
    /// assert_eq!(multiproc::logging::get_logger().level(), log::LevelFilter::Trace);
    /// ```
    pub fn level(&self) -> LevelFilter {
        crate::event::library_level()
    }

    /// Whether a library record at `level` would be emitted (by the library's level and the
    /// installed logger's max level).
    ///
    /// ```
    /// let logger = multiproc::logging::get_logger();
    /// assert_eq!(logger.enabled(log::Level::Error), log::max_level() >= log::Level::Error);
    /// ```
    pub fn enabled(&self, level: log::Level) -> bool {
        crate::event::library_enabled(level)
    }
}
