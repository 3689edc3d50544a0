//! Arbitrary bytes (and descriptors) from the peer of a `Connection`, read with every receive
//! operation. Input: `[limit][n][n operation bytes][segments...]` (see `common::Wire`).
//!
//! Checks: no panic, no hang (the peer's end is shut, so every read ends), memory bounded by
//! the connection's small limit, errors typed; a connection that reported a protocol error
//! stays `Broken`, one at end of file stays at end of file, no message exceeds the limit, and
//! no descriptor leaks (the fuzzer would soon run out of them).

#![no_main]

mod common;

use std::time::Duration;

use common::{Wire, check_peer_error};
use libfuzzer_sys::fuzz_target;
use multiproc::{Connection, ConnectionError, Handle};
use serde::Deserialize;

const LIMITS: [u64; 8] = [0, 1, 5, 16, 64, 300, 4096, 65536];

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Msg {
    Unit,
    Num(u64, i32),
    Text { s: String, opt: Option<Option<u16>> },
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    File(Handle<std::fs::File>),
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let mut limit = LIMITS[(data[0] & 7) as usize];
    let nops = (data[1] % 16) as usize;
    let Some(ops) = data.get(2..2 + nops) else {
        return;
    };
    let stream = &data[2 + nops..];

    let wire = Wire::new();
    wire.send_segments(stream, 32);
    wire.finish();
    let mut conn = wire.conn;
    conn.set_max_message_size(limit);
    if data[0] & 8 != 0 {
        drop(wire.peer); // a closed peer, not just a shut write side
    }

    let mut broken = false;
    let mut eof = false;
    for &op in ops.iter().chain([0u8; 4].iter()) {
        let arg = op >> 4;
        let result: Result<Option<usize>, ConnectionError> = match op % 12 {
            0 => conn.recv_bytes().map(|b| Some(b.len())),
            1 => conn.recv::<Msg>().map(|_| None),
            2 => conn.recv::<String>().map(|s| Some(s.len())),
            3 => {
                let mut buf = vec![0u8; arg as usize * 4];
                conn.recv_bytes_into(&mut buf).map(Some)
            }
            4 => conn.recv_bytes_max(arg as u64).map(|b| Some(b.len())),
            5 => conn
                .recv_timeout::<Vec<u8>>(Duration::ZERO)
                .map(|v| v.map(|v| v.len())),
            6 => conn.poll(Some(Duration::ZERO)).map(|_| None),
            7 => conn
                .recv_pickle::<multiproc::pickle::PyValue>()
                .map(|_| None),
            8 => conn.recv::<Connection>().map(|mut inner| {
                // A connection the peer sent, with whatever buffered state it claimed.
                inner.set_max_message_size(64);
                for _ in 0..3 {
                    if let Err(e) = inner.recv_bytes() {
                        check_peer_error(&e);
                    }
                    if let Err(e) = inner.recv::<Msg>() {
                        check_peer_error(&e);
                    }
                }
                None
            }),
            9 => conn.recv::<Handle<std::fs::File>>().map(|_| None),
            10 => {
                limit = LIMITS[(arg & 7) as usize];
                conn.set_max_message_size(limit);
                Ok(None)
            }
            _ => conn
                .recv_timeout::<(u8, Option<String>)>(Duration::from_millis(1))
                .map(|_| None),
        };
        if std::env::var_os("MULTIPROC_FUZZ_DEBUG").is_some() {
            eprintln!("op {} (arg {arg}): {result:?}", op % 12);
        }
        match result {
            Ok(_) if op % 12 == 10 => {}
            Ok(len) => {
                assert!(!broken, "a broken connection delivered a message");
                assert!(!eof || op % 12 == 6, "a message after end of file");
                if let Some(len) = len {
                    assert!(len as u64 <= limit, "message of {len} bytes over limit {limit}");
                }
            }
            Err(e) => {
                check_peer_error(&e);
                if broken {
                    assert!(matches!(e, ConnectionError::Broken), "after a protocol error: {e:?}");
                }
                if eof {
                    assert!(matches!(e, ConnectionError::Eof), "after end of file: {e:?}");
                }
                match e {
                    ConnectionError::TooLarge { .. } | ConnectionError::Truncated { .. } => {
                        broken = true
                    }
                    ConnectionError::Malformed(ref m) if m.contains("negative frame length") => {
                        broken = true
                    }
                    ConnectionError::Eof => eof = true,
                    _ => {}
                }
            }
        }
    }
});
