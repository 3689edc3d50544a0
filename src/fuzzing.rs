//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`, off by default; not a
//! public API: no stability promise, hidden from the documentation).
//!
//! The authentication handshake of [`Listener`](crate::listener::Listener) and
//! [`Client`](crate::listener::Client) runs on a freshly accepted or connected socket and
//! draws its challenge from the OS's random source. These functions run exactly the same
//! handshake code on a given [`Connection`] with a given challenge, so a fuzz target can play
//! the peer deterministically (it knows the challenge and can answer it correctly, or not).
//!
//! A pool's chunk results reach the parent through shared memory, not a `Connection`:
//! [`decode_chunk_output`] runs the collector's decoding on given bytes.

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

/// The parent's decoding of a pool worker's chunk result (`ChunkOutput<R>`: the failed items
/// and the values, packed when `R` is a primitive number), as the collector decodes the
/// bytes it takes from the result ring: the values and how many failures there were.
pub fn decode_chunk_output<R: crate::TaskOutput>(
    bytes: &[u8],
) -> std::result::Result<(Vec<R>, usize), String> {
    crate::handle::decode::<crate::pool::task::ChunkOutput<R>>(bytes, Vec::new())
        .map(|out| (out.values, out.failures.len()))
        .map_err(|e| e.to_string())
}

/// What a pool worker writes for a chunk whose items all returned `values`.
pub fn encode_chunk_output<R: crate::TaskOutput + Clone>(values: &[R]) -> Vec<u8> {
    let output = crate::pool::task::ChunkOutput {
        failures: Vec::new(),
        values: values.to_vec(),
    };
    let mut out = Vec::new();
    // Plain numbers and strings carry no OS handles and always encode.
    let _ = crate::handle::encode(&output, &mut out);
    out
}
