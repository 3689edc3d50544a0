//! Integer element types that support lock-free atomic operations in shared memory.

use std::sync::atomic::{self, Ordering};

use bytemuck::Pod;

/// An integer type with a same-sized atomic counterpart (`u32` ↔ `AtomicU32`, ...), so a
/// shared [`Value`](crate::Value) or [`RawArray`](crate::RawArray) of it can be updated
/// without a lock. Implemented for all fixed-size integers and `usize`/`isize`.
///
/// ```
/// fn bump<T: multiproc::AtomicInt>(v: &multiproc::RawValue<T>, by: T) -> T { v.fetch_add(by) }
/// let v = multiproc::RawValue::new(1u16)?;
/// assert_eq!(bump(&v, 2), 1);
/// # Ok::<(), multiproc::SyncError>(())
/// ```
pub trait AtomicInt: Pod + sealed::Sealed {
    /// The atomic type with the same layout.
    #[doc(hidden)]
    type Atomic;
    #[doc(hidden)]
    fn fetch_add(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn fetch_sub(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self) -> Self;
    #[doc(hidden)]
    fn compare_exchange(a: &Self::Atomic, current: Self, new: Self) -> Result<Self, Self>;
    #[doc(hidden)]
    fn load(a: &Self::Atomic) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self);
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! atomic_int {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        const _: () = assert!(std::mem::size_of::<$t>() == std::mem::size_of::<$a>()
            && std::mem::align_of::<$t>() == std::mem::align_of::<$a>());
        impl sealed::Sealed for $t {}
        impl AtomicInt for $t {
            type Atomic = $a;
            fn fetch_add(a: &$a, v: $t) -> $t { a.fetch_add(v, Ordering::SeqCst) }
            fn fetch_sub(a: &$a, v: $t) -> $t { a.fetch_sub(v, Ordering::SeqCst) }
            fn swap(a: &$a, v: $t) -> $t { a.swap(v, Ordering::SeqCst) }
            fn compare_exchange(a: &$a, c: $t, n: $t) -> Result<$t, $t> {
                a.compare_exchange(c, n, Ordering::SeqCst, Ordering::SeqCst)
            }
            fn load(a: &$a) -> $t { a.load(Ordering::SeqCst) }
            fn store(a: &$a, v: $t) { a.store(v, Ordering::SeqCst) }
        }
    )*};
}

atomic_int! {
    u8 => atomic::AtomicU8, i8 => atomic::AtomicI8, u16 => atomic::AtomicU16,
    i16 => atomic::AtomicI16, u32 => atomic::AtomicU32, i32 => atomic::AtomicI32,
    u64 => atomic::AtomicU64, i64 => atomic::AtomicI64, usize => atomic::AtomicUsize,
    isize => atomic::AtomicIsize,
}
