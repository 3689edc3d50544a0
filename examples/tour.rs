//! A guided tour of multiproc, one section per feature, each printed under its own header.
//!
//! Run with `cargo run --release --example tour` (a few seconds). Every section is a plain
//! function listed in [`SECTIONS`]; to extend the tour, write one more function and add it to
//! the list. The tour checks what it shows (a wrong result fails it), and at the end it checks
//! that no child process is left running and no shared memory is left in `/dev/shm`.

use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use multiproc::manager::{DictProxy, ListProxy};
use multiproc::{
    Array, Barrier, Condition, Connection, ConnectionError, Event, Handle, JoinableQueue, Lock,
    Pool, PoolError, Process, ProcessBuilder, ProcessError, ProcessPoolExecutor, Queue, QueueError,
    RLock, RawArray, RawValue, Semaphore, SharedMemory, SimpleQueue, StartMethod, Value,
    active_children, cpu_count, current_process, forkserver_pid, get_start_method, parent_process,
    pipe, pipe_oneway, wait,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

type Result<T = (), E = Box<dyn Error>> = std::result::Result<T, E>;

/// A section of the tour: its title and the function that shows it.
type Section = (&'static str, fn() -> Result);

/// The tour, in order.
const SECTIONS: &[Section] = &[
    ("Start a process and get its result", start_and_result),
    ("Start methods, timed", start_methods),
    ("A panic in a child comes back to join", panics),
    ("Exit codes: exit(n), terminate, kill", exit_codes),
    ("Join with a timeout", join_with_timeout),
    ("Pipes: typed messages, bytes, poll, end of file", pipes),
    (
        "Passing OS handles: a Connection, a File, a TcpStream",
        passing_handles,
    ),
    (
        "Who is who: current_process, parent_process, active_children, cpu_count",
        who_is_who,
    ),
    ("Locks: a shared counter, and a holder that dies", locks),
    (
        "Coordination: Semaphore, Event, Condition, Barrier",
        coordination,
    ),
    (
        "Shared values and arrays: Value, Array, RawValue, RawArray",
        shared_values,
    ),
    ("Named shared memory: SharedMemory", named_shared_memory),
    ("Queues: Queue and SimpleQueue", queues),
    (
        "A work list: JoinableQueue, task_done and join",
        joinable_queue,
    ),
    ("A pool of workers: map, starmap, imap_unordered", pool_map),
    (
        "Pool tasks without waiting: apply_async, callbacks",
        pool_async,
    ),
    ("A worker that dies fails only its task", pool_crash),
    (
        "ProcessPoolExecutor: futures, as_completed, wait, cancel, await",
        executor,
    ),
    (
        "Logging from children: labelled records, output prefixes, one panic line",
        logging,
    ),
    (
        "A manager: shared dict and list; Listener/Client with a key",
        manager_section,
    ),
];

fn main() -> Result {
    let tour = Instant::now();
    let shm_before = shm_entries()?;
    for (i, (title, section)) in SECTIONS.iter().enumerate() {
        println!("\n=== {}. {title} ===", i + 1);
        let start = Instant::now();
        section()?;
        println!("    ({:.0?})", start.elapsed());
    }
    // Every section joins (or kills and joins) what it started.
    let left = active_children();
    assert!(left.is_empty(), "children still running: {left:?}");
    // ... and unlinks the shared memory it names.
    let leaked: Vec<String> = shm_entries()?
        .into_iter()
        .filter(|name| !shm_before.contains(name))
        .collect();
    assert!(leaked.is_empty(), "left in /dev/shm: {leaked:?}");
    println!(
        "\nTour done in {:.2?}; no child process and no shared memory left.",
        tour.elapsed()
    );
    Ok(())
}

/// The names in `/dev/shm` that this crate creates (`multiproc-...`).
fn shm_entries() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("multiproc") {
            names.push(name);
        }
    }
    Ok(names)
}

// ---------------------------------------------------------------------------------------
// 1. Start a process and get its result

fn square(x: u64) -> u64 {
    x * x
}

fn start_and_result() -> Result {
    // Python: `p = Process(target=square, args=(7,)); p.start(); p.join()`. Here the child's
    // return value comes back from `join`, typed: `Process<u64>`.
    let p = Process::start(square, 7)?;
    println!(
        "square(7) ran in pid {} and returned {}",
        p.pid(),
        p.join()?
    );

    // The function must be a function item or a closure that captures nothing (checked at
    // compile time): its data travels in the one argument, a tuple if it needs several.
    let sum = Process::start(|(a, b): (i32, i32)| a + b, (40, 2))?.join()?;
    assert_eq!(sum, 42);
    println!("a non-capturing closure with a tuple argument returned {sum}");

    // A name and other settings go on a ProcessBuilder (Python's keyword arguments).
    let p = ProcessBuilder::new()
        .name("shouter")
        .start(shout, "hi".to_string())?;
    let name = p.name().to_string(); // `join` consumes the handle
    println!("process {name:?} returned {:?}", p.join()?);

    // Only the fork start method can run a closure that captures its environment: the child
    // is a copy of this process, captures included.
    let note = format!("written by pid {} before the fork", std::process::id());
    let seen = ProcessBuilder::new()
        .fork(move || format!("{note}, read by pid {}", std::process::id()))?;
    println!("a forked closure returned {:?}", seen.join()?);
    Ok(())
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

// ---------------------------------------------------------------------------------------
// 2. Start methods, timed

fn start_methods() -> Result {
    println!("default start method: {}", get_start_method());
    const N: u32 = 20;
    for &method in StartMethod::all() {
        let start = Instant::now();
        ProcessBuilder::new()
            .start_method(method)
            .start(square, 3)?
            .join()?;
        let first = start.elapsed();
        let start = Instant::now();
        for i in 0..N {
            let p = ProcessBuilder::new()
                .start_method(method)
                .start(square, u64::from(i))?;
            assert_eq!(p.join()?, u64::from(i * i));
        }
        println!(
            "{:<10} first start+join {first:>9.2?}, then {:>9.2?} each (mean of {N})",
            method.as_str(),
            start.elapsed() / N
        );
    }
    // The fork server was started by the first forkserver child (in section 1) and is reused.
    println!(
        "fork server pid: {:?} (spawn: a fresh copy of this executable per child; \
         fork: a copy of this process)",
        forkserver_pid()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. A panic in a child comes back to join

fn boom(what: String) -> u8 {
    panic!("could not parse {what:?}")
}

fn panics() -> Result {
    println!("(the child also reports its panic on stderr, as a thread would)");
    // Python's child prints a traceback and the parent only sees `exitcode == 1`; here the
    // panic itself comes back as an error value.
    match Process::start(boom, "forty-two".to_string())?.join() {
        Err(ProcessError::Panicked(p)) => {
            let location = p.location.as_ref().ok_or("no location")?;
            println!("process {:?} (pid {}) panicked", p.process_name, p.pid);
            println!("  message:   {}", p.message);
            println!("  location:  {location}");
            println!(
                "  backtrace: {} lines, captured in the child",
                p.backtrace.lines().count()
            );
            assert!(p.message.contains("forty-two"));
            assert!(location.file.ends_with("tour.rs"));
        }
        other => return Err(format!("expected a panic, got {other:?}").into()),
    }
    // The error also has Python's exit code for it.
    let err = Process::start(boom, "x".to_string())?.join().unwrap_err();
    println!("as a message: {err}; exit code {:?}", err.exitcode());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. Exit codes

fn exit_with(code: i32) {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms))
}

fn exit_codes() -> Result {
    // `std::process::exit(n)` in the child: no value comes back, the exit code does.
    let err = Process::start(exit_with, 3)?.join().unwrap_err();
    assert!(matches!(err, ProcessError::Exited { code: 3, .. }));
    println!("exit(3)     exit code {:?}  ({err})", err.exitcode());

    // `terminate` sends SIGTERM and `kill` sends SIGKILL; Python's exit codes are `-signal`.
    for (what, expected) in [("terminate", -15), ("kill", -9)] {
        let p = Process::start(sleep_ms, 60_000)?;
        if what == "terminate" {
            p.terminate()?;
        } else {
            p.kill()?;
        }
        // `exitcode()` is Python's attribute: `None` while running, never blocks.
        p.join_timeout(Duration::from_secs(5))?;
        assert_eq!(p.exitcode(), Some(expected));
        let err = p.join().unwrap_err();
        assert!(matches!(err, ProcessError::Signaled { .. }));
        println!("{what:<11} exit code {:?} ({err})", err.exitcode());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 5. Join with a timeout

fn join_with_timeout() -> Result {
    let p = Process::start(sleep_ms, 60_000)?;
    let start = Instant::now();
    let ended = p.join_timeout(Duration::from_millis(100))?;
    println!(
        "join_timeout(100 ms) on a 60 s sleeper: ended={ended} after {:.0?}, is_alive={}, \
         exitcode={:?}",
        start.elapsed(),
        p.is_alive(),
        p.exitcode()
    );
    assert!(!ended && p.is_alive());
    // Python's `p.join(timeout)` returns None either way; `join_timeout` says which it was.
    p.terminate()?;
    assert!(p.join_timeout(Duration::from_secs(5))?);
    println!(
        "after terminate: is_alive={}, exitcode={:?}",
        p.is_alive(),
        p.exitcode()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 6. Pipes

/// Any serde type can be sent: derive `Serialize` and `Deserialize` (Python pickles).
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    item: String,
    quantity: u16,
}

/// Answers orders until the other end is closed, then returns how many it served.
fn kitchen(mut conn: Connection) -> usize {
    let mut served = 0;
    // `recv` fails with `ConnectionError::Eof` (Python's `EOFError`) once the other end is
    // closed, which ends the loop.
    while let Ok(order) = conn.recv::<Order>() {
        let reply = format!(
            "{} x {} ready (order {})",
            order.quantity, order.item, order.id
        );
        conn.send(&reply).expect("send");
        served += 1;
    }
    served
}

/// Sleeps, then sends one message and returns (closing its end).
fn report_after((mut conn, ms): (Connection, u64)) {
    sleep_ms(ms);
    conn.send(&format!("done after {ms} ms")).expect("send");
}

fn pipes() -> Result {
    // Typed messages both ways with a child.
    let (mut here, there) = pipe()?;
    let cook = Process::start(kitchen, there)?;
    for (id, item) in [(1, "tea"), (2, "toast")] {
        let order = Order {
            id,
            item: item.into(),
            quantity: 2,
        };
        here.send(&order)?;
        // `poll` waits up to the timeout for a message (or end of file) to be readable.
        assert!(here.poll(Some(Duration::from_secs(5)))?);
        println!("sent {order:?}, got {:?}", here.recv::<String>()?);
    }
    // Dropping our end closes it (Python: `conn.close()`): the child's `recv` sees end of file.
    drop(here);
    println!("closed our end; the kitchen served {} orders", cook.join()?);

    // Raw bytes, and Python's `recv_bytes_into` with a buffer that may be too short.
    let (mut a, mut b) = pipe()?;
    assert!(!b.poll(Some(Duration::ZERO))?); // nothing to read yet
    a.send_bytes(b"raw bytes")?;
    a.send_bytes(&[0u8; 64])?;
    let mut buf = [0u8; 16];
    let n = b.recv_bytes_into(&mut buf)?;
    println!("recv_bytes_into: {:?}", String::from_utf8_lossy(&buf[..n]));
    match b.recv_bytes_into(&mut buf) {
        Err(ConnectionError::BufferTooShort(whole)) => {
            println!(
                "64 bytes into a 16-byte buffer: BufferTooShort, with the whole {}-byte message",
                whole.len()
            );
        }
        other => return Err(format!("expected BufferTooShort, got {other:?}").into()),
    }

    // End of file when the other process is gone, and a one-way pipe.
    let (mut rx, tx) = pipe_oneway()?;
    let p = Process::start(report_after, (tx, 10))?;
    println!("one-way pipe: {:?}", rx.recv::<String>()?);
    p.join()?;
    assert!(matches!(rx.recv::<String>(), Err(ConnectionError::Eof)));
    println!("next recv after the sender exited: Eof");
    assert!(rx.send(&1).is_err()); // the reading end of a one-way pipe cannot send

    // `wait` (Python's `multiprocessing.connection.wait`): serve whichever is ready first.
    let mut pending = Vec::new();
    let mut children = Vec::new();
    for ms in [240, 80, 160] {
        let (rx, tx) = pipe_oneway()?;
        pending.push((ms, rx));
        children.push(Process::start(report_after, (tx, ms))?);
    }
    let mut order = Vec::new();
    while !pending.is_empty() {
        let conns: Vec<&Connection> = pending.iter().map(|(_, conn)| conn).collect();
        let ready = wait(&conns, Some(Duration::from_secs(5)))?;
        // A served pipe leaves the list; otherwise its end of file would keep it "ready".
        for i in ready.into_iter().rev() {
            let (ms, mut conn) = pending.remove(i);
            println!(
                "wait: the {ms} ms pipe is ready: {:?}",
                conn.recv::<String>()?
            );
            order.push(ms);
        }
    }
    assert_eq!(order, [80, 160, 240]);
    for child in children {
        child.join()?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 7. Passing OS handles

/// Receives a connection and a TCP stream over its control connection, and uses both.
fn relay(mut control: Connection) -> String {
    let (mut conn, mut stream): (Connection, Handle<TcpStream>) = control.recv().expect("recv");
    conn.send(&"hello over a connection that came through another one")
        .expect("send");
    writeln!(stream, "hello over TCP from pid {}", current_process().pid).expect("write");
    "relayed".to_string()
}

/// Appends a line to a file it received as a descriptor; returns the file position after it.
fn append_line(mut file: Handle<File>) -> u64 {
    writeln!(file, "written by pid {}", current_process().pid).expect("write");
    file.stream_position().expect("seek")
}

fn passing_handles() -> Result {
    // A Connection and a TcpStream, sent over a connection to a running child.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (server_side, _) = listener.accept()?;
    let (mut control, control_child) = pipe()?;
    let (mut ours, theirs) = pipe()?;
    let child = Process::start(relay, control_child)?;
    // Moving both into the message means this process keeps no copy of them.
    control.send(&(theirs, Handle::new(server_side)))?;
    println!("passed Connection says: {:?}", ours.recv::<String>()?);
    let mut line = String::new();
    BufReader::new(&mut client).read_line(&mut line)?;
    println!("passed TcpStream says: {:?}", line.trim_end());
    assert_eq!(child.join()?, "relayed");

    // A File, as a process argument. The file is deleted before the child starts: only the
    // descriptor can reach it, and the child writes through its own copy of it.
    let path = std::env::temp_dir().join(format!("multiproc-tour-{}", std::process::id()));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    file.write_all(b"written by the parent\n")?;
    let end = Process::start(append_line, Handle::new(file.try_clone()?))?.join()?;
    // Both descriptors share one file position (like `dup`), so the child appended after the
    // parent's line.
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    assert_eq!(text.len() as u64, end);
    println!("the unlinked file now holds {text:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 8. Who is who

/// What a child knows about itself and its parent. (`ProcessInfo` is not serializable, so
/// the child sends the fields it needs.)
fn introspect(_: ()) -> (String, u32, bool, Option<(String, u32, bool)>) {
    let me = current_process();
    let parent = parent_process().map(|p| (p.name().to_string(), p.pid(), p.is_alive()));
    (me.name, me.pid, me.daemon, parent)
}

fn who_is_who() -> Result {
    let me = current_process();
    println!(
        "this process: {:?} pid {} (parent_process: {:?})",
        me.name,
        me.pid,
        parent_process().map(|p| p.pid())
    );
    let (name, pid, daemon, parent) = ProcessBuilder::new()
        .name("inspector")
        .daemon(true)
        .start(introspect, ())?
        .join()?;
    println!(
        "a child:      {name:?} pid {pid} daemon {daemon}, parent (name, pid, alive) {parent:?}"
    );
    assert_eq!(parent, Some(("MainProcess".to_string(), me.pid, true)));

    let sleepers = [
        ProcessBuilder::new()
            .name("sleeper-a")
            .start(sleep_ms, 60_000)?,
        ProcessBuilder::new()
            .name("sleeper-b")
            .daemon(true)
            .start(sleep_ms, 60_000)?,
    ];
    for child in active_children() {
        println!(
            "active child: {:?} pid {} daemon {}",
            child.name, child.pid, child.daemon
        );
    }
    assert_eq!(active_children().len(), 2);
    for p in sleepers {
        p.kill()?;
        let _ = p.join(); // an error: killed by SIGKILL
    }
    println!(
        "after kill + join: {} active children",
        active_children().len()
    );
    println!(
        "cpu_count: {} (honours CPU affinity and the cgroup CPU quota)",
        cpu_count()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 9. Locks

/// `n` increments of the shared counter, each under the lock.
fn add_under_lock((lock, counter, n): (Lock, Value<u64>, u64)) {
    for _ in 0..n {
        // Python's `with lock:` is a guard: the lock is released at the end of its scope.
        let _guard = lock.acquire().expect("lock");
        let seen = counter.get().expect("value lock");
        counter.set(seen + 1).expect("value lock");
    }
}

/// Takes the lock, updates the first of two numbers that must stay equal, and is killed
/// before it updates the second.
fn die_holding((lock, pair, holding): (Lock, RawArray<i64>, Event)) {
    let _guard = lock.acquire().expect("lock");
    pair.set(0, pair.get(0).unwrap_or_default() + 1);
    holding.set();
    sleep_ms(60_000);
}

fn locks() -> Result {
    let lock = Lock::new()?;
    let counter = Value::new(0u64)?;
    // Clones of a lock or a value are handles to the same object, in every process.
    let kids = (0..4)
        .map(|_| Process::start(add_under_lock, (lock.clone(), counter.clone(), 2_000)))
        .collect::<Result<Vec<_>, _>>()?;
    for kid in kids {
        kid.join()?;
    }
    println!(
        "4 processes x 2000 increments under a Lock: {}",
        counter.get()?
    );
    assert_eq!(counter.get()?, 8_000);

    // A `Lock` taken twice by one thread would deadlock: that is reported instead. An
    // `RLock` may be taken again by its owner.
    {
        let _held = lock.acquire()?;
        assert!(matches!(
            lock.try_acquire(),
            Err(multiproc::SyncError::WouldDeadlock)
        ));
        let rlock = RLock::new()?;
        let (_outer, _inner) = (rlock.acquire(), rlock.acquire());
        println!(
            "Lock taken again by its holder: WouldDeadlock; RLock taken twice: count {}",
            rlock.count()
        );
    }

    // A holder killed in the middle of an update. Python's lock would stay taken forever;
    // here the next acquire gets the lock *and* the news (`owner_died()`), to repair the data.
    let pair = RawArray::from_slice(&[5i64, 5])?;
    let holding = Event::new()?;
    let child = Process::start(die_holding, (lock.clone(), pair.clone(), holding.clone()))?;
    assert!(holding.wait_timeout(Duration::from_secs(10)));
    child.kill()?;
    let _ = child.join(); // killed by SIGKILL
    let guard = lock
        .acquire_timeout(Duration::from_secs(5))?
        .ok_or("the lock stayed taken")?;
    if !guard.owner_died() {
        return Err("expected the owner-died notice".into());
    }
    print!(
        "child killed holding the lock: owner_died(), pair {:?}",
        pair.to_vec()
    );
    pair.set(1, pair.get(0).unwrap_or_default()); // finish the update
    println!(", repaired to {:?}", pair.to_vec());
    drop(guard);
    assert!(lock.try_acquire()?.is_some_and(|g| !g.owner_died())); // a healthy lock again
    println!("(more in examples/lock_counter.rs and examples/owner_died.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 10. Coordination

/// Holds one of the semaphore's permits for a moment; returns how many holders there were
/// when it entered.
fn hold_permit((slots, inside): (Semaphore, RawValue<u32>)) -> u32 {
    let _permit = slots.acquire(); // given back when dropped
    let now = inside.fetch_add(1) + 1;
    sleep_ms(30);
    inside.fetch_sub(1);
    now
}

/// Waits for the starting signal; returns whether it came.
fn wait_for_go(go: Event) -> bool {
    go.wait_timeout(Duration::from_secs(10))
}

/// Publishes a value and notifies whoever waits for it.
fn publish((cond, value): (Condition, RawValue<u32>)) {
    sleep_ms(20);
    let guard = cond.acquire().expect("condition lock");
    value.set(42);
    guard.notify_all();
}

/// Goes through three phases in step with the other party; returns its arrival indices.
fn in_step(barrier: Barrier) -> Vec<u32> {
    (0..3)
        .map(|_| {
            barrier
                .wait_timeout(Duration::from_secs(10))
                .expect("barrier")
        })
        .collect()
}

/// A barrier's action: a plain function, run by the last party to arrive.
fn all_arrived() {
    println!("  barrier action: all parties arrived");
}

fn coordination() -> Result {
    // Semaphore: at most two of five workers hold a permit at once.
    let slots = Semaphore::new(2)?;
    let inside = RawValue::new(0u32)?;
    let kids = (0..5)
        .map(|_| Process::start(hold_permit, (slots.clone(), inside.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let mut peak = 0;
    for kid in kids {
        peak = peak.max(kid.join()?);
    }
    println!("Semaphore(2): 5 workers, at most {peak} inside at once");
    assert!(peak <= 2);

    // Event: a flag any process can set, wait for, clear.
    let go = Event::new()?;
    assert!(!go.wait_timeout(Duration::from_millis(5))); // not set: times out
    let waiter = Process::start(wait_for_go, go.clone())?;
    sleep_ms(10);
    go.set();
    assert!(waiter.join()?);
    println!(
        "Event: the child waited until the parent set it (stop flags: examples/event_shutdown.rs)"
    );

    // Condition: wait (without holding the lock) until another process changed the state.
    let cond = Condition::new()?;
    let value = RawValue::new(0u32)?;
    let publisher = Process::start(publish, (cond.clone(), value.clone()))?;
    {
        let mut guard = cond.acquire().expect("condition lock");
        // `wait_for` checks the state first, so a notification sent before we wait is not
        // missed, and it waits again after a spurious wake-up.
        let published = guard.wait_for(|| value.get() != 0, Some(Duration::from_secs(10)));
        assert!(published);
        println!(
            "Condition: wait_for saw the published value {}",
            value.get()
        );
    }
    publisher.join()?;

    // Barrier: this process and a child go through three phases in step; the action runs
    // once per phase, in the last to arrive.
    let barrier = Barrier::with_action(2, all_arrived)?;
    let partner = Process::start(in_step, barrier.clone())?;
    let mine = in_step(barrier.clone());
    let theirs = partner.join()?;
    println!("Barrier(2): arrival indices, this process {mine:?}, the child {theirs:?}");
    assert!(mine.iter().zip(&theirs).all(|(a, b)| a + b == 1));
    println!("(more in examples/semaphore.rs, condition.rs and barrier.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 11. Shared values and arrays

fn halve(v: Value<f64>) {
    // One read-modify-write under the value's own lock (Python's
    // `with v.get_lock(): v.value /= 2`).
    v.update(|x| x / 2.0).expect("value lock");
}

/// Fills its half of the array, holding the array's lock.
fn fill_half((squares, half): (Array<u32>, usize)) {
    // The guard holds the lock and reads and writes copies of elements: another process
    // may write the shared memory at any time, so it is never borrowed as a `&mut [u32]`.
    let mut all = squares.lock().expect("array lock");
    let n = all.len() / 2;
    for i in half * n..(half + 1) * n {
        all.set(i, (i * i) as u32);
    }
}

/// Counts the digits of `text` into a shared histogram, with no lock: each count is one
/// atomic addition.
fn count_digits((histogram, text): (RawArray<u64>, String)) {
    for d in text.chars().filter_map(|c| c.to_digit(10)) {
        histogram.fetch_add(d as usize, 1);
    }
}

fn shared_values() -> Result {
    // Value: Python's `Value('d', 3.0)`. It has its own lock (`get_lock()`).
    let v = Value::new(3.0f64)?;
    Process::start(halve, v.clone())?.join()?;
    println!("Value<f64>: 3.0 halved in a child: {}", v.get()?);
    assert_eq!(v.get()?, 1.5);

    // Array: Python's `Array('i', 8)`; two children fill one half each.
    let squares = Array::<u32>::zeroed(8)?;
    let kids = (0..2)
        .map(|half| Process::start(fill_half, (squares.clone(), half)))
        .collect::<Result<Vec<_>, _>>()?;
    for kid in kids {
        kid.join()?;
    }
    println!(
        "Array<u32>: filled by two children: {:?}",
        squares.to_vec()?
    );
    assert_eq!(squares.get(7)?, Some(49));

    // RawArray: no lock at all; integer elements have atomic operations, which Python's
    // shared values lack.
    let histogram = RawArray::<u64>::zeroed(10)?;
    let texts = ["3.14159265358979", "2.71828182845904", "1.41421356237309"];
    let kids = texts
        .iter()
        .map(|t| Process::start(count_digits, (histogram.clone(), t.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    for kid in kids {
        kid.join()?;
    }
    let counts = histogram.to_vec();
    println!("RawArray<u64>: digit counts from three children: {counts:?}");
    let digits = texts.concat().chars().filter(char::is_ascii_digit).count();
    assert_eq!(counts.iter().sum::<u64>(), digits as u64);
    println!("(a 10-million-element Array summed by several processes: examples/array_sum.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 12. Named shared memory

/// Attaches to the segment by name and writes a greeting into it.
fn greet_into(name: String) -> usize {
    let shm = SharedMemory::attach(&name).expect("attach");
    let text = format!("hello from pid {}", current_process().pid);
    shm.write_at(0, text.as_bytes()).expect("write");
    text.len()
}

fn named_shared_memory() -> Result {
    // Python's `shared_memory.SharedMemory(create=True, size=4096)`.
    let shm = SharedMemory::create(4096)?;
    let name = shm.name().to_string();
    println!(
        "created {name:?} in /dev/shm: {}",
        shm_entries()?.contains(&name)
    );
    let len = Process::start(greet_into, name.clone())?.join()?;
    let mut text = vec![0u8; len];
    shm.read_at(0, &mut text)?;
    println!(
        "a child attached by name and wrote {:?}",
        String::from_utf8(text)?
    );

    shm.unlink()?; // Python's `unlink()`: the name goes away
    assert!(SharedMemory::attach(&name).is_err());
    println!(
        "unlinked: in /dev/shm: {}; a segment whose creator dies without unlinking it is \
         unlinked by the resource tracker (examples/shared_memory.rs)",
        shm_entries()?.contains(&name)
    );
    assert!(!shm_entries()?.contains(&name));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 13. Queues

/// Puts `0..n`, then the end marker.
fn count_up((q, n): (Queue<Option<u32>>, u32)) {
    for i in 0..n {
        q.put(Some(i)).expect("put");
    }
    q.put(None).expect("put"); // Python's `q.put(None)`
}

/// Puts one item much larger than the queue's buffer.
fn put_big((q, len): (Queue<ByteBuf>, usize)) {
    let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
    q.put(ByteBuf::from(bytes)).expect("put");
}

/// Puts its number and its square.
fn square_into((results, n): (SimpleQueue<(u64, u64)>, u64)) {
    results.put((n, n * n)).expect("put");
}

fn queues() -> Result {
    // Queue: any serde type. Python's `None` end marker is written with an `Option`.
    let q = Queue::new()?;
    let child = Process::start(count_up, (q.clone(), 5))?;
    let mut got = Vec::new();
    while let Some(i) = q.get()? {
        got.push(i);
    }
    child.join()?;
    println!("from a child, until the None end marker: {got:?}");
    assert_eq!(got, [0, 1, 2, 3, 4]);

    // Bounded: Python's `Queue(maxsize=2)`. Where Python raises `queue.Full` and
    // `queue.Empty`, the timed calls say "timed out" as every timed call here does:
    // `Ok(false)` (not put) and `Ok(None)` (no item).
    let q = Queue::with_maxsize(2)?;
    q.put('a')?;
    q.put('b')?;
    assert!(q.full() && q.qsize() == 2);
    assert!(!q.put_nowait('c')?);
    assert!(!q.put_timeout('c', Duration::from_millis(5))?);
    assert_eq!((q.get()?, q.get()?), ('a', 'b'));
    assert_eq!(q.get_timeout(Duration::from_millis(5))?, None);
    println!(
        "maxsize 2: with 2 items, put_nowait and put_timeout(5 ms) give Ok(false); empty, \
         get_timeout(5 ms) gives Ok(None)"
    );

    // There is no feeder thread: `put` writes the item into shared memory. An item larger
    // than the buffer streams through it while the reader takes it, so memory stays bounded.
    let q = Queue::builder().buffer_size(64 << 10).build()?;
    let child = Process::start(put_big, (q.clone(), 1 << 20))?;
    let big = q.get()?;
    child.join()?;
    assert!(big.iter().enumerate().all(|(i, &b)| b == i as u8));
    println!(
        "a {} KiB item through a {} KiB buffer arrived whole",
        big.len() >> 10,
        q.buffer_size() >> 10
    );

    // OS handles cannot travel inside items (send them over a Connection instead).
    let (conn, _other_end) = pipe()?;
    match Queue::new()?.put(conn) {
        Err(QueueError::Codec(e)) => println!("a Connection as an item: {e}"),
        other => return Err(format!("expected a codec error, got {other:?}").into()),
    }

    // SimpleQueue: Python's `SimpleQueue`, just put, get and empty. Three children each put
    // one result; the order they arrive in depends on scheduling.
    let results = SimpleQueue::new()?;
    let kids = (1..=3)
        .map(|n| Process::start(square_into, (results.clone(), n)))
        .collect::<Result<Vec<_>, _>>()?;
    for kid in kids {
        kid.join()?;
    }
    let mut squares = (0..3)
        .map(|_| results.get())
        .collect::<Result<Vec<_>, _>>()?;
    squares.sort();
    assert!(results.empty());
    println!("SimpleQueue: one result from each of three children: {squares:?}");
    assert_eq!(squares, [(1, 1), (2, 4), (3, 9)]);
    println!("(more in examples/queue_producer_consumer.rs and examples/queue_many_workers.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 14. A work list: JoinableQueue

/// Squares numbers until the end marker; returns how many it did.
fn square_tasks((tasks, results): (JoinableQueue<Option<u64>>, SimpleQueue<u64>)) -> u32 {
    let mut done = 0;
    while let Some(n) = tasks.get().expect("get") {
        // The result first, then `task_done`: when `join` returns, the result is there.
        results.put(n * n).expect("put");
        tasks.task_done().expect("task_done");
        done += 1;
    }
    tasks.task_done().expect("task_done"); // the end marker counts as a task too
    done
}

fn joinable_queue() -> Result {
    let tasks = JoinableQueue::new()?;
    let results = SimpleQueue::new()?;
    let workers = (0..2)
        .map(|_| Process::start(square_tasks, (tasks.clone(), results.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    for n in 1..=20 {
        tasks.put(Some(n))?;
    }
    println!(
        "put 20 tasks; unfinished_tasks: {}",
        tasks.unfinished_tasks()
    );
    // Python's `queue.join()`: wait until every task put has been marked done.
    tasks.join();
    let sum = (0..20).map(|_| results.get()).sum::<Result<u64, _>>()?;
    assert!(results.empty());
    println!(
        "after join: unfinished_tasks {}, all 20 results in (sum of squares {sum})",
        tasks.unfinished_tasks()
    );
    assert_eq!(sum, (1..=20u64).map(|n| n * n).sum());
    assert!(matches!(
        tasks.task_done(),
        Err(QueueError::TaskDoneTooManyTimes)
    ));

    // Stop the workers: one end marker each. Python's tutorial workers loop forever instead
    // (a daemonic worker could also be terminated once `join` has returned).
    for _ in &workers {
        tasks.put(None)?;
    }
    let counts = workers
        .into_iter()
        .map(|w| w.join())
        .collect::<Result<Vec<_>, _>>()?;
    println!("the two workers did {counts:?} tasks (the split depends on scheduling)");
    assert_eq!(counts.iter().sum::<u32>(), 20);

    // With nobody left to take it, a task stays unfinished: `join_timeout` says so.
    tasks.put(Some(0))?;
    assert!(!tasks.join_timeout(Duration::from_millis(5)));
    println!(
        "a task no one takes: join_timeout(5 ms) gives false, {} unfinished",
        tasks.unfinished_tasks()
    );
    assert_eq!(tasks.get()?, Some(0));
    tasks.task_done()?;
    assert!(tasks.join_timeout(Duration::ZERO));
    println!("(more in examples/queue_joinable_tasks.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 15. A pool of workers

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// The pid of the worker that ran it.
fn worker_pid(_: u32) -> u32 {
    std::process::id()
}

fn pool_map() -> Result {
    // Python: `with Pool(2) as pool: pool.map(square, range(10))`. The workers start now and
    // are reused for every task; items and results are serde types, like process arguments.
    let pool = Pool::new(2)?;
    let squares = pool.map(square, 0..10)?;
    println!(
        "map(square, 0..10) on workers {:?}: {squares:?}",
        pool.pids()
    );
    assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);

    // A function of several parameters takes tuples (Python's `starmap`): a closure that
    // captures nothing, or a named function cast to its pointer type, since the pointer's
    // shape comes from the items, which come after it.
    let sums = pool.starmap(add as fn(u64, u64) -> u64, [(1, 2), (30, 12)])?;
    println!("starmap(add, [(1, 2), (30, 12)]): {sums:?}");
    assert_eq!(sums, [3, 42]);

    // `map` cuts the items into chunks (Python's heuristic: four per worker); `chunksize`
    // sets the size. `imap_unordered` yields each result as it arrives, one `Result` per item.
    let mut pids = pool
        .chunksize(1)
        .imap_unordered(worker_pid, 0..20)?
        .collect::<Result<Vec<u32>, PoolError>>()?;
    pids.sort();
    pids.dedup();
    // Whichever worker is free takes the next chunk: tiny tasks may all go to one.
    println!("imap_unordered, chunk size 1: 20 tasks, run by workers {pids:?}");
    assert!(pids.iter().all(|pid| pool.pids().contains(pid)));

    // Python's `with` block terminates the pool; so does dropping it. `close` + `join` let
    // the workers finish what they have and exit.
    pool.close();
    pool.join()?;
    println!("(more in examples/pool_square.rs, pool_primes.rs and pool_chunked_mean.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 16. Pool tasks without waiting

/// Sleeps `ms`, then returns the square of `x`.
fn slow_square((x, ms): (u64, u64)) -> u64 {
    sleep_ms(ms);
    x * x
}

fn pool_async() -> Result {
    let pool = Pool::new(2)?;
    // `apply_async` returns at once with an `AsyncResult` (Python's `apply_async`).
    let start = Instant::now();
    let pending = pool.apply_async(slow_square, (7, 50))?;
    println!(
        "apply_async returned after {:.0?}; ready: {}",
        start.elapsed(),
        pending.ready()
    );
    assert!(matches!(
        pending.get_timeout(Duration::from_millis(5)),
        Err(PoolError::ResultTimeout)
    ));

    // A callback runs in the pool's result thread when the result arrives (Python's
    // `callback=`); an error callback when the task fails (`error_callback=`).
    let (tx, rx) = mpsc::channel();
    let errors = tx.clone();
    let values = (1..=3)
        .map(|x| {
            let tx = tx.clone();
            let r = pool.apply_async(slow_square, (x, 10 * x))?;
            Ok(r.callback(move |v| tx.send(format!("callback: {v}")).unwrap()))
        })
        .collect::<Result<Vec<_>, PoolError>>()?;
    let failing = pool
        .apply_async(boom, "a callback".to_string())?
        .error_callback(move |e| errors.send(format!("error_callback: {e}")).unwrap());
    drop(tx);
    let mut heard: Vec<String> = rx.iter().take(4).collect();
    heard.sort();
    for line in &heard {
        println!("{line}");
    }
    assert_eq!(heard.len(), 4);

    // The handles still have their results.
    let squares = values
        .into_iter()
        .map(|r| r.get())
        .collect::<Result<Vec<_>, _>>()?;
    assert_eq!(squares, [1, 4, 9]);
    // As in Python, a result is ready once its callbacks have returned: wait for it.
    failing.wait();
    assert_eq!(failing.successful(), Some(false));
    println!("get() on the three handles: {squares:?}; the fourth was not successful");
    pool.close();
    pool.join()?;
    println!("(more in examples/pool_sleepy.rs)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 17. A worker that dies fails only its task

/// Multiplies by 10, except that 2 aborts the worker process.
fn abort_on_two(x: u32) -> u32 {
    if x == 2 {
        std::process::abort()
    }
    10 * x
}

fn pool_crash() -> Result {
    // In Python, a pool worker that dies in a task (a segfault in C code, the OOM killer)
    // is replaced, but its task is lost and `map` never returns. Here only that task fails,
    // with the signal; a new worker takes the dead one's place. (Chunk size 1 and `imap`, to
    // see every item's own result; `map` would return the first error.)
    let pool = Pool::new(2)?;
    let before = pool.pids();
    let results: Vec<Result<u32, PoolError>> =
        pool.chunksize(1).imap(abort_on_two, 0..5)?.collect();
    for (x, r) in results.iter().enumerate() {
        match r {
            Ok(v) => println!("abort_on_two({x}) = {v}"),
            Err(e) => println!("abort_on_two({x}): {e}"),
        }
    }
    assert!(
        matches!(&results[2], Err(PoolError::WorkerDied { cause, .. }) if cause.contains("SIGABRT"))
    );
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
    println!("workers before {before:?}, after {:?}", pool.pids());
    assert_eq!(pool.apply(abort_on_two, 4)?, 40); // the pool goes on
    pool.close();
    pool.join()?;
    println!("(more in examples/pool_crash.rs: panics, and task_timeout for tasks that hang)");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 18. ProcessPoolExecutor: futures, as_completed, wait, cancel, await

/// Sleeps `ms` milliseconds, then returns it.
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn executor() -> Result {
    use multiproc::executor::{ReturnWhen, as_completed, wait};

    let ex = ProcessPoolExecutor::new(2)?;
    // as_completed: in the order they finish.
    let futures = [120, 10, 60]
        .into_iter()
        .map(|ms| ex.submit(nap, ms))
        .collect::<Result<Vec<_>, _>>()?;
    let order = as_completed(futures, None)
        .map(|f| f?.result())
        .collect::<Result<Vec<u64>, _>>()?;
    println!("as_completed: {order:?}");
    assert_eq!(order, [10, 60, 120]);

    // wait(FirstCompleted), then cancel what has not started (the workers are busy).
    let futures = [10, 100, 100, 100, 100, 100, 100]
        .into_iter()
        .map(|ms| ex.submit(nap, ms))
        .collect::<Result<Vec<_>, _>>()?;
    let first = wait(&futures, None, ReturnWhen::FirstCompleted);
    println!(
        "wait(FirstCompleted): {} done, {} not done",
        first.done.len(),
        first.not_done.len()
    );
    let last = &futures[futures.len() - 1];
    println!("cancel the last one (still queued): {}", last.cancel());
    assert!(last.cancelled());
    ex.shutdown(false, true); // cancel the queued ones too; the running ones finish
    let outcomes: Vec<String> = futures
        .into_iter()
        .map(|f| match f.result() {
            Ok(ms) => format!("{ms}"),
            Err(e) => format!("{e}"),
        })
        .collect();
    println!("after shutdown(cancel_futures): {outcomes:?}");

    // A PoolFuture is a std Future: await it from any runtime (here a minimal one).
    let ex = ProcessPoolExecutor::new(1)?;
    let answer = block_on(ex.submit(nap, 5)?)?;
    println!("awaited: {answer}");
    Ok(())
}

fn tally((n, d, l): (u32, DictProxy<String, u32>, ListProxy<u32>)) {
    d.insert(&format!("worker {n}"), &(n * n))
        .expect("the manager is up");
    l.push(&n).expect("the manager is up");
}

fn manager_section() -> Result {
    // A server process owns the objects; proxies travel to children like any argument.
    let manager = multiproc::Manager::start()?;
    let d = manager.dict::<String, u32>()?;
    let l = manager.list::<u32>()?;
    let children: Vec<_> = (1..=3)
        .map(|n| Process::start(tally, (n, d.clone(), l.clone())))
        .collect::<std::result::Result<_, _>>()?;
    for c in children {
        c.join()?;
    }
    let mut items = d.items()?;
    items.sort();
    println!("dict from 3 processes: {items:?}");
    println!("list length: {}", l.len()?);
    manager.shutdown()?;

    // Listener/Client: Python's wire protocol and handshake, here between two threads.
    let listener = multiproc::listener::Listener::bind("127.0.0.1:0", Some(b"tour key"))?;
    let address = listener.address().clone();
    let client = std::thread::spawn(move || -> std::result::Result<String, ConnectionError> {
        let mut conn = multiproc::listener::Client::connect(&address, Some(b"tour key"))?;
        conn.send_pickle(&("hello", 42))?; // what Python's conn.send(("hello", 42)) sends
        conn.recv_pickle()
    });
    let mut conn = listener.accept()?;
    let (word, n): (String, i64) = conn.recv_pickle()?;
    conn.send_pickle(&format!("{word} back, {}", n + 1))?;
    println!(
        "client got: {}",
        client.join().map_err(|_| "client thread panicked")??
    );
    let address = listener.address().clone();
    let intruder = std::thread::spawn(move || {
        multiproc::listener::Client::connect(&address, Some(b"wrong key")).is_err()
    });
    let refused = listener.accept().is_err();
    let rejected = intruder.join().map_err(|_| "intruder thread panicked")?;
    println!("a wrong key is refused by the client: {rejected}, by the listener: {refused}");
    Ok(())
}

/// The tour's logger: one line on stdout per record, so it reads in order with the rest.
struct TourLogger;

impl log::Log for TourLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        println!(
            "    log {:<5} {:<9} {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

fn say_hello(n: u32) -> u32 {
    log::info!("hello from child {n}");
    tracing::warn!(n, "a tracing event");
    n
}

fn print_two_lines(_: ()) {
    println!("printed by the child");
    println!("and a second line");
}

fn fail(_: ()) {
    panic!("this panic is shown once");
}

fn logging() -> Result {
    // Any logger will do; installed through multiproc, fork children forward to it too.
    multiproc::logging::install(TourLogger, log::LevelFilter::Info)?;
    let child = ProcessBuilder::new().name("greeter").start(say_hello, 1)?;
    child.join()?; // its records are out before join returns

    // Pool workers' records, labelled; the library's own events are quieted first.
    multiproc::logging::get_logger().set_level(log::LevelFilter::Warn);
    let pool = Pool::new(2)?;
    pool.map(say_hello, [2, 3])?;
    multiproc::logging::flush();
    drop(pool);

    // What children print can carry their name too (off by default).
    multiproc::logging::prefix_child_output(true);
    let printer = ProcessBuilder::new()
        .name("printer")
        .start(print_two_lines, ())?;
    printer.join()?;
    multiproc::logging::prefix_child_output(false);

    // A panic: one error record naming the child; the full report comes back from join.
    let crash = ProcessBuilder::new().name("crasher").start(fail, ())?;
    let err = crash.join().unwrap_err();
    println!("join: {err}");
    Ok(())
}

/// The smallest executor for one future: poll, then park until its waker unparks us.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(value) => return value,
            Poll::Pending => std::thread::park(),
        }
    }
}
