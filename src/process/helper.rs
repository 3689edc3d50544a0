//! Helper processes of the library itself (the fork server, the resource tracker): spawned
//! copies of the executable in a boot mode, each talking to its creator over one connection
//! and exiting when that connection reaches end of file.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::ProcessError;
use crate::connection::Connection;
use crate::sys;

/// A running helper process.
pub(crate) struct Helper {
    /// The process that launched it; a forked child must not use its parent's helpers.
    pub owner: u32,
    pub pid: u32,
    pub pidfd: OwnedFd,
    pub control: Connection,
}

/// Start a fresh copy of the executable in boot mode `mode` (see `spawn::boot_hook`): a
/// helper, or a spawned child (mode `spawn`).
pub(crate) fn launch(mode: &str, argv0: &str) -> Result<Helper, ProcessError> {
    super::spawn::keep_boot_hook();
    let (mine, theirs) = sys::socketpair()?;
    let pid = sys::spawn_self(
        &[(super::spawn::BOOT_ENV, format!("{mode}:{}", sys::SPAWN_FD))],
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
