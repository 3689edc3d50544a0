//! This process and its relatives: [`current_process`], [`parent_process`] and
//! [`ParentProcess`], [`active_children`], [`cpu_count`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::identity;
use crate::sys;

use super::registry::{self, ChildInfo};

/// Facts about the running process (Python's `current_process()`).
///
/// ```
/// use multiproc::{Process, ProcessInfo};
/// fn whoami(_: ()) -> ProcessInfo { multiproc::current_process() }
/// let child = Process::builder().name("worker-1").start(whoami, ())?;
/// let pid = child.pid();
/// let info = child.join()?;
/// assert_eq!((info.name.as_str(), info.pid, info.daemon), ("worker-1", pid, false));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
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
///
/// ```
/// use multiproc::{Process, parent_process};
/// // In a child: who started it, and is it still there?
/// fn parent(_: ()) -> Option<(u32, String, bool)> {
///     let p = parent_process()?;
///     Some((p.pid(), p.name().to_string(), p.is_alive()))
/// }
/// assert!(parent_process().is_none()); // the main process has no parent process
/// let seen = Process::start(parent, ())?.join()?;
/// assert_eq!(seen, Some((std::process::id(), "MainProcess".to_string(), true)));
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
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
