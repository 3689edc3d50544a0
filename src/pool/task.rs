//! What a task is to a pool: the chunk trampolines that run a task function on a chunk of
//! items in a worker (found there through a code reference), their payloads, the
//! initializer's trampoline, the argument tuples of `starmap`, and a chunk's output.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::packed::{Seq, SeqBuf};
use super::status::WorkerStatus;
use crate::code::{Borrowing, CodeFn, CodeRef};
use crate::handle;
use crate::panic_report::PanicReport;
use crate::process::child;

/// What a task function can take: any serde type (sent to a worker by value, so it must not
/// hold OS handles, which cannot go through the pool's rings; that is a
/// [`PoolError::Failed`](crate::PoolError::Failed) at submission). Implemented for every such
/// type: there is nothing to implement, the name only shortens the pools' signatures.
///
/// ```
/// fn takes<A: multiproc::TaskArg>() {}
/// takes::<(String, Vec<u32>)>();
/// ```
pub trait TaskArg: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> TaskArg for T {}

/// What a task function can return: a [`TaskArg`] that can also be handed to the thread
/// waiting for it (`Send`). Implemented for every such type.
///
/// ```
/// fn returns<R: multiproc::TaskOutput>() {}
/// returns::<std::collections::HashMap<String, f64>>();
/// ```
pub trait TaskOutput: TaskArg + Send {}

impl<T: TaskArg + Send> TaskOutput for T {}

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

pub(crate) fn resolve_chunk(code: Code) -> Result<ChunkFn, String> {
    code.resolve()
        .map(|Borrowing(run)| run)
        .map_err(|e| format!("the pool worker cannot run this task: {e}"))
}

pub(crate) fn resolve_init(code: InitCode) -> Result<InitFn, String> {
    code.resolve()
        .map(|Borrowing(run)| run)
        .map_err(|e| format!("the pool worker cannot run its initializer: {e}"))
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
#[serde(bound(
    serialize = "R: Serialize + 'static",
    deserialize = "R: DeserializeOwned + 'static"
))]
pub(crate) struct ChunkOutput<R> {
    pub failures: Vec<(u32, ItemFailure)>,
    #[serde(
        serialize_with = "super::packed::serialize_vec",
        deserialize_with = "super::packed::deserialize_vec"
    )]
    pub values: Vec<R>,
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
    type Item: Serialize + DeserializeOwned + 'static;
    type Output: Serialize + DeserializeOwned + 'static;
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
        super::encode_plain::<C::Item>(&(CodeRef::of(self.func), Seq(items)))
    }
}

/// The chunk trampoline for `A`.
fn run_chunk<A: Apply>(
    payload: &[u8],
    skip: &[u32],
    status: &WorkerStatus,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let (func, SeqBuf(items)): (CodeRef<A::Func>, SeqBuf<A::Item>) =
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
pub(crate) fn initializer<A: TaskArg>(f: fn(A), arg: &A) -> Result<(InitCode, Vec<u8>), String> {
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
