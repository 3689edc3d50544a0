//! The crash suite (issue 13): for every blocking operation, start the peers, SIGKILL one of
//! them at a random moment (often right after a wake-up, while it holds a lock, or in the
//! middle of an item), and check that every other process ends within a bound with the
//! right result or a typed error, and that no acknowledged item is lost.
//!
//! Rounds are seeded: the run's seed is printed first, and each round draws from its own
//! generator derived from (seed, test, round), so a failure names the exact round to replay:
//! `MULTIPROC_CRASH_SEED=… MULTIPROC_CRASH_ROUND=… cargo nextest run --test crash NAME`.
//! A watchdog turns a hang into a failure that prints the state (`/proc` stat, wchan,
//! syscall, per thread) of every process involved, then kills them all.
//!
//! See `docs/RELIABILITY.md` for what is tried, the environment variables, and the results.

mod common;

#[path = "crash/harness.rs"]
mod harness;
#[path = "crash/locks.rs"]
mod locks;
#[path = "crash/manager.rs"]
mod manager;
#[path = "crash/pools.rs"]
mod pools;
#[path = "crash/process_conn.rs"]
mod process_conn;
#[path = "crash/queues.rs"]
mod queues;
#[path = "crash/signals.rs"]
mod signals;
