//! The manager: proxies from many processes, remote use over TCP, shutdown, and a server
//! that dies in the middle.

mod common;

use std::time::{Duration, Instant};

use multiproc::listener::Address;
use multiproc::manager::{DictProxy, ListProxy, ManagerError, NamespaceProxy, ValueProxy};
use multiproc::{Manager, ProcessBuilder, StartMethod};

const METHODS: [StartMethod; 3] = [
    StartMethod::Spawn,
    StartMethod::Fork,
    StartMethod::ForkServer,
];

/// What each worker gets: its number and the three shared objects.
type Shared = (
    u32,
    DictProxy<(u32, u32), u64>,
    ListProxy<u32>,
    NamespaceProxy,
);

fn work((who, d, l, ns): Shared) {
    for i in 0..100 {
        d.insert(&(who, i), &u64::from(who * 1000 + i)).unwrap();
        l.push(&who).unwrap();
    }
    ns.set(&format!("done-{who}"), &true).unwrap();
}

/// Six processes (two per start method) share a dict, a list and a namespace through a
/// manager: every write of every process is there exactly once.
#[test]
fn proxies_used_from_many_processes_give_exact_results() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let d = manager.dict::<(u32, u32), u64>().unwrap();
    let l = manager.list::<u32>().unwrap();
    let ns = manager.namespace().unwrap();
    let children: Vec<_> = (0..6u32)
        .map(|who| {
            ProcessBuilder::new()
                .start_method(METHODS[who as usize % 3])
                .start(work, (who, d.clone(), l.clone(), ns.clone()))
                .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap();
    }
    assert_eq!(d.len().unwrap(), 600);
    for who in 0..6 {
        for i in [0, 57, 99] {
            assert_eq!(d.get(&(who, i)).unwrap(), Some(u64::from(who * 1000 + i)));
        }
        assert_eq!(ns.get::<bool>(&format!("done-{who}")).unwrap(), Some(true));
    }
    let mut pushed = l.items().unwrap();
    pushed.sort_unstable();
    let expected: Vec<u32> = (0..6)
        .flat_map(|who| std::iter::repeat_n(who, 100))
        .collect();
    assert_eq!(pushed, expected);
    manager.shutdown().unwrap();
}

fn remote_program((address, key): (String, Vec<u8>)) -> Result<u64, String> {
    let manager = Manager::connect(address.as_str(), &key).map_err(|e| e.to_string())?;
    let jobs = manager
        .dict_named::<String, u64>("jobs")
        .map_err(|e| e.to_string())?;
    jobs.insert(&"from the other program".to_string(), &7)
        .map_err(|e| e.to_string())?;
    jobs.get(&"from the server's owner".to_string())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "missing".to_string())
}

/// A manager served on TCP with a key is used by another program that only knows the
/// address and the key (Python's BaseManager pattern); a wrong key is refused.
#[test]
fn a_tcp_manager_is_reachable_from_another_program_with_the_key() {
    let _g = common::guard();
    let manager = Manager::builder()
        .address("127.0.0.1:0")
        .authkey(b"team key")
        .build()
        .unwrap();
    let jobs = manager.dict_named::<String, u64>("jobs").unwrap();
    jobs.insert(&"from the server's owner".to_string(), &41)
        .unwrap();
    let address = manager.address().to_string();
    let other = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .start(remote_program, (address.clone(), b"team key".to_vec()))
        .unwrap();
    assert_eq!(other.join().unwrap(), Ok(41));
    assert_eq!(
        jobs.get(&"from the other program".to_string()).unwrap(),
        Some(7)
    );

    let wrong = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .start(remote_program, (address, b"guess".to_vec()))
        .unwrap();
    let refused = wrong.join().unwrap().unwrap_err();
    assert!(refused.contains("authentication failed"), "{refused}");
}

fn keep_reading(v: ValueProxy<u64>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match v.get() {
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => return "never failed".into(),
            Err(e) => return e.to_string(),
        }
    }
}

/// Killing the server in the middle of use makes every proxy fail promptly (in this process
/// and in a child busy reading), never hang.
#[test]
fn a_killed_manager_gives_errors_not_hangs() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let v = manager.value(&5u64).unwrap();
    let d = manager.dict::<u8, u8>().unwrap();
    let reader = ProcessBuilder::new()
        .start(keep_reading, v.clone())
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = manager.server_pid().unwrap();
    common::kill_exact(&common::proc_stat(pid).unwrap(), libc::SIGKILL);
    let started = Instant::now();
    let failure = reader.join().unwrap();
    assert!(failure.contains("unreachable"), "{failure}");
    assert!(matches!(d.get(&1), Err(ManagerError::Disconnected { .. })));
    assert!(matches!(v.set(&6), Err(ManagerError::Disconnected { .. })));
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(manager);
}

/// `shutdown` stops the server process; proxies then report that it is gone, and so does
/// dropping the manager.
#[test]
fn shutdown_and_drop_stop_the_server() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let pid = manager.server_pid().unwrap();
    let l = manager.list::<u8>().unwrap();
    l.push(&1).unwrap();
    manager.shutdown().unwrap();
    assert!(matches!(l.len(), Err(ManagerError::Disconnected { .. })));
    assert!(common::proc_stat(pid).is_none_or(|p| p.is_dead()));

    let manager = Manager::start().unwrap();
    assert!(
        matches!(manager.address(), Address::Abstract(_)),
        "a default manager listens on an abstract name, not a file"
    );
    let pid = manager.server_pid().unwrap();
    drop(manager);
    assert!(common::proc_stat(pid).is_none_or(|p| p.is_dead()));

    // A socket file at a path the user gave goes with the manager.
    let path = std::env::temp_dir().join(format!("multiproc-test-{}.sock", std::process::id()));
    let manager = Manager::builder()
        .address(path.to_str().unwrap())
        .build()
        .unwrap();
    assert_eq!(manager.address(), &Address::Unix(path.clone()));
    assert!(path.exists());
    manager.dict::<u8, u8>().unwrap().insert(&1, &2).unwrap();
    drop(manager);
    assert!(!path.exists());
}

/// Operations that do not apply are refused with a reason; a name cannot change kind.
#[test]
fn refused_operations_say_why() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let l = manager.list_named::<u8>("thing").unwrap();
    assert!(matches!(l.set(3, &1), Err(ManagerError::Refused(r)) if r.contains("out of range")));
    assert!(matches!(
        manager.dict_named::<u8, u8>("thing"),
        Err(ManagerError::Refused(r)) if r.contains("List")
    ));
    let wrong_type = manager.list_named::<String>("thing").unwrap();
    l.push(&200).unwrap();
    assert!(matches!(wrong_type.get(0), Err(ManagerError::Codec(_))));
}

fn produce((q, n): (multiproc::manager::QueueProxy<u32>, u32)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
}

fn add_under_lock((lock, v, n): (multiproc::manager::LockProxy, ValueProxy<u64>, u32)) {
    for _ in 0..n {
        let _held = lock.acquire().unwrap();
        let x = v.get().unwrap();
        v.set(&(x + 1)).unwrap();
    }
}

/// A bounded queue carries every item from 3 producers (one per start method) to the
/// parent; a lock makes 4 processes' read-modify-writes of a value exact.
#[test]
fn queue_and_lock_proxies_work_across_processes() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let q = manager.queue::<u32>(8).unwrap();
    let producers: Vec<_> = METHODS
        .iter()
        .map(|&m| {
            ProcessBuilder::new()
                .start_method(m)
                .start(produce, (q.clone(), 200))
                .unwrap()
        })
        .collect();
    let mut got: Vec<u32> = (0..600).map(|_| q.get().unwrap()).collect();
    for p in producers {
        p.join().unwrap();
    }
    got.sort_unstable();
    let expected: Vec<u32> = (0..200).flat_map(|i| [i, i, i]).collect();
    assert_eq!(got, expected);
    assert_eq!(q.get_timeout(Duration::from_millis(20)).unwrap(), None);

    let lock = manager.lock().unwrap();
    let v = manager.value(&0u64).unwrap();
    let adders: Vec<_> = (0..4)
        .map(|i| {
            ProcessBuilder::new()
                .start_method(METHODS[i % 3])
                .start(add_under_lock, (lock.clone(), v.clone(), 50))
                .unwrap()
        })
        .collect();
    for a in adders {
        a.join().unwrap();
    }
    assert_eq!(v.get().unwrap(), 200);
}

fn hold_and_die(
    (lock, held): (
        multiproc::manager::LockProxy,
        multiproc::manager::EventProxy,
    ),
) {
    let guard = lock.acquire().unwrap();
    held.set().unwrap();
    std::mem::forget(guard);
    std::thread::sleep(Duration::from_secs(60));
}

/// A lock whose holder is killed is released by the server (its connection closed); an
/// event wakes a waiter; a semaphore admits only as many as its value.
#[test]
fn lock_of_a_killed_holder_is_released_and_event_and_semaphore_behave() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let lock = manager.lock().unwrap();
    let held = manager.event().unwrap();
    let holder = ProcessBuilder::new()
        .start(hold_and_die, (lock.clone(), held.clone()))
        .unwrap();
    assert!(held.wait_timeout(Duration::from_secs(10)).unwrap());
    assert!(lock.try_acquire().unwrap().is_none());
    holder.kill().unwrap();
    let _ = holder.join();
    let started = Instant::now();
    let guard = lock.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(guard.is_some(), "the dead holder's lock was not released");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(guard);

    let s = manager.bounded_semaphore(2).unwrap();
    assert!(s.acquire_timeout(Duration::ZERO).unwrap());
    assert!(s.acquire_timeout(Duration::ZERO).unwrap());
    assert!(!s.acquire_timeout(Duration::from_millis(20)).unwrap());
    s.release().unwrap();
    s.release().unwrap();
    assert!(matches!(s.release(), Err(ManagerError::Refused(_))));
    assert_eq!(s.value().unwrap(), 2);
}

/// A type of the user's own, served by the manager.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Ledger {
    entries: Vec<(u32, i64)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum LedgerAsk {
    Record(u32, i64),
    Balance,
    Explode,
}

impl multiproc::manager::Managed for Ledger {
    type Request = LedgerAsk;
    type Reply = i64;
    fn handle(&mut self, ask: LedgerAsk) -> i64 {
        match ask {
            LedgerAsk::Record(who, amount) => self.entries.push((who, amount)),
            LedgerAsk::Balance => {}
            LedgerAsk::Explode => panic!("the ledger refuses"),
        }
        self.entries.iter().map(|(_, a)| a).sum()
    }
}

fn record((who, ledger): (u32, multiproc::manager::ManagedProxy<Ledger>)) {
    for amount in 1..=100 {
        ledger.call(&LedgerAsk::Record(who, amount)).unwrap();
    }
}

/// A user type registered with the manager is used from processes of every start method:
/// every request is applied exactly once; a panicking handler fails only that call.
#[test]
fn user_types_are_served_to_many_processes() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let ledger = manager.create(Ledger::default()).unwrap();
    let writers: Vec<_> = (0..3u32)
        .map(|who| {
            ProcessBuilder::new()
                .start_method(METHODS[who as usize])
                .start(record, (who, ledger.clone()))
                .unwrap()
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(ledger.call(&LedgerAsk::Balance).unwrap(), 3 * 5050);
    assert!(matches!(
        ledger.call(&LedgerAsk::Explode),
        Err(ManagerError::Refused(r)) if r.contains("panicked at tests/manager.rs") && r.ends_with("the ledger refuses")
    ));
    assert_eq!(ledger.call(&LedgerAsk::Balance).unwrap(), 3 * 5050);
    let named = manager.create_named("books", Ledger::default()).unwrap();
    named.call(&LedgerAsk::Record(9, 7)).unwrap();
    let again = manager.create_named("books", Ledger::default()).unwrap();
    assert_eq!(again.call(&LedgerAsk::Balance).unwrap(), 7);
}

fn meet(b: multiproc::manager::BarrierProxy) -> u64 {
    b.wait_timeout(Duration::from_secs(20)).unwrap()
}

fn await_ready((cond, ns): (multiproc::manager::ConditionProxy, NamespaceProxy)) -> bool {
    let _held = cond.acquire().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ns.get::<bool>("ready").unwrap() != Some(true) {
        if Instant::now() > deadline {
            return false;
        }
        cond.wait_timeout(Duration::from_secs(1)).unwrap();
    }
    true
}

fn fill_slot((a, i): (multiproc::manager::ArrayProxy<u64>, i64)) {
    a.set(i, &(i as u64 * 10)).unwrap();
}

/// Barrier, Condition and Array proxies across processes: three parties pass a barrier
/// with distinct indices; a lone party breaks it by timing out; waiters on a condition wake
/// when notified; an array gets each process's slot.
#[test]
fn barrier_condition_and_array_proxies_work_across_processes() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();

    let b = manager.barrier(3).unwrap();
    let parties: Vec<_> = METHODS
        .iter()
        .map(|&m| {
            ProcessBuilder::new()
                .start_method(m)
                .start(meet, b.clone())
                .unwrap()
        })
        .collect();
    let mut indices: Vec<u64> = parties.into_iter().map(|p| p.join().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, [0, 1, 2]);
    let lonely = manager.barrier(2).unwrap();
    assert!(matches!(
        lonely.wait_timeout(Duration::from_millis(50)),
        Err(ManagerError::Refused(r)) if r.contains("broken")
    ));
    assert!(lonely.broken().unwrap());

    let cond = manager.condition().unwrap();
    let ns = manager.namespace().unwrap();
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            ProcessBuilder::new()
                .start_method(METHODS[i])
                .start(await_ready, (cond.clone(), ns.clone()))
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    {
        let _held = cond.acquire().unwrap();
        ns.set("ready", &true).unwrap();
        cond.notify_all().unwrap();
    }
    for w in waiters {
        assert!(w.join().unwrap());
    }

    let a = manager.array(&[0u64; 6]).unwrap();
    let fillers: Vec<_> = (0..6)
        .map(|i| {
            ProcessBuilder::new()
                .start_method(METHODS[i as usize % 3])
                .start(fill_slot, (a.clone(), i))
                .unwrap()
        })
        .collect();
    for f in fillers {
        f.join().unwrap();
    }
    assert_eq!(a.items().unwrap(), [0, 10, 20, 30, 40, 50]);
    assert_eq!(a.len().unwrap(), 6);
}

fn try_take(lock: multiproc::manager::LockProxy) -> bool {
    lock.try_acquire().unwrap().is_some()
}

/// A holder that tries its plain lock again (at once or with a timeout) is refused, and the
/// lock stays its own: still locked, refused to another process, released only by its guard.
/// An RLock's holder takes it again instead, and must release it as often.
#[test]
fn a_refused_acquire_by_the_holder_releases_nothing() {
    let _g = common::guard();
    let manager = Manager::start().unwrap();
    let lock = manager.lock().unwrap();
    let held = lock.acquire().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    assert!(
        lock.locked().unwrap(),
        "a refused try_acquire released the lock"
    );
    assert!(
        lock.acquire_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    assert!(
        lock.locked().unwrap(),
        "a timed-out acquire released the lock"
    );
    assert!(matches!(lock.acquire(), Err(ManagerError::Refused(_))));
    assert!(
        lock.locked().unwrap(),
        "a refused acquire released the lock"
    );
    let other = ProcessBuilder::new().start(try_take, lock.clone()).unwrap();
    assert!(!other.join().unwrap(), "another process took a held lock");
    drop(held);
    assert!(!lock.locked().unwrap());
    let other = ProcessBuilder::new().start(try_take, lock.clone()).unwrap();
    assert!(other.join().unwrap());

    let rlock = manager.rlock().unwrap();
    let outer = rlock.acquire().unwrap();
    let inner = rlock.try_acquire().unwrap();
    assert!(inner.is_some(), "an RLock's holder takes it again");
    drop(inner);
    assert!(
        rlock.locked().unwrap(),
        "one release of two levels freed the RLock"
    );
    let other = ProcessBuilder::new()
        .start(try_take, rlock.clone())
        .unwrap();
    assert!(!other.join().unwrap(), "another process took a held RLock");
    drop(outer);
    assert!(!rlock.locked().unwrap());
}
