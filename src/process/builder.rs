//! [`ProcessBuilder`]: configures a child and starts it with its start method.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handle;
use crate::identity::{self, Identity};

use super::spawn::{BootHeader, TaskMessage};
use super::task::{EntryPoint, FnTask};
use super::{
    Limits, Process, ProcessError, Run, StartMethod, fork, forkserver, get_start_method, spawn,
};

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
    /// `f` needs in `arg`, which may contain [`Connection`](crate::Connection)s and
    /// [`Handle`](crate::Handle)s; the [`start!`](crate::start!) macro does that for named
    /// variables.
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
    /// and the library's own run (see [`allow_fork_with_threads`](super::allow_fork_with_threads)).
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
    /// As for [`allow_fork_with_threads`](super::allow_fork_with_threads): no other thread
    /// of this process may, at the moment of the fork, hold a lock or be in the middle of an
    /// update of anything `f` uses.
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
