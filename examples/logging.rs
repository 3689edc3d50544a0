//! Logging from children, as the seeds' "logging" chapter wants it: every process's records
//! in the parent's log, each labelled with the process it came from.
//!
//! `cargo run --example logging` (set `MULTIPROC_PREFIX=1` to also prefix children's prints).

use std::time::Duration;

use log::LevelFilter;
use multiproc::{Pool, Process, StartMethod, logging};

fn worker(n: u32) -> u32 {
    log::info!("worker {n} starting");
    std::thread::sleep(Duration::from_millis(10 * u64::from(n)));
    log::debug!("not shown: the parent's level is Info");
    log::warn!("worker {n} done");
    n * 10
}

fn square(x: u64) -> u64 {
    if x == 3 {
        log::warn!("three is a bit odd");
    }
    x * x
}

fn chatty(_: ()) {
    println!("a line printed by the child");
    eprintln!("and one on its stderr");
}

fn crash(_: ()) {
    panic!("something went wrong in the child");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One call: children's records and the library's own events, on stderr, with names.
    logging::log_to_stderr(LevelFilter::Info)?;
    log::info!("the parent starts three children");

    let methods = [
        StartMethod::Spawn,
        StartMethod::Fork,
        StartMethod::ForkServer,
    ];
    let children: Vec<_> = methods
        .iter()
        .zip(1..)
        .map(|(&method, n)| {
            Process::builder()
                .name(format!("{method}-worker"))
                .start_method(method)
                .start(worker, n)
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let result = child.join()?;
        log::info!("got {result}");
    }

    // Pool workers log too; the library says when a task fails or a worker is replaced.
    let pool = Pool::new(2)?;
    let squares = pool.map(square, 1..=4)?;
    log::info!("squares: {squares:?}");
    drop(pool);

    if std::env::var_os("MULTIPROC_PREFIX").is_some() {
        logging::prefix_child_output(true);
        Process::builder()
            .name("printer")
            .start(chatty, ())?
            .join()?;
        logging::prefix_child_output(false);
    }

    // A panic is shown once, as an error record naming the child, and comes back from join.
    let err = Process::builder()
        .name("crasher")
        .start(crash, ())?
        .join()
        .unwrap_err();
    log::info!("join said: {err}");
    Ok(())
}
