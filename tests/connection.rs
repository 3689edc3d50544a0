//! `pipe`, `pipe_oneway` and `Connection`: typed and raw messages, the wire format, limits,
//! protocol errors, end of file, and `wait`. Most tests use both ends in this process; the
//! ones about a peer that is a child process run for each start method.

#[macro_use]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use multiproc::{
    CodecError, Connection, ConnectionError, DEFAULT_MAX_MESSAGE_SIZE, ProcessBuilder, StartMethod,
    pipe, pipe_oneway, wait,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Generous bound for things that take milliseconds, so a loaded machine does not fail them.
const PROMPTLY: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Allocation accounting: the largest single allocation this process makes.

struct RecordsLargestAllocation;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for RecordsLargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: RecordsLargestAllocation = RecordsLargestAllocation;

/// Runs `f` and returns its result with the largest single allocation made meanwhile (by any
/// thread; the other tests of this binary are held off by the guard).
fn largest_allocation_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_ALLOCATION.store(0, Ordering::Relaxed);
    let result = f();
    (result, LARGEST_ALLOCATION.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------
// Helpers

/// A connection whose peer is a plain socket, to write arbitrary bytes at it.
fn connection_with_raw_peer() -> (UnixStream, Connection) {
    let (raw, theirs) = UnixStream::pair().unwrap();
    (raw, Connection::new(theirs.into()))
}

fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let (mut a, mut b) = pipe().unwrap();
    a.send(value).unwrap();
    b.recv().unwrap()
}

/// A deterministic byte pattern that is not all one value.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { radius: f64 },
    Rect(u32, u32),
    Empty,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    scores: BTreeMap<String, i32>,
    shape: Shape,
    parent: Option<Box<Record>>,
    raw: Vec<u8>,
    flag: bool,
    initial: char,
    delta: i128,
}

fn sample_record() -> Record {
    Record {
        id: 7,
        name: "séance ✓".into(),
        tags: vec!["a".into(), String::new(), "c".into()],
        scores: BTreeMap::from([("x".into(), -1), ("y".into(), i32::MAX)]),
        shape: Shape::Circle { radius: 2.5 },
        parent: Some(Box::new(Record {
            id: 1,
            name: "root".into(),
            tags: vec![],
            scores: BTreeMap::new(),
            shape: Shape::Empty,
            parent: None,
            raw: vec![0, 255],
            flag: false,
            initial: 'r',
            delta: i128::MIN,
        })),
        raw: (0..=255).collect(),
        flag: true,
        initial: '∂',
        delta: -3,
    }
}

// ---------------------------------------------------------------------------------------
// Typed messages

#[test]
fn primitive_values_round_trip() {
    let _g = common::guard();
    assert_eq!(round_trip(&0u8), 0);
    assert_eq!(round_trip(&i64::MIN), i64::MIN);
    assert_eq!(round_trip(&u128::MAX), u128::MAX);
    assert_eq!(round_trip(&-1.5f64), -1.5);
    assert!(round_trip(&f32::NAN).is_nan());
    assert!(round_trip(&true));
    assert_eq!(round_trip(&'ß'), 'ß');
    round_trip(&());
    assert_eq!(round_trip(&String::from("héllo")), "héllo");
    assert_eq!(round_trip(&String::new()), "");
}

#[test]
fn collections_round_trip() {
    let _g = common::guard();
    let v: Vec<Vec<i16>> = vec![vec![], vec![1, -2, 3]];
    assert_eq!(round_trip(&v), v);
    let m: HashMap<String, Option<u32>> =
        HashMap::from([("a".into(), Some(1)), ("b".into(), None)]);
    assert_eq!(round_trip(&m), m);
    let t = (1u8, "two".to_string(), [3.0f32; 3], Some(vec![(4u64, '5')]));
    assert_eq!(round_trip(&t), t);
}

#[test]
fn structs_and_enums_round_trip() {
    let _g = common::guard();
    let record = sample_record();
    assert_eq!(round_trip(&record), record);
    let shapes = vec![
        Shape::Rect(1, 2),
        Shape::Empty,
        Shape::Circle { radius: 0.0 },
    ];
    assert_eq!(round_trip(&shapes), shapes);
}

#[test]
fn unsized_values_can_be_sent() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send("a str").unwrap();
    a.send(&[1u16, 2, 3][..]).unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "a str");
    assert_eq!(b.recv::<Vec<u16>>().unwrap(), vec![1, 2, 3]);
}

#[test]
fn messages_arrive_in_the_order_they_were_sent() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    // From another thread: the socket's buffer does not hold 1000 unread messages.
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..1000u32 {
                a.send(&i).unwrap();
            }
        });
        for i in 0..1000u32 {
            assert_eq!(b.recv::<u32>().unwrap(), i);
        }
    });
}

#[test]
fn both_ends_of_a_duplex_pipe_send_and_receive() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    assert!(a.readable() && a.writable() && b.readable() && b.writable());
    a.send(&"ping").unwrap();
    b.send(&"pong").unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "ping");
    assert_eq!(a.recv::<String>().unwrap(), "pong");
}

#[test]
fn typed_and_raw_messages_can_be_mixed() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send(&1u8).unwrap();
    a.send_bytes(b"raw").unwrap();
    a.send(&2u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert_eq!(b.recv_bytes().unwrap(), b"raw");
    assert_eq!(b.recv::<u8>().unwrap(), 2);
}

#[test]
fn connection_new_wraps_a_unix_stream() {
    let _g = common::guard();
    let (x, y) = UnixStream::pair().unwrap();
    let (mut a, mut b) = (Connection::new(x.into()), Connection::new(y.into()));
    a.send(&sample_record()).unwrap();
    assert_eq!(b.recv::<Record>().unwrap(), sample_record());
}

// ---------------------------------------------------------------------------------------
// Raw bytes

#[test]
fn send_bytes_round_trip_including_the_empty_message() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"hello").unwrap();
    a.send_bytes(b"").unwrap();
    a.send_bytes(&[0, 255, 10]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"hello");
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert_eq!(b.recv_bytes().unwrap(), [0, 255, 10]);
}

#[test]
fn send_bytes_range_sends_the_chosen_slice() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes_range(b"abcdef", 2, Some(3)).unwrap();
    a.send_bytes_range(b"abcdef", 2, None).unwrap();
    a.send_bytes_range(b"abcdef", 6, None).unwrap();
    a.send_bytes_range(b"abcdef", 0, Some(0)).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"cde");
    assert_eq!(b.recv_bytes().unwrap(), b"cdef");
    assert_eq!(b.recv_bytes().unwrap(), b"");
    assert_eq!(b.recv_bytes().unwrap(), b"");
}

#[test]
fn send_bytes_range_outside_the_buffer_is_an_error_and_sends_nothing() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    for (offset, size) in [(4, None), (1, Some(3)), (3, Some(1)), (usize::MAX, Some(1))] {
        match a.send_bytes_range(b"abc", offset, size) {
            Err(ConnectionError::Io(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
            other => panic!("offset {offset} size {size:?}: expected InvalidInput, got {other:?}"),
        }
    }
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn recv_bytes_into_fills_the_buffer_and_returns_the_length() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"abc").unwrap();
    a.send_bytes(b"wxyz").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(b.recv_bytes_into(&mut buf).unwrap(), 3);
    assert_eq!(&buf[..3], b"abc");
    let mut exact = [0u8; 4];
    assert_eq!(b.recv_bytes_into(&mut exact).unwrap(), 4);
    assert_eq!(&exact, b"wxyz");
}

#[test]
fn recv_bytes_into_a_short_buffer_returns_the_whole_message_in_the_error() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"too long").unwrap();
    a.send_bytes(b"next").unwrap();
    let mut buf = [0u8; 3];
    match b.recv_bytes_into(&mut buf) {
        Err(ConnectionError::BufferTooShort(message)) => assert_eq!(message, b"too long"),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    assert_eq!(b.recv_bytes().unwrap(), b"next");
}

#[test]
fn recv_bytes_into_handles_messages_larger_than_the_read_buffer() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let data = pattern(300 * 1024);
    std::thread::scope(|s| {
        s.spawn(|| {
            a.send_bytes(&data).unwrap();
            a.send_bytes(&data).unwrap();
        });
        let mut buf = vec![0u8; 400 * 1024];
        let n = b.recv_bytes_into(&mut buf).unwrap();
        assert_eq!(n, data.len());
        assert!(buf[..n] == data[..]);
        let mut short = vec![0u8; 1024];
        match b.recv_bytes_into(&mut short) {
            Err(ConnectionError::BufferTooShort(message)) => assert!(message == data),
            other => panic!("expected BufferTooShort, got {:?}", other.map(|_| ())),
        }
    });
}

// ---------------------------------------------------------------------------------------
// Wire format (Python's multiprocessing.connection framing)

#[test]
fn send_bytes_writes_a_big_endian_length_then_the_bytes() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    conn.send_bytes(b"hello").unwrap();
    let mut frame = [0u8; 9];
    raw.read_exact(&mut frame).unwrap();
    assert_eq!(&frame, b"\0\0\0\x05hello");
}

#[test]
fn send_writes_a_handle_count_then_the_postcard_encoding() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    conn.send(&300u16).unwrap();
    let mut frame = [0u8; 7];
    raw.read_exact(&mut frame).unwrap();
    // Length 3: no handles, then 300 as a postcard varint.
    assert_eq!(frame, [0, 0, 0, 3, 0, 0xac, 0x02]);
}

#[test]
fn long_form_length_header_is_accepted() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&(-1i32).to_be_bytes()).unwrap();
    raw.write_all(&5u64.to_be_bytes()).unwrap();
    raw.write_all(b"hello").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"hello");
}

// ---------------------------------------------------------------------------------------
// Limits and protocol errors

#[test]
fn default_max_message_size_is_one_gib() {
    let _g = common::guard();
    let (a, _b) = pipe().unwrap();
    assert_eq!(DEFAULT_MAX_MESSAGE_SIZE, 1 << 30);
    assert_eq!(a.max_message_size(), DEFAULT_MAX_MESSAGE_SIZE);
}

#[test]
fn ten_gib_length_header_is_too_large_at_once_without_allocating() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    raw.write_all(&(10u64 << 30).to_be_bytes()).unwrap();
    let started = Instant::now();
    let (result, largest) = largest_allocation_during(|| conn.recv_bytes());
    let took = started.elapsed();
    match result {
        Err(ConnectionError::TooLarge { len, limit }) => {
            assert_eq!(len, 10 << 30);
            assert_eq!(limit, DEFAULT_MAX_MESSAGE_SIZE);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
}

/// One way of receiving a message, its value discarded.
type Receive = fn(&mut Connection) -> Result<(), ConnectionError>;

#[test]
fn every_receive_checks_the_length_before_reading_the_body() {
    let _g = common::guard();
    let header = [[0xffu8; 4].as_slice(), &(10u64 << 30).to_be_bytes()].concat();
    let receives: [(&str, Receive); 3] = [
        ("recv", |c| c.recv::<Vec<u8>>().map(drop)),
        ("recv_bytes", |c| c.recv_bytes().map(drop)),
        ("recv_bytes_into", |c| {
            c.recv_bytes_into(&mut [0u8; 16]).map(drop)
        }),
    ];
    for (name, receive) in receives {
        let (mut raw, mut conn) = connection_with_raw_peer();
        raw.write_all(&header).unwrap();
        let (result, largest) = largest_allocation_during(|| receive(&mut conn));
        assert!(
            matches!(result, Err(ConnectionError::TooLarge { .. })),
            "{name}: {result:?}"
        );
        assert!(
            largest < 1 << 20,
            "{name} allocated {largest} bytes at once"
        );
    }
}

#[test]
fn connection_is_unusable_after_a_too_large_message() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    b.set_max_message_size(4);
    a.send_bytes(b"12345").unwrap();
    a.send_bytes(b"1234").unwrap();
    assert!(matches!(
        b.recv_bytes(),
        Err(ConnectionError::TooLarge { len: 5, limit: 4 })
    ));
    assert!(matches!(b.recv_bytes(), Err(ConnectionError::Broken)));
}

#[test]
fn set_max_message_size_limits_incoming_bodies() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    b.set_max_message_size(8);
    assert_eq!(b.max_message_size(), 8);
    a.send_bytes(&[1; 8]).unwrap();
    a.send_bytes(&[1; 9]).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), [1; 8]);
    assert!(matches!(
        b.recv_bytes(),
        Err(ConnectionError::TooLarge { len: 9, limit: 8 })
    ));
}

#[test]
fn announced_length_within_the_limit_allocates_only_as_data_arrives() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    conn.set_max_message_size(16 << 30);
    let arrives = 1 << 20;
    let writer = std::thread::spawn(move || {
        raw.write_all(&[0xff; 4]).unwrap();
        raw.write_all(&(10u64 << 30).to_be_bytes()).unwrap();
        raw.write_all(&vec![7u8; arrives]).unwrap();
        // Dropping `raw` ends the stream 10 GiB short.
    });
    let (result, largest) = largest_allocation_during(|| conn.recv_bytes());
    writer.join().unwrap();
    assert!(
        matches!(result, Err(ConnectionError::Truncated { .. })),
        "{result:?}"
    );
    // Memory follows the data that arrived (in steps of a few MiB), not the announced 10 GiB.
    assert!(largest <= 64 << 20, "allocated {largest} bytes at once");
}

#[test]
fn negative_length_header_is_malformed_and_breaks_the_connection() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&(-2i32).to_be_bytes()).unwrap();
    raw.write_all(b"\0\0\0\x01x").unwrap();
    assert!(matches!(
        conn.recv_bytes(),
        Err(ConnectionError::Malformed(_))
    ));
    assert!(matches!(conn.recv_bytes(), Err(ConnectionError::Broken)));
}

#[test]
fn stream_ending_inside_a_header_is_truncated() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&[0, 0]).unwrap();
    drop(raw);
    match conn.recv_bytes() {
        Err(ConnectionError::Truncated { expected, got }) => assert!(got < expected),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(matches!(conn.recv_bytes(), Err(ConnectionError::Broken)));
}

#[test]
fn stream_ending_inside_a_body_is_truncated() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&100u32.to_be_bytes()).unwrap();
    raw.write_all(&[9; 10]).unwrap();
    drop(raw);
    match conn.recv_bytes() {
        Err(ConnectionError::Truncated { expected, got }) => assert!(got < expected),
        other => panic!("expected Truncated, got {other:?}"),
    }
    assert!(matches!(conn.recv_bytes(), Err(ConnectionError::Broken)));
}

#[test]
fn truncated_counts_the_part_being_read_as_documented() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    raw.write_all(&100u32.to_be_bytes()).unwrap();
    raw.write_all(&[9; 10]).unwrap();
    drop(raw);
    assert!(
        matches!(
            conn.recv_bytes(),
            Err(ConnectionError::Truncated {
                expected: 100,
                got: 10
            })
        ),
        "see the documentation of ConnectionError::Truncated"
    );
}

#[test]
fn garbage_decoded_as_a_typed_value_is_a_codec_error() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    // No handles, then a string of length 3 that is not UTF-8.
    a.send_bytes(&[0, 3, 0xff, 0xfe, 0xfd]).unwrap();
    assert!(matches!(
        b.recv::<String>(),
        Err(ConnectionError::Codec(CodecError::Decode { .. }))
    ));
}

#[test]
fn codec_error_leaves_the_connection_usable() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(&[0, 3, 0xff, 0xfe, 0xfd]).unwrap();
    a.send(&"fine").unwrap();
    assert!(b.recv::<String>().is_err());
    assert_eq!(b.recv::<String>().unwrap(), "fine");
}

#[test]
fn length_prefix_larger_than_the_body_is_a_codec_error_without_allocating() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    // A Vec<u64> claiming 2^32 elements in a 6-byte body.
    a.send_bytes(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();
    let (result, largest) = largest_allocation_during(|| b.recv::<Vec<u64>>());
    assert!(
        matches!(result, Err(ConnectionError::Codec(_))),
        "{result:?}"
    );
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
}

#[test]
fn random_garbage_never_panics_the_receiver() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for i in 0..500 {
        let len = (next() % 48) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 && !body.is_empty() {
            body[0] = 0; // a valid handle count, so the value itself is garbage
        }
        a.send_bytes(&body).unwrap();
        let _ = b.recv::<Record>();
    }
    a.send(&"still in step").unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "still in step");
}

#[test]
fn empty_body_as_a_typed_value_is_malformed() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(b"").unwrap();
    assert!(matches!(b.recv::<u8>(), Err(ConnectionError::Malformed(_))));
}

#[test]
fn message_announcing_handles_that_did_not_arrive_is_malformed() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(&[3, 0]).unwrap();
    assert!(matches!(b.recv::<u8>(), Err(ConnectionError::Malformed(_))));
}

// ---------------------------------------------------------------------------------------
// Large messages

#[test]
fn fifty_mib_of_bytes_round_trip() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let data = pattern(50 << 20);
    std::thread::scope(|s| {
        s.spawn(|| a.send_bytes(&data).unwrap());
        let got = b.recv_bytes().unwrap();
        assert!(got == data, "the 50 MiB message differs");
    });
}

#[test]
fn fifty_mib_typed_value_round_trips() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let text: String = "0123456789abcdef".repeat((50 << 20) / 16);
    std::thread::scope(|s| {
        s.spawn(|| a.send(&text).unwrap());
        let got: String = b.recv().unwrap();
        assert!(got == text, "the 50 MiB string differs");
    });
}

#[test]
fn handles_sent_after_a_message_larger_than_the_read_buffer_arrive() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (mut near, far) = pipe().unwrap();
    let big = pattern(200 * 1024);
    std::thread::scope(|s| {
        s.spawn(|| {
            a.send_bytes(&big).unwrap();
            a.send(&far).unwrap();
            a.send(&big).unwrap();
        });
        assert!(b.recv_bytes().unwrap() == big);
        let mut received: Connection = b.recv().unwrap();
        assert!(b.recv::<Vec<u8>>().unwrap() == big);
        near.send(&"through the passed handle").unwrap();
        assert_eq!(
            received.recv::<String>().unwrap(),
            "through the passed handle"
        );
    });
}

#[test]
fn message_larger_than_the_read_buffer_can_carry_handles() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (mut near, far) = pipe().unwrap();
    let big = pattern(200 * 1024);
    std::thread::scope(|s| {
        s.spawn(|| a.send(&(&big, &far, 42u8)).unwrap());
        let (data, mut received, n): (Vec<u8>, Connection, u8) = b.recv().unwrap();
        assert!(data == big);
        assert_eq!(n, 42);
        received.send(&"back").unwrap();
        assert_eq!(near.recv::<String>().unwrap(), "back");
    });
}

#[test]
fn buffered_messages_with_handles_each_get_their_own() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let mut nears = Vec::new();
    for i in 0..20u32 {
        let (near, far) = pipe().unwrap();
        a.send_bytes(b"no handle here").unwrap();
        a.send(&(i, far)).unwrap();
        nears.push(near);
    }
    for (i, near) in nears.iter_mut().enumerate() {
        assert_eq!(b.recv_bytes().unwrap(), b"no handle here");
        let (n, mut far): (u32, Connection) = b.recv().unwrap();
        assert_eq!(n as usize, i);
        far.send(&n).unwrap();
        assert_eq!(near.recv::<u32>().unwrap(), n);
    }
}

#[test]
fn handles_of_a_message_read_as_bytes_are_not_given_to_a_later_message() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let (_first_near, first_far) = pipe().unwrap();
    let (mut second_near, second_far) = pipe().unwrap();
    a.send(&first_far).unwrap();
    a.send(&second_far).unwrap();
    // The first message is read raw: its handle is not wanted.
    let _ = b.recv_bytes().unwrap();
    let mut received: Connection = b.recv().unwrap();
    received.send(&"which pipe?").unwrap();
    assert_eq!(
        second_near
            .recv_timeout::<String>(Duration::from_secs(1))
            .unwrap()
            .as_deref(),
        Some("which pipe?"),
        "the second message delivered the first message's handle"
    );
}

// ---------------------------------------------------------------------------------------
// Polling and waiting

#[test]
fn poll_times_out_then_sees_a_message() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    let started = Instant::now();
    assert!(!b.poll(Some(Duration::from_millis(50))).unwrap());
    assert!(started.elapsed() >= Duration::from_millis(50));
    a.send(&1u8).unwrap();
    assert!(b.poll(Some(PROMPTLY)).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    assert!(!b.poll(Some(Duration::ZERO)).unwrap());
}

#[test]
fn poll_sees_messages_already_buffered() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send(&1u8).unwrap();
    a.send(&2u8).unwrap();
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    // The second message was read from the socket with the first one.
    assert!(b.poll(Some(Duration::ZERO)).unwrap());
    assert_eq!(b.recv::<u8>().unwrap(), 2);
}

#[test]
fn recv_timeout_returns_on_time_when_only_part_of_a_message_has_arrived() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    // A whole frame and the first two bytes of the next one, in one write.
    raw.write_all(b"\0\0\0\x01x\0\0").unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"x");
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let started = Instant::now();
        let result = conn.recv_timeout::<u8>(Duration::from_millis(100));
        tx.send((result.map_err(|e| e.to_string()), started.elapsed()))
            .unwrap();
    });
    let outcome = rx.recv_timeout(PROMPTLY);
    // Complete the frame so the receiver thread ends whatever happened (if it already
    // returned, it dropped its end and this write fails: that is fine).
    let _ = raw.write_all(b"\0\x02\0\x07");
    receiver.join().unwrap();
    let (result, took) = outcome.expect("recv_timeout(100 ms) was still blocked after 5 s");
    assert_eq!(result, Ok(None));
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn poll_reports_end_of_file_as_ready() {
    let _g = common::guard();
    let (a, mut b) = pipe().unwrap();
    drop(a);
    assert!(b.poll(Some(PROMPTLY)).unwrap());
}

#[test]
fn recv_timeout_returns_none_then_the_message() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    assert_eq!(
        b.recv_timeout::<u8>(Duration::from_millis(20)).unwrap(),
        None
    );
    a.send(&9u8).unwrap();
    assert_eq!(b.recv_timeout::<u8>(PROMPTLY).unwrap(), Some(9));
}

#[test]
fn wait_returns_the_indices_of_ready_connections() {
    let _g = common::guard();
    let (mut a0, b0) = pipe().unwrap();
    let (_a1, b1) = pipe().unwrap();
    let (mut a2, b2) = pipe().unwrap();
    a0.send(&0u8).unwrap();
    a2.send(&2u8).unwrap();
    assert_eq!(wait(&[&b0, &b1, &b2], Some(PROMPTLY)).unwrap(), vec![0, 2]);
}

#[test]
fn wait_returns_an_empty_list_on_timeout() {
    let _g = common::guard();
    let (_a, b) = pipe().unwrap();
    let started = Instant::now();
    assert!(
        wait(&[&b], Some(Duration::from_millis(50)))
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn wait_counts_end_of_file_as_ready() {
    let _g = common::guard();
    let (a, b) = pipe().unwrap();
    let (_c, d) = pipe().unwrap();
    drop(a);
    assert_eq!(wait(&[&d, &b], Some(PROMPTLY)).unwrap(), vec![1]);
}

// ---------------------------------------------------------------------------------------
// End of file and closed peers

#[test]
fn recv_after_the_peer_closed_is_eof() {
    let _g = common::guard();
    let (a, mut b) = pipe().unwrap();
    drop(a);
    assert!(matches!(b.recv::<u8>(), Err(ConnectionError::Eof)));
    assert!(matches!(b.recv_bytes(), Err(ConnectionError::Eof)));
    assert!(matches!(
        b.recv_bytes_into(&mut [0; 4]),
        Err(ConnectionError::Eof)
    ));
}

#[test]
fn close_makes_the_peer_see_eof() {
    let _g = common::guard();
    let (a, mut b) = pipe().unwrap();
    a.close();
    assert!(matches!(b.recv_bytes(), Err(ConnectionError::Eof)));
}

#[test]
fn messages_sent_before_closing_are_received_before_eof() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send(&"last words").unwrap();
    drop(a);
    assert_eq!(b.recv::<String>().unwrap(), "last words");
    assert!(matches!(b.recv::<String>(), Err(ConnectionError::Eof)));
}

#[test]
fn send_to_a_closed_peer_is_peer_closed() {
    let _g = common::guard();
    let (mut a, b) = pipe().unwrap();
    drop(b);
    assert!(matches!(a.send(&1u8), Err(ConnectionError::PeerClosed)));
    assert!(matches!(
        a.send_bytes(&pattern(1 << 20)),
        Err(ConnectionError::PeerClosed)
    ));
}

#[test]
fn peer_closing_with_unread_messages_gives_peer_closed_and_eof() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send(&"never read").unwrap();
    b.send(&"sent before closing").unwrap();
    drop(b);
    assert!(matches!(a.send(&1u8), Err(ConnectionError::PeerClosed)));
    assert_eq!(a.recv::<String>().unwrap(), "sent before closing");
    assert!(matches!(a.recv::<String>(), Err(ConnectionError::Eof)));
}

#[test]
fn send_to_a_closed_peer_does_not_raise_sigpipe() {
    let _g = common::guard();
    // In a child that restores SIGPIPE's default action (which would end it), unlike this
    // test process, where the Rust runtime ignores SIGPIPE.
    let child = ProcessBuilder::new()
        .fork(|| {
            // SAFETY: restoring a default signal action has no preconditions.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let (mut a, b) = pipe().unwrap();
            drop(b);
            let typed = a.send(&1u8);
            let raw = a.send_bytes(&pattern(1 << 20));
            format!("{typed:?} {raw:?}")
        })
        .unwrap();
    assert_eq!(child.join().unwrap(), "Err(PeerClosed) Err(PeerClosed)");
}

fn say_bye(mut conn: Connection) {
    conn.send(&"bye").unwrap();
}

fn recv_after_a_child_peer_exited_is_eof(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = ProcessBuilder::new()
        .start_method(method)
        .start(say_bye, there)
        .unwrap();
    assert_eq!(here.recv::<String>().unwrap(), "bye");
    child.join().unwrap();
    assert!(matches!(here.recv::<String>(), Err(ConnectionError::Eof)));
}

fn send_to_a_child_peer_that_exited_is_peer_closed(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = ProcessBuilder::new()
        .start_method(method)
        .start(say_bye, there)
        .unwrap();
    assert_eq!(here.recv::<String>().unwrap(), "bye");
    child.join().unwrap();
    assert!(matches!(here.send(&1u8), Err(ConnectionError::PeerClosed)));
}

// ---------------------------------------------------------------------------------------
// One-way pipes

#[test]
fn oneway_pipe_carries_messages_from_writer_to_reader() {
    let _g = common::guard();
    let (mut rx, mut tx) = pipe_oneway().unwrap();
    assert!(rx.readable() && !rx.writable());
    assert!(tx.writable() && !tx.readable());
    tx.send(&42u8).unwrap();
    tx.send_bytes(b"raw").unwrap();
    assert_eq!(rx.recv::<u8>().unwrap(), 42);
    assert_eq!(rx.recv_bytes().unwrap(), b"raw");
}

#[test]
fn reader_of_a_oneway_pipe_cannot_send() {
    let _g = common::guard();
    let (mut rx, _tx) = pipe_oneway().unwrap();
    assert!(matches!(
        rx.send(&1u8),
        Err(ConnectionError::WrongDirection(_))
    ));
    assert!(matches!(
        rx.send_bytes(b"x"),
        Err(ConnectionError::WrongDirection(_))
    ));
    assert!(matches!(
        rx.send_bytes_range(b"x", 0, None),
        Err(ConnectionError::WrongDirection(_))
    ));
}

#[test]
fn writer_of_a_oneway_pipe_cannot_receive() {
    let _g = common::guard();
    let (_rx, mut tx) = pipe_oneway().unwrap();
    assert!(matches!(
        tx.recv::<u8>(),
        Err(ConnectionError::WrongDirection(_))
    ));
    assert!(matches!(
        tx.recv_bytes(),
        Err(ConnectionError::WrongDirection(_))
    ));
    assert!(matches!(
        tx.recv_bytes_into(&mut [0; 4]),
        Err(ConnectionError::WrongDirection(_))
    ));
    assert!(matches!(
        tx.poll(Some(Duration::ZERO)),
        Err(ConnectionError::WrongDirection(_))
    ));
}

#[test]
fn reader_of_a_oneway_pipe_sees_eof_when_the_writer_closes() {
    let _g = common::guard();
    let (mut rx, tx) = pipe_oneway().unwrap();
    drop(tx);
    assert!(matches!(rx.recv::<u8>(), Err(ConnectionError::Eof)));
}

per_start_method!(
    recv_after_a_child_peer_exited_is_eof,
    send_to_a_child_peer_that_exited_is_peer_closed,
);

#[test]
fn recv_timeout_keeps_a_partial_message_for_the_next_receive() {
    let _g = common::guard();
    let (mut raw, mut conn) = connection_with_raw_peer();
    // Header and handle count of a typed u8 message; its value byte comes later.
    raw.write_all(b"\0\0\0\x02\0").unwrap();
    assert_eq!(
        conn.recv_timeout::<u8>(Duration::from_millis(50)).unwrap(),
        None
    );
    raw.write_all(&[7]).unwrap();
    assert_eq!(conn.recv_timeout::<u8>(PROMPTLY).unwrap(), Some(7));
}

#[test]
fn recv_bytes_max_rejects_a_longer_message_and_breaks_the_connection() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    a.send_bytes(&[1; 10]).unwrap();
    assert!(matches!(
        b.recv_bytes_max(9),
        Err(ConnectionError::TooLarge { len: 10, limit: 9 })
    ));
    assert!(matches!(b.recv_bytes(), Err(ConnectionError::Broken)));
    // The connection's own limit is unchanged by the call.
    assert_eq!(b.max_message_size(), multiproc::DEFAULT_MAX_MESSAGE_SIZE);
}

#[test]
fn recv_timeout_receives_the_handles_of_the_message() {
    let _g = common::guard();
    let (mut a, mut b) = multiproc::pipe().unwrap();
    let (x, mut y) = multiproc::pipe().unwrap();
    a.send(&(7u8, x)).unwrap();
    let (n, mut x): (u8, multiproc::Connection) = b
        .recv_timeout(Duration::from_secs(30))
        .unwrap()
        .expect("the message was sent before");
    assert_eq!(n, 7);
    x.send(&"through the received end").unwrap();
    assert_eq!(y.recv::<String>().unwrap(), "through the received end");
}
