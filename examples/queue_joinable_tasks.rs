//! A work list on a `JoinableQueue`: consumers mark each task done, and `join` waits until
//! every task put so far has been processed.
//!
//! The Python original (a tutorial's "task scheduling" tip; the task itself was left out):
//!
//! ```python
//! import multiprocessing
//!
//! def producer(queue):
//!     # 生产任务                      # produce tasks
//!     queue.put(task)
//!
//! def consumer(queue):
//!     while True:
//!         task = queue.get()
//!         # 处理任务                  # process the task
//!         queue.task_done()
//!
//! queue = multiprocessing.Queue()
//! producer_process = multiprocessing.Process(target=producer, args=(queue,))
//! consumer_process = multiprocessing.Process(target=consumer, args=(queue,))
//! producer_process.start()
//! consumer_process.start()
//! producer_process.join()
//! queue.join()  # 等待队列中的所有任务被处理   # wait until every task in the queue is processed
//! ```
//!
//! Two fixes were needed to make it run, in Python as here:
//! - `task_done` and `join` belong to `multiprocessing.JoinableQueue`; a plain `Queue` has
//!   neither (Python raises `AttributeError`).
//! - The consumer loops forever, so the program would never end: Python waits for
//!   non-daemonic children at exit. Here each consumer stops at an end marker (`None`), put
//!   once per consumer after the last `join`, and returns how many tasks it did.
//!
//! `join` is used as the schedule: tasks come in three batches, each from its own producer
//! process, and a batch is put only when `join` says the one before is finished. Each result
//! goes into a `SimpleQueue` *before* its task is marked done, so when `join` returns, every
//! result of the batch is there to be read, and none of the next batch can be.
//!
//! Run with `cargo run --release --example queue_joinable_tasks`.

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use multiproc::{JoinableQueue, Process, ProcessBuilder, SimpleQueue, current_process};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Task {
    batch: u32,
    n: u64,
}

/// What a consumer reports for each task.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    batch: u32,
    n: u64,
    steps: u32,
    by: String,
}

const BATCHES: u32 = 3;
const TASKS_PER_BATCH: u64 = 6;
const CONSUMERS: usize = 3;

/// The work: the number of Collatz steps from `n` down to 1.
fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

/// Puts one batch of tasks.
fn producer((queue, batch): (JoinableQueue<Option<Task>>, u32)) {
    for i in 0..TASKS_PER_BATCH {
        let n = 27 + u64::from(batch) * 100 + i;
        queue.put(Some(Task { batch, n })).expect("put");
    }
}

/// Processes tasks until it takes an end marker; returns how many tasks it processed.
fn consumer((queue, results): (JoinableQueue<Option<Task>>, SimpleQueue<Done>)) -> u32 {
    let by = current_process().name;
    let mut processed = 0;
    while let Some(task) = queue.get().expect("get") {
        std::thread::sleep(Duration::from_millis(5)); // a task takes a while
        let steps = collatz_steps(task.n);
        println!("  {by}: batch {} n={} -> {steps} steps", task.batch, task.n);
        // The result first, then `task_done`: whoever returns from `join` finds it there.
        let done = Done {
            batch: task.batch,
            n: task.n,
            steps,
            by: by.clone(),
        };
        results.put(done).expect("put a result");
        queue.task_done().expect("task_done");
        processed += 1;
    }
    // The end marker was put like any task, so it is marked done too.
    queue.task_done().expect("task_done");
    processed
}

fn main() -> Result<(), Box<dyn Error>> {
    let queue = JoinableQueue::new()?;
    let results = SimpleQueue::new()?;
    let consumers = (0..CONSUMERS)
        .map(|i| {
            ProcessBuilder::new()
                .name(format!("consumer-{i}"))
                .start(consumer, (queue.clone(), results.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    for batch in 0..BATCHES {
        println!("batch {batch}:");
        let start = Instant::now();
        let producer_process = Process::start(producer, (queue.clone(), batch))?;
        producer_process.join()?;
        // Every task of the batch has been put; some may be processed already.
        println!(
            "  producer done, {} tasks unfinished",
            queue.unfinished_tasks()
        );
        // Python's `queue.join()`. (`join_timeout` is the same with a limit, for a consumer
        // that might die: a task it took is never marked done.)
        queue.join();
        assert_eq!(queue.unfinished_tasks(), 0);

        // All of this batch's results are in, and nothing else.
        let mut by_consumer: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..TASKS_PER_BATCH {
            let done = results.get()?;
            assert_eq!(done.batch, batch);
            assert_eq!(done.steps, collatz_steps(done.n));
            *by_consumer.entry(done.by).or_default() += 1;
        }
        assert!(results.empty());
        println!(
            "  join returned after {:.1?}; {TASKS_PER_BATCH} results waiting, tasks per \
             consumer {by_consumer:?}",
            start.elapsed()
        );
    }

    // Stop the consumers: one end marker each. No task can be left behind a marker, since
    // the last `join` returned with nothing unfinished.
    for _ in 0..CONSUMERS {
        queue.put(None)?;
    }
    let mut total = 0;
    for c in consumers {
        total += c.join()?;
    }
    queue.join(); // the markers were marked done too
    println!(
        "the {CONSUMERS} consumers processed {total} tasks in all and exited; \
         {} tasks unfinished",
        queue.unfinished_tasks()
    );
    assert_eq!(u64::from(total), u64::from(BATCHES) * TASKS_PER_BATCH);
    Ok(())
}
