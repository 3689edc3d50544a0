//! `Process::join` while the child is killed at a random moment (from its start-up on), and
//! `Connection` send/recv of small and 8 MiB messages between two children, one of which is
//! killed in the middle of the stream.

use std::time::Duration;

use multiproc::{Connection, Event, Process, ProcessError, RawArray, pipe};
use serde_bytes::ByteBuf;

use crate::harness::{Round, alive, killed, run, run_slow, spin_us};

// ---------------------------------------------------------------------------------------------
// Process join

fn busy(us: u64) -> u64 {
    spin_us(us);
    us * 2
}

/// 3 children run 0-3 ms of work; one is killed 0-5 ms after its start returned (so
/// sometimes still starting up), from another thread, while the parent is blocked in `join`
/// (in a random order). Each `join` must return the child's value or `Signaled(SIGKILL)`.
fn process_join(r: &mut Round) {
    let works: Vec<u64> = (0..3).map(|_| r.rng.below(3000)).collect();
    let kids: Vec<Process<u64>> = works
        .iter()
        .enumerate()
        .map(|(i, &w)| r.start(&format!("child{i}"), busy, w))
        .collect();
    let victim = r.rng.pick(3);
    let delay = r.rng.below(5000);
    let armed = r.killer.arm(kids[victim].pid(), &format!("child{victim}"));
    r.stats.kills += 1;
    let killer = std::thread::spawn(move || {
        if delay > 2000 {
            std::thread::sleep(Duration::from_micros(delay));
        } else {
            spin_us(delay);
        }
        armed.fire(&format!("{delay} µs after its start"));
    });
    let mut order: Vec<usize> = (0..3).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, r.rng.pick(i + 1));
    }
    let mut kids: Vec<Option<Process<u64>>> = kids.into_iter().map(Some).collect();
    for i in order {
        let Some(kid) = kids[i].take() else { continue };
        // The operation under test: a plain blocking join.
        let res = kid.join();
        match res {
            Ok(v) => assert_eq!(v, works[i] * 2, "child{i}'s value"),
            Err(ProcessError::Signaled { signal, .. })
                if i == victim && signal == libc::SIGKILL => {}
            Err(e) => panic!("child{i}: {e}"),
        }
    }
    killer.join().expect("killer thread");
    r.stats.items += 3;
}

#[test]
fn process_join_child_killed() {
    run("process_join_child_killed", process_join);
}

// ---------------------------------------------------------------------------------------------
// Connection

/// `len` bytes, period 251; the first 8 bytes hold the message number.
fn message(len: usize, i: u64) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len.max(8)).map(|i| (i % 251) as u8).collect();
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

/// Receives its data connection over `ctl` (so no other process inherits it), sends `n`
/// messages, counting each in `acks` once `send` returned; sets `mark` after message
/// `mark_at`.
fn sender(
    (mut ctl, acks, n, len, mark_at, mark): (Connection, RawArray<u64>, u64, usize, u64, Event),
) -> Result<u64, String> {
    let mut data: Connection = ctl.recv().map_err(|e| format!("control: {e}"))?;
    drop(ctl);
    let mut buf = message(len, 0);
    for i in 0..n {
        buf[..8].copy_from_slice(&i.to_le_bytes());
        data.send(&serde_bytes::Bytes::new(&buf))
            .map_err(|e| format!("send {i}: {e}"))?;
        acks.fetch_add(0, 1);
        if i + 1 == mark_at {
            mark.set();
        }
    }
    Ok(n)
}

/// Receives until end of file (or an error); checks every message; returns how many arrived
/// and how the stream ended.
fn receiver(
    (mut ctl, n, len, mark_at, mark): (Connection, u64, usize, u64, Event),
) -> Result<(u64, String), String> {
    let mut data: Connection = ctl.recv().map_err(|e| format!("control: {e}"))?;
    drop(ctl);
    let mut expect = message(len, 0);
    let mut count: u64 = 0;
    loop {
        match data.recv::<ByteBuf>() {
            Ok(bytes) => {
                expect[..8].copy_from_slice(&count.to_le_bytes());
                if bytes.as_slice() != expect.as_slice() {
                    return Err(format!("message {count} corrupt or out of order"));
                }
                count += 1;
                if count == mark_at {
                    mark.set();
                }
                if count > n {
                    return Err(format!("{count} messages of {n}"));
                }
            }
            Err(e) => return Ok((count, format!("{e}"))),
        }
    }
}

/// A sender and a receiver child; one is killed `0..max_delay` µs after a random message.
/// Receiver killed: the sender's `send` must fail (or it had finished), not block. Sender
/// killed: the receiver gets every message whose `send` returned (and at most the one in
/// flight), intact, then an error or end of file.
fn connection(r: &mut Round, n: u64, len: usize, max_delay: u64) {
    let acks = RawArray::<u64>::zeroed(1).expect("acks");
    let mark = Event::new().expect("event");
    let kill_sender = r.rng.chance(1, 2);
    let mark_at = r.rng.between(1, n);
    let (mut s_ctl, s_ctl_child) = pipe().expect("pipe");
    let (mut r_ctl, r_ctl_child) = pipe().expect("pipe");
    let s = r.start(
        "sender",
        sender,
        (
            s_ctl_child,
            acks.clone(),
            n,
            len,
            if kill_sender { mark_at } else { 0 },
            mark.clone(),
        ),
    );
    let rc = r.start(
        "receiver",
        receiver,
        (
            r_ctl_child,
            n,
            len,
            if kill_sender { 0 } else { mark_at },
            mark.clone(),
        ),
    );
    let (a, b) = pipe().expect("pipe");
    s_ctl.send(&a).expect("handing the sender its end");
    r_ctl.send(&b).expect("handing the receiver its end");
    drop((a, b));
    let (pid, role) = if kill_sender {
        (s.pid(), "sender")
    } else {
        (rc.pid(), "receiver")
    };
    let armed = r.killer.arm(pid, role);
    r.wait_event_or(&mark, || !alive(pid));
    let delay = r.rng.below(max_delay);
    spin_us(delay);
    armed.fire(&format!("{delay} µs after message {mark_at}"));
    r.stats.kills += 1;
    let sres = r.join(s);
    let rres = r.join(rc);
    if kill_sender {
        let acked = acks.get(0).unwrap_or(0);
        let (got, end) = match rres {
            Ok(Ok(x)) => x,
            other => panic!("receiver: {other:?}"),
        };
        if !killed(&sres) {
            assert!(matches!(sres, Ok(Ok(x)) if x == n), "sender: {sres:?}");
        }
        r.note(format!(
            "receiver got {got}, sender acknowledged {acked}, end: {end}"
        ));
        assert!(
            got >= acked && got <= acked + 1,
            "receiver got {got} messages, the sender acknowledged {acked}"
        );
        r.stats.items += acked;
    } else {
        match sres {
            Ok(Ok(x)) => assert_eq!(x, n),
            Ok(Err(e)) => r.note(format!("sender ended with: {e}")),
            Err(e) => panic!("sender did not return: {e}"),
        }
        if !killed(&rres) {
            assert!(
                matches!(rres, Ok(Ok((x, _))) if x == n),
                "receiver: {rres:?}"
            );
        }
        r.stats.items += 1;
    }
}

fn connection_small(r: &mut Round) {
    connection(r, 2000, 64, 300);
}

fn connection_8mib(r: &mut Round) {
    connection(r, 6, 8 << 20, 8000);
}

#[test]
fn connection_small_messages_peer_killed() {
    run("connection_small_messages_peer_killed", connection_small);
}

#[test]
fn connection_8mib_messages_peer_killed() {
    run_slow("connection_8mib_messages_peer_killed", connection_8mib);
}
