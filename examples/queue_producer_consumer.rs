//! A producer and a consumer process joined by a `Queue`, with an end marker.
//!
//! The Python original:
//!
//! ```python
//! from multiprocessing import Process, Queue
//!
//! def producer(queue):
//!     for i in range(5):
//!         queue.put(i)
//!         print(f"生产者放入: {i}")      # producer put: {i}
//!
//! def consumer(queue):
//!     while True:
//!         item = queue.get()
//!         if item is None:  # 结束信号   # the end signal
//!             break
//!         print(f"消费者取出: {item}")   # consumer took: {item}
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     p1 = Process(target=producer, args=(q,))
//!     p2 = Process(target=consumer, args=(q,))
//!     p1.start()
//!     p2.start()
//!     p1.join()
//!     q.put(None)  # 发送结束信号         # send the end signal
//!     p2.join()
//!     print("完成")                      # done
//! ```
//!
//! A Rust queue carries one item type, so "an int or None" is written `Option<i32>`: the
//! producer puts `Some(i)`, the end marker is `None`, and the consumer's loop is
//! `while let Some(item) = queue.get()?`.
//!
//! A second round turns it around: the producer is a child that sends the end marker itself,
//! the consumer is the parent, the queue is bounded (`maxsize`), and the end marker is an enum
//! variant that carries a summary, for when `None` is not enough.
//!
//! Run with `cargo run --release --example queue_producer_consumer`.

use std::error::Error;
use std::time::{Duration, SystemTime};

use multiproc::{Process, Queue};
use serde::{Deserialize, Serialize};

fn producer(queue: Queue<Option<i32>>) {
    for i in 0..5 {
        // `put` fails only if the item cannot be encoded or the handle was closed; in a child
        // a panic is reported to the parent's `join`, with its message and location.
        queue.put(Some(i)).expect("put");
        println!("producer put:  {i}");
    }
}

/// Takes items until the end marker; returns them, so the parent can check what arrived.
fn consumer(queue: Queue<Option<i32>>) -> Vec<i32> {
    let mut taken = Vec::new();
    while let Some(item) = queue.get().expect("get") {
        println!("consumer took: {item}");
        taken.push(item);
    }
    taken
}

/// What the second round's producer sends: lines, then an end marker with a count.
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Line(String),
    Done { lines: usize },
}

const POEM: &[&str] = &[
    "The queue is a ring in shared memory,",
    "two items deep in this round;",
    "the producer waits when it is full",
    "and goes on when the consumer",
    "has taken something out.",
];

/// Sends the poem, a line at a time, then `Msg::Done`. Returns the largest number of items
/// it saw waiting in the queue right after one of its puts.
fn reciter((queue, start): (Queue<Msg>, SystemTime)) -> usize {
    let mut most_waiting = 0;
    for (i, line) in POEM.iter().enumerate() {
        // On a full queue `put` waits for room: a slow consumer slows the producer down
        // instead of letting items pile up.
        queue.put(Msg::Line(line.to_string())).expect("put");
        println!("{:>5.1} ms  producer: line {} put", ms(start), i + 1);
        most_waiting = most_waiting.max(queue.qsize());
    }
    queue.put(Msg::Done { lines: POEM.len() }).expect("put");
    most_waiting
}

/// Milliseconds since `start`. (A `SystemTime`, unlike an `Instant`, can be sent to a child,
/// so both processes print times on the same clock.)
fn ms(start: SystemTime) -> f64 {
    start.elapsed().unwrap_or_default().as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("--- the tutorial's program ---");
    let q = Queue::new()?;
    // A clone of a queue is another handle on the same queue; each child gets its own.
    let p1 = Process::start(producer, q.clone())?;
    let p2 = Process::start(consumer, q.clone())?;
    // In Python, joining a process that still has items in its queue's feeder thread can
    // deadlock (the docs' "joining processes that use queues"). Here `put` has written the
    // item into shared memory when it returns, so joining the producer is always safe.
    p1.join()?;
    q.put(None)?; // the end marker
    let taken = p2.join()?;
    println!("done: the consumer took {taken:?}");
    assert_eq!(taken, [0, 1, 2, 3, 4]);

    println!("\n--- a bounded queue, and an end marker that carries a summary ---");
    let q = Queue::with_maxsize(2)?;
    let start = SystemTime::now();
    let child = Process::start(reciter, (q.clone(), start))?;
    let mut lines = Vec::new();
    loop {
        match q.get()? {
            Msg::Line(line) => {
                println!("{:>5.1} ms  consumer: {line}", ms(start));
                lines.push(line);
                // A slow consumer: the producer can only ever be two lines ahead.
                std::thread::sleep(Duration::from_millis(20));
            }
            Msg::Done { lines: sent } => {
                println!("end marker: {sent} lines sent, {} received", lines.len());
                assert_eq!(sent, lines.len());
                break;
            }
        }
    }
    let most_waiting = child.join()?;
    println!(
        "at most {most_waiting} lines were waiting in the queue (maxsize {})",
        q.maxsize()
    );
    assert!(most_waiting <= q.maxsize());
    assert_eq!(lines, POEM);
    Ok(())
}
