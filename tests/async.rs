//! Specification of `multiproc::aio`: futures for connections, queues, events, locks,
//! process joins and listeners, usable from tokio without a thread per waiting call, and
//! safe to cancel (a dropped future loses no data).
//!
//! No test can hang: every await that needs another process runs under
//! `tokio::time::timeout(LONG, ..)`, reached only if the library is broken. Tests
//! synchronise on events, queues and connections, never on sleeps; the timeouts that are
//! *expected* to expire only check that nothing has happened yet (cancellation tests).
#![cfg(feature = "async")]

#[macro_use]
mod common;

use common::children::LONG;

use std::future::Future;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use multiproc::aio::{AsyncConnection, AsyncListener};
use multiproc::listener::{Address, Client, Listener};
use multiproc::{
    Connection, ConnectionError, Event, Lock, Process, ProcessBuilder, ProcessError, Queue,
    SimpleQueue, StartMethod, pipe,
};

/// A short wait for something that must *not* happen (the future stays pending).
const SHORT: Duration = Duration::from_millis(50);

async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(LONG, f)
        .await
        .expect("an async call did not complete within LONG")
}

/// Echoes until told to stop (with fork, the child holds a copy of the parent's end too, so
/// end of file never comes).
fn echo_upper(mut conn: Connection) {
    while let Ok(s) = conn.recv::<String>() {
        if s == "stop" {
            return;
        }
        conn.send(&s.to_uppercase()).unwrap();
        let b = conn.recv_bytes().unwrap();
        conn.send_bytes(&b.iter().rev().copied().collect::<Vec<u8>>())
            .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn connection_roundtrips_with_every_start_method() {
    let _g = common::guard();
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let (here, there) = pipe().unwrap();
        let child = ProcessBuilder::new()
            .start_method(method)
            .start(echo_upper, there)
            .unwrap();
        let mut here = AsyncConnection::new(here).unwrap();
        for i in 0..20 {
            bounded(here.send(&format!("msg {i}"))).await.unwrap();
            let got: String = bounded(here.recv()).await.unwrap();
            assert_eq!(got, format!("MSG {i}"));
            bounded(here.send_bytes(&[1, 2, 3, i])).await.unwrap();
            assert_eq!(bounded(here.recv_bytes()).await.unwrap(), [i, 3, 2, 1]);
        }
        bounded(here.send(&"stop")).await.unwrap();
        bounded(child.join_async()).await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_receive_keeps_the_part_of_a_message_that_arrived() {
    let _g = common::guard();
    let (a, mut raw) = UnixStream::pair().unwrap();
    let mut conn = AsyncConnection::new(Connection::new(a.into())).unwrap();
    // One frame of 8 bytes: header, then the body in two parts.
    raw.write_all(&8i32.to_be_bytes()).unwrap();
    raw.write_all(b"0123").unwrap();
    // Nothing whole yet: the receive stays pending and is dropped by the timeout.
    assert!(
        tokio::time::timeout(SHORT, conn.recv_bytes())
            .await
            .is_err()
    );
    raw.write_all(b"4567").unwrap();
    assert_eq!(bounded(conn.recv_bytes()).await.unwrap(), b"01234567");
    // A second message after the one that was split is read as usual.
    raw.write_all(&2i32.to_be_bytes()).unwrap();
    raw.write_all(b"ok").unwrap();
    assert_eq!(bounded(conn.recv_bytes()).await.unwrap(), b"ok");
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_send_is_finished_by_the_next_one() {
    let _g = common::guard();
    let (a, b) = pipe().unwrap();
    let mut a = AsyncConnection::new(a).unwrap();
    // Far more than the socket buffer: the send must wait for the reader.
    let big = vec![7u8; 8 << 20];
    assert!(
        tokio::time::timeout(SHORT, a.send_bytes(&big))
            .await
            .is_err()
    );
    let reader = std::thread::spawn(move || {
        let mut b = b;
        let first = b.recv_bytes().unwrap();
        let second: String = b.recv().unwrap();
        (first, second)
    });
    // The next send writes the rest of the cancelled one first: the peer sees both, whole.
    bounded(a.send(&"after")).await.unwrap();
    let (first, second) = reader.join().unwrap();
    assert_eq!(first.len(), big.len());
    assert!(first.iter().all(|&x| x == 7));
    assert_eq!(second, "after");
}

#[tokio::test(flavor = "current_thread")]
async fn connections_carry_handles_and_report_end_of_file() {
    let _g = common::guard();
    let (a, b) = pipe().unwrap();
    let (mut a, mut b) = (
        AsyncConnection::new(a).unwrap(),
        AsyncConnection::new(b).unwrap(),
    );
    let (x, mut y) = pipe().unwrap();
    bounded(a.send(&x)).await.unwrap();
    let mut x: Connection = bounded(b.recv()).await.unwrap();
    x.send(&5u8).unwrap();
    assert_eq!(y.recv::<u8>().unwrap(), 5);
    drop(a);
    assert!(matches!(
        bounded(b.recv::<u8>()).await,
        Err(ConnectionError::Eof)
    ));
}

fn produce(q: Queue<u64>) {
    for i in 0..1000 {
        q.put(i).unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn queue_items_from_a_child_arrive_in_order() {
    let _g = common::guard();
    let q = Queue::with_maxsize(8).unwrap();
    let child = Process::start(produce, q.clone()).unwrap();
    for i in 0..1000 {
        assert_eq!(bounded(q.get_async()).await.unwrap(), i);
    }
    bounded(child.join_async()).await.unwrap();
}

fn consume(q: Queue<u64>) -> u64 {
    (0..1000).map(|_| q.get().unwrap()).sum()
}

#[tokio::test(flavor = "current_thread")]
async fn put_async_waits_for_room_in_a_bounded_queue() {
    let _g = common::guard();
    let q = Queue::with_maxsize(4).unwrap();
    let child = Process::start(consume, q.clone()).unwrap();
    for i in 0..1000u64 {
        bounded(q.put_async(i)).await.unwrap();
    }
    assert_eq!(bounded(child.join_async()).await.unwrap(), 999 * 1000 / 2);
}

#[tokio::test(flavor = "current_thread")]
async fn cancelled_queue_calls_lose_nothing() {
    let _g = common::guard();
    let q: Queue<String> = Queue::with_maxsize(1).unwrap();
    // A get on an empty queue, cancelled: the item put afterwards is still there.
    assert!(tokio::time::timeout(SHORT, q.get_async()).await.is_err());
    q.put("kept".to_string()).unwrap();
    // A put on a full queue, cancelled: nothing was put.
    assert!(
        tokio::time::timeout(SHORT, q.put_async("dropped".to_string()))
            .await
            .is_err()
    );
    assert_eq!(q.qsize(), 1);
    assert_eq!(bounded(q.get_async()).await.unwrap(), "kept");
    assert!(matches!(q.get_nowait(), Ok(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_queue_between_tasks_and_threads() {
    let _g = common::guard();
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let mut consumers = Vec::new();
    for _ in 0..4 {
        let q = q.clone();
        consumers.push(tokio::spawn(async move {
            let mut sum = 0u64;
            loop {
                match q.get_async().await.unwrap() {
                    0 => return sum,
                    n => sum += u64::from(n),
                }
            }
        }));
    }
    let producer = {
        let q = q.clone();
        std::thread::spawn(move || {
            for n in 1..=2000u32 {
                q.put(n).unwrap();
            }
        })
    };
    producer.join().unwrap();
    for _ in 0..4 {
        bounded(q.put_async(0)).await.unwrap();
    }
    let mut total = 0;
    for c in consumers {
        total += bounded(c).await.unwrap();
    }
    assert_eq!(total, 2000 * 2001 / 2);
}

fn set_when_asked((go, done): (Event, Event)) {
    assert!(go.wait_timeout(LONG));
    done.set();
}

#[tokio::test(flavor = "current_thread")]
async fn event_wait_async_wakes_on_a_set_from_another_process() {
    let _g = common::guard();
    let (go, done) = (Event::new().unwrap(), Event::new().unwrap());
    let child = Process::start(set_when_asked, (go.clone(), done.clone())).unwrap();
    assert!(
        tokio::time::timeout(SHORT, done.wait_async())
            .await
            .is_err()
    );
    go.set();
    bounded(done.wait_async()).await.unwrap();
    bounded(child.join_async()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn waiting_calls_share_one_thread() {
    let _g = common::guard();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    // Start the watcher, then count.
    let warm = Event::new().unwrap();
    let w = warm.clone();
    let warm_task = tokio::spawn(async move { w.wait_async().await });
    tokio::task::yield_now().await;
    warm.set();
    bounded(warm_task).await.unwrap().unwrap();
    let before = threads();
    // More distinct words than one futex_waitv takes.
    let events: Vec<Event> = (0..200).map(|_| Event::new().unwrap()).collect();
    let mut tasks = Vec::new();
    for e in &events {
        let e = e.clone();
        tasks.push(tokio::spawn(async move { e.wait_async().await }));
    }
    let q: Queue<u8> = Queue::new().unwrap();
    let q2 = q.clone();
    let getter = tokio::spawn(async move { q2.get_async().await });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // At most as many as before: under plain `cargo test` a thread of an earlier test of
    // this binary may still be ending, but none may have started.
    let now = threads();
    assert!(
        now <= before,
        "a waiting call started a thread ({before} before, {now} now)"
    );
    for e in &events {
        e.set();
    }
    q.put(9).unwrap();
    for t in tasks {
        bounded(t).await.unwrap().unwrap();
    }
    assert_eq!(bounded(getter).await.unwrap().unwrap(), 9);
}

fn hold_lock((lock, held, release): (Lock, Event, Event)) {
    let _g = lock.acquire().unwrap();
    held.set();
    assert!(release.wait_timeout(LONG));
}

#[tokio::test(flavor = "current_thread")]
async fn lock_acquire_async_waits_for_a_release_in_another_process() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let (held, release) = (Event::new().unwrap(), Event::new().unwrap());
    let child = Process::start(hold_lock, (lock.clone(), held.clone(), release.clone())).unwrap();
    bounded(held.wait_async()).await.unwrap();
    assert!(
        tokio::time::timeout(SHORT, lock.acquire_async())
            .await
            .is_err()
    );
    release.set();
    let guard = bounded(lock.acquire_async()).await.unwrap();
    drop(guard);
    bounded(child.join_async()).await.unwrap();
}

fn die_holding((lock, held): (Lock, Event)) {
    std::mem::forget(lock.acquire().unwrap());
    held.set();
    std::process::exit(0);
}

#[tokio::test(flavor = "current_thread")]
async fn lock_acquire_async_reports_a_dead_holder() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let child = Process::start(die_holding, (lock.clone(), held.clone())).unwrap();
    bounded(held.wait_async()).await.unwrap();
    let guard = bounded(lock.acquire_async()).await.expect("the lock");
    assert!(guard.owner_died(), "expected the owner-died notice");
    drop(guard);
    assert!(bounded(child.join_async()).await.is_err());
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[tokio::test(flavor = "current_thread")]
async fn join_async_returns_values_errors_and_can_be_cancelled() {
    let _g = common::guard();
    for method in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let quick = ProcessBuilder::new()
            .start_method(method)
            .start(nap, 1)
            .unwrap();
        assert_eq!(bounded(quick.join_async()).await.unwrap(), 1);
        let slow = ProcessBuilder::new()
            .start_method(method)
            .start(nap, 60_000)
            .unwrap();
        assert!(
            tokio::time::timeout(SHORT, slow.wait_async())
                .await
                .is_err()
        );
        slow.kill().unwrap();
        bounded(slow.wait_async()).await.unwrap();
        assert!(matches!(
            bounded(slow.join_async()).await,
            Err(ProcessError::Signaled { .. })
        ));
    }
}

fn client((address, key, n): (Address, Vec<u8>, u32)) -> u32 {
    let mut conn = Client::connect(&address, Some(&key)).unwrap();
    conn.send(&n).unwrap();
    conn.recv::<u32>().unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn async_listener_accepts_authenticated_peers_and_refuses_others() {
    let _g = common::guard();
    let listener = AsyncListener::new(Listener::bind_auto(Some(b"secret")).unwrap()).unwrap();
    let address = listener.address().clone();
    let children: Vec<_> = (0..3)
        .map(|n| Process::start(client, (address.clone(), b"secret".to_vec(), n)).unwrap())
        .collect();
    for _ in 0..3 {
        let mut conn = bounded(listener.accept()).await.unwrap();
        let n: u32 = bounded(conn.recv()).await.unwrap();
        bounded(conn.send(&(n * 10))).await.unwrap();
    }
    let mut results = Vec::new();
    for c in children {
        results.push(bounded(c.join_async()).await.unwrap());
    }
    results.sort();
    assert_eq!(results, [0, 10, 20]);
    // A wrong key fails that accept only.
    let intruder = Process::start(client, (address.clone(), b"wrong".to_vec(), 1)).unwrap();
    assert!(matches!(
        bounded(listener.accept()).await,
        Err(ConnectionError::Authentication(_))
    ));
    assert!(bounded(intruder.join_async()).await.is_err());
    // The listener goes on, and goes back to blocking mode.
    let listener = listener.into_inner().unwrap();
    let peer = std::thread::spawn(move || Client::connect(&address, Some(b"secret")).map(drop));
    drop(listener.accept().unwrap());
    peer.join().unwrap().unwrap();
}

#[test]
fn outside_a_runtime_the_async_types_refuse() {
    let _g = common::guard();
    let (a, _b) = pipe().unwrap();
    assert!(AsyncConnection::new(a).is_err());
}
