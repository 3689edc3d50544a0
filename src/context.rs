//! `Context`: a start method chosen once for a group of objects (Python's `get_context`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::process::{Process, ProcessBuilder, ProcessError, StartMethod};

/// A start method chosen once for everything created through it, without changing the
/// program-wide default (Python's `multiprocessing.get_context(method)`).
///
/// ```
/// use multiproc::{get_context, StartMethod};
///
/// fn double(x: i32) -> i32 { x * 2 }
///
/// let ctx = get_context(StartMethod::Spawn);
/// let child = ctx.process().name("doubler").start(double, 21)?;
/// assert_eq!(child.start_method(), StartMethod::Spawn);
/// assert_eq!(child.join()?, 42);
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// A [`Context`] for `method`.
///
/// ```
/// let ctx = multiproc::get_context(multiproc::StartMethod::Fork);
/// assert_eq!(ctx.start_method(), multiproc::StartMethod::Fork);
/// ```
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// The context's start method.
    ///
    /// ```
    /// let ctx = multiproc::get_context(multiproc::StartMethod::ForkServer);
    /// assert_eq!(ctx.start_method().as_str(), "forkserver");
    /// ```
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A process [`ProcessBuilder`] using this context's start method.
    ///
    /// ```
    /// let ctx = multiproc::get_context(multiproc::StartMethod::Fork);
    /// let child = ctx.process().daemon(true).fork(|| 7)?;
    /// assert_eq!(child.join()?, 7);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn process(&self) -> ProcessBuilder {
        ProcessBuilder::new().start_method(self.method)
    }

    /// Start `f(arg)` in a child with this context's start method (see [`Process::start`]).
    ///
    /// ```
    /// fn neg(x: i64) -> i64 { -x }
    /// let ctx = multiproc::get_context(multiproc::StartMethod::ForkServer);
    /// assert_eq!(ctx.start(neg, 5)?.join()?, -5);
    /// # Ok::<(), multiproc::ProcessError>(())
    /// ```
    pub fn start<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Process<R>, ProcessError>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        self.process().start(f, arg)
    }
}
