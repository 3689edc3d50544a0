//! The read buffer, and which descriptors belong to which frame (descriptor claiming).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use super::error::recv_error;
use super::{Connection, ConnectionError, GROW_STEP, INITIAL_READ, READ_CHUNK, Result};
use crate::sys;

impl Connection {
    pub(super) fn consume(&mut self, n: usize) {
        self.rpos += n;
        self.pos += n as u64;
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
            if self.rbuf.len() > READ_CHUNK {
                // Grown for one large message by `recv_timeout`: give it back.
                self.rbuf = Vec::new();
            }
        }
    }

    /// Make at least `n` bytes available in the buffer. `Ok(false)` on end of file before any
    /// byte of them arrived.
    pub(super) fn fill_to(&mut self, n: usize) -> Result<bool> {
        while self.rend - self.rpos < n {
            let missing = n - (self.rend - self.rpos);
            if self.rbuf.len() - self.rend < missing.max(512) {
                self.compact(n.max(INITIAL_READ));
            }
            let have = self.rend;
            let got = self.read_more().map_err(recv_error)?;
            if got == 0 {
                if have == self.rpos {
                    return Ok(false);
                }
                self.broken = true;
                return Err(ConnectionError::Truncated {
                    expected: n as u64,
                    got: (have - self.rpos) as u64,
                });
            }
            self.rend += got;
            // A read that filled the buffer suggests a stream of messages: read more at once.
            if self.rend == self.rbuf.len() && self.rbuf.len() < READ_CHUNK {
                let bigger = (self.rbuf.len() * 2).min(READ_CHUNK);
                self.rbuf.resize(bigger, 0);
            }
        }
        Ok(true)
    }

    /// One read into the free end of the buffer. On a machine with spare CPUs, first poll
    /// without blocking for a few tens of microseconds (yielding the CPU in between): a
    /// reply usually arrives within that time, and not going to sleep saves the wake-up of an
    /// idle CPU, which on virtual machines costs more than the whole round trip.
    pub(super) fn read_more(&mut self) -> io::Result<usize> {
        let before = self.fds.len();
        let n = self.read_more_unrecorded()?;
        self.record_fds(before, n);
        Ok(n)
    }

    /// Note where descriptors delivered by the read of `n` bytes just made came from.
    pub(super) fn record_fds(&mut self, before: usize, n: usize) {
        let arrived = self.fds.len() - before;
        if arrived > 0 {
            let start = self.pos + (self.rend - self.rpos) as u64;
            self.fd_reads.push_back((start, start + n as u64, arrived));
        }
    }

    /// The descriptors that came with the frame whose header `read_header` just consumed.
    pub(super) fn take_frame_fds(&mut self) -> Vec<OwnedFd> {
        let n = std::mem::take(&mut self.frame_fds).min(self.fds.len());
        self.fds.drain(..n).collect()
    }

    /// Decide which queued descriptors belong to the frame occupying `[start, end)` of the
    /// stream: those of a read that began at or before `start` and ended inside the frame.
    /// Descriptors of reads that ended before `start` belonged to earlier frames nobody
    /// claimed; they are closed.
    pub(super) fn claim_fds(&mut self, start: u64, end: u64) {
        self.frame_fds = 0;
        while let Some(&(r, e, k)) = self.fd_reads.front() {
            if e <= start {
                self.fd_reads.pop_front();
                let k = k.min(self.fds.len());
                self.fds.drain(..k);
                continue;
            }
            if r <= start && e <= end {
                self.fd_reads.pop_front();
                self.frame_fds = k;
            }
            break;
        }
    }

    pub(super) fn read_more_unrecorded(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        let mut got = Ok(None);
        if self.spins {
            sys::memory::spin_until(None, || {
                got = sys::try_recv_some(fd, &mut self.rbuf[self.rend..], &mut self.fds);
                !matches!(got, Ok(None))
            });
        }
        if let Some(n) = got? {
            return Ok(n);
        }
        sys::recv_some(fd, &mut self.rbuf[self.rend..], &mut self.fds)
    }

    /// Read until a whole frame is buffered (`Ok(true)`) or `deadline` passes (`Ok(false)`;
    /// what arrived stays buffered). Protocol errors and end of file also give `Ok(true)`:
    /// the following `recv` reports them exactly as it would without a timeout.
    pub(super) fn buffer_whole_frame(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            if self.try_buffer_frame()? {
                return Ok(true);
            }
            let remaining = crate::deadline::remaining(deadline);
            if !sys::wait_readable(&[self.fd.as_fd()], remaining)?[0] {
                return Ok(false);
            }
        }
    }

    /// Read what the socket has without blocking, until a whole frame is buffered
    /// (`Ok(true)`, also for end of file and a header `recv` will reject) or the socket has
    /// nothing more for now (`Ok(false)`; what arrived stays buffered, so a later receive
    /// goes on from there). The async receive is built on this.
    pub(crate) fn try_buffer_frame(&mut self) -> Result<bool> {
        self.check_readable()?;
        loop {
            let buffered = self.rend - self.rpos;
            let want = match self.buffered_frame_len() {
                Some(total) if total <= buffered as u64 => return Ok(true),
                Some(total) => usize::try_from(total).unwrap_or(usize::MAX),
                None => 12,
            };
            // Room for the rest of the frame, growing by at most GROW_STEP per round so that
            // memory follows the data that actually arrives.
            let target = want.min(buffered + GROW_STEP).max(INITIAL_READ);
            if self.rbuf.len() - self.rpos < target || self.rend == self.rbuf.len() {
                self.compact(target);
            }
            let before = self.fds.len();
            let read =
                sys::try_recv_some(self.fd.as_fd(), &mut self.rbuf[self.rend..], &mut self.fds);
            match read.map_err(recv_error)? {
                None => return Ok(false),
                Some(0) => return Ok(true),
                Some(n) => {
                    // Descriptors that came with this read belong to the frame it began
                    // (see `claim_fds`), exactly as for reads made by `recv`.
                    self.record_fds(before, n);
                    self.rend += n;
                }
            }
        }
    }
}
