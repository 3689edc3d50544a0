//! Anonymous shared memory segments: the storage of every lock, event, value and array.
//!
//! A segment is a `memfd` (an unnamed in-memory file) mapped `MAP_SHARED`. It has no name
//! in any filesystem, so it cannot leak: the kernel frees it when the last descriptor and the
//! last mapping are gone, crash or no crash. It travels to other processes as a handle (its
//! descriptor), and every process maps it anew.

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::AsFd;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::{FdOwned, FdRef};
use crate::sys::memory;

/// A mapped shared memory file.
pub(crate) struct Segment {
    file: File,
    map: memory::Mapping,
}

impl Segment {
    /// A new zero-filled anonymous segment of at least `len` bytes.
    pub(crate) fn anonymous(len: usize) -> io::Result<Segment> {
        Segment::map(memory::memfd(len.max(1))?)
    }

    /// Map an existing shared memory file.
    pub(crate) fn map(file: File) -> io::Result<Segment> {
        let map = memory::Mapping::new(&file)?;
        Ok(Segment { file, map })
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The shared memory file behind the mapping.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Serialize for Segment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        FdRef(self.file.as_fd()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Segment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let FdOwned(fd) = FdOwned::deserialize(deserializer)?;
        Segment::map(File::from(fd)).map_err(serde::de::Error::custom)
    }
}

/// Types that may live in a segment and be used from several processes at once.
///
/// # Safety
/// Every bit pattern of the right size must be a valid value once `init` ran on zeroed
/// memory, and all mutation must go through atomics or process-shared primitives (the type
/// is shared by reference between processes).
pub(crate) unsafe trait SharedState: Sync + 'static {
    /// Which kind of object this is, distinct for every implementation: a handle carries it,
    /// so a segment sent as one kind (a lock) is refused when received as another (a barrier,
    /// whose fields would overlap the mutex's robust-list pointers).
    const KIND: u32;

    /// Set up a zero-filled value in place. The default does nothing, for the types whose
    /// zeroed memory is already a valid value (only atomics).
    ///
    /// # Safety
    /// `this` points to zeroed, writable memory of `size_of::<Self>()` bytes, suitably
    /// aligned, used by no one else yet.
    unsafe fn init(_this: *mut Self) -> io::Result<()> {
        Ok(())
    }
}

/// A `T` living at `offset` in a shared segment.
pub(crate) struct Shared<T> {
    segment: Arc<Segment>,
    offset: usize,
    _state: PhantomData<T>,
}

impl<T: SharedState> Shared<T> {
    /// A fresh `T` in its own segment, `extra` more bytes following it.
    pub(crate) fn new(extra: usize) -> io::Result<Shared<T>> {
        let segment = Arc::new(Segment::anonymous(std::mem::size_of::<T>() + extra)?);
        // SAFETY: the segment is new, zero-filled, page-aligned (so aligned for T) and at
        // least size_of::<T>() bytes long.
        unsafe { T::init(segment.as_ptr().cast::<T>())? };
        Ok(Shared {
            segment,
            offset: 0,
            _state: PhantomData,
        })
    }

    /// A `T` already initialised at `offset` of `segment`.
    pub(crate) fn at(segment: Arc<Segment>, offset: usize) -> io::Result<Shared<T>> {
        let fits = offset.is_multiple_of(std::mem::align_of::<T>())
            && offset
                .checked_add(std::mem::size_of::<T>())
                .is_some_and(|end| end <= segment.len());
        if !fits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "shared segment is too small for the object it should hold",
            ));
        }
        Ok(Shared {
            segment,
            offset,
            _state: PhantomData,
        })
    }
}

impl<T> Shared<T> {
    /// The segment this value lives in (for structures with a payload after the header).
    pub(crate) fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Whether dropping this handle unmaps the segment (no other handle in this process
    /// shares its mapping).
    pub(crate) fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.segment) == 1
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            segment: self.segment.clone(),
            offset: self.offset,
            _state: PhantomData,
        }
    }
}

impl<T: SharedState> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `new`/`at` checked size and alignment; the mapping lives as long as the Arc;
        // `SharedState` guarantees any bytes there are a valid T used only through shared
        // references.
        unsafe { &*self.segment.as_ptr().add(self.offset).cast::<T>() }
    }
}

impl<T: SharedState> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&*self.segment, self.offset as u64, T::KIND).serialize(serializer)
    }
}

impl<'de, T: SharedState> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (segment, offset, kind) = <(Segment, u64, u32)>::deserialize(deserializer)?;
        if kind != T::KIND {
            return Err(serde::de::Error::custom(format!(
                "a shared object of kind {kind} was received as kind {} (a handle sent as one \
                 type must be received as the same type)",
                T::KIND
            )));
        }
        Shared::at(Arc::new(segment), offset as usize).map_err(serde::de::Error::custom)
    }
}
