//! Manager proxies: 3 clients make proxy calls (dict inserts) or take a manager lock around
//! a read-modify-write of a manager value; a client (often in the middle of a call, or while
//! holding or waiting for the lock) or the server itself is killed. Surviving clients must
//! finish (or, when the server died, get a `ManagerError`), and every acknowledged call must
//! have taken effect.

use multiproc::manager::{DictProxy, LockProxy, ManagerError, ValueProxy};
use multiproc::{Event, Manager, Process, RawArray};

use crate::harness::{Round, alive, killed, run, spin_us};

const CLIENTS: usize = 3;
const CALLS: u64 = 150;

/// What a client reports: calls acknowledged, or the error that stopped it.
type Report = Result<u64, String>;

fn dict_client(
    (d, acks, me, mark_at, mark): (DictProxy<u64, u64>, RawArray<u64>, u64, u64, Event),
) -> Report {
    for i in 0..CALLS {
        d.insert(&(me * 1_000_000 + i), &i)
            .map_err(|e| describe(&e))?;
        acks.fetch_add(me as usize, 1);
        if i + 1 == mark_at {
            mark.set();
        }
    }
    Ok(CALLS)
}

fn lock_client(
    (lock, v, acks, me, mark_at, mark): (
        LockProxy,
        ValueProxy<u64>,
        RawArray<u64>,
        u64,
        u64,
        Event,
    ),
) -> Report {
    for i in 0..CALLS / 3 {
        let held = lock.acquire().map_err(|e| describe(&e))?;
        let x = v.get().map_err(|e| describe(&e))?;
        v.set(&(x + 1)).map_err(|e| describe(&e))?;
        acks.fetch_add(me as usize, 1);
        if i + 1 == mark_at {
            mark.set();
        }
        drop(held);
    }
    Ok(CALLS / 3)
}

/// "disconnected: ..." for the errors a dead server gives, the message otherwise.
fn describe(e: &ManagerError) -> String {
    match e {
        ManagerError::Disconnected { .. } | ManagerError::Connection(_) => {
            format!("disconnected: {e}")
        }
        other => format!("{other}"),
    }
}

/// Which process dies: a client (index) or the server.
enum Victim {
    Client(usize),
    Server,
}

/// Kill the victim after a client reached its mark; join the clients. Returns the victim.
fn kill_and_join(
    r: &mut Round,
    manager: &Manager,
    clients: Vec<Process<Report>>,
    mark: &Event,
    mark_at_client: usize,
    kill_server: bool,
    max_delay: u64,
) -> (Victim, Vec<Option<Report>>) {
    let server = manager
        .server_pid()
        .expect("a local manager has a server pid");
    r.killer.watch(server, "manager server");
    let (victim, pid, role) = if kill_server {
        (Victim::Server, server, "manager server".to_string())
    } else {
        (
            Victim::Client(mark_at_client),
            clients[mark_at_client].pid(),
            format!("client{mark_at_client}"),
        )
    };
    let armed = r.killer.arm(pid, &role);
    let marker = clients[mark_at_client].pid();
    r.wait_event_or(mark, || !alive(marker));
    let delay = r.rng.below(max_delay);
    spin_us(delay);
    armed.fire(&format!("{delay} µs after client{mark_at_client}'s mark"));
    r.stats.kills += 1;
    let results = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let res = r.join(c);
            if matches!(victim, Victim::Client(v) if v == i) && killed(&res) {
                return None;
            }
            match res {
                Ok(report) => Some(report),
                Err(e) => panic!("client{i} did not return: {e}"),
            }
        })
        .collect();
    (victim, results)
}

/// Survivors: `Ok` everywhere when a client died; `Ok` or a disconnection when the server did.
fn check_reports(victim: &Victim, results: &[Option<Report>], full: u64) {
    for (i, res) in results.iter().enumerate() {
        match (victim, res) {
            (_, None) => {}
            (_, Some(Ok(n))) => assert_eq!(*n, full, "client{i}"),
            (Victim::Server, Some(Err(e))) if e.starts_with("disconnected") => {}
            (_, Some(Err(e))) => panic!("client{i}: {e}"),
        }
    }
}

fn manager_proxy_calls(r: &mut Round) {
    let manager = Manager::start().expect("starting the manager");
    let d = manager.dict::<u64, u64>().expect("dict");
    let acks = RawArray::<u64>::zeroed(CLIENTS).expect("acks");
    let mark = Event::new().expect("event");
    let chosen = r.rng.pick(CLIENTS);
    let mark_at = r.rng.between(1, CALLS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let at = if i == chosen { mark_at } else { 0 };
            r.start(
                &format!("client{i}"),
                dict_client,
                (d.clone(), acks.clone(), i as u64, at, mark.clone()),
            )
        })
        .collect();
    let kill_server = r.rng.chance(1, 4);
    let (victim, results) = kill_and_join(r, &manager, clients, &mark, chosen, kill_server, 300);
    check_reports(&victim, &results, CALLS);
    if let Victim::Client(v) = victim {
        // Every acknowledged insert is in the dict; the victim's call in flight may be too.
        let items = d.items().expect("dict items");
        let have: std::collections::HashSet<u64> = items.iter().map(|(k, _)| *k).collect();
        for c in 0..CLIENTS as u64 {
            let acked = acks.get(c as usize).unwrap_or(0);
            for i in 0..acked {
                assert!(
                    have.contains(&(c * 1_000_000 + i)),
                    "acknowledged insert ({c}, {i}) lost"
                );
            }
            let extra = items
                .iter()
                .filter(|(k, _)| k / 1_000_000 == c && k % 1_000_000 >= acked)
                .count();
            assert!(
                extra <= usize::from(c as usize == v),
                "client{c}: {extra} inserts beyond the {acked} acknowledged"
            );
            r.stats.items += acked;
        }
        manager.shutdown().expect("manager shutdown");
    }
}

fn manager_lock(r: &mut Round) {
    let manager = Manager::start().expect("starting the manager");
    let lock = manager.lock().expect("lock");
    let v = manager.value(&0u64).expect("value");
    let acks = RawArray::<u64>::zeroed(CLIENTS).expect("acks");
    let mark = Event::new().expect("event");
    let chosen = r.rng.pick(CLIENTS);
    let mark_at = r.rng.between(1, CALLS / 3);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let at = if i == chosen { mark_at } else { 0 };
            r.start(
                &format!("client{i}"),
                lock_client,
                (
                    lock.clone(),
                    v.clone(),
                    acks.clone(),
                    i as u64,
                    at,
                    mark.clone(),
                ),
            )
        })
        .collect();
    let kill_server = r.rng.chance(1, 4);
    let (victim, results) = kill_and_join(r, &manager, clients, &mark, chosen, kill_server, 500);
    check_reports(&victim, &results, CALLS / 3);
    if let Victim::Client(_) = victim {
        let acked: u64 = (0..CLIENTS).map(|c| acks.get(c).unwrap_or(0)).sum();
        let total = v.get().expect("value get");
        assert!(
            total == acked || total == acked + 1,
            "value {total} after {acked} acknowledged increments under the lock"
        );
        // The lock is free again.
        let g = lock
            .acquire_timeout(std::time::Duration::from_secs(5))
            .expect("lock acquire");
        assert!(
            g.is_some(),
            "the manager lock was not released after its holder died"
        );
        drop(g);
        r.stats.items += acked;
        manager.shutdown().expect("manager shutdown");
    }
}

#[test]
fn manager_proxy_calls_with_a_killed_client_or_server() {
    run(
        "manager_proxy_calls_with_a_killed_client_or_server",
        manager_proxy_calls,
    );
}

#[test]
fn manager_lock_with_a_killed_client_or_server() {
    run("manager_lock_with_a_killed_client_or_server", manager_lock);
}
