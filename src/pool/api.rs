//! [`Pool`]: the pool itself and its map, apply and imap calls.

use std::sync::Arc;

use super::engine::Engine;
use super::task::{StarArgs, TaskArg, TaskOutput};
use super::{AsyncResult, Imap, MapWith, PoolBuilder, PoolError, submit_one};

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Dropping the pool terminates it, like leaving Python's `with Pool(...)` block; call
/// [`close`](Pool::close) and [`join`](Pool::join) to let the work finish first.
///
/// ```
/// use multiproc::Pool;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// # fn main() -> Result<(), multiproc::PoolError> {
/// let pool = Pool::new(4)?;
/// assert_eq!(pool.map(square, 0..10)?, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// let pending = pool.apply_async(square, 12)?;
/// assert_eq!(pending.get()?, 144);
/// pool.close();
/// pool.join()?;
/// # Ok(())
/// # }
/// ```
pub struct Pool {
    pub(super) engine: Arc<Engine>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .field("running", &self.engine.is_running())
            .finish()
    }
}

impl Pool {
    /// A pool of `processes` workers (at least one; 0 is an error).
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn new(processes: usize) -> Result<Pool, PoolError> {
        PoolBuilder::default().processes(processes).build()
    }

    /// Settings: start method, initializer, `maxtasksperchild`, task timeout.
    ///
    /// ```
    /// let pool = multiproc::Pool::builder().processes(1).build()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of workers.
    ///
    /// ```
    /// assert_eq!(multiproc::Pool::new(2)?.processes(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.engine.processes()
    }

    /// Pids of the workers alive now.
    ///
    /// ```
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.pids().len(), 2);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.engine.pids()
    }

    /// Map with a fixed chunk size instead of the default heuristic.
    ///
    /// ```
    /// fn double(x: i32) -> i32 { 2 * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.chunksize(1).map(double, [1, 2, 3])?, [2, 4, 6]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn chunksize(&self, chunksize: usize) -> MapWith<'_> {
        self.default_chunks().chunksize(chunksize)
    }

    /// Map with a progress bar on stderr (items done, rate, ETA), drawn only if stderr is
    /// a terminal.
    ///
    /// Needs the `progress` feature (on by default).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let squares = pool.progress().chunksize(100).map(square, 0..10_000)?;
    /// assert_eq!(squares[9_999], 99_980_001);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    #[cfg(feature = "progress")]
    pub fn progress(&self) -> MapWith<'_> {
        self.default_chunks().progress()
    }

    fn default_chunks(&self) -> MapWith<'_> {
        MapWith {
            pool: self,
            chunksize: None,
            progress: false,
        }
    }

    /// Apply `f` to every item, in parallel; the results in input order. The first failed
    /// item (in input order) is the error, as Python's `map` raises it.
    ///
    /// The items go to the workers in chunks of Python's size at first (a quarter of a
    /// worker's share), then shrinking (each a quarter of what is left per worker, down to a
    /// sixteenth of a worker's share), so the map sends few messages yet ends with small
    /// chunks that every worker helps finish; set a fixed size with
    /// [`chunksize`](Pool::chunksize).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.map(square, vec![1, 2, 3])?, [1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, PoolError> {
        self.default_chunks().map(f, items)
    }

    /// Like [`map`](Pool::map), for functions of several arguments: each item is a tuple of
    /// them (Python's `starmap`). `f` is a closure that captures nothing, or a named function
    /// cast to its pointer type (`add as fn(i32, i32) -> i32`): Rust turns a function into a
    /// pointer only where it knows the pointer's type, and here the number of arguments comes
    /// from the items, which come after `f` (see [`StarArgs`]). The compiler's error for a
    /// bare `add` says so.
    ///
    /// ```
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    /// let pool = multiproc::Pool::new(2)?;
    /// assert_eq!(pool.starmap(|a, b| add(a, b), [(1, 2), (3, 4)])?, [3, 7]);
    /// assert_eq!(pool.starmap(add as fn(i32, i32) -> i32, [(5, 6)])?, [11]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap<Args: StarArgs + TaskArg, R: TaskOutput>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<R>, PoolError> {
        self.default_chunks().starmap(f, items)
    }

    /// [`map`](Pool::map) without waiting: an [`AsyncResult`] for the whole list.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let pending = pool.map_async(square, 0..3)?;
    /// assert_eq!(pending.get()?, [0, 1, 4]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn map_async<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        self.default_chunks().map_async(f, items)
    }

    /// [`starmap`](Pool::starmap) without waiting.
    ///
    /// ```
    /// fn mul(a: u8, b: u8) -> u16 { a as u16 * b as u16 }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_eq!(pool.starmap_async(|a, b| mul(a, b), [(2, 3)])?.get()?, [6]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn starmap_async<Args: StarArgs + TaskArg, R: TaskOutput>(
        &self,
        f: Args::Fn<R>,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<AsyncResult<Vec<R>>, PoolError> {
        self.default_chunks().starmap_async(f, items)
    }

    /// Run `f(arg)` in a worker and wait for the result.
    ///
    /// ```
    /// fn pid(_: ()) -> u32 { std::process::id() }
    /// let pool = multiproc::Pool::new(1)?;
    /// assert_ne!(pool.apply(pid, ())?, std::process::id());
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn apply<A: TaskArg, R: TaskOutput>(&self, f: fn(A) -> R, arg: A) -> Result<R, PoolError> {
        self.apply_async(f, arg)?.get()
    }

    /// Start `f(arg)` in a worker; the [`AsyncResult`] gives its result later.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let a = pool.apply_async(square, 3)?;
    /// let b = pool.apply_async(square, 4)?;
    /// assert_eq!(a.get()? + b.get()?, 25);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn apply_async<A: TaskArg, R: TaskOutput>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, PoolError> {
        submit_one(&self.engine, f, arg)
    }

    /// Apply `f` to every item lazily: items are taken from `items` as results are
    /// consumed (a bounded number of chunks in flight), so an endless iterator works.
    /// Results in input order, one `Result` per item. Chunk size 1 unless set with
    /// [`chunksize`](Pool::chunksize).
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let first: Vec<u64> = pool.imap(square, 0..)?.take(4).collect::<Result<_, _>>()?;
    /// assert_eq!(first, [0, 1, 4, 9]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap<'p, A: TaskArg, R: TaskOutput>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError> {
        self.default_chunks().imap(f, items)
    }

    /// Like [`imap`](Pool::imap), yielding results in the order they finish.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = multiproc::Pool::new(2)?;
    /// let mut all: Vec<u64> = pool.imap_unordered(square, 0..5)?.collect::<Result<_, _>>()?;
    /// all.sort();
    /// assert_eq!(all, [0, 1, 4, 9, 16]);
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn imap_unordered<'p, A: TaskArg, R: TaskOutput>(
        &'p self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A> + 'p,
    ) -> Result<Imap<'p, R>, PoolError> {
        self.default_chunks().imap_unordered(f, items)
    }

    /// Take no more work; the workers exit once the work already given is done.
    ///
    /// ```
    /// fn one(_: ()) -> u8 { 1 }
    /// let pool = multiproc::Pool::new(1)?;
    /// pool.close();
    /// assert!(matches!(pool.apply(one, ()), Err(multiproc::PoolError::Closed)));
    /// pool.join()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn close(&self) {
        self.engine.close();
    }

    /// Stop now: kill the workers; unfinished tasks fail with [`PoolError::Terminated`].
    ///
    /// ```
    /// fn nap(ms: u64) { std::thread::sleep(std::time::Duration::from_millis(ms)) }
    /// let pool = multiproc::Pool::new(1)?;
    /// let slow = pool.apply_async(nap, 60_000)?;
    /// pool.terminate();
    /// assert!(matches!(slow.get(), Err(multiproc::PoolError::Terminated)));
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn terminate(&self) {
        self.engine.terminate();
    }

    /// Wait for the workers to exit, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate); [`PoolError::StillRunning`] otherwise. An
    /// [`imap`](Pool::imap) iterator still in use keeps a closed pool working until it is
    /// exhausted or dropped (it submits its items lazily), and `join` waits for that;
    /// [`PoolError::JoinFromCallback`] in a callback, which would wait for itself.
    ///
    /// ```
    /// let pool = multiproc::Pool::new(1)?;
    /// assert!(matches!(pool.join(), Err(multiproc::PoolError::StillRunning)));
    /// pool.close();
    /// pool.join()?;
    /// # Ok::<(), multiproc::PoolError>(())
    /// ```
    pub fn join(&self) -> Result<(), PoolError> {
        if self.engine.is_running() {
            return Err(PoolError::StillRunning);
        }
        if self.engine.on_pool_thread() {
            return Err(PoolError::JoinFromCallback);
        }
        self.engine.join();
        Ok(())
    }
}
