//! A tokio server that stays responsive while processes do the work (`multiproc::aio`).
//!
//! One runtime thread (a current-thread runtime, so any blocking call would show) runs:
//! - an `AsyncListener` accepting authenticated clients (client processes started here);
//! - for each accepted connection, a worker *process* (started from tokio's blocking pool:
//!   starting is a short blocking round trip to the fork server) that gets the connection
//!   itself, reads
//!   the client's job, does CPU-bound work, answers the client directly and reports to a
//!   results `Queue`;
//! - tasks awaiting the workers' and clients' ends (`join_async`), the results
//!   (`get_async`), and the end of the clients (an `Event`);
//! - a ticker task that wakes every millisecond and records how late it was.
//!
//! `cargo run --release --example async_server`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use multiproc::aio::AsyncListener;
use multiproc::listener::{Address, Client, Listener};
use multiproc::{Connection, Event, Process, Queue};

const CLIENTS: u64 = 8;
const KEY: &[u8] = b"async-server-example";

/// Count the primes below `n` (deliberately slow: the work the server must not do itself).
fn count_primes(n: u64) -> u64 {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count() as u64
}

/// A client process: connect, ask, wait for the answer.
fn client((address, n): (Address, u64)) -> (u64, u64) {
    let mut conn = Client::connect(&address, Some(KEY)).expect("connect");
    conn.send(&n).expect("send the job");
    (n, conn.recv::<u64>().expect("receive the answer"))
}

/// A worker process: it owns the client's connection.
fn worker((mut conn, results): (Connection, Queue<(u32, u64, u64)>)) {
    // Background work: let the server's thread have a CPU first (on a machine with fewer
    // CPUs than workers, the ticker's lag is otherwise the scheduler's time slice).
    // SAFETY: `nice` only changes this process's scheduling priority.
    unsafe { libc::nice(10) };
    let n: u64 = conn.recv().expect("the job");
    let primes = count_primes(n);
    conn.send(&primes).expect("answer the client");
    results
        .put((std::process::id(), n, primes))
        .expect("report");
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();

    // The ticker: how late does a 1 ms timer fire while everything else runs?
    let stop = Arc::new(AtomicBool::new(false));
    let max_lag_us = Arc::new(AtomicU64::new(0));
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let (stop, max_lag_us, ticks) = (stop.clone(), max_lag_us.clone(), ticks.clone());
        async move {
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::Relaxed) {
                let due = interval.tick().await;
                let lag = due.elapsed().as_micros() as u64;
                max_lag_us.fetch_max(lag, Ordering::Relaxed);
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let listener = AsyncListener::new(Listener::bind_auto(Some(KEY))?)?;
    let results: Queue<(u32, u64, u64)> = Queue::new()?;
    let clients_done = Event::new()?;

    // The clients, each asking for a different amount of work.
    // Starting a process is a short blocking call (a round trip to the fork server), so it
    // runs on tokio's blocking pool; everything that *waits* is a future.
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let job = 200_000 + 50_000 * i;
        let address = listener.address().clone();
        clients.push(
            tokio::task::spawn_blocking(move || Process::start(client, (address, job))).await??,
        );
    }
    let client_waiter = tokio::spawn({
        let clients_done = clients_done.clone();
        async move {
            let mut answers = Vec::new();
            for c in clients {
                answers.push(c.join_async().await.expect("a client failed"));
            }
            clients_done.set();
            answers
        }
    });

    // Accept each client and hand its connection to a worker process.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let conn = listener.accept().await?.into_inner().await?;
        let results = results.clone();
        let worker =
            tokio::task::spawn_blocking(move || Process::start(worker, (conn, results))).await??;
        workers.spawn(async move { worker.join_async().await });
    }
    println!(
        "accepted {CLIENTS} clients in {:.1} ms; workers are computing",
        started.elapsed().as_secs_f64() * 1e3
    );

    // The results, as the workers report them.
    for _ in 0..CLIENTS {
        let (pid, n, primes) = results.get_async().await?;
        println!("worker {pid}: {primes} primes below {n}");
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    clients_done.wait_async().await?;
    let answers = client_waiter.await?;
    for (n, primes) in &answers {
        assert_eq!(*primes, count_primes_quick(*n));
    }

    stop.store(true, Ordering::Relaxed);
    ticker.await?;
    println!(
        "{CLIENTS} clients answered in {:.1} ms; ticker: {} ticks, max lag {:.2} ms",
        started.elapsed().as_secs_f64() * 1e3,
        ticks.load(Ordering::Relaxed),
        max_lag_us.load(Ordering::Relaxed) as f64 / 1e3
    );
    Ok(())
}

/// The same count by a sieve, to check the workers' answers.
fn count_primes_quick(n: u64) -> u64 {
    let n = n as usize;
    let mut composite = vec![false; n.max(2)];
    let mut count = 0;
    for k in 2..n {
        if !composite[k] {
            count += 1;
            let mut m = k * k;
            while m < n {
                composite[m] = true;
                m += k;
            }
        }
    }
    count
}
