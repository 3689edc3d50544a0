//! What runs in a pool worker: the orders it takes, the chunk trampolines, the status it
//! publishes for the parent, and its main loop.

use std::io;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU64, fence};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::code::{Borrowing, CodeFn, CodeRef};
use crate::handle;
use crate::panic_report::PanicReport;
use crate::process::child;
use crate::queue::ring::Ring;
use crate::segment::{Shared, SharedState};

/// A chunk trampoline: decode the items in `payload`, run the task on each one not listed
/// in `skip` (publishing progress in `status`), append the encoded results to `out`.
pub(crate) type ChunkFn = fn(
    payload: &[u8],
    skip: &[u32],
    status: &WorkerStatus,
    out: &mut Vec<u8>,
) -> Result<(), String>;

/// An initializer trampoline: decode the argument and run the initializer.
pub(crate) type InitFn = fn(payload: &[u8]) -> Result<Result<(), PanicReport>, String>;

crate::code::code_fn!(borrowing ChunkFn, InitFn);

/// A chunk trampoline of this executable, found again in a worker (see `code`).
pub(crate) type Code = CodeRef<Borrowing<ChunkFn>>;
/// An initializer trampoline of this executable, found again in a worker.
pub(crate) type InitCode = CodeRef<Borrowing<InitFn>>;

fn resolve_chunk(code: Code) -> Result<ChunkFn, String> {
    code.resolve()
        .map(|Borrowing(run)| run)
        .map_err(|e| format!("the pool worker cannot run this task: {e}"))
}

pub(crate) fn resolve_init(code: InitCode) -> Result<InitFn, String> {
    code.resolve()
        .map(|Borrowing(run)| run)
        .map_err(|e| format!("the pool worker cannot run its initializer: {e}"))
}

/// Parent → worker, followed by the chunk's items.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Order {
    Run { id: u64, code: Code, skip: Vec<u32> },
    Stop,
}

/// Worker (or the parent's watcher) → the parent's collector.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Followed by the encoded `ChunkOutput<R>`.
    Done { id: u64, worker: u32 },
    /// The chunk could not run at all (undecodable items, unencodable results).
    Failed { id: u64, reason: String },
    /// The initializer panicked in this worker.
    InitFailed { worker: u32, report: PanicReport },
    /// The worker process ended (sent by the watcher thread; for a remote worker, by its
    /// transport).
    Ended { worker: u32, generation: u64 },
    /// A remote worker was given up: these chunks, sent to it but not started, go back to
    /// the backlog (sent by its transport, before the worker's `Ended`).
    Returned { ids: Vec<u64> },
    /// Stop the collector (sent by the pool when it shuts down).
    Shutdown,
}

/// Why one item has no value.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ItemFailure {
    Panicked(PanicReport),
    /// In the parent's skip list (it failed in an earlier run of this chunk).
    Skipped,
}

/// A chunk's results: the values of the items that succeeded, in order, and the failed
/// items by index. Kept apart so that a chunk of a million `()` results is a few bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ChunkOutput<R> {
    pub failures: Vec<(u32, ItemFailure)>,
    pub values: Vec<R>,
}

/// What a worker publishes about itself, in shared memory the parent reads.
///
/// `task`, `item`, `started_ns` and `panicked_ns` form one record, written only by the
/// worker's task thread (a single writer) under a sequence lock, so the parent's watcher
/// reads a consistent record: never the item of one chunk with the start time of another
/// (see [`WorkerStatus::write`] and [`WorkerStatus::read`] for the ordering argument).
#[repr(C)]
pub(crate) struct WorkerStatus {
    /// Sequence lock over the record: odd while the worker writes it.
    seq: AtomicU64,
    /// `id + 1` of the chunk being run, 0 when idle.
    task: AtomicU64,
    /// Index in that chunk of the item being run ([`NOT_STARTED`] before the first).
    item: AtomicU64,
    /// When that item started (`CLOCK_MONOTONIC` ns), if the pool has a task timeout.
    started_ns: AtomicU64,
    /// When that item panicked (its report is being made; 0: it did not).
    panicked_ns: AtomicU64,
    /// Set once the initializer has run.
    pub ready: AtomicU64,
    /// Whether to record `started_ns`.
    pub timed: AtomicU64,
}

// SAFETY: only atomics; zero is a valid (idle, not ready) status.
unsafe impl SharedState for WorkerStatus {
    const KIND: u32 = 7;

    unsafe fn init(_: *mut Self) -> io::Result<()> {
        Ok(())
    }
}

/// One consistent reading of a worker's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// `id + 1` of the chunk being run, 0 when idle.
    pub task: u64,
    /// The item being run, or [`NOT_STARTED`].
    pub item: u64,
    pub started_ns: u64,
    pub panicked_ns: u64,
}

pub(crate) fn monotonic_ns() -> u64 {
    crate::sys::monotonic_ns()
}

/// `WorkerStatus::item` while a claimed chunk has not started its first item.
pub(crate) const NOT_STARTED: u64 = u64::MAX;

impl WorkerStatus {
    /// Change the record. Only one thread of one process ever writes (the worker's task
    /// thread, or the parent before the worker starts), so no writer races another.
    ///
    /// Ordering (the classic seqlock with fences): the odd sequence number is stored, then
    /// a `Release` fence, then the fields (`Relaxed`), then the even number with `Release`.
    /// A reader that sees any field value written after the fence has, through its own
    /// `Acquire` fence after the field loads, its second sequence load ordered after our odd
    /// store: it sees the sequence change and retries. A reader whose first (`Acquire`) load
    /// sees the final even number sees every field stored before it.
    fn write(&self, f: impl FnOnce(&Self)) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        f(self);
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// A consistent reading of the record, or `None` if the worker was writing it each of a
    /// few tries (it is in the middle of an update, or died in one).
    pub(crate) fn read(&self) -> Option<Progress> {
        for _ in 0..64 {
            let before = self.seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let progress = self.read_fields();
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                return Some(progress);
            }
        }
        None
    }

    /// The record as it is, once the worker is dead (nothing writes it any more; its exit
    /// ordered every store before our reading). Consistent unless the worker died in the
    /// middle of an update, which [`read`](WorkerStatus::read) would tell.
    pub(crate) fn read_fields(&self) -> Progress {
        Progress {
            task: self.task.load(Relaxed),
            item: self.item.load(Relaxed),
            started_ns: self.started_ns.load(Relaxed),
            panicked_ns: self.panicked_ns.load(Relaxed),
        }
    }

    /// Idle and not ready: in the parent, before a worker starts on this status.
    pub(crate) fn reset(&self, timed: bool) {
        self.write(|s| {
            s.task.store(0, Relaxed);
            s.item.store(0, Relaxed);
            s.started_ns.store(0, Relaxed);
            s.panicked_ns.store(0, Relaxed);
        });
        self.ready.store(0, SeqCst);
        self.timed.store(timed as u64, SeqCst);
    }

    pub(crate) fn claim(&self, id: u64) {
        self.write(|s| {
            s.item.store(NOT_STARTED, Relaxed);
            s.started_ns.store(0, Relaxed);
            s.panicked_ns.store(0, Relaxed);
            s.task.store(id + 1, Relaxed);
        });
    }

    pub(crate) fn start_item(&self, index: usize, timed: bool) {
        let now = if timed { monotonic_ns() } else { 0 };
        self.write(|s| {
            s.item.store(index as u64, Relaxed);
            s.started_ns.store(now, Relaxed);
            s.panicked_ns.store(0, Relaxed);
        });
    }

    /// The running item panicked: its report is on its way (the watcher stops its timeout
    /// clock, see `engine/watcher.rs`). Called from the panic hook, before anything slow.
    fn mark_panicked(&self) {
        let now = monotonic_ns().max(1);
        self.write(|s| s.panicked_ns.store(now, Relaxed));
    }

    pub(crate) fn finish(&self) {
        self.write(|s| s.task.store(0, Relaxed));
    }
}

/// The panic hook's mark for the chunk trampoline's status (see `child::on_task_panic`).
fn mark_panicked(status: usize) {
    // SAFETY: `run_chunk` installs this with the address of its `&WorkerStatus` and removes
    // it before that borrow ends; the hook calls it in the same thread meanwhile.
    let status = unsafe { &*(status as *const WorkerStatus) };
    status.mark_panicked();
}

/// How the items of a chunk are applied to the task function. A chunk's payload is the
/// function's code reference followed by the items (see [`Chunks`]).
pub(crate) trait Apply: 'static {
    /// The task function's type: a function pointer.
    type Func: CodeFn;
    type Item: Serialize + DeserializeOwned;
    type Output: Serialize + DeserializeOwned;
    fn apply(f: Self::Func, item: Self::Item) -> Self::Output;
}

/// `f(item)` for a task function `f: fn(A) -> R`.
pub(crate) struct Call<A, R>(PhantomData<fn() -> (A, R)>);

impl<A, R> Apply for Call<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type Func = fn(A) -> R;
    type Item = A;
    type Output = R;
    fn apply(f: fn(A) -> R, item: A) -> R {
        f(item)
    }
}

/// `f(a, b, ...)` for an item `(a, b, ...)` (Python's `starmap`).
pub(crate) struct StarCall<Args, R>(PhantomData<fn() -> (Args, R)>);

/// The argument tuples of [`Pool::starmap`](super::Pool::starmap): `(A,)` to
/// `(A, B, C, D, E, G)`. [`Fn<R>`](StarArgs::Fn) is the type of a function that takes
/// the tuple's elements as its arguments: `fn(A, B) -> R` for `(A, B)`.
///
/// ```
/// use multiproc::StarArgs;
/// fn add(a: i32, b: i32) -> i32 { a + b }
/// let f: <(i32, i32) as StarArgs>::Fn<i32> = add;
/// assert_eq!(<(i32, i32)>::call(f, (2, 3)), 5);
/// ```
pub trait StarArgs: Sized + 'static {
    /// `fn(A, B, ...) -> R` for the tuple `(A, B, ...)`: a function item or a closure that
    /// captures nothing.
    type Fn<R: 'static>: CodeFn;
    /// Call `f` with the elements of `args` as arguments.
    fn call<R: 'static>(f: Self::Fn<R>, args: Self) -> R;
}

macro_rules! star_args {
    ($($a:ident),*) => {
        impl<$($a: 'static),*> StarArgs for ($($a,)*) {
            type Fn<R: 'static> = fn($($a),*) -> R;
            #[allow(non_snake_case)]
            fn call<R: 'static>(f: Self::Fn<R>, ($($a,)*): Self) -> R {
                f($($a),*)
            }
        }
    };
}
star_args!(A);
star_args!(A, B);
star_args!(A, B, C);
star_args!(A, B, C, D);
star_args!(A, B, C, D, E);
star_args!(A, B, C, D, E, G);

impl<Args, R> Apply for StarCall<Args, R>
where
    Args: StarArgs + Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + 'static,
{
    type Func = Args::Fn<R>;
    type Item = Args;
    type Output = R;
    fn apply(f: Args::Fn<R>, item: Args) -> R {
        Args::call(f, item)
    }
}

/// The chunks of a call of task function `func`: the trampoline that runs them and their
/// payloads. Both come from this one value of type `Chunks<C>`, so a worker always decodes
/// a payload (and the function reference at its start) as the `C` it was encoded with.
pub(crate) struct Chunks<C: Apply> {
    func: C::Func,
}

impl<C: Apply> Chunks<C> {
    pub(crate) fn new(func: C::Func) -> Self {
        Chunks { func }
    }

    /// The trampoline, `run_chunk::<C>`.
    pub(crate) fn code(&self) -> Code {
        CodeRef::of(Borrowing(run_chunk::<C> as ChunkFn))
    }

    /// A chunk's payload: the function's code reference, then the items.
    pub(crate) fn payload(&self, items: &[C::Item]) -> Result<Vec<u8>, String> {
        super::encode_plain::<C::Item>(&(CodeRef::of(self.func), items))
    }
}

/// The chunk trampoline for `A`.
fn run_chunk<A: Apply>(
    payload: &[u8],
    skip: &[u32],
    status: &WorkerStatus,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let (func, items): (CodeRef<A::Func>, Vec<A::Item>) =
        handle::decode(payload, Vec::new()).map_err(|e| e.to_string())?;
    let func = func
        .resolve()
        .map_err(|e| format!("the pool worker cannot find the task function: {e}"))?;
    let mut output = ChunkOutput {
        failures: Vec::new(),
        values: Vec::with_capacity(items.len()),
    };
    let catching = child::catching();
    // Removed when this guard drops, before `status` can go away.
    let _mark = child::on_task_panic(mark_panicked, status as *const WorkerStatus as usize);
    let timed = status.timed.load(Relaxed) != 0;
    for (index, item) in items.into_iter().enumerate() {
        if !skip.is_empty() && skip.binary_search(&(index as u32)).is_ok() {
            output.failures.push((index as u32, ItemFailure::Skipped));
            continue;
        }
        status.start_item(index, timed);
        match catching.run(|| A::apply(func, item)) {
            Ok(value) => output.values.push(value),
            Err(report) => output
                .failures
                .push((index as u32, ItemFailure::Panicked(report))),
        }
    }
    handle::encode(&output, out)
        .map(drop)
        .map_err(|e| format!("a task's result could not be sent back: {e}"))
}

/// An initializer's trampoline, `run_init::<A>`, and payload: `f`'s code reference, then its
/// argument.
pub(crate) fn initializer<A>(f: fn(A), arg: &A) -> Result<(InitCode, Vec<u8>), String>
where
    A: Serialize + DeserializeOwned + 'static,
{
    let code = CodeRef::of(Borrowing(run_init::<A> as InitFn));
    Ok((code, super::encode_plain::<A>(&(CodeRef::of(f), arg))?))
}

/// The initializer trampoline for an initializer taking an `A`.
fn run_init<A: DeserializeOwned + 'static>(
    payload: &[u8],
) -> Result<Result<(), PanicReport>, String> {
    let (func, arg): (CodeRef<fn(A)>, A) =
        handle::decode(payload, Vec::new()).map_err(|e| e.to_string())?;
    let func = func
        .resolve()
        .map_err(|e| format!("the pool worker cannot find its initializer: {e}"))?;
    Ok(child::catch_task(|| func(arg)))
}

/// Why a worker process returned.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WorkerExit {
    /// It took a `Stop` order.
    Stopped,
    /// It ran `max_tasks` chunks.
    Retired,
    /// Its resident memory (bytes) reached `max_memory` after a chunk.
    Grew(u64),
}

/// Everything a worker process needs; its argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub index: u32,
    pub tasks: Ring,
    pub results: Ring,
    pub status: Shared<WorkerStatus>,
    pub init: Option<(InitCode, serde_bytes::ByteBuf)>,
    pub max_tasks: u64,
    /// Retire after a chunk that leaves this many resident bytes or more (0: never).
    pub max_memory: u64,
}

fn send(results: &Ring, report: &Report) {
    let mut out = Vec::new();
    // Encoding our own enum into a Vec cannot fail.
    let _ = handle::encode(report, &mut out);
    // Nothing to do if it fails: the parent sees this worker end and fails the chunk.
    let _ = results.put(&out, None);
}

/// Run one chunk for worker `index`: the encoded report for the parent's collector
/// (`Done` and the chunk's output, or `Failed`). Shared with the MPI worker ranks.
pub(crate) fn run_order(
    index: u32,
    id: u64,
    code: Code,
    skip: &[u32],
    payload: &[u8],
    status: &WorkerStatus,
) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding our own enum into a Vec cannot fail.
    let _ = handle::encode(&Report::Done { id, worker: index }, &mut out);
    if let Err(reason) = resolve_chunk(code).and_then(|run| run(payload, skip, status, &mut out)) {
        out.clear();
        let _ = handle::encode(&Report::Failed { id, reason }, &mut out);
    }
    out
}

/// The worker process: run the initializer, then orders until `Stop` or `max_tasks`.
pub(crate) fn worker_main(args: WorkerArgs) -> Result<WorkerExit, String> {
    let WorkerArgs {
        index,
        tasks,
        results,
        status,
        init,
        max_tasks,
        max_memory,
    } = args;
    if let Some((code, payload)) = init
        && let Err(report) = resolve_init(code)?(&payload)?
    {
        send(
            &results,
            &Report::InitFailed {
                worker: index,
                report,
            },
        );
        return Err("the initializer panicked".into());
    }
    status.ready.store(1, SeqCst);
    let mut done = 0u64;
    loop {
        // The order is claimed (written into the status) before any of it leaves the ring:
        // if this process dies from then on, the parent finds the chunk in its status.
        let claim = |bytes: &[u8]| {
            if let Ok((Order::Run { id, .. }, _)) = postcard::take_from_bytes::<Order>(bytes) {
                status.claim(id);
            }
        };
        let taken = tasks.get_claiming(None, claim, |bytes| {
            let (order, payload) = postcard::take_from_bytes::<Order>(bytes)
                .map_err(|e| format!("undecodable order from the pool: {e}"))?;
            if let Order::Run { id, .. } = &order {
                status.claim(*id);
            }
            Ok::<_, String>((order, payload.to_vec()))
        });
        let (order, payload) = match taken {
            Ok(Some(decoded)) => decoded?,
            Ok(None) => continue,
            Err(e) => return Err(format!("the pool's task queue failed: {e}")),
        };
        let Order::Run { id, code, skip } = order else {
            return Ok(WorkerExit::Stopped);
        };
        let out = run_order(index, id, code, &skip, &payload, &status);
        let _ = results.put(&out, None);
        status.finish();
        done += 1;
        if max_tasks != 0 && done >= max_tasks {
            return Ok(WorkerExit::Retired);
        }
        // The chunk's results are in the result ring already: retiring keeps them.
        if max_memory != 0
            && let Ok(resident) = crate::sys::limits::resident_bytes()
            && resident >= max_memory
        {
            return Ok(WorkerExit::Grew(resident));
        }
    }
}
