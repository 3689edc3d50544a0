//! Registering descriptors with tokio's reactor, and waiting for a set of them.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::task::Poll;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Register `inner`'s descriptor with the current tokio runtime's reactor; an error (not a
/// panic) outside a runtime.
///
/// # Safety
/// tokio's contract for [`AsyncFd::register_with_interest`]: `inner.as_raw_fd()` is an open
/// descriptor that stays open, refers to the same file description and is what
/// `as_raw_fd()` returns, for as long as the `AsyncFd` owns `inner`.
pub(crate) unsafe fn register<T: AsRawFd>(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(io::Error::other(
            "multiproc::aio must be used inside a tokio runtime with I/O enabled",
        ));
    }
    // SAFETY: forwarded to the caller.
    unsafe { AsyncFd::register_with_interest(inner, interest) }.map_err(io::Error::from)
}

/// Wait until one of `fds` is readable (or hung up). The descriptors are this call's own
/// duplicates, so whatever happens to the originals meanwhile (another thread may close
/// them) cannot touch the registrations. A descriptor that is already readable is reported
/// at once (registering it with epoll reports its current state), so nothing that happened
/// before the call is missed.
pub(crate) async fn readable_any(fds: Vec<OwnedFd>) -> io::Result<()> {
    let registered = fds
        .into_iter()
        // SAFETY: the `AsyncFd` owns the duplicate, which nothing else can close or replace.
        .map(|fd| unsafe { register(fd, Interest::READABLE) })
        .collect::<io::Result<Vec<_>>>()?;
    poll_fn(|cx| {
        for r in &registered {
            if let Poll::Ready(ready) = r.poll_read_ready(cx) {
                return Poll::Ready(ready.map(drop));
            }
        }
        Poll::Pending
    })
    .await
}
