//! The start methods ([`StartMethod`]) and the program-wide default ([`set_start_method`],
//! [`get_start_method`]).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

use super::ProcessError;

/// How a child process is created (Python's start methods).
///
/// ```
/// use multiproc::{Process, StartMethod};
/// fn double(x: u32) -> u32 { x * 2 }
/// assert_eq!(StartMethod::default(), StartMethod::ForkServer);
/// assert_eq!("spawn".parse::<StartMethod>()?, StartMethod::Spawn); // Python's names
/// assert_eq!(StartMethod::Fork.to_string(), "fork");
/// // Any method runs the same task; spawn starts a fresh copy of this executable for it.
/// let child = Process::builder().start_method(StartMethod::Spawn).start(double, 21)?;
/// assert_eq!(child.start_method(), StartMethod::Spawn);
/// assert_eq!(child.join()?, 42);
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// `fork()` the calling process: fastest, and the only method that can run a capturing
    /// closure, but unsafe in spirit when other threads hold locks (their locks stay locked
    /// in the child).
    Fork,
    /// Start a fresh copy of the executable that runs only the task.
    Spawn,
    /// Ask a single-threaded server process, started on first use, to fork the child. The
    /// default: nearly as fast as fork and safe in a multithreaded parent.
    #[default]
    ForkServer,
}

impl StartMethod {
    /// Python's name for the method: `"fork"`, `"spawn"` or `"forkserver"`.
    ///
    /// ```
    /// assert_eq!(multiproc::StartMethod::ForkServer.as_str(), "forkserver");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }

    /// All methods available on this platform (Python's `get_all_start_methods`).
    ///
    /// ```
    /// assert_eq!(multiproc::StartMethod::all().len(), 3);
    /// ```
    pub fn all() -> &'static [StartMethod] {
        &[
            StartMethod::ForkServer,
            StartMethod::Spawn,
            StartMethod::Fork,
        ]
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StartMethod {
    type Err = ProcessError;
    fn from_str(s: &str) -> Result<Self, ProcessError> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            other => Err(ProcessError::Start(format!(
                "unknown start method {other:?} (expected fork, spawn or forkserver)"
            ))),
        }
    }
}

static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(2);

/// Set the start method used when a [`ProcessBuilder`](super::ProcessBuilder) does not
/// choose one (Python's `set_start_method`).
///
/// ```
/// use multiproc::StartMethod;
/// multiproc::set_start_method(StartMethod::Spawn);
/// assert_eq!(multiproc::get_start_method(), StartMethod::Spawn);
/// multiproc::set_start_method(StartMethod::ForkServer);
/// ```
pub fn set_start_method(method: StartMethod) {
    let code = match method {
        StartMethod::Fork => 0,
        StartMethod::Spawn => 1,
        StartMethod::ForkServer => 2,
    };
    DEFAULT_METHOD.store(code, Ordering::Relaxed);
}

/// The start method used when a [`ProcessBuilder`](super::ProcessBuilder) does not choose
/// one ([`StartMethod::ForkServer`] unless changed with [`set_start_method`]).
///
/// In a child, it starts as the method that child was started with, as in Python (whose
/// `Process._bootstrap` forces the child's default context to its own method): a spawned
/// child reports `Spawn`, and its own children are spawned too unless it chooses otherwise.
///
/// ```
/// println!("default start method: {}", multiproc::get_start_method());
/// ```
pub fn get_start_method() -> StartMethod {
    match DEFAULT_METHOD.load(Ordering::Relaxed) {
        0 => StartMethod::Fork,
        1 => StartMethod::Spawn,
        _ => StartMethod::ForkServer,
    }
}
