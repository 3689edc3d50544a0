//! The *fork* start method: the child is a copy of the parent and runs a closure directly.
//!
//! Nothing is serialized on the way in (the child has the parent's memory, descriptors
//! included), which is why a capturing closure works here and only here. The child reports
//! its result on a status socket like every other child.
//!
//! `fork` copies only the calling thread. Locks this crate owns are held across the `fork`
//! call so that the child's copies are consistent; locks held by other threads of the user's
//! program are not, which is why fork is not the default start method.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use super::child::{self, Identity, Outcome};
use super::{ProcessError, Started, forkserver, registry};
use crate::connection::Connection;
use crate::sys;

/// Threads of this library that hold none of the user's locks and none of ours across
/// `fork` (the reaper, the log drain, the output relay): they do not make forking risky.
static LIBRARY_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Count one more such thread (it runs until the process exits).
pub(crate) fn count_library_thread() {
    LIBRARY_THREADS.fetch_add(1, Ordering::Relaxed);
}

/// Fork a child that runs `body` and reports its return value.
pub(crate) fn start<R: Serialize>(
    identity: Identity,
    logging: Option<crate::logging::ChildSetup>,
    body: impl FnOnce() -> R,
) -> Result<Started, ProcessError> {
    if crate::logging::library_enabled(log::Level::Warn)
        && sys::thread_count() > 1 + LIBRARY_THREADS.load(Ordering::Relaxed)
    {
        crate::logging::event!(
            log::Level::Warn,
            "forking a multithreaded process: locks held by other threads stay locked in the \
             child; prefer the forkserver or spawn start method"
        );
    }
    // Unflushed output would otherwise be printed twice, once by each process.
    let _ = std::io::stdout().flush();
    let (mine, theirs) = sys::socketpair()?;
    let parent_pid = sys::getpid();
    // First: the log drain thread takes the identity lock while it emits.
    let logging_guard = crate::logging::lock_for_fork();
    let registry_guard = registry::lock_for_fork();
    let mut server_guard = forkserver::lock_for_fork();
    let mut tracker_guard = crate::shared::tracker::lock_for_fork();
    let identity_guard = child::lock_for_fork();
    // SAFETY: see the module documentation: this crate's locks are held by this thread across
    // the call; the child only runs the user's closure and exits with `_exit`.
    let forked = unsafe { sys::fork() };
    match forked {
        Ok(sys::Fork::Child) => {
            // Close the inherited connections to the parent's helpers at once, so they see end
            // of file when the parent goes, whatever this child does.
            *server_guard = None;
            *tracker_guard = None;
            drop(logging_guard);
            drop(tracker_guard);
            drop(identity_guard);
            drop(server_guard);
            drop(registry_guard);
            drop(mine);
            if identity.daemon && sys::die_with_parent(parent_pid).is_err() {
                sys::exit_now(1);
            }
            let name = identity.name.clone();
            child::become_child(identity);
            crate::logging::become_child(logging, &name);
            child::run_and_exit(Connection::new(theirs), move || {
                let output = body();
                child::report(&Outcome::Returned(&output))
            })
        }
        Ok(sys::Fork::Parent(pid)) => {
            drop(logging_guard);
            drop(tracker_guard);
            drop(identity_guard);
            drop(server_guard);
            drop(registry_guard);
            drop(theirs);
            drop(logging);
            let pidfd = sys::pidfd_open(pid)?;
            Ok(Started {
                pid,
                pidfd,
                status: Connection::new(mine),
                ours: true,
            })
        }
        Err(e) => {
            drop(logging_guard);
            drop(tracker_guard);
            Err(e.into())
        }
    }
}
