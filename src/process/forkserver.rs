//! The *forkserver* start method: a small single-threaded server forks the children.
//!
//! The server is a spawned copy of the executable (see [`super::spawn`]) that runs [`serve`]
//! before `main` and so never has more than one thread, which makes `fork` in it safe no
//! matter how many threads the user's process has. The user process keeps one control
//! connection to it. To start a child it sends a `Request` (the child's boot header and one
//! end of a fresh status socket pair) followed by the task message, which the server relays
//! without decoding. The server forks; the child runs the task exactly as a spawned child
//! would (without paying for `exec`), and the server answers with the child's pid and a
//! pidfd for it, through which the user process can poll and signal the child.
//!
//! The server reaps its children and reports each one's exit status on the child's status
//! connection (the server keeps a copy of it). It exits when the control connection reaches
//! end of file, i.e. when the user process exits or dies; the daemonic children then die
//! with it (their `PR_SET_PDEATHSIG` names the server, whose only thread lives as long as it
//! does).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::child::Outcome;
use super::spawn::{self, BootHeader, TaskMessage};
use super::{ProcessError, Started};
use crate::boot::{self, Helper};
use crate::connection::{Connection, ConnectionError};
use crate::handle::Handle;
use crate::sys;

#[derive(Serialize, Deserialize)]
struct Request {
    header: BootHeader,
    status: Connection,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Forked { pid: u32, pidfd: Handle<OwnedFd> },
    Failed(String),
}

pub(crate) type Server = Helper;

static SERVER: Mutex<Option<Server>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Server>> {
    let mut server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if server.as_ref().is_some_and(|s| s.owner != sys::getpid()) {
        // Inherited through fork: close our copies, never talk to the parent's server.
        *server = None;
    }
    server
}

/// Hold the client state locked across `fork` (the child drops its copy on first use).
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<Server>> {
    lock()
}

/// The pid of this process's fork server, if one is running (a diagnostic: tests use it to
/// tell the server apart from children).
///
/// ```
/// // The fork server starts on first use of the forkserver start method.
/// let pid = multiproc::forkserver_pid();
/// assert!(pid.is_none() || pid != Some(std::process::id()));
/// ```
pub fn forkserver_pid() -> Option<u32> {
    lock().as_ref().map(|s| s.pid)
}

/// Ask the fork server (started on first use) to start a child.
pub(crate) fn start(header: &BootHeader, task: &TaskMessage) -> Result<Started, ProcessError> {
    let mut guard = lock();
    for attempt in 0..2 {
        if guard.is_none() {
            let mut server = spawn::launch("forkserver", "multiproc-forkserver")?;
            // Every answer comes after a `fork`: longer than polling could pay for.
            server.control.set_spinning(false);
            *guard = Some(server);
        }
        let Some(server) = guard.as_mut() else {
            continue;
        };
        let (mine, theirs) = sys::socketpair()?;
        let request = Request {
            header: header.clone(),
            status: Connection::from_fd_trusted(theirs),
        };
        let exchange = server
            .control
            .send(&request)
            .and_then(|()| server.control.send_raw(&task.bytes, &task.fds))
            .and_then(|()| server.control.recv::<Reply>());
        drop(request);
        match exchange {
            Ok(Reply::Forked { pid, pidfd }) => {
                return Ok(Started {
                    pid,
                    pidfd: pidfd.into_inner(),
                    status: Connection::from_fd_trusted(mine),
                    ours: false,
                });
            }
            Ok(Reply::Failed(reason)) => return Err(ProcessError::Start(reason)),
            Err(ConnectionError::Eof | ConnectionError::PeerClosed) if attempt == 0 => {
                // The server died (killed by someone?): reap it and start a new one.
                if let Some(dead) = guard.take() {
                    boot::stop(dead);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ProcessError::Start("the fork server keeps dying".into()))
}

/// Stop this process's fork server, if any (at exit; a later start launches a new one).
pub(crate) fn shutdown() {
    let server = lock().take();
    if let Some(server) = server {
        boot::stop(server);
    }
}

struct Child {
    pidfd: OwnedFd,
    status: Connection,
}

/// The server's loop; runs in the spawned server process and never returns.
pub(crate) fn serve(mut control: Connection) -> ! {
    // Requests come when the user starts a process: no use polling for them.
    control.set_spinning(false);
    // Ctrl-C reaches the whole process group; the user process decides what happens to the
    // children, the server just keeps serving until its control connection closes.
    sys::ignore_sigint(true);
    let me = sys::getpid();
    let mut children: Vec<Child> = Vec::new();
    loop {
        let mut fds = vec![control.as_fd()];
        fds.extend(children.iter().map(|c| c.pidfd.as_fd()));
        let Ok(ready) = sys::wait_readable(&fds, None) else {
            continue;
        };
        // Reap in descending order so swap_remove never moves an unvisited entry.
        for i in (0..children.len()).rev() {
            if !ready[i + 1] {
                continue;
            }
            if let Ok(Some(status)) = sys::try_reap(children[i].pidfd.as_fd()) {
                let mut child = children.swap_remove(i);
                let _ = child.status.send(&Outcome::<()>::Exited(status));
            }
        }
        if !ready[0] {
            continue;
        }
        let request = control.recv::<Request>().and_then(|r| {
            control
                .recv_raw()
                .map(|(bytes, fds)| (r, TaskMessage { bytes, fds }))
        });
        let Ok((Request { header, status }, task)) = request else {
            // End of file (the user process is gone) or a broken stream: stop serving. Reap
            // the children that have already ended first, so none is left to init as a
            // zombie; the ones still running are adopted by init (daemonic ones die with us).
            for child in &children {
                let _ = sys::try_reap(child.pidfd.as_fd());
            }
            sys::exit_now(0);
        };
        // SAFETY: this process is single-threaded (it never leaves this loop, which starts
        // no threads), so the child's copy of every lock is consistent.
        match unsafe { sys::fork() } {
            Ok(sys::Fork::Child) => {
                drop(control);
                drop(children);
                sys::ignore_sigint(false);
                spawn::run_boot(header, task, status, me)
            }
            Ok(sys::Fork::Parent(pid)) => {
                let reply = match sys::pidfd_open(pid) {
                    Ok(pidfd) => match pidfd.try_clone() {
                        Ok(copy) => {
                            children.push(Child { pidfd, status });
                            Reply::Forked {
                                pid,
                                pidfd: Handle::new(copy),
                            }
                        }
                        Err(e) => Reply::Failed(format!("could not duplicate pidfd: {e}")),
                    },
                    Err(e) => Reply::Failed(format!("could not open pidfd of child {pid}: {e}")),
                };
                if control.send(&reply).is_err() {
                    sys::exit_now(0);
                }
            }
            Err(e) => {
                if control
                    .send(&Reply::Failed(format!("fork failed: {e}")))
                    .is_err()
                {
                    sys::exit_now(0);
                }
            }
        }
    }
}
