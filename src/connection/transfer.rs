//! A [`Connection`] inside a message: what travels so that the receiver misses nothing.

use std::os::fd::AsFd;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Connection;
use crate::handle::{FdOwned, FdRef};

/// How a `Connection` looks inside a message: its descriptor plus any bytes and descriptors
/// already read from the socket but not consumed, so the receiver misses nothing.
#[derive(Serialize)]
struct WireOut<'a> {
    fd: FdRef<'a>,
    readable: bool,
    writable: bool,
    max_message: u64,
    pending: &'a [u8],
    pending_fds: Vec<FdRef<'a>>,
    /// `fd_reads`, relative to the first pending byte.
    pending_fd_reads: Vec<(i64, i64, u64)>,
}

#[derive(Deserialize)]
struct WireIn {
    fd: FdOwned,
    readable: bool,
    writable: bool,
    max_message: u64,
    pending: Vec<u8>,
    pending_fds: Vec<FdOwned>,
    pending_fd_reads: Vec<(i64, i64, u64)>,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        WireOut {
            fd: FdRef(self.fd.as_fd()),
            readable: self.readable,
            writable: self.writable,
            max_message: self.max_message,
            pending: &self.rbuf[self.rpos..self.rend],
            pending_fds: self.fds.iter().map(|f| FdRef(f.as_fd())).collect(),
            pending_fd_reads: self
                .fd_reads
                .iter()
                .map(|&(r, e, k)| {
                    (
                        r.wrapping_sub(self.pos) as i64,
                        e.wrapping_sub(self.pos) as i64,
                        k as u64,
                    )
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let w = WireIn::deserialize(deserializer)?;
        let mut conn = Connection::from_fd(w.fd.0, w.readable, w.writable);
        conn.max_message = w.max_message;
        conn.rend = w.pending.len();
        conn.rbuf = w.pending;
        conn.fds = w.pending_fds.into_iter().map(|f| f.0).collect();
        // Start the stream count high enough that relative offsets stay positive.
        conn.pos = 1 << 48;
        conn.fd_reads = w
            .pending_fd_reads
            .into_iter()
            .map(|(r, e, k)| {
                (
                    conn.pos.wrapping_add(r as u64),
                    conn.pos.wrapping_add(e as u64),
                    k as usize,
                )
            })
            .collect();
        Ok(conn)
    }
}
