//! Resource limits for a child process or a pool worker: [`Limits`], applied in the child
//! before its task runs, whatever the start method.
//!
//! The limits are the kernel's per-process ones (`RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_NOFILE`)
//! and the nice value. They are checked against this process's hard limits when the child
//! is started (a child can lower a limit, never raise it), then set by the child itself
//! (`child::run_and_exit`), so the fork, spawn and fork-server paths share one place.
//!
//! Going past a limit ends the child, and the parent names the limit instead of reporting a
//! bare signal:
//! - **CPU time**: the soft limit is the one asked for and the hard limit one second more,
//!   so the kernel sends `SIGXCPU` first. A child that `SIGXCPU` ended while it had a CPU
//!   limit failed with [`ProcessError::CpuLimit`](super::ProcessError::CpuLimit). (A task
//!   that catches or ignores `SIGXCPU` is killed by `SIGKILL` at the hard limit, and that is
//!   reported as the signal it is.)
//! - **Memory** (address space): an allocation past the limit fails, and Rust's allocation
//!   error handler aborts. A `SIGABRT` handler installed in the child recognises that abort
//!   (see `sys/limits.rs`) and sends a "memory limit" outcome on the child's status
//!   connection first: [`ProcessError::MemoryLimit`](super::ProcessError::MemoryLimit).
//!   Code that checks its allocations (`Vec::try_reserve`) gets an error instead and goes on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::limits::{self as sys_limits, Rlim};

/// Resource limits for a child process ([`ProcessBuilder::limits`](super::ProcessBuilder::limits)) or for
/// every worker of a pool ([`PoolBuilder::limits`](crate::PoolBuilder::limits),
/// [`ExecutorBuilder::limits`](crate::ExecutorBuilder::limits)).
///
/// Each limit is per *process*: a pool worker's CPU time and address space count everything
/// it ran since it started (combine with `maxtasksperchild` to bound what one worker
/// accumulates, or use `max_memory_per_child` to retire workers that grow).
///
/// ```
/// use std::time::Duration;
/// use multiproc::{ProcessBuilder, Limits};
///
/// fn open_file_limit(_: ()) -> String {
///     let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
///     limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_string()
/// }
///
/// let limits = Limits::new()
///     .memory(1 << 30)
///     .cpu_time(Duration::from_secs(60))
///     .open_files(256)
///     .nice(10);
/// let child = ProcessBuilder::new().limits(limits).start(open_file_limit, ())?;
/// assert!(child.join()?.split_whitespace().any(|w| w == "256"));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    memory: Option<u64>,
    cpu_seconds: Option<u64>,
    open_files: Option<u64>,
    nice: Option<i32>,
}

/// Which limit an error is about.
///
/// ```
/// use std::time::Duration;
/// use multiproc::{Limit, LimitError, Limits, ProcessBuilder, ProcessError};
/// fn noop(_: ()) {}
/// let no_cpu = Limits::new().cpu_time(Duration::ZERO);
/// match ProcessBuilder::new().limits(no_cpu).start(noop, ()) {
///     Err(ProcessError::Limits(LimitError::OutOfRange { limit, .. })) => {
///         assert_eq!(limit, Limit::CpuTime);
///         assert_eq!(limit.to_string(), "CPU-time");
///     }
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Limit {
    /// The address-space limit ([`Limits::memory`]).
    Memory,
    /// The CPU-time limit ([`Limits::cpu_time`]).
    CpuTime,
    /// The open-file limit ([`Limits::open_files`]).
    OpenFiles,
    /// The nice value ([`Limits::nice`]).
    Nice,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Memory => "memory",
            Limit::CpuTime => "CPU-time",
            Limit::OpenFiles => "open-file",
            Limit::Nice => "nice",
        })
    }
}

/// Why a child's [`Limits`] could not be put in place.
///
/// ```
/// use multiproc::{ProcessBuilder, Limit, LimitError, Limits, ProcessError};
/// fn noop(_: ()) {}
/// match ProcessBuilder::new().limits(Limits::new().nice(42)).start(noop, ()) {
///     Err(ProcessError::Limits(LimitError::OutOfRange { limit: Limit::Nice, .. })) => {}
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The limit asked for is above this process's hard limit, which a child inherits and
    /// cannot raise. Ask for less, or raise the hard limit before starting this program
    /// (`ulimit -H`, `LimitAS=`/`LimitCPU=`/`LimitNOFILE=` in a systemd unit).
    #[error(
        "the {limit} limit asked for ({requested}) is above this process's hard limit \
         ({hard}), which a child cannot raise; ask for less or raise the hard limit"
    )]
    AboveHardLimit {
        /// Which limit.
        limit: Limit,
        /// What was asked for (bytes, seconds or descriptors).
        requested: u64,
        /// The hard limit (same unit).
        hard: u64,
    },
    /// The value cannot be a limit of this kind (a nice value outside -20..=19, a zero
    /// CPU time, ...).
    #[error("{value} is not a valid {limit} limit: {expected}")]
    OutOfRange {
        /// Which limit.
        limit: Limit,
        /// The value given.
        value: i64,
        /// What is accepted.
        expected: &'static str,
    },
    /// The child could not set the limit (e.g. a nice value below the current one without
    /// `CAP_SYS_NICE`); its task did not run.
    #[error("the child could not set its {limit} limit: {reason}")]
    NotApplied {
        /// Which limit.
        limit: Limit,
        /// The operating system's answer.
        reason: String,
    },
}

impl Limits {
    /// No limits: the child inherits this process's.
    ///
    /// ```
    /// assert_eq!(multiproc::Limits::new(), multiproc::Limits::default());
    /// ```
    pub fn new() -> Limits {
        Limits::default()
    }

    /// Limit the child's address space to `bytes` (`RLIMIT_AS`): an allocation that would
    /// go past it fails, and the child ends with
    /// [`ProcessError::MemoryLimit`](super::ProcessError::MemoryLimit) (a pool task with
    /// [`PoolError::MemoryLimit`](crate::PoolError::MemoryLimit)).
    ///
    /// Address space is more than resident memory: it counts every mapping, including
    /// thread stacks, the allocator's per-thread arenas (reserved, 64 MiB each) and a pool
    /// worker's shared rings. Leave room: a limit under a few hundred MiB can stop a
    /// multithreaded child before it allocates anything itself.
    ///
    /// A single allocation far past the limit that fails while `RUST_BACKTRACE` is set may
    /// be reported as the `SIGABRT` it is rather than `MemoryLimit` (std's backtrace for it
    /// hides the cause; see `sys/limits.rs`); a child that grows into the limit is always
    /// recognised.
    ///
    /// ```
    /// fn grow(_: ()) -> usize {
    ///     let mut kept: Vec<Vec<u8>> = Vec::new();
    ///     loop { kept.push(vec![0; 1 << 20]) }
    /// }
    /// let child = multiproc::ProcessBuilder::new()
    ///     .limits(multiproc::Limits::new().memory(512 << 20))
    ///     .start(grow, ())?;
    /// assert!(matches!(child.join(), Err(multiproc::ProcessError::MemoryLimit { .. })));
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn memory(mut self, bytes: u64) -> Limits {
        self.memory = Some(bytes);
        self
    }

    /// Limit the child's CPU time (`RLIMIT_CPU`, whole seconds, rounded up): past it the
    /// child ends with [`ProcessError::CpuLimit`](super::ProcessError::CpuLimit) (a pool
    /// task with [`PoolError::CpuLimit`](crate::PoolError::CpuLimit)). Time spent waiting
    /// does not count; use a pool's `task_timeout` for wall-clock time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let limits = multiproc::Limits::new().cpu_time(Duration::from_millis(1500));
    /// assert_eq!(limits.cpu_time_limit(), Some(Duration::from_secs(2)));
    /// ```
    pub fn cpu_time(mut self, time: Duration) -> Limits {
        let seconds = time.as_secs() + u64::from(time.subsec_nanos() > 0);
        self.cpu_seconds = Some(seconds);
        self
    }

    /// Limit the child's open descriptors (`RLIMIT_NOFILE`): opening one whose number
    /// would be `n` or more fails with `EMFILE` ("Too many open files").
    ///
    /// ```
    /// let limits = multiproc::Limits::new().open_files(64);
    /// assert_eq!(limits.open_files_limit(), Some(64));
    /// ```
    pub fn open_files(mut self, n: u64) -> Limits {
        self.open_files = Some(n);
        self
    }

    /// Set the child's nice value (-20, most favoured, to 19, least; the default is the
    /// parent's). Going below the parent's value needs `CAP_SYS_NICE`.
    ///
    /// ```
    /// fn my_nice(_: ()) -> String {
    ///     let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    ///     // Field 19, counted after the parenthesised command name.
    ///     stat.rsplit(')').next().unwrap().split_whitespace().nth(16).unwrap().to_string()
    /// }
    /// let child = multiproc::ProcessBuilder::new()
    ///     .limits(multiproc::Limits::new().nice(19))
    ///     .start(my_nice, ())?;
    /// assert_eq!(child.join()?, "19");
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn nice(mut self, value: i32) -> Limits {
        self.nice = Some(value);
        self
    }

    /// The address-space limit in bytes, if set.
    ///
    /// ```
    /// assert_eq!(multiproc::Limits::new().memory(1 << 30).memory_limit(), Some(1 << 30));
    /// ```
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory
    }

    /// The CPU-time limit, if set (whole seconds).
    ///
    /// ```
    /// assert_eq!(multiproc::Limits::new().cpu_time_limit(), None);
    /// ```
    pub fn cpu_time_limit(&self) -> Option<Duration> {
        self.cpu_seconds.map(Duration::from_secs)
    }

    /// The open-file limit, if set.
    ///
    /// ```
    /// assert_eq!(multiproc::Limits::new().open_files(10).open_files_limit(), Some(10));
    /// ```
    pub fn open_files_limit(&self) -> Option<u64> {
        self.open_files
    }

    /// The nice value, if set.
    ///
    /// ```
    /// assert_eq!(multiproc::Limits::new().nice(5).nice_value(), Some(5));
    /// ```
    pub fn nice_value(&self) -> Option<i32> {
        self.nice
    }

    /// Whether no limit is set.
    ///
    /// ```
    /// assert!(multiproc::Limits::new().is_empty());
    /// assert!(!multiproc::Limits::new().nice(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// In the parent, before starting a child: refuse what the child could not set.
    pub(crate) fn check(&self) -> Result<(), LimitError> {
        if let Some(nice) = self.nice
            && !(-20..=19).contains(&nice)
        {
            return Err(LimitError::OutOfRange {
                limit: Limit::Nice,
                value: nice.into(),
                expected: "a nice value from -20 to 19",
            });
        }
        if self.cpu_seconds == Some(0) {
            return Err(LimitError::OutOfRange {
                limit: Limit::CpuTime,
                value: 0,
                expected: "a CPU time above zero",
            });
        }
        // The CPU hard limit is one second above the soft one, so SIGXCPU comes first.
        let rlimits = [
            (Limit::Memory, Rlim::AddressSpace, self.memory, 0),
            (Limit::CpuTime, Rlim::CpuSeconds, self.cpu_seconds, 1),
            (Limit::OpenFiles, Rlim::OpenFiles, self.open_files, 0),
        ];
        for (limit, which, requested, above) in rlimits {
            if let (Some(requested), (_, Some(hard))) = (requested, sys_limits::get_limit(which))
                && requested.saturating_add(above) > hard
            {
                return Err(LimitError::AboveHardLimit {
                    limit,
                    requested,
                    hard,
                });
            }
        }
        Ok(())
    }

    /// In the child, before its task: set every limit; the one that failed, and why.
    pub(crate) fn apply(&self) -> Result<(), (Limit, String)> {
        let failed = |limit| move |e: std::io::Error| (limit, e.to_string());
        if let Some(nice) = self.nice {
            sys_limits::set_nice_value(nice).map_err(failed(Limit::Nice))?;
        }
        if let Some(n) = self.open_files {
            sys_limits::set_limit(Rlim::OpenFiles, n, Some(n)).map_err(failed(Limit::OpenFiles))?;
        }
        if let Some(seconds) = self.cpu_seconds {
            sys_limits::set_limit(Rlim::CpuSeconds, seconds, Some(seconds + 1))
                .map_err(failed(Limit::CpuTime))?;
        }
        // Last: the other calls must not be the ones to run out of address space.
        if let Some(bytes) = self.memory {
            sys_limits::set_limit(Rlim::AddressSpace, bytes, Some(bytes))
                .map_err(failed(Limit::Memory))?;
        }
        Ok(())
    }
}
