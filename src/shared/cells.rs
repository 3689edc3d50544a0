//! The cells behind `Value`, `Array`, `RawValue`, `RawArray`: plain data in shared memory,
//! copied in and out atomically, and how a handle to them travels.
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
//! The guards follow: [`ValueGuard`](super::ValueGuard) and [`ArrayGuard`](super::ArrayGuard)
//! hold the lock and offer `get`/`set` (and `update`, bulk copies) instead of
//! `Deref<Target = T>`/`DerefMut`. Since a guard holds
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
    // SAFETY: forwarded contract.
    unsafe { copy_chunks::<T, false>(src, dst, count) }
}

/// Copy `count` elements from private memory at `src` into shared memory at `dst`, in relaxed
/// atomic chunks of [`chunk_width`] bytes.
///
/// # Safety
/// As [`load`] with the roles swapped: `dst` is the shared side (aligned, valid for writes of
/// `count` elements, accessed only atomically at the chunk width), `src` the private one
/// (aligned, valid for reads of `count` elements).
unsafe fn store<T: Pod>(src: *const T, dst: *mut T, count: usize) {
    // SAFETY: forwarded contract.
    unsafe { copy_chunks::<T, true>(src, dst, count) }
}

/// [`load`] (`STORE` false: `src` is the shared side) or [`store`] (`STORE` true: `dst` is).
///
/// # Safety
/// That of [`load`] or [`store`].
#[inline]
unsafe fn copy_chunks<T: Pod, const STORE: bool>(src: *const T, dst: *mut T, count: usize) {
    let bytes = count * size_of::<T>();
    macro_rules! copy {
        ($word:ty, $atomic:ty) => {{
            for k in 0..bytes / size_of::<$word>() {
                if !STORE {
                    let (src, dst) = (src.cast::<$atomic>(), dst.cast::<$word>());
                    // SAFETY: chunk `k` is within both ranges (`bytes` is a multiple of the
                    // width) and aligned (the width divides `align_of::<T>()`, and `$atomic`
                    // has the alignment of its size); the shared side is only accessed
                    // atomically at this width, and a reference to an atomic may alias other
                    // atomic accesses.
                    unsafe { dst.add(k).write((*src.add(k)).load(Ordering::Relaxed)) }
                } else {
                    let (src, dst) = (src.cast::<$word>(), dst.cast::<$atomic>());
                    // SAFETY: as for a load above; the private chunk is initialised because
                    // `T: Pod` has no padding bytes.
                    unsafe { (*dst.add(k)).store(src.add(k).read(), Ordering::Relaxed) }
                }
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
pub(super) struct Cells<T> {
    pub(super) segment: Arc<Segment>,
    pub(super) len: usize,
    _elements: PhantomData<T>,
}

impl<T: Pod> Cells<T> {
    pub(super) fn new(len: usize, locked: bool) -> Result<(Cells<T>, Option<RLock>), SyncError> {
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

    /// New cells holding a copy of `items` (and the lock, as [`new`](Cells::new) makes it).
    pub(super) fn from_slice(
        items: &[T],
        locked: bool,
    ) -> Result<(Cells<T>, Option<RLock>), SyncError> {
        let (cells, lock) = Cells::new(items.len(), locked)?;
        // No lock needed: no one else has the cells yet.
        cells.write_from(0, items);
        Ok((cells, lock))
    }

    pub(super) fn from_segment(segment: Segment, len: usize) -> std::io::Result<Cells<T>> {
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
    pub(super) fn check_range(&self, start: usize, count: usize) {
        let end = start.checked_add(count);
        assert!(
            end.is_some_and(|end| end <= self.len),
            "range {start}..{start}+{count} out of bounds for a shared array of length {}",
            self.len
        );
    }

    /// A copy of element `i`. Panics if `i` is out of bounds.
    pub(super) fn read(&self, i: usize) -> T {
        let mut out = T::zeroed();
        self.read_into(i, std::slice::from_mut(&mut out));
        out
    }

    /// Write element `i`. Panics if `i` is out of bounds.
    pub(super) fn write(&self, i: usize, value: T) {
        self.write_from(i, std::slice::from_ref(&value));
    }

    /// A copy of element `i`, or `None` out of bounds.
    pub(super) fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.read(i))
    }

    /// Write element `i`; `false` out of bounds.
    pub(super) fn set(&self, i: usize, value: T) -> bool {
        if i >= self.len {
            return false;
        }
        self.write(i, value);
        true
    }

    /// Copy the elements from `start` on into `dst`. Panics if they are out of bounds.
    pub(super) fn read_into(&self, start: usize, dst: &mut [T]) {
        self.check_range(start, dst.len());
        // SAFETY: in bounds (checked above) and aligned (a 64-byte offset into a page-aligned
        // mapping, element size a multiple of the alignment); the elements are only accessed
        // atomically (type invariant); `dst` is a private exclusive slice.
        unsafe { load(self.ptr().add(start), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copy `src` into the elements from `start` on. Panics if they are out of bounds.
    pub(super) fn write_from(&self, start: usize, src: &[T]) {
        self.check_range(start, src.len());
        // SAFETY: as in `read_into`.
        unsafe { store(src.as_ptr(), self.ptr().add(start), src.len()) }
    }

    /// A copy of all elements.
    pub(super) fn to_vec(&self) -> Vec<T> {
        let mut out = vec![T::zeroed(); self.len];
        self.read_into(0, &mut out);
        out
    }

    /// # Safety
    /// No other process or thread may write the elements while the slice lives.
    pub(super) unsafe fn slice(&self) -> &[T] {
        // SAFETY: in bounds, aligned (64-byte offset into a page-aligned mapping), and the
        // caller rules out concurrent writes.
        unsafe { std::slice::from_raw_parts(self.ptr(), self.len) }
    }

    /// # Safety
    /// No other process or thread may access the elements while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slice_mut(&self) -> &mut [T] {
        // SAFETY: as `slice`, with exclusive access guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), self.len) }
    }

    pub(super) fn atomic(&self, i: usize) -> &T::Atomic
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

pub(super) fn serialize_cells<T, S: Serializer>(
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

pub(super) fn deserialize_cells<'de, T: Pod, D: Deserializer<'de>>(
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
pub(super) fn deserialize_locked_cells<'de, T: Pod, D: Deserializer<'de>>(
    d: D,
) -> Result<(Cells<T>, RLock), D::Error> {
    let cells = deserialize_cells::<T, D>(d, true)?;
    let lock =
        RLock::from_state(Shared::at(cells.segment.clone(), 0).map_err(serde::de::Error::custom)?);
    Ok((cells, lock))
}

/// `Serialize` and `Deserialize` for a value or array kind, `$name<T>`: a handle travels as
/// its cells (field `cells`); a `locked` kind (`true`) also has the `RLock` at the start of
/// their segment (field `lock`).
macro_rules! cells_serde {
    ($name:ident, locked: $locked:tt) => {
        impl<T> serde::Serialize for $name<T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                super::cells::serialize_cells(&self.cells, $locked, s)
            }
        }

        impl<'de, T: bytemuck::Pod> serde::Deserialize<'de> for $name<T> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                cells_serde!(@receive $name, $locked, d)
            }
        }
    };
    (@receive $name:ident, true, $d:ident) => {{
        let (cells, lock) = super::cells::deserialize_locked_cells::<T, D>($d)?;
        Ok($name { cells, lock })
    }};
    (@receive $name:ident, false, $d:ident) => {
        Ok($name {
            cells: super::cells::deserialize_cells::<T, D>($d, false)?,
        })
    };
}
pub(super) use cells_serde;

/// `Debug` of a locked kind (`name`): what a read under its lock gave, or why it failed.
pub(super) fn debug_locked<V: fmt::Debug>(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    read: Result<V, SyncError>,
) -> fmt::Result {
    match read {
        Ok(v) => f.debug_tuple(name).field(&v).finish(),
        Err(e) => f.debug_tuple(name).field(&e).finish(),
    }
}

/// Hold `lock` (also after its previous holder died: the guard says so and the library logs
/// the event); any other failure is an error, never a guard or an unlocked access.
pub(super) fn hold(lock: &RLock) -> Result<RLockGuard<'_>, SyncError> {
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
pub(super) use atomic_methods;

/// Make the mutex of a value's or an array's cells refuse every acquire, as a faulty peer
/// writing over the lock word could: glibc answers `EINVAL` for a mutex of unknown kind.
#[cfg(test)]
pub(super) fn corrupt_lock<T>(cells: &Cells<T>) {
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
}
