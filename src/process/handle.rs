//! [`Process`], the handle to a started child: its facts, signals, and the join/wait logic
//! that turns the status connection and the pidfd into the child's result.

use std::fmt;
use std::marker::PhantomData;
#[cfg(feature = "async")]
use std::os::fd::OwnedFd;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::connection::{Connection, ConnectionError};
use crate::identity::Identity;
use crate::panic_report::PanicReport;
use crate::sys::{self, ExitStatus};

use super::child::Outcome;
use super::registry::{self, ChildRecord};
use super::{LimitError, Limits, ProcessBuilder, ProcessError, StartMethod, Started};

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
    pub(super) fn new(
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
