//! [`Value`]: one element of plain data in shared memory with its own lock, and
//! [`ValueGuard`], that lock held.

use std::fmt;

use bytemuck::Pod;

use super::atomic::AtomicInt;
use super::cells::{Cells, atomic_methods, cells_serde, debug_locked, hold};
use crate::sync::{RLock, RLockGuard, SyncError};

/// A value of plain data in shared memory, with its own [`RLock`] (Python's
/// `multiprocessing.Value`). `get`/`set` take the lock; [`lock`](Self::lock) or
/// [`update`](Self::update) hold it across a read-modify-write; integer values also have
/// lock-free atomic operations.
///
/// ```
/// use multiproc::{Process, Value};
///
/// fn add_ten(counter: Value<u64>) {
///     for _ in 0..10 {
///         counter.update(|n| n + 1).unwrap(); // one locked read-modify-write
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Value::new(0u64)?;
/// let kids: Vec<_> = (0..3).map(|_| Process::start(add_ten, counter.clone())).collect::<Result<_, _>>()?;
/// for k in kids { k.join()?; }
/// assert_eq!(counter.get()?, 30);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Value<T> {
    cells: Cells<T>,
    lock: RLock,
}

impl<T: Pod> Value<T> {
    /// A new shared value.
    ///
    /// ```
    /// let v = multiproc::Value::new(1.5f64)?;
    /// assert_eq!(v.get()?, 1.5);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>, SyncError> {
        let (cells, lock) = Cells::from_slice(&[value], true)?;
        let lock = lock.ok_or(SyncError::Invalid("value lock missing"))?;
        Ok(Value { cells, lock })
    }

    /// Read the value under the lock (Python's `v.value`). Re-entrant: the thread may
    /// already hold the lock (through [`get_lock`](Self::get_lock) or a [`ValueGuard`]).
    ///
    /// ```
    /// assert_eq!(multiproc::Value::new(3u8)?.get()?, 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self) -> Result<T, SyncError> {
        let _held = hold(&self.lock)?;
        Ok(self.cells.read(0))
    }

    /// Write the value under the lock (Python's `v.value = x`); re-entrant like
    /// [`get`](Self::get).
    ///
    /// ```
    /// let v = multiproc::Value::new(3u8)?;
    /// v.set(4)?;
    /// assert_eq!(v.get()?, 4);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, value: T) -> Result<(), SyncError> {
        let _held = hold(&self.lock)?;
        self.cells.write(0, value);
        Ok(())
    }

    /// Replace the value by `f(value)` under the lock, in one locked read-modify-write
    /// (Python's `with v.get_lock(): v.value = f(v.value)`); returns the new value.
    ///
    /// ```
    /// let v = multiproc::Value::new(20u32)?;
    /// assert_eq!(v.update(|x| x + 1)?, 21);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, SyncError> {
        let _held = hold(&self.lock)?;
        let new = f(self.cells.read(0));
        self.cells.write(0, new);
        Ok(new)
    }

    /// The value's lock (Python's `get_lock()`), to hold it across several operations.
    ///
    /// ```
    /// let v = multiproc::Value::new(0i32)?;
    /// let _g = v.get_lock().acquire()?;
    /// v.set(v.get()? + 1)?; // re-entering the RLock is fine
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Hold the lock for several accesses to the value, through the guard's
    /// [`get`](ValueGuard::get)/[`set`](ValueGuard::set)/[`update`](ValueGuard::update). An
    /// acquire that fails is an error; if the previous holder died, the lock is held all the
    /// same and [`ValueGuard::owner_died`] says so.
    ///
    /// ```
    /// let v = multiproc::Value::new(1u32)?;
    /// let mut g = v.lock()?;
    /// let x = g.get();
    /// g.set(x * 10);
    /// drop(g);
    /// assert_eq!(v.get()?, 10);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn lock(&self) -> Result<ValueGuard<'_, T>, SyncError> {
        Ok(ValueGuard {
            held: hold(&self.lock)?,
            cells: &self.cells,
        })
    }

    atomic_methods!();
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_locked(f, "Value", self.get())
    }
}

cells_serde!(Value, locked: true);

/// The lock of a [`Value`], held; released on drop. It gives copies of the value, never a
/// reference into the shared memory, which other processes may write at any time (the
/// lock-free atomic operations do not take the lock); see the soundness notes in
/// `src/shared/cells.rs`.
///
/// The value is therefore read and written with methods, not through `*guard`:
///
/// ```
/// let v = multiproc::Value::new(1u32)?;
/// let mut g = v.lock()?;
/// g.update(|x| x + 1);
/// v.set(g.get() * 10)?; // the lock is re-entrant, and there is no reference to alias
/// assert_eq!(g.get(), 20);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
///
/// ```compile_fail,E0614
/// let v = multiproc::Value::new(1u32)?;
/// let mut g = v.lock()?;
/// *g += 1; // no `&mut u32` into shared memory
/// # Ok::<(), multiproc::SyncError>(())
/// ```
///
/// ```compile_fail,E0614
/// let v = multiproc::Value::new(1u32)?;
/// let g = v.lock()?;
/// let r: &u32 = &*g; // nor a `&u32` that a lock-free `fetch_add` could change under it
/// v.fetch_add(1);
/// assert_eq!(*r, 1);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
///
/// The guard stays on the thread that took the lock:
///
/// ```compile_fail,E0277
/// let v = multiproc::Value::new(1u32)?;
/// let g = v.lock()?;
/// std::thread::scope(|s| { s.spawn(move || drop(g)); });
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    held: RLockGuard<'a>,
    cells: &'a Cells<T>,
}

impl<T: Pod> ValueGuard<'_, T> {
    /// Whether this acquire found the lock's previous holder dead: the data may be
    /// half-updated (see [`LockGuard::owner_died`](crate::LockGuard::owner_died)).
    ///
    /// ```
    /// let v = multiproc::Value::new(1u32)?;
    /// assert!(!v.lock()?.owner_died());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.held.owner_died()
    }

    /// A copy of the value.
    ///
    /// ```
    /// let v = multiproc::Value::new(7i32)?;
    /// assert_eq!(v.lock()?.get(), 7);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self) -> T {
        self.cells.read(0)
    }

    /// Write the value.
    ///
    /// ```
    /// let v = multiproc::Value::new(0u64)?;
    /// v.lock()?.set(42);
    /// assert_eq!(v.get()?, 42);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&mut self, value: T) {
        self.cells.write(0, value)
    }

    /// Replace the value by `f(value)`; returns the new value.
    ///
    /// ```
    /// let v = multiproc::Value::new(10u32)?;
    /// let mut g = v.lock()?;
    /// assert_eq!(g.update(|n| n * 2), 20);
    /// assert_eq!(g.update(|n| n + 1), 21); // both steps under one lock
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn update(&mut self, f: impl FnOnce(T) -> T) -> T {
        let new = f(self.get());
        self.set(new);
        new
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&self.get()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::cells::corrupt_lock;

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and pthread mutexes: FFI
    fn a_failed_acquire_is_an_error_never_an_unlocked_access() {
        let value = Value::new(1u32).unwrap();
        corrupt_lock(&value.cells);
        assert!(matches!(value.lock(), Err(SyncError::Io(_))));
        assert!(matches!(value.get(), Err(SyncError::Io(_))));
        assert!(matches!(value.set(2), Err(SyncError::Io(_))));
        assert!(matches!(value.update(|x| x + 1), Err(SyncError::Io(_))));
        assert_eq!(value.load(), 1, "nothing was written without the lock");
    }
}
