//! Copies of the running executable in a *boot mode*: spawned children (mode `spawn`) and the
//! library's helper processes (the fork server, the resource tracker), each talking to its
//! creator over one connection and, for the helpers, exiting when that connection reaches end
//! of file.
//!
//! The creator names the mode and the connection's descriptor in [`BOOT_ENV`]; a function in
//! the executable's `.init_array` takes them before `main` and never returns into it. Each
//! mode's entry lives next to its code (`process::spawn` for `spawn` and `forkserver`,
//! `shared::tracker` for `tracker`), takes only its own modes, and is kept in the executable
//! by the code that launches that mode: [`launch`] does not refer to any of them.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::connection::Connection;
use crate::sys;

/// The environment variable that turns a starting copy of the executable into a child.
pub(crate) const BOOT_ENV: &str = "MULTIPROC_BOOT";

/// A running helper process.
pub(crate) struct Helper {
    /// The process that launched it; a forked child must not use its parent's helpers.
    pub owner: u32,
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub control: Connection,
}

/// Start a fresh copy of the executable in boot mode `mode`: a helper, or a spawned child
/// (mode `spawn`). The caller makes sure the `.init_array` entry of that mode is linked in.
pub(crate) fn launch(mode: &str, argv0: &str) -> std::io::Result<Helper> {
    let (mine, theirs) = sys::socketpair()?;
    let pid = sys::spawn_self(
        &[(BOOT_ENV, format!("{mode}:{}", sys::SPAWN_FD))],
        theirs.as_fd(),
    )?;
    drop(theirs);
    let pidfd = sys::pidfd_open(pid)?;
    log::debug!(target: "multiproc", "{argv0} started in boot mode {mode} (pid {pid})");
    Ok(Helper {
        owner: sys::getpid(),
        pid,
        pidfd,
        control: Connection::from_fd_trusted(mine),
    })
}

/// Close the helper's connection (it exits on end of file) and reap it; `SIGKILL` if it does
/// not exit within two seconds.
pub(crate) fn stop(helper: Helper) {
    let Helper { pidfd, control, .. } = helper;
    drop(control);
    let exited = sys::wait_readable(&[pidfd.as_fd()], Some(Duration::from_secs(2)))
        .map(|r| r[0])
        .unwrap_or(false);
    if !exited {
        let _ = sys::pidfd_signal(pidfd.as_fd(), sys::SIGKILL);
        let _ = sys::wait_readable(&[pidfd.as_fd()], None);
    }
    let _ = sys::try_reap(pidfd.as_fd());
}

/// The boot mode named in the environment, if any (`None` in an ordinary run, and `Some("")`
/// for a value without a mode).
pub(crate) fn mode() -> Option<String> {
    let value = std::env::var_os(BOOT_ENV)?;
    let value = value.to_string_lossy();
    Some(
        value
            .split_once(':')
            .map_or("", |(mode, _)| mode)
            .to_string(),
    )
}

/// Take this process's boot mode and connection: remove [`BOOT_ENV`] and adopt the
/// descriptor it names. `None` in an ordinary run, or (with a message) if the value is
/// malformed or its descriptor is not open.
///
/// # Safety
/// Only from an `.init_array` entry, before `main` and before any thread exists (it changes
/// the environment and takes ownership of the named descriptor), and only once per process.
pub(crate) unsafe fn take() -> Option<(String, Connection)> {
    let value = std::env::var_os(BOOT_ENV)?;
    // SAFETY: the caller runs before `main` and before any thread exists, so nothing can read
    // the environment concurrently.
    unsafe { std::env::remove_var(BOOT_ENV) };
    let value = value.to_string_lossy().into_owned();
    let parsed = value
        .split_once(':')
        .and_then(|(mode, fd)| fd.parse::<i32>().ok().map(|fd| (mode.to_string(), fd)));
    let Some((mode, raw_fd)) = parsed.filter(|(_, fd)| *fd >= 0 && sys::fd_is_open(*fd)) else {
        eprintln!("multiproc: ignoring malformed {BOOT_ENV}={value:?}");
        return None;
    };
    sys::ignore_sigpipe();
    // SAFETY: the parent opened this descriptor for this process alone and named it in the
    // environment variable just removed; nothing else in this fresh process owns it (the
    // caller takes it once).
    let fd = unsafe { sys::adopt_fd(raw_fd) };
    let _ = sys::set_cloexec(fd.as_fd());
    Some((mode, Connection::from_fd_trusted(fd)))
}
