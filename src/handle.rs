//! How values, and the OS handles inside them, travel between processes.
//!
//! A value crosses a process boundary as a *message*: its serde encoding (postcard, a compact
//! binary format) plus the file descriptors it contains. Descriptors cannot be serialized as
//! bytes, so types that own one ([`Connection`](crate::Connection), [`Handle`], and the locks,
//! queues and shared memory built on them) serialize through a side channel: while
//! `encode` runs, each descriptor is duplicated into a per-thread list and the encoding stores
//! only its index; `decode` installs the received descriptors and the same types take theirs
//! back by index. The list travels as `SCM_RIGHTS` ancillary data on the same `sendmsg` as the
//! bytes, or is simply inherited when the child is forked.
//!
//! This is the single mechanism for every handle-carrying type, whatever the start method:
//! arguments of a started process, values sent over a `Connection`, and return values of a
//! child. Encoding outside that mechanism (say, `serde_json::to_string(&connection)`) fails
//! with a clear error instead of producing a number that means nothing elsewhere.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// Descriptors collected while encoding on this thread (`None` outside `encode`).
    static OUTGOING: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    /// Descriptors available while decoding on this thread (`None` outside `decode`).
    static INCOMING: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// This thread's encode buffer between uses (see [`take_scratch`]).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Scratch buffers larger than this are not kept for the next encoding.
const KEEP_SCRATCH: usize = 4 << 20;

/// This thread's reusable encode buffer, empty: a queue's put, a log record, a pool chunk's
/// packed numbers are encoded into it and copied out, and a fresh buffer for each would
/// cost an allocation and a page fault per 4 KiB. Re-entrant: a nested user (a `Serialize`
/// that logs, say) gets a new, empty buffer. Give it back with [`keep_scratch`].
pub(crate) fn take_scratch() -> Vec<u8> {
    let mut buf = SCRATCH.take();
    buf.clear();
    buf
}

/// Give back a buffer from [`take_scratch`] for the next encoding on this thread (a large
/// one is freed instead).
pub(crate) fn keep_scratch(buf: Vec<u8>) {
    if buf.capacity() <= KEEP_SCRATCH {
        SCRATCH.set(buf);
    }
}

/// Why a value could not be turned into a message or back.
///
/// ```
/// use multiproc::{CodecError, ConnectionError};
/// let (mut a, mut b) = multiproc::pipe()?;
/// a.send(&2u8)?; // a byte that is neither `false` (0) nor `true` (1)
/// match b.recv::<bool>() {
///     Err(ConnectionError::Codec(CodecError::Decode { type_name, .. })) => assert_eq!(type_name, "bool"),
///     other => panic!("expected a decode error, got {other:?}"),
/// }
/// # Ok::<(), ConnectionError>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Serializing failed (a `Serialize` impl reported an error, or a handle could not be
    /// duplicated).
    #[error("could not encode a value of type {type_name}: {reason}")]
    Encode {
        /// The Rust type being encoded.
        type_name: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The bytes (or the descriptors that came with them) do not form a value of the type.
    #[error("could not decode a value of type {type_name}: {reason}")]
    Decode {
        /// The Rust type asked for.
        type_name: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Serialize `value` by appending its bytes to `out`; returns the descriptors it contains.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, CodecError> {
    let start = out.len();
    let (result, fds) = encode_with(value, Append(out));
    if result.is_err() {
        out.truncate(start);
    }
    result.map(|()| fds)
}

/// Append `bytes` to `out`, as postcard's outputs into a `Vec` do.
#[inline]
pub(crate) fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    // A varint or a short string: a copy loop the compiler keeps inline (a call to `memcpy`
    // per value would cost more than the value's encoding).
    if bytes.len() < 32 {
        out.extend(bytes.iter().copied());
    } else {
        out.extend_from_slice(bytes);
    }
}

/// postcard's output into a `Vec<u8>` ([`append`]): one `memcpy` for a long byte string, where postcard's
/// own `ExtendFlavor` goes through `Extend`, byte by byte.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        append(self.0, bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Serialize `value` into any postcard output (`flavor`); returns what the output resolves
/// to, and the descriptors the value contains (also when encoding failed part-way, so that
/// the caller closes them).
pub(crate) fn encode_with<T, F>(
    value: &T,
    flavor: F,
) -> (Result<F::Output, CodecError>, Vec<OwnedFd>)
where
    T: Serialize + ?Sized,
    F: postcard::ser_flavors::Flavor,
{
    let previous = OUTGOING.with(|o| o.borrow_mut().replace(Vec::new()));
    let result = postcard::serialize_with_flavor(value, flavor);
    let fds = OUTGOING.with(|o| std::mem::replace(&mut *o.borrow_mut(), previous));
    let result = result.map_err(|e| CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    });
    (result, fds.unwrap_or_default())
}

/// Deserialize a `T` from `bytes`, giving it `fds` (in the order `encode` returned them).
pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, CodecError> {
    /// Puts back the outer list even if a `Deserialize` panics.
    struct Restore(Option<Vec<Option<OwnedFd>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            INCOMING.with(|i| *i.borrow_mut() = previous);
        }
    }
    let slots = fds.into_iter().map(Some).collect();
    let _restore = Restore(INCOMING.with(|i| i.borrow_mut().replace(slots)));
    let result = postcard::from_bytes::<T>(bytes);
    result.map_err(|e| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        reason: e.to_string(),
    })
}

/// Serialize a descriptor: duplicate it into the outgoing list and write its index.
///
/// The building block of every `Serialize` impl in this crate for a type that owns a
/// descriptor.
pub(crate) fn serialize_fd<S: Serializer>(
    fd: BorrowedFd<'_>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let index = OUTGOING.with(|o| -> Result<u32, String> {
        let mut slot = o.borrow_mut();
        let list = slot.as_mut().ok_or_else(|| {
            "OS handles (Connection, Handle, ...) can only be serialized by multiproc itself: pass \
             them as process arguments or send them over a Connection"
                .to_string()
        })?;
        let dup = fd
            .try_clone_to_owned()
            .map_err(|e| format!("could not duplicate file descriptor: {e}"))?;
        list.push(dup);
        Ok((list.len() - 1) as u32)
    });
    match index {
        Ok(i) => serializer.serialize_u32(i),
        Err(msg) => Err(S::Error::custom(msg)),
    }
}

/// Deserialize a descriptor written by [`serialize_fd`].
pub(crate) fn deserialize_fd<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<OwnedFd, D::Error> {
    let index = u32::deserialize(deserializer)? as usize;
    INCOMING.with(|i| {
        let mut slot = i.borrow_mut();
        let list = slot.as_mut().ok_or_else(|| {
            D::Error::custom("OS handles can only be deserialized by multiproc itself")
        })?;
        list.get_mut(index).and_then(Option::take).ok_or_else(|| {
            D::Error::custom(format!(
                "message refers to OS handle #{index}, which did not arrive with it"
            ))
        })
    })
}

/// An owned OS handle (a `File`, `TcpStream`, `UnixStream`, `OwnedFd`, ...) that can be passed
/// to another process: as an argument of a started process, inside a message on a
/// [`Connection`](crate::Connection), or as a child's return value.
///
/// The receiving process gets its own descriptor for the same open file description (like
/// `dup`), so a socket accepted in one process can be served by another.
///
/// ```
/// use multiproc::{Handle, Process};
/// use std::io::{Read, Seek, Write};
///
/// fn append(mut file: Handle<std::fs::File>) -> u64 {
///     file.write_all(b" world").unwrap();
///     file.stream_position().unwrap()
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut file = tempfile_in_tmp()?;
/// file.write_all(b"hello")?;
/// let child = Process::start(append, Handle::new(file.try_clone()?))?;
/// assert_eq!(child.join()?, 11);
/// file.rewind()?;
/// let mut text = String::new();
/// file.read_to_string(&mut text)?;
/// assert_eq!(text, "hello world");
/// # Ok(())
/// # }
/// # fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
/// #     let path = std::env::temp_dir().join(format!("multiproc-doc-{}", std::process::id()));
/// #     let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
/// #     std::fs::remove_file(&path)?;
/// #     Ok(f)
/// # }
/// ```
pub struct Handle<T> {
    inner: T,
}

impl<T> Handle<T>
where
    T: AsFd + From<OwnedFd>,
{
    /// Wrap a handle so it can travel to another process.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use multiproc::Handle;
    /// let (mine, theirs) = UnixStream::pair()?;
    /// let (mut tx, mut rx) = multiproc::pipe()?;
    /// tx.send(&Handle::new(theirs))?; // the descriptor travels beside the bytes
    /// let mut received: Handle<UnixStream> = rx.recv()?;
    /// received.write_all(b"hi")?; // a Handle derefs to the handle inside
    /// let mut buf = [0; 2];
    /// (&mine).read_exact(&mut buf)?;
    /// assert_eq!(&buf, b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(inner: T) -> Self {
        Handle { inner }
    }

    /// The wrapped handle.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// let (a, mut b) = UnixStream::pair()?;
    /// let handle = multiproc::Handle::new(a);
    /// let mut a: UnixStream = handle.into_inner(); // the plain stream again
    /// a.write_all(b"ok")?;
    /// drop(a);
    /// let mut text = String::new();
    /// b.read_to_string(&mut text)?;
    /// assert_eq!(text, "ok");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for Handle<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for Handle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Handle").field(&self.inner).finish()
    }
}

impl<T: AsFd> Serialize for Handle<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.inner.as_fd(), serializer)
    }
}

impl<'de, T: From<OwnedFd>> Deserialize<'de> for Handle<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let fd = deserialize_fd(deserializer)?;
        Ok(Handle { inner: T::from(fd) })
    }
}

/// A borrowed descriptor that serializes through the side channel (for use in wire structs).
pub(crate) struct FdRef<'a>(pub BorrowedFd<'a>);

impl Serialize for FdRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0, serializer)
    }
}

/// An owned descriptor that deserializes through the side channel (for use in wire structs).
pub(crate) struct FdOwned(pub OwnedFd);

impl<'de> Deserialize<'de> for FdOwned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_fd(deserializer).map(FdOwned)
    }
}
