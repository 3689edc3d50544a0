//! Frames: writing a header and body, parsing a buffered header, reading a body, and
//! checking a typed message's handle count.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::recv_error;
use super::{Connection, ConnectionError, GROW_STEP, Result};
use crate::handle::{self};
use crate::sys;

impl Connection {
    pub(super) fn check_readable(&self) -> Result<()> {
        if !self.readable {
            return Err(ConnectionError::WrongDirection("write-only"));
        }
        if self.broken {
            return Err(ConnectionError::Broken);
        }
        Ok(())
    }

    pub(super) fn check_writable(&self) -> Result<()> {
        if !self.writable {
            return Err(ConnectionError::WrongDirection("read-only"));
        }
        Ok(())
    }

    pub(super) fn write_frame(&self, body: &[u8], fds: &[OwnedFd]) -> Result<()> {
        let mut header = [0u8; 12];
        let header: &[u8] = if body.len() <= i32::MAX as usize {
            header[..4].copy_from_slice(&(body.len() as i32).to_be_bytes());
            &header[..4]
        } else {
            header[..4].copy_from_slice(&(-1i32).to_be_bytes());
            header[4..].copy_from_slice(&(body.len() as u64).to_be_bytes());
            &header[..]
        };
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        sys::send_all(self.fd.as_fd(), &[header, body], &borrowed).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                ConnectionError::PeerClosed
            }
            _ => ConnectionError::Io(e),
        })
    }

    /// Encode `value` as one whole frame (header and body) into `out`, which is cleared
    /// first; returns the descriptors that must travel with its first byte. For the async
    /// send, which writes frames piece by piece as the socket takes them, and for a frame
    /// prepared in advance (a child's allocation-failure report, `sys/limits.rs`).
    pub(crate) fn encode_frame<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>> {
        self.check_writable()?;
        out.clear();
        out.extend_from_slice(&[0; 5]);
        let fds = handle::encode(value, out)?;
        if fds.len() > sys::MAX_FDS_PER_MESSAGE {
            return Err(ConnectionError::Malformed(format!(
                "a message can carry at most {} OS handles, this one has {}",
                sys::MAX_FDS_PER_MESSAGE,
                fds.len()
            )));
        }
        out[4] = fds.len() as u8;
        let body = out.len() - 4;
        if body <= i32::MAX as usize {
            out[..4].copy_from_slice(&(body as i32).to_be_bytes());
        } else {
            let mut header = [0u8; 12];
            header[..4].copy_from_slice(&(-1i32).to_be_bytes());
            header[4..].copy_from_slice(&(body as u64).to_be_bytes());
            out.splice(..4, header);
        }
        Ok(fds)
    }

    #[cfg(feature = "async")]
    /// Frame `bytes` as one message (header and body) into `out`, which is cleared first.
    pub(crate) fn encode_bytes_frame(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.check_writable()?;
        out.clear();
        if bytes.len() <= i32::MAX as usize {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        } else {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        }
        out.extend_from_slice(bytes);
        Ok(())
    }

    #[cfg(feature = "async")]
    /// Write what the socket takes now of `bytes` (with `fds` if given) without blocking;
    /// `Ok(0)` when it takes nothing.
    pub(crate) fn try_write(&self, bytes: &[u8], fds: &[OwnedFd]) -> Result<usize> {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        match sys::try_send_some(self.fd.as_fd(), &[bytes], &borrowed) {
            Ok(n) => Ok(n.unwrap_or(0)),
            Err(e) => Err(match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    ConnectionError::PeerClosed
                }
                _ => ConnectionError::Io(e),
            }),
        }
    }

    /// Length (header included) of the frame starting in the buffer, if its header is
    /// there; `Some(0)` for a header `recv` will reject.
    pub(super) fn buffered_frame_len(&self) -> Option<u64> {
        let b = &self.rbuf[self.rpos..self.rend];
        let short = i32::from_be_bytes(b.get(..4)?.try_into().ok()?);
        let (header, len) = match short {
            n if n >= 0 => (4, n as u64),
            -1 => (12, u64::from_be_bytes(b.get(4..12)?.try_into().ok()?)),
            _ => return Some(0),
        };
        if len > self.max_message {
            return Some(0);
        }
        Some(header + len)
    }

    /// Read and consume a frame header; returns the body length.
    pub(super) fn read_header(&mut self) -> Result<u64> {
        if !self.fill_to(4)? {
            return Err(ConnectionError::Eof);
        }
        let start = self.pos;
        let short = i32::from_be_bytes(
            self.rbuf[self.rpos..self.rpos + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let len = match short {
            n if n >= 0 => {
                self.consume(4);
                n as u64
            }
            -1 => {
                if !self.fill_to(12)? {
                    return Err(ConnectionError::Eof);
                }
                let long: [u8; 8] = self.rbuf[self.rpos + 4..self.rpos + 12]
                    .try_into()
                    .unwrap_or([0; 8]);
                self.consume(12);
                u64::from_be_bytes(long)
            }
            n => {
                self.broken = true;
                return Err(ConnectionError::Malformed(format!(
                    "negative frame length {n}"
                )));
            }
        };
        let header = if short == -1 { 12 } else { 4 };
        if len > self.max_message {
            self.broken = true;
            return Err(ConnectionError::TooLarge {
                len,
                limit: self.max_message,
            });
        }
        self.claim_fds(start, start + header + len);
        Ok(len)
    }

    /// Move the unread bytes to the front of the buffer and make it at least `capacity` long.
    pub(super) fn compact(&mut self, capacity: usize) {
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        self.rend -= self.rpos;
        self.rpos = 0;
        if self.rbuf.len() < capacity {
            self.rbuf.resize(capacity, 0);
        }
    }

    /// The `len`-byte body of the frame whose header was just read, as an owned vector.
    pub(super) fn take_body(&mut self, len: u64) -> Result<Vec<u8>> {
        if len <= (self.rend - self.rpos) as u64 {
            let body = self.rbuf[self.rpos..self.rpos + len as usize].to_vec();
            self.consume(len as usize);
            Ok(body)
        } else {
            self.read_body(len)
        }
    }

    /// Read a body of `len` bytes that is not (entirely) buffered yet.
    pub(super) fn read_body(&mut self, len: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| ConnectionError::TooLarge {
            len,
            limit: usize::MAX as u64,
        })?;
        let buffered = self.rend - self.rpos;
        let mut body = Vec::with_capacity(len.min(GROW_STEP.max(buffered)));
        body.extend_from_slice(&self.rbuf[self.rpos..self.rend]);
        self.consume(buffered);
        while body.len() < len {
            if body.len() == body.capacity() {
                body.reserve_exact((len - body.len()).min(GROW_STEP));
            }
            // Never read past this frame: the next one may carry descriptors.
            let room = (len - body.len()).min(body.capacity() - body.len());
            let n = sys::read_uninit(self.fd.as_fd(), &mut body.spare_capacity_mut()[..room])
                .map_err(recv_error)?;
            if n == 0 {
                self.broken = true;
                return Err(ConnectionError::Truncated {
                    expected: len as u64,
                    got: body.len() as u64,
                });
            }
            // SAFETY: `read_uninit` initialised the first `n` bytes of the spare capacity.
            unsafe { body.set_len(body.len() + n) };
            self.pos += n as u64;
        }
        Ok(body)
    }
}

impl Connection {
    /// Refuse the descriptors of a frame when this connection does not accept handles (they
    /// are closed when the caller drops them).
    pub(super) fn vet_handles(&self, fds: &[OwnedFd]) -> Result<()> {
        if self.accepts_handles || fds.is_empty() {
            Ok(())
        } else {
            Err(ConnectionError::HandlesRefused { count: fds.len() })
        }
    }
}

/// Check a typed message body's handle count against the descriptors that came with it.
pub(super) fn check_count(body: &[u8], arrived: usize) -> Result<()> {
    let &count = body.first().ok_or_else(|| {
        ConnectionError::Malformed("empty message where a value was expected".into())
    })?;
    if count as usize != arrived {
        return Err(ConnectionError::Malformed(format!(
            "message announces {count} OS handles but {arrived} came with it"
        )));
    }
    Ok(())
}

/// Decode a typed message body: its handle count, then the value.
pub(super) fn decode_body<T: DeserializeOwned>(body: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    check_count(body, fds.len())?;
    Ok(handle::decode(&body[1..], fds)?)
}
