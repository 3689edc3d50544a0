//! The resource tracker: unlinks named shared memory whose creator is gone.
//!
//! A spawned helper process (boot mode `tracker`, see `crate::boot`) keeps the set of names
//! its creator registered and not yet unregistered. When its connection to the creator
//! reaches end of file (normal exit, crash, `SIGKILL` alike) it unlinks them all and exits.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::boot::{self, Helper};
use crate::connection::Connection;
use crate::sys::{self, memory};

/// The tracker's boot mode.
pub(crate) const MODE: &str = "tracker";

// SAFETY (of placing a function in `.init_array`): as for `process::spawn`'s entry, the
// loader calls it once, on the main thread, before `main` and before any other thread exists,
// after the C library and std's own start-up entry. In an ordinary run, and in a copy started
// in another boot mode, `boot_hook` reads one environment variable and returns; in the
// tracker it serves and ends the process with `_exit`, never returning into `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static BOOT_HOOK: extern "C" fn() = boot_hook;

/// Runs before `main` in every process of an executable that can start a tracker: takes the
/// `tracker` boot mode (the other modes are `process::spawn`'s).
extern "C" fn boot_hook() {
    if boot::mode().as_deref() != Some(MODE) {
        return;
    }
    // SAFETY: this runs from `.init_array`, before `main` and before any thread exists, and
    // is the only entry that takes the tracker's mode.
    if let Some((_, conn)) = unsafe { boot::take() } {
        sys::set_process_name("multiproc-track");
        serve(conn)
    }
}

#[derive(Serialize, Deserialize)]
enum Message {
    Register(String),
    Unregister(String),
}

static TRACKER: Mutex<Option<Helper>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Helper>> {
    let mut tracker = TRACKER.lock().unwrap_or_else(|e| e.into_inner());
    if tracker.as_ref().is_some_and(|t| t.owner != sys::getpid()) {
        *tracker = None;
    }
    tracker
}

fn send(message: Message) {
    let mut tracker = lock();
    for _ in 0..2 {
        if tracker.is_none() {
            // Refer to the `.init_array` entry, so the linker keeps it wherever a tracker
            // can be started.
            std::hint::black_box(&BOOT_HOOK);
            match boot::launch(MODE, "multiproc-tracker") {
                Ok(h) => *tracker = Some(h),
                Err(e) => {
                    log::warn!(target: "multiproc", "could not start the resource tracker: {e}");
                    return;
                }
            }
        }
        if let Some(t) = tracker.as_mut()
            && t.control.send(&message).is_ok()
        {
            return;
        }
        if let Some(dead) = tracker.take() {
            boot::stop(dead);
        }
    }
}

/// Hold the client state locked across `fork`; the child drops its copy (closing its end of
/// the parent's tracker connection, so the parent's tracker still sees end of file when the
/// parent goes).
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<Helper>> {
    lock()
}

/// Have the tracker unlink `name` if this process does not.
pub(crate) fn register(name: &str) {
    send(Message::Register(name.to_string()));
}

/// `name` was unlinked (or handed over): forget it.
pub(crate) fn unregister(name: &str) {
    if lock().is_some() {
        send(Message::Unregister(name.to_string()));
    }
}

/// The pid of this process's resource tracker, if one is running (a diagnostic, like
/// [`forkserver_pid`](crate::forkserver_pid)).
///
/// ```
/// let pid = multiproc::resource_tracker_pid();
/// assert_ne!(pid, Some(std::process::id()));
/// ```
pub fn resource_tracker_pid() -> Option<u32> {
    lock().as_ref().map(|t| t.pid)
}

/// Stop the tracker at exit (it unlinks what is left).
pub(crate) fn shutdown() {
    if let Some(t) = lock().take() {
        boot::stop(t);
    }
}

/// The tracker's loop; runs in the spawned helper and never returns.
fn serve(mut control: Connection) -> ! {
    sys::ignore_sigint(true);
    let mut names = BTreeSet::new();
    loop {
        match control.recv::<Message>() {
            Ok(Message::Register(name)) => {
                names.insert(name);
            }
            Ok(Message::Unregister(name)) => {
                names.remove(&name);
            }
            Err(_) => break,
        }
    }
    for name in names {
        let _ = memory::shm_unlink(&name);
    }
    sys::exit_now(0)
}
