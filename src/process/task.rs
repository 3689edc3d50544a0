//! What a child runs, and how a re-executed child finds it.
//!
//! A child started by *spawn* or by the *fork server* is a fresh copy of the same executable,
//! so it cannot receive a closure. It receives an [`EntryPoint`]: a code reference
//! (`code`) to a monomorphised trampoline `run_task::<T>`, which decodes a `T` from
//! the task message and runs it.
//!
//! Two kinds of task exist: a user type implementing [`Run`] (the "class-style" process), and
//! [`FnTask`], a task function (`fn(A) -> R`) together with its argument.

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::child::{self, Outcome};
use crate::code::{Borrowing, CodeRef};
use crate::handle;

/// A unit of work a child process can run: its data travels to the child, then `run` is
/// called there and its output travels back (the Rust form of subclassing Python's
/// `Process` and overriding `run`).
///
/// ```
/// use multiproc::{Process, Run};
/// use serde::{Deserialize, Deserializer, Serialize, Serializer};
///
/// #[derive(Serialize, Deserialize)]
/// struct Countdown { from: u32 }
///
/// impl Run for Countdown {
///     type Output = Vec<u32>;
///     fn run(self) -> Vec<u32> { (0..=self.from).rev().collect() }
/// }
///
/// # fn main() -> Result<(), multiproc::ProcessError> {
/// let child = Process::builder().start_run(Countdown { from: 3 })?;
/// assert_eq!(child.join()?, vec![3, 2, 1, 0]);
/// # Ok(())
/// # }
/// ```
pub trait Run: Serialize + DeserializeOwned + 'static {
    /// What the child sends back.
    type Output: Serialize + DeserializeOwned + 'static;
    /// The child's work.
    fn run(self) -> Self::Output;
}

/// A task function and its argument, as one [`Run`] task. The function travels as a code
/// reference (`code`), which decoding resolves, so a child of another build fails
/// to decode its task (reported to the parent) instead of running anything.
pub(crate) struct FnTask<A, R> {
    func: fn(A) -> R,
    arg: A,
}

impl<A, R> FnTask<A, R> {
    pub(crate) fn new(func: fn(A) -> R, arg: A) -> Self {
        FnTask { func, arg }
    }
}

impl<A, R> Run for FnTask<A, R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type Output = R;
    fn run(self) -> R {
        (self.func)(self.arg)
    }
}

impl<A: Serialize + 'static, R: 'static> Serialize for FnTask<A, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (CodeRef::of(self.func), &self.arg).serialize(serializer)
    }
}

impl<'de, A: Deserialize<'de> + 'static, R: 'static> Deserialize<'de> for FnTask<A, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (func, arg) = <(CodeRef<fn(A) -> R>, A)>::deserialize(deserializer)?;
        let func = func.resolve().map_err(|e| {
            serde::de::Error::custom(format_args!("the task function was not found: {e}"))
        })?;
        Ok(FnTask { func, arg })
    }
}

/// The signature every trampoline has: decode the task message, run it, report its output.
pub(crate) type Trampoline = fn(&[u8], Vec<OwnedFd>) -> Result<(), String>;

/// Decode a `T` from its message, run it, and report the result to the parent.
fn run_task<T: Run>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(), String> {
    let task: T = handle::decode(bytes, fds).map_err(|e| e.to_string())?;
    let output = task.run();
    child::report(&Outcome::Returned(&output))
}

crate::code::code_fn!(borrowing Trampoline);

/// Where a child finds the code to run: the trampoline `run_task::<T>` (see `code`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct EntryPoint(CodeRef<Borrowing<Trampoline>>);

impl EntryPoint {
    /// The entry point that runs tasks of type `T`.
    pub(crate) fn of<T: Run>() -> EntryPoint {
        EntryPoint(CodeRef::of(Borrowing(run_task::<T> as Trampoline)))
    }

    /// The trampoline this entry point designates in the running executable.
    pub(crate) fn resolve(self) -> Result<Trampoline, String> {
        self.0.resolve().map(|t| t.0).map_err(|e| {
            format!("the child could not find its task: {e} (it must run the same build of the executable as its parent)")
        })
    }
}
