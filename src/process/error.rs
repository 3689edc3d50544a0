//! [`ProcessError`], why starting or joining a process failed, and [`RemotePanic`], a
//! child's panic as the parent sees it.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::connection::ConnectionError;
use crate::handle::CodecError;
use crate::sys;

use super::LimitError;

/// Where a panic happened in the child.
///
/// ```
/// fn boom(_: ()) { panic!("bad input") }
/// let Err(multiproc::ProcessError::Panicked(panic)) = multiproc::Process::start(boom, ())?.join() else {
///     panic!("expected a panic");
/// };
/// let at = panic.location.expect("a panic records where it happened");
/// assert!(at.line > 0 && at.column > 0);
/// assert_eq!(at.to_string(), format!("{}:{}:{}", at.file, at.line, at.column));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// Source file.
    pub file: String,
    /// Line (1-based).
    pub line: u32,
    /// Column (1-based).
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A panic in a child process, as reported to the parent.
///
/// ```
/// use multiproc::{Process, ProcessError};
/// fn boom(_: ()) { panic!("bad input") }
/// let child = Process::builder().name("fragile").start(boom, ())?;
/// let pid = child.pid();
/// match child.join() {
///     Err(ProcessError::Panicked(p)) => {
///         assert_eq!((p.process_name.as_str(), p.pid, p.message.as_str()), ("fragile", pid, "bad input"));
///         assert!(p.to_string().starts_with(&format!("process 'fragile' (pid {pid}) panicked at ")));
///     }
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// # Ok::<(), ProcessError>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemotePanic {
    /// Name of the child.
    pub process_name: String,
    /// Pid of the child.
    pub pid: u32,
    /// The panic message.
    pub message: String,
    /// Where it panicked.
    pub location: Option<Location>,
    /// The child's backtrace at the panic (always captured, whatever `RUST_BACKTRACE` says).
    pub backtrace: String,
    /// Name of the panicking thread in the child, if it had one.
    pub thread: Option<String>,
}

impl fmt::Display for RemotePanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process '{}' (pid {}) panicked",
            self.process_name, self.pid
        )?;
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why starting or joining a process failed.
///
/// ```
/// use multiproc::{Process, ProcessError};
/// fn leave(code: i32) { std::process::exit(code) }
/// match Process::start(leave, 3)?.join() {
///     Err(e @ ProcessError::Exited { code: 3, .. }) => assert_eq!(e.exitcode(), Some(3)),
///     other => panic!("expected an exit without a value, got {other:?}"),
/// }
/// # Ok::<(), ProcessError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The child's task panicked.
    #[error("{0}")]
    Panicked(Box<RemotePanic>),
    /// The child exited with this code before returning a value (it called
    /// `std::process::exit`, or its task could not produce a value).
    #[error("process '{name}' (pid {pid}) exited with code {code} without returning a value")]
    Exited {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// A signal ended the child (`SIGKILL`, `SIGSEGV`, ...).
    #[error(
        "process '{name}' (pid {pid}) was killed by signal {signal} ({signal_name}){}",
        if *core_dumped { ", core dumped" } else { "" }
    )]
    Signaled {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
        /// The signal number.
        signal: i32,
        /// Its conventional name.
        signal_name: &'static str,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// The child went past its CPU-time limit
    /// ([`Limits::cpu_time`](super::Limits::cpu_time)): the kernel ended it with `SIGXCPU`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{ProcessBuilder, Limits, ProcessError};
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    /// let child = ProcessBuilder::new().limits(Limits::new().cpu_time(Duration::from_secs(1))).start(spin, ())?;
    /// match child.join() {
    ///     Err(ProcessError::CpuLimit { limit, .. }) => assert_eq!(limit, Duration::from_secs(1)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), ProcessError>(())
    /// ```
    #[error(
        "process '{name}' (pid {pid}) used up its CPU-time limit of {limit:?} and was ended \
         (SIGXCPU); raise the limit or give the task less work"
    )]
    CpuLimit {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
        /// Its CPU-time limit.
        limit: Duration,
    },
    /// An allocation in the child failed under its memory limit
    /// ([`Limits::memory`](super::Limits::memory)), and the child aborted.
    ///
    /// ```
    /// use multiproc::{ProcessBuilder, Limits, ProcessError};
    /// fn hoard(_: ()) { let mut v: Vec<Vec<u8>> = Vec::new(); loop { v.push(vec![7; 1 << 20]) } }
    /// let child = ProcessBuilder::new().limits(Limits::new().memory(512 << 20)).start(hoard, ())?;
    /// match child.join() {
    ///     Err(ProcessError::MemoryLimit { limit, .. }) => assert_eq!(limit, 512 << 20),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), ProcessError>(())
    /// ```
    #[error(
        "process '{name}' (pid {pid}) ran out of memory under its limit of {limit} bytes \
         (an allocation failed and it aborted); raise the limit or make the task use less"
    )]
    MemoryLimit {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
        /// Its memory (address-space) limit in bytes.
        limit: u64,
    },
    /// The child's [`Limits`](super::Limits) could not be put in place; its task did not run.
    #[error(transparent)]
    Limits(#[from] LimitError),
    /// The child started but could not run its task (e.g. its argument failed to decode).
    #[error("process '{name}' (pid {pid}) could not run its task: {reason}")]
    TaskFailed {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
    /// The fork server ended before reporting how the child ended.
    #[error("process '{name}' (pid {pid}) ended, but its fork server died before reporting how")]
    Lost {
        /// Name of the child.
        name: String,
        /// Pid of the child.
        pid: u32,
    },
    /// The process could not be started.
    #[error("could not start process: {0}")]
    Start(String),
    /// The fork start method (or [`ProcessBuilder::fork`](super::ProcessBuilder::fork)) was
    /// refused because other threads run in this process: a forked child gets a copy of
    /// their locks, held forever. Use the fork server or spawn start method, or, if those
    /// threads hold nothing the child uses,
    /// [`allow_fork_with_threads`](super::allow_fork_with_threads) or
    /// [`ProcessBuilder::fork_unchecked`](super::ProcessBuilder::fork_unchecked).
    ///
    /// ```
    /// use multiproc::{ProcessBuilder, ProcessError};
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let other = std::thread::Builder::new().name("busy".into()).spawn(move || rx.recv())?;
    /// match ProcessBuilder::new().fork(|| 1) {
    ///     Err(ProcessError::ForkWithThreads { threads }) => assert_eq!(threads.len(), 1),
    ///     other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    /// }
    /// drop(tx);
    /// other.join().unwrap().unwrap_err();
    /// // Without the other thread, fork is allowed again.
    /// assert_eq!(ProcessBuilder::new().fork(|| 1)?.join()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[error(
        "refusing to fork: {} other thread(s) run in this process ({}), and the child would \
         inherit any lock they hold; use the forkserver or spawn start method (or, if they \
         hold nothing the child uses, the unsafe allow_fork_with_threads/fork_unchecked)",
        threads.len(),
        threads.join(", ")
    )]
    ForkWithThreads {
        /// The names of those threads.
        threads: Vec<String>,
    },
    /// As in Python, a daemonic process may not start children (they would be orphaned when
    /// it is terminated).
    #[error("daemonic processes are not allowed to have children")]
    DaemonCannotHaveChildren,
    /// The task or its result could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Talking to the child failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// An operating-system error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl ProcessError {
    /// Python's exit code for the child, when the error is about how it ended: `n` for
    /// `exit(n)`, 1 for a panic, `-N` for signal `N`.
    ///
    /// ```
    /// use multiproc::{Process, StartMethod};
    /// fn fail(code: i32) { std::process::exit(code) }
    /// let err = Process::start(fail, 3)?.join().unwrap_err();
    /// assert_eq!(err.exitcode(), Some(3));
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        match self {
            ProcessError::Panicked(_) | ProcessError::TaskFailed { .. } => Some(1),
            ProcessError::Exited { code, .. } => Some(*code),
            ProcessError::Signaled { signal, .. } => Some(-signal),
            ProcessError::CpuLimit { .. } => Some(-sys::limits::SIGXCPU),
            ProcessError::MemoryLimit { .. } => Some(-sys::limits::SIGABRT),
            _ => None,
        }
    }
}
