//! The handshakes of a keyed [`Listener`](super::Listener)'s `accept`, run concurrently: each
//! accepted peer is authenticated on a thread of its own, and `accept` returns whichever
//! finishes first, so a peer that connects and stalls delays nobody but itself (Python's
//! `Listener.accept` authenticates one peer at a time, and a stalled one holds up every
//! other until its timeout).
//!
//! Why threads rather than one non-blocking state machine: the handshake is the blocking
//! code the clients share (`super::handshake`), it is short, and its deadline bounds each
//! thread's life; at most [`MAX_PENDING`] run at once, the rest wait in the kernel's backlog.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::connection::{Connection, ConnectionError, Result};
use crate::sys;

/// Handshakes in progress at most; further peers wait in the listen backlog.
const MAX_PENDING: usize = 64;

/// Finished handshakes, and a pipe that says one finished.
pub(super) struct Handshakes {
    results: Mutex<Receiver<Result<Connection>>>,
    sender: Sender<Result<Connection>>,
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
    running: Arc<AtomicUsize>,
}

impl Handshakes {
    pub(super) fn new() -> Result<Handshakes> {
        let (sender, results) = mpsc::channel();
        let (wake_read, wake_write) = sys::wake_pipe_nonblocking()?;
        Ok(Handshakes {
            results: Mutex::new(results),
            sender,
            wake_read,
            wake_write: Arc::new(wake_write),
            running: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next finished handshake: a connection, or the error of a peer that failed it.
    /// `listening` is the listening socket, `accept_one` accepts one peer from it.
    pub(super) fn next(
        &self,
        listening: BorrowedFd<'_>,
        accept_one: impl Fn() -> Result<OwnedFd>,
        key: &Arc<[u8]>,
        timeout: Duration,
    ) -> Result<Connection> {
        loop {
            let finished = self
                .results
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_recv();
            if let Ok(result) = finished {
                return result;
            }
            let room = self.running.load(Ordering::Acquire) < MAX_PENDING;
            let mut fds = vec![self.wake_read.as_fd()];
            if room {
                fds.push(listening);
            }
            let ready = sys::wait_readable(&fds, None)?;
            if ready[0] {
                sys::drain(&self.wake_read);
            }
            if room && ready[1] {
                self.start(accept_one()?, Arc::clone(key), timeout)?;
            }
        }
    }

    /// Authenticate the peer on `fd` on a thread of its own.
    fn start(&self, fd: OwnedFd, key: Arc<[u8]>, timeout: Duration) -> Result<()> {
        let sender = self.sender.clone();
        let wake = Arc::clone(&self.wake_write);
        let running = Arc::clone(&self.running);
        running.fetch_add(1, Ordering::AcqRel);
        let spawned = std::thread::Builder::new()
            .name("multiproc-handshake".into())
            .spawn(move || {
                let mut conn = Connection::new(fd);
                let result = super::new_challenge()
                    .and_then(|random| super::server_handshake(&mut conn, &key, &random, timeout))
                    .map(|()| conn);
                running.fetch_sub(1, Ordering::AcqRel);
                // The listener may be gone: then nobody wants the connection.
                let _ = sender.send(result);
                sys::poke(&wake);
            });
        spawned.map(drop).map_err(|e| {
            self.running.fetch_sub(1, Ordering::AcqRel);
            ConnectionError::from(e)
        })
    }
}
