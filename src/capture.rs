//! Handing named variables to a task that runs in another process: [`start!`](crate::start!),
//! [`apply_async!`](crate::apply_async!) and [`submit!`](crate::submit!).
//!
//! A task is a function pointer (a spawned child or a pool worker finds the function in its
//! own copy of the program), so a closure cannot capture: its variables would have no way to
//! the other process. These macros write the way around for you: `start!((a, b) || body)`
//! becomes `Process::start(|(a, b)| body, (a, b))`, a closure that captures nothing and takes
//! the named variables as its argument, which is serialized and sent like any argument
//! (procspawn's `spawn!((a, b) || ...)` does the same). The variables are moved. A variable
//! of the body that is not named is refused by the compiler where it is used ("closures can
//! only be coerced to `fn` types if they do not capture any variables").

/// Rewrites `[call] [captures] closure-tail` into `call(|(captures)| body, (captures))`.
/// Captures are `name` or `mut name`, separated by commas; the tail is `body` or
/// `-> Type { body }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __call_with_captures {
    (@munch [$($call:tt)*] [$($pat:tt)*] [$($val:tt)*] [mut $name:ident $(, $($rest:tt)*)?] $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [$($call)*] [$($pat)* mut $name,] [$($val)* $name,] [$($($rest)*)?] $($tail)+
        )
    };
    (@munch [$($call:tt)*] [$($pat:tt)*] [$($val:tt)*] [$name:ident $(, $($rest:tt)*)?] $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [$($call)*] [$($pat)* $name,] [$($val)* $name,] [$($($rest)*)?] $($tail)+
        )
    };
    (@munch [$($call:tt)*] [$($pat:tt)*] [$($val:tt)*] [] -> $ret:ty $body:block) => {
        $($call)*(|($($pat)*)| -> $ret { $body }, ($($val)*))
    };
    (@munch [$($call:tt)*] [$($pat:tt)*] [$($val:tt)*] [] $($body:tt)+) => {
        $($call)*(|($($pat)*)| { $($body)+ }, ($($val)*))
    };
}

/// Start a child process that runs a closure with the named variables:
/// `start!((a, b) || body)` moves `a` and `b` to the child (they are serialized, like any
/// argument of [`Process::start`](crate::Process::start)) and gives the result of `body`
/// back on [`join`](crate::Process::join). `start!(builder, (a, b) || body)` starts it with a
/// [`ProcessBuilder`](crate::ProcessBuilder) (or a [`Context`](crate::Context)). Evaluates to the
/// `Result<Process<R>, ProcessError>` of the start.
///
/// Each name may be written `mut name`; `-> Type { body }` gives the result type. The names
/// are the variables' names in the child too; use only those: a closure that uses another
/// variable of the caller is refused by the compiler where the variable is used.
///
/// ```
/// use multiproc::{ProcessBuilder, StartMethod};
///
/// let words = vec!["fork".to_string(), "spawn".to_string()];
/// let separator = '+';
/// let child = multiproc::start!((words, separator) || words.join(&separator.to_string()))?;
/// assert_eq!(child.join()?, "fork+spawn");
///
/// let total = 40u64;
/// let builder = ProcessBuilder::new().name("adder").start_method(StartMethod::Spawn);
/// let child = multiproc::start!(builder, (mut total) || -> u64 {
///     total += 2;
///     total
/// })?;
/// assert_eq!(child.join()?, 42);
/// # Ok::<(), multiproc::ProcessError>(())
/// ```
///
/// A variable that is not named is not sent, and the compiler says so:
///
/// ```compile_fail,E0308
/// let a = 1u32;
/// let b = 2u32;
/// let child = multiproc::start!((a) || a + b); // `b` captured here
/// ```
#[macro_export]
macro_rules! start {
    (($($captures:tt)*) $(move)? || $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [$crate::Process::start] [] [] [$($captures)*] $($tail)+
        )
    };
    ($builder:expr, ($($captures:tt)*) $(move)? || $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [($builder).start] [] [] [$($captures)*] $($tail)+
        )
    };
}

/// Run a closure with the named variables in a worker of a [`Pool`](crate::Pool), without
/// waiting: `apply_async!(pool, (a, b) || body)` is
/// [`pool.apply_async`](crate::Pool::apply_async)`(|(a, b)| body, (a, b))`. Evaluates to
/// the `Result<AsyncResult<R>, PoolError>` of the call. Names as in [`start!`](crate::start!).
///
/// ```
/// let pool = multiproc::Pool::new(2)?;
/// let text = String::from("hello");
/// let times = 3;
/// let pending = multiproc::apply_async!(pool, (text, times) || text.repeat(times))?;
/// assert_eq!(pending.get()?, "hellohellohello");
/// # Ok::<(), multiproc::PoolError>(())
/// ```
///
/// ```compile_fail,E0308
/// let pool = multiproc::Pool::new(1)?;
/// let (a, b) = (1u8, 2u8);
/// let pending = multiproc::apply_async!(pool, (a) || a + b); // `b` captured here
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[macro_export]
macro_rules! apply_async {
    ($pool:expr, ($($captures:tt)*) $(move)? || $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [($pool).apply_async] [] [] [$($captures)*] $($tail)+
        )
    };
}

/// Submit a closure with the named variables to a
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor):
/// `submit!(executor, (a, b) || body)` is
/// [`executor.submit`](crate::ProcessPoolExecutor::submit)`(|(a, b)| body, (a, b))`.
/// Evaluates to the `Result<PoolFuture<R>, PoolError>` of the call. Names as in
/// [`start!`](crate::start!).
///
/// ```
/// let executor = multiproc::ProcessPoolExecutor::new(1)?;
/// let base = 10u64;
/// let exponent = 3u32;
/// let future = multiproc::submit!(executor, (base, exponent) || base.pow(exponent))?;
/// assert_eq!(future.result()?, 1000);
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[macro_export]
macro_rules! submit {
    ($executor:expr, ($($captures:tt)*) $(move)? || $($tail:tt)+) => {
        $crate::__call_with_captures!(
            @munch [($executor).submit] [] [] [$($captures)*] $($tail)+
        )
    };
}
