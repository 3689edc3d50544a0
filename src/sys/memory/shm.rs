//! POSIX named shared memory (`shm_open`, `shm_unlink`).

use std::ffi::CString;
use std::fs::File;
use std::io;

use rustix::fs::Mode;

pub(super) fn shm_path(name: &str) -> io::Result<CString> {
    let name = name.strip_prefix('/').unwrap_or(name);
    if name.is_empty() || name.contains('/') || name.len() > 250 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid shared memory name {name:?} (1-250 characters, no '/')"),
        ));
    }
    CString::new(format!("/{name}")).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "shared memory name contains a NUL byte",
        )
    })
}

/// Create a new named shared memory object (`shm_open(O_CREAT | O_EXCL)`) of `len` bytes.
pub fn shm_create(name: &str, len: usize) -> io::Result<File> {
    let path = shm_path(name)?;
    let fd = rustix::shm::open(
        path.as_c_str(),
        rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )?;
    if let Err(e) = rustix::fs::ftruncate(&fd, len as u64) {
        let _ = rustix::shm::unlink(path.as_c_str());
        return Err(e.into());
    }
    Ok(File::from(fd))
}

/// Open an existing named shared memory object; returns it and its size.
pub fn shm_open(name: &str) -> io::Result<(File, usize)> {
    let path = shm_path(name)?;
    let fd = rustix::shm::open(path.as_c_str(), rustix::shm::OFlags::RDWR, Mode::empty())?;
    let size = rustix::fs::fstat(&fd)?.st_size as usize;
    Ok((File::from(fd), size))
}

/// Remove a named shared memory object (existing mappings stay valid).
pub fn shm_unlink(name: &str) -> io::Result<()> {
    let path = shm_path(name)?;
    Ok(rustix::shm::unlink(path.as_c_str())?)
}
