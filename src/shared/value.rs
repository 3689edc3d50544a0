// long file: Value, Array, RawValue and RawArray share one segment layout and its tests (the last ~140 lines); to split per type (issue 16)
//! `Value`, `Array`, `RawValue`, `RawArray`: plain data in shared memory.
//!
//! Layout of a segment: `[LockState (Value/Array only)][padding to 64 bytes][data]`. The data
//! starts on its own cache line, so the lock word and the data do not share one.
//!
//! # Soundness: copies, never references
//!
//! The elements live in memory that other threads and processes write whenever they like:
//! `RawValue`/`RawArray` and the atomic operations of `Value` (`fetch_add`, `store`, ...)
//! never take a lock, by design, and a process at the other end of a handle runs code this
//! one cannot check. A `&mut T` (or `&T`) into that memory is only sound while *no one* else
//! writes it, which the lock cannot promise. So no safe function here creates a reference to
//! an element. Every read and write is a *copy* made of relaxed atomic loads or stores, in
//! chunks as wide as the element's alignment, at most 8 bytes (an "atomic memcpy"):
//!
//! - Atomic accesses that race are not data races. A copy of a multi-chunk element that
//!   races with a writer may be torn (half old, half new), which is harmless: the elements
//!   are `bytemuck::Pod`, so every bit pattern is a valid value (the lock is there to prevent
//!   tearing, not undefined behaviour).
//! - For an integer element the chunk is the whole element, the size of its `AtomicInt`
//!   counterpart, so the lock-free operations and the copies are atomic accesses of one size
//!   to the same cells (no mixed-size accesses). A handle carries its element size and
//!   alignment and whether it has a lock; receiving it as another kind or element layout is
//!   refused, so no process can look at the cells in chunks of another width.
//! - Relaxed atomic loads and stores are plain moves on x86-64 and AArch64; what the copies
//!   lose is only the vectorisation of bulk copies.
//!
//! The guards follow: [`ValueGuard`] and [`ArrayGuard`] hold the lock and offer `get`/`set`
//! (and `update`, bulk copies) instead of `Deref<Target = T>`/`DerefMut`. Since a guard holds
//! no reference to the data, nothing the same thread does while it lives can alias one: the
//! lock stays re-entrant, so `v.get()`/`v.set()` while holding `v.lock()` or
//! `v.get_lock().acquire()` are fine (Python's `with v.get_lock(): v.value += 1`) and act on
//! the same cells the guard sees. Alternatives considered: a guard that dereferences to a
//! private copy written back on drop (`*g += 1`) silently loses a `set` the same thread makes
//! while it lives, unless data access refuses re-entrance (which breaks the Python idiom
//! above); a non-re-entrant guard over `&mut [T]` is still unsound against the lock-free
//! writers. Code that knows no one writes meanwhile can still borrow the elements in place
//! through the `unsafe` `Array::as_slice_unlocked` and `RawArray::as_slice`/`as_mut_slice`,
//! whose contracts say so.
//!
//! An acquire that fails (an I/O error: a lock word a faulty peer corrupted, ...) is an error,
//! never a guard or an unlocked access. A lock whose previous holder died *is* held: `lock()`
//! returns the guard, whose `owner_died()` says so (as [`RLock::acquire`] does), and
//! `get`/`set`/`to_vec`, like Python's, carry on (the library logs the event).

use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use bytemuck::Pod;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::atomic::AtomicInt;
use crate::segment::{Segment, Shared, SharedState};
use crate::sync::{LockState, RLock, RLockGuard, SyncError};

const DATA_OFFSET: usize = 64;

const _: () = assert!(size_of::<LockState>() <= DATA_OFFSET);

/// The width of the atomic chunks a `T` is copied in: its alignment, at most 8 bytes (a size
/// is a multiple of the alignment, so the chunks tile every element exactly).
const fn chunk_width<T>() -> usize {
    let align = align_of::<T>();
    if align > 8 { 8 } else { align }
}

/// Copy `count` elements from shared memory at `src` into private memory at `dst`, in relaxed
/// atomic chunks of [`chunk_width`] bytes.
///
/// # Safety
/// `src` is aligned for `T` and valid for reads of `count` elements for the duration of the
/// call, and every concurrent access to them is atomic with the same chunk width (the module's
/// invariant). `dst` is aligned for `T`, valid for writes of `count` elements, and not
/// accessed by anyone else meanwhile.
unsafe fn load<T: Pod>(src: *const T, dst: *mut T, count: usize) {
    let bytes = count * size_of::<T>();
    macro_rules! copy {
        ($word:ty, $atomic:ty) => {{
            let (src, dst) = (src.cast::<$atomic>(), dst.cast::<$word>());
            for k in 0..bytes / size_of::<$word>() {
                // SAFETY: chunk `k` is within both ranges (`bytes` is a multiple of the
                // width) and aligned (the width divides `align_of::<T>()`, and `$atomic` has
                // the alignment of its size); the shared side is only accessed atomically at
                // this width, and a reference to an atomic may alias other atomic accesses.
                unsafe { dst.add(k).write((*src.add(k)).load(Ordering::Relaxed)) }
            }
        }};
    }
    match chunk_width::<T>() {
        8 => copy!(u64, AtomicU64),
        4 => copy!(u32, AtomicU32),
        2 => copy!(u16, AtomicU16),
        _ => copy!(u8, AtomicU8),
    }
}

/// Copy `count` elements from private memory at `src` into shared memory at `dst`, in relaxed
/// atomic chunks of [`chunk_width`] bytes.
///
/// # Safety
/// As [`load`] with the roles swapped: `dst` is the shared side (aligned, valid for writes of
/// `count` elements, accessed only atomically at the chunk width), `src` the private one
/// (aligned, valid for reads of `count` elements).
unsafe fn store<T: Pod>(src: *const T, dst: *mut T, count: usize) {
    let bytes = count * size_of::<T>();
    macro_rules! copy {
        ($word:ty, $atomic:ty) => {{
            let (src, dst) = (src.cast::<$word>(), dst.cast::<$atomic>());
            for k in 0..bytes / size_of::<$word>() {
                // SAFETY: as in `load`; the private chunk is initialised because `T: Pod` has
                // no padding bytes.
                unsafe { (*dst.add(k)).store(src.add(k).read(), Ordering::Relaxed) }
            }
        }};
    }
    match chunk_width::<T>() {
        8 => copy!(u64, AtomicU64),
        4 => copy!(u32, AtomicU32),
        2 => copy!(u16, AtomicU16),
        _ => copy!(u8, AtomicU8),
    }
}

/// The memory behind every value/array kind: a segment and where the elements start.
///
/// Invariant: the elements are only accessed through [`load`]/[`store`] and the
/// `AtomicInt` operations (atomically, at the chunk width of `T`), except through the
/// `unsafe` slice accessors, whose callers rule out concurrent writers.
#[derive(Clone)]
struct Cells<T> {
    segment: Arc<Segment>,
    len: usize,
    _elements: PhantomData<T>,
}

impl<T: Pod> Cells<T> {
    fn new(len: usize, locked: bool) -> Result<(Cells<T>, Option<RLock>), SyncError> {
        if align_of::<T>() > DATA_OFFSET {
            return Err(SyncError::Invalid(
                "shared values support element alignment up to 64 bytes",
            ));
        }
        let bytes = size_of::<T>()
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
        let needed = size_of::<T>()
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

    /// Panics unless `start..start + count` is within the elements.
    fn check_range(&self, start: usize, count: usize) {
        let end = start.checked_add(count);
        assert!(
            end.is_some_and(|end| end <= self.len),
            "range {start}..{start}+{count} out of bounds for a shared array of length {}",
            self.len
        );
    }

    /// A copy of element `i`. Panics if `i` is out of bounds.
    fn read(&self, i: usize) -> T {
        let mut out = T::zeroed();
        self.read_into(i, std::slice::from_mut(&mut out));
        out
    }

    /// Write element `i`. Panics if `i` is out of bounds.
    fn write(&self, i: usize, value: T) {
        self.write_from(i, std::slice::from_ref(&value));
    }

    /// Copy the elements from `start` on into `dst`. Panics if they are out of bounds.
    fn read_into(&self, start: usize, dst: &mut [T]) {
        self.check_range(start, dst.len());
        // SAFETY: in bounds (checked above) and aligned (a 64-byte offset into a page-aligned
        // mapping, element size a multiple of the alignment); the elements are only accessed
        // atomically (type invariant); `dst` is a private exclusive slice.
        unsafe { load(self.ptr().add(start), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copy `src` into the elements from `start` on. Panics if they are out of bounds.
    fn write_from(&self, start: usize, src: &[T]) {
        self.check_range(start, src.len());
        // SAFETY: as in `read_into`.
        unsafe { store(src.as_ptr(), self.ptr().add(start), src.len()) }
    }

    /// A copy of all elements.
    fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        self.read_into(0, &mut out);
        out
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
        // T (guaranteed by the AtomicInt impls), so this is an atomic access at T's chunk
        // width, as every other access to the cells; atomics are meant for shared access.
        unsafe { &*self.ptr().add(i).cast::<T::Atomic>() }
    }
}

/// What travels with a handle besides the segment, checked on receipt: the element count,
/// the element layout (so no process copies the cells in chunks of another width) and
/// whether offset 0 holds a lock.
#[derive(Serialize)]
struct WireOut<'a> {
    segment: &'a Segment,
    len: u64,
    size: u64,
    align: u64,
    locked: bool,
}

#[derive(Deserialize)]
struct WireIn {
    segment: Segment,
    len: u64,
    size: u64,
    align: u64,
    locked: bool,
}

fn serialize_cells<T, S: Serializer>(
    cells: &Cells<T>,
    locked: bool,
    s: S,
) -> Result<S::Ok, S::Error> {
    WireOut {
        segment: &cells.segment,
        len: cells.len as u64,
        size: size_of::<T>() as u64,
        align: align_of::<T>() as u64,
        locked,
    }
    .serialize(s)
}

fn deserialize_cells<'de, T: Pod, D: Deserializer<'de>>(
    d: D,
    locked: bool,
) -> Result<Cells<T>, D::Error> {
    let wire = WireIn::deserialize(d)?;
    if (wire.size, wire.align) != (size_of::<T>() as u64, align_of::<T>() as u64) {
        return Err(serde::de::Error::custom(
            "a shared value or array received with another element size or alignment",
        ));
    }
    if wire.locked != locked {
        return Err(serde::de::Error::custom(
            "a shared value or array received as the other kind (with/without a lock)",
        ));
    }
    let len = usize::try_from(wire.len).map_err(serde::de::Error::custom)?;
    Cells::from_segment(wire.segment, len).map_err(serde::de::Error::custom)
}

/// The cells of a `Value`/`Array` and the `RLock` at the start of their segment.
fn deserialize_locked_cells<'de, T: Pod, D: Deserializer<'de>>(
    d: D,
) -> Result<(Cells<T>, RLock), D::Error> {
    let cells = deserialize_cells::<T, D>(d, true)?;
    let lock =
        RLock::from_state(Shared::at(cells.segment.clone(), 0).map_err(serde::de::Error::custom)?);
    Ok((cells, lock))
}

/// Hold `lock` (also after its previous holder died: the guard says so and the library logs
/// the event); any other failure is an error, never a guard or an unlocked access.
fn hold(lock: &RLock) -> Result<RLockGuard<'_>, SyncError> {
    lock.acquire()
}

macro_rules! atomic_methods {
    () => {
        /// Atomically add `v` (wrapping), returning the previous value. No lock is taken:
        /// this is a single hardware instruction, visible to every process at once.
        ///
        /// ```
        /// let v = multiproc::Value::new(1i64)?;
        /// assert_eq!(v.fetch_add(2), 1);
        /// assert_eq!(v.load(), 3);
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
        let (cells, lock) = Cells::new(1, true)?;
        cells.write(0, value);
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
        match self.get() {
            Ok(v) => f.debug_tuple("Value").field(&v).finish(),
            Err(e) => f.debug_tuple("Value").field(&e).finish(),
        }
    }
}

impl<T> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, true, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (cells, lock) = deserialize_locked_cells::<T, D>(d)?;
        Ok(Value { cells, lock })
    }
}

/// The lock of a [`Value`], held; released on drop. It gives copies of the value, never a
/// reference into the shared memory, which other processes may write at any time (the
/// lock-free atomic operations do not take the lock); see the module's soundness notes.
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
    pub fn get(&self) -> T {
        self.cells.read(0)
    }

    /// Write the value.
    pub fn set(&mut self, value: T) {
        self.cells.write(0, value)
    }

    /// Replace the value by `f(value)`; returns the new value.
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

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T> Serialize for RawValue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, false, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawValue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawValue {
            cells: deserialize_cells::<T, D>(d, false)?,
        })
    }
}

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
        let (cells, lock) = Cells::new(len, true)?;
        let lock = lock.ok_or(SyncError::Invalid("array lock missing"))?;
        Ok(Array { cells, lock })
    }

    /// A new array holding a copy of `items`.
    ///
    /// ```
    /// assert_eq!(multiproc::Array::from_slice(&[1, 2, 3])?.get(1)?, Some(2));
    /// # Ok::<(), multiproc::SyncError>(())
    /// ```
    pub fn from_slice(items: &[T]) -> Result<Array<T>, SyncError> {
        let array = Array::zeroed(items.len())?;
        // No lock needed: no one else has the array yet.
        array.cells.write_from(0, items);
        Ok(array)
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

impl<T> Serialize for Array<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, true, s)
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
        match self.to_vec() {
            Ok(v) => f.debug_tuple("Array").field(&v).finish(),
            Err(e) => f.debug_tuple("Array").field(&e).finish(),
        }
    }
}

/// The lock of an [`Array`], held; released on drop. Like [`ValueGuard`] it gives copies of
/// the elements, never a slice into the shared memory (see the module's soundness notes).
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
    pub fn len(&self) -> usize {
        self.cells.len
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.cells.len == 0
    }

    /// A copy of element `i`, or `None` out of bounds.
    pub fn get(&self, i: usize) -> Option<T> {
        (i < self.len()).then(|| self.cells.read(i))
    }

    /// Set element `i`; `false` out of bounds.
    pub fn set(&mut self, i: usize, value: T) -> bool {
        if i >= self.len() {
            return false;
        }
        self.cells.write(i, value);
        true
    }

    /// Replace element `i` by `f(element)`; the new element, or `None` out of bounds.
    pub fn update(&mut self, i: usize, f: impl FnOnce(T) -> T) -> Option<T> {
        let new = f(self.get(i)?);
        self.set(i, new);
        Some(new)
    }

    /// A copy of all elements.
    pub fn to_vec(&self) -> Vec<T> {
        self.cells.to_vec()
    }

    /// Copy the elements from `start` on into `dst`.
    ///
    /// # Panics
    /// If `start + dst.len()` exceeds the length, like slice indexing.
    pub fn copy_to_slice(&self, start: usize, dst: &mut [T]) {
        self.cells.read_into(start, dst)
    }

    /// Copy `src` into the elements from `start` on.
    ///
    /// # Panics
    /// If `start + src.len()` exceeds the length, like slice indexing.
    pub fn copy_from_slice(&mut self, start: usize, src: &[T]) {
        self.cells.write_from(start, src)
    }

    /// Set every element to `value`.
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
        let array = RawArray::zeroed(items.len())?;
        array.cells.write_from(0, items);
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

impl<T> Serialize for RawArray<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_cells(&self.cells, false, s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for RawArray<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawArray {
            cells: deserialize_cells::<T, D>(d, false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Debug;

    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C, align(16))]
    struct Wide {
        a: u64,
        b: u64,
    }

    fn round_trip<T: Pod + PartialEq + Debug>(items: &[T]) {
        let mut shared = vec![T::zeroed(); items.len()];
        let mut back = vec![T::zeroed(); items.len()];
        // SAFETY: both buffers hold `items.len()` aligned elements and only this thread
        // uses them.
        unsafe {
            store(items.as_ptr(), shared.as_mut_ptr(), items.len());
            load(shared.as_ptr(), back.as_mut_ptr(), items.len());
        }
        assert_eq!(back, items);
        assert_eq!(shared, items);
    }

    #[test]
    fn copies_round_trip_at_every_chunk_width() {
        assert_eq!(
            [
                chunk_width::<u8>(),
                chunk_width::<[u8; 3]>(),
                chunk_width::<u16>(),
                chunk_width::<u32>(),
                chunk_width::<f64>(),
                chunk_width::<Wide>(),
            ],
            [1, 1, 2, 4, 8, 8]
        );
        round_trip(&[1u8, 2, 255]);
        round_trip(&[[1u8, 2, 3], [4, 5, 6]]);
        round_trip(&[[1u16, 2, 3], [4, 5, u16::MAX]]);
        round_trip(&[u32::MAX, 0, 7]);
        round_trip(&[1.5f64, -0.0, f64::MAX]);
        round_trip(&[Wide { a: 1, b: u64::MAX }, Wide { a: 3, b: 4 }]);
        round_trip::<()>(&[(), ()]);
        round_trip::<u64>(&[]);
    }

    /// The lock-free operations of an integer cell and the chunked copies of the same cell
    /// from other threads are atomic accesses of one size: under Miri this checks that there
    /// is no data race and no mixed-size access; a multi-chunk element may come out torn.
    #[test]
    fn copies_race_with_lock_free_operations_without_undefined_behaviour() {
        let counter = AtomicU64::new(0);
        let pair = [AtomicU32::new(0), AtomicU32::new(0)];
        let rounds = if cfg!(miri) { 20 } else { 10_000 };
        // Raw pointers are not `Send`: each thread derives its own from the shared references.
        let cell = || counter.as_ptr();
        let pair_ptr = || pair.as_ptr().cast::<[u32; 2]>().cast_mut();
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..rounds {
                    u64::fetch_add(&counter, 1);
                }
            });
            s.spawn(|| {
                let mut last = 0;
                for i in 0..rounds {
                    let mut seen = 0u64;
                    let mut torn = [0u32; 2];
                    // SAFETY: `cell` and `pair_ptr` point to live atomics of the chunk width
                    // of `u64` and `[u32; 2]`; the destinations are private locals.
                    unsafe {
                        load(cell().cast_const(), &mut seen, 1);
                        store(&[i, i], pair_ptr(), 1);
                        load(pair_ptr().cast_const(), &mut torn, 1);
                    }
                    assert!(seen >= last, "the counter went back");
                    last = seen;
                    assert!(torn[0] <= rounds && torn[1] <= rounds);
                }
            });
            s.spawn(|| {
                for i in 0..rounds {
                    // SAFETY: as above.
                    unsafe { store(&[i + 1, i + 1], pair_ptr(), 1) };
                }
            });
        });
        assert_eq!(counter.load(Ordering::SeqCst), u64::from(rounds));
    }

    /// Make the value's mutex refuse every acquire, as a faulty peer writing over the lock
    /// word could: glibc answers `EINVAL` for a mutex of unknown kind.
    fn corrupt_lock<T>(cells: &Cells<T>) {
        // `__kind`, the fifth `int` of glibc's 64-bit `pthread_mutex_t`.
        const KIND_OFFSET: usize = 16;
        // SAFETY: offset 16 lies in the mutex at the start of the segment; nobody else uses
        // the lock of this fresh value, and the mutex is only ever accessed through glibc,
        // which this thread does not call meanwhile.
        unsafe {
            cells
                .segment
                .as_ptr()
                .add(KIND_OFFSET)
                .cast::<i32>()
                .write_volatile(127)
        }
    }

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
