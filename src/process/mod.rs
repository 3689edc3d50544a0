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

mod builder;
pub(crate) mod child;
mod current;
mod error;
pub(crate) mod fork;
mod forkserver;
mod handle;
mod limits;
mod registry;
mod spawn;
mod start_method;
mod task;

use std::os::fd::OwnedFd;

use crate::connection::Connection;

#[allow(deprecated)]
pub use builder::Builder;
pub use builder::ProcessBuilder;
pub use current::{
    ParentProcess, ProcessInfo, active_children, cpu_count, current_process, parent_process,
};
pub use error::{Location, ProcessError, RemotePanic};
pub use fork::allow_fork_with_threads;
pub use forkserver::forkserver_pid;
pub use handle::Process;
pub use limits::{Limit, LimitError, Limits};
pub use registry::ChildInfo;
pub use start_method::{StartMethod, get_start_method, set_start_method};
pub use task::Run;

/// A started child: what every start method hands back.
pub(crate) struct Started {
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub status: Connection,
    /// Whether the kernel made it our child (so we reap it) or the fork server's.
    pub ours: bool,
}
