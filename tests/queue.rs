//! Specification of the process-safe queues: `Queue`, `SimpleQueue` and `JoinableQueue`.
//!
//! Tests that involve other processes either run once per start method (`fork::name`,
//! `spawn::name`, `forkserver::name`: the queue reaches the child in its argument) or use the
//! fork start method when the start method is not what they are about.
//!
//! No test can hang: a call that waits for another process has a timeout (`LONG`, reached
//! only if the library is broken) or runs on a thread that the test waits for with a
//! timeout; calls without a timeout are made only where they need not wait (the item or the
//! room is there). Children are joined with a timeout.
//!
//! The tests about processes that die in the middle of a `put` or a `get` need the victim to
//! be at a known point inside the call. They find it from the outside: a process (or thread)
//! whose `put` has begun (`qsize()` went up) and that sleeps (`S` in `/proc/<id>/stat`) waits
//! for room, as nothing else inside `put` sleeps; a consumer that sleeps inside `get` has
//! taken everything published so far. `SIGSTOP` then keeps a producer from going
//! on while the consumer takes part of its item.

#[macro_use]
mod common;

use common::{LATE, assert_on_time};

use common::children::{LONG, join, kill, retyped, start, within};

use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc::{
    Connection, ConnectionError, Event, JoinableQueue, Lock, Process, ProcessBuilder, Queue,
    QueueError, SimpleQueue, StartMethod, pipe,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The timeout given to calls whose timing is under test.
const SHORT: Duration = Duration::from_millis(100);
/// How late a call may return after its timeout. Generous for a loaded 2-core machine; a call
/// that ignored its timeout would run into `LONG` instead.
/// How soon something done by another process (a kill, a get that makes room) must be
/// noticed. Milliseconds are expected (the documented repair delay is about 20 ms); the bound
/// is generous for a loaded machine and well below `LONG`.
const PROMPT: Duration = Duration::from_secs(5);

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Helpers

/// The variant of a queue error, to compare and print.
fn error_kind(e: &QueueError) -> &'static str {
    match e {
        QueueError::Closed => "Closed",
        QueueError::TaskDoneTooManyTimes => "TaskDoneTooManyTimes",
        QueueError::Codec(_) => "Codec",
        QueueError::Io(_) => "Io",
        _ => "another error",
    }
}

/// A queue operation's outcome: done (`"Ok"`), timed out (`"Empty"` for a get that found no
/// item, `"Full"` for a put that found no room), or an error's [`error_kind`].
trait Outcome {
    fn kind(&self) -> &'static str;
}

impl<T> Outcome for Result<Option<T>, QueueError> {
    fn kind(&self) -> &'static str {
        match self {
            Ok(Some(_)) => "Ok",
            Ok(None) => "Empty",
            Err(e) => error_kind(e),
        }
    }
}

impl Outcome for Result<bool, QueueError> {
    fn kind(&self) -> &'static str {
        match self {
            Ok(true) => "Ok",
            Ok(false) => "Full",
            Err(e) => error_kind(e),
        }
    }
}

/// An operation without a timeout (`put`, `get` of a `u32`, `task_done`).
macro_rules! untimed_outcome {
    ($($t:ty),*) => {$(
        impl Outcome for Result<$t, QueueError> {
            fn kind(&self) -> &'static str {
                match self {
                    Ok(_) => "Ok",
                    Err(e) => error_kind(e),
                }
            }
        }
    )*};
}
untimed_outcome!((), u32);

fn kind(r: &impl Outcome) -> &'static str {
    r.kind()
}

/// `r` did not succeed, as `expected` (a [`kind`]); the message shows what it was otherwise.
#[track_caller]
fn assert_fails(r: impl Outcome, expected: &str) {
    assert_eq!(kind(&r), expected, "expected {expected}, got {}", kind(&r));
}

/// `len` bytes, byte `i` being `(i + seed) % 251`: a period prime to every chunk and page
/// size, so a piece lost, repeated or misplaced anywhere shows.
fn pattern(len: usize, seed: u8) -> ByteBuf {
    let mut bytes = Vec::with_capacity(len.max(251));
    bytes.extend((0..251u32).map(|i| ((i + u32::from(seed)) % 251) as u8));
    // Doubling copies keep the period (the length stays a multiple of 251 until the last).
    while bytes.len() < len {
        let n = bytes.len().min(len - bytes.len());
        bytes.extend_from_within(..n);
    }
    bytes.truncate(len);
    ByteBuf::from(bytes)
}

/// `bytes` is `pattern(len, seed)`; reports the first difference (never the whole buffer).
#[track_caller]
fn assert_pattern(bytes: &[u8], len: usize, seed: u8) {
    assert_eq!(bytes.len(), len, "length of the item (seed {seed})");
    let block = pattern(len.min(251 << 12), seed);
    for (n, piece) in bytes.chunks(block.len().max(1)).enumerate() {
        if piece != &block[..piece.len()] {
            let i = piece
                .iter()
                .zip(block.iter())
                .position(|(a, b)| a != b)
                .unwrap();
            panic!(
                "item of {len} bytes (seed {seed}): byte {} is {}, expected {}",
                n * block.len() + i,
                piece[i],
                block[i]
            );
        }
    }
}

fn wait_set(event: &Event, what: &str) {
    assert!(event.wait_timeout(LONG), "{what}: not within {LONG:?}");
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Wait until the process or thread `tid` is in `state` (`S`: asleep, `T`: stopped).
#[track_caller]
fn wait_for_state(tid: u32, state: char, what: &str) {
    let reached = common::wait_until(Instant::now() + LONG, || {
        common::proc_stat(tid).is_some_and(|p| p.state == state)
    });
    assert!(
        reached,
        "{what}: {tid} not in state {state} within {LONG:?} (now {:?})",
        common::proc_stat(tid).map(|p| p.state)
    );
}

/// Send `signal` to our child `pid`.
fn signal(pid: u32, signal: i32) {
    let stat = common::proc_stat(pid).expect("the child runs");
    common::kill_exact(&stat, signal);
}

/// `SIGSTOP` the child and wait until it is stopped.
fn stop(pid: u32) {
    signal(pid, libc::SIGSTOP);
    wait_for_state(pid, 'T', "stopping a child");
}

/// A field of `/proc/self/status` in kB (`VmRSS`, `VmHWM`...).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Run `f` on a thread that first sends its thread id; returns the id and a receiver for
/// `f`'s result.
fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> (u32, mpsc::Receiver<T>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tid_tx.send(gettid()).unwrap();
        let _ = tx.send(f());
    });
    (tid_rx.recv().unwrap(), rx)
}

per_start_method!(
    queue_passed_to_a_child_carries_items_both_ways,
    queue_sent_over_a_connection_to_a_running_child_carries_items,
    queue_returned_by_a_child_keeps_its_items,
    bounded_put_blocks_until_a_consumer_in_another_process_makes_room,
    joinable_queue_join_returns_once_workers_in_other_processes_marked_every_item_done,
    simple_queue_carries_items_between_processes,
    simple_queue_close_fails_put_and_get_on_that_handle_while_another_process_goes_on,
    items_put_just_before_the_producer_returns_are_all_there,
    items_put_just_before_the_producer_exits_are_all_there,
);

// ---------------------------------------------------------------------------------------------
// One process: FIFO order, sizes, timeouts

#[test]
fn items_come_out_in_the_order_they_were_put() {
    let _g = common::guard();
    let q = Queue::new().unwrap();
    for i in 0..1000u32 {
        q.put(i).unwrap();
    }
    let got: Vec<u32> = (0..1000)
        .map(|_| q.get_nowait().unwrap().expect("an item"))
        .collect();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn put_takes_the_item_by_value_or_by_reference() {
    let _g = common::guard();
    let q: Queue<String> = Queue::new().unwrap();
    let kept = "by reference".to_string();
    q.put("by value".to_string()).unwrap();
    q.put(&kept).unwrap();
    assert!(q.put_nowait(&kept).unwrap());
    assert!(q.put_timeout(&kept, SHORT).unwrap());
    assert_eq!(kept, "by reference");
    assert_eq!(q.get().unwrap(), "by value");
    for _ in 0..3 {
        assert_eq!(q.get().unwrap(), "by reference");
    }
}

#[test]
fn qsize_empty_full_and_maxsize_follow_puts_and_gets() {
    let _g = common::guard();
    let q = Queue::with_maxsize(3).unwrap();
    assert_eq!(
        (q.maxsize(), q.qsize(), q.empty(), q.full()),
        (3, 0, true, false)
    );
    q.put(1u8).unwrap();
    assert_eq!((q.qsize(), q.empty(), q.full()), (1, false, false));
    q.put(2).unwrap();
    q.put(3).unwrap();
    assert_eq!((q.qsize(), q.empty(), q.full()), (3, false, true));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!((q.qsize(), q.full()), (2, false));
    q.get().unwrap();
    q.get().unwrap();
    assert_eq!((q.qsize(), q.empty(), q.full()), (0, true, false));

    let unbounded = Queue::new().unwrap();
    assert_eq!(unbounded.maxsize(), 0);
    for i in 0..10_000u32 {
        unbounded.put(i).unwrap();
    }
    assert_eq!((unbounded.qsize(), unbounded.full()), (10_000, false));
}

#[test]
fn buffer_size_is_rounded_up_to_whole_pages() {
    let _g = common::guard();
    let size = |bytes| {
        Queue::<u8>::builder()
            .buffer_size(bytes)
            .build()
            .unwrap()
            .buffer_size()
    };
    assert_eq!(
        [size(0), size(1), size(4096), size(5000), size(MIB)],
        [4096, 4096, 4096, 8192, MIB]
    );
    assert_eq!(
        Queue::<u8>::new().unwrap().buffer_size(),
        multiproc::DEFAULT_BUFFER_SIZE
    );
}

#[test]
fn put_nowait_on_a_full_queue_is_full_and_puts_nothing() {
    let _g = common::guard();
    let q = Queue::with_maxsize(2).unwrap();
    assert!(q.put_nowait(1u8).unwrap());
    assert!(q.put_nowait(2).unwrap());
    assert_fails(q.put_nowait(3), "Full");
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get().unwrap(), 1);
    assert!(q.put_nowait(4).unwrap());
    assert_eq!([q.get().unwrap(), q.get().unwrap()], [2, 4]);
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn get_nowait_on_an_empty_queue_is_empty() {
    let _g = common::guard();
    let q = Queue::<u8>::new().unwrap();
    let started = Instant::now();
    assert_fails(q.get_nowait(), "Empty");
    assert!(started.elapsed() < LATE);
    q.put(1).unwrap();
    assert_eq!(q.get_nowait().unwrap().expect("an item"), 1);
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn get_timeout_on_an_empty_queue_is_empty_on_time() {
    let _g = common::guard();
    let q = Queue::<u8>::new().unwrap();
    let started = Instant::now();
    let r = q.get_timeout(SHORT);
    let waited = started.elapsed();
    assert_fails(r, "Empty");
    assert_on_time(waited, SHORT);
}

#[test]
fn put_timeout_on_a_full_bounded_queue_is_full_on_time() {
    let _g = common::guard();
    let q = Queue::with_maxsize(1).unwrap();
    q.put(1u8).unwrap();
    let started = Instant::now();
    let r = q.put_timeout(2, SHORT);
    let waited = started.elapsed();
    assert_fails(r, "Full");
    assert_on_time(waited, SHORT);
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get().unwrap(), 1);
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn put_timeout_on_a_full_buffer_is_full_on_time_and_puts_nothing() {
    let _g = common::guard();
    // Each 1000-byte item takes a 1024-byte chunk (header, length, padding): four fill the
    // ring.
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(4096).build().unwrap();
    let mut put = 0u8;
    while q.put_nowait(pattern(1000, put)).expect("put_nowait") {
        put += 1;
        assert!(
            put < 100,
            "an unbounded queue with a 4 KiB buffer took 100 KB"
        );
    }
    assert!(put >= 1);
    let started = Instant::now();
    let r = q.put_timeout(pattern(1000, 99), SHORT);
    let waited = started.elapsed();
    assert_fails(r, "Full");
    assert_on_time(waited, SHORT);
    assert_eq!(q.qsize(), put as usize);
    for seed in 0..put {
        assert_pattern(&q.get_nowait().unwrap().expect("an item"), 1000, seed);
    }
    assert_fails(q.get_nowait(), "Empty");
    q.put(pattern(1000, 7)).unwrap();
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 1000, 7);
}

#[test]
fn put_timeout_that_fits_only_part_of_a_large_item_puts_none_of_it() {
    let _g = common::guard();
    // Items larger than a quarter of the buffer go in pieces: this one starts, then finds no
    // room for the rest.
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(4096).build().unwrap();
    q.put(pattern(1000, 1)).unwrap();
    q.put(pattern(1000, 2)).unwrap();
    assert_fails(q.put_timeout(pattern(5000, 3), SHORT), "Full");
    assert_fails(q.put_nowait(pattern(5000, 4)), "Full");

    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 1000, 1);
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 1000, 2);
    assert_fails(q.get_nowait(), "Empty");
    assert_eq!(q.qsize(), 0);
    // Room again, for a large item in pieces.
    assert!(q.put_timeout(pattern(3000, 5), LONG).unwrap());
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 3000, 5);
    assert!(q.empty());
}

#[test]
fn put_timeout_that_leaves_no_room_even_to_cancel_its_item_puts_none_of_it() {
    let _g = common::guard();
    // 4096-byte ring, 1024-byte pieces (1040 with their header). A 957-byte item takes 976
    // bytes; then three pieces of the large item fill the ring to the last byte, leaving no
    // room to mark it cancelled.
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(4096).build().unwrap();
    q.put(pattern(957, 1)).unwrap();
    assert_fails(q.put_timeout(pattern(5000, 2), SHORT), "Full");
    assert_eq!(q.qsize(), 1);

    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 957, 1);
    assert_eq!(q.qsize(), 0);
    assert!(q.put_timeout(pattern(10, 3), LONG).unwrap());
    assert_eq!(q.qsize(), 1);
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 10, 3);
    assert_eq!(q.qsize(), 0);
    assert_fails(q.get_nowait(), "Empty");
    assert!(q.put_timeout(pattern(3000, 4), LONG).unwrap());
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 3000, 4);
    assert!(q.empty());
}

#[test]
fn items_after_a_put_that_could_not_cancel_its_item_are_counted_exactly() {
    let _g = common::guard();
    // As above: the failed put leaves three pieces and no room to mark them cancelled.
    let q: Queue<ByteBuf> = Queue::builder()
        .maxsize(2)
        .buffer_size(4096)
        .build()
        .unwrap();
    q.put(pattern(957, 1)).unwrap();
    assert_fails(q.put_timeout(pattern(5000, 2), SHORT), "Full");
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 957, 1);
    // This get takes the pieces, finds the rest will not come, and drops them.
    assert_fails(q.get_nowait(), "Empty");
    assert_eq!(q.qsize(), 0);

    assert!(q.put_nowait(pattern(10, 3)).unwrap());
    assert_eq!((q.qsize(), q.empty()), (1, false));
    assert!(q.put_nowait(pattern(10, 4)).unwrap());
    assert_eq!((q.qsize(), q.full()), (2, true));
    assert_fails(q.put_nowait(pattern(10, 5)), "Full");
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 10, 3);
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 10, 4);
    assert_fails(q.get_nowait(), "Empty");
    assert_eq!(q.qsize(), 0);
}

#[test]
fn failed_put_of_part_of_a_large_item_does_not_count_as_an_item() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder()
        .maxsize(3)
        .buffer_size(4096)
        .build()
        .unwrap();
    q.put(pattern(1000, 1)).unwrap();
    q.put(pattern(1000, 2)).unwrap();
    assert_fails(q.put_timeout(pattern(5000, 3), SHORT), "Full");
    // The item was not put: two items are in the queue, and there is room for a third.
    assert_eq!((q.qsize(), q.full()), (2, false));
    assert!(q.put_nowait(pattern(10, 4)).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Across processes

/// Answer each request with its double, until `None`; returns how many it answered.
fn double_requests((requests, replies): (Queue<Option<u64>>, Queue<u64>)) -> u64 {
    let mut answered = 0;
    while let Some(x) = requests
        .get_timeout(LONG)
        .expect("a request")
        .expect("a request")
    {
        replies.put(x * 2).expect("putting a reply");
        answered += 1;
    }
    answered
}

fn queue_passed_to_a_child_carries_items_both_ways(method: StartMethod) {
    let _g = common::guard();
    let (requests, replies) = (Queue::new().unwrap(), Queue::new().unwrap());
    let child = start(method, double_requests, (requests.clone(), replies.clone()));
    for i in 0..100 {
        requests.put(Some(i)).unwrap();
    }
    requests.put(None).unwrap();
    let got: Vec<u64> = (0..100)
        .map(|_| {
            replies
                .get_timeout(LONG)
                .expect("a reply")
                .expect("a reply")
        })
        .collect();
    assert_eq!(got, (0..100).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(join(child), 100);
    assert!(requests.empty() && replies.empty());
}

/// Receive a queue over the connection, put a greeting into it and take the answer.
fn greet_through_received_queue(mut conn: Connection) -> String {
    let (to_parent, from_parent): (Queue<String>, Queue<String>) =
        conn.recv().expect("receiving the queues");
    to_parent.put("hello from the child".to_string()).unwrap();
    from_parent
        .get_timeout(LONG)
        .expect("the parent's answer")
        .expect("the parent's answer")
}

fn queue_sent_over_a_connection_to_a_running_child_carries_items(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = start(method, greet_through_received_queue, there);
    let (to_parent, from_parent): (Queue<String>, Queue<String>) =
        (Queue::new().unwrap(), Queue::new().unwrap());
    here.send(&(to_parent.clone(), from_parent.clone()))
        .unwrap();
    assert_eq!(
        to_parent.get_timeout(LONG).unwrap().expect("an item"),
        "hello from the child"
    );
    from_parent
        .put("hello from the parent".to_string())
        .unwrap();
    assert_eq!(join(child), "hello from the parent");
}

/// Make a queue, put an item into it and return it.
fn make_queue_with_an_item(text: String) -> Queue<String> {
    let q = Queue::new().expect("a new queue");
    q.put(&text).expect("put");
    q
}

fn queue_returned_by_a_child_keeps_its_items(method: StartMethod) {
    let _g = common::guard();
    let child = start(
        method,
        make_queue_with_an_item,
        "made in the child".to_string(),
    );
    // The child has exited: the parent's handle is the only one left.
    let q = join(child);
    assert_eq!(q.qsize(), 1);
    assert_eq!(
        q.get_nowait().unwrap().expect("an item"),
        "made in the child"
    );
    q.put("and used here".to_string()).unwrap();
    assert_eq!(q.get_nowait().unwrap().expect("an item"), "and used here");
}

/// Wait for `go`, then take one item.
fn get_after_go((q, go): (Queue<u32>, Event)) -> u32 {
    wait_set(&go, "the test never said go");
    q.get_timeout(LONG).expect("an item").expect("an item")
}

fn bounded_put_blocks_until_a_consumer_in_another_process_makes_room(method: StartMethod) {
    let _g = common::guard();
    let (q, go) = (Queue::with_maxsize(1).unwrap(), Event::new().unwrap());
    q.put(1).unwrap();
    let child = start(method, get_after_go, (q.clone(), go.clone()));

    let putter = q.clone();
    let (tid, put_done) = on_thread(move || putter.put_timeout(2, LONG));
    // Asleep inside put (the only place it can sleep): the full queue holds it back.
    wait_for_state(tid, 'S', "the put did not block");
    assert!(put_done.try_recv().is_err(), "put returned on a full queue");
    assert_eq!(q.qsize(), 1);

    go.set();
    let r = put_done
        .recv_timeout(PROMPT)
        .expect("put still blocked after the consumer made room");
    assert_eq!(kind(&r), "Ok");
    assert_eq!(join(child), 1);
    assert_eq!(q.get_nowait().unwrap().expect("an item"), 2);
}

// ---------------------------------------------------------------------------------------------
// Many producers and consumers

const PRODUCERS: u32 = 4;
const CONSUMERS: u32 = 4;
const ITEMS_PER_PRODUCER: u32 = 100_000;

type Tagged = Option<(u32, u32)>;

fn produce_tagged((q, producer): (Queue<Tagged>, u32)) {
    for seq in 0..ITEMS_PER_PRODUCER {
        q.put(Some((producer, seq))).expect("put");
    }
}

/// Take items until `None`. Checks that each producer's items come in the order it put them
/// and returns, per producer, the bitmap of the sequence numbers received.
fn consume_tagged(q: Queue<Tagged>) -> Vec<Vec<u64>> {
    let words = ITEMS_PER_PRODUCER.div_ceil(64) as usize;
    let mut seen = vec![vec![0u64; words]; PRODUCERS as usize];
    let mut last: Vec<Option<u32>> = vec![None; PRODUCERS as usize];
    while let Some((producer, seq)) = q.get_timeout(LONG).expect("an item").expect("an item") {
        let p = producer as usize;
        assert!(p < PRODUCERS as usize && seq < ITEMS_PER_PRODUCER);
        if let Some(before) = last[p] {
            assert!(
                seq > before,
                "producer {p}: item {seq} arrived after item {before}"
            );
        }
        last[p] = Some(seq);
        seen[p][seq as usize / 64] |= 1 << (seq % 64);
    }
    seen
}

#[test]
fn four_producers_and_four_consumers_pass_every_item_exactly_once_in_order() {
    let _g = common::guard();
    let q: Queue<Tagged> = Queue::new().unwrap();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| start(StartMethod::Fork, consume_tagged, q.clone()))
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| start(StartMethod::Fork, produce_tagged, (q.clone(), p)))
        .collect();
    for producer in producers {
        join(producer);
    }
    // After every item: one end marker per consumer.
    for _ in 0..CONSUMERS {
        q.put(None).unwrap();
    }

    let words = ITEMS_PER_PRODUCER.div_ceil(64) as usize;
    let mut all = vec![vec![0u64; words]; PRODUCERS as usize];
    for consumer in consumers {
        for (p, bitmap) in join(consumer).iter().enumerate() {
            for (w, &bits) in bitmap.iter().enumerate() {
                let twice = all[p][w] & bits;
                assert_eq!(
                    twice,
                    0,
                    "producer {p}: item {} received by two consumers",
                    w * 64 + twice.trailing_zeros() as usize
                );
                all[p][w] |= bits;
            }
        }
    }
    for (p, bitmap) in all.iter().enumerate() {
        let received: u32 = bitmap.iter().map(|w| w.count_ones()).sum();
        assert_eq!(
            received, ITEMS_PER_PRODUCER,
            "items of producer {p} received"
        );
    }
    assert!(q.empty());
}

// ---------------------------------------------------------------------------------------------
// Large items and memory

fn put_patterns((q, items): (Queue<ByteBuf>, Vec<(usize, u8)>)) {
    for (len, seed) in items {
        q.put(pattern(len, seed)).expect("put");
    }
}

#[test]
fn item_of_100_mib_streams_through_a_1_mib_buffer_intact() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(MIB).build().unwrap();
    assert_eq!(q.buffer_size(), MIB);
    let child = start(
        StartMethod::Fork,
        put_patterns,
        (q.clone(), vec![(100 * MIB, 7), (1000, 8)]),
    );
    assert_pattern(
        &q.get_timeout(LONG).unwrap().expect("an item"),
        100 * MIB,
        7,
    );
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 1000, 8);
    join(child);
    assert!(q.empty());
}

/// Put `count` items of `len` bytes (`pattern(len, i)`, built beforehand); returns how far
/// this process's peak resident memory rose above what it was before the puts, in KiB.
fn put_items_measuring_memory((q, count, len): (Queue<ByteBuf>, usize, usize)) -> u64 {
    let items: Vec<ByteBuf> = (0..count).map(|i| pattern(len, i as u8)).collect();
    // Reset the peak to the current resident size (Linux 4.0+); without it the peak since
    // the start of this fresh process is nearly the same.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kib("VmRSS");
    for item in &items {
        q.put(item).expect("put");
    }
    status_kib("VmHWM").saturating_sub(before)
}

/// A producer puts `count` items of `len` bytes into `q` while this process takes them as
/// slowly as can be: only once the producer is blocked by the queue (asleep inside `put`).
/// The producer's memory must stay well below the bytes put.
fn assert_slow_consumer_keeps_producer_memory_bounded(q: Queue<ByteBuf>, count: usize, len: usize) {
    let child = start(
        StartMethod::Spawn,
        put_items_measuring_memory,
        (q.clone(), count, len),
    );
    let pid = child.pid();
    let start_time = common::proc_stat(pid)
        .expect("the producer runs")
        .start_time;
    for i in 0..count {
        // Once its first put has begun, the producer sleeps only inside put, waiting for
        // room; after its last put it exits.
        let blocked_or_done = common::wait_until(Instant::now() + LONG, || {
            common::has_ended(pid, start_time)
                || (q.qsize() >= 1 && common::proc_stat(pid).is_some_and(|p| p.state == 'S'))
        });
        assert!(blocked_or_done, "the producer neither blocked nor finished");
        let item = q.get_timeout(LONG).expect("an item").expect("an item");
        assert_pattern(&item, len, i as u8);
    }
    let grew_kib = join(child);
    let total_kib = (count * len / 1024) as u64;
    assert!(
        grew_kib < total_kib / 4,
        "the producer's memory grew by {grew_kib} KiB while putting {total_kib} KiB"
    );
}

#[test]
fn slow_consumer_of_a_bounded_queue_keeps_the_producer_memory_bounded() {
    let _g = common::guard();
    // Default (64 MiB) buffer: without the bound of 2 items the producer would fill it.
    let q = Queue::with_maxsize(2).unwrap();
    assert_slow_consumer_keeps_producer_memory_bounded(q, 48, 2 * MIB);
}

#[test]
fn slow_consumer_of_items_larger_than_the_buffer_keeps_the_producer_memory_bounded() {
    let _g = common::guard();
    let q = Queue::builder().buffer_size(MIB).build().unwrap();
    assert_slow_consumer_keeps_producer_memory_bounded(q, 24, 4 * MIB);
}

// ---------------------------------------------------------------------------------------------
// Processes that die inside put or get

/// An item 200 times the buffer, as in the tests of a consumer taking part of it.
const HUGE: usize = 200 * MIB;
/// Large enough to fill the buffer: for the tests that need a producer blocked in the
/// middle of an item (encoding is slow in unoptimised builds: about 10 ns a byte).
const LARGE: usize = 16 * MIB;

/// Put an item of `len` bytes, say when the put returned, and wait to be killed.
fn put_and_report((q, len, returned): (Queue<ByteBuf>, usize, Event)) {
    q.put(pattern(len, 1)).expect("put");
    returned.set();
    std::thread::sleep(LONG);
}

/// Start a child putting a `len`-byte item into `q` (with a buffer much smaller than `len`,
/// and no consumer) and wait until it waits for room in the full buffer.
fn start_blocked_producer(q: &Queue<ByteBuf>, len: usize) -> (Process<()>, Event) {
    let before = q.qsize();
    let returned = Event::new().unwrap();
    let child = start(
        StartMethod::Fork,
        put_and_report,
        (q.clone(), len, returned.clone()),
    );
    wait_blocked_in_put(q, child.pid(), before);
    assert!(!returned.is_set());
    (child, returned)
}

/// Wait until the producer `pid` is blocked inside a put on `q`: its put has begun (`qsize`
/// rose above `before`) and it sleeps, which it does inside put only while waiting for room.
#[track_caller]
fn wait_blocked_in_put<T>(q: &Queue<T>, pid: u32, before: usize) {
    let blocked = common::wait_until(Instant::now() + LONG, || {
        q.qsize() > before && common::proc_stat(pid).is_some_and(|p| p.state == 'S')
    });
    assert!(blocked, "the producer did not block inside put");
}

/// The common beginning of the "producer killed while a consumer takes its item" tests: a
/// producer, stopped in the middle of a huge item, a consumer (on a thread running `get`)
/// that took the first part and waits for the rest. Returns the producer and the consumer's
/// result.
fn consumer_waiting_for_a_stopped_producer<T: Send + 'static>(
    q: &Queue<ByteBuf>,
    get: impl FnOnce(Queue<ByteBuf>) -> T + Send + 'static,
) -> (Process<()>, Event, mpsc::Receiver<T>) {
    let (producer, returned) = start_blocked_producer(q, HUGE);
    stop(producer.pid());
    let consumer = q.clone();
    let (tid, result) = on_thread(move || get(consumer));
    // Asleep inside get: it took all that was published and waits for the rest.
    wait_for_state(
        tid,
        'S',
        "the consumer did not wait for the rest of the item",
    );
    (producer, returned, result)
}

#[test]
fn producer_killed_inside_put_does_not_hang_a_consumer_which_gets_the_next_item() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(MIB).build().unwrap();
    let (producer, returned, result) =
        consumer_waiting_for_a_stopped_producer(&q, |q| q.get_timeout(LONG));

    kill(producer);
    assert!(!returned.is_set(), "the killed put had returned");
    join(start(
        StartMethod::Fork,
        put_patterns,
        (q.clone(), vec![(3000, 2)]),
    ));

    let got = result
        .recv_timeout(PROMPT)
        .expect("the consumer still waits for the killed producer's item");
    assert_pattern(
        &got.expect("the next item").expect("the next item"),
        3000,
        2,
    );
    assert_eq!(q.qsize(), 0);
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn producer_killed_inside_put_with_no_other_producer_lets_get_timeout_return_empty() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(MIB).build().unwrap();
    let (producer, returned, result) = consumer_waiting_for_a_stopped_producer(&q, |q| {
        let started = Instant::now();
        (q.get_timeout(SHORT), started)
    });
    // Documented: a get that has begun to receive an item waits for the rest of it, past its
    // own timeout.
    std::thread::sleep(SHORT * 3);
    assert!(
        result.try_recv().is_err(),
        "get_timeout returned in the middle of an item"
    );

    let killed = Instant::now();
    kill(producer);
    assert!(!returned.is_set(), "the killed put had returned");
    let (got, started) = result
        .recv_timeout(PROMPT)
        .expect("get_timeout still waits for the killed producer's item");
    assert_fails(got, "Empty");
    assert!(started.elapsed() >= SHORT);
    assert!(killed.elapsed() < PROMPT);

    // The queue goes on: small and large items pass.
    assert_eq!(q.qsize(), 0);
    q.put(pattern(10, 4)).unwrap();
    assert_pattern(&q.get_nowait().unwrap().expect("an item"), 10, 4);
    let child = start(
        StartMethod::Fork,
        put_patterns,
        (q.clone(), vec![(8 * MIB, 5), (10, 6)]),
    );
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 8 * MIB, 5);
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 10, 6);
    join(child);
    assert!(q.empty());
}

#[test]
fn producer_killed_inside_put_before_any_consumer_came_loses_only_its_item() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(MIB).build().unwrap();
    q.put(pattern(100, 1)).unwrap();
    let (producer, returned) = start_blocked_producer(&q, LARGE);
    kill(producer);
    assert!(!returned.is_set(), "the killed put had returned");
    // The next producer may have to wait for a consumer to make room for the cancellation.
    let next = start(
        StartMethod::Fork,
        put_patterns,
        (q.clone(), vec![(2000, 2)]),
    );

    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 100, 1);
    let started = Instant::now();
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 2000, 2);
    assert!(started.elapsed() < PROMPT);
    join(next);
    assert_fails(q.get_timeout(SHORT), "Empty");
    assert_eq!(q.qsize(), 0);
}

/// Say so, then put one item.
fn announce_and_put((q, item, putting): (Queue<u32>, u32, Event)) {
    putting.set();
    q.put(item).expect("put");
}

#[test]
fn producer_killed_while_blocked_on_a_full_bounded_queue_leaves_it_usable() {
    let _g = common::guard();
    let (q, putting) = (Queue::with_maxsize(1).unwrap(), Event::new().unwrap());
    q.put(1).unwrap();
    let producer = start(
        StartMethod::Fork,
        announce_and_put,
        (q.clone(), 2, putting.clone()),
    );
    wait_set(&putting, "the producer did not start");
    wait_for_state(producer.pid(), 'S', "the producer did not block in put");
    kill(producer);

    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(LONG).unwrap().expect("an item"), 1);
    let started = Instant::now();
    assert!(
        q.put_timeout(3, PROMPT)
            .expect("put after the blocked producer died")
    );
    assert!(started.elapsed() < PROMPT);
    assert_eq!(q.get_nowait().unwrap().expect("an item"), 3);
    assert_fails(q.get_nowait(), "Empty");
}

/// Say so, then take one item; returns its length.
fn announce_and_get((q, getting): (Queue<ByteBuf>, Event)) -> usize {
    getting.set();
    q.get_timeout(LONG)
        .expect("an item")
        .expect("an item")
        .len()
}

#[test]
fn consumer_killed_inside_get_loses_only_its_item_and_the_next_consumer_gets_the_next() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(MIB).build().unwrap();
    let producer = start(
        StartMethod::Fork,
        put_patterns,
        (q.clone(), vec![(64 * MIB, 1), (5000, 2), (10, 3)]),
    );
    let pid = producer.pid();
    wait_blocked_in_put(&q, pid, 0);
    stop(pid);

    let getting = Event::new().unwrap();
    let consumer = start(
        StartMethod::Fork,
        announce_and_get,
        (q.clone(), getting.clone()),
    );
    wait_set(&getting, "the consumer did not start");
    // Asleep inside get: it took the start of the item and waits for the rest.
    wait_for_state(
        consumer.pid(),
        'S',
        "the consumer did not wait for the rest of the item",
    );
    kill(consumer);
    signal(pid, libc::SIGCONT);

    let started = Instant::now();
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 5000, 2);
    assert!(started.elapsed() < PROMPT);
    assert_pattern(&q.get_timeout(LONG).unwrap().expect("an item"), 10, 3);
    join(producer);
    assert_eq!(q.qsize(), 0);
    assert_fails(q.get_nowait(), "Empty");
}

#[test]
fn consumer_killed_while_waiting_on_an_empty_queue_does_not_block_the_others() {
    let _g = common::guard();
    let (q, getting) = (Queue::new().unwrap(), Event::new().unwrap());
    let consumer = start(
        StartMethod::Fork,
        announce_and_get,
        (q.clone(), getting.clone()),
    );
    wait_set(&getting, "the consumer did not start");
    wait_for_state(consumer.pid(), 'S', "the consumer did not wait for an item");
    kill(consumer);

    q.put(pattern(10, 1)).unwrap();
    let started = Instant::now();
    assert_pattern(
        &q.get_timeout(PROMPT).expect("the item").expect("the item"),
        10,
        1,
    );
    assert!(started.elapsed() < PROMPT);
    assert!(q.empty());
}

/// Decoding it takes very long when the number is 13.
struct Stalling(u32);

impl<'de> Deserialize<'de> for Stalling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 13 {
            std::thread::sleep(LONG);
        }
        Ok(Stalling(n))
    }
}

/// Say so, then take one item.
fn announce_and_get_stalling((q, getting): (Queue<Stalling>, Event)) -> u32 {
    getting.set();
    q.get_timeout(LONG).expect("an item").expect("an item").0
}

#[test]
fn consumer_killed_while_decoding_a_one_piece_item_leaves_it_to_the_next_consumer() {
    let _g = common::guard();
    let (q, getting) = (Queue::<u32>::new().unwrap(), Event::new().unwrap());
    q.put(13).unwrap();
    q.put(14).unwrap();
    let consumer = start(
        StartMethod::Fork,
        announce_and_get_stalling,
        (retyped(&q), getting.clone()),
    );
    wait_set(&getting, "the consumer did not start");
    // Asleep: inside the decoding of the first item, which is there.
    wait_for_state(consumer.pid(), 'S', "the consumer did not decode");
    kill(consumer);

    // Documented in ring.rs ("A consumer that dies before freeing a one-chunk item leaves it
    // in the ring for the next consumer"): the item was not taken yet.
    assert_eq!(
        q.get_timeout(PROMPT)
            .expect("the first item")
            .expect("the first item"),
        13
    );
    assert_eq!(q.get_nowait().unwrap().expect("an item"), 14);
    assert_eq!(q.qsize(), 0);
}

// ---------------------------------------------------------------------------------------------
// JoinableQueue

/// Take items until `None`, putting each one's square into `results` before marking it done;
/// returns how many numbers it processed.
fn square_tasks((q, results): (JoinableQueue<Option<u64>>, Queue<u64>)) -> u64 {
    let mut done = 0;
    loop {
        let item = q.get_timeout(LONG).expect("a task").expect("a task");
        if let Some(n) = item {
            results.put(n * n).expect("putting a result");
            done += 1;
        }
        q.task_done().expect("task_done");
        if item.is_none() {
            return done;
        }
    }
}

fn joinable_queue_join_returns_once_workers_in_other_processes_marked_every_item_done(
    method: StartMethod,
) {
    let _g = common::guard();
    const N: u64 = 200;
    let (q, results) = (JoinableQueue::new().unwrap(), Queue::new().unwrap());
    for n in 0..N {
        q.put(Some(n)).unwrap();
    }
    assert_eq!(q.unfinished_tasks(), N as usize);
    assert!(!q.join_timeout(Duration::ZERO));
    let workers: Vec<_> = (0..2)
        .map(|_| start(method, square_tasks, (q.clone(), results.clone())))
        .collect();

    let joiner = q.clone();
    within(LONG, move || joiner.join());
    // Every result was put before its task was marked done.
    assert_eq!(results.qsize(), N as usize);
    assert_eq!(q.unfinished_tasks(), 0);

    for _ in &workers {
        q.put(None).unwrap();
    }
    let processed: u64 = workers.into_iter().map(join).sum();
    assert_eq!(processed, N);
    assert!(q.join_timeout(LONG));
    let mut squares: Vec<u64> = (0..N)
        .map(|_| results.get_nowait().unwrap().expect("an item"))
        .collect();
    squares.sort_unstable();
    assert_eq!(squares, (0..N).map(|n| n * n).collect::<Vec<_>>());
}

#[test]
fn joinable_queue_join_timeout_is_false_on_time_until_every_item_got_is_marked_done() {
    let _g = common::guard();
    let q = JoinableQueue::new().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
    q.put(1u8).unwrap();
    q.put(2).unwrap();

    let started = Instant::now();
    let joined = q.join_timeout(SHORT);
    assert!(!joined);
    assert_on_time(started.elapsed(), SHORT);

    q.get().unwrap();
    q.get().unwrap();
    // Got, but not marked done.
    assert_eq!(q.unfinished_tasks(), 2);
    assert!(!q.join_timeout(SHORT));
    q.task_done().unwrap();
    assert!(!q.join_timeout(Duration::ZERO));
    q.task_done().unwrap();
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.join_timeout(Duration::ZERO));
    within(PROMPT, move || q.join());
}

#[test]
fn joinable_queue_task_done_once_too_many_is_an_error() {
    let _g = common::guard();
    let q = JoinableQueue::new().unwrap();
    assert_fails(q.task_done(), "TaskDoneTooManyTimes");
    q.put(1u8).unwrap();
    q.get().unwrap();
    q.task_done().unwrap();
    assert_fails(q.task_done(), "TaskDoneTooManyTimes");
    assert_eq!(q.unfinished_tasks(), 0);
    assert!(q.join_timeout(Duration::ZERO));
    // The count is intact.
    q.put(2).unwrap();
    assert_eq!(q.unfinished_tasks(), 1);
    assert!(!q.join_timeout(Duration::ZERO));
}

#[test]
fn joinable_queue_does_not_count_an_item_that_could_not_be_put() {
    let _g = common::guard();
    let q = JoinableQueue::with_maxsize(1).unwrap();
    q.put(1u8).unwrap();
    assert_fails(q.put_nowait(2), "Full");
    assert_fails(q.put_timeout(3, SHORT), "Full");
    assert_eq!(q.unfinished_tasks(), 1);
    q.get().unwrap();
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::ZERO));
}

#[test]
fn joinable_queue_join_does_not_wait_for_the_item_of_a_killed_producer() {
    let _g = common::guard();
    let q: JoinableQueue<ByteBuf> = Queue::builder().buffer_size(MIB).build_joinable().unwrap();
    let (producer, returned) = start_blocked_producer(&q, LARGE);
    assert_eq!(q.unfinished_tasks(), 1);
    kill(producer);
    assert!(!returned.is_set());
    assert_fails(q.get_timeout(SHORT), "Empty");
    assert!(
        q.join_timeout(PROMPT),
        "join waits for an item that was never put"
    );
    assert_eq!(q.unfinished_tasks(), 0);
}

#[test]
fn plain_queue_received_as_a_joinable_queue_is_an_error() {
    let _g = common::guard();
    let (mut a, mut b) = pipe().unwrap();
    let plain = Queue::<u32>::new().unwrap();
    a.send(&plain).unwrap();
    match b.recv::<JoinableQueue<u32>>() {
        Err(ConnectionError::Codec(_)) => {}
        Err(e) => panic!("expected a codec error, got {e}"),
        Ok(_) => panic!("a plain Queue was received as a JoinableQueue"),
    }

    // A joinable queue is received as one, and shares its count.
    let joinable = JoinableQueue::<u32>::new().unwrap();
    a.send(&joinable).unwrap();
    let received: JoinableQueue<u32> = b.recv().unwrap();
    received.put(1).unwrap();
    assert_eq!(joinable.unfinished_tasks(), 1);
    assert_eq!(joinable.get().unwrap(), 1);
    joinable.task_done().unwrap();
    assert!(received.join_timeout(Duration::ZERO));
}

// ---------------------------------------------------------------------------------------------
// SimpleQueue and close

/// Square numbers from `input` into `output` until `None`.
fn square_simple((input, output): (SimpleQueue<Option<u64>>, SimpleQueue<u64>)) {
    while let Some(n) = input.get().expect("an item") {
        output.put(n * n).expect("put");
    }
}

fn simple_queue_carries_items_between_processes(method: StartMethod) {
    let _g = common::guard();
    let (input, output) = (SimpleQueue::new().unwrap(), SimpleQueue::new().unwrap());
    assert!(input.empty());
    for n in 0..50 {
        input.put(Some(n)).unwrap();
    }
    assert!(!input.empty());
    input.put(None).unwrap();
    let child = start(method, square_simple, (input.clone(), output.clone()));
    // SimpleQueue has no timeouts: the child is joined (with a timeout) before `get`.
    join(child);
    let got: Vec<u64> = (0..50).map(|_| output.get().unwrap()).collect();
    assert_eq!(got, (0..50).map(|n| n * n).collect::<Vec<_>>());
    assert!(input.empty() && output.empty());
}

/// Wait for `go`, take the two items waiting, put one and take it back.
fn use_own_handle_after_go((q, go): (SimpleQueue<u32>, Event)) -> Vec<u32> {
    wait_set(&go, "the test never said go");
    let mut got = vec![q.get().unwrap(), q.get().unwrap()];
    q.put(3).unwrap();
    got.push(q.get().unwrap());
    got
}

fn simple_queue_close_fails_put_and_get_on_that_handle_while_another_process_goes_on(
    method: StartMethod,
) {
    let _g = common::guard();
    let (q, go) = (SimpleQueue::new().unwrap(), Event::new().unwrap());
    let child = start(method, use_own_handle_after_go, (q.clone(), go.clone()));
    q.put(1).unwrap();
    q.put(2).unwrap();
    let clone = q.clone();
    q.close();
    assert_fails(q.put(9), "Closed");
    assert_fails(q.get(), "Closed");
    assert_fails(clone.put(9), "Closed");
    assert_fails(clone.get(), "Closed");
    // The items put before close stay for the others.
    assert!(!q.empty());

    go.set();
    assert_eq!(join(child), [1, 2, 3]);
    assert!(q.empty());
}

#[test]
fn queue_close_fails_put_and_get_on_that_handle_and_keeps_the_items() {
    let _g = common::guard();
    let q = Queue::new().unwrap();
    let other: Queue<u32> = retyped(&q);
    q.put(1u32).unwrap();
    let clone = q.clone();
    assert!(!q.is_closed());
    q.close();
    assert!(q.is_closed() && clone.is_closed());
    assert_fails(q.put(2), "Closed");
    assert_fails(q.put_nowait(2), "Closed");
    assert_fails(q.put_timeout(2, SHORT), "Closed");
    assert_fails(q.get(), "Closed");
    assert_fails(q.get_nowait(), "Closed");
    assert_fails(q.get_timeout(SHORT), "Closed");
    assert_fails(clone.get_nowait(), "Closed");
    assert_eq!(q.qsize(), 1);

    // A handle received separately (as another process has it) is not closed.
    assert!(!other.is_closed());
    assert_eq!(other.get_nowait().unwrap().expect("an item"), 1);
    other.put(3).unwrap();
    assert_eq!(other.get_nowait().unwrap().expect("an item"), 3);
}

// ---------------------------------------------------------------------------------------------
// What items can be

#[derive(Serialize, Deserialize)]
enum Item {
    Number(u32),
    Lock(Lock),
    Connection(Connection),
}

#[test]
fn item_holding_an_os_handle_is_a_codec_error_and_the_queue_still_works() {
    let _g = common::guard();
    let q: Queue<Item> = Queue::new().unwrap();
    let (a, _b) = pipe().unwrap();
    assert_fails(q.put(Item::Lock(Lock::new().unwrap())), "Codec");
    assert_fails(q.put_nowait(Item::Connection(a)), "Codec");
    assert_eq!(q.qsize(), 0);

    q.put(Item::Number(7)).unwrap();
    assert!(matches!(
        q.get_nowait().unwrap().expect("an item"),
        Item::Number(7)
    ));
    assert_fails(q.get_nowait(), "Empty");

    let joinable: JoinableQueue<Item> = JoinableQueue::new().unwrap();
    assert_fails(joinable.put(Item::Lock(Lock::new().unwrap())), "Codec");
    assert_eq!(joinable.unfinished_tasks(), 0);
}

#[test]
fn get_as_the_wrong_type_is_a_codec_error_and_the_next_item_is_fine() {
    let _g = common::guard();
    // Small buffer: the larger bad item goes in several pieces.
    let strings: Queue<String> = Queue::builder().buffer_size(4096).build().unwrap();
    let bytes: Queue<ByteBuf> = retyped(&strings);
    for len in [10, 2500] {
        // Not UTF-8.
        assert!(
            bytes
                .put_timeout(ByteBuf::from(vec![0xff; len]), LONG)
                .unwrap()
        );
        assert!(strings.put_timeout("é".repeat(400), LONG).unwrap());
        assert_fails(strings.get_nowait(), "Codec");
        assert_eq!(strings.qsize(), 1);
        assert_eq!(
            strings.get_nowait().unwrap().expect("an item"),
            "é".repeat(400)
        );
    }
    assert_fails(strings.get_nowait(), "Empty");
}

#[derive(Serialize, Deserialize)]
struct Raw(u32, ByteBuf);

/// Decoding panics when the number is 13.
struct Fragile(Raw);

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        assert_ne!(raw.0, 13, "unlucky item (a panic this test provokes)");
        Ok(Fragile(raw))
    }
}

#[test]
fn panic_while_decoding_an_item_leaves_the_queue_usable() {
    let _g = common::guard();
    let raw: Queue<Raw> = Queue::builder().buffer_size(4096).build().unwrap();
    let fragile: Queue<Fragile> = retyped(&raw);
    // One piece, then several.
    for len in [10, 2500] {
        assert!(raw.put_timeout(Raw(13, pattern(len, 1)), LONG).unwrap());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fragile.get_nowait()));
        assert!(r.is_err(), "decoding did not panic");
        assert_eq!(raw.qsize(), 0);
        assert!(raw.put_timeout(Raw(2, pattern(len, 2)), LONG).unwrap());
        let Fragile(Raw(n, bytes)) = fragile
            .get_nowait()
            .expect("the next item")
            .expect("the next item");
        assert_eq!(n, 2);
        assert_pattern(&bytes, len, 2);
    }
    assert_fails(fragile.get_nowait(), "Empty");
}

#[test]
fn threads_of_one_process_share_a_queue() {
    let _g = common::guard();
    let q: Queue<Tagged> = Queue::with_maxsize(100).unwrap();
    let received: Vec<Vec<u32>> = std::thread::scope(|s| {
        let getters: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    let mut got = Vec::new();
                    while let Some((_, seq)) =
                        q.get_timeout(LONG).expect("an item").expect("an item")
                    {
                        got.push(seq);
                    }
                    got
                })
            })
            .collect();
        let putters: Vec<_> = (0..3)
            .map(|t| {
                let q = q.clone();
                s.spawn(move || {
                    for seq in 0..10_000 {
                        assert!(q.put_timeout(Some((t, t * 10_000 + seq)), LONG).unwrap());
                    }
                })
            })
            .collect();
        for putter in putters {
            putter.join().unwrap();
        }
        for _ in 0..3 {
            assert!(q.put_timeout(None, LONG).unwrap());
        }
        getters.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let mut all: Vec<u32> = received.concat();
    all.sort_unstable();
    assert_eq!(all, (0..30_000).collect::<Vec<_>>());
}

/// Descriptors of this process, and those of them (and mappings) of multiproc memfds.
fn descriptors_and_mappings() -> (usize, usize, usize) {
    let fds: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    let memfds = fds
        .iter()
        .filter(|t| t.to_string_lossy().starts_with("/memfd:multiproc"))
        .count();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/memfd:multiproc"))
        .count();
    (fds.len(), memfds, maps)
}

#[test]
fn dropped_queues_leave_no_descriptor_or_mapping_behind() {
    let _g = common::guard();
    // In a forked child: one thread, nothing else opening descriptors meanwhile.
    let child = ProcessBuilder::new()
        .fork(|| {
            let before = descriptors_and_mappings();
            for i in 0..50u32 {
                let q = Queue::new().unwrap();
                q.put(i).unwrap();
                let received: Queue<u32> = retyped(&q);
                assert_eq!(received.get_nowait().unwrap().expect("an item"), i);
                let j = JoinableQueue::<u32>::with_maxsize(3).unwrap();
                j.put(i).unwrap();
                let s = SimpleQueue::<u32>::new().unwrap();
                s.put(i).unwrap();
            }
            (before, descriptors_and_mappings())
        })
        .unwrap();
    let (before, after) = join(child);
    assert_eq!(
        after, before,
        "(descriptors, memfd descriptors, memfd mappings)"
    );
}

/// Put the items, then return at once.
fn put_and_return((q, items): (Queue<ByteBuf>, Vec<(usize, u8)>)) {
    put_patterns((q, items));
}

/// Put the items, then exit the process at once: no destructors, no result.
fn put_and_exit((q, items): (Queue<ByteBuf>, Vec<(usize, u8)>)) {
    put_patterns((q, items));
    std::process::exit(0);
}

/// Small items and a 600 KiB one, which goes in three pieces into a 1 MiB buffer.
fn last_items() -> Vec<(usize, u8)> {
    let mut items: Vec<(usize, u8)> = (0..200).map(|i| (i % 50, i as u8)).collect();
    items.push((600 << 10, 200));
    items
}

fn assert_all_there(q: &Queue<ByteBuf>) {
    let items = last_items();
    assert_eq!(q.qsize(), items.len());
    for (len, seed) in items {
        assert_pattern(
            &q.get_nowait().expect("an item").expect("an item"),
            len,
            seed,
        );
    }
    assert_fails(q.get_nowait(), "Empty");
}

fn items_put_just_before_the_producer_returns_are_all_there(method: StartMethod) {
    let _g = common::guard();
    let q = Queue::builder().buffer_size(MIB).build().unwrap();
    join(start(method, put_and_return, (q.clone(), last_items())));
    assert_all_there(&q);
}

fn items_put_just_before_the_producer_exits_are_all_there(method: StartMethod) {
    let _g = common::guard();
    let q = Queue::builder().buffer_size(MIB).build().unwrap();
    let child = start(method, put_and_exit, (q.clone(), last_items()));
    assert!(child.join_timeout(LONG).unwrap(), "the child did not exit");
    assert_eq!(child.join().unwrap_err().exitcode(), Some(0));
    assert_all_there(&q);
}

#[test]
fn items_put_just_before_the_producer_is_killed_are_all_there() {
    let _g = common::guard();
    let (q, done) = (
        Queue::builder().buffer_size(MIB).build().unwrap(),
        Event::new().unwrap(),
    );
    let child = ProcessBuilder::new()
        .fork({
            let (q, done) = (q.clone(), done.clone());
            move || {
                put_patterns((q, last_items()));
                done.set();
                std::thread::sleep(LONG);
            }
        })
        .unwrap();
    wait_set(&done, "the producer did not finish");
    kill(child);
    assert_all_there(&q);
}

fn put_units((q, n): (Queue<()>, usize)) {
    for _ in 0..n {
        q.put(()).expect("put");
    }
}

#[test]
fn zero_sized_items_pass_and_count() {
    let _g = common::guard();
    let q: Queue<()> = Queue::new().unwrap();
    q.put(()).unwrap();
    assert_eq!(q.qsize(), 1);
    q.get_nowait().unwrap().expect("an item");
    assert_fails(q.get_nowait(), "Empty");

    // Through a 4 KiB buffer, which they fill many times over.
    let q: Queue<()> = Queue::builder().buffer_size(4096).build().unwrap();
    let child = start(StartMethod::Fork, put_units, (q.clone(), 2000));
    for _ in 0..2000 {
        q.get_timeout(LONG).expect("an item").expect("an item");
    }
    join(child);
    assert_fails(q.get_nowait(), "Empty");
    assert_eq!(q.qsize(), 0);
}

/// Byte-buffer lengths around the boundaries of a 4096-byte ring with 1024-byte chunks
/// (the encoded item is 1 or 2 bytes longer than the buffer: its length comes first).
fn boundary_sizes() -> Vec<usize> {
    let mut sizes = vec![0, 1, 2, 14, 15, 16, 17, 30, 31, 32, 126, 127, 128];
    sizes.extend(1000..=1100);
    for around in [1024, 2048, 3 * 1024, 4096, 5 * 1024, 8192] {
        sizes.extend(around - 5..=around + 5);
    }
    sizes.extend([10_000, 100_000]);
    sizes
}

#[test]
fn items_around_chunk_boundaries_pass_through_a_small_buffer_intact() {
    let _g = common::guard();
    let q: Queue<ByteBuf> = Queue::builder().buffer_size(4096).build().unwrap();
    assert_eq!(q.buffer_size(), 4096);
    let sizes = boundary_sizes();
    // Ascending, then descending: the items start at ever different places of the ring.
    let items: Vec<(usize, u8)> = sizes
        .iter()
        .chain(sizes.iter().rev())
        .enumerate()
        .map(|(i, &len)| (len, i as u8))
        .collect();
    let child = start(StartMethod::Fork, put_patterns, (q.clone(), items.clone()));
    for (len, seed) in items {
        assert_pattern(
            &q.get_timeout(LONG).expect("an item").expect("an item"),
            len,
            seed,
        );
    }
    join(child);
    assert_fails(q.get_nowait(), "Empty");
}

/// What crosses a queue between processes is the item's value, whatever its type.
fn echo_any<T: Serialize + DeserializeOwned>((input, output): (Queue<T>, Queue<T>)) {
    let item = input.get_timeout(LONG).expect("an item").expect("an item");
    output.put(item).expect("put");
}

#[test]
fn structured_items_cross_to_another_process_unchanged() {
    let _g = common::guard();
    type Record = (String, Vec<u64>, Option<(i8, f64)>, [u8; 3]);
    let (input, output) = (Queue::new().unwrap(), Queue::new().unwrap());
    let record: Record = (
        "naïve".to_string(),
        vec![u64::MAX, 0, 1],
        Some((-5, 2.5)),
        [1, 2, 3],
    );
    input.put(&record).unwrap();
    join(start(
        StartMethod::Spawn,
        echo_any::<Record>,
        (input.clone(), output.clone()),
    ));
    assert_eq!(output.get_nowait().unwrap().expect("an item"), record);
}
