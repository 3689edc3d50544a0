//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; not a
//! public API: no stability promise, hidden from the documentation).
//!
//! The authentication handshake of [`Listener`](crate::listener::Listener) and
//! [`Client`](crate::listener::Client) runs on a freshly accepted or connected socket and
//! draws its challenge from the OS's random source. These functions run exactly the same
//! handshake code on a given [`Connection`] with a given challenge, so a fuzz target can play
//! the peer deterministically (it knows the challenge and can answer it correctly, or not).

#![doc(hidden)]

use std::time::Duration;

use crate::connection::{Connection, Result};
use crate::listener;

/// Bytes of random challenge this side sends (CPython's `MESSAGE_LENGTH`).
pub const CHALLENGE_LENGTH: usize = 40;

/// `Listener::accept`'s handshake on `conn` with `key`: send `#CHALLENGE#{sha256}` +
/// `challenge`, check the peer's reply, then answer the peer's challenge. Each step may take
/// at most `timeout`.
pub fn server_handshake(
    conn: &mut Connection,
    key: &[u8],
    challenge: &[u8; CHALLENGE_LENGTH],
    timeout: Duration,
) -> Result<()> {
    listener::server_handshake(conn, key, challenge, timeout)
}

/// `Client::connect`'s handshake on `conn` with `key`: answer the peer's challenge, then send
/// `#CHALLENGE#{sha256}` + `challenge` and check the reply. Each step may take at most
/// `timeout`.
pub fn client_handshake(
    conn: &mut Connection,
    key: &[u8],
    challenge: &[u8; CHALLENGE_LENGTH],
    timeout: Duration,
) -> Result<()> {
    listener::client_handshake(conn, key, challenge, timeout)
}
