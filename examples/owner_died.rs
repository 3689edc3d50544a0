//! A process killed while holding a lock: the next owner is told, repairs, and goes on.
//!
//! Python cannot do this. If a process dies inside `with lock:`, its `multiprocessing.Lock`
//! stays taken forever, and every process that tries to acquire it hangs:
//!
//! ```python
//! def transfer(lock, accounts, amount):
//!     with lock:
//!         accounts[0] -= amount   # debit alice
//!         time.sleep(60)          # ... killed here, before crediting bob
//!         accounts[1] += amount
//!
//! p = Process(target=transfer, args=(lock, accounts, 30)); p.start()
//! time.sleep(0.1); p.kill(); p.join()
//! with lock:                      # blocks forever
//!     ...
//! ```
//!
//! Here the lock is a robust mutex: when its holder dies, the kernel marks it, and the next
//! `acquire` returns the lock with a guard whose `owner_died()` is true. The caller *has* the
//! lock and is told that the data it protects may be half-updated, so it can repair it
//! before anyone else sees it.
//!
//! Run with `cargo run --release --example owner_died`.

use std::error::Error;
use std::time::Duration;

use bytemuck::{Pod, Zeroable};
use multiproc::{Event, Lock, Process, ProcessError, RawValue};
use serde::{Deserialize, Serialize};

/// The protected state: two balances that always add up to `TOTAL`, and a one-entry
/// journal. A type in shared memory must be plain data (`Pod`: no pointers, no padding),
/// hence `#[repr(C)]` and the bytemuck derives.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct Accounts {
    alice: i64,
    bob: i64,
    /// The amount of the transfer in progress (written first, cleared last).
    in_flight: i64,
}

const TOTAL: i64 = 200;

#[derive(Clone, Serialize, Deserialize)]
struct Bank {
    lock: Lock,
    /// No lock of its own (`RawValue`): `lock` protects it.
    accounts: RawValue<Accounts>,
}

/// Moves `amount` from alice to bob under the lock. If `debited` is given, announces the
/// half-done transfer and then hangs, waiting to be killed.
fn transfer((bank, amount, debited): (Bank, i64, Option<Event>)) {
    let _guard = bank.lock.acquire().expect("lock");
    let mut a = bank.accounts.get();
    a.in_flight = amount;
    bank.accounts.set(a);
    a.alice -= amount;
    bank.accounts.set(a);
    if let Some(debited) = debited {
        debited.set();
        std::thread::sleep(Duration::from_secs(60)); // killed here
    }
    a.bob += amount;
    bank.accounts.set(a);
    a.in_flight = 0;
    bank.accounts.set(a);
}

/// Bring the accounts back to a consistent state after a transfer died half-way: if the
/// money left alice but never reached bob, roll the transfer back.
fn repair(a: &mut Accounts) {
    if a.alice + a.bob != TOTAL {
        println!("  {} are missing: refunding alice", TOTAL - a.alice - a.bob);
        a.alice += a.in_flight;
    }
    a.in_flight = 0;
    assert_eq!(a.alice + a.bob, TOTAL);
}

fn main() -> Result<(), Box<dyn Error>> {
    let bank = Bank {
        lock: Lock::new()?,
        accounts: RawValue::new(Accounts {
            alice: 100,
            bob: 100,
            in_flight: 0,
        })?,
    };

    // 1. A child starts a transfer and is killed in the middle, holding the lock.
    let debited = Event::new()?;
    let child = Process::start(transfer, (bank.clone(), 30, Some(debited.clone())))?;
    assert!(debited.wait_timeout(Duration::from_secs(10)), "no debit");
    println!("child debited alice: {:?}", bank.accounts.get());
    child.kill()?;
    match child.join() {
        Err(e @ ProcessError::Signaled { .. }) => println!("{e}, holding the lock"),
        other => return Err(format!("expected the child to be killed, got {other:?}").into()),
    }

    // 2. The next acquire gets the lock *and* the news. (A timeout is good practice for any
    //    lock shared with other processes; it is not what saves us here.)
    let guard = bank
        .lock
        .acquire_timeout(Duration::from_secs(5))?
        .ok_or("the lock stayed taken")?;
    if !guard.owner_died() {
        return Err("the lock was acquired without the owner-died notice".into());
    }
    println!("acquire: owner_died(): the previous owner died holding the lock");
    let mut a = bank.accounts.get();
    println!("  state found: {a:?}");
    repair(&mut a);
    bank.accounts.set(a);
    println!("  repaired:    {a:?}");
    drop(guard); // released as usual; the lock is healthy again

    // 3. Life goes on: the lock works normally, for other processes too.
    Process::start(transfer, (bank.clone(), 30, None))?.join()?;
    let guard = bank.lock.try_acquire()?.ok_or("the lock is taken")?;
    assert!(!guard.owner_died(), "no notice this time");
    let a = bank.accounts.get();
    println!("after a normal transfer: {a:?}");
    assert_eq!((a.alice, a.bob, a.in_flight), (70, 130, 0));
    Ok(())
}
