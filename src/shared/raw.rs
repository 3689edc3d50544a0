//! [`RawValue`] and [`RawArray`]: plain data in shared memory without a lock.

use std::fmt;

use bytemuck::Pod;

use super::atomic::AtomicInt;
use super::cells::{Cells, atomic_methods, cells_serde};
use crate::sync::SyncError;

/// A value of plain data in shared memory without a lock (Python's `RawValue` /
/// `Value(..., lock=False)`). Reads and writes are copies made of relaxed atomic accesses:
/// for an integer they are single atomic accesses, for larger types a concurrent writer can
/// be seen half-done; integers also offer atomic read-modify-write operations.
///
/// ```
/// let hits = multiproc::RawValue::new(0u64)?;
/// hits.fetch_add(1);
/// assert_eq!(hits.get(), 1);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[derive(Clone)]
pub struct RawValue<T> {
    cells: Cells<T>,
}

impl<T: Pod> RawValue<T> {
    /// A new shared value without a lock.
    ///
    /// ```
    /// let v = multiproc::RawValue::new([0u8; 4])?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(value: T) -> Result<RawValue<T>, SyncError> {
        Ok(RawValue {
            cells: Cells::from_slice(&[value], false)?.0,
        })
    }

    /// Read the value.
    ///
    /// ```
    /// assert_eq!(multiproc::RawValue::new(2i16)?.get(), 2);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self) -> T {
        self.cells.read(0)
    }

    /// Write the value.
    ///
    /// ```
    /// let v = multiproc::RawValue::new(2i16)?;
    /// v.set(-2);
    /// assert_eq!(v.get(), -2);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, value: T) {
        self.cells.write(0, value)
    }

    atomic_methods!();
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

cells_serde!(RawValue, locked: false);

/// An array of plain data in shared memory without a lock (Python's `RawArray` /
/// `Array(..., lock=False)`). Element reads and writes are copies made of relaxed atomic
/// accesses (see [`RawValue`]).
///
/// ```
/// let a = multiproc::RawArray::from_slice(&[1u32, 2, 3])?;
/// a.set(0, 9);
/// assert_eq!(a.to_vec(), vec![9, 2, 3]);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
#[derive(Clone)]
pub struct RawArray<T> {
    cells: Cells<T>,
}

impl<T: Pod> RawArray<T> {
    /// `len` zeroed elements.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::<i8>::zeroed(2)?.to_vec(), vec![0, 0]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<RawArray<T>, SyncError> {
        Ok(RawArray {
            cells: Cells::new(len, false)?.0,
        })
    }

    /// A copy of `items`.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[4u8])?.get(0), Some(4));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<RawArray<T>, SyncError> {
        Ok(RawArray {
            cells: Cells::from_slice(items, false)?.0,
        })
    }

    /// Number of elements.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::<u8>::zeroed(3)?.len(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// assert!(multiproc::RawArray::<u8>::zeroed(0)?.is_empty());
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// Element `i`, or `None` out of bounds.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[7u8])?.get(3), None);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.cells.get(i)
    }

    /// Set element `i`; `false` out of bounds.
    ///
    /// ```
    /// assert!(!multiproc::RawArray::<u8>::zeroed(1)?.set(1, 0));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> bool {
        self.cells.set(i, value)
    }

    /// A copy of all elements.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[1u8, 2])?.to_vec(), vec![1, 2]);
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
    /// let a = multiproc::RawArray::from_slice(&[1u8, 2, 3])?;
    /// let mut first = [0; 2];
    /// a.copy_to_slice(0, &mut first);
    /// assert_eq!(first, [1, 2]);
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
    /// let a = multiproc::RawArray::<u8>::zeroed(3)?;
    /// a.copy_from_slice(2, &[9]);
    /// assert_eq!(a.to_vec(), [0, 0, 9]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn copy_from_slice(&self, start: usize, src: &[T]) {
        self.cells.write_from(start, src)
    }

    /// The elements as a slice.
    ///
    /// # Safety
    /// No process or thread may write the array while the slice lives.
    ///
    /// ```
    /// let a = multiproc::RawArray::from_slice(&[1u64, 2])?;
    /// // SAFETY: nobody writes `a` meanwhile.
    /// assert_eq!(unsafe { a.as_slice() }.iter().sum::<u64>(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: forwarded to the caller.
        unsafe { self.cells.slice() }
    }

    /// The elements as a mutable slice.
    ///
    /// # Safety
    /// No other process or thread may access the array while the slice lives, and this
    /// thread may not either except through the slice.
    ///
    /// ```
    /// let a = multiproc::RawArray::<u8>::zeroed(2)?;
    /// // SAFETY: only this thread uses `a`.
    /// unsafe { a.as_mut_slice() }.fill(7);
    /// assert_eq!(a.to_vec(), vec![7, 7]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: forwarded to the caller.
        unsafe { self.cells.slice_mut() }
    }

    /// Atomically add `v` to element `i`, returning the previous value.
    ///
    /// # Panics
    /// If `i` is out of bounds, like slice indexing.
    ///
    /// ```
    /// let a = multiproc::RawArray::<u32>::zeroed(2)?;
    /// a.fetch_add(1, 5);
    /// assert_eq!(a.get(1), Some(5));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn fetch_add(&self, i: usize, v: T) -> T
    where
        T: AtomicInt,
    {
        T::fetch_add(self.cells.atomic(i), v)
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}

cells_serde!(RawArray, locked: false);
