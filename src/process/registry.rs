//! The table of this process's children: who reaps them, and what happens at exit.
//!
//! Invariant: every child is reaped by exactly one owner, its [`ChildRecord`]. The user's
//! `Process` handle, `active_children()`, the background reaper and the exit handler all go
//! through `ChildRecord::poll_exit`, which calls `waitid` on the child's pidfd under the
//! record's lock and remembers the status, so no path can steal another's exit status or
//! reap a recycled pid.
//!
//! A handle dropped while its child still runs hands the record to a reaper thread (started
//! on first need) that waits on the pidfds of such children and reaps each as it exits, so a
//! detached child never lingers as a zombie. At normal exit (`exit`, return from `main`) the
//! exit handler terminates daemonic children and then waits for all the others, like
//! Python's `multiprocessing` exit function.
//!
//! Children of the fork server are not our children in the kernel's sense: the server reaps
//! them and reports their status on their status connection; the table only tracks whether
//! they are still alive (their pidfd becomes readable when they exit).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use crate::sys::{self, ExitStatus};

/// One child process of this process.
pub(crate) struct ChildRecord {
    pub pid: u32,
    pub name: String,
    pub daemon: bool,
    pub pidfd: OwnedFd,
    /// Whether the kernel made it our child (fork, spawn) or the fork server's.
    pub ours: bool,
    exit: Mutex<Option<ExitStatus>>,
    detached: AtomicBool,
}

impl ChildRecord {
    pub(crate) fn new(pid: u32, name: String, daemon: bool, pidfd: OwnedFd, ours: bool) -> Self {
        ChildRecord {
            pid,
            name,
            daemon,
            pidfd,
            ours,
            exit: Mutex::new(None),
            detached: AtomicBool::new(false),
        }
    }

    /// Whether the process has exited (its pidfd is readable). Never blocks, never reaps.
    pub(crate) fn has_exited(&self) -> bool {
        sys::wait_readable(&[self.pidfd.as_fd()], Some(Duration::ZERO))
            .map(|r| r[0])
            .unwrap_or(true)
    }

    /// The exit status if the child has ended; reaps it if it is ours.
    pub(crate) fn poll_exit(&self) -> io::Result<Option<ExitStatus>> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() && self.ours {
            *exit = sys::try_reap(self.pidfd.as_fd())?;
            if let Some(status) = *exit {
                self.log_exit(status);
            }
        }
        Ok(*exit)
    }

    /// Record a status learned elsewhere (the fork server's report).
    pub(crate) fn set_exit(&self, status: ExitStatus) {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        if exit.is_none() {
            *exit = Some(status);
            self.log_exit(status);
        }
    }

    /// The library's lifecycle event for the end of a child (once: the status is recorded
    /// once).
    fn log_exit(&self, status: ExitStatus) {
        if !crate::event::library_enabled(log::Level::Info) {
            return;
        }
        // The child's own last records come first.
        crate::logging::flush_records();
        let (name, pid) = (&self.name, self.pid);
        match status {
            ExitStatus::Code(code) => crate::event::event!(
                log::Level::Info,
                "process '{name}' (pid {pid}) exited with code {code}"
            ),
            ExitStatus::Signal { signal, .. } => crate::event::event!(
                log::Level::Info,
                "process '{name}' (pid {pid}) was killed by {} (exit code -{signal})",
                sys::signal_name(signal)
            ),
        }
    }

    /// Whether the child is gone for good (reaped, or ended under the fork server).
    fn finished(&self) -> bool {
        if self.ours {
            matches!(self.poll_exit(), Ok(Some(_)) | Err(_))
        } else {
            self.has_exited()
        }
    }

    /// Send a signal; a child that already exited is not an error.
    pub(crate) fn signal(&self, signal: i32) -> io::Result<()> {
        sys::pidfd_signal(self.pidfd.as_fd(), signal)
    }

    /// Block until the child has ended or `deadline` passes; reaps it if it is ours.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.finished() {
                return true;
            }
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if timeout == Some(Duration::ZERO) {
                return false;
            }
            if sys::wait_readable(&[self.pidfd.as_fd()], timeout).is_err() {
                return self.finished();
            }
        }
    }
}

/// Basic facts about a running child, as [`active_children`](crate::active_children) lists it.
///
/// ```
/// use multiproc::{ChildInfo, Connection, Process};
/// fn wait_for_eof(mut conn: Connection) { while conn.recv::<()>().is_ok() {} }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (here, there) = multiproc::pipe()?;
/// let child = Process::builder().name("waiter").start(wait_for_eof, there)?;
/// let running: Vec<ChildInfo> = multiproc::active_children();
/// let info = running.iter().find(|c| c.pid == child.pid()).ok_or("not listed")?;
/// assert_eq!((info.name.as_str(), info.daemon), ("waiter", false));
/// let pid = child.pid();
/// drop(here); // the child sees end of file and returns
/// child.join()?;
/// assert!(multiproc::active_children().iter().all(|c| c.pid != pid));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChildInfo {
    /// Process id.
    pub pid: u32,
    /// Process name.
    pub name: String,
    /// Whether it is daemonic.
    pub daemon: bool,
}

pub(crate) struct Registry {
    /// The process this table belongs to; a forked child starts with an empty table.
    owner: u32,
    children: Vec<Arc<ChildRecord>>,
    reaper_wake: Option<OwnedFd>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    owner: 0,
    children: Vec::new(),
    reaper_wake: None,
});
static AT_EXIT: Once = Once::new();

fn lock() -> MutexGuard<'static, Registry> {
    let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let me = sys::getpid();
    if reg.owner != me {
        // First use, or we are a forked child holding a copy of the parent's table: none of
        // those processes are ours and the parent's reaper thread did not survive the fork.
        reg.owner = me;
        reg.children.clear();
        reg.reaper_wake = None;
    }
    reg
}

/// Hold the table locked across `fork` so the child's copy is consistent. The exit handler
/// is installed first: a `Once` another thread were running at the fork would stay "running"
/// in the child forever (see `sys::fork`).
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Registry> {
    install_exit_handler();
    lock()
}

fn install_exit_handler() {
    AT_EXIT.call_once(|| sys::at_exit(exit_handler));
}

/// Add a freshly started child.
pub(crate) fn register(record: Arc<ChildRecord>) {
    install_exit_handler();
    let mut reg = lock();
    reg.children
        .retain(|c| !(c.detached.load(Ordering::Relaxed) && c.finished()));
    reg.children.push(record);
}

/// Remove a child whose handle was joined.
pub(crate) fn forget(record: &Arc<ChildRecord>) {
    lock().children.retain(|c| !Arc::ptr_eq(c, record));
}

/// The handle of a still-running child was dropped: reap it in the background.
pub(crate) fn detach(record: &Arc<ChildRecord>) {
    if record.finished() {
        forget(record);
        return;
    }
    record.detached.store(true, Ordering::Relaxed);
    let mut reg = lock();
    if !reg.children.iter().any(|c| Arc::ptr_eq(c, record)) {
        return;
    }
    match &reg.reaper_wake {
        Some(wake) => {
            sys::poke(wake);
        }
        None => match start_reaper() {
            Ok(wake) => reg.reaper_wake = Some(wake),
            Err(e) => log::warn!(target: "multiproc", "could not start the reaper thread: {e}"),
        },
    }
}

/// Live children; finished ones are reaped on the way (Python's `active_children`).
pub(crate) fn active_children() -> Vec<ChildInfo> {
    let mut reg = lock();
    reg.children
        .retain(|c| !(c.detached.load(Ordering::Relaxed) && c.finished()));
    reg.children
        .iter()
        .filter(|c| !c.has_exited())
        .map(|c| ChildInfo {
            pid: c.pid,
            name: c.name.clone(),
            daemon: c.daemon,
        })
        .collect()
}

fn start_reaper() -> io::Result<OwnedFd> {
    let (read, write) = sys::wake_pipe()?;
    crate::library_thread::spawn("multiproc-reaper", move || reaper_loop(read))?;
    Ok(write)
}

fn reaper_loop(wake: OwnedFd) {
    let owner = sys::getpid();
    loop {
        let detached: Vec<Arc<ChildRecord>> = {
            let reg = lock();
            if reg.owner != owner {
                return;
            }
            reg.children
                .iter()
                .filter(|c| c.detached.load(Ordering::Relaxed))
                .cloned()
                .collect()
        };
        let mut fds = vec![wake.as_fd()];
        fds.extend(detached.iter().map(|c| c.pidfd.as_fd()));
        let ready = match sys::wait_readable(&fds, None) {
            Ok(r) => r,
            Err(_) => continue,
        };
        if ready[0] {
            sys::drain(&wake);
        }
        let done: Vec<&Arc<ChildRecord>> = detached
            .iter()
            .zip(&ready[1..])
            .filter(|(c, r)| **r && c.finished())
            .map(|(c, _)| c)
            .collect();
        if !done.is_empty() {
            lock()
                .children
                .retain(|c| !done.iter().any(|d| Arc::ptr_eq(c, d)));
        }
    }
}

/// How long a daemonic child gets to exit after `SIGTERM` at shutdown before `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(1);

extern "C" fn exit_handler() {
    shutdown();
}

/// What Python's `_exit_function` does, in the main process at exit and in every child when
/// its task is done: terminate daemonic children (`SIGKILL` after a grace period), wait for
/// the others, then stop the library's helper processes.
pub(crate) fn shutdown() {
    let children: Vec<Arc<ChildRecord>> = {
        let mut reg = lock();
        std::mem::take(&mut reg.children)
    };
    for c in children.iter().filter(|c| c.daemon) {
        let _ = c.signal(sys::SIGTERM);
    }
    // Read the clock only when there is a daemon to give grace to: most children start no
    // processes, and in a forked child the first clock read faults in the vDSO's pages.
    let grace = children
        .iter()
        .any(|c| c.daemon)
        .then(|| Instant::now() + DAEMON_GRACE);
    for c in &children {
        if c.daemon {
            if !c.wait_until(grace) {
                let _ = c.signal(sys::SIGKILL);
                c.wait_until(None);
            }
        } else {
            c.wait_until(None);
        }
    }
    super::forkserver::shutdown();
    crate::shared::tracker::shutdown();
    // The children's last records and lines, before this process goes.
    crate::logging::flush();
}
