//! `Value`, `Array`, `RawValue`, `RawArray`: plain data in shared memory.
//!
//! Layout of a segment: `[LockState (Value/Array only)][padding to 64 bytes][data]`. The data
//! starts on its own cache line, so the lock word and the data do not share one.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::atomic::AtomicInt;
use super::segment::{Segment, Shared, SharedState};
use crate::sync::{LockState, RLock, RLockGuard, SyncError};

const DATA_OFFSET: usize = 64;

const _: () = assert!(std::mem::size_of::<LockState>() <= DATA_OFFSET);

/// The memory behind every value/array kind: a segment and where the elements start.
#[derive(Clone)]
struct Cells<T> {
    segment: Arc<Segment>,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T: Pod> Cells<T> {
    fn new(len: usize, locked: bool) -> Result<(Cells<T>, Option<RLock>), SyncError> {
        if std::mem::align_of::<T>() > DATA_OFFSET {
            return Err(SyncError::Invalid(
                "shared values support element alignment up to 64 bytes",
            ));
        }
        let bytes = std::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(DATA_OFFSET))
            .ok_or(SyncError::Invalid("shared array too large"))?;
        let segment = Arc::new(Segment::anonymous(bytes)?);
        let lock = if locked {
            // SAFETY: offset 0 of a fresh zeroed page-aligned segment, reserved for the lock.
            unsafe { LockState::init(segment.as_ptr().cast::<LockState>())? };
            Some(RLock::from_state(Shared::at(segment.clone(), 0)?))
        } else {
            None
        };
        Ok((
            Cells {
                segment,
                len,
                _elements: PhantomData,
            },
            lock,
        ))
    }

    fn from_segment(segment: Segment, len: usize) -> std::io::Result<Cells<T>> {
        let needed = std::mem::size_of::<T>()
            .checked_mul(len)
            .and_then(|b| b.checked_add(DATA_OFFSET));
        if needed.is_none_or(|n| n > segment.len()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "shared segment is smaller than the array it should hold",
            ));
        }
        Ok(Cells {
            segment: Arc::new(segment),
            len,
            _elements: PhantomData,
        })
    }

    fn ptr(&self) -> *mut T {
        // SAFETY: DATA_OFFSET is within the segment (checked at creation).
        unsafe { self.segment.as_ptr().add(DATA_OFFSET).cast::<T>() }
    }

    fn read(&self, i: usize) -> T {
        assert!(i < self.len);
        // SAFETY: in bounds (checked above); volatile because other processes write this
        // memory behind the compiler's back; any bit pattern is a valid T (Pod).
        unsafe { self.ptr().add(i).read_volatile() }
    }

    fn write(&self, i: usize, value: T) {
        assert!(i < self.len);
        // SAFETY: in bounds; see `read`.
        unsafe { self.ptr().add(i).write_volatile(value) }
    }

    /// # Safety
    /// No other process or thread may write the elements while the slice lives.
    unsafe fn slice(&self) -> &[T] {
        // SAFETY: in bounds, aligned (64-byte offset into a page-aligned mapping), and the
        // caller rules out concurrent writes.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }

    /// # Safety
    /// No other process or thread may access the elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice_mut(&self) -> &mut [T] {
        // SAFETY: as `slice`, with exclusive access guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }

    fn atomic(&self, i: usize) -> &T::Atomic
    where
        T: AtomicInt,
    {
        assert!(i < self.len);
        // SAFETY: in bounds and aligned for T; `T::Atomic` has the same size and alignment as
        // T (guaranteed by the AtomicInt impls), and atomics are meant for shared access.
        unsafe { &*self.ptr().add(i).cast::<T::Atomic>() }
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    segment: &'a Segment,
    len: u64,
}

#[derive(Deserialize)]
struct WireIn {
    segment: Segment,
    len: u64,
}

fn serialize_cells<T, S: Serializer>(cells: &Cells<T>, s: S) -> Result<S::Ok, S::Error> {
    WireOut {
        segment: &cells.segment,
        len: cells.len as u64,
    }
    .serialize(s)
}

fn deserialize_cells<'de, T: Pod, D: Deserializer<'de>>(d: D) -> Result<Cells<T>, D::Error> {
    let wire = WireIn::deserialize(d)?;
    Cells::from_segment(wire.segment, wire.len as usize).map_err(serde::de::Error::custom)
}

/// The cells of a `Value`/`Array` and the `RLock` at the start of their segment.
fn deserialize_locked_cells<'de, T: Pod, D: Deserializer<'de>>(
    d: D,
) -> Result<(Cells<T>, RLock), D::Error> {
    let cells = deserialize_cells::<T, D>(d)?;
    let lock =
        RLock::from_state(Shared::at(cells.segment.clone(), 0).map_err(serde::de::Error::custom)?);
    Ok((cells, lock))
}

macro_rules! atomic_methods {
    () => {
        /// Atomically add `v` (wrapping), returning the previous value. No lock is taken:
        /// this is a single hardware instruction, visible to every process at once.
        ///
        /// ```
        /// let v = multiproc::Value::new(1i64)?;
        /// assert_eq!(v.fetch_add(2), 1);
        /// assert_eq!(v.get(), 3);
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn fetch_add(&self, v: T) -> T
        where
            T: AtomicInt,
        {
            T::fetch_add(self.cells.atomic(0), v)
        }

        /// Atomically subtract `v` (wrapping), returning the previous value.
        ///
        /// ```
        /// let v = multiproc::Value::new(5u32)?;
        /// assert_eq!(v.fetch_sub(2), 5);
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn fetch_sub(&self, v: T) -> T
        where
            T: AtomicInt,
        {
            T::fetch_sub(self.cells.atomic(0), v)
        }

        /// Atomically replace the value, returning the previous one.
        ///
        /// ```
        /// let v = multiproc::Value::new(5u8)?;
        /// assert_eq!(v.swap(9), 5);
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn swap(&self, v: T) -> T
        where
            T: AtomicInt,
        {
            T::swap(self.cells.atomic(0), v)
        }

        /// Atomically set the value to `new` if it is `current`; returns the previous value
        /// (`Ok` if the exchange happened).
        ///
        /// ```
        /// let v = multiproc::Value::new(1i32)?;
        /// assert_eq!(v.compare_exchange(1, 2), Ok(1));
        /// assert_eq!(v.compare_exchange(1, 3), Err(2));
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T>
        where
            T: AtomicInt,
        {
            T::compare_exchange(self.cells.atomic(0), current, new)
        }

        /// Atomically read the value (without the lock).
        ///
        /// ```
        /// let v = multiproc::Value::new(7u64)?;
        /// assert_eq!(v.load(), 7);
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn load(&self) -> T
        where
            T: AtomicInt,
        {
            T::load(self.cells.atomic(0))
        }

        /// Atomically write the value (without the lock).
        ///
        /// ```
        /// let v = multiproc::Value::new(7u64)?;
        /// v.store(8);
        /// assert_eq!(v.load(), 8);
        /// # Ok::<(), multiproc::SyncError>(())
        /// ```
        pub fn store(&self, v: T)
        where
            T: AtomicInt,
        {
            T::store(self.cells.atomic(0), v)
        }
    };
}

/// A value of plain data in shared memory, with its own [`RLock`] (Python's
/// `multiprocessing.Value`). `get`/`set` take the lock; [`lock`](Self::lock) holds it across
/// a read-modify-write; integer values also have lock-free atomic operations.
///
/// ```
/// use multiproc::{Process, Value};
///
/// fn add_ten(counter: Value<u64>) {
///     for _ in 0..10 {
///         *counter.lock() += 1; // one locked read-modify-write
///     }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Value::new(0u64)?;
/// let kids: Vec<_> = (0..3).map(|_| Process::start(add_ten, counter.clone())).collect::<Result<_, _>>()?;
/// for k in kids { k.join()?; }
/// assert_eq!(counter.get(), 30);
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
    /// assert_eq!(v.get(), 1.5);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>, SyncError> {
        let (cells, lock) = Cells::new(1, true)?;
        cells.write(0, value);
        let lock = lock.ok_or(SyncError::Invalid("value lock missing"))?;
        Ok(Value { cells, lock })
    }

    /// Read the value under the lock.
    ///
    /// ```
    /// assert_eq!(multiproc::Value::new(3u8)?.get(), 3);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self) -> T {
        let _g = self.lock.acquire().or_else(|e| e.into_guard().ok_or(()));
        self.cells.read(0)
    }

    /// Write the value under the lock.
    ///
    /// ```
    /// let v = multiproc::Value::new(3u8)?;
    /// v.set(4);
    /// assert_eq!(v.get(), 4);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, value: T) {
        let _g = self.lock.acquire().or_else(|e| e.into_guard().ok_or(()));
        self.cells.write(0, value)
    }

    /// The value's lock (Python's `get_lock()`), to hold it across several operations.
    ///
    /// ```
    /// let v = multiproc::Value::new(0i32)?;
    /// let _g = v.get_lock().acquire()?;
    /// v.set(v.get() + 1); // re-entering the RLock is fine
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Hold the lock and access the value in place. If a previous holder died, the lock is
    /// recovered (use [`get_lock`](Self::get_lock) to be told).
    ///
    /// ```
    /// let v = multiproc::Value::new(1u32)?;
    /// *v.lock() *= 10;
    /// assert_eq!(v.get(), 10);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn lock(&self) -> ValueGuard<'_, T> {
        let guard = match self.lock.acquire() {
            Ok(g) => Some(g),
            Err(e) => e.into_guard(),
        };
        ValueGuard {
            _guard: guard,
            // SAFETY: the lock is held for the guard's lifetime and every writer of a locked
            // Value takes it, so access through the guard is exclusive.
            slice: unsafe { self.cells.slice_mut() },
        }
    }

    atomic_methods!();
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Value").field(&self.get()).finish()
    }
}

impl<T> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (cells, lock) = deserialize_locked_cells::<T, D>(d)?;
        Ok(Value { cells, lock })
    }
}

/// Exclusive access to a locked [`Value`] or [`Array`]; the lock is released on drop.
pub struct ValueGuard<'a, T> {
    _guard: Option<RLockGuard<'a>>,
    slice: &'a mut [T],
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.slice[0]
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.slice[0]
    }
}

/// Exclusive access to the elements of a locked [`Array`]; the lock is released on drop.
pub struct ArrayGuard<'a, T> {
    _guard: Option<RLockGuard<'a>>,
    slice: &'a mut [T],
}

impl<T> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.slice
    }
}

impl<T> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.slice
    }
}

/// A value of plain data in shared memory without a lock (Python's `RawValue` /
/// `Value(..., lock=False)`). Reads and writes are single volatile copies: for types larger
/// than a machine word a concurrent writer can be seen half-done; integers also offer atomic
/// operations.
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
        let (cells, _) = Cells::new(1, false)?;
        cells.write(0, value);
        Ok(RawValue { cells })
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

impl<T> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawValue {
            cells: deserialize_cells::<T, D>(d)?,
        })
    }
}

macro_rules! array_common {
    () => {
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
    };
}

/// An array of plain data in shared memory with its own [`RLock`] (Python's
/// `multiprocessing.Array`).
///
/// ```
/// use multiproc::{Array, Process};
///
/// fn fill((arr, start): (Array<u32>, usize)) {
///     let mut a = arr.lock();
///     for i in start..start + 2 { a[i] = i as u32 * 10; }
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let arr = Array::<u32>::zeroed(4)?;
/// let kids: Vec<_> = [0usize, 2].into_iter().map(|s| Process::start(fill, (arr.clone(), s))).collect::<Result<_, _>>()?;
/// for k in kids { k.join()?; }
/// assert_eq!(arr.to_vec(), vec![0, 10, 20, 30]);
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
    /// assert_eq!(multiproc::Array::<f64>::zeroed(2)?.to_vec(), vec![0.0, 0.0]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn zeroed(len: usize) -> Result<Array<T>, SyncError> {
        let (cells, lock) = Cells::new(len, true)?;
        let lock = lock.ok_or(SyncError::Invalid("array lock missing"))?;
        Ok(Array { cells, lock })
    }

    /// A new array holding a copy of `items`.
    ///
    /// ```
    /// assert_eq!(multiproc::Array::from_slice(&[1, 2, 3])?.get(1), Some(2));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Array<T>, SyncError> {
        let array = Array::zeroed(items.len())?;
        array.lock().copy_from_slice(items);
        Ok(array)
    }

    array_common!();

    /// Element `i` (under the lock), or `None` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8])?;
    /// assert_eq!((a.get(0), a.get(1)), (Some(5), None));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len()).then(|| self.lock()[i])
    }

    /// Set element `i` (under the lock); `false` out of bounds.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[5u8])?;
    /// assert!(a.set(0, 6) && !a.set(1, 6));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> bool {
        if i >= self.len() {
            return false;
        }
        self.lock()[i] = value;
        true
    }

    /// Copy of all elements (under the lock).
    ///
    /// ```
    /// assert_eq!(multiproc::Array::from_slice(&[1u16, 2])?.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }

    /// The array's lock (Python's `get_lock()`).
    ///
    /// ```
    /// let a = multiproc::Array::<u8>::zeroed(1)?;
    /// let _g = a.get_lock().acquire()?;
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn get_lock(&self) -> &RLock {
        &self.lock
    }

    /// Hold the lock and access the elements as a slice.
    ///
    /// ```
    /// let a = multiproc::Array::from_slice(&[3u8, 1, 2])?;
    /// a.lock().sort();
    /// assert_eq!(a.to_vec(), vec![1, 2, 3]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn lock(&self) -> ArrayGuard<'_, T> {
        let guard = match self.lock.acquire() {
            Ok(g) => Some(g),
            Err(e) => e.into_guard(),
        };
        ArrayGuard {
            _guard: guard,
            // SAFETY: the lock is held for the guard's lifetime; writers of a locked Array
            // take it, so access through the guard is exclusive.
            slice: unsafe { self.cells.slice_mut() },
        }
    }

    /// The elements without taking the lock (Python's `get_obj()`), for readers that know
    /// no one writes meanwhile (e.g. workers summing disjoint parts after the data was set).
    ///
    /// # Safety
    /// No process or thread may write the array while the slice lives.
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

impl<T> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Array<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (cells, lock) = deserialize_locked_cells::<T, D>(d)?;
        Ok(Array { cells, lock })
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Array").field(&self.to_vec()).finish()
    }
}

/// An array of plain data in shared memory without a lock (Python's `RawArray` /
/// `Array(..., lock=False)`).
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
        let array = RawArray::zeroed(items.len())?;
        for (i, v) in items.iter().enumerate() {
            array.cells.write(i, *v);
        }
        Ok(array)
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
        (i < self.len()).then(|| self.cells.read(i))
    }

    /// Set element `i`; `false` out of bounds.
    ///
    /// ```
    /// assert!(!multiproc::RawArray::<u8>::zeroed(1)?.set(1, 0));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> bool {
        if i >= self.len() {
            return false;
        }
        self.cells.write(i, value);
        true
    }

    /// A copy of all elements.
    ///
    /// ```
    /// assert_eq!(multiproc::RawArray::from_slice(&[1u8, 2])?.to_vec(), vec![1, 2]);
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).map(|i| self.cells.read(i)).collect()
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
    /// No other process or thread may access the array while the slice lives.
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

impl<T> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawArray {
            cells: deserialize_cells::<T, D>(d)?,
        })
    }
}
