//! Named shared memory (Python's `multiprocessing.shared_memory.SharedMemory`).

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tracker;
use crate::segment::Segment;
use crate::sys::{self, memory};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A block of memory with a name in `/dev/shm`, which other processes (Rust or Python) can
/// attach to by that name.
///
/// Unlike Python, nothing leaks: a segment created here is unlinked by the resource tracker
/// once its creator is gone (exit or crash) unless it was [`unlink`](Self::unlink)ed before.
/// Other processes that still have it mapped keep their mapping. For memory that needs no
/// name, prefer [`RawArray`](crate::RawArray) and friends, which cannot leak at all.
///
/// Reading and writing go through [`read_at`](Self::read_at) / [`write_at`](Self::write_at)
/// (bounds-checked copies), or the unsafe slice views when the caller can rule out
/// concurrent writers.
///
/// ```
/// use multiproc::{Process, SharedMemory};
///
/// fn writer(name: String) {
///     let shm = SharedMemory::attach(&name).unwrap();
///     shm.write_at(0, b"hello").unwrap();
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let shm = SharedMemory::create(4096)?;
/// Process::start(writer, shm.name().to_string())?.join()?;
/// let mut buf = [0u8; 5];
/// shm.read_at(0, &mut buf)?;
/// assert_eq!(&buf, b"hello");
/// shm.unlink()?;
/// # Ok(())
/// # }
/// ```
pub struct SharedMemory {
    name: String,
    segment: Segment,
    size: usize,
}

impl SharedMemory {
    /// Create a segment of `size` bytes with a fresh unique name (`multiproc-<pid>-<n>`).
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(100)?;
    /// assert!(shm.name().starts_with("multiproc-"));
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create(size: usize) -> io::Result<SharedMemory> {
        loop {
            let name = format!(
                "multiproc-{}-{}-{:x}",
                sys::getpid(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos())
            );
            match SharedMemory::create_named(&name, size) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                other => return other,
            }
        }
    }

    /// Create a segment named `name` (an error of kind `AlreadyExists` if it exists).
    ///
    /// ```
    /// let name = format!("multiproc-doc-{}", std::process::id());
    /// let shm = multiproc::SharedMemory::create_named(&name, 10)?;
    /// assert_eq!(shm.name(), name);
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_named(name: &str, size: usize) -> io::Result<SharedMemory> {
        if size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "shared memory size must be positive",
            ));
        }
        let file = memory::shm_create(name, size)?;
        tracker::register(name);
        let segment = match Segment::map(file) {
            Ok(s) => s,
            Err(e) => {
                let _ = memory::shm_unlink(name);
                tracker::unregister(name);
                return Err(e);
            }
        };
        Ok(SharedMemory {
            name: name.trim_start_matches('/').to_string(),
            segment,
            size,
        })
    }

    /// Attach to an existing segment (an error of kind `NotFound` if there is none).
    ///
    /// ```
    /// let a = multiproc::SharedMemory::create(16)?;
    /// let b = multiproc::SharedMemory::attach(a.name())?;
    /// a.write_at(3, &[42])?;
    /// let mut x = [0u8];
    /// b.read_at(3, &mut x)?;
    /// assert_eq!(x, [42]);
    /// a.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn attach(name: &str) -> io::Result<SharedMemory> {
        let (file, size) = memory::shm_open(name)?;
        Ok(SharedMemory {
            name: name.trim_start_matches('/').to_string(),
            segment: Segment::map(file)?,
            size,
        })
    }

    /// The segment's name (without a leading `/`).
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(1)?;
    /// assert!(!shm.name().starts_with('/'));
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its size in bytes.
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(123)?;
    /// assert_eq!(shm.size(), 123);
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// Copy `data` into the segment at `offset`.
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(4)?;
    /// assert!(shm.write_at(2, &[1, 2, 3]).is_err()); // past the end
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_at(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        // SAFETY: the range is inside the mapping (checked); the copy is a plain memcpy into
        // shared memory, whose concurrent use is the caller's protocol (like Python's buf).
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.segment.as_ptr().add(offset),
                data.len(),
            )
        };
        Ok(())
    }

    /// Copy `buf.len()` bytes at `offset` out of the segment.
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(4)?;
    /// let mut b = [9u8; 4];
    /// shm.read_at(0, &mut b)?;
    /// assert_eq!(b, [0; 4]);
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        // SAFETY: the range is inside the mapping (checked).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.segment.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        Ok(())
    }

    /// [`read_at`](Self::read_at) with relaxed atomic byte loads, for structures that other
    /// processes may write at any moment (`ShareableList`): a plain copy racing with a write
    /// would be a data race, an atomic one only reads old or new bytes.
    pub(crate) fn load_at(&self, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        self.check(offset, buf.len())?;
        for (k, byte) in buf.iter_mut().enumerate() {
            // SAFETY: byte `offset + k` is inside the mapping (checked), which lives as long as
            // `self`; `AtomicU8` has alignment 1, and an atomic may alias concurrent writes.
            let cell = unsafe { AtomicU8::from_ptr(self.segment.as_ptr().add(offset + k)) };
            *byte = cell.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// [`write_at`](Self::write_at) with relaxed atomic byte stores (see
    /// [`load_at`](Self::load_at)).
    pub(crate) fn store_at(&self, offset: usize, data: &[u8]) -> io::Result<()> {
        self.check(offset, data.len())?;
        for (k, &byte) in data.iter().enumerate() {
            // SAFETY: as in `load_at`.
            let cell = unsafe { AtomicU8::from_ptr(self.segment.as_ptr().add(offset + k)) };
            cell.store(byte, Ordering::Relaxed);
        }
        Ok(())
    }

    fn check(&self, offset: usize, len: usize) -> io::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range {offset}+{len} is outside a shared memory block of {} bytes",
                    self.size
                ),
            ));
        }
        Ok(())
    }

    /// A pointer to the first byte (for FFI, or `ndarray`-style views).
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(8)?;
    /// assert!(!shm.as_ptr().is_null());
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.segment.as_ptr()
    }

    /// The bytes as a slice.
    ///
    /// # Safety
    /// No process may write the segment while the slice lives.
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(2)?;
    /// // SAFETY: nobody writes meanwhile.
    /// assert_eq!(unsafe { shm.as_slice() }, &[0, 0]);
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: within the mapping; exclusion from writers is the caller's.
        unsafe { std::slice::from_raw_parts(self.segment.as_ptr(), self.size) }
    }

    /// The bytes as a mutable slice.
    ///
    /// # Safety
    /// No other process or thread may access the segment while the slice lives.
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(2)?;
    /// // SAFETY: only this thread uses it.
    /// unsafe { shm.as_mut_slice() }.fill(1);
    /// shm.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: within the mapping; exclusivity is the caller's.
        unsafe { std::slice::from_raw_parts_mut(self.segment.as_ptr(), self.size) }
    }

    /// Unmap it from this process (dropping it does the same; Python's `close`).
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(1)?;
    /// let name = shm.name().to_string();
    /// shm.close();
    /// multiproc::SharedMemory::attach(&name)?.unlink()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(self) {}

    /// Remove the name from `/dev/shm` (mappings stay valid; Python's `unlink`).
    ///
    /// ```
    /// let shm = multiproc::SharedMemory::create(1)?;
    /// shm.unlink()?;
    /// assert!(multiproc::SharedMemory::attach(shm.name()).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unlink(&self) -> io::Result<()> {
        unlink_name(&self.name)
    }
}

/// Remove `name` from `/dev/shm` and tell the resource tracker (for owners that keep names,
/// not mappings: `SharedMemoryManager`).
pub(crate) fn unlink_name(name: &str) -> io::Result<()> {
    let result = memory::shm_unlink(name);
    tracker::unregister(name);
    result
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish()
    }
}

#[derive(Serialize)]
struct WireOut<'a> {
    name: &'a str,
    segment: &'a Segment,
    size: u64,
}

#[derive(Deserialize)]
struct WireIn {
    name: String,
    segment: Segment,
    size: u64,
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireOut {
            name: &self.name,
            segment: &self.segment,
            size: self.size as u64,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireIn::deserialize(d)?;
        if w.size as usize > w.segment.len() {
            return Err(serde::de::Error::custom(
                "shared memory segment smaller than announced",
            ));
        }
        Ok(SharedMemory {
            name: w.name,
            segment: w.segment,
            size: w.size as usize,
        })
    }
}
