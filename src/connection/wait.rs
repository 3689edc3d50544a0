//! [`wait`]: readiness of many connections (or anything with a descriptor) at once.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::Result;
use crate::sys;

/// Wait until at least one of `objects` is ready, or `timeout` passes (Python's
/// `multiprocessing.connection.wait`). Works with anything that has a descriptor: a
/// [`Connection`](crate::connection::Connection) is ready when a message or end of file can be read, a
/// [`Process`](crate::Process) when the child has ended. Returns the indices of the ready
/// objects (empty on timeout).
///
/// Note that a `Connection` with messages already buffered in this process is ready even if
/// its socket is not; check [`Connection::poll`](crate::connection::Connection::poll) first when that matters.
///
/// ```
/// use std::time::{Duration, Instant};
/// let (mut a1, mut b1) = multiproc::pipe()?;
/// let (_a2, b2) = multiproc::pipe()?;
/// a1.send(&1u8)?;
/// let ready = multiproc::wait(&[&b1, &b2], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![0]);
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub fn wait<T: AsFd>(objects: &[T], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.as_fd()).collect();
    let ready = sys::wait_readable(&fds, timeout)?;
    Ok(ready
        .iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i)
        .collect())
}
