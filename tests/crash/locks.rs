//! `Lock` and `RLock`: a waiter killed right after the holder releases a contended lock, and
//! a holder killed while it holds the lock (or around its releases).

use multiproc::{Event, Lock, Process, RLock, RawArray};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::harness::{Round, killed, run, spin_us};

/// Waiters per round.
const WAITERS: usize = 3;

/// What the tests need of `Lock` and `RLock`.
pub trait Lockish: Clone + Serialize + DeserializeOwned + 'static {
    fn create() -> Self;
    /// Acquire (blocking), run `f` holding the lock, release. `Ok(true)`: the previous owner
    /// had died holding it.
    fn with_lock(&self, f: impl FnOnce()) -> Result<bool, String>;
}

impl Lockish for Lock {
    fn create() -> Self {
        Lock::new().expect("creating a Lock")
    }
    fn with_lock(&self, f: impl FnOnce()) -> Result<bool, String> {
        let guard = self
            .acquire()
            .map_err(|e| format!("Lock::acquire: {e:?}"))?;
        let died = guard.owner_died();
        f();
        drop(guard);
        Ok(died)
    }
}

impl Lockish for RLock {
    fn create() -> Self {
        RLock::new().expect("creating an RLock")
    }
    /// Takes the lock twice (recursively), releases it twice.
    fn with_lock(&self, f: impl FnOnce()) -> Result<bool, String> {
        let outer = self
            .acquire()
            .map_err(|e| format!("RLock::acquire: {e:?}"))?;
        let died = outer.owner_died();
        let inner = self
            .acquire()
            .map_err(|e| format!("RLock: recursive acquire: {e:?}"))?;
        f();
        drop(inner);
        drop(outer);
        Ok(died)
    }
}

/// Flags in shared memory, per process: `INSIDE` (holds the lock now) and `DONE`.
const INSIDE: usize = 0;
const DONE: usize = 1;
const FLAGS: usize = 2;

/// A waiter: announce, acquire (blocking), mark itself inside while holding, release.
fn waiter<L: Lockish>((lock, flags, me): (L, RawArray<u64>, usize)) -> Result<bool, String> {
    let died = lock.with_lock(|| {
        flags.set(me * FLAGS + INSIDE, 1);
        spin_us(5);
        flags.set(me * FLAGS + INSIDE, 0);
    })?;
    flags.set(me * FLAGS + DONE, 1);
    Ok(died)
}

/// A holder: take the lock, say so, wait for `go`, keep it `hold_us`, release, then take and
/// release it `again` more times.
fn holder<L: Lockish>(
    (lock, flags, me, held, go, hold_us, again): (L, RawArray<u64>, usize, Event, Event, u64, u32),
) -> Result<u32, String> {
    let mut died = 0;
    let first = lock.with_lock(|| {
        flags.set(me * FLAGS + INSIDE, 1);
        held.set();
        go.wait();
        spin_us(hold_us);
        flags.set(me * FLAGS + INSIDE, 0);
    })?;
    died += u32::from(first);
    for _ in 0..again {
        let d = lock.with_lock(|| {
            flags.set(me * FLAGS + INSIDE, 1);
            spin_us(10);
            flags.set(me * FLAGS + INSIDE, 0);
        })?;
        died += u32::from(d);
    }
    flags.set(me * FLAGS + DONE, 1);
    Ok(died)
}

/// The parent takes and releases the lock `n` times; how many times it found a dead owner.
fn parent_cycles<L: Lockish>(r: &Round, lock: &L, n: u32) -> u32 {
    let mut died = 0;
    for _ in 0..n {
        r.check_abort();
        died += u32::from(
            lock.with_lock(|| {})
                .unwrap_or_else(|e| panic!("parent acquire: {e}")),
        );
    }
    died
}

fn start_waiters<L: Lockish>(
    r: &Round,
    lock: &L,
    flags: &RawArray<u64>,
    first: usize,
) -> Vec<Process<Result<bool, String>>> {
    // One at a time, each asleep before the next starts: the kernel wakes futex waiters in
    // arrival order, so waiter0 is the one a release wakes.
    (0..WAITERS)
        .map(|i| {
            let w = r.start(
                &format!("waiter{i}"),
                waiter::<L>,
                (lock.clone(), flags.clone(), first + i),
            );
            r.wait_in_futex(w.pid());
            w
        })
        .collect()
}

/// The waiter to kill: most often waiter0, the one the release wakes.
fn pick_victim(r: &mut Round) -> usize {
    if r.rng.chance(2, 3) {
        0
    } else {
        r.rng.pick(WAITERS)
    }
}

/// Join the waiters; the survivors must have acquired (Ok or OwnerDied). Returns how many
/// saw OwnerDied.
fn join_waiters(
    r: &Round,
    waiters: Vec<Process<Result<bool, String>>>,
    victim: Option<usize>,
) -> u32 {
    let mut died = 0;
    for (i, w) in waiters.into_iter().enumerate() {
        let res = r.join(w);
        if Some(i) == victim && killed(&res) {
            continue;
        }
        match res {
            Ok(Ok(d)) => died += u32::from(d),
            Ok(Err(e)) => panic!("waiter{i}: {e}"),
            Err(e) => panic!("waiter{i} did not return: {e}"),
        }
    }
    died
}

/// The parent holds the lock while 3 waiters sleep in `acquire`, releases it, and a waiter is
/// killed 0-60 µs later (so often right after it was woken); then the parent takes and
/// releases the lock 3 more times. Every surviving waiter must get the lock.
fn waiter_killed_after_wakeup<L: Lockish>(r: &mut Round) {
    let lock = L::create();
    let flags = RawArray::<u64>::zeroed(WAITERS * FLAGS).expect("flags");
    let victim = pick_victim(r);
    let delay = r.rng.below(61);
    let waiters;
    {
        // Hold the lock while the waiters arrive.
        let mut armed = None;
        let mut started = Vec::new();
        lock.with_lock(|| {
            started = start_waiters(r, &lock, &flags, 0);
            for w in &started {
                r.wait_in_futex(w.pid());
            }
            armed = Some(
                r.killer
                    .arm(started[victim].pid(), &format!("waiter{victim}")),
            );
            r.note("all waiters asleep in acquire; parent releases");
        })
        .unwrap_or_else(|e| panic!("parent acquire: {e}"));
        spin_us(delay);
        if let Some(a) = armed {
            a.fire(&format!("{delay} µs after the parent's release"));
        }
        r.stats.kills += 1;
        waiters = started;
    }
    let parent_died = parent_cycles(r, &lock, 3);
    let died = join_waiters(r, waiters, Some(victim));
    let victim_inside = flags.get(victim * FLAGS + INSIDE) == Some(1);
    r.note(format!(
        "victim waiter{victim}: done {:?}, inside {victim_inside}; OwnerDied seen {}",
        flags.get(victim * FLAGS + DONE),
        died + parent_died
    ));
    check_owner_died(victim_inside, died + parent_died);
    r.stats.items += WAITERS as u64;
}

/// If the victim died inside the lock, exactly one later acquirer saw OwnerDied; otherwise
/// at most one did (it may have died between its last store and the unlock).
fn check_owner_died(victim_inside: bool, died: u32) {
    if victim_inside {
        assert_eq!(
            died, 1,
            "the victim died holding the lock: one OwnerDied expected"
        );
    } else {
        assert!(died <= 1, "{died} acquirers saw OwnerDied after one kill");
    }
}

/// A holder child takes the lock while 3 waiters sleep in `acquire`, keeps it a random time,
/// releases it and takes/releases it 3 more times; it is killed at a random moment of that
/// (holding the lock, right after a release, while waiting for it again). The waiters and
/// the parent must all get the lock, and exactly one of them sees OwnerDied if the holder
/// died inside.
fn holder_killed<L: Lockish>(r: &mut Round) {
    let lock = L::create();
    let flags = RawArray::<u64>::zeroed((WAITERS + 1) * FLAGS).expect("flags");
    let held = Event::new().expect("event");
    let go = Event::new().expect("event");
    let hold_us = r.rng.below(200);
    let h = r.start(
        "holder",
        holder::<L>,
        (
            lock.clone(),
            flags.clone(),
            WAITERS,
            held.clone(),
            go.clone(),
            hold_us,
            3u32,
        ),
    );
    r.wait_event_or(&held, || !h.is_alive());
    let waiters = start_waiters(r, &lock, &flags, 0);
    for w in &waiters {
        r.wait_in_futex(w.pid());
    }
    let armed = r.killer.arm(h.pid(), "holder");
    let delay = r.rng.below(hold_us + 300);
    go.set();
    spin_us(delay);
    armed.fire(&format!("{delay} µs after go (holds {hold_us} µs)"));
    r.stats.kills += 1;
    let hres = r.join(h);
    let mut died = 0;
    if !killed(&hres) {
        match hres {
            Ok(Ok(d)) => died += d,
            other => panic!("holder: {other:?}"),
        }
    }
    died += parent_cycles(r, &lock, 3);
    died += join_waiters(r, waiters, None);
    let inside = flags.get(WAITERS * FLAGS + INSIDE) == Some(1);
    check_owner_died(inside, died);
    r.stats.items += WAITERS as u64 + 1;
}

#[test]
fn lock_waiter_killed_after_wakeup() {
    run(
        "lock_waiter_killed_after_wakeup",
        waiter_killed_after_wakeup::<Lock>,
    );
}

#[test]
fn lock_holder_killed() {
    run("lock_holder_killed", holder_killed::<Lock>);
}

#[test]
fn rlock_waiter_killed_after_wakeup() {
    run(
        "rlock_waiter_killed_after_wakeup",
        waiter_killed_after_wakeup::<RLock>,
    );
}

#[test]
fn rlock_holder_killed() {
    run("rlock_holder_killed", holder_killed::<RLock>);
}
