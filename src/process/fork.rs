//! The *fork* start method: the child is a copy of the parent and runs a closure directly.
//!
//! Nothing is serialized on the way in (the child has the parent's memory, descriptors
//! included), which is why a capturing closure works here and only here. The child reports
//! its result on a status socket like every other child.
//!
//! `fork` copies only the calling thread. Locks this crate owns are held across the `fork`
//! call so that the child's copies are consistent; locks held by other threads of the user's
//! program are not, and POSIX allows a child forked from a multithreaded process only
//! async-signal-safe calls until it execs. So the safe entry points refuse to fork while a
//! thread other than the caller and the library's own exists
//! ([`ProcessError::ForkWithThreads`]); [`allow_fork_with_threads`] and
//! `ProcessBuilder::fork_unchecked` are the `unsafe` ways for a caller who knows those threads hold
//! nothing the child touches. The library's threads are told apart by name (`multiproc-*`,
//! all started through `library_thread::spawn`): they never hold a lock across `fork` that
//! this module does not take first.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::child::{self, Outcome};
use super::limits::Limits;
use super::{ProcessError, Started, forkserver, registry};
use crate::connection::Connection;
use crate::identity::Identity;
use crate::sys;

/// Set once by [`allow_fork_with_threads`].
static FORK_WITH_THREADS: AtomicBool = AtomicBool::new(false);

/// Allow the fork start method and [`ProcessBuilder::fork`](super::ProcessBuilder::fork) in a process that
/// runs other threads, for the rest of the program (Python's behaviour, which only warns).
///
/// Without it, forking while a thread other than the caller and the library's own exists
/// fails with [`ProcessError::ForkWithThreads`].
///
/// # Safety
/// Every fork after this call copies only the calling thread. The caller promises that, at
/// the moment of each such fork, no other thread holds a lock or is in the middle of an update
/// of anything the child will use (the allocator excepted: glibc's `malloc` is fork-safe).
/// A child that needs such a lock waits forever; one that reads such a half-updated structure
/// may see broken invariants.
///
/// ```
/// // A test harness whose other threads are idle while a test forks:
/// // SAFETY: the other threads of this program hold nothing a forked child uses.
/// unsafe { multiproc::allow_fork_with_threads() };
/// let t = std::thread::spawn(|| std::thread::park());
/// let child = multiproc::ProcessBuilder::new().fork(|| 7)?;
/// assert_eq!(child.join()?, 7);
/// # drop(t);
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
///
/// Taking that responsibility must be written out: outside an `unsafe` block it does not
/// compile.
///
/// ```compile_fail,E0133
/// multiproc::allow_fork_with_threads();
/// ```
pub unsafe fn allow_fork_with_threads() {
    FORK_WITH_THREADS.store(true, Ordering::SeqCst);
}

/// Whether forking needs the multithreading check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Refuse while foreign threads exist (unless allowed program-wide).
    Threads,
    /// The caller took responsibility (`unsafe`): only warn.
    Unchecked,
}

/// Fork a child that runs `body` and reports its return value.
pub(crate) fn start<R: Serialize>(
    identity: Identity,
    logging: Option<crate::logging::ChildSetup>,
    limits: &Limits,
    check: Check,
    body: impl FnOnce() -> R,
) -> Result<Started, ProcessError> {
    let must_refuse = check == Check::Threads && !FORK_WITH_THREADS.load(Ordering::SeqCst);
    // Reading the thread list costs tens of microseconds: only when it can change something.
    if must_refuse || crate::event::library_enabled(log::Level::Warn) {
        let foreign = crate::library_thread::foreign_threads();
        if !foreign.is_empty() {
            if must_refuse {
                return Err(ProcessError::ForkWithThreads { threads: foreign });
            }
            crate::event::event!(
                log::Level::Warn,
                "forking a multithreaded process: locks held by other threads stay locked in \
                 the child; prefer the forkserver or spawn start method"
            );
        }
    }
    // Unflushed output would otherwise be printed twice, once by each process.
    let _ = std::io::stdout().flush();
    let (mine, theirs) = sys::socketpair()?;
    let parent_pid = sys::getpid();
    // Computed now if another thread is not already computing it (then this waits for it):
    // the child must not inherit it half-initialized (see `sys::fork`).
    crate::code::fingerprint();
    // First: the log drain thread takes the identity lock while it emits.
    let logging_guard = crate::logging::lock_for_fork();
    let registry_guard = registry::lock_for_fork();
    let mut server_guard = forkserver::lock_for_fork();
    let mut tracker_guard = crate::shared::tracker::lock_for_fork();
    let identity_guard = crate::identity::lock_for_fork();
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
            child::become_child(identity, super::StartMethod::Fork);
            crate::logging::become_child(logging, &name);
            child::run_and_exit(Connection::from_fd_trusted(theirs), limits, move || {
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
                status: Connection::from_fd_trusted(mine),
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
