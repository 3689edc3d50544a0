//! [`Array`]: plain data elements in shared memory with their own lock, and [`ArrayGuard`],
//! that lock held.

use std::fmt;

use bytemuck::Pod;

use super::cells::{Cells, cells_serde, debug_locked, hold};
use crate::sync::{RLock, RLockGuard, SyncError};

/// An array of plain data in shared memory with its own [`RLock`] (Python's
/// `multiprocessing.Array`). Element access takes the lock; [`lock`](Self::lock) holds it
/// across several accesses.
///
/// ```
/// use multiproc::{Array, Process};
///
/// fn fill((arr, start): (Array<u32>, usize)) {
///     let mut a = arr.lock().unwrap();
///     for i in start..start + 2 { a.set(i, i as u32 * 10); }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let arr = Array::<u32>::zeroed(4)?;
/// let kids: Vec<_> = [0usize, 2].into_iter().map(|s| Process::start(fill, (arr.clone(), s))).collect::<Result<_, _>>()?;
/// for k in kids { k.join()?; }
/// assert_eq!(arr.to_vec()?, vec![0, 10, 20, 30]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Array<T> {
    cells: Cells<T>,
    lock: RLock,
}

impl<T: Pod> Array<T> {
    /// A new array of `len` zeroed elements.
    ///
    /// ```
    /// assert_eq!(multiproc::Array::<f64>::zeroed(2)?.to_vec()?, vec![0.0, 0.0]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<Array<T>, SyncError> {
        Array::with_lock(Cells::new(len, true)?)
    }

    /// A new array holding a copy of `items`.
    ///
    /// ```
    /// assert_eq!(multiproc::Array::from_slice(&[1, 2, 3])?.get(1)?, Some(2));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Array<T>, SyncError> {
        Array::with_lock(Cells::from_slice(items, true)?)
    }

    fn with_lock((cells, lock): (Cells<T>, Option<RLock>)) -> Result<Array<T>, SyncError> {
        let lock = lock.ok_or(SyncError::Invalid("array lock missing"))?;
        Ok(Array { cells, lock })
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(multiproc::Array::<u8>::zeroed(3)?.len(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// assert!(multiproc::Array::<u8>::zeroed(0)?.is_empty());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Element `i` (under the lock), or `None` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8])?;
    /// assert_eq!((a.get(0)?, a.get(1)?), (Some(5), None));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self, i: usize) -> Result<Option<T>, SyncError> {
        if i >= self.len() {
            return Ok(None);
        }
        let _held = hold(&self.lock)?;
        Ok(Some(self.cells.read(i)))
    }

    /// Set element `i` (under the lock); `false` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8])?;
    /// assert!(a.set(0, 6)? && !a.set(1, 6)?);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> Result<bool, SyncError> {
        if i >= self.len() {
            return Ok(false);
        }
        let _held = hold(&self.lock)?;
        self.cells.write(i, value);
        Ok(true)
    }

    /// Copy of all elements (under the lock).
    ///
    /// ```
    /// assert_eq!(multiproc::Array::from_slice(&[1u16, 2])?.to_vec()?, vec![1, 2]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        let _held = hold(&self.lock)?;
        Ok(self.cells.to_vec())
    }

    /// Copy the elements from `start` on into `dst` (under the lock; Python's
    /// `arr[start:start + len(dst)]`).
    ///
    /// # Panics
    /// If `start + dst.len()` exceeds the length, like slice indexing.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u8, 2, 3])?;
    /// let mut two = [0; 2];
    /// a.copy_to_slice(1, &mut two)?;
    /// assert_eq!(two, [2, 3]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn copy_to_slice(&self, start: usize, dst: &mut [T]) -> Result<(), SyncError> {
        self.cells.check_range(start, dst.len());
        let _held = hold(&self.lock)?;
        self.cells.read_into(start, dst);
        Ok(())
    }

    /// Copy `src` into the elements from `start` on (under the lock; Python's
    /// `arr[start:start + len(src)] = src`).
    ///
    /// # Panics
    /// If `start + src.len()` exceeds the length, like slice indexing.
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(3)?;
    /// a.copy_from_slice(1, &[7, 8])?;
    /// assert_eq!(a.to_vec()?, [0, 7, 8]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn copy_from_slice(&self, start: usize, src: &[T]) -> Result<(), SyncError> {
        self.cells.check_range(start, src.len());
        let _held = hold(&self.lock)?;
        self.cells.write_from(start, src);
        Ok(())
    }

    /// The array's lock (Python's `get_lock()`).
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(1)?;
    /// let _g = a.get_lock().acquire()?;
    /// a.set(0, 1)?; // re-entering the RLock is fine
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Hold the lock for several accesses to the elements through the guard. An acquire
    /// that fails is an error; if the previous holder died, the lock is held all the same
    /// and [`ArrayGuard::owner_died`] says so.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[3u8, 1, 2])?;
    /// let mut g = a.lock()?;
    /// let mut items = g.to_vec();
    /// items.sort();
    /// g.copy_from_slice(0, &items);
    /// drop(g);
    /// assert_eq!(a.to_vec()?, vec![1, 2, 3]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>, SyncError> {
        Ok(ArrayGuard {
            held: hold(&self.lock)?,
            cells: &self.cells,
        })
    }

    /// The elements without taking the lock (Python's `get_obj()`), for readers that know
    /// no one writes meanwhile (e.g. workers summing disjoint parts after the data was set).
    ///
    /// # Safety
    /// No process or thread may write the array while the slice lives (this includes
    /// writes through this array's own guard or `set`).
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1.0f64, 2.0])?;
    /// // SAFETY: nobody writes `a` meanwhile.
    /// let total: f64 = unsafe { a.as_slice_unlocked() }.iter().sum();
    /// assert_eq!(total, 3.0);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub unsafe fn as_slice_unlocked(&self) -> &[T] {
        // SAFETY: forwarded to the caller.
        unsafe { self.cells.slice() }
    }
}

cells_serde!(Array, locked: true);

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_locked(f, "Array", self.to_vec())
    }
}

/// The lock of an [`Array`], held; released on drop. Like [`ValueGuard`](super::ValueGuard)
/// it gives copies of the elements, never a slice into the shared memory (see the soundness
/// notes in `src/shared/cells.rs`).
///
/// ```
/// let a = multiproc::Array::from_slice(&[1u32, 2])?;
/// let mut g = a.lock()?;
/// a.set(0, 5)?; // re-entrant, and no `&mut [u32]` to alias
/// g.update(0, |x| x + 1);
/// assert_eq!(g.to_vec(), [6, 2]);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
///
/// ```compile_fail,E0608
/// let a = multiproc::Array::from_slice(&[1u32, 2])?;
/// let mut g = a.lock()?;
/// a.set(0, 1)?;
/// g[0] = 2; // no `&mut [u32]` into shared memory
/// # Ok::<(), multiproc::SyncError>(())
/// ```
///
/// ```compile_fail,E0599
/// let a = multiproc::Array::from_slice(&[3u32, 1, 2])?;
/// a.lock()?.sort(); // not a slice
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    held: RLockGuard<'a>,
    cells: &'a Cells<T>,
}

impl<T: Pod> ArrayGuard<'_, T> {
    /// Whether this acquire found the lock's previous holder dead: the data may be
    /// half-updated (see [`LockGuard::owner_died`](crate::LockGuard::owner_died)).
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u8])?;
    /// assert!(!a.lock()?.owner_died());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.held.owner_died()
    }

    /// Number of elements.
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(3)?;
    /// assert_eq!(a.lock()?.len(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(0)?;
    /// assert!(a.lock()?.is_empty());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// A copy of element `i`, or `None` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8, 6])?;
    /// let g = a.lock()?;
    /// assert_eq!((g.get(1), g.get(2)), (Some(6), None));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.cells.get(i)
    }

    /// Set element `i`; `false` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(2)?;
    /// let mut g = a.lock()?;
    /// assert!(g.set(1, 9) && !g.set(2, 9));
    /// assert_eq!(g.to_vec(), [0, 9]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&mut self, i: usize, value: T) -> bool {
        self.cells.set(i, value)
    }

    /// Replace element `i` by `f(element)`; the new element, or `None` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u32, 2])?;
    /// let mut g = a.lock()?;
    /// assert_eq!(g.update(1, |x| x * 10), Some(20));
    /// assert_eq!(g.update(5, |x| x * 10), None);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn update(&mut self, i: usize, f: impl FnOnce(T) -> T) -> Option<T> {
        let new = f(self.get(i)?);
        self.set(i, new);
        Some(new)
    }

    /// A copy of all elements.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1i16, -1])?;
    /// assert_eq!(a.lock()?.to_vec(), vec![1, -1]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.cells.to_vec()
    }

    /// Copy the elements from `start` on into `dst`.
    ///
    /// # Panics
    /// If `start + dst.len()` exceeds the length, like slice indexing.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[1u8, 2, 3])?;
    /// let mut two = [0; 2];
    /// a.lock()?.copy_to_slice(1, &mut two);
    /// assert_eq!(two, [2, 3]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn copy_to_slice(&self, start: usize, dst: &mut [T]) {
        self.cells.read_into(start, dst)
    }

    /// Copy `src` into the elements from `start` on.
    ///
    /// # Panics
    /// If `start + src.len()` exceeds the length, like slice indexing.
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(3)?;
    /// a.lock()?.copy_from_slice(1, &[7, 8]);
    /// assert_eq!(a.to_vec()?, [0, 7, 8]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn copy_from_slice(&mut self, start: usize, src: &[T]) {
        self.cells.write_from(start, src)
    }

    /// Set every element to `value`.
    ///
    /// ```
    /// let a = multiproc::Array::<f32>::zeroed(3)?;
    /// a.lock()?.fill(0.5);
    /// assert_eq!(a.to_vec()?, [0.5; 3]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn fill(&mut self, value: T) {
        for i in 0..self.len() {
            self.cells.write(i, value);
        }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ArrayGuard").field(&self.to_vec()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::cells::corrupt_lock;

    #[test]
    #[cfg_attr(miri, ignore)] // shared memory and pthread mutexes: FFI
    fn a_failed_acquire_is_an_error_never_an_unlocked_access() {
        let array = Array::from_slice(&[1u8, 2]).unwrap();
        corrupt_lock(&array.cells);
        assert!(matches!(array.lock(), Err(SyncError::Io(_))));
        assert!(matches!(array.get(0), Err(SyncError::Io(_))));
        assert!(matches!(array.set(0, 9), Err(SyncError::Io(_))));
        assert!(matches!(array.to_vec(), Err(SyncError::Io(_))));
        assert!(matches!(
            array.copy_from_slice(0, &[9]),
            Err(SyncError::Io(_))
        ));
        assert!(matches!(
            array.copy_to_slice(0, &mut [0]),
            Err(SyncError::Io(_))
        ));
        // SAFETY: nobody writes the array.
        assert_eq!(unsafe { array.as_slice_unlocked() }, [1, 2]);
    }
}
