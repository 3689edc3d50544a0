//! Inputs the fuzz targets in `fuzz/` found (see fuzz/README.md), replayed through the public
//! API. Each test names the target and the artifact it came from.

mod common;

use multiproc::pickle::{self, PyValue as Value};

/// `pickle` target, artifact crash-513edeaa801a17c1cd4cba242628e10128451d11: a protocol-4
/// pickle of `frozenset({"x"})` decoded, but the library's own encoding of the value it gave
/// (`GLOBAL builtins frozenset` + `REDUCE`, serde-pickle's only way to write a set) was then
/// refused by the plain-data check. Sets and frozensets now round-trip.
#[test]
fn pickle_frozenset_round_trips() {
    let _g = common::guard();
    let found = b"\x80\x06\x95\x08\x00\x00\x00\x00\x00\x00\x00(\x8c\x01x\x94\x91\x94.";
    let value = pickle::value_from_slice(found).unwrap();
    assert!(matches!(value, Value::FrozenSet(_)));
    let again = pickle::value_from_slice(&pickle::value_to_vec(&value).unwrap()).unwrap();
    assert_eq!(again, value);

    let set = pickle::value_from_slice(
        b"\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00\x8f\x94(K\x01K\x02\x90.",
    )
    .unwrap();
    assert!(matches!(set, Value::Set(_)));
    let again = pickle::value_from_slice(&pickle::value_to_vec(&set).unwrap()).unwrap();
    assert_eq!(again, set);
}

/// The same form as Python writes it: `pickle.dumps({1, 2}, protocol=2)`,
/// `pickle.dumps(frozenset({"x"}), protocol=3)`, `pickle.dumps(bytearray(b"ab"), protocol=3)`.
#[test]
fn pickle_python_sets_of_old_protocols_decode() {
    let _g = common::guard();
    let set = pickle::value_from_slice(
        b"\x80\x02c__builtin__\nset\nq\x00]q\x01(K\x01K\x02e\x85q\x02Rq\x03.",
    )
    .unwrap();
    assert_eq!(set.to_string(), "{1, 2}");
    let frozen = pickle::value_from_slice(
        b"\x80\x03cbuiltins\nfrozenset\nq\x00]q\x01X\x01\x00\x00\x00xq\x02a\x85q\x03Rq\x04.",
    )
    .unwrap();
    assert!(matches!(frozen, Value::FrozenSet(_)));
    let bytes: serde_bytes::ByteBuf =
        pickle::from_slice(b"\x80\x03cbuiltins\nbytearray\nq\x00C\x02abq\x01\x85q\x02Rq\x03.")
            .unwrap();
    assert_eq!(&bytes[..], b"ab");
}

/// Accepting those constructors accepts nothing else: any other GLOBAL, a name that only
/// starts like an accepted one, and REDUCE on anything but an accepted constructor are still
/// typed decode errors.
#[test]
fn pickle_other_globals_and_calls_are_still_refused() {
    let _g = common::guard();
    let refused: [&[u8]; 6] = [
        // pickle.dumps(eval), protocol 0.
        b"c__builtin__\neval\np0\n.",
        b"\x80\x03cbuiltins\nsetattr\nq\x00.",
        b"\x80\x03cbuiltins\nsetx\nq\x00]\x85R.",
        b"\x80\x03cbuiltins\nset\n\ncos\nsystem\n.",
        // REDUCE on an int and on a tuple: not a constructor.
        b"\x80\x03K\x01)R.",
        b"\x80\x03)]\x85R.",
    ];
    for bytes in refused {
        match pickle::value_from_slice(bytes) {
            Err(multiproc::CodecError::Decode { .. }) => {}
            other => panic!("{bytes:?} gave {other:?}"),
        }
    }
}

/// `pickle` target, artifact crash-2dd2decf0e8c34271cf5381188c6bf13338bb342 (kept in
/// fuzz/regressions/; its first byte is the target's mode byte): a set holding NaN floats.
/// serde-pickle sorts set elements with an order that is not total for NaN (and for floats
/// mixed with integers beyond 2**53), and Rust's sort panicked: a peer's pickle panicked
/// `value_from_slice`. Such a set is now a typed decode error there.
#[test]
fn pickle_set_with_nan_is_an_error_not_a_panic() {
    let _g = common::guard();
    let found =
        include_bytes!("../fuzz/regressions/pickle-crash-2dd2decf0e8c34271cf5381188c6bf13338bb342");
    match pickle::value_from_slice(&found[1..]) {
        Err(multiproc::CodecError::Decode { reason, .. }) => assert!(reason.contains("NaN")),
        other => panic!("expected a decode error, got {other:?}"),
    }
    // pickle.dumps({float('nan'), 1.0, float('nan'), 2.0}, protocol=4).
    let nan_set = b"\x80\x04\x95)\x00\x00\x00\x00\x00\x00\x00\x8f\x94(G?\xf0\x00\x00\x00\x00\x00\x00G@\x00\x00\x00\x00\x00\x00\x00G\x7f\xf8\x00\x00\x00\x00\x00\x00G\x7f\xf8\x00\x00\x00\x00\x00\x00\x90.";
    assert!(matches!(
        pickle::value_from_slice(nan_set),
        Err(multiproc::CodecError::Decode { .. })
    ));
    // Through serde (from_slice, recv_pickle) a set is read as a sequence, never ordered.
    let (mut a, mut b) = multiproc::pipe().unwrap();
    a.send_bytes(nan_set).unwrap();
    assert!(b.recv_pickle::<Value>().is_ok());
    // A typed decode never orders the elements: it reads them.
    let floats: Vec<f64> = pickle::from_slice(nan_set).unwrap();
    assert_eq!(floats.len(), 4);
    // pickle.dumps({1.5, 2**60}, protocol=4): a float with an integer beyond 2**53.
    let mixed = b"\x80\x04\x95\x18\x00\x00\x00\x00\x00\x00\x00\x8f\x94(\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10G?\xf8\x00\x00\x00\x00\x00\x00\x90.";
    assert!(pickle::value_from_slice(mixed).is_err());
    // Sets of ordinary floats and small integers still decode: {1.5, 2.5, 3}, protocol 2.
    let plain = b"\x80\x02c__builtin__\nset\nq\x00]q\x01(G?\xf8\x00\x00\x00\x00\x00\x00G@\x04\x00\x00\x00\x00\x00\x00K\x03e\x85q\x02Rq\x03.";
    assert!(matches!(pickle::value_from_slice(plain).unwrap(), Value::Set(s) if s.len() == 3));
}

/// `pickle` target, artifact oom-8d6b2b58915f8815322e03e6bf63e1aa73f1d79c (in
/// fuzz/regressions/, first byte = mode): 622 bytes of DUP and TUPLE2 instructions, which
/// serde-pickle executes by copying the value each time, grew past 2 GiB. DUP (which
/// Python's pickler never writes) is now refused before decoding.
#[test]
fn pickle_dup_bomb_is_refused() {
    let _g = common::guard();
    let found =
        include_bytes!("../fuzz/regressions/pickle-oom-8d6b2b58915f8815322e03e6bf63e1aa73f1d79c");
    for result in [
        pickle::value_from_slice(&found[1..]).map(drop),
        pickle::from_slice::<Value>(&found[1..]).map(drop),
    ] {
        match result {
            Err(multiproc::CodecError::Decode { reason, .. }) => assert!(reason.contains("DUP")),
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
    // Shared references as Python writes them (memo gets) still decode:
    // x = [1]; pickle.dumps([x, x, x], protocol=2).
    let shared = b"\x80\x02]q\x00(]q\x01K\x01ah\x01h\x01e.";
    assert_eq!(
        pickle::value_from_slice(shared).unwrap().to_string(),
        "[[1], [1], [1]]"
    );
}
