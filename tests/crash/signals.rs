//! `Condition`, `Semaphore`, `Event` and `Barrier`: waiters killed around their wake-up,
//! notifiers killed while holding the condition's lock, barrier parties killed at any moment.

use std::time::Duration;

use multiproc::{Barrier, Condition, Event, Process, RawArray, Semaphore, SyncError};

use crate::harness::{Round, alive, killed, run, run_slow, spin_us};

const WAITERS: usize = 3;

fn join_survivors<T: std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned + 'static>(
    r: &Round,
    procs: Vec<Process<Result<T, String>>>,
    victim: Option<usize>,
    role: &str,
) -> Vec<Option<T>> {
    procs
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let res = r.join(p);
            if Some(i) == victim && killed(&res) {
                return None;
            }
            match res {
                Ok(Ok(v)) => Some(v),
                Ok(Err(e)) => panic!("{role}{i}: {e}"),
                Err(e) => panic!("{role}{i} did not return: {e}"),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Condition

/// Shared words of the condition test.
const FLAG: usize = 0;
const WAITING: usize = 1;
const WOKEN: usize = 2;

fn cond_lock(cond: &Condition) -> Result<multiproc::CondGuard<'_>, String> {
    cond.acquire()
        .map_err(|e| format!("Condition::acquire: {e:?}"))
}

/// Wait (no timeout) until the flag is set.
fn cond_waiter((cond, words): (Condition, RawArray<u64>)) -> Result<(), String> {
    let mut g = cond_lock(&cond)?;
    words.fetch_add(WAITING, 1);
    g.wait_for(|| words.get(FLAG) == Some(1), None);
    words.fetch_add(WOKEN, 1);
    drop(g);
    Ok(())
}

/// Set the flag and notify all under the lock, say so, then keep the lock `hold_us`.
fn cond_notifier(
    (cond, words, told, hold_us): (Condition, RawArray<u64>, Event, u64),
) -> Result<(), String> {
    let g = cond_lock(&cond)?;
    words.set(FLAG, 1);
    g.notify_all();
    told.set();
    spin_us(hold_us);
    drop(g);
    Ok(())
}

/// 3 processes wait on a condition; the flag is set and `notify_all` called, by the parent
/// (then a waiter is killed 0-100 µs later, while the woken waiters contend for the lock) or
/// by a notifier child (then the notifier, holding the lock, or a waiter is killed). Every
/// surviving waiter must return.
fn condition_waiter_or_notifier_killed_round(r: &mut Round) {
    let cond = Condition::new().expect("condition");
    let words = RawArray::<u64>::zeroed(3).expect("words");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            r.start(
                &format!("waiter{i}"),
                cond_waiter,
                (cond.clone(), words.clone()),
            )
        })
        .collect();
    r.wait_until(|| words.get(WAITING) == Some(WAITERS as u64));
    for w in &waiters {
        r.wait_in_futex(w.pid());
    }
    let by_child = r.rng.chance(1, 2);
    let delay = r.rng.below(101);
    let mut victim = None;
    if by_child {
        let told = Event::new().expect("event");
        let hold_us = r.rng.below(100);
        let n = r.start(
            "notifier",
            cond_notifier,
            (cond.clone(), words.clone(), told.clone(), hold_us),
        );
        let kill_notifier = r.rng.chance(1, 2);
        let (pid, role) = if kill_notifier {
            (n.pid(), "notifier".to_string())
        } else {
            let v = r.rng.pick(WAITERS);
            victim = Some(v);
            (waiters[v].pid(), format!("waiter{v}"))
        };
        let armed = r.killer.arm(pid, &role);
        r.wait_event_or(&told, || !n.is_alive());
        spin_us(delay);
        armed.fire(&format!(
            "{delay} µs after notify_all (notifier holds {hold_us} µs)"
        ));
        r.stats.kills += 1;
        let res = r.join(n);
        if !(kill_notifier && killed(&res)) {
            match res {
                Ok(Ok(())) => {}
                other => panic!("notifier: {other:?}"),
            }
        }
    } else {
        let v = r.rng.pick(WAITERS);
        victim = Some(v);
        let armed = r.killer.arm(waiters[v].pid(), &format!("waiter{v}"));
        {
            let g = cond_lock(&cond).unwrap_or_else(|e| panic!("parent: {e}"));
            words.set(FLAG, 1);
            g.notify_all();
        }
        spin_us(delay);
        armed.fire(&format!(
            "{delay} µs after the parent's notify_all and release"
        ));
        r.stats.kills += 1;
    }
    join_survivors(r, waiters, victim, "waiter");
    // The condition's lock is still usable.
    for _ in 0..3 {
        drop(cond_lock(&cond).unwrap_or_else(|e| panic!("parent: {e}")));
    }
    r.stats.items += WAITERS as u64;
}

#[test]
fn condition_waiter_or_notifier_killed() {
    run(
        "condition_waiter_or_notifier_killed",
        condition_waiter_or_notifier_killed_round,
    );
}

// ---------------------------------------------------------------------------------------------
// Semaphore

/// Take one permit (blocking) and keep it.
fn sem_waiter((sem, got, me): (Semaphore, RawArray<u64>, usize)) -> Result<(), String> {
    sem.acquire().forget();
    got.set(me, 1);
    Ok(())
}

/// 3 processes wait on a semaphore of 0. The parent releases one permit and kills a waiter
/// 0-60 µs later (often right after the release woke it), then releases the other two, one at
/// a time, each after the previous permit was taken. A permit that stays available while a
/// surviving waiter sleeps is a lost wake-up; every surviving waiter must get a permit.
fn semaphore_waiter_killed_after_wakeup_round(r: &mut Round) {
    let sem = Semaphore::new(0).expect("semaphore");
    let got = RawArray::<u64>::zeroed(WAITERS).expect("got");
    // One at a time, each asleep before the next starts: waiter0 is woken first.
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            let w = r.start(
                &format!("waiter{i}"),
                sem_waiter,
                (sem.clone(), got.clone(), i),
            );
            r.wait_in_futex(w.pid());
            w
        })
        .collect();
    let victim = if r.rng.chance(2, 3) {
        0
    } else {
        r.rng.pick(WAITERS)
    };
    let delay = r.rng.below(61);
    let mut armed = Some(
        r.killer
            .arm(waiters[victim].pid(), &format!("waiter{victim}")),
    );
    let pids: Vec<u32> = waiters.iter().map(|w| w.pid()).collect();
    for k in 0..WAITERS {
        sem.release().expect("release");
        if let Some(a) = armed.take() {
            spin_us(delay);
            a.fire(&format!("{delay} µs after the first release"));
            r.stats.kills += 1;
        }
        // Wait until the permit is taken, or no surviving waiter is left without one.
        let since = std::time::Instant::now();
        let mut told = false;
        r.wait_until(|| {
            if !told && since.elapsed() > Duration::from_secs(2) {
                told = true;
                r.note(format!(
                    "2 s after release {k}: value {}, waiters that got a permit {:?}",
                    sem.get_value(),
                    got.to_vec()
                ));
            }
            sem.get_value() == 0
                || (0..WAITERS).all(|i| i == victim || got.get(i) == Some(1) || !alive(pids[i]))
        });
    }
    join_survivors(r, waiters, Some(victim), "waiter");
    let taken: u64 = (0..WAITERS)
        .filter(|&i| i != victim)
        .map(|i| got.get(i).unwrap_or(0))
        .sum();
    let left = u64::from(sem.get_value());
    assert_eq!(
        taken,
        WAITERS as u64 - 1,
        "every surviving waiter has a permit"
    );
    assert!(
        taken + left == 3 || taken + left == 2,
        "permits: {taken} taken by survivors, {left} left, of 3 (the victim may hold one)"
    );
    r.stats.items += WAITERS as u64;
}

#[test]
fn semaphore_waiter_killed_after_wakeup() {
    run(
        "semaphore_waiter_killed_after_wakeup",
        semaphore_waiter_killed_after_wakeup_round,
    );
}

// ---------------------------------------------------------------------------------------------
// Event

fn event_waiter((ev, next): (Event, Event)) -> Result<(), String> {
    ev.wait();
    next.wait();
    Ok(())
}

/// 3 processes wait on an event; the parent sets it and kills a waiter 0-100 µs later, then
/// sets a second event the survivors wait on next. Every surviving waiter must return.
fn event_waiter_killed_round(r: &mut Round) {
    let ev = Event::new().expect("event");
    let next = Event::new().expect("event");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|i| {
            r.start(
                &format!("waiter{i}"),
                event_waiter,
                (ev.clone(), next.clone()),
            )
        })
        .collect();
    for w in &waiters {
        r.wait_in_futex(w.pid());
    }
    let victim = r.rng.pick(WAITERS);
    let delay = r.rng.below(101);
    let armed = r
        .killer
        .arm(waiters[victim].pid(), &format!("waiter{victim}"));
    ev.set();
    spin_us(delay);
    armed.fire(&format!("{delay} µs after set"));
    r.stats.kills += 1;
    next.set();
    join_survivors(r, waiters, Some(victim), "waiter");
    r.stats.items += WAITERS as u64;
}

#[test]
fn event_waiter_killed() {
    run("event_waiter_killed", event_waiter_killed_round);
}

// ---------------------------------------------------------------------------------------------
// Barrier

const PARTIES: usize = 4;
const CYCLES: u32 = 5;
/// The parties' timeout: a party killed before arriving breaks the barrier through it. Short,
/// because every round that kills a party spends it; a party merely descheduled that long
/// breaks the barrier too, which is a correct outcome the round accepts.
const BARRIER_TIMEOUT: Duration = Duration::from_millis(50);

/// Pass the barrier once without a timeout (so that slow start-ups never break it), then
/// `CYCLES` times with [`BARRIER_TIMEOUT`]; set `mark` after cycle `mark_at`. Returns the
/// cycles passed and whether the barrier broke.
fn party((b, mark_at, mark): (Barrier, u32, Event)) -> Result<(u32, bool), String> {
    b.wait().map_err(|e| format!("start wait: {e}"))?;
    for c in 0..CYCLES {
        if c == mark_at {
            mark.set();
        }
        match b.wait_timeout(BARRIER_TIMEOUT) {
            Ok(_) => {}
            Err(SyncError::BrokenBarrier) => return Ok((c, true)),
            Err(e) => return Err(format!("barrier wait: {e}")),
        }
    }
    Ok((CYCLES, false))
}

/// 4 parties pass a barrier 5 times; one is killed 0-300 µs after it reaches a random cycle.
/// The survivors must each finish every cycle or get `BrokenBarrier` (within the parties'
/// timeout), never hang.
fn barrier_party_killed_round(r: &mut Round) {
    let b = Barrier::new(PARTIES as u32).expect("barrier");
    let victim = r.rng.pick(PARTIES);
    let mark_at = r.rng.below(u64::from(CYCLES)) as u32;
    let mark = Event::new().expect("event");
    let parties: Vec<_> = (0..PARTIES)
        .map(|i| {
            let at = if i == victim { mark_at } else { u32::MAX };
            r.start(&format!("party{i}"), party, (b.clone(), at, mark.clone()))
        })
        .collect();
    let armed = r
        .killer
        .arm(parties[victim].pid(), &format!("party{victim}"));
    r.wait_event_or(&mark, || !parties[victim].is_alive());
    let delay = r.rng.below(301);
    spin_us(delay);
    armed.fire(&format!("{delay} µs after it reached cycle {mark_at}"));
    r.stats.kills += 1;
    let results = join_survivors(r, parties, Some(victim), "party");
    let passed: Vec<(u32, bool)> = results.into_iter().flatten().collect();
    let min = passed.iter().map(|p| p.0).min().unwrap_or(0);
    let max = passed.iter().map(|p| p.0).max().unwrap_or(0);
    assert!(
        max - min <= 1,
        "survivors passed different numbers of cycles: {passed:?}"
    );
    r.stats.items += PARTIES as u64;
}

#[test]
fn barrier_party_killed() {
    run_slow("barrier_party_killed", barrier_party_killed_round);
}
