//! Typed message bodies (`Connection::recv::<T>`): a well-formed frame whose body is
//! arbitrary (the handle-count byte, then postcard bytes) arriving with 0-3 descriptors,
//! decoded as one of several realistic types, some carrying handles (`Handle<File>`, a
//! `Connection`, which is then read). Input: `[type][flags][body...]`; flag bit 2 makes the
//! count byte match the descriptors, so decoding gets past the count check.
//!
//! Checks: no panic, hang or unbounded allocation; errors typed; no descriptor leak (the
//! fuzzer would run out of descriptors); a decoded `Connection` is safe to read.

#![no_main]

mod common;

use std::collections::HashMap;
use std::fs::File;

use common::{Wire, check_peer_error, frame};
use libfuzzer_sys::fuzz_target;
use multiproc::{Connection, ConnectionError, Handle};
use serde::Deserialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Kind {
    Empty,
    Code(i32),
    Point { x: f64, y: f64 },
    Named(String, Option<u8>),
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    id: u64,
    name: String,
    tags: Vec<String>,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    note: Option<Option<String>>,
    kind: Kind,
    extra: HashMap<String, i64>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct WithHandles {
    label: String,
    file: Option<Handle<File>>,
    files: Vec<Handle<File>>,
    reply: Option<Connection>,
}

fn recv<T: DeserializeOwned>(conn: &mut Connection) -> Result<T, ConnectionError> {
    conn.recv::<T>()
}

/// Read from a connection the peer sent us (its buffered state is the peer's claim).
fn use_connection(mut c: Connection) {
    c.set_max_message_size(64);
    for _ in 0..3 {
        if let Err(e) = c.recv::<Kind>() {
            check_peer_error(&e);
        }
        if let Err(e) = c.recv_bytes() {
            check_peer_error(&e);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (which, flags) = (data[0], data[1]);
    let fds = (flags & 3) as usize;
    let mut body = data[2..].to_vec();
    if flags & 4 != 0 {
        if body.is_empty() {
            body.push(0);
        }
        body[0] = fds as u8;
    }
    let wire = Wire::new();
    let message = frame(&body);
    // The descriptors ride on the frame's first byte, as `Connection::send` sends them.
    let sent = wire.send(&message[..1], fds) && wire.send(&message[1..], 0);
    if !sent {
        return;
    }
    wire.finish();
    let mut conn = wire.conn;
    conn.set_max_message_size(1 << 16);
    let result = match which % 9 {
        0 => recv::<Order>(&mut conn).map(drop),
        1 => recv::<Kind>(&mut conn).map(drop),
        2 => recv::<(String, serde_bytes::ByteBuf)>(&mut conn).map(drop),
        3 => recv::<Vec<Option<(u32, String)>>>(&mut conn).map(drop),
        4 => recv::<Option<Option<Option<String>>>>(&mut conn).map(drop),
        5 => recv::<Handle<File>>(&mut conn).map(drop),
        6 => recv::<WithHandles>(&mut conn).map(|w| {
            if let Some(c) = w.reply {
                use_connection(c);
            }
        }),
        7 => recv::<Connection>(&mut conn).map(use_connection),
        _ => recv::<(Vec<Handle<File>>, Kind)>(&mut conn).map(drop),
    };
    if let Err(e) = &result {
        check_peer_error(e);
    }
    // The frame is consumed either way: next is end of file.
    match conn.recv_bytes() {
        Err(ConnectionError::Eof) => {}
        other => panic!("after one frame, expected end of file, got {other:?}"),
    }
});
