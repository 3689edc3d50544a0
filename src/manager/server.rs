// long file: the server's request loop and the one `match` that applies every operation to its object; the match is the server's whole contract, kept in one place
//! The manager's server process: it owns the shared objects and answers one request at a
//! time per connection, each connection on its own thread.
//!
//! Values are stored as their encoded bytes (postcard), exactly as proxies send them: the
//! server never needs the Rust types, and equal keys have equal encodings.
//!
//! # The locks of a connection that ends
//! A lock belongs to the connection that took it (one per client thread), and is released
//! when that connection ends, as a robust lock is when its owner dies. But a client process
//! has several connections (one per thread, and per proxy handle it received), and the
//! requests it sent on them are served by other threads, each at its own pace. A client
//! killed right after `v.set(x + 1)` under a lock has that request in the server's socket
//! buffer, or being served, when its lock connection ends: releasing the lock at once would
//! let another client take it and read `v` before that `set` lands, and the late `set` then
//! undoes the other client's work (a lost update under the lock, found by the crash suite).
//!
//! So [`release_after_peer`] releases only after every request the same client process had
//! already sent on its other connections has been served: it notes how many requests each
//! of them has served, and waits until each has ended, served one more, sits in a blocking
//! wait (its one request in flight is that wait), or is idle with nothing to read (a connection
//! is idle only while nothing of its next request has been read, even into its buffer). Connections
//! are registered with the client's process id (`SO_PEERCRED`) when accepted, *before* their
//! handshake, and a client sends nothing before its handshake ends, so no connection that
//! can carry a request escapes the count. The wait is bounded: each connection is waited for
//! at most one request, and a dead client's connections all read their end promptly. Every
//! change that can end the wait (a request served, a connection ending or starting to wait)
//! notifies `changed` while a release is waiting. Over TCP the kernel names no process, and a
//! connection's locks are released at once, as before.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::code::{Borrowing, CodeRef};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::connection::Connection;
use crate::handle::Handle;
use crate::listener::{Address, Listener};

/// What a proxy asks for.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
    /// A new object of this kind (named: the one of that name, created on first use).
    Create { kind: Kind, name: Option<String> },
    /// An operation on an object.
    Call { id: u64, op: Op },
    /// Stop the server.
    Shutdown,
}

/// The kinds of objects a manager holds.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Kind {
    Dict,
    List,
    Namespace,
    Value,
    /// A FIFO queue with this many items at most (0: no limit).
    Queue(u64),
    /// A queue whose consumers mark items done, and whose `join` waits for that.
    JoinableQueue(u64),
    Lock,
    RLock,
    /// A condition variable with its own reentrant lock.
    Condition,
    /// A barrier for this many parties.
    Barrier(u64),
    Event,
    /// A semaphore starting at this value; bounded ones refuse to go above it.
    Semaphore {
        value: u64,
        bounded: bool,
    },
    /// A user type (`manager::Managed`): its initial state and its two functions.
    Custom(Custom),
}

impl Kind {
    /// The kind's name, without its parameters.
    fn name(&self) -> &'static str {
        match self {
            Kind::Dict => "Dict",
            Kind::List => "List",
            Kind::Namespace => "Namespace",
            Kind::Value => "Value",
            Kind::Queue(_) => "Queue",
            Kind::JoinableQueue(_) => "JoinableQueue",
            Kind::Lock => "Lock",
            Kind::RLock => "RLock",
            Kind::Condition => "Condition",
            Kind::Barrier(_) => "Barrier",
            Kind::Event => "Event",
            Kind::Semaphore { .. } => "Semaphore",
            Kind::Custom(_) => "user type",
        }
    }
}

type Bytes = ByteBuf;

/// A user type's code and initial state, as the server finds them: the functions travel as
/// distances from a fixed function, like task entry points (the server runs the same
/// executable).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Custom {
    pub make: CodeRef<Borrowing<MakeFn>>,
    pub call: CodeRef<Borrowing<CallFn>>,
    pub initial: Bytes,
}

/// Who holds a lock (a connection, i.e. one thread of one process) and how many times.
#[derive(Default)]
struct Held {
    owner: Option<u64>,
    levels: u32,
    /// An RLock: its holder may take it again.
    recursive: bool,
}

/// Decode a user type's initial state.
pub(super) type MakeFn = fn(&[u8]) -> Result<Box<dyn Any + Send>, String>;
/// Run one request on a user type's state; the encoded reply.
pub(super) type CallFn = fn(&mut (dyn Any + Send), &[u8]) -> Result<Vec<u8>, String>;

/// One operation; keys and values are encoded.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Op {
    Len,
    Clear,
    DictGet(Bytes),
    DictInsert(Bytes, Bytes),
    DictRemove(Bytes),
    DictContains(Bytes),
    DictKeys,
    DictItems,
    DictUpdate(Vec<(Bytes, Bytes)>),
    ListPush(Bytes),
    ListGet(i64),
    ListSet(i64, Bytes),
    ListExtend(Vec<Bytes>),
    ListPop(Option<i64>),
    ListItems,
    NsGet(String),
    NsSet(String, Bytes),
    NsRemove(String),
    NsNames,
    ValueGet,
    ValueSet(Bytes),
    /// Blocking operations wait at most this many milliseconds (`None`: forever).
    QueuePut(Bytes, Option<u64>),
    QueueGet(Option<u64>),
    QueueTaskDone,
    QueueJoin(Option<u64>),
    CondWait(Option<u64>),
    CondNotify(u64),
    CondNotifyAll,
    BarrierWait(Option<u64>),
    BarrierAbort,
    BarrierReset,
    BarrierState,
    LockAcquire(Option<u64>),
    LockRelease,
    LockHeld,
    EventSet,
    EventClear,
    EventIsSet,
    EventWait(Option<u64>),
    SemAcquire(Option<u64>),
    SemRelease,
    SemValue,
    /// A request to a user type.
    Custom(Bytes),
}

/// The answer to a request.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Reply {
    Done,
    Created(u64),
    Maybe(Option<Bytes>),
    Flag(bool),
    Count(u64),
    Many(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    Names(Vec<String>),
    /// A barrier's parties, waiting count and whether it is broken.
    Barrier(u64, u64, bool),
    Failed(String),
}

enum Object {
    Dict(IndexMap<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Namespace(IndexMap<String, Vec<u8>>),
    Value(Vec<u8>),
    /// Items, the most there may be (0: no limit), and for a joinable queue the number of
    /// items put and not yet marked done.
    Queue(VecDeque<Vec<u8>>, u64, Option<u64>),
    Lock(Held),
    Condition {
        held: Held,
        /// Tickets of the threads waiting now, and those notified but not yet back.
        waiting: std::collections::BTreeSet<u64>,
        notified: std::collections::HashSet<u64>,
        next: u64,
    },
    Barrier {
        parties: u64,
        count: u64,
        generation: u64,
        resets: u64,
        broken: bool,
    },
    Event(bool),
    Semaphore {
        value: u64,
        limit: Option<u64>,
    },
    Custom(Box<dyn Any + Send>, CallFn),
}

#[derive(Default)]
struct Objects {
    /// The live connections, for [`release_after_peer`].
    conns: HashMap<u64, Conn>,
    /// Releases waiting in [`release_after_peer`] (connection changes notify `changed` then).
    draining: usize,
    next: u64,
    /// Each object with the name of its kind (for a named object asked for again).
    all: HashMap<u64, (&'static str, Object)>,
    names: HashMap<String, u64>,
}

/// What the server knows of a live connection.
struct Conn {
    /// The client's process id (`None` over TCP).
    peer: Option<u32>,
    phase: Phase,
    /// Requests served so far.
    served: u64,
    /// The socket (a duplicate), to see whether something is waiting to be read.
    socket: Option<OwnedFd>,
}

/// Where a connection's thread is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Authenticating the client: nothing served yet, a request may follow at once.
    Handshake,
    /// Waiting for the next request.
    Idle,
    /// Serving a request.
    Serving,
    /// In a blocking wait (a lock, a queue...): the request in flight is that wait.
    Waiting,
}

impl Conn {
    /// Whether a request the client sent before now may still be unserved.
    fn may_have_a_request(&self) -> bool {
        match self.phase {
            Phase::Handshake | Phase::Serving => true,
            Phase::Waiting => false,
            Phase::Idle => self.socket.as_ref().is_none_or(|s| {
                crate::sys::wait_readable(&[s.as_fd()], Some(Duration::ZERO))
                    .map_or(true, |ready| ready[0])
            }),
        }
    }
}

/// What the server process starts with.
#[derive(Serialize, Deserialize)]
pub(super) struct ServerArgs {
    pub socket: Handle<OwnedFd>,
    pub address: Address,
    pub authkey: ByteBuf,
}

/// The server process's task: serve until asked to stop (or until its parent, the manager's
/// owner, is gone: the server is daemonic).
pub(super) fn serve(args: ServerArgs) {
    let listener =
        Listener::from_parts(args.socket.into_inner(), args.address, Some(&args.authkey));
    let objects = Arc::new(State {
        objects: Mutex::new(Objects::default()),
        changed: Condvar::new(),
    });
    let key: Arc<[u8]> = Arc::from(args.authkey.as_slice());
    let timeout = listener.handshake_timeout();
    let mut next_conn = 0u64;
    loop {
        let socket = match listener.accept_socket() {
            Ok(socket) => socket,
            Err(e) if !crate::sys::is_transient_accept_error(&e) => crate::sys::exit_now(1),
            Err(_) => continue,
        };
        next_conn += 1;
        let me = next_conn;
        // Registered before the handshake: see "The locks of a connection that ends".
        lock(&objects).conns.insert(
            me,
            Conn {
                peer: crate::sys::peer_pid(socket.as_fd()),
                phase: Phase::Handshake,
                served: 0,
                socket: socket.try_clone().ok(),
            },
        );
        let state = objects.clone();
        let key = key.clone();
        let spawned = crate::library_thread::spawn("multiproc-manager-conn", move || {
            // A peer that fails the handshake or goes away during it: serve the others.
            let mut conn = Connection::new(socket);
            let authenticated = crate::listener::new_challenge().and_then(|random| {
                crate::listener::server_handshake(&mut conn, &key, &random, timeout)
            });
            match authenticated {
                Ok(()) => serve_connection(conn, &state, me),
                Err(_) => release_after_peer(&state, me),
            }
        });
        if spawned.is_err() {
            release_after_peer(&objects, me);
        }
    }
}

/// The objects, and a condition variable signalled after every change (what blocking
/// operations wait on).
struct State {
    objects: Mutex<Objects>,
    changed: Condvar,
}

fn lock(state: &State) -> MutexGuard<'_, Objects> {
    state.objects.lock().unwrap_or_else(|e| e.into_inner())
}

/// Move connection `me` to `phase` (counting a request served when it leaves `Serving` for
/// the next request or for `Idle`).
fn set_phase(state: &State, me: u64, phase: Phase) {
    let mut objects = lock(state);
    set_phase_locked(&mut objects, state, me, phase);
}

fn set_phase_locked(objects: &mut Objects, state: &State, me: u64, phase: Phase) {
    if let Some(conn) = objects.conns.get_mut(&me) {
        // Leaving a request for the next one, or for waiting between requests.
        if conn.phase == Phase::Serving && matches!(phase, Phase::Idle | Phase::Serving) {
            conn.served += 1;
        }
        conn.phase = phase;
    }
    if objects.draining > 0 {
        state.changed.notify_all();
    }
}

fn serve_connection(mut conn: Connection, state: &State, me: u64) {
    loop {
        // `Idle` only while nothing of the next request has been read: a release waiting on
        // this connection then finds the request in the socket, or sees it being served,
        // never neither (see "The locks of a connection that ends"). Errors are reported by
        // the receive.
        if !conn.has_buffered() {
            set_phase(state, me, Phase::Idle);
            // Polled briefly first, as a receive would: clients send their next request soon.
            let ready = || conn.poll(Some(Duration::ZERO)).unwrap_or(true);
            if !crate::sys::memory::spin_until(None, ready) {
                let _ = conn.poll(None);
            }
        }
        set_phase(state, me, Phase::Serving);
        let request = match conn.recv::<Request>() {
            Ok(request) => request,
            Err(_) => return release_after_peer(state, me),
        };
        let reply = match request {
            Request::Shutdown => {
                let _ = conn.send(&Reply::Done);
                crate::sys::exit_now(0);
            }
            Request::Create { kind, name } => create(&mut lock(state), kind, name),
            Request::Call { id, op } => call(state, id, op, me),
        };
        if conn.send(&reply).is_err() {
            return release_after_peer(state, me);
        }
    }
}

/// A connection that goes away releases the locks it held (even one granted after its
/// process died waiting), like a process that dies holding a robust lock; but only once the
/// requests its process sent on its other connections have been served (see "The locks of
/// a connection that ends").
fn release_after_peer(state: &State, me: u64) {
    let mut objects = lock(state);
    let peer = objects.conns.remove(&me).and_then(|c| c.peer);
    if let Some(pid) = peer {
        let before: Vec<(u64, u64)> = objects
            .conns
            .iter()
            .filter(|(_, c)| c.peer == Some(pid))
            .map(|(&id, c)| (id, c.served))
            .collect();
        objects.draining += 1;
        while before.iter().any(|(id, served)| {
            objects
                .conns
                .get(id)
                .is_some_and(|c| c.served == *served && c.may_have_a_request())
        }) {
            objects = state
                .changed
                .wait(objects)
                .unwrap_or_else(|e| e.into_inner());
        }
        objects.draining -= 1;
    }
    for (_, object) in objects.all.values_mut() {
        let held = match object {
            Object::Lock(held) | Object::Condition { held, .. } => held,
            _ => continue,
        };
        if held.owner == Some(me) {
            *held = Held {
                recursive: held.recursive,
                ..Held::default()
            };
        }
    }
    state.changed.notify_all();
}

/// Apply `op` to object `id`; a blocking operation waits on `changed` until it can proceed
/// or its time is up.
fn call(state: &State, id: u64, op: Op, me: u64) -> Reply {
    let deadline = match &op {
        Op::QueuePut(_, t)
        | Op::QueueGet(t)
        | Op::QueueJoin(t)
        | Op::LockAcquire(t)
        | Op::EventWait(t)
        | Op::CondWait(t)
        | Op::BarrierWait(t)
        | Op::SemAcquire(t) => t.and_then(|ms| crate::deadline::after(Duration::from_millis(ms))),
        _ => None,
    };
    let mut deadline = deadline;
    let mut pending = Pending::default();
    let mut objects = lock(state);
    loop {
        let Some((_, object)) = objects.all.get_mut(&id) else {
            return Reply::Failed(format!("no object {id} in this manager"));
        };
        match step(object, &op, me, &mut pending) {
            Step::Done(reply) => {
                state.changed.notify_all();
                return reply;
            }
            Step::Wait => {}
            Step::Other => return apply(object, op),
        }
        // A first attempt may have changed the object (a condition wait releases its lock).
        state.changed.notify_all();
        let timeout = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => match give_up(object, &op, &mut pending) {
                    Some(reply) => {
                        state.changed.notify_all();
                        return reply;
                    }
                    // Time is up, but it must first take its lock back (a condition wait).
                    None => {
                        deadline = None;
                        continue;
                    }
                },
            },
            None => Duration::from_secs(3600),
        };
        set_phase_locked(&mut objects, state, me, Phase::Waiting);
        objects = state
            .changed
            .wait_timeout(objects, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        set_phase_locked(&mut objects, state, me, Phase::Serving);
    }
}

/// What a blocking call remembers between its attempts.
#[derive(Default)]
struct Pending {
    /// A condition wait: its ticket, the lock levels it gave up, whether it was notified
    /// (or gave up), and what it will answer.
    cond: Option<(u64, u32, bool, bool)>,
    /// A barrier wait: the generation and reset count it arrived in, and its index.
    barrier: Option<(u64, u64, u64)>,
}

const BROKEN: &str = "the barrier is broken (a party timed out, or it was aborted or reset)";

/// A blocking operation's time is up: its answer, or `None` if it must still wait without
/// a deadline (a condition wait takes its lock back first, as in Python).
fn give_up(object: &mut Object, op: &Op, pending: &mut Pending) -> Option<Reply> {
    match (object, op) {
        (Object::Queue(..), Op::QueueGet(_)) => Some(Reply::Maybe(None)),
        (Object::Condition { waiting, .. }, Op::CondWait(_)) => {
            if let Some((ticket, _, woke, result)) = &mut pending.cond
                && !*woke
            {
                waiting.remove(ticket);
                *woke = true;
                *result = false;
            }
            None
        }
        (Object::Barrier { broken, count, .. }, Op::BarrierWait(_)) => {
            *broken = true;
            *count = 0;
            Some(Reply::Failed(format!("timed out: {BROKEN}")))
        }
        _ => Some(Reply::Flag(false)),
    }
}

enum Step {
    /// Finished (and maybe changed the object).
    Done(Reply),
    /// Cannot proceed yet.
    Wait,
    /// Not a blocking-object operation: `apply` it.
    Other,
}

/// One attempt at an operation on a queue, lock, event or semaphore.
fn step(object: &mut Object, op: &Op, me: u64, pending: &mut Pending) -> Step {
    match (object, op) {
        (
            Object::Condition {
                held,
                waiting,
                notified,
                next,
            },
            Op::CondWait(_),
        ) => match &mut pending.cond {
            None => {
                if held.owner != Some(me) {
                    return Step::Done(Reply::Failed(
                        "wait on a condition whose lock this thread does not hold".into(),
                    ));
                }
                let ticket = *next;
                *next += 1;
                waiting.insert(ticket);
                pending.cond = Some((ticket, held.levels, false, true));
                held.owner = None;
                held.levels = 0;
                Step::Wait
            }
            Some((ticket, levels, woke, result)) => {
                if !*woke {
                    if !notified.remove(ticket) {
                        return Step::Wait;
                    }
                    *woke = true;
                }
                if held.owner.is_some() {
                    return Step::Wait;
                }
                held.owner = Some(me);
                held.levels = *levels;
                Step::Done(Reply::Flag(*result))
            }
        },
        (
            Object::Condition {
                held,
                waiting,
                notified,
                ..
            },
            Op::CondNotify(_) | Op::CondNotifyAll,
        ) => {
            if held.owner != Some(me) {
                return Step::Done(Reply::Failed(
                    "notify on a condition whose lock this thread does not hold".into(),
                ));
            }
            let n = match op {
                Op::CondNotify(n) => *n as usize,
                _ => waiting.len(),
            };
            let woken: Vec<u64> = waiting.iter().take(n).copied().collect();
            for ticket in woken {
                waiting.remove(&ticket);
                notified.insert(ticket);
            }
            Step::Done(Reply::Done)
        }
        (
            Object::Barrier {
                parties,
                count,
                generation,
                resets,
                broken,
            },
            Op::BarrierWait(_),
        ) => match pending.barrier {
            None => {
                if *broken {
                    return Step::Done(Reply::Failed(BROKEN.into()));
                }
                let index = *count;
                *count += 1;
                if *count == *parties {
                    *count = 0;
                    *generation += 1;
                    return Step::Done(Reply::Count(index));
                }
                pending.barrier = Some((*generation, *resets, index));
                Step::Wait
            }
            Some((arrived, reset_count, index)) => {
                if *resets != reset_count || (*broken && *generation == arrived) {
                    Step::Done(Reply::Failed(BROKEN.into()))
                } else if *generation != arrived {
                    Step::Done(Reply::Count(index))
                } else {
                    Step::Wait
                }
            }
        },
        (Object::Barrier { broken, count, .. }, Op::BarrierAbort) => {
            *broken = true;
            *count = 0;
            Step::Done(Reply::Done)
        }
        (
            Object::Barrier {
                broken,
                count,
                resets,
                ..
            },
            Op::BarrierReset,
        ) => {
            *broken = false;
            *count = 0;
            *resets += 1;
            Step::Done(Reply::Done)
        }
        (
            Object::Barrier {
                parties,
                count,
                broken,
                ..
            },
            Op::BarrierState,
        ) => Step::Done(Reply::Barrier(*parties, *count, *broken)),
        (Object::Queue(items, max, unfinished), Op::QueuePut(item, _)) => {
            if *max != 0 && items.len() as u64 >= *max {
                return Step::Wait;
            }
            items.push_back(item.to_vec());
            if let Some(n) = unfinished {
                *n += 1;
            }
            Step::Done(Reply::Flag(true))
        }
        (Object::Queue(items, ..), Op::QueueGet(_)) => match items.pop_front() {
            Some(item) => Step::Done(Reply::Maybe(Some(bytes(item)))),
            None => Step::Wait,
        },
        (Object::Queue(items, ..), Op::Len) => Step::Done(Reply::Count(items.len() as u64)),
        (Object::Queue(_, _, Some(unfinished)), Op::QueueTaskDone) => {
            match unfinished.checked_sub(1) {
                Some(n) => {
                    *unfinished = n;
                    Step::Done(Reply::Done)
                }
                None => Step::Done(Reply::Failed("task_done() called too many times".into())),
            }
        }
        (Object::Queue(_, _, Some(unfinished)), Op::QueueJoin(_)) => {
            if *unfinished == 0 {
                Step::Done(Reply::Flag(true))
            } else {
                Step::Wait
            }
        }
        (Object::Lock(held) | Object::Condition { held, .. }, Op::LockAcquire(_)) => match held
            .owner
        {
            None => {
                held.owner = Some(me);
                held.levels = 1;
                Step::Done(Reply::Flag(true))
            }
            Some(owner) if owner == me && held.recursive => {
                held.levels += 1;
                Step::Done(Reply::Flag(true))
            }
            // Waiting forever for oneself would never end (a timed wait just times out).
            Some(owner) if owner == me && matches!(op, Op::LockAcquire(None)) => {
                Step::Done(Reply::Failed(
                    "this thread already holds this lock (it is not an RLock): acquiring it again \
                 would deadlock"
                        .into(),
                ))
            }
            Some(_) => Step::Wait,
        },
        (Object::Lock(held) | Object::Condition { held, .. }, Op::LockRelease) => {
            if held.owner == Some(me) {
                held.levels -= 1;
                if held.levels == 0 {
                    held.owner = None;
                }
                Step::Done(Reply::Done)
            } else {
                Step::Done(Reply::Failed(
                    "release of a lock this thread does not hold".into(),
                ))
            }
        }
        (Object::Lock(held) | Object::Condition { held, .. }, Op::LockHeld) => {
            Step::Done(Reply::Flag(held.owner.is_some()))
        }
        (Object::Event(flag), Op::EventSet) => {
            *flag = true;
            Step::Done(Reply::Done)
        }
        (Object::Event(flag), Op::EventClear) => {
            *flag = false;
            Step::Done(Reply::Done)
        }
        (Object::Event(flag), Op::EventIsSet) => Step::Done(Reply::Flag(*flag)),
        (Object::Event(flag), Op::EventWait(_)) => {
            if *flag {
                Step::Done(Reply::Flag(true))
            } else {
                Step::Wait
            }
        }
        (Object::Semaphore { value, .. }, Op::SemAcquire(_)) => {
            if *value == 0 {
                return Step::Wait;
            }
            *value -= 1;
            Step::Done(Reply::Flag(true))
        }
        (Object::Semaphore { value, limit }, Op::SemRelease) => {
            if limit.is_some_and(|l| *value >= l) {
                return Step::Done(Reply::Failed(
                    "a bounded semaphore was released too many times".into(),
                ));
            }
            *value += 1;
            Step::Done(Reply::Done)
        }
        (Object::Semaphore { value, .. }, Op::SemValue) => Step::Done(Reply::Count(*value)),
        _ => Step::Other,
    }
}

crate::code::code_fn!(borrowing MakeFn, CallFn);

fn make_custom(custom: &Custom) -> Result<Object, String> {
    let refused = |e| format!("the manager cannot serve this type: {e}");
    let Borrowing(make) = custom.make.resolve().map_err(refused)?;
    let Borrowing(call) = custom.call.resolve().map_err(refused)?;
    Ok(Object::Custom(make(&custom.initial)?, call))
}

fn create(objects: &mut Objects, kind: Kind, name: Option<String>) -> Reply {
    if let Some(name) = &name
        && let Some(&id) = objects.names.get(name)
    {
        return match objects.all.get(&id) {
            Some((existing, _)) if *existing == kind.name() => Reply::Created(id),
            Some((existing, _)) => Reply::Failed(format!(
                "'{name}' is a {existing} in this manager, not a {}",
                kind.name()
            )),
            None => Reply::Failed(format!("'{name}' was lost")),
        };
    }
    let object = match &kind {
        Kind::Dict => Object::Dict(IndexMap::new()),
        Kind::List => Object::List(Vec::new()),
        Kind::Namespace => Object::Namespace(IndexMap::new()),
        Kind::Value => Object::Value(Vec::new()),
        Kind::Queue(max) => Object::Queue(VecDeque::new(), *max, None),
        Kind::JoinableQueue(max) => Object::Queue(VecDeque::new(), *max, Some(0)),
        Kind::Lock => Object::Lock(Held::default()),
        Kind::Condition => Object::Condition {
            held: Held {
                recursive: true,
                ..Held::default()
            },
            waiting: Default::default(),
            notified: Default::default(),
            next: 0,
        },
        Kind::Barrier(parties) => Object::Barrier {
            parties: (*parties).max(1),
            count: 0,
            generation: 0,
            resets: 0,
            broken: false,
        },
        Kind::RLock => Object::Lock(Held {
            recursive: true,
            ..Held::default()
        }),
        Kind::Event => Object::Event(false),
        Kind::Semaphore { value, bounded } => Object::Semaphore {
            value: *value,
            limit: bounded.then_some(*value),
        },
        Kind::Custom(custom) => match make_custom(custom) {
            Ok(object) => object,
            Err(reason) => return Reply::Failed(reason),
        },
    };
    objects.next += 1;
    let id = objects.next;
    objects.all.insert(id, (kind.name(), object));
    if let Some(name) = name {
        objects.names.insert(name, id);
    }
    Reply::Created(id)
}

/// A Python-style index (negative counts from the end) into a list of `len` items.
fn index(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

fn bytes(v: Vec<u8>) -> Bytes {
    ByteBuf::from(v)
}

fn apply(object: &mut Object, op: Op) -> Reply {
    match (object, op) {
        (Object::Dict(d), Op::Len) => Reply::Count(d.len() as u64),
        (Object::List(l), Op::Len) => Reply::Count(l.len() as u64),
        (Object::Namespace(n), Op::Len) => Reply::Count(n.len() as u64),
        (Object::Dict(d), Op::Clear) => {
            d.clear();
            Reply::Done
        }
        (Object::List(l), Op::Clear) => {
            l.clear();
            Reply::Done
        }
        (Object::Dict(d), Op::DictGet(k)) => Reply::Maybe(d.get(k.as_slice()).cloned().map(bytes)),
        (Object::Dict(d), Op::DictInsert(k, v)) => {
            Reply::Maybe(d.insert(k.into_vec(), v.into_vec()).map(bytes))
        }
        (Object::Dict(d), Op::DictRemove(k)) => {
            Reply::Maybe(d.shift_remove(k.as_slice()).map(bytes))
        }
        (Object::Dict(d), Op::DictContains(k)) => Reply::Flag(d.contains_key(k.as_slice())),
        (Object::Dict(d), Op::DictKeys) => Reply::Many(d.keys().cloned().map(bytes).collect()),
        (Object::Dict(d), Op::DictItems) => Reply::Pairs(
            d.iter()
                .map(|(k, v)| (bytes(k.clone()), bytes(v.clone())))
                .collect(),
        ),
        (Object::Dict(d), Op::DictUpdate(pairs)) => {
            d.extend(pairs.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())));
            Reply::Done
        }
        (Object::List(l), Op::ListPush(v)) => {
            l.push(v.into_vec());
            Reply::Done
        }
        (Object::List(l), Op::ListGet(i)) => {
            Reply::Maybe(index(i, l.len()).map(|i| bytes(l[i].clone())))
        }
        (Object::List(l), Op::ListSet(i, v)) => match index(i, l.len()) {
            Some(i) => {
                l[i] = v.into_vec();
                Reply::Done
            }
            None => Reply::Failed(format!("list index {i} out of range (len {})", l.len())),
        },
        (Object::List(l), Op::ListExtend(items)) => {
            l.extend(items.into_iter().map(ByteBuf::into_vec));
            Reply::Done
        }
        (Object::List(l), Op::ListPop(i)) => {
            let at = match i {
                None => l.len().checked_sub(1),
                Some(i) => index(i, l.len()),
            };
            Reply::Maybe(at.map(|at| bytes(l.remove(at))))
        }
        (Object::List(l), Op::ListItems) => Reply::Many(l.iter().cloned().map(bytes).collect()),
        (Object::Namespace(n), Op::NsGet(name)) => Reply::Maybe(n.get(&name).cloned().map(bytes)),
        (Object::Namespace(n), Op::NsSet(name, v)) => {
            n.insert(name, v.into_vec());
            Reply::Done
        }
        (Object::Namespace(n), Op::NsRemove(name)) => {
            Reply::Maybe(n.shift_remove(&name).map(bytes))
        }
        (Object::Namespace(n), Op::NsNames) => Reply::Names(n.keys().cloned().collect()),
        (Object::Value(v), Op::ValueGet) => Reply::Maybe(Some(bytes(v.clone()))),
        (Object::Custom(state, call), Op::Custom(request)) => {
            let call = *call;
            // A panic is this call's failure (with its message and place), not the server's.
            match crate::process::child::catch_task(|| call(state.as_mut(), &request)) {
                Ok(Ok(reply)) => Reply::Maybe(Some(bytes(reply))),
                Ok(Err(reason)) => Reply::Failed(reason),
                Err(panic) => {
                    let at = panic
                        .location
                        .map(|(file, line, col)| format!(" at {file}:{line}:{col}"))
                        .unwrap_or_default();
                    Reply::Failed(format!(
                        "the shared object's handler panicked{at}: {}",
                        panic.message
                    ))
                }
            }
        }
        (Object::Value(v), Op::ValueSet(new)) => {
            *v = new.into_vec();
            Reply::Done
        }
        (_, op) => Reply::Failed(format!("operation {op:?} does not apply to this object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: u32, phase: Phase, socket: Option<OwnedFd>) -> Conn {
        Conn {
            peer: Some(peer),
            phase,
            served: 0,
            socket,
        }
    }

    fn owner(state: &State, id: u64) -> Option<u64> {
        match &lock(state).all[&id].1 {
            Object::Lock(held) => held.owner,
            _ => panic!("not a lock"),
        }
    }

    #[test]
    fn a_closed_connection_keeps_its_locks_until_its_process_requests_in_flight_are_served() {
        let state = Arc::new(State {
            objects: Mutex::new(Objects::default()),
            changed: Condvar::new(),
        });
        // Connection 1 holds lock 10; connection 2 of the same process is serving a request
        // (say the `set` made under that lock), connection 3 of another process too.
        let (quiet, _other_end) = crate::sys::socketpair().expect("socketpair");
        {
            let mut objects = lock(&state);
            let held = Held {
                owner: Some(1),
                levels: 1,
                recursive: false,
            };
            objects.all.insert(10, ("Lock", Object::Lock(held)));
            objects.conns.insert(1, conn(7, Phase::Idle, None));
            objects
                .conns
                .insert(2, conn(7, Phase::Serving, Some(quiet)));
            objects.conns.insert(3, conn(8, Phase::Serving, None));
        }
        let releasing = {
            let state = state.clone();
            std::thread::spawn(move || release_after_peer(&state, 1))
        };
        // Once the release is waiting (or, wrongly, done), the lock must still be held.
        while lock(&state).draining == 0 && !releasing.is_finished() {
            std::thread::yield_now();
        }
        assert_eq!(owner(&state, 10), Some(1));
        // Connection 2 finishes its request and waits for the next (nothing to read).
        set_phase(&state, 2, Phase::Idle);
        releasing.join().expect("release");
        assert_eq!(owner(&state, 10), None);
        assert_eq!(lock(&state).draining, 0);
    }
}
