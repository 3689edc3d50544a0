//! Several producers and several consumers sharing one `Queue`.
//!
//! The Python original, from a tutorial that introduces the queue as "a thread- and
//! process-safe first-in-first-out data structure that supports a
//! multi-producer-multi-consumer model":
//!
//! ```python
//! from multiprocessing import Process, Queue
//!
//! def producer(q):
//!     q.put('data')
//!
//! def consumer(q):
//!     print(q.get())
//!
//! if __name__ == '__main__':
//!     q = Queue()
//!     p1 = Process(target=producer, args=(q,))
//!     p2 = Process(target=consumer, args=(q,))
//!     p1.start()
//!     p2.start()
//!     p1.join()
//!     p2.join()
//! ```
//!
//! The first round is that program. The second shows the model the sentence promises:
//! three producers and two consumers on one queue. It checks the two guarantees that hold:
//! every item is taken exactly once, and the items of one producer reach each consumer in
//! the order that producer put them. (How the items are shared out between the consumers
//! depends on scheduling, so it is shown, not checked.)
//!
//! With several consumers, the end marker (`None`) is put once per consumer, after every
//! producer is done: each consumer stops at the first marker it takes.
//!
//! Run with `cargo run --release --example queue_many_workers`.

use std::collections::BTreeMap;
use std::error::Error;

use multiproc::{Process, ProcessBuilder, Queue, current_process};

fn producer(q: Queue<String>) {
    // A `Queue<String>` takes a `String` or a `&String`; a `&str` needs `.to_string()`.
    q.put("data".to_string()).expect("put");
}

fn consumer(q: Queue<String>) {
    // `get` waits until an item is there, so starting the consumer first would work too.
    println!("{}", q.get().expect("get"));
}

const PRODUCERS: usize = 3;
const CONSUMERS: usize = 2;
const ITEMS_EACH: u32 = 10;

/// An item of the second round: who made it, and its number in that producer's sequence.
type Item = (usize, u32);

fn make_items((q, me): (Queue<Option<Item>>, usize)) {
    for seq in 0..ITEMS_EACH {
        q.put(Some((me, seq))).expect("put");
    }
}

/// Takes items until it takes an end marker; returns them in the order taken.
fn take_items(q: Queue<Option<Item>>) -> Vec<Item> {
    let me = current_process().name;
    let mut taken = Vec::new();
    while let Some(item) = q.get().expect("get") {
        taken.push(item);
        // A little work per item, so that both consumers get a share.
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    println!("{me}: took {} items, then an end marker", taken.len());
    taken
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("--- the tutorial's program ---");
    let q = Queue::new()?;
    let p1 = Process::start(producer, q.clone())?;
    let p2 = Process::start(consumer, q.clone())?;
    p1.join()?;
    p2.join()?;

    println!("\n--- {PRODUCERS} producers, {CONSUMERS} consumers, one queue ---");
    let q = Queue::new()?;
    let consumers = (0..CONSUMERS)
        .map(|i| {
            ProcessBuilder::new()
                .name(format!("consumer-{i}"))
                .start(take_items, q.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let producers = (0..PRODUCERS)
        .map(|i| Process::start(make_items, (q.clone(), i)))
        .collect::<Result<Vec<_>, _>>()?;
    for p in producers {
        p.join()?;
    }
    // Every item is in the queue now, ahead of the markers: one marker per consumer.
    for _ in 0..CONSUMERS {
        q.put(None)?;
    }
    let mut everything = Vec::new();
    for (i, c) in consumers.into_iter().enumerate() {
        let taken = c.join()?;
        // Per producer, the sequence numbers this consumer saw, in the order it saw them.
        let mut by_producer: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for &(producer, seq) in &taken {
            by_producer.entry(producer).or_default().push(seq);
        }
        for (producer, seqs) in &by_producer {
            println!("consumer-{i} got from producer {producer}: {seqs:?}");
            // FIFO per producer: each consumer sees one producer's items in increasing order.
            assert!(seqs.is_sorted(), "out of order: {seqs:?}");
        }
        everything.extend(taken);
    }
    // Exactly once: no item lost, none duplicated.
    everything.sort();
    let expected: Vec<Item> = (0..PRODUCERS)
        .flat_map(|p| (0..ITEMS_EACH).map(move |seq| (p, seq)))
        .collect();
    assert_eq!(everything, expected);
    assert!(q.empty());
    println!(
        "all {} items taken exactly once, in each producer's order",
        expected.len()
    );
    Ok(())
}
