//! [`Mapping`] and [`memfd`]: anonymous shared memory segments, and giving their pages back.

use std::fs::File;
use std::io;

use rustix::fs::MemfdFlags;

/// A `MAP_SHARED` read-write mapping of a whole file (memmap2 does the mapping and unmaps on
/// drop).
pub struct Mapping(memmap2::MmapRaw);

impl Mapping {
    /// Map all of `file`.
    pub fn new(file: &File) -> io::Result<Mapping> {
        Ok(Mapping(memmap2::MmapRaw::map_raw(file)?))
    }

    /// The first byte of the mapping.
    pub fn as_mut_ptr(&self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// An anonymous, zero-filled shared memory file of `len` bytes (`memfd_create`). It has no
/// name anywhere, so it cannot outlive the last descriptor or mapping of it. Its size is
/// sealed (`F_SEAL_SHRINK | F_SEAL_GROW`): no process that receives the descriptor can
/// truncate it under the others' mappings (which would turn their next access into SIGBUS).
pub fn memfd(len: usize) -> io::Result<File> {
    let fd =
        rustix::fs::memfd_create("multiproc", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    rustix::fs::fcntl_add_seals(
        &fd,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL,
    )?;
    Ok(File::from(fd))
}

/// Give the pages of `len` bytes at `offset` of a shared memory file back to the kernel
/// (`fallocate(PUNCH_HOLE)`); they read as zeros afterwards and occupy no memory until
/// written again. The file keeps its size.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    Ok(rustix::fs::fallocate(
        file,
        FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    )?)
}
