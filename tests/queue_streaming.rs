//! Large items are encoded straight into the queue's buffer: once an item's encoding passes
//! 64 KiB, the rest of it is written by the encoder into its place in shared memory (one copy
//! instead of two). Whatever the size, whatever the encoding does part-way (fails, panics,
//! carries an OS handle, finds no room before its deadline, puts into the same queue), an
//! item is either put whole or not at all, and the queue goes on.
//!
//! Sizes are chosen around the limits that matter: the 64 KiB buffered prefix, the chunk
//! size (a quarter of the buffer) and the buffer itself.

#[macro_use]
mod common;

use common::children::{LONG, retyped, within};

use std::cell::RefCell;
use std::time::Duration;

use multiproc::{CodecError, JoinableQueue, Queue, QueueError};
use serde::ser::{Error as _, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_bytes::{ByteBuf, Bytes};

const KIB: usize = 1 << 10;
const MIB_4: usize = 4 << 20;
/// How much of an encoding is buffered before the rest goes straight into the ring.
const SPILL: usize = 64 * KIB;

/// `len` bytes, byte `i` being `(i * 7 + seed) % 251`: a piece lost, repeated or misplaced
/// anywhere shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 7 + usize::from(seed)) % 251) as u8)
        .collect()
}

/// What a [`Pieces`] does after `at` pieces.
#[derive(Clone, Copy)]
enum Then {
    Finish,
    Fail(usize),
    Panic(usize),
}

/// An item encoded as a sequence of byte strings, written piece by piece (as a large
/// structure is), that can fail or panic part-way.
struct Pieces {
    pieces: usize,
    piece: usize,
    seed: u8,
    then: Then,
}

impl Serialize for Pieces {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.pieces))?;
        let piece = pattern(self.piece, self.seed);
        for i in 0..self.pieces {
            match self.then {
                Then::Fail(at) if at == i => return Err(S::Error::custom("refused part-way")),
                Then::Panic(at) if at == i => panic!("panicked part-way"),
                _ => {}
            }
            seq.serialize_element(Bytes::new(&piece))?;
        }
        seq.end()
    }
}

fn pieces(pieces: usize, piece: usize, seed: u8, then: Then) -> Pieces {
    Pieces {
        pieces,
        piece,
        seed,
        then,
    }
}

#[track_caller]
fn assert_pieces(got: &[ByteBuf], pieces: usize, piece: usize, seed: u8) {
    assert_eq!(got.len(), pieces, "number of pieces (seed {seed})");
    let want = pattern(piece, seed);
    for (i, p) in got.iter().enumerate() {
        assert!(p[..] == want[..], "piece {i} of the item with seed {seed}");
    }
}

/// Put `items` from another thread while this one takes them: sizes beyond the buffer only
/// go through while a consumer reads.
fn put_while_getting<T>(q: &Queue<T>, items: Vec<T>, mut check: impl FnMut(usize, T))
where
    T: Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let producer = q.clone();
    let n = items.len();
    let t = std::thread::spawn(move || {
        for item in items {
            producer.put(&item).expect("put");
        }
    });
    for i in 0..n {
        let got = q.get_timeout(LONG).expect("get").expect("an item");
        check(i, got);
    }
    t.join().expect("producer thread");
}

#[test]
fn byte_strings_of_every_size_around_the_limits_arrive_intact_and_in_order() {
    let _g = common::guard();
    // 256 KiB buffer: 64 KiB chunks. Sizes around the buffered prefix, the chunk, the
    // buffer, and far beyond it.
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(256 * KIB).build().unwrap();
    let sizes = [
        0,
        1,
        SPILL - 4,
        SPILL - 3,
        SPILL - 2,
        SPILL,
        SPILL + 1,
        64 * KIB + 13,
        128 * KIB - 3,
        128 * KIB,
        200 * KIB,
        256 * KIB,
        300 * KIB,
        3 * 1024 * KIB + 5,
    ];
    let items: Vec<ByteBuf> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| ByteBuf::from(pattern(n, i as u8)))
        .collect();
    put_while_getting(&q, items, |i, got| {
        assert!(
            got[..] == pattern(sizes[i], i as u8)[..],
            "item {i} of {} bytes",
            sizes[i]
        );
    });
    assert!(q.empty());
    assert_eq!(q.qsize(), 0);
}

#[test]
fn large_structures_written_in_small_pieces_arrive_intact() {
    let _g = common::guard();
    let q: Queue<Vec<u64>> = Queue::builder().buffer_size(256 * KIB).build().unwrap();
    // Varints of one to ten bytes, each its own write into the ring.
    let numbers = |n: usize, seed: u64| -> Vec<u64> {
        (0..n as u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed) >> (i % 64))
            .collect()
    };
    let counts = [8 * KIB, 20 * KIB, 100 * KIB];
    let items: Vec<Vec<u64>> = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| numbers(n, i as u64))
        .collect();
    put_while_getting(&q, items, |i, got| {
        assert!(got == numbers(counts[i], i as u64), "item {i}");
    });
    assert!(q.empty());
}

#[test]
fn an_item_whose_encoding_fails_part_way_is_not_put() {
    let _g = common::guard();
    let q: JoinableQueue<Vec<ByteBuf>> = Queue::<Vec<ByteBuf>>::builder()
        .buffer_size(MIB_4)
        .build_joinable()
        .unwrap();
    let raw: JoinableQueue<Pieces> = retyped(&q);
    raw.put(pieces(2, 100, 1, Then::Finish)).unwrap();
    // 200 KiB written (some of it past the buffered prefix, some published), then an error.
    match raw.put(pieces(1000, 1000, 2, Then::Fail(200))) {
        // (postcard keeps no message of a `Serialize` impl's own error)
        Err(QueueError::Codec(CodecError::Encode { type_name, .. })) => {
            assert!(type_name.contains("Pieces"), "{type_name}");
        }
        other => panic!("expected the encoder's error, got {other:?}"),
    }
    // Across several chunks (the buffer's chunks are 1 MiB).
    assert!(raw.put(pieces(3000, 1000, 3, Then::Fail(2500))).is_err());
    raw.put(pieces(300, 1000, 4, Then::Finish)).unwrap();

    assert_eq!(q.qsize(), 2);
    assert_eq!(q.unfinished_tasks(), 2);
    assert_pieces(&q.get_nowait().unwrap().expect("an item"), 2, 100, 1);
    assert_pieces(&q.get_nowait().unwrap().expect("an item"), 300, 1000, 4);
    assert!(q.get_nowait().unwrap().is_none());
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn an_item_whose_encoding_panics_part_way_is_not_put_and_the_queue_goes_on() {
    let _g = common::guard();
    let q: Queue<Vec<ByteBuf>> = Queue::builder().buffer_size(MIB_4).build().unwrap();
    let raw: Queue<Pieces> = retyped(&q);
    for (at, seed) in [(30, 1), (100, 2), (2500, 3)] {
        let put = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            raw.put(pieces(3000, 1000, seed, Then::Panic(at)))
        }));
        assert!(put.is_err(), "the panic reaches the caller");
    }
    assert_eq!(q.qsize(), 0);
    assert!(q.get_nowait().unwrap().is_none());
    // The put lock was released and nothing of the items is left.
    raw.put(pieces(300, 1000, 4, Then::Finish)).unwrap();
    raw.put(pieces(1, 10, 5, Then::Finish)).unwrap();
    assert_pieces(&q.get_nowait().unwrap().expect("an item"), 300, 1000, 4);
    assert_pieces(&q.get_nowait().unwrap().expect("an item"), 1, 10, 5);
    assert!(q.empty());
}

#[test]
fn a_large_put_that_finds_no_room_part_way_before_its_deadline_puts_none_of_it() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(256 * KIB).build().unwrap();
    for seed in 1..=3 {
        q.put(ByteBuf::from(pattern(60 * KIB, seed))).unwrap();
    }
    // About 76 KiB free: the first 64 KiB chunk of this item goes out, the rest cannot.
    let started = std::time::Instant::now();
    let put = q.put_timeout(
        ByteBuf::from(pattern(300 * KIB, 4)),
        Duration::from_millis(50),
    );
    assert!(!put.unwrap(), "the item did not fit");
    assert!(started.elapsed() < LONG);
    assert!(!q.put_nowait(ByteBuf::from(pattern(300 * KIB, 5))).unwrap());
    assert_eq!(q.qsize(), 3);
    for seed in 1..=3 {
        let got = q.get_nowait().unwrap().expect("an item");
        assert!(got[..] == pattern(60 * KIB, seed)[..], "item {seed}");
    }
    assert!(
        q.get_nowait().unwrap().is_none(),
        "nothing of the large items"
    );
    assert_eq!(q.qsize(), 0);
    // Room again: the same item goes through whole.
    q.put(ByteBuf::from(pattern(200 * KIB, 6))).unwrap();
    assert!(q.get_nowait().unwrap().expect("an item")[..] == pattern(200 * KIB, 6)[..]);
}

#[test]
fn a_large_item_carrying_an_os_handle_is_refused_and_not_put() {
    let _g = common::guard();
    let q: Queue<(ByteBuf, multiproc::Connection)> = Queue::new().unwrap();
    let (a, _b) = multiproc::pipe().unwrap();
    // The handle comes after 200 KiB already written into the ring.
    let item = (ByteBuf::from(pattern(200 * KIB, 1)), a);
    assert!(matches!(q.put(&item), Err(QueueError::Codec(_))));
    assert_eq!(q.qsize(), 0);
    let bytes: Queue<ByteBuf> = retyped(&q);
    bytes.put(ByteBuf::from(pattern(10, 2))).unwrap();
    assert!(bytes.get_nowait().unwrap().expect("an item")[..] == pattern(10, 2)[..]);
}

thread_local! {
    static SAME_QUEUE: RefCell<Option<Queue<Reentrant>>> = const { RefCell::new(None) };
    /// What the nested put returned (postcard keeps no message of an encoding's own error).
    static NESTED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An item whose encoding puts another item into the queue it is being put into.
struct Reentrant(usize);

impl Serialize for Reentrant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let q = SAME_QUEUE.with(|q| q.borrow().clone());
        if let (Some(q), true) = (q, self.0 > 0) {
            // Past the buffered prefix first, so that the outer put holds the put lock.
            let mut seq = serializer.serialize_seq(Some(2))?;
            seq.serialize_element(Bytes::new(&pattern(self.0, 1)))?;
            let nested = q.put(Reentrant(0)).map_err(|e| e.to_string());
            NESTED.with(|n| *n.borrow_mut() = nested.clone().err());
            nested.map_err(S::Error::custom)?;
            seq.serialize_element(&())?;
            return seq.end();
        }
        serializer.serialize_unit()
    }
}

#[test]
fn an_encoding_that_puts_into_the_same_queue_gets_an_error_not_a_deadlock() {
    let _g = common::guard();
    let q: Queue<Reentrant> = Queue::new().unwrap();
    SAME_QUEUE.with(|s| *s.borrow_mut() = Some(q.clone()));
    let q2 = q.clone();
    let (outer, nested) = within(LONG, move || {
        SAME_QUEUE.with(|s| *s.borrow_mut() = Some(q2.clone()));
        let outer = q2.put(Reentrant(200 * KIB)).map_err(|e| e.to_string());
        (outer, NESTED.with(|n| n.borrow_mut().take()))
    });
    assert!(outer.is_err(), "the item was refused");
    let nested = nested.expect("the nested put failed");
    assert!(nested.contains("already inside an operation"), "{nested}");
    assert_eq!(q.qsize(), 0);
    // A small item's encoding runs before the lock is taken: there the nested put works.
    q.put(Reentrant(10)).unwrap();
    assert_eq!(q.qsize(), 2);
    SAME_QUEUE.with(|s| *s.borrow_mut() = None);
}
