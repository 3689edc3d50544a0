// long file: several concepts (Process, ProcessBuilder, errors, start methods); to split like manager/ (issue 16)
//! Child processes: starting them, watching them, ending them, getting their results.
//!
//! A child runs a *task*: a function (a function item, or a closure that captures nothing)
//! with a serializable argument ([`Process::start`]; [`start!`](crate::start!) hands it
//! named variables), a value implementing [`Run`] ([`ProcessBuilder::start_run`]), or, with the
//! fork start method only, any closure ([`ProcessBuilder::fork`]). Its return value comes back on
//! [`Process::join`]; a panic comes back as [`ProcessError::Panicked`] with the child's
//! message, location and backtrace; death by a signal as [`ProcessError::Signaled`].
//!
//! [`ProcessBuilder::limits`] runs the child under resource [`Limits`] (memory, CPU time, open
//! files, nice value); going past the memory or CPU limit ends it with
//! [`ProcessError::MemoryLimit`] or [`ProcessError::CpuLimit`].
//!
//! Three [`StartMethod`]s exist, as in Python: `Fork`, `Spawn` (a re-executed copy of the
//! program that runs only the task) and `ForkServer` (the default: children are forked by a
//! small single-threaded server, which is safe however many threads the parent has).
//!
//! # Lifetime of children
//! - Every child is reaped: by [`Process::join`], or, if its handle is dropped first, by a
//!   background reaper thread, so no zombie is left behind.
//! - When the parent exits normally (`main` returns or `std::process::exit`), daemonic
//!   children are sent `SIGTERM` (then `SIGKILL` after one second) and the parent then waits
//!   for all non-daemonic children to finish, as Python does. A child does the same with its
//!   own children when its task ends.
//! - With the fork start method the child inherits *every* descriptor of the parent, as in
//!   Python: the child holds copies of pipe ends the parent keeps, so end of file on a pipe
//!   needs the parent to drop its copy *and* the child not to hold one. Spawn and forkserver
//!   children receive only the descriptors in their arguments, which is why moving a
//!   `Connection` into a child is enough there.
//! - If the parent dies abruptly (`SIGKILL`, a crash), daemonic children are killed by the
//!   kernel (`PR_SET_PDEATHSIG`); Python leaves them running. Non-daemonic children keep
//!   running and are adopted by init, as in Python. With the fork and spawn methods the
//!   kernel ties the death signal to the *thread* that started the child: start daemonic
//!   children from a long-lived thread (with the fork server, the server's only thread is
//!   the parent, so this caveat does not apply).

pub(crate) mod child;
pub(crate) mod fork;
mod forkserver;
mod limits;
mod registry;
mod spawn;
mod task;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::connection::{Connection, ConnectionError};
use crate::handle::{self, CodecError};
use crate::identity::{self, Identity};
use crate::panic_report::PanicReport;
use crate::sys::{self, ExitStatus};
use child::Outcome;
use registry::ChildRecord;
use spawn::{BootHeader, TaskMessage};
use task::{EntryPoint, FnTask};

pub use fork::allow_fork_with_threads;
pub use forkserver::forkserver_pid;
pub use limits::{Limit, LimitError, Limits};
pub use registry::ChildInfo;
pub use task::Run;

/// How a child process is created (Python's start methods).
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

/// Set the start method used when a [`ProcessBuilder`] does not choose one (Python's
/// `set_start_method`).
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

/// The start method used when a [`ProcessBuilder`] does not choose one ([`StartMethod::ForkServer`]
/// unless changed with [`set_start_method`]).
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

/// Where a panic happened in the child.
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
    /// The child went past its CPU-time limit ([`Limits::cpu_time`]): the kernel ended it
    /// with `SIGXCPU`.
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
    /// An allocation in the child failed under its memory limit ([`Limits::memory`]), and
    /// the child aborted.
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
    /// The child's [`Limits`] could not be put in place; its task did not run.
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
    /// The fork start method (or [`ProcessBuilder::fork`]) was refused because other threads run in
    /// this process: a forked child gets a copy of their locks, held forever. Use the fork
    /// server or spawn start method, or, if those threads hold nothing the child uses,
    /// [`allow_fork_with_threads`] or [`ProcessBuilder::fork_unchecked`].
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

/// A started child: what every start method hands back.
pub(crate) struct Started {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub status: Connection,
    /// Whether the kernel made it our child (so we reap it) or the fork server's.
    pub ours: bool,
}

/// The old name of [`ProcessBuilder`], renamed so that every builder of the crate is named
/// after what it builds (`PoolBuilder`, `QueueBuilder`, `ExecutorBuilder`, ...).
///
/// ```
/// #[allow(deprecated)]
/// let builder = multiproc::Builder::new().name("old-style");
/// # let _ = builder;
/// ```
#[deprecated(since = "0.2.0", note = "renamed to `ProcessBuilder`")]
pub type Builder = ProcessBuilder;

/// Configures and starts a child process (Python's `Process(...)` + `start()`).
///
/// ```
/// use multiproc::{ProcessBuilder, StartMethod};
///
/// fn shout(s: String) -> String { s.to_uppercase() }
///
/// # fn main() -> Result<(), multiproc::ProcessError> {
/// let child = ProcessBuilder::new()
///     .name("shouter")
///     .start_method(StartMethod::Spawn)
///     .start(shout, "hi".to_string())?;
/// assert_eq!(child.name(), "shouter");
/// assert_eq!(child.join()?, "HI");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a ProcessBuilder does nothing until one of its start methods is called"]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    method: Option<StartMethod>,
    limits: Limits,
}

impl ProcessBuilder {
    /// A builder with the defaults: name `Process-N`, not daemonic, the default start method.
    ///
    /// ```
    /// let _ = multiproc::ProcessBuilder::new();
    /// ```
    pub fn new() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// Name the child (default `Process-N`, numbered per parent as in Python).
    ///
    /// ```
    /// let b = multiproc::ProcessBuilder::new().name("worker-1");
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// Make the child daemonic: terminated when the parent exits, killed if it dies.
    ///
    /// ```
    /// let b = multiproc::ProcessBuilder::new().daemon(true);
    /// ```
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// Choose the start method for this child.
    ///
    /// ```
    /// let b = multiproc::ProcessBuilder::new().start_method(multiproc::StartMethod::Fork);
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> ProcessBuilder {
        self.method = Some(method);
        self
    }

    /// Resource limits for the child (memory, CPU time, open files, nice value), set in the
    /// child before its task runs, with every start method. Going past the memory or CPU
    /// limit ends the child with [`ProcessError::MemoryLimit`] or [`ProcessError::CpuLimit`];
    /// a limit the child cannot have fails the start with [`ProcessError::Limits`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use multiproc::{ProcessBuilder, Limits, ProcessError};
    ///
    /// fn spin(_: ()) { loop { std::hint::spin_loop() } }
    ///
    /// let child = ProcessBuilder::new()
    ///     .limits(Limits::new().cpu_time(Duration::from_secs(1)))
    ///     .start(spin, ())?;
    /// assert!(matches!(child.join(), Err(ProcessError::CpuLimit { .. })));
    /// # Ok::<(), ProcessError>(())
    /// ```
    pub fn limits(mut self, limits: Limits) -> ProcessBuilder {
        self.limits = limits;
        self
    }

    /// Start a child that runs `f(arg)`. `f` is a function pointer: a function item or a
    /// closure that captures nothing (a spawned child is a fresh copy of the program and
    /// finds `f` there; captured variables would have no way to get there). Put the data
    /// `f` needs in `arg`, which may contain [`Connection`]s and [`Handle`](crate::Handle)s;
    /// the [`start!`](crate::start!) macro does that for named variables.
    ///
    /// ```
    /// fn add((a, b): (i64, i64)) -> i64 { a + b }
    /// let child = multiproc::ProcessBuilder::new().start(add, (2, 3))?;
    /// assert_eq!(child.join()?, 5);
    /// let child = multiproc::ProcessBuilder::new().start(|name: String| name.len(), "abc".into())?;
    /// assert_eq!(child.join()?, 3);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    ///
    /// A closure that captures a variable is refused by the type checker where it is passed
    /// ("expected fn pointer, found closure ... closures can only be coerced to `fn` types if
    /// they do not capture any variables"):
    ///
    /// ```compile_fail,E0308
    /// let greeting = String::from("hello");
    /// let child = multiproc::ProcessBuilder::new().start(|n: usize| greeting.len() + n, 1);
    /// ```
    ///
    /// Pass the value instead, or name it in [`start!`](crate::start!), or use
    /// [`fork`](ProcessBuilder::fork), whose child has a copy of the parent's memory.
    pub fn start<A, R>(self, f: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.start_run(FnTask::new(f, arg))
    }

    /// Start a child that runs `task.run()` (the "class-style" process; see [`Run`]).
    ///
    /// ```
    /// use multiproc::Run;
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Double(u32);
    /// impl Run for Double {
    ///     type Output = u32;
    ///     fn run(self) -> u32 { self.0 * 2 }
    /// }
    /// assert_eq!(multiproc::ProcessBuilder::new().start_run(Double(21))?.join()?, 42);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn start_run<T: Run>(self, task: T) -> Result<Process<T::Output>, ProcessError> {
        let method = self.method.unwrap_or_else(get_start_method);
        self.limits.check()?;
        let identity = self.identity()?;
        let logging = crate::logging::prepare_child(&identity.name);
        let started = match method {
            StartMethod::Fork => fork::start(
                identity.clone(),
                logging,
                &self.limits,
                fork::Check::Threads,
                move || task.run(),
            )?,
            StartMethod::Spawn | StartMethod::ForkServer => {
                let header = BootHeader {
                    entry: EntryPoint::of::<T>(),
                    identity: identity.clone(),
                    start_method: method,
                    logging,
                    limits: self.limits.clone(),
                };
                let mut bytes = Vec::new();
                let fds = handle::encode(&task, &mut bytes)?;
                drop(task);
                let message = TaskMessage { bytes, fds };
                if method == StartMethod::Spawn {
                    spawn::start(&header, &message)?
                } else {
                    forkserver::start(&header, &message)?
                }
            }
        };
        Ok(Process::new(started, identity, method, self.limits))
    }

    /// Fork a child that runs the closure `f`, which may capture anything (the child has a
    /// copy of the parent's memory). Always uses the fork start method, whatever was set.
    ///
    /// ```
    /// let words = vec!["a", "b", "c"];
    /// let child = multiproc::ProcessBuilder::new().fork(move || words.join("-"))?;
    /// assert_eq!(child.join()?, "a-b-c");
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    ///
    /// Refused with [`ProcessError::ForkWithThreads`] while threads other than the caller
    /// and the library's own run (see [`allow_fork_with_threads`]).
    pub fn fork<F, R>(self, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.fork_checked(fork::Check::Threads, f)
    }

    /// [`fork`](ProcessBuilder::fork) without the multithreading check (it only logs a warning).
    ///
    /// # Safety
    /// As for [`allow_fork_with_threads`]: no other thread of this process may, at the moment
    /// of the fork, hold a lock or be in the middle of an update of anything `f` uses.
    ///
    /// ```
    /// // SAFETY: no other thread runs in this doctest.
    /// let child = unsafe { multiproc::ProcessBuilder::new().fork_unchecked(|| 2 + 2)? };
    /// assert_eq!(child.join()?, 4);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    ///
    /// ```compile_fail,E0133
    /// let child = multiproc::ProcessBuilder::new().fork_unchecked(|| 1); // needs `unsafe`
    /// ```
    pub unsafe fn fork_unchecked<F, R>(self, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.fork_checked(fork::Check::Unchecked, f)
    }

    fn fork_checked<F, R>(self, check: fork::Check, f: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.limits.check()?;
        let identity = self.identity()?;
        let logging = crate::logging::prepare_child(&identity.name);
        let started = fork::start(identity.clone(), logging, &self.limits, check, f)?;
        Ok(Process::new(
            started,
            identity,
            StartMethod::Fork,
            self.limits,
        ))
    }

    fn identity(&self) -> Result<Identity, ProcessError> {
        if identity::identity().is_some_and(|me| me.daemon) {
            return Err(ProcessError::DaemonCannotHaveChildren);
        }
        Ok(identity::next_child(self.name.clone(), self.daemon))
    }
}

/// A handle to a started child process (Python's `Process` after `start()`).
///
/// `R` is the type the child's task returns. Dropping the handle does not stop the child;
/// it is then reaped in the background when it exits.
///
/// ```
/// use std::time::Duration;
/// use multiproc::Process;
///
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
///
/// # fn main() -> Result<(), multiproc::ProcessError> {
/// let child = Process::start(nap, 10_000)?;
/// assert!(child.is_alive());
/// assert!(!child.join_timeout(Duration::from_millis(50))?); // still running
/// child.terminate()?;
/// let err = child.join().unwrap_err();
/// assert_eq!(err.exitcode(), Some(-15)); // SIGTERM
/// # Ok(())
/// # }
/// ```
pub struct Process<R> {
    record: Arc<ChildRecord>,
    method: StartMethod,
    /// To name the limit that ended the child.
    limits: Limits,
    state: Mutex<State<R>>,
    joined: bool,
    _result: PhantomData<fn() -> R>,
}

struct State<R> {
    /// The child's status connection, until end of file.
    status: Option<Connection>,
    /// The child's decisive report (return value, panic or start failure).
    outcome: Option<Outcome<R>>,
    /// How it ended, once known.
    exit: Option<ExitStatus>,
    /// The fork server vanished without reporting the exit status.
    lost: bool,
    /// A report that could not be read.
    error: Option<ConnectionError>,
}

impl<R> State<R> {
    fn finished(&self) -> bool {
        self.exit.is_some() || self.lost
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// Start a child running `f(arg)` with the default settings (like `std::thread::spawn`,
    /// in a new process). `f` is a function item or a closure that captures nothing; see
    /// [`ProcessBuilder::start`], and [`start!`](crate::start!) to hand variables to the child.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let child = multiproc::Process::start(square, 12)?;
    /// assert_eq!(child.join()?, 144);
    /// let child = multiproc::Process::start(|x| x + 1, 41u64)?;
    /// assert_eq!(child.join()?, 42);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    ///
    /// ```compile_fail,E0308
    /// let offset = 1u64;
    /// let child = multiproc::Process::start(|x: u64| x + offset, 41); // captures `offset`
    /// ```
    pub fn start<A>(f: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + 'static,
    {
        ProcessBuilder::new().start(f, arg)
    }
}

impl Process<()> {
    /// A [`ProcessBuilder`] for a child process.
    ///
    /// ```
    /// let child = multiproc::Process::builder().name("x").fork(|| 1 + 1)?;
    /// assert_eq!(child.join()?, 2);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }
}

impl<R: DeserializeOwned> Process<R> {
    fn new(
        started: Started,
        identity: Identity,
        method: StartMethod,
        limits: Limits,
    ) -> Process<R> {
        let record = Arc::new(ChildRecord::new(
            started.pid,
            identity.name,
            identity.daemon,
            started.pidfd,
            started.ours,
        ));
        registry::register(record.clone());
        crate::event::event!(
            log::Level::Info,
            "started process '{}' (pid {}) with {method}",
            record.name,
            record.pid
        );
        Process {
            record,
            method,
            limits,
            state: Mutex::new(State {
                status: Some(started.status),
                outcome: None,
                exit: None,
                lost: false,
                error: None,
            }),
            joined: false,
            _result: PhantomData,
        }
    }

    /// The child's pid.
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| ())?;
    /// assert_ne!(child.pid(), std::process::id());
    /// child.join()?;
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.record.pid
    }

    /// The child's name.
    ///
    /// ```
    /// let child = multiproc::Process::builder().name("n").fork(|| ())?;
    /// assert_eq!(child.name(), "n");
    /// child.join()?;
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Whether the child is daemonic.
    ///
    /// ```
    /// let child = multiproc::Process::builder().daemon(true).fork(|| ())?;
    /// assert!(child.daemon());
    /// child.join()?;
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn daemon(&self) -> bool {
        self.record.daemon
    }

    /// The start method that created the child.
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| ())?;
    /// assert_eq!(child.start_method(), multiproc::StartMethod::Fork);
    /// child.join()?;
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// Whether the child is still running. Never blocks.
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| ())?;
    /// child.join_timeout(std::time::Duration::from_secs(10))?;
    /// assert!(!child.is_alive());
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        !self.record.has_exited()
    }

    /// Python's `exitcode`: `None` while running, then the exit code, or `-N` if signal `N`
    /// ended it. Never blocks.
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| -> () { std::process::exit(7) })?;
    /// child.join_timeout(std::time::Duration::from_secs(10))?;
    /// assert_eq!(child.exitcode(), Some(7));
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        let mut state = self.lock_state();
        let _ = self.wait(&mut state, Some(Duration::ZERO));
        state.exit.map(ExitStatus::exitcode)
    }

    /// Wait up to `timeout` for the child to end; `Ok(true)` if it has. Returns on time
    /// when the child is still running (then `Ok(false)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let child = multiproc::Process::builder().fork(|| std::thread::sleep(Duration::from_secs(5)))?;
    /// assert!(!child.join_timeout(Duration::from_millis(20))?);
    /// child.kill()?;
    /// assert!(child.join_timeout(Duration::from_secs(5))?);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ProcessError> {
        let mut state = self.lock_state();
        let ended = self.wait(&mut state, Some(timeout));
        if matches!(ended, Ok(true)) {
            // What the child logged before it ended is shown before join returns.
            crate::logging::flush();
        }
        ended
    }

    /// Wait for the child to end and return its task's value, or why there is none.
    ///
    /// ```
    /// fn boom(_: ()) -> u8 { panic!("no luck") }
    /// let err = multiproc::Process::start(boom, ())?.join().unwrap_err();
    /// match err {
    ///     multiproc::ProcessError::Panicked(p) => {
    ///         assert_eq!(p.message, "no luck");
    ///         assert!(p.location.is_some());
    ///     }
    ///     other => panic!("unexpected {other}"),
    /// }
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn join(self) -> Result<R, ProcessError> {
        let result = self.join_unflushed();
        // What the child logged before it ended is shown before join returns.
        crate::logging::flush();
        result
    }

    /// [`join`](Self::join) without waiting for the child's log records to be emitted (the
    /// pool's collector thread must not run the user's logger while it holds its state).
    pub(crate) fn join_unflushed(mut self) -> Result<R, ProcessError> {
        let mut state = std::mem::replace(
            &mut *self.lock_state(),
            State {
                status: None,
                outcome: None,
                exit: None,
                lost: false,
                error: None,
            },
        );
        let waited = self.wait(&mut state, None);
        self.joined = true;
        registry::forget(&self.record);
        waited?;
        self.conclude(state)
    }

    /// Ask the child to stop: `SIGTERM` (Python's `terminate`).
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| std::thread::sleep(std::time::Duration::from_secs(60)))?;
    /// child.terminate()?;
    /// assert_eq!(child.join().unwrap_err().exitcode(), Some(-15));
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn terminate(&self) -> Result<(), ProcessError> {
        Ok(self.record.signal(sys::SIGTERM)?)
    }

    /// Stop the child at once: `SIGKILL` (Python's `kill`).
    ///
    /// ```
    /// let child = multiproc::Process::builder().fork(|| std::thread::sleep(std::time::Duration::from_secs(60)))?;
    /// child.kill()?;
    /// assert_eq!(child.join().unwrap_err().exitcode(), Some(-9));
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn kill(&self) -> Result<(), ProcessError> {
        Ok(self.record.signal(sys::SIGKILL)?)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State<R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read every report that is ready without blocking.
    fn drain(&self, state: &mut State<R>) {
        while let Some(conn) = state.status.as_mut() {
            match conn.poll(Some(Duration::ZERO)) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    state.error.get_or_insert(e);
                    state.status = None;
                    return;
                }
            }
            match conn.recv::<Outcome<R>>() {
                Ok(Outcome::Exited(exit)) => {
                    self.record.set_exit(exit);
                    state.exit = Some(exit);
                    state.status = None;
                }
                Ok(outcome) => {
                    state.outcome.get_or_insert(outcome);
                }
                Err(ConnectionError::Eof) => state.status = None,
                Err(e) => {
                    state.error.get_or_insert(e);
                    state.status = None;
                }
            }
        }
    }

    /// Advance `state` until the child has ended or `timeout` passes; `Ok(true)` if ended.
    fn wait(&self, state: &mut State<R>, timeout: Option<Duration>) -> Result<bool, ProcessError> {
        let deadline = crate::deadline::after_opt(timeout);
        loop {
            self.drain(state);
            if !state.finished() {
                if self.record.ours {
                    if let Some(exit) = self.record.poll_exit()? {
                        // Everything the child wrote is in the socket now.
                        self.drain(state);
                        state.exit = Some(exit);
                    }
                } else if state.status.is_none() && self.record.has_exited() {
                    state.lost = true;
                }
            }
            if state.finished() {
                return Ok(true);
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                return Ok(false);
            }
            // Our own child: its pidfd says when it exits; meanwhile read its report as it
            // comes (a large return value must not block the child's exit). A fork-server
            // child: its status connection brings the report and then the exit status.
            let mut fds: Vec<BorrowedFd<'_>> = Vec::with_capacity(2);
            if self.record.ours || state.status.is_none() {
                fds.push(self.record.pidfd.as_fd());
            }
            if let Some(conn) = &state.status {
                fds.push(conn.as_fd());
            }
            sys::wait_readable(&fds, remaining)?;
        }
    }

    /// For the async join: `None` once the child has ended (its report read), else the
    /// descriptors whose readability means "look again" (the pidfd and/or the status
    /// connection, as in [`wait`](Self::wait)), duplicated for the caller.
    #[cfg(feature = "async")]
    pub(crate) fn pending_fds(&self) -> Result<Option<Vec<OwnedFd>>, ProcessError> {
        let mut state = self.lock_state();
        if self.wait(&mut state, Some(Duration::ZERO))? {
            return Ok(None);
        }
        // Duplicates, made under the state lock: another thread may drop the status
        // connection once the lock is released.
        let mut fds = Vec::with_capacity(2);
        if self.record.ours || state.status.is_none() {
            fds.push(self.record.pidfd.try_clone()?);
        }
        if let Some(conn) = &state.status {
            fds.push(conn.as_fd().try_clone_to_owned()?);
        }
        Ok(Some(fds))
    }

    fn conclude(&self, state: State<R>) -> Result<R, ProcessError> {
        let name = self.record.name.clone();
        let pid = self.record.pid;
        match state.outcome {
            Some(Outcome::Returned(value)) => return Ok(value),
            Some(Outcome::Panicked(report)) => return Err(panic_error(report, name, pid)),
            Some(Outcome::Failed(reason)) => {
                return Err(ProcessError::TaskFailed { name, pid, reason });
            }
            Some(Outcome::LimitNotApplied { limit, reason }) => {
                return Err(ProcessError::Limits(LimitError::NotApplied {
                    limit,
                    reason,
                }));
            }
            Some(Outcome::MemoryLimit) => {
                return Err(ProcessError::MemoryLimit {
                    name,
                    pid,
                    limit: self.limits.memory_limit().unwrap_or_default(),
                });
            }
            Some(Outcome::Exited(_)) | None => {}
        }
        match state.exit {
            Some(ExitStatus::Signal { signal, .. })
                if signal == sys::limits::SIGXCPU
                    && let Some(limit) = self.limits.cpu_time_limit() =>
            {
                Err(ProcessError::CpuLimit { name, pid, limit })
            }
            Some(ExitStatus::Signal {
                signal,
                core_dumped,
            }) => Err(ProcessError::Signaled {
                name,
                pid,
                signal,
                signal_name: sys::signal_name(signal),
                core_dumped,
            }),
            Some(ExitStatus::Code(code)) => match state.error {
                Some(e) if code == 0 => Err(e.into()),
                _ => Err(ProcessError::Exited { name, pid, code }),
            },
            None => Err(ProcessError::Lost { name, pid }),
        }
    }
}

fn panic_error(report: PanicReport, process_name: String, pid: u32) -> ProcessError {
    ProcessError::Panicked(Box::new(report.into_remote(process_name, pid)))
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        if !self.joined {
            registry::detach(&self.record);
        }
    }
}

impl<R> AsFd for Process<R> {
    /// Python's `sentinel`: a descriptor that becomes readable when the child ends (a pidfd).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.record.pidfd.as_fd()
    }
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.record.name)
            .field("pid", &self.record.pid)
            .field("daemon", &self.record.daemon)
            .field("start_method", &self.method)
            .finish()
    }
}

/// Facts about the running process (Python's `current_process()`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// `"MainProcess"` in the main process, the child's name in a child.
    pub name: String,
    /// This process's pid.
    pub pid: u32,
    /// Whether this process is a daemonic child.
    pub daemon: bool,
}

/// This process: its name, pid and daemon flag.
///
/// ```
/// let me = multiproc::current_process();
/// assert_eq!(me.pid, std::process::id());
/// assert_eq!(me.name, "MainProcess");
/// ```
pub fn current_process() -> ProcessInfo {
    match identity::identity() {
        Some(identity) => ProcessInfo {
            name: identity.name,
            pid: sys::getpid(),
            daemon: identity.daemon,
        },
        None => ProcessInfo {
            name: "MainProcess".into(),
            pid: sys::getpid(),
            daemon: false,
        },
    }
}

/// The process that started this one (Python's `parent_process()`); `None` in the main
/// process.
///
/// ```
/// assert!(multiproc::parent_process().is_none());
/// fn parent_pid(_: ()) -> Option<u32> { multiproc::parent_process().map(|p| p.pid()) }
/// let child = multiproc::Process::start(parent_pid, ())?;
/// assert_eq!(child.join()?, Some(std::process::id()));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    let identity = identity::identity()?;
    Some(ParentProcess {
        pid: identity.parent_pid,
        name: identity.parent_name,
        pidfd: identity::parent_pidfd(),
    })
}

/// The parent of this process, as seen from a child.
#[derive(Clone, Debug)]
pub struct ParentProcess {
    pid: u32,
    name: String,
    pidfd: Option<Arc<OwnedFd>>,
}

impl ParentProcess {
    /// The parent's pid.
    ///
    /// ```
    /// fn ppid(_: ()) -> u32 { multiproc::parent_process().unwrap().pid() }
    /// assert_eq!(multiproc::Process::start(ppid, ())?.join()?, std::process::id());
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The parent's name (`"MainProcess"` for the main process).
    ///
    /// ```
    /// fn pname(_: ()) -> String { multiproc::parent_process().unwrap().name().to_string() }
    /// assert_eq!(multiproc::Process::start(pname, ())?.join()?, "MainProcess");
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the parent is still running.
    ///
    /// ```
    /// fn alive(_: ()) -> bool { multiproc::parent_process().unwrap().is_alive() }
    /// assert!(multiproc::Process::start(alive, ())?.join()?);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        !self.join_timeout(Duration::ZERO)
    }

    /// Wait up to `timeout` for the parent to end; `true` if it has.
    ///
    /// ```
    /// use std::time::Duration;
    /// fn check(_: ()) -> bool { multiproc::parent_process().unwrap().join_timeout(Duration::from_millis(10)) }
    /// assert!(!multiproc::Process::start(check, ())?.join()?);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        match &self.pidfd {
            Some(fd) => sys::wait_readable(&[fd.as_fd()], Some(timeout))
                .map(|r| r[0])
                .unwrap_or(true),
            None => true,
        }
    }
}

/// The children of this process that are still running; finished ones are reaped on the way
/// (Python's `active_children()`).
///
/// ```
/// let child = multiproc::Process::builder().fork(|| std::thread::sleep(std::time::Duration::from_secs(30)))?;
/// let pid = child.pid();
/// assert!(multiproc::active_children().iter().any(|c| c.pid == pid));
/// child.kill()?;
/// let _ = child.join();
/// assert!(multiproc::active_children().iter().all(|c| c.pid != pid));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
pub fn active_children() -> Vec<ChildInfo> {
    registry::active_children()
}

/// The number of CPUs this process may use: its CPU affinity mask and its cgroup's CPU quota
/// both count (Python's `os.cpu_count()` ignores both and overcommits in containers).
///
/// ```
/// assert!(multiproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    sys::cpu_count()
}
