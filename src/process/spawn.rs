//! The *spawn* start method: a fresh copy of the running executable runs only the task.
//!
//! The parent starts `/proc/self/exe` with `posix_spawn`, keeping one end of a socket pair
//! open in the child and naming it in the `MULTIPROC_BOOT` environment variable. Nothing is
//! needed in the user's `main`: this crate places a function in the executable's
//! `.init_array`, which the dynamic loader runs before `main` (and before a test harness's
//! `main`, so spawn works inside `cargo test` and `cargo nextest` binaries). In an ordinary
//! run the variable is absent and the function returns at once. In a spawned child it
//! removes the variable, reads a [`BootHeader`] and the task message from the socket,
//! resolves the entry point, runs the task and exits with `_exit`: the program's own `main`
//! never runs in the child.
//!
//! Why not a user-placed `init()` call: test binaries have no user `main`, and a forgotten
//! call would make the child run the whole program again (Python's infamous missing
//! `if __name__ == "__main__"`). The start path refers to the `.init_array` entry, so any
//! executable that can spawn is guaranteed to contain it.

use std::os::fd::{AsFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::child;
use super::limits::Limits;
use super::task::EntryPoint;
use super::{ProcessError, Started};
use crate::boot::{self, Helper};
use crate::connection::Connection;
use crate::identity::Identity;
use crate::shared::tracker;
use crate::sys;

/// What a spawned or fork-server child learns before its task message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BootHeader {
    pub entry: EntryPoint,
    pub identity: Identity,
    /// How it was started (spawn or forkserver): its default start method.
    pub start_method: super::StartMethod,
    /// Where its log records go and whether its output is relayed (see `crate::logging`).
    pub logging: Option<crate::logging::ChildSetup>,
    /// Set in the child before its task runs.
    pub limits: Limits,
}

/// An encoded task message: value bytes and the descriptors it carries.
pub(crate) struct TaskMessage {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

// SAFETY (of placing a function in `.init_array`): the dynamic loader calls every entry of the
// executable's `.init_array` once, on the main thread, with no other thread yet existing,
// after the C library (and so `malloc`, `environ`, the thread's robust-futex list) and every
// shared library are initialised, and after std's own `.init_array.00099` entry has recorded
// `argc`/`argv` (prioritised entries run first), so `std::env` works. The entry has the
// signature the loader calls (`extern "C" fn()`, no arguments; the loader's extra arguments
// are ignored by the C calling convention). In an ordinary run `boot_hook` reads one
// environment variable and returns. In a child it never returns: it runs the task and ends
// the process with `_exit`, so std's runtime start-up (`lang_start`) never runs there. What
// that start-up would add, and a task in a spawned or fork-server child therefore lacks, is
// the main thread's name (`std::thread::current().name()` is `None`, not `Some("main")`);
// std's stack-overflow report is installed by `run_boot` (`sys::overflow`), so an overflow
// ends the child with the same message and SIGABRT as elsewhere. Everything else a task uses
// (allocation, threads, I/O, `std::env::args()`, panics, which the child runtime reports
// itself) is set up by the C library or lazily by std.
#[used]
#[unsafe(link_section = ".init_array")]
static BOOT_HOOK: extern "C" fn() = boot_hook;

/// Runs before `main` in every process of an executable that links multiproc.
extern "C" fn boot_hook() {
    match boot::mode() {
        // Not a child this crate started (an MPI rank is the MPI backend's entry's).
        None => return,
        // The resource tracker's own `.init_array` entry takes that mode.
        Some(mode) if mode == tracker::MODE => return,
        Some(_) => {}
    }
    // SAFETY: this runs from `.init_array`, before `main` and before any thread exists, and
    // is the only entry that takes the modes other than the tracker's.
    let Some((mode, conn)) = (unsafe { boot::take() }) else {
        return;
    };
    match mode.as_str() {
        "spawn" => spawned_child(conn),
        "forkserver" => {
            sys::set_process_name("multiproc-fork");
            super::forkserver::serve(conn)
        }
        other => {
            eprintln!("multiproc: unknown boot mode {other:?}");
            sys::exit_now(1)
        }
    }
}

fn spawned_child(mut conn: Connection) -> ! {
    let boot = conn
        .recv::<BootHeader>()
        .and_then(|header| conn.recv_raw().map(|task| (header, task)));
    match boot {
        Ok((header, (bytes, fds))) => {
            let parent = header.identity.parent_pid;
            run_boot(header, TaskMessage { bytes, fds }, conn, parent)
        }
        Err(e) => {
            eprintln!("multiproc: spawned child could not read its task: {e}");
            sys::exit_now(1)
        }
    }
}

/// Become the child `header` describes and run its task; shared by spawn and the fork server.
/// `deathsig_parent` is the process whose death must kill a daemonic child.
pub(crate) fn run_boot(
    header: BootHeader,
    task: TaskMessage,
    status: Connection,
    deathsig_parent: u32,
) -> ! {
    if header.identity.daemon && sys::die_with_parent(deathsig_parent).is_err() {
        sys::exit_now(1);
    }
    let name = header.identity.name.clone();
    // std's runtime start-up, which would install this, never runs in this process.
    sys::overflow::report_stack_overflow(&name);
    child::become_child(header.identity, header.start_method);
    crate::logging::become_child(header.logging, &name);
    let entry = header.entry;
    child::run_and_exit(status, &header.limits, move || {
        let trampoline = entry.resolve()?;
        trampoline(&task.bytes, task.fds)
    })
}

/// Start a copy of the executable in the boot mode `mode` (`spawn` or `forkserver`),
/// referring to the `.init_array` entry so the linker keeps it in every executable that can
/// spawn (see the module documentation).
pub(super) fn launch(mode: &str, argv0: &str) -> Result<Helper, ProcessError> {
    std::hint::black_box(&BOOT_HOOK);
    Ok(boot::launch(mode, argv0)?)
}

/// Start a spawned child for `header` + `task`.
pub(crate) fn start(header: &BootHeader, task: &TaskMessage) -> Result<Started, ProcessError> {
    let argv0 = std::env::args()
        .next()
        .unwrap_or_else(|| "multiproc-child".into());
    // A spawned child starts like the library's helper processes, in the `spawn` boot mode.
    let Helper {
        pid,
        pidfd,
        control: mut status,
        ..
    } = launch("spawn", &argv0)?;
    // If the child died before reading, the caller still gets a handle whose join reports
    // how it ended; only a failure to write for another reason is a start error.
    match status
        .send(header)
        .and_then(|()| status.send_raw(&task.bytes, &task.fds))
    {
        Ok(()) | Err(crate::ConnectionError::PeerClosed) => {}
        Err(e) => {
            let _ = sys::pidfd_signal(pidfd.as_fd(), sys::SIGKILL);
            let _ = sys::wait_readable(&[pidfd.as_fd()], None);
            let _ = sys::try_reap(pidfd.as_fd());
            return Err(e.into());
        }
    }
    Ok(Started {
        pid,
        pidfd,
        status,
        ours: true,
    })
}
