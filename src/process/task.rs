//! What a child runs, and how a re-executed child finds it.
//!
//! A child started by *spawn* or by the *fork server* is a fresh copy of the same executable,
//! so it cannot receive a closure. It receives an [`EntryPoint`]: a code reference
//! (`process::code`) to a monomorphised trampoline `run_task::<T>`, which decodes a `T` from
//! the task message and runs it.
//!
//! Two kinds of task exist: a user type implementing [`Run`] (the "class-style" process), and
//! [`FnTask`], a function item or non-capturing closure together with its argument.

use std::marker::PhantomData;
use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::child::{self, Outcome};
use super::code::CodeRef;
use crate::handle;

/// A unit of work a child process can run: its data travels to the child, then `run` is
/// called there and its output travels back (the Rust form of subclassing Python's
/// `Process` and overriding `run`).
///
/// ```
/// use multiproc::{Process, Run};
/// use serde::{Deserialize, Serialize};
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

/// A function item (or non-capturing closure) and its argument, as one [`Run`] task.
pub(crate) struct FnTask<F, A> {
    arg: A,
    func: PhantomData<fn() -> F>,
}

impl<F, A> FnTask<F, A> {
    pub(crate) fn new(_func: F, arg: A) -> Self {
        // A capturing closure would need its captures serialized, which Rust cannot do; fail
        // the build rather than run code without its data.
        const {
            assert!(
                std::mem::size_of::<F>() == 0,
                "Process::start needs a function item or a non-capturing closure (data goes in \
                 the argument); for a capturing closure use Builder::fork"
            )
        };
        FnTask {
            arg,
            func: PhantomData,
        }
    }
}

impl<F, A, R> Run for FnTask<F, A>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    type Output = R;
    fn run(self) -> R {
        const { assert!(std::mem::size_of::<F>() == 0) };
        // SAFETY: `F` is zero-sized (checked at compile time), and a value of `F` exists: the
        // caller handed one to `Builder::start`. `F: Copy` says a bitwise copy of a value is
        // another valid value, and a bitwise copy of a zero-sized value is zero bytes, which is
        // exactly what `zeroed` produces (nothing is read or written). So this is a copy of the
        // caller's function value, sent to this process as the zero bytes it consists of (with
        // fork, literally the same memory). A `Copy` type cannot rely on being constructed only
        // once, and function pointers (not zero-sized) are excluded by the size check; in
        // practice `F` is a function item or a closure whose captures are all zero-sized.
        let func: F = unsafe { std::mem::zeroed() };
        func(self.arg)
    }
}

impl<F, A: Serialize> Serialize for FnTask<F, A> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.arg.serialize(serializer)
    }
}

impl<'de, F, A: Deserialize<'de>> Deserialize<'de> for FnTask<F, A> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(FnTask {
            arg: A::deserialize(deserializer)?,
            func: PhantomData,
        })
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

super::code::code_fn!(Trampoline);

/// Where a child finds the code to run: the trampoline `run_task::<T>` (see `process::code`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct EntryPoint(CodeRef<Trampoline>);

impl EntryPoint {
    /// The entry point that runs tasks of type `T`.
    pub(crate) fn of<T: Run>() -> EntryPoint {
        EntryPoint(CodeRef::of(run_task::<T> as Trampoline))
    }

    /// The trampoline this entry point designates in the running executable.
    pub(crate) fn resolve(self) -> Result<Trampoline, String> {
        self.0.resolve().map_err(|e| {
            format!("the child could not find its task: {e} (it must run the same build of the executable as its parent)")
        })
    }
}
