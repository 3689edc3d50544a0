//! Specification of the synchronization primitives shared between processes: `Lock`, `RLock`,
//! `Semaphore`, `BoundedSemaphore`, `Event`, `Condition` and `Barrier`.
//!
//! Tests that involve other processes run once per start method (`fork::name`, `spawn::name`,
//! `forkserver::name`): the primitive reaches the child by inheritance (fork) or as a handle
//! in the child's argument (spawn, fork server).
//!
//! No test can hang: every blocking call either has a timeout (`LONG`, reached only if the
//! library is broken) or runs under `within`, and children are joined with a timeout.

#[macro_use]
mod common;

use common::assert_on_time;

use common::children::{INCREMENTS, LONG, PROCS, join, join_within, kill, start, within};

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use multiproc::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, ProcessBuilder, RLock, RawValue, Semaphore,
    StartMethod, SyncError, Value,
};

/// The timeout given to calls whose timing is under test.
const SHORT: Duration = Duration::from_millis(100);
/// How late a call may return after its timeout. Generous for a loaded 2-core machine; a call
/// that ignored its timeout would run into `LONG` instead.
/// How soon something done by another process (a kill, a notify, an abort) must be noticed.
/// Milliseconds are expected; the bound is generous for a loaded machine and well below
/// `LONG`, so a wake-up is told apart from a timeout.
const PROMPT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A lock guard that tells whether the previous owner died.
trait Held {
    fn owner_died(&self) -> bool;
}

impl Held for multiproc::LockGuard<'_> {
    fn owner_died(&self) -> bool {
        multiproc::LockGuard::owner_died(self)
    }
}

impl Held for multiproc::RLockGuard<'_> {
    fn owner_died(&self) -> bool {
        multiproc::RLockGuard::owner_died(self)
    }
}

impl Held for multiproc::CondGuard<'_> {
    fn owner_died(&self) -> bool {
        multiproc::CondGuard::owner_died(self)
    }
}

/// How a timed acquire ended, as text: `"Ok"`, `"Timeout"`, `"WouldDeadlock"`,
/// `"OwnerDied(..)"`.
fn outcome<G: Held>(r: &Result<Option<G>, SyncError>) -> String {
    match r {
        Ok(Some(g)) if g.owner_died() => "OwnerDied(..)".to_string(),
        Ok(Some(_)) => "Ok".to_string(),
        Ok(None) => "Timeout".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

fn wait_set(event: &Event, what: &str) {
    assert!(event.wait_timeout(LONG), "{what}: not within {LONG:?}");
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

per_start_method!(
    lock_makes_a_read_modify_write_by_several_processes_exact,
    lock_try_acquire_fails_while_another_process_holds_it,
    lock_is_free_for_others_once_the_holding_process_releases_it,
    lock_acquire_returns_owner_died_when_the_holder_was_killed,
    lock_acquire_returns_owner_died_when_the_holder_exited,
    lock_waiter_gets_owner_died_promptly_when_the_holder_is_killed,
    lock_survivors_get_it_when_a_waiter_is_killed_right_after_a_release,
    semaphore_survivors_take_free_permits_when_a_woken_waiter_is_killed,
    rlock_held_by_another_process_blocks_acquire,
    rlock_release_by_another_process_is_not_owner,
    rlock_acquire_returns_owner_died_when_the_holder_was_killed,
    rlock_waiter_gets_owner_died_promptly_when_the_holder_is_killed,
    semaphore_of_two_admits_at_most_two_processes_at_once,
    semaphore_release_in_another_process_wakes_a_waiter,
    event_set_in_another_process_wakes_a_waiter,
    event_set_wakes_every_waiting_process,
    condition_notify_wakes_a_process_waiting_on_it,
    condition_notify_one_wakes_one_waiter_per_call,
    condition_notify_all_wakes_every_waiting_process,
    condition_wait_for_returns_once_another_process_makes_the_predicate_true,
    condition_with_lock_waits_and_holds_the_lock_again_after_waiting,
    condition_over_rlock_keeps_the_recursion_depth_across_wait,
    barrier_releases_parties_together_with_distinct_indices_and_runs_the_action_once_per_cycle,
    barrier_n_waiting_counts_arrived_parties_and_the_last_gets_the_highest_index,
    barrier_timeout_breaks_it_for_every_waiter,
    barrier_abort_breaks_it_for_a_waiting_process,
    barrier_reset_breaks_current_waiters_and_leaves_it_usable,
    barrier_party_killed_before_arriving_cannot_hang_the_others,
    barrier_party_killed_while_waiting_cannot_hang_the_others,
);

// ---------------------------------------------------------------------------------------------
// Lock

fn add_under_lock((lock, counter, n): (Lock, RawValue<u64>, u64)) {
    for _ in 0..n {
        let _guard = lock
            .acquire_timeout(LONG)
            .expect("acquiring the lock")
            .expect("acquiring the lock");
        // A read and a separate write: only the lock keeps increments from being lost.
        counter.set(counter.get() + 1);
    }
}

fn lock_makes_a_read_modify_write_by_several_processes_exact(method: StartMethod) {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let counter = RawValue::new(0u64).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| {
            start(
                method,
                add_under_lock,
                (lock.clone(), counter.clone(), INCREMENTS),
            )
        })
        .collect();
    for child in children {
        join(child);
    }
    assert_eq!(counter.get(), PROCS * INCREMENTS);
}

/// Take the lock, say so, and keep it until told to release it.
fn hold_lock_until_released((lock, held, release): (Lock, Event, Event)) {
    let _guard = lock
        .acquire_timeout(LONG)
        .expect("the child takes the free lock")
        .expect("the child takes the free lock");
    held.set();
    wait_set(&release, "the test never let the child release the lock");
}

fn lock_try_acquire_fails_while_another_process_holds_it(method: StartMethod) {
    let _g = common::guard();
    let (lock, held, release) = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Event::new().unwrap(),
    );
    let child = start(
        method,
        hold_lock_until_released,
        (lock.clone(), held.clone(), release.clone()),
    );
    wait_set(&held, "the child did not take the lock");

    assert_eq!(outcome(&lock.try_acquire()), "Timeout");

    release.set();
    join(child);
}

fn lock_is_free_for_others_once_the_holding_process_releases_it(method: StartMethod) {
    let _g = common::guard();
    let (lock, held, release) = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Event::new().unwrap(),
    );
    let child = start(
        method,
        hold_lock_until_released,
        (lock.clone(), held.clone(), release.clone()),
    );
    wait_set(&held, "the child did not take the lock");
    release.set();

    assert_eq!(outcome(&lock.acquire_timeout(LONG)), "Ok");
    join(child);
}

#[test]
fn lock_acquire_timeout_returns_timeout_on_time() {
    let _g = common::guard();
    let (lock, held, release) = (
        Lock::new().unwrap(),
        Event::new().unwrap(),
        Event::new().unwrap(),
    );
    let child = start(
        StartMethod::Fork,
        hold_lock_until_released,
        (lock.clone(), held.clone(), release.clone()),
    );
    wait_set(&held, "the child did not take the lock");

    let started = Instant::now();
    let result = lock.acquire_timeout(SHORT);
    let waited = started.elapsed();

    assert_eq!(outcome(&result), "Timeout");
    assert_on_time(waited, SHORT);
    release.set();
    join(child);
}

#[test]
fn lock_acquired_again_by_the_thread_holding_it_is_would_deadlock() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let outcomes = within(PROMPT, move || {
        let _held = lock.acquire().expect("acquiring a free lock");
        [
            outcome(&lock.acquire().map(Some)),
            outcome(&lock.acquire_timeout(LONG)),
            outcome(&lock.try_acquire()),
        ]
    });
    assert_eq!(
        outcomes,
        ["WouldDeadlock", "WouldDeadlock", "WouldDeadlock"]
    );
}

#[test]
fn lock_release_when_not_held_is_not_owner() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
}

#[test]
fn lock_release_by_another_thread_is_not_owner_and_keeps_it_held() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let _held = lock
        .acquire_timeout(LONG)
        .expect("acquiring a free lock")
        .expect("acquiring a free lock");
    let other = lock.clone();
    let released = std::thread::spawn(move || other.release()).join().unwrap();
    assert!(matches!(released, Err(SyncError::NotOwner)));
    assert_eq!(outcome(&lock.try_acquire()), "WouldDeadlock");
}

#[test]
fn lock_held_without_a_guard_is_released_explicitly_once() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("acquiring a free lock")
            .expect("acquiring a free lock"),
    );
    assert!(lock.release().is_ok());
    assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

/// Take the lock, never release it, say so, and wait to be killed.
fn die_holding_lock((lock, held): (Lock, Event)) {
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("the child takes the lock")
            .expect("the child takes the lock"),
    );
    held.set();
    std::thread::sleep(LONG);
}

fn lock_acquire_returns_owner_died_when_the_holder_was_killed(method: StartMethod) {
    let _g = common::guard();
    let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
    let child = start(method, die_holding_lock, (lock.clone(), held.clone()));
    wait_set(&held, "the child did not take the lock");
    kill(child);

    let started = Instant::now();
    assert_eq!(outcome(&lock.acquire_timeout(LONG)), "OwnerDied(..)");
    assert!(started.elapsed() < PROMPT);
    // The lock was made consistent again: an ordinary lock from now on.
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

/// Exit the process in the middle of a critical section.
fn exit_holding_lock(lock: Lock) {
    let _guard = lock
        .acquire_timeout(LONG)
        .expect("the child takes the lock")
        .expect("the child takes the lock");
    std::process::exit(0);
}

fn lock_acquire_returns_owner_died_when_the_holder_exited(method: StartMethod) {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let child = start(method, exit_holding_lock, lock.clone());
    assert!(child.join_timeout(LONG).unwrap(), "the child did not exit");
    assert_eq!(child.join().unwrap_err().exitcode(), Some(0));

    assert_eq!(outcome(&lock.acquire_timeout(LONG)), "OwnerDied(..)");
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

/// Take the lock Python-style (no guard), then let the task's handle go, and exit.
fn forget_lock_and_return(lock: Lock) {
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("the child takes the lock")
            .expect("the child takes the lock"),
    );
}

#[test]
fn lock_acquire_returns_owner_died_when_the_holder_exited_after_dropping_its_handle() {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    // With spawn the task's argument is the child's only handle: it is dropped when the task
    // returns, while the lock is still held, before the child exits.
    join(start(
        StartMethod::Spawn,
        forget_lock_and_return,
        lock.clone(),
    ));

    assert_eq!(outcome(&lock.acquire_timeout(PROMPT)), "OwnerDied(..)");
}

#[test]
fn lock_dropped_while_held_without_a_guard_does_not_break_other_locks() {
    let _g = common::guard();
    // In a child, so that a crash (a dangling entry on glibc's robust list) would be observed
    // instead of ending the test binary.
    let child = ProcessBuilder::new()
        .fork(|| {
            let other = Lock::new().unwrap();
            let dropped = Lock::new().unwrap();
            std::mem::forget(
                dropped
                    .acquire_timeout(LONG)
                    .expect("a free lock")
                    .expect("a free lock"),
            );
            drop(dropped);
            outcome(&other.acquire_timeout(LONG))
        })
        .unwrap();

    assert_eq!(join(child), "Ok");
}

/// Run `wait` (an acquire) while another thread kills `child` 200 ms later; returns how long
/// after the kill `wait` returned, and its outcome. The delay makes the kill very likely
/// find the waiter asleep; the expected outcome is the same if it comes first.
fn wait_through_kill<R>(
    child: multiproc::Process<R>,
    wait: impl FnOnce() -> String,
) -> (Duration, String)
where
    R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            let killed_at = Instant::now();
            kill(child);
            killed_at
        });
        let result = wait();
        let woke_at = Instant::now();
        let killed_at = killer.join().unwrap();
        (woke_at.saturating_duration_since(killed_at), result)
    })
}

fn lock_waiter_gets_owner_died_promptly_when_the_holder_is_killed(method: StartMethod) {
    let _g = common::guard();
    let (lock, held) = (Lock::new().unwrap(), Event::new().unwrap());
    let child = start(method, die_holding_lock, (lock.clone(), held.clone()));
    wait_set(&held, "the child did not take the lock");

    let (waited, result) = wait_through_kill(child, || outcome(&lock.acquire_timeout(LONG)));

    assert_eq!(result, "OwnerDied(..)");
    assert!(waited < PROMPT, "woke {waited:?} after the kill");
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

/// A waiter of the lost-wake-up test: announce, wait for the lock, count itself done.
fn acquire_once((lock, arrived, done): (Lock, RawValue<u32>, RawValue<u32>)) {
    arrived.fetch_add(1);
    // (Also when a waiter was killed after being handed the lock: then it is ours anyway.)
    let guard = lock.acquire().unwrap_or_else(|e| panic!("acquire: {e}"));
    done.fetch_add(1);
    drop(guard);
}

/// The seed of the randomized rounds below (`MULTIPROC_TEST_SEED` replays a run).
fn seed() -> u64 {
    let seed = std::env::var("MULTIPROC_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("MULTIPROC_TEST_SEED={seed}");
    seed
}

fn next(state: &mut u64) -> u64 {
    // splitmix64
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Three processes sleep in `acquire`; the holder releases and one waiter is killed 0-60 µs
/// later, possibly after the kernel handed it the lock and before it returned: the others
/// must still get the lock. (With a plain futex mutex the unlock woke only the killed
/// waiter, and the survivors slept forever while the lock was free.)
fn lock_survivors_get_it_when_a_waiter_is_killed_right_after_a_release(method: StartMethod) {
    let _g = common::guard();
    let mut rng = seed();
    for round in 0..25 {
        let lock = Lock::new().unwrap();
        let (arrived, done) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
        let held = lock.acquire().unwrap();
        let kids: Vec<_> = (0..3)
            .map(|_| {
                let arg = (lock.clone(), arrived.clone(), done.clone());
                start(method, acquire_once, arg)
            })
            .collect();
        let asleep = |kids: &[multiproc::Process<()>]| {
            arrived.get() == 3
                && kids
                    .iter()
                    .all(|k| common::proc_stat(k.pid()).is_some_and(|s| s.state == 'S'))
        };
        assert!(common::wait_until(Instant::now() + LONG, || asleep(&kids)));
        let victim = (next(&mut rng) % 3) as usize;
        let delay = Duration::from_nanos(next(&mut rng) % 60_000);
        drop(held);
        let t = Instant::now();
        while t.elapsed() < delay {
            std::hint::spin_loop();
        }
        // The holder goes on at once, racing the death (taking the lock before the kernel
        // has cleaned up after the victim is what the old mutex did not survive).
        let _ = kids[victim].kill();
        for _ in 0..3 {
            match lock.acquire_timeout(LONG) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("round {round}: the holder could not take the lock again"),
                Err(e) => panic!("round {round}: the holder could not take the lock again: {e}"),
            }
        }
        for (i, k) in kids.into_iter().enumerate() {
            let pid = k.pid();
            assert!(
                k.join_timeout(PROMPT).unwrap(),
                "round {round}: a surviving waiter ({pid}) still sleeps while the lock is free"
            );
            if i != victim {
                k.join().unwrap();
            }
        }
    }
}

/// A waiter of the semaphore test: announce, take a permit, count itself done.
fn take_permit((sem, arrived, done, i): (Semaphore, RawValue<u32>, RawValue<u32>, u32)) {
    arrived.fetch_add(1);
    sem.acquire().forget();
    done.fetch_add(1 << (8 * i)); // one byte per child
}

/// Three processes sleep in `Semaphore::acquire`; a permit is released and one sleeper is
/// killed 0-60 µs later, then another permit: no survivor may sleep while a permit is free.
/// (Waking one sleeper per permit lost the permit's wake-up when that sleeper died.)
fn semaphore_survivors_take_free_permits_when_a_woken_waiter_is_killed(method: StartMethod) {
    let _g = common::guard();
    let mut rng = seed();
    for round in 0..25 {
        let sem = Semaphore::new(0).unwrap();
        let (arrived, done) = (RawValue::new(0u32).unwrap(), RawValue::new(0u32).unwrap());
        let kids: Vec<_> = (0..3)
            .map(|i| {
                let arg = (sem.clone(), arrived.clone(), done.clone(), i);
                start(method, take_permit, arg)
            })
            .collect();
        assert!(common::wait_until(Instant::now() + LONG, || {
            arrived.get() == 3
                && kids
                    .iter()
                    .all(|k| common::proc_stat(k.pid()).is_some_and(|s| s.state == 'S'))
        }));
        let victim = (next(&mut rng) % 3) as usize;
        let delay = Duration::from_nanos(next(&mut rng) % 60_000);
        sem.release().unwrap();
        let t = Instant::now();
        while t.elapsed() < delay {
            std::hint::spin_loop();
        }
        let _ = kids[victim].kill();
        sem.release().unwrap();
        let survivors_done = || {
            (0..3)
                .filter(|&i| i != victim && done.get() >> (8 * i) & 0xff == 1)
                .count()
        };
        // Two permits: the victim took at most one; a free permit means nobody sleeps.
        let settled = common::wait_until(Instant::now() + PROMPT, || {
            sem.get_value() == 0 || survivors_done() == 2
        });
        assert!(
            settled,
            "round {round}: a permit is free ({}) while a survivor sleeps ({} done)",
            sem.get_value(),
            survivors_done()
        );
        for _ in survivors_done()..2 {
            sem.release().unwrap(); // the victim's permit, for the last survivor
        }
        for (i, k) in kids.into_iter().enumerate() {
            assert!(
                k.join_timeout(PROMPT).unwrap(),
                "round {round}: a survivor hangs (victim {victim}, this {i}, value {}, done {:x})",
                sem.get_value(),
                done.get()
            );
            if i != victim {
                k.join().unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RLock

#[test]
fn rlock_counts_recursion_and_reports_its_owner() {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    assert_eq!(
        (lock.owner(), lock.count(), lock.is_owned()),
        (None, 0, false)
    );

    let first = lock
        .acquire_timeout(LONG)
        .expect("first level")
        .expect("first level");
    let second = lock
        .acquire_timeout(LONG)
        .expect("second level")
        .expect("second level");
    let third = lock
        .try_acquire()
        .expect("third level")
        .expect("third level");
    assert_eq!(lock.count(), 3);
    assert_eq!(lock.owner(), Some((std::process::id(), gettid())));
    assert!(lock.is_owned());

    drop(third);
    assert_eq!(lock.count(), 2);
    drop(second);
    assert_eq!(lock.count(), 1);
    assert!(lock.is_owned());
    drop(first);
    assert_eq!(
        (lock.owner(), lock.count(), lock.is_owned()),
        (None, 0, false)
    );
}

#[test]
fn rlock_release_when_not_held_is_not_owner() {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
}

#[test]
fn rlock_release_by_another_thread_is_not_owner_and_keeps_it_held() {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    let _held = lock
        .acquire_timeout(LONG)
        .expect("acquiring a free lock")
        .expect("acquiring a free lock");
    let other = lock.clone();
    let released = std::thread::spawn(move || other.release()).join().unwrap();
    assert!(matches!(released, Err(SyncError::NotOwner)));
    assert_eq!((lock.count(), lock.is_owned()), (1, true));
}

#[test]
fn rlock_released_explicitly_once_per_level() {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("first level")
            .expect("first level"),
    );
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("second level")
            .expect("second level"),
    );
    assert!(lock.release().is_ok());
    assert_eq!(lock.count(), 1);
    assert!(lock.release().is_ok());
    assert_eq!(lock.owner(), None);
    assert!(matches!(lock.release(), Err(SyncError::NotOwner)));
}

/// What another process sees of an RLock the test holds: `(owner pid, acquire outcome)`.
fn try_rlock_held_elsewhere(lock: RLock) -> (Option<u32>, bool, String) {
    let owner = lock.owner().map(|(pid, _)| pid);
    (
        owner,
        lock.is_owned(),
        outcome(&lock.acquire_timeout(SHORT)),
    )
}

fn rlock_held_by_another_process_blocks_acquire(method: StartMethod) {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    let _held = lock
        .acquire_timeout(LONG)
        .expect("acquiring a free lock")
        .expect("acquiring a free lock");

    let (owner, owned_there, acquired) =
        join(start(method, try_rlock_held_elsewhere, lock.clone()));

    assert_eq!(owner, Some(std::process::id()));
    assert!(!owned_there);
    assert_eq!(acquired, "Timeout");
}

fn release_rlock_held_elsewhere(lock: RLock) -> String {
    format!("{:?}", lock.release())
}

fn rlock_release_by_another_process_is_not_owner(method: StartMethod) {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    let _held = lock
        .acquire_timeout(LONG)
        .expect("acquiring a free lock")
        .expect("acquiring a free lock");

    let released = join(start(method, release_rlock_held_elsewhere, lock.clone()));

    assert_eq!(released, "Err(NotOwner)");
    assert_eq!((lock.count(), lock.is_owned()), (1, true));
}

fn die_holding_rlock((lock, held): (RLock, Event)) {
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("the child takes the lock")
            .expect("the child takes the lock"),
    );
    std::mem::forget(
        lock.acquire_timeout(LONG)
            .expect("and again")
            .expect("and again"),
    );
    held.set();
    std::thread::sleep(LONG);
}

fn rlock_acquire_returns_owner_died_when_the_holder_was_killed(method: StartMethod) {
    let _g = common::guard();
    let (lock, held) = (RLock::new().unwrap(), Event::new().unwrap());
    let child = start(method, die_holding_rlock, (lock.clone(), held.clone()));
    wait_set(&held, "the child did not take the lock");
    let child_pid = child.pid();
    assert_eq!(lock.owner().map(|(pid, _)| pid), Some(child_pid));
    kill(child);

    match lock.acquire_timeout(LONG) {
        Ok(Some(guard)) if guard.owner_died() => {
            // Ours now, at depth one: the dead owner's levels are gone.
            assert_eq!(lock.owner(), Some((std::process::id(), gettid())));
            assert_eq!(lock.count(), 1);
            drop(guard);
        }
        other => panic!("expected OwnerDied, got {}", outcome(&other)),
    }
    assert_eq!(lock.owner(), None);
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

fn rlock_waiter_gets_owner_died_promptly_when_the_holder_is_killed(method: StartMethod) {
    let _g = common::guard();
    let (lock, held) = (RLock::new().unwrap(), Event::new().unwrap());
    let child = start(method, die_holding_rlock, (lock.clone(), held.clone()));
    wait_set(&held, "the child did not take the lock");

    let (waited, result) = wait_through_kill(child, || outcome(&lock.acquire_timeout(LONG)));

    assert_eq!(result, "OwnerDied(..)");
    assert!(waited < PROMPT, "woke {waited:?} after the kill");
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
}

// ---------------------------------------------------------------------------------------------
// Semaphore, BoundedSemaphore

/// Enter the semaphore-guarded section `rounds` times; returns the most processes seen inside
/// at once (counted by `inside`).
fn enter_guarded_section((sem, inside, rounds): (Semaphore, RawValue<u32>, u32)) -> u32 {
    let mut most = 0;
    for _ in 0..rounds {
        let permit = sem.acquire_timeout(LONG).expect("a permit within LONG");
        let now = inside.fetch_add(1) + 1;
        most = most.max(now);
        // Stay inside a little, so that the others pile up at the semaphore.
        std::thread::sleep(Duration::from_micros(200));
        inside.fetch_sub(1);
        drop(permit);
    }
    most
}

fn semaphore_of_two_admits_at_most_two_processes_at_once(method: StartMethod) {
    let _g = common::guard();
    let sem = Semaphore::new(2).unwrap();
    let inside = RawValue::new(0u32).unwrap();
    let children: Vec<_> = (0..5)
        .map(|_| {
            start(
                method,
                enter_guarded_section,
                (sem.clone(), inside.clone(), 50),
            )
        })
        .collect();
    let most = children.into_iter().map(join).max().unwrap();
    assert!((1..=2).contains(&most), "{most} processes inside at once");
    assert_eq!(sem.get_value(), 2);
}

#[test]
fn semaphore_acquire_timeout_without_permits_returns_none_on_time() {
    let _g = common::guard();
    let sem = Semaphore::new(0).unwrap();
    let started = Instant::now();
    let permit = sem.acquire_timeout(SHORT);
    let waited = started.elapsed();
    assert!(permit.is_none());
    assert_on_time(waited, SHORT);
}

#[test]
fn semaphore_permits_are_taken_and_given_back_by_guards() {
    let _g = common::guard();
    let sem = Semaphore::new(2).unwrap();
    let a = sem.try_acquire().expect("first permit");
    let b = sem.acquire_timeout(LONG).expect("second permit");
    assert_eq!(sem.get_value(), 0);
    drop(a);
    assert_eq!(sem.get_value(), 1);
    drop(b);
    assert_eq!(sem.get_value(), 2);
}

#[test]
fn semaphore_try_acquire_that_fails_takes_and_gives_nothing() {
    let _g = common::guard();
    let sem = Semaphore::new(1).unwrap();
    let _held = sem.try_acquire().expect("the only permit");

    assert!(sem.try_acquire().is_none());

    assert_eq!(sem.get_value(), 0);
    assert!(sem.try_acquire().is_none(), "a second holder was admitted");
}

#[test]
fn semaphore_acquire_timeout_that_times_out_takes_and_gives_nothing() {
    let _g = common::guard();
    let sem = Semaphore::new(1).unwrap();
    let _held = sem.try_acquire().expect("the only permit");

    assert!(sem.acquire_timeout(SHORT).is_none());

    assert_eq!(sem.get_value(), 0);
    assert!(sem.try_acquire().is_none(), "a second holder was admitted");
}

#[test]
fn semaphore_release_may_raise_the_value_above_the_initial_one() {
    let _g = common::guard();
    let sem = Semaphore::new(1).unwrap();
    sem.release().unwrap();
    sem.release().unwrap();
    assert_eq!(sem.get_value(), 3);
}

#[test]
fn bounded_semaphore_release_past_its_initial_value_is_an_error() {
    let _g = common::guard();
    let sem = BoundedSemaphore::new(2).unwrap();
    assert!(matches!(
        sem.release(),
        Err(SyncError::ReleasedTooManyTimes(2))
    ));
    assert_eq!(sem.get_value(), 2);

    sem.try_acquire().expect("a permit").forget();
    sem.release().expect("releasing a taken permit");
    assert!(matches!(
        sem.release(),
        Err(SyncError::ReleasedTooManyTimes(2))
    ));
    assert_eq!(sem.get_value(), 2);
}

fn release_semaphore(sem: Semaphore) {
    sem.release().expect("releasing an unbounded semaphore");
}

fn semaphore_release_in_another_process_wakes_a_waiter(method: StartMethod) {
    let _g = common::guard();
    let sem = Semaphore::new(0).unwrap();
    let child = start(method, release_semaphore, sem.clone());

    let permit = sem.acquire_timeout(LONG);

    assert!(
        permit.is_some(),
        "the child's release did not wake the waiter"
    );
    drop(permit);
    join(child);
}

// ---------------------------------------------------------------------------------------------
// Event

#[test]
fn event_wait_timeout_returns_false_on_time_when_not_set() {
    let _g = common::guard();
    let event = Event::new().unwrap();
    let started = Instant::now();
    let set = event.wait_timeout(SHORT);
    let waited = started.elapsed();
    assert!(!set);
    assert_on_time(waited, SHORT);
}

#[test]
fn event_set_clear_and_is_set() {
    let _g = common::guard();
    let event = Event::new().unwrap();
    assert!(!event.is_set());
    event.set();
    assert!(event.is_set());
    event.set();
    assert!(event.is_set());
    event.clear();
    assert!(!event.is_set());
    assert!(!event.wait_timeout(Duration::ZERO));
}

#[test]
fn event_wait_returns_at_once_when_already_set() {
    let _g = common::guard();
    let event = Event::new().unwrap();
    event.set();
    let waiter = event.clone();
    within(PROMPT, move || waiter.wait());
    assert!(event.wait_timeout(Duration::ZERO));
}

fn set_event(event: Event) {
    event.set();
}

fn event_set_in_another_process_wakes_a_waiter(method: StartMethod) {
    let _g = common::guard();
    let event = Event::new().unwrap();
    let waiter = event.clone();
    let child = start(method, set_event, event.clone());

    within(LONG, move || waiter.wait());

    assert!(event.is_set());
    join(child);
}

/// Wait (at most `LONG`) for the event; say when waiting begins.
fn wait_for_event((event, waiting): (Event, RawValue<u32>)) -> bool {
    waiting.fetch_add(1);
    event.wait_timeout(LONG)
}

fn event_set_wakes_every_waiting_process(method: StartMethod) {
    let _g = common::guard();
    let (event, waiting) = (Event::new().unwrap(), RawValue::new(0u32).unwrap());
    let children: Vec<_> = (0..3)
        .map(|_| start(method, wait_for_event, (event.clone(), waiting.clone())))
        .collect();
    assert!(common::wait_until(Instant::now() + LONG, || waiting.load() == 3));

    event.set();

    for child in children {
        assert!(join_within(child, PROMPT), "a waiter was not woken");
    }
}

// ---------------------------------------------------------------------------------------------
// Condition

fn set_value_and_notify((cond, ready): (Condition, Value<u32>)) {
    let guard = cond
        .acquire_timeout(LONG)
        .expect("the notifier takes the condition's lock")
        .expect("the notifier takes the condition's lock");
    ready.set(1).expect("the value's lock");
    guard.notify_all();
}

fn condition_notify_wakes_a_process_waiting_on_it(method: StartMethod) {
    let _g = common::guard();
    let (cond, ready) = (Condition::new().unwrap(), Value::new(0u32).unwrap());
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    // The child can take the lock, set the value and notify only while we wait.
    let child = start(method, set_value_and_notify, (cond.clone(), ready.clone()));

    while ready.get().unwrap() == 0 {
        assert!(guard.wait_timeout(LONG), "not notified within {LONG:?}");
    }

    drop(guard);
    join(child);
}

/// Wait on the condition until a ticket is available, take it; `false` if none came within
/// `LONG`.
fn take_ticket(
    (cond, tickets, waiting, done): (Condition, RawValue<u32>, RawValue<u32>, RawValue<u32>),
) -> bool {
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("the condition's lock")
        .expect("the condition's lock");
    waiting.fetch_add(1);
    while tickets.load() == 0 {
        if !guard.wait_timeout(LONG) {
            return false;
        }
    }
    tickets.fetch_sub(1);
    done.fetch_add(1);
    true
}

fn condition_notify_one_wakes_one_waiter_per_call(method: StartMethod) {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let [tickets, waiting, done] = [(); 3].map(|()| RawValue::new(0u32).unwrap());
    let children: Vec<_> = (0..2)
        .map(|_| {
            start(
                method,
                take_ticket,
                (cond.clone(), tickets.clone(), waiting.clone(), done.clone()),
            )
        })
        .collect();
    // Each waiter announced itself under the lock; once we hold it, both wait.
    assert!(common::wait_until(Instant::now() + LONG, || waiting.load() == 2));

    for round in 1..=2 {
        let guard = cond
            .acquire_timeout(LONG)
            .expect("the condition's lock")
            .expect("the condition's lock");
        tickets.store(1);
        guard.notify(1);
        drop(guard);
        assert!(
            common::wait_until(Instant::now() + PROMPT, || done.load() == round),
            "notify(1) number {round} woke no waiter"
        );
    }

    for child in children {
        assert!(join(child));
    }
    assert_eq!(tickets.load(), 0);
}

/// Wait on the condition until `go` is set; `false` if a wait timed out, i.e. no notify
/// came.
fn wait_for_go((cond, go, waiting): (Condition, RawValue<u32>, RawValue<u32>)) -> bool {
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("the condition's lock")
        .expect("the condition's lock");
    waiting.fetch_add(1);
    while go.load() == 0 {
        if !guard.wait_timeout(LONG) {
            return false;
        }
    }
    true
}

fn condition_notify_all_wakes_every_waiting_process(method: StartMethod) {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let [go, waiting] = [(); 2].map(|()| RawValue::new(0u32).unwrap());
    let children: Vec<_> = (0..3)
        .map(|_| {
            start(
                method,
                wait_for_go,
                (cond.clone(), go.clone(), waiting.clone()),
            )
        })
        .collect();
    assert!(common::wait_until(Instant::now() + LONG, || waiting.load() == 3));

    let guard = cond
        .acquire_timeout(LONG)
        .expect("the condition's lock")
        .expect("the condition's lock");
    go.store(1);
    guard.notify_all();
    drop(guard);

    for child in children {
        assert!(join_within(child, PROMPT), "a waiter was not notified");
    }
}

#[test]
fn condition_wait_timeout_returns_false_on_time_without_notify() {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let started = Instant::now();
    let notified = guard.wait_timeout(SHORT);
    let waited = started.elapsed();
    assert!(!notified);
    assert_on_time(waited, SHORT);
}

#[test]
fn condition_wait_for_returns_false_on_time_when_the_predicate_stays_false() {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let mut calls = 0;
    let started = Instant::now();
    let result = guard.wait_for(
        || {
            calls += 1;
            false
        },
        Some(SHORT),
    );
    let waited = started.elapsed();
    assert!(!result);
    assert!(calls >= 2, "the predicate was checked {calls} time(s)");
    assert_on_time(waited, SHORT);
}

#[test]
fn condition_wait_for_returns_at_once_when_the_predicate_holds() {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let started = Instant::now();
    assert!(guard.wait_for(|| true, Some(LONG)));
    assert!(guard.wait_for(|| true, None));
    assert!(started.elapsed() < PROMPT);
}

fn condition_wait_for_returns_once_another_process_makes_the_predicate_true(method: StartMethod) {
    let _g = common::guard();
    let (cond, ready) = (Condition::new().unwrap(), Value::new(0u32).unwrap());
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let child = start(method, set_value_and_notify, (cond.clone(), ready.clone()));

    let started = Instant::now();
    let result = guard.wait_for(|| ready.get().unwrap() == 1, Some(LONG));

    assert!(result);
    assert!(started.elapsed() < PROMPT);
    drop(guard);
    join(child);
}

fn condition_with_lock_waits_and_holds_the_lock_again_after_waiting(method: StartMethod) {
    let _g = common::guard();
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(lock.clone()).unwrap();
    let ready = Value::new(0u32).unwrap();
    let mut guard = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    assert_eq!(outcome(&lock.try_acquire()), "WouldDeadlock");
    let child = start(method, set_value_and_notify, (cond.clone(), ready.clone()));

    assert!(guard.wait_for(|| ready.get().unwrap() == 1, Some(LONG)));

    // Held by this thread again after the wait, and free once the guard is gone.
    assert_eq!(outcome(&lock.try_acquire()), "WouldDeadlock");
    drop(guard);
    assert_eq!(outcome(&lock.try_acquire()), "Ok");
    join(child);
}

#[test]
fn condition_new_is_over_a_reentrant_lock() {
    let _g = common::guard();
    let cond = Condition::new().unwrap();
    let outer = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let inner = cond.acquire_timeout(Duration::ZERO);
    assert_eq!(outcome(&inner), "Ok");
    drop(inner);
    drop(outer);
}

fn condition_over_rlock_keeps_the_recursion_depth_across_wait(method: StartMethod) {
    let _g = common::guard();
    let lock = RLock::new().unwrap();
    let cond = Condition::with_rlock(lock.clone()).unwrap();
    let ready = Value::new(0u32).unwrap();
    let _outer = cond
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    let mut inner = cond
        .acquire_timeout(LONG)
        .expect("the lock again")
        .expect("the lock again");
    assert_eq!(lock.count(), 2);
    // The child can notify only if the wait releases both levels.
    let child = start(method, set_value_and_notify, (cond.clone(), ready.clone()));

    assert!(inner.wait_for(|| ready.get().unwrap() == 1, Some(LONG)));

    assert_eq!(lock.count(), 2);
    assert_eq!(lock.owner(), Some((std::process::id(), gettid())));
    drop(inner);
    assert_eq!(lock.count(), 1);
    join(child);
}

// ---------------------------------------------------------------------------------------------
// Barrier

const PARTIES: u32 = 3;
const CYCLES: u32 = 3;

/// The counters of the barrier action in this process: `(action calls, parties passed)`.
/// Each party installs them before waiting, as the action may run in any party.
static ACTION_COUNTERS: Mutex<Option<(RawValue<u32>, RawValue<u32>)>> = Mutex::new(None);

/// The barrier action: counts its calls, and checks that no party of its cycle was released
/// before it ran (in cycle `k`, exactly `k * PARTIES` parties have passed). A panic here
/// breaks the barrier, which the test sees.
fn count_cycle() {
    let (calls, passed) = ACTION_COUNTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .expect("the party installed the action's counters");
    let cycle = calls.fetch_add(1);
    assert_eq!(passed.load(), cycle * PARTIES);
}

/// Pass the barrier `CYCLES` times; returns the index of each pass.
fn barrier_party((barrier, calls, passed): (Barrier, RawValue<u32>, RawValue<u32>)) -> Vec<u32> {
    *ACTION_COUNTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some((calls, passed.clone()));
    (0..CYCLES)
        .map(|_| {
            let index = barrier.wait_timeout(LONG).expect("passing the barrier");
            passed.fetch_add(1);
            index
        })
        .collect()
}

fn barrier_releases_parties_together_with_distinct_indices_and_runs_the_action_once_per_cycle(
    method: StartMethod,
) {
    let _g = common::guard();
    let barrier = Barrier::with_action(PARTIES, count_cycle).unwrap();
    let [calls, passed] = [(); 2].map(|()| RawValue::new(0u32).unwrap());
    let children: Vec<_> = (0..PARTIES)
        .map(|_| {
            start(
                method,
                barrier_party,
                (barrier.clone(), calls.clone(), passed.clone()),
            )
        })
        .collect();
    let indices: Vec<Vec<u32>> = children.into_iter().map(join).collect();

    for cycle in 0..CYCLES as usize {
        let mut of_cycle: Vec<u32> = indices.iter().map(|party| party[cycle]).collect();
        of_cycle.sort();
        assert_eq!(of_cycle, [0, 1, 2], "indices of cycle {cycle}");
    }
    assert_eq!(calls.load(), CYCLES);
    assert_eq!(passed.load(), CYCLES * PARTIES);
    assert!(!barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
}

/// Wait at the barrier (at most `LONG`); the result as text, e.g. `"Ok(0)"` or
/// `"Err(BrokenBarrier)"`.
fn wait_at_barrier(barrier: Barrier) -> String {
    format!("{:?}", barrier.wait_timeout(LONG))
}

fn wait_for_n_waiting(barrier: &Barrier, n: u32) {
    assert!(
        common::wait_until(Instant::now() + LONG, || barrier.n_waiting() == n),
        "{} parties waiting after {LONG:?}, expected {n}",
        barrier.n_waiting()
    );
}

fn barrier_n_waiting_counts_arrived_parties_and_the_last_gets_the_highest_index(
    method: StartMethod,
) {
    let _g = common::guard();
    let barrier = Barrier::new(3).unwrap();
    assert_eq!((barrier.parties(), barrier.n_waiting()), (3, 0));
    let first = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 1);
    let second = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 2);

    let mine = barrier.wait_timeout(LONG).expect("the last party passes");

    assert_eq!(mine, 2);
    assert_eq!(join(first), "Ok(0)");
    assert_eq!(join(second), "Ok(1)");
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn barrier_of_zero_parties_is_invalid() {
    let _g = common::guard();
    assert!(matches!(Barrier::new(0), Err(SyncError::Invalid(_))));
}

fn barrier_timeout_breaks_it_for_every_waiter(method: StartMethod) {
    let _g = common::guard();
    let barrier = Barrier::new(3).unwrap();
    let child = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 1);

    let started = Instant::now();
    let mine = barrier.wait_timeout(SHORT);
    assert_on_time(started.elapsed(), SHORT);

    assert!(matches!(mine, Err(SyncError::BrokenBarrier)));
    assert_eq!(join_within(child, PROMPT), "Err(BrokenBarrier)");
    assert!(barrier.broken());
    // Later arrivals fail at once, whatever their timeout.
    let started = Instant::now();
    assert!(matches!(
        barrier.wait_timeout(LONG),
        Err(SyncError::BrokenBarrier)
    ));
    assert!(started.elapsed() < PROMPT);
}

fn barrier_abort_breaks_it_for_a_waiting_process(method: StartMethod) {
    let _g = common::guard();
    let barrier = Barrier::new(2).unwrap();
    let child = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 1);

    barrier.abort().unwrap();

    assert_eq!(join_within(child, PROMPT), "Err(BrokenBarrier)");
    assert!(barrier.broken());
    assert!(matches!(
        barrier.wait_timeout(LONG),
        Err(SyncError::BrokenBarrier)
    ));
}

#[test]
fn barrier_reset_repairs_a_broken_barrier() {
    let _g = common::guard();
    let barrier = Barrier::new(2).unwrap();
    barrier.abort().unwrap();
    assert!(barrier.broken());

    barrier.reset().unwrap();

    assert!(!barrier.broken());
    assert_eq!(barrier.n_waiting(), 0);
    let child = start(StartMethod::Fork, wait_at_barrier, barrier.clone());
    let mine = barrier
        .wait_timeout(LONG)
        .expect("passing the repaired barrier");
    let theirs = join(child);
    let mut both = [format!("Ok({mine})"), theirs];
    both.sort();
    assert_eq!(both, ["Ok(0)", "Ok(1)"]);
}

fn barrier_reset_breaks_current_waiters_and_leaves_it_usable(method: StartMethod) {
    let _g = common::guard();
    let barrier = Barrier::new(2).unwrap();
    let child = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 1);

    barrier.reset().unwrap();

    assert_eq!(join_within(child, PROMPT), "Err(BrokenBarrier)");
    assert!(!barrier.broken());
    let child = start(method, wait_at_barrier, barrier.clone());
    let mine = barrier
        .wait_timeout(LONG)
        .expect("passing the reset barrier");
    let theirs = join(child);
    let mut both = [format!("Ok({mine})"), theirs];
    both.sort();
    assert_eq!(both, ["Ok(0)", "Ok(1)"]);
}

/// A party that is about to arrive but never does: it waits to be killed.
fn never_arrive((barrier, started): (Barrier, Event)) {
    started.set();
    std::thread::sleep(LONG);
    drop(barrier);
}

fn barrier_party_killed_before_arriving_cannot_hang_the_others(method: StartMethod) {
    let _g = common::guard();
    let barrier = Barrier::new(2).unwrap();
    let started = Event::new().unwrap();
    let child = start(method, never_arrive, (barrier.clone(), started.clone()));
    wait_set(&started, "the child did not start");
    kill(child);

    let t = Instant::now();
    let mine = barrier.wait_timeout(SHORT);

    assert_on_time(t.elapsed(), SHORT);
    assert!(matches!(mine, Err(SyncError::BrokenBarrier)));
    assert!(barrier.broken());
}

fn barrier_party_killed_while_waiting_cannot_hang_the_others(method: StartMethod) {
    let _g = common::guard();
    let barrier = Barrier::new(3).unwrap();
    let child = start(method, wait_at_barrier, barrier.clone());
    wait_for_n_waiting(&barrier, 1);
    kill(child);

    let t = Instant::now();
    let mine = barrier.wait_timeout(SHORT);

    assert_on_time(t.elapsed(), SHORT);
    assert!(matches!(mine, Err(SyncError::BrokenBarrier)));
    assert!(barrier.broken());
}

/// A handle received as another kind of object than it was sent as is refused: a barrier's
/// fields laid over a lock's mutex would overwrite its robust-list pointers.
#[test]
fn a_handle_received_as_another_kind_of_object_is_refused() {
    let _g = common::guard();
    let (mut a, mut b) = multiproc::pipe().unwrap();
    a.send(&Lock::new().unwrap()).unwrap();
    assert!(b.recv::<Barrier>().is_err());
    a.send(&Lock::new().unwrap()).unwrap();
    assert!(b.recv::<Event>().is_err());
    a.send(&Event::new().unwrap()).unwrap();
    assert!(b.recv::<Semaphore>().is_err());
    a.send(&Lock::new().unwrap()).unwrap();
    assert!(
        b.recv::<RLock>().is_ok(),
        "a Lock and an RLock share their state"
    );
    a.send(&Event::new().unwrap()).unwrap();
    assert!(b.recv::<Event>().is_ok());
}

/// A clone of a held lock dropped (as when the lock is passed to a child while held) must
/// not keep the lock's memory and descriptor alive once every handle is gone (it did: 20,000
/// rounds of the crash suite ran out of descriptors).
#[test]
fn dropping_a_clone_of_a_held_lock_leaks_no_descriptor() {
    let _g = common::guard();
    let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let before = open_fds();
    for _ in 0..50 {
        let lock = RLock::new().unwrap();
        let held = lock.acquire().unwrap();
        drop(lock.clone());
        drop(held);
        drop(lock);
    }
    assert!(
        open_fds() <= before + 2,
        "{} descriptors before, {} after",
        before,
        open_fds()
    );
}
