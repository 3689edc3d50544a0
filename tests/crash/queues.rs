//! `Queue` with several producers and consumers (small items, and 3 MiB items through a
//! 4 MiB buffer) and `JoinableQueue::join`: one producer or consumer killed at a random
//! moment, often in the middle of an item.
//!
//! Accounting: a producer counts an item in `acks` after its `put` returned; a consumer
//! counts it in `seen` (per item) after its `get` returned and the item checked intact.
//! Every acknowledged item must be seen exactly once, except at most one that a killed
//! consumer took (it may die after taking the item and before counting it, or inside `get`).

use multiproc::{Event, JoinableQueue, Queue, RawArray};
use serde_bytes::ByteBuf;

use crate::harness::{Round, killed, run, run_slow, spin_us};

const MIB: usize = 1 << 20;

/// (producer, sequence number, payload). `None` ends a consumer.
type Item = Option<(u32, u32, ByteBuf)>;

/// `len` bytes with a period of 251 (prime to every chunk and page size), the first 8 bytes
/// holding the item's producer and number.
fn payload(len: usize, p: u32, seq: u32) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    stamp(&mut b, p, seq);
    b
}

fn stamp(b: &mut [u8], p: u32, seq: u32) {
    if b.len() >= 8 {
        b[..4].copy_from_slice(&p.to_le_bytes());
        b[4..8].copy_from_slice(&seq.to_le_bytes());
    }
}

#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Shape {
    producers: u32,
    consumers: u32,
    per_producer: u32,
    size: usize,
}

fn producer(
    (q, acks, me, shape, mark_at, mark): (Queue<Item>, RawArray<u64>, u32, Shape, u32, Event),
) -> Result<u32, String> {
    let mut buf = payload(shape.size, me, 0);
    for seq in 0..shape.per_producer {
        stamp(&mut buf, me, seq);
        let item = Some((me, seq, ByteBuf::from(std::mem::take(&mut buf))));
        q.put(&item).map_err(|e| format!("put {seq}: {e}"))?;
        acks.fetch_add(me as usize, 1);
        if seq + 1 == mark_at {
            mark.set();
        }
        buf = item.map(|(_, _, b)| b.into_vec()).unwrap_or_default();
    }
    Ok(shape.per_producer)
}

/// Take items until `None`; check each is intact and count it. Returns the items taken.
fn consumer(
    (q, seen, me, shape, mark_at, mark): (Queue<Item>, RawArray<u32>, u32, Shape, u32, Event),
) -> Result<u32, String> {
    let mut expect = payload(shape.size, 0, 0);
    let mut taken = 0;
    loop {
        match q.get() {
            Ok(Some((p, seq, bytes))) => {
                if p >= shape.producers || seq >= shape.per_producer {
                    return Err(format!("consumer{me}: item ({p}, {seq}) was never put"));
                }
                stamp(&mut expect, p, seq);
                if bytes.as_slice() != expect.as_slice() {
                    return Err(format!(
                        "consumer{me}: item ({p}, {seq}) corrupt ({} bytes)",
                        bytes.len()
                    ));
                }
                seen.fetch_add((p * shape.per_producer + seq) as usize, 1);
                taken += 1;
                if taken == mark_at {
                    mark.set();
                }
            }
            Ok(None) => return Ok(taken),
            Err(e) => return Err(format!("consumer{me}: get: {e}")),
        }
    }
}

/// Checks `seen` against `acks`; returns (missing acknowledged items, items checked).
fn account(
    shape: Shape,
    acks: &RawArray<u64>,
    seen: &RawArray<u32>,
    consumer_killed: bool,
) -> (u64, u64) {
    let mut missing = Vec::new();
    let mut checked = 0;
    for p in 0..shape.producers {
        let acked = acks.get(p as usize).unwrap_or(0) as u32;
        for seq in 0..shape.per_producer {
            let n = seen
                .get((p * shape.per_producer + seq) as usize)
                .unwrap_or(0);
            assert!(n <= 1, "item ({p}, {seq}) consumed {n} times");
            if seq < acked {
                checked += 1;
                if n == 0 {
                    missing.push((p, seq));
                }
            } else {
                // An item whose put had not returned: at most the one in flight arrived.
                assert!(
                    n == 0 || seq == acked,
                    "item ({p}, {seq}) consumed, but its producer acknowledged only {acked}"
                );
            }
        }
    }
    let allowed = usize::from(consumer_killed);
    assert!(
        missing.len() <= allowed,
        "acknowledged items lost: {missing:?} (a killed consumer accounts for at most {allowed})"
    );
    (missing.len() as u64, checked)
}

/// 3 producers and 3 consumers; one of them is killed `0..max_delay` µs after a random item of
/// its own. Survivors must finish; acknowledged items must all arrive (see the module doc).
fn many_to_many(r: &mut Round, shape: Shape, buffer: Option<usize>, max_delay: u64) {
    let mut b = Queue::<Item>::builder();
    if let Some(bytes) = buffer {
        b = b.buffer_size(bytes);
    }
    let q = b.build().expect("queue");
    let acks = RawArray::<u64>::zeroed(shape.producers as usize).expect("acks");
    let seen =
        RawArray::<u32>::zeroed((shape.producers * shape.per_producer) as usize).expect("seen");
    let mark = Event::new().expect("event");
    let n = (shape.producers + shape.consumers) as usize;
    let victim = r.rng.pick(n);
    let victim_is_consumer = victim >= shape.producers as usize;
    let mark_at = r.rng.between(1, u64::from(shape.per_producer)) as u32;
    let at = |i: usize| if i == victim { mark_at } else { 0 };
    let consumers: Vec<_> = (0..shape.consumers)
        .map(|c| {
            let i = shape.producers as usize + c as usize;
            r.start(
                &format!("consumer{c}"),
                consumer,
                (q.clone(), seen.clone(), c, shape, at(i), mark.clone()),
            )
        })
        .collect();
    let producers: Vec<_> = (0..shape.producers)
        .map(|p| {
            r.start(
                &format!("producer{p}"),
                producer,
                (
                    q.clone(),
                    acks.clone(),
                    p,
                    shape,
                    at(p as usize),
                    mark.clone(),
                ),
            )
        })
        .collect();
    let (vpid, vrole) = if victim_is_consumer {
        let c = victim - shape.producers as usize;
        (consumers[c].pid(), format!("consumer{c}"))
    } else {
        (producers[victim].pid(), format!("producer{victim}"))
    };
    let armed = r.killer.arm(vpid, &vrole);
    let all = u64::from(shape.producers * shape.per_producer);
    // A consumer may take fewer items than its mark: then it is killed once all are put.
    r.wait_until(|| {
        mark.is_set()
            || !crate::harness::alive(vpid)
            || (0..shape.producers as usize)
                .map(|p| acks.get(p).unwrap_or(0))
                .sum::<u64>()
                == all
    });
    let delay = r.rng.below(max_delay);
    spin_us(delay);
    armed.fire(&format!("{delay} µs after its item {mark_at}"));
    r.stats.kills += 1;

    for (p, proc_) in producers.into_iter().enumerate() {
        let res = r.join(proc_);
        if !victim_is_consumer && p == victim && killed(&res) {
            continue;
        }
        match res {
            Ok(Ok(_)) => {}
            other => panic!("producer{p}: {other:?}"),
        }
    }
    r.note("producers done; parent puts the end markers");
    for _ in 0..shape.consumers {
        loop {
            match q.put_timeout(None, std::time::Duration::from_millis(20)) {
                Ok(true) => break,
                Ok(false) => r.check_abort(),
                Err(e) => panic!("parent: put end marker: {e}"),
            }
        }
    }
    for (c, proc_) in consumers.into_iter().enumerate() {
        let res = r.join(proc_);
        if victim_is_consumer && c + shape.producers as usize == victim && killed(&res) {
            continue;
        }
        match res {
            Ok(Ok(_)) => {}
            other => panic!("consumer{c}: {other:?}"),
        }
    }
    // Only end markers may be left.
    loop {
        match q.get_nowait() {
            Ok(Some(None)) => {}
            Ok(Some(Some((p, seq, _)))) => {
                panic!("item ({p}, {seq}) left in the queue after the end markers")
            }
            Ok(None) => break,
            Err(e) => panic!("parent: draining: {e}"),
        }
    }
    let (missing, checked) = account(shape, &acks, &seen, victim_is_consumer);
    r.stats.items += checked;
    r.stats.dropped_with_victim += missing;
}

fn queue_small_items(r: &mut Round) {
    let shape = Shape {
        producers: 3,
        consumers: 3,
        per_producer: 300,
        size: 32,
    };
    many_to_many(r, shape, None, 400);
}

fn queue_3mib_items(r: &mut Round) {
    let shape = Shape {
        producers: 3,
        consumers: 3,
        per_producer: 4,
        size: 3 * MIB,
    };
    many_to_many(r, shape, Some(4 * MIB), 6000);
}

#[test]
fn queue_small_items_3x3() {
    run("queue_small_items_3x3", queue_small_items);
}

#[test]
fn queue_3mib_items_3x3_buffer_4mib() {
    run_slow("queue_3mib_items_3x3_buffer_4mib", queue_3mib_items);
}

// ---------------------------------------------------------------------------------------------
// JoinableQueue

/// The joinable queue of the test: (producer, number), `None` ends a consumer.
type Jq = JoinableQueue<Option<(u32, u32)>>;

/// Per consumer in `holding`: 1 between a `get` that returned an item and its `task_done`.
fn jq_consumer(
    (q, seen, holding, me, per, mark_at, mark): (
        Jq,
        RawArray<u32>,
        RawArray<u64>,
        u32,
        u32,
        u32,
        Event,
    ),
) -> Result<u32, String> {
    let mut taken = 0;
    loop {
        let item = q.get().map_err(|e| format!("get: {e}"))?;
        holding.set(me as usize, 1);
        let end = match item {
            Some((p, seq)) => {
                seen.fetch_add((p * per + seq) as usize, 1);
                taken += 1;
                if taken == mark_at {
                    mark.set();
                }
                spin_us(3);
                false
            }
            None => true,
        };
        q.task_done().map_err(|e| format!("task_done: {e}"))?;
        holding.set(me as usize, 0);
        if end {
            return Ok(taken);
        }
    }
}

fn jq_producer(
    (q, acks, me, per, mark_at, mark): (Jq, RawArray<u64>, u32, u32, u32, Event),
) -> Result<u32, String> {
    for seq in 0..per {
        q.put(Some((me, seq))).map_err(|e| format!("put: {e}"))?;
        acks.fetch_add(me as usize, 1);
        if seq + 1 == mark_at {
            mark.set();
        }
    }
    Ok(per)
}

fn jq_joiner(q: JoinableQueue<Option<(u32, u32)>>) -> Result<(), String> {
    q.join();
    Ok(())
}

/// 2 producers, 2 consumers (`get`, `task_done`) and a child blocked in `join`; one producer,
/// consumer or the joiner is killed at a random moment. When no consumer died, the parent's
/// `join` and the joiner's must return once the items are done. When a consumer died, the
/// unfinished count is what it held (its task, at most one item lost inside `get`, its end
/// marker); once the parent accounts for those, `join` returns.
fn joinable_queue_join(r: &mut Round) {
    const P: u32 = 2;
    const C: u32 = 2;
    const PER: u32 = 100;
    let q = JoinableQueue::<Option<(u32, u32)>>::new().expect("queue");
    let acks = RawArray::<u64>::zeroed(P as usize).expect("acks");
    let seen = RawArray::<u32>::zeroed((P * PER) as usize).expect("seen");
    let holding = RawArray::<u64>::zeroed(C as usize).expect("holding");
    let mark = Event::new().expect("event");
    // 0..P producers, P..P+C consumers, P+C the joiner.
    let victim = r.rng.pick((P + C + 1) as usize);
    let mark_at = r.rng.between(1, u64::from(PER) / 2) as u32;
    let at = |i: usize| if i == victim { mark_at } else { 0 };
    let consumers: Vec<_> = (0..C)
        .map(|c| {
            r.start(
                &format!("consumer{c}"),
                jq_consumer,
                (
                    q.clone(),
                    seen.clone(),
                    holding.clone(),
                    c,
                    PER,
                    at((P + c) as usize),
                    mark.clone(),
                ),
            )
        })
        .collect();
    let producers: Vec<_> = (0..P)
        .map(|p| {
            r.start(
                &format!("producer{p}"),
                jq_producer,
                (
                    q.clone(),
                    acks.clone(),
                    p,
                    PER,
                    at(p as usize),
                    mark.clone(),
                ),
            )
        })
        .collect();
    let joiner = r.start("joiner", jq_joiner, q.clone());
    let (vpid, vrole) = match victim as u32 {
        v if v < P => (producers[victim].pid(), format!("producer{v}")),
        v if v < P + C => (
            consumers[(v - P) as usize].pid(),
            format!("consumer{}", v - P),
        ),
        _ => (joiner.pid(), "joiner".to_string()),
    };
    let victim_consumer = (P..P + C)
        .contains(&(victim as u32))
        .then(|| victim - P as usize);
    let armed = r.killer.arm(vpid, &vrole);
    if victim as u32 == P + C {
        r.wait_in_futex(vpid);
    } else {
        let all = u64::from(P * PER);
        r.wait_until(|| {
            mark.is_set()
                || !crate::harness::alive(vpid)
                || (0..P as usize)
                    .map(|p| acks.get(p).unwrap_or(0))
                    .sum::<u64>()
                    == all
        });
    }
    let delay = r.rng.below(300);
    spin_us(delay);
    armed.fire(&format!("{delay} µs after its mark ({mark_at})"));
    r.stats.kills += 1;

    for (p, proc_) in producers.into_iter().enumerate() {
        let res = r.join(proc_);
        if p == victim && killed(&res) {
            continue;
        }
        match res {
            Ok(Ok(_)) => {}
            other => panic!("producer{p}: {other:?}"),
        }
    }
    if victim_consumer.is_none() {
        r.note("no consumer died: the parent joins the queue");
        while !q.join_timeout(std::time::Duration::from_millis(20)) {
            r.check_abort();
        }
        r.note("parent's join returned");
    }
    for _ in 0..C {
        q.put(None).expect("parent: put end marker");
    }
    for (c, proc_) in consumers.into_iter().enumerate() {
        let res = r.join(proc_);
        if Some(c) == victim_consumer && killed(&res) {
            continue;
        }
        match res {
            Ok(Ok(_)) => {}
            other => panic!("consumer{c}: {other:?}"),
        }
    }
    if let Some(c) = victim_consumer {
        // The parent takes what is left (the dead consumer's end marker) and does its part.
        loop {
            match q.get_nowait() {
                Ok(Some(None)) => q.task_done().expect("parent: task_done"),
                Ok(Some(Some(item))) => panic!("item {item:?} left after the end markers"),
                Ok(None) => break,
                Err(e) => panic!("parent: draining: {e}"),
            }
        }
        let unfinished = q.unfinished_tasks();
        let held = holding.get(c).unwrap_or(0) as usize;
        r.note(format!(
            "after the survivors: {unfinished} unfinished, the victim held {held}"
        ));
        // `holding` is cleared just after `task_done`: a consumer killed between the two
        // counts as holding an item whose task is already done.
        assert!(
            (held.saturating_sub(1)..=held + 1).contains(&unfinished),
            "{unfinished} unfinished tasks after a consumer died holding {held} (+1 if it died \
             inside get, -1 if between task_done and clearing its mark)"
        );
        for _ in 0..unfinished {
            q.task_done()
                .expect("parent: task_done for the dead consumer");
        }
        while !q.join_timeout(std::time::Duration::from_millis(20)) {
            r.check_abort();
        }
    }
    let jres = r.join(joiner);
    if !(victim as u32 == P + C && killed(&jres)) {
        match jres {
            Ok(Ok(())) => {}
            other => panic!("joiner: {other:?}"),
        }
    }
    let shape = Shape {
        producers: P,
        consumers: C,
        per_producer: PER,
        size: 0,
    };
    let (missing, checked) = account(shape, &acks, &seen, victim_consumer.is_some());
    r.stats.items += checked;
    r.stats.dropped_with_victim += missing;
}

#[test]
fn joinable_queue_join_with_a_killed_peer() {
    run(
        "joinable_queue_join_with_a_killed_peer",
        joinable_queue_join,
    );
}
