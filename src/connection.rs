//! `Pipe` and `Connection`: framed, typed messages between two processes.
//!
//! # Wire format
//! Every message is one frame in the format of Python's `multiprocessing.connection`: a 4-byte
//! big-endian signed length, or for bodies over 2 GiB the length `-1` followed by an 8-byte
//! big-endian length, then the body. `send_bytes` bodies are the bytes themselves; `send`
//! bodies are one byte giving the number of OS handles in the message followed by the
//! postcard encoding of the value (see [`crate::handle`]). Handles travel as `SCM_RIGHTS` with
//! the frame's first byte, so a reader collects them in arrival order and each typed message
//! takes exactly the count its first byte announces.
//!
//! # Reading
//! Reads go through a buffer (4 KiB, growing to 64 KiB under a stream of messages), so a burst
//! of small messages costs one `recvmsg`, and a message that fits in it is decoded in place
//! without a copy. A receive that finds nothing polls for up to 50 µs (yielding the CPU)
//! before it sleeps, when the machine has more than one CPU: replies in a request/response
//! exchange usually come within that window, and staying awake avoids the costly wake-up of
//! an idle CPU. A larger body is read straight
//! into its own vector, which grows with the data that actually arrives: a header that
//! announces 10 GiB costs nothing until the limit check rejects it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::handle::{self, CodecError, FdOwned, FdRef};
use crate::sys;

/// Default largest message body a [`Connection`] accepts: 1 GiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 30;

const READ_CHUNK: usize = 64 * 1024;
const INITIAL_READ: usize = 4 * 1024;

/// Large bodies grow their buffer by at most this much per step, so memory follows the data.
const GROW_STEP: usize = 16 << 20;

/// What can go wrong on a [`Connection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The other end closed the connection (Python's `EOFError`).
    #[error("end of file: the other end of the connection is closed")]
    Eof,
    /// The other end closed the connection while we were sending (Python's `BrokenPipeError`).
    #[error("broken pipe: the other end of the connection is closed")]
    PeerClosed,
    /// The connection ended in the middle of a message.
    #[error("connection closed in the middle of a message ({got} of {expected} bytes received)")]
    Truncated {
        /// Bytes expected of the part being read (the header, or the body).
        expected: u64,
        /// Bytes of that part that arrived.
        got: u64,
    },
    /// A frame announced a body larger than this connection accepts. The connection cannot be
    /// used afterwards: the rest of the stream is unread.
    #[error(
        "incoming message of {len} bytes exceeds this connection's limit of {limit} bytes \
         (raise it with Connection::set_max_message_size)"
    )]
    TooLarge {
        /// Announced body length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The bytes received do not follow the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The value could not be encoded or the message could not be decoded as the asked type.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// `recv_bytes_into` was given a buffer smaller than the message; the message is returned
    /// whole (Python's `BufferTooShort`).
    #[error("buffer too short: the message has {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// This end of a one-way pipe cannot do that.
    #[error("this end of the connection is {0}")]
    WrongDirection(&'static str),
    /// The authentication handshake of [`Listener`](crate::listener::Listener) /
    /// [`Client`](crate::listener::Client) failed: a wrong key on either side, a peer that
    /// does not speak the protocol, or one that stalled (Python's `AuthenticationError`).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// An earlier protocol error left the stream in an unknown position.
    #[error("the connection is unusable after an earlier protocol error")]
    Broken,
    /// The peer sent OS handles on a connection that does not accept them (see
    /// [`Connection::accept_handles`]); they were closed, and the message dropped.
    #[error(
        "the peer sent {count} OS handle(s) on a connection that does not accept them \
         (a connection that may reach another program); see Connection::accept_handles"
    )]
    HandlesRefused {
        /// How many handles came with the message.
        count: usize,
    },
    /// An operating-system error.
    #[error("I/O error on connection: {0}")]
    Io(#[from] io::Error),
}

/// Shorthand for results of connection operations.
pub type Result<T, E = ConnectionError> = std::result::Result<T, E>;

/// One end of a pipe between two processes (Python's `multiprocessing.connection.Connection`).
///
/// Send any serde value with [`send`](Self::send) and read it with [`recv`](Self::recv), or
/// move raw bytes with [`send_bytes`](Self::send_bytes) / [`recv_bytes`](Self::recv_bytes).
/// A `Connection` is itself a handle: pass it as a process argument, or send it over another
/// connection, and the receiver gets a working end of the same pipe.
///
/// Each end is for one thread at a time (methods take `&mut self`); wrap it in a `Mutex` to
/// share it. Dropping it closes the end: the peer then gets [`ConnectionError::Eof`].
///
/// ```
/// use multiproc::{pipe, Connection, Process};
///
/// fn worker(mut conn: Connection) {
///     let v: Vec<i32> = conn.recv().unwrap();
///     conn.send(&v.iter().sum::<i32>()).unwrap();
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (mut here, there) = pipe()?;
/// let child = Process::start(worker, there)?;
/// here.send(&vec![1, 2, 3])?;
/// assert_eq!(here.recv::<i32>()?, 6);
/// child.join()?;
/// # Ok(())
/// # }
/// ```
pub struct Connection {
    fd: OwnedFd,
    readable: bool,
    writable: bool,
    max_message: u64,
    broken: bool,
    /// Received, not yet consumed bytes are `rbuf[rpos..rend]`; `rbuf` is allocated (and
    /// zeroed) once, growing from 4 KiB to 64 KiB only while reads keep filling it.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Descriptors received and not yet claimed by a message, in arrival order.
    fds: VecDeque<OwnedFd>,
    /// For each read that delivered descriptors: the stream range it covered and how many
    /// came. The kernel attaches a message's descriptors to its first byte and ends the read
    /// with that message's first segment, so they belong to the frame that starts in this
    /// range and reaches at least its end (see `claim_fds`).
    fd_reads: VecDeque<(u64, u64, usize)>,
    /// Stream offset of `rbuf[rpos]` (bytes consumed so far).
    pos: u64,
    /// How many descriptors at the front of `fds` belong to the frame being read.
    frame_fds: usize,
    /// Reused encoding buffer for `send`.
    scratch: Vec<u8>,
    /// Whether OS handles that arrive are taken (see [`Connection::accept_handles`]).
    accepts_handles: bool,
}

/// A duplex pipe: two connected [`Connection`]s that can both send and receive
/// (Python's `Pipe()`).
///
/// ```
/// let (mut a, mut b) = multiproc::pipe()?;
/// a.send(&"ping")?;
/// assert_eq!(b.recv::<String>()?, "ping");
/// b.send_bytes(b"pong")?;
/// assert_eq!(a.recv_bytes()?, b"pong");
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub fn pipe() -> Result<(Connection, Connection)> {
    let (a, b) = sys::socketpair()?;
    Ok((
        Connection::from_fd(a, true, true),
        Connection::from_fd(b, true, true),
    ))
}

/// A one-way pipe: `(reader, writer)` (Python's `Pipe(duplex=False)`).
///
/// ```
/// let (mut rx, mut tx) = multiproc::pipe_oneway()?;
/// tx.send(&42u8)?;
/// assert_eq!(rx.recv::<u8>()?, 42);
/// assert!(rx.send(&1u8).is_err()); // the reader cannot send
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub fn pipe_oneway() -> Result<(Connection, Connection)> {
    let (r, w) = sys::socketpair()?;
    sys::shutdown(r.as_fd(), false)?;
    sys::shutdown(w.as_fd(), true)?;
    Ok((
        Connection::from_fd(r, true, false),
        Connection::from_fd(w, false, true),
    ))
}

impl Connection {
    /// Wrap a connected `AF_UNIX` stream socket (e.g. one half of
    /// `std::os::unix::net::UnixStream::pair()`).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// let (a, b) = UnixStream::pair()?;
    /// let (mut a, mut b) = (multiproc::Connection::new(a.into()), multiproc::Connection::new(b.into()));
    /// a.send(&1.5f64)?;
    /// assert_eq!(b.recv::<f64>()?, 1.5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The peer of such a socket may be any program, so OS handles it sends are refused
    /// ([`ConnectionError::HandlesRefused`]) unless [`accept_handles`](Connection::accept_handles)
    /// says otherwise; connections made by [`pipe`] and passed between the processes of this
    /// program accept them.
    pub fn new(fd: OwnedFd) -> Connection {
        let mut conn = Connection::from_fd(fd, true, true);
        conn.accepts_handles = false;
        conn
    }

    /// Accept OS handles (locks, queues, shared memory, connections, files) sent by the peer.
    ///
    /// A received lock, queue or shared value is mapped and used as live synchronization
    /// state, whose layout this program trusts: memory written by a process that does not
    /// follow this library's protocols (another program, or a hostile peer that knows the
    /// address) could break the invariants the shared-memory code relies on. So connections
    /// that may reach another program ([`Connection::new`], [`listener`](crate::listener)
    /// connections) refuse handles by default, closing them and failing that receive with
    /// [`ConnectionError::HandlesRefused`]; connections between the processes of this
    /// program ([`pipe`], and connections passed to children) accept them.
    ///
    /// # Safety
    /// The peer must be a process of this same program build that shares objects through
    /// this library only (so every shared-memory object it sends is laid out and used as
    /// this library expects), for as long as the received objects are used.
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use multiproc::{Connection, Lock};
    /// let (x, y) = UnixStream::pair()?;
    /// let (mut a, mut b) = (Connection::new(x.into()), Connection::new(y.into()));
    /// a.send(&Lock::new()?)?;
    /// assert!(matches!(b.recv::<Lock>(), Err(multiproc::ConnectionError::HandlesRefused { count: 1 })));
    /// // SAFETY: both ends belong to this very process.
    /// unsafe { b.accept_handles() };
    /// a.send(&Lock::new()?)?;
    /// let lock: Lock = b.recv()?;
    /// drop(lock.acquire().map_err(multiproc::SyncError::from)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Vouching for the peer must be written out: outside an `unsafe` block it does not
    /// compile.
    ///
    /// ```compile_fail,E0133
    /// let (mut a, _b) = multiproc::pipe()?;
    /// a.accept_handles();
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub unsafe fn accept_handles(&mut self) {
        self.accepts_handles = true;
    }

    /// A connection between processes of this program: it accepts handles.
    pub(crate) fn from_fd_trusted(fd: OwnedFd) -> Connection {
        Connection::from_fd(fd, true, true)
    }

    pub(crate) fn from_fd(fd: OwnedFd, readable: bool, writable: bool) -> Connection {
        Connection {
            fd,
            readable,
            writable,
            max_message: DEFAULT_MAX_MESSAGE_SIZE,
            broken: false,
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            fds: VecDeque::new(),
            fd_reads: VecDeque::new(),
            pos: 0,
            frame_fds: 0,
            scratch: Vec::new(),
            accepts_handles: true,
        }
    }

    /// Whether this end can receive.
    ///
    /// ```
    /// let (rx, tx) = multiproc::pipe_oneway()?;
    /// assert!(rx.readable() && !tx.readable());
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end can send.
    ///
    /// ```
    /// let (rx, tx) = multiproc::pipe_oneway()?;
    /// assert!(tx.writable() && !rx.writable());
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// The largest message body this end accepts ([`DEFAULT_MAX_MESSAGE_SIZE`] unless set).
    ///
    /// ```
    /// let (a, _b) = multiproc::pipe()?;
    /// assert_eq!(a.max_message_size(), multiproc::DEFAULT_MAX_MESSAGE_SIZE);
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn max_message_size(&self) -> u64 {
        self.max_message
    }

    /// Change the largest message body this end accepts. A larger incoming message fails with
    /// [`ConnectionError::TooLarge`] before any memory is reserved for it.
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// b.set_max_message_size(8);
    /// a.send_bytes(&[0u8; 100])?;
    /// assert!(matches!(b.recv_bytes(), Err(multiproc::ConnectionError::TooLarge { len: 100, limit: 8 })));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn set_max_message_size(&mut self, limit: u64) {
        self.max_message = limit;
    }

    /// Send a value of any serde type; OS handles inside it ([`Connection`],
    /// [`Handle`](crate::Handle), ...) travel too.
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send(&(1u32, "two".to_string(), vec![3.0f32]))?;
    /// let (x, y, z): (u32, String, Vec<f32>) = b.recv()?;
    /// assert_eq!((x, y.as_str(), z[0]), (1, "two", 3.0));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.check_writable()?;
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        body.push(0);
        let encoded = handle::encode(value, &mut body);
        let result = encoded.map_err(ConnectionError::from).and_then(|fds| {
            if fds.len() > sys::MAX_FDS_PER_MESSAGE {
                return Err(ConnectionError::Malformed(format!(
                    "a message can carry at most {} OS handles, this one has {}",
                    sys::MAX_FDS_PER_MESSAGE,
                    fds.len()
                )));
            }
            body[0] = fds.len() as u8;
            self.write_frame(&body, &fds)
        });
        // Keep a modest buffer for the next message; give huge ones back to the allocator.
        if body.capacity() <= READ_CHUNK {
            self.scratch = body;
        }
        result
    }

    /// Receive a value sent with [`send`](Self::send). Blocks until a whole message arrives.
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send(&Some("x"))?;
    /// assert_eq!(b.recv::<Option<String>>()?, Some("x".into()));
    /// drop(a);
    /// assert!(matches!(b.recv::<u8>(), Err(multiproc::ConnectionError::Eof)));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.check_readable()?;
        let len = self.read_header()?;
        if len <= (self.rend - self.rpos) as u64 {
            let end = self.rpos + len as usize;
            let fds = self.take_frame_fds();
            let result = self
                .vet_handles(&fds)
                .and_then(|()| decode_body(&self.rbuf[self.rpos..end], fds));
            self.consume(len as usize);
            result
        } else {
            let fds = self.take_frame_fds();
            let body = self.read_body(len)?;
            self.vet_handles(&fds)?;
            decode_body(&body, fds)
        }
    }

    /// Wait up to `timeout` for a message and receive it; `Ok(None)` if none arrived in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// assert_eq!(b.recv_timeout::<u8>(Duration::from_millis(10))?, None);
    /// a.send(&7u8)?;
    /// assert_eq!(b.recv_timeout::<u8>(Duration::from_secs(5))?, Some(7));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    ///
    /// The timeout covers the whole message: if only part of it arrives in time, that part
    /// stays buffered for the next receive and the call returns `Ok(None)` on time.
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<Option<T>> {
        self.check_readable()?;
        if self.buffer_whole_frame(crate::deadline::after(timeout))? {
            self.recv().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Send `bytes` as one message (Python's `send_bytes`).
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_bytes(b"hello")?;
    /// assert_eq!(b.recv_bytes()?, b"hello");
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.write_frame(bytes, &[])
    }

    /// Send `size` bytes of `buf` starting at `offset` (all the rest if `size` is `None`),
    /// checking the range like Python's `send_bytes(buf, offset, size)`.
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_bytes_range(b"abcdef", 2, Some(3))?;
    /// assert_eq!(b.recv_bytes()?, b"cde");
    /// assert!(a.send_bytes_range(b"abc", 4, None).is_err());
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn send_bytes_range(
        &mut self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<()> {
        let out_of_range = || {
            ConnectionError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "range offset {offset} size {size:?} is outside a buffer of {} bytes",
                    buf.len()
                ),
            ))
        };
        let rest = buf.get(offset..).ok_or_else(out_of_range)?;
        let part = match size {
            None => rest,
            Some(n) => rest.get(..n).ok_or_else(out_of_range)?,
        };
        self.send_bytes(part)
    }

    /// Send `value` pickled, as Python's `conn.send(obj)` does, so a Python peer's
    /// `conn.recv()` gets it as objects (plain data only; see [`crate::pickle`]). Needs the
    /// `pickle` feature (on by default).
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_pickle(&("ok", 3, vec![1.5]))?;
    /// assert_eq!(b.recv_pickle::<(String, u8, Vec<f64>)>()?, ("ok".to_string(), 3, vec![1.5]));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    #[cfg(feature = "pickle")]
    pub fn send_pickle<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let bytes = crate::pickle::to_vec(value)?;
        self.send_bytes(&bytes)
    }

    /// Receive a value a Python peer sent with `conn.send(obj)`: its pickle is checked to
    /// contain plain data only (nothing that imports or calls) and decoded into `T`
    /// ([`crate::pickle::PyValue`] for any shape). Needs the `pickle` feature (on by default).
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// // What Python's conn.send({"n": 1}) sends.
    /// a.send_bytes(b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01n\x94K\x01s.")?;
    /// let map: std::collections::HashMap<String, i64> = b.recv_pickle()?;
    /// assert_eq!(map["n"], 1);
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    #[cfg(feature = "pickle")]
    pub fn recv_pickle<T: DeserializeOwned>(&mut self) -> Result<T> {
        let bytes = self.recv_bytes()?;
        Ok(crate::pickle::from_slice(&bytes)?)
    }

    /// Receive one message as bytes (Python's `recv_bytes`).
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_bytes(&[1, 2, 3])?;
    /// assert_eq!(b.recv_bytes()?, vec![1, 2, 3]);
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.check_readable()?;
        let len = self.read_header()?;
        // Descriptors sent with this message (if it was a typed one) are not wanted here.
        drop(self.take_frame_fds());
        self.take_body(len)
    }

    /// Receive one message as bytes if it is at most `max_len` bytes long (Python's
    /// `recv_bytes(maxlength)`). A longer message is [`ConnectionError::TooLarge`], and, as in
    /// Python, the connection cannot be read any more.
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_bytes(b"short")?;
    /// assert_eq!(b.recv_bytes_max(16)?, b"short");
    /// a.send_bytes(b"far too long")?;
    /// assert!(matches!(b.recv_bytes_max(4), Err(multiproc::ConnectionError::TooLarge { len: 12, limit: 4 })));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn recv_bytes_max(&mut self, max_len: u64) -> Result<Vec<u8>> {
        let limit = self.max_message;
        self.max_message = limit.min(max_len);
        let result = self.recv_bytes();
        self.max_message = limit;
        result
    }

    /// Receive one message as bytes if it is at most `max_len` bytes long and arrives whole
    /// before `deadline`; `Ok(None)` if it did not (what arrived stays buffered). Used by the
    /// authentication handshake, which must not wait forever on a stalled peer.
    pub(crate) fn recv_bytes_before(
        &mut self,
        max_len: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>> {
        self.check_readable()?;
        let limit = self.max_message;
        self.max_message = limit.min(max_len);
        let result = match self.buffer_whole_frame(deadline) {
            Ok(true) => self.recv_bytes().map(Some),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        self.max_message = limit;
        result
    }

    /// Receive one message into `buf`, returning its length (Python's `recv_bytes_into`).
    /// If `buf` is too small the message is returned in [`ConnectionError::BufferTooShort`].
    ///
    /// ```
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// a.send_bytes(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 3);
    /// assert_eq!(&buf[..3], b"abc");
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn recv_bytes_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.check_readable()?;
        let len = self.read_header()?;
        drop(self.take_frame_fds());
        if len > buf.len() as u64 {
            return Err(ConnectionError::BufferTooShort(self.take_body(len)?));
        }
        let len = len as usize;
        let buffered = (self.rend - self.rpos).min(len);
        buf[..buffered].copy_from_slice(&self.rbuf[self.rpos..self.rpos + buffered]);
        self.consume(buffered);
        let mut got = buffered;
        while got < len {
            let n = sys::read_into(self.fd.as_fd(), &mut buf[got..len]).map_err(recv_error)?;
            self.pos += n as u64;
            if n == 0 {
                self.broken = true;
                return Err(ConnectionError::Truncated {
                    expected: len as u64,
                    got: got as u64,
                });
            }
            got += n;
        }
        Ok(len)
    }

    /// Receive one typed message without decoding it: its value bytes and its descriptors.
    /// Used where the receiver does not know the type (the fork server relays a task it
    /// cannot decode; a spawned child reads its task before resolving its entry point).
    pub(crate) fn recv_raw(&mut self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        self.check_readable()?;
        let len = self.read_header()?;
        let fds = self.take_frame_fds();
        let mut body = self.take_body(len)?;
        check_count(&body, fds.len())?;
        body.remove(0);
        Ok((body, fds))
    }

    /// Send a message produced by [`recv_raw`](Self::recv_raw) unchanged.
    pub(crate) fn send_raw(&mut self, bytes: &[u8], fds: &[OwnedFd]) -> Result<()> {
        self.check_writable()?;
        let mut body = Vec::with_capacity(bytes.len() + 1);
        body.push(fds.len() as u8);
        body.extend_from_slice(bytes);
        self.write_frame(&body, fds)
    }

    /// Whether a message (or end of file) is ready to read, waiting up to `timeout`
    /// (`None` waits forever, `Some(Duration::ZERO)` only checks).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (mut a, mut b) = multiproc::pipe()?;
    /// assert!(!b.poll(Some(Duration::ZERO))?);
    /// a.send(&1u8)?;
    /// assert!(b.poll(Some(Duration::from_secs(1)))?);
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<bool> {
        self.check_readable()?;
        if self.rpos < self.rend {
            return Ok(true);
        }
        Ok(sys::wait_readable(&[self.fd.as_fd()], timeout)?[0])
    }

    /// Close this end now (dropping it does the same).
    ///
    /// ```
    /// let (a, mut b) = multiproc::pipe()?;
    /// a.close();
    /// assert!(matches!(b.recv_bytes(), Err(multiproc::ConnectionError::Eof)));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn close(self) {}

    fn check_readable(&self) -> Result<()> {
        if !self.readable {
            return Err(ConnectionError::WrongDirection("write-only"));
        }
        if self.broken {
            return Err(ConnectionError::Broken);
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if !self.writable {
            return Err(ConnectionError::WrongDirection("read-only"));
        }
        Ok(())
    }

    fn write_frame(&self, body: &[u8], fds: &[OwnedFd]) -> Result<()> {
        let mut header = [0u8; 12];
        let header: &[u8] = if body.len() <= i32::MAX as usize {
            header[..4].copy_from_slice(&(body.len() as i32).to_be_bytes());
            &header[..4]
        } else {
            header[..4].copy_from_slice(&(-1i32).to_be_bytes());
            header[4..].copy_from_slice(&(body.len() as u64).to_be_bytes());
            &header[..]
        };
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        sys::send_all(self.fd.as_fd(), &[header, body], &borrowed).map_err(|e| match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                ConnectionError::PeerClosed
            }
            _ => ConnectionError::Io(e),
        })
    }

    fn consume(&mut self, n: usize) {
        self.rpos += n;
        self.pos += n as u64;
        if self.rpos == self.rend {
            self.rpos = 0;
            self.rend = 0;
            if self.rbuf.len() > READ_CHUNK {
                // Grown for one large message by `recv_timeout`: give it back.
                self.rbuf = Vec::new();
            }
        }
    }

    /// Make at least `n` bytes available in the buffer. `Ok(false)` on end of file before any
    /// byte of them arrived.
    fn fill_to(&mut self, n: usize) -> Result<bool> {
        while self.rend - self.rpos < n {
            let missing = n - (self.rend - self.rpos);
            if self.rbuf.len() - self.rend < missing.max(512) {
                self.compact(n.max(INITIAL_READ));
            }
            let have = self.rend;
            let got = self.read_more().map_err(recv_error)?;
            if got == 0 {
                if have == self.rpos {
                    return Ok(false);
                }
                self.broken = true;
                return Err(ConnectionError::Truncated {
                    expected: n as u64,
                    got: (have - self.rpos) as u64,
                });
            }
            self.rend += got;
            // A read that filled the buffer suggests a stream of messages: read more at once.
            if self.rend == self.rbuf.len() && self.rbuf.len() < READ_CHUNK {
                let bigger = (self.rbuf.len() * 2).min(READ_CHUNK);
                self.rbuf.resize(bigger, 0);
            }
        }
        Ok(true)
    }

    /// One read into the free end of the buffer. On a machine with spare CPUs, first poll
    /// without blocking for a few tens of microseconds (yielding the CPU in between): a
    /// reply usually arrives within that time, and not going to sleep saves the wake-up of an
    /// idle CPU, which on virtual machines costs more than the whole round trip.
    fn read_more(&mut self) -> io::Result<usize> {
        let before = self.fds.len();
        let n = self.read_more_unrecorded()?;
        self.record_fds(before, n);
        Ok(n)
    }

    /// Note where descriptors delivered by the read of `n` bytes just made came from.
    fn record_fds(&mut self, before: usize, n: usize) {
        let arrived = self.fds.len() - before;
        if arrived > 0 {
            let start = self.pos + (self.rend - self.rpos) as u64;
            self.fd_reads.push_back((start, start + n as u64, arrived));
        }
    }

    /// The descriptors that came with the frame whose header `read_header` just consumed.
    fn take_frame_fds(&mut self) -> Vec<OwnedFd> {
        let n = std::mem::take(&mut self.frame_fds).min(self.fds.len());
        self.fds.drain(..n).collect()
    }

    /// Decide which queued descriptors belong to the frame occupying `[start, end)` of the
    /// stream: those of a read that began at or before `start` and ended inside the frame.
    /// Descriptors of reads that ended before `start` belonged to earlier frames nobody
    /// claimed; they are closed.
    fn claim_fds(&mut self, start: u64, end: u64) {
        self.frame_fds = 0;
        while let Some(&(r, e, k)) = self.fd_reads.front() {
            if e <= start {
                self.fd_reads.pop_front();
                let k = k.min(self.fds.len());
                self.fds.drain(..k);
                continue;
            }
            if r <= start && e <= end {
                self.fd_reads.pop_front();
                self.frame_fds = k;
            }
            break;
        }
    }

    fn read_more_unrecorded(&mut self) -> io::Result<usize> {
        let fd = self.fd.as_fd();
        let mut got = Ok(None);
        sys::memory::spin_until(None, || {
            got = sys::try_recv_some(fd, &mut self.rbuf[self.rend..], &mut self.fds);
            !matches!(got, Ok(None))
        });
        if let Some(n) = got? {
            return Ok(n);
        }
        sys::recv_some(fd, &mut self.rbuf[self.rend..], &mut self.fds)
    }

    /// Read until a whole frame is buffered (`Ok(true)`) or `deadline` passes (`Ok(false)`;
    /// what arrived stays buffered). Protocol errors and end of file also give `Ok(true)`:
    /// the following `recv` reports them exactly as it would without a timeout.
    fn buffer_whole_frame(&mut self, deadline: Option<Instant>) -> Result<bool> {
        loop {
            if self.try_buffer_frame()? {
                return Ok(true);
            }
            let remaining = crate::deadline::remaining(deadline);
            if !sys::wait_readable(&[self.fd.as_fd()], remaining)?[0] {
                return Ok(false);
            }
        }
    }

    /// Read what the socket has without blocking, until a whole frame is buffered
    /// (`Ok(true)`, also for end of file and a header `recv` will reject) or the socket has
    /// nothing more for now (`Ok(false)`; what arrived stays buffered, so a later receive
    /// goes on from there). The async receive is built on this.
    pub(crate) fn try_buffer_frame(&mut self) -> Result<bool> {
        self.check_readable()?;
        loop {
            let buffered = self.rend - self.rpos;
            let want = match self.buffered_frame_len() {
                Some(total) if total <= buffered as u64 => return Ok(true),
                Some(total) => usize::try_from(total).unwrap_or(usize::MAX),
                None => 12,
            };
            // Room for the rest of the frame, growing by at most GROW_STEP per round so that
            // memory follows the data that actually arrives.
            let target = want.min(buffered + GROW_STEP).max(INITIAL_READ);
            if self.rbuf.len() - self.rpos < target || self.rend == self.rbuf.len() {
                self.compact(target);
            }
            let before = self.fds.len();
            let read =
                sys::try_recv_some(self.fd.as_fd(), &mut self.rbuf[self.rend..], &mut self.fds);
            match read.map_err(recv_error)? {
                None => return Ok(false),
                Some(0) => return Ok(true),
                Some(n) => {
                    // Descriptors that came with this read belong to the frame it began
                    // (see `claim_fds`), exactly as for reads made by `recv`.
                    self.record_fds(before, n);
                    self.rend += n;
                }
            }
        }
    }

    /// Encode `value` as one whole frame (header and body) into `out`, which is cleared
    /// first; returns the descriptors that must travel with its first byte. For the async
    /// send, which writes frames piece by piece as the socket takes them, and for a frame
    /// prepared in advance (a child's allocation-failure report, `sys/limits.rs`).
    pub(crate) fn encode_frame<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<Vec<OwnedFd>> {
        self.check_writable()?;
        out.clear();
        out.extend_from_slice(&[0; 5]);
        let fds = handle::encode(value, out)?;
        if fds.len() > sys::MAX_FDS_PER_MESSAGE {
            return Err(ConnectionError::Malformed(format!(
                "a message can carry at most {} OS handles, this one has {}",
                sys::MAX_FDS_PER_MESSAGE,
                fds.len()
            )));
        }
        out[4] = fds.len() as u8;
        let body = out.len() - 4;
        if body <= i32::MAX as usize {
            out[..4].copy_from_slice(&(body as i32).to_be_bytes());
        } else {
            let mut header = [0u8; 12];
            header[..4].copy_from_slice(&(-1i32).to_be_bytes());
            header[4..].copy_from_slice(&(body as u64).to_be_bytes());
            out.splice(..4, header);
        }
        Ok(fds)
    }

    #[cfg(feature = "async")]
    /// Frame `bytes` as one message (header and body) into `out`, which is cleared first.
    pub(crate) fn encode_bytes_frame(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.check_writable()?;
        out.clear();
        if bytes.len() <= i32::MAX as usize {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        } else {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        }
        out.extend_from_slice(bytes);
        Ok(())
    }

    #[cfg(feature = "async")]
    /// Write what the socket takes now of `bytes` (with `fds` if given) without blocking;
    /// `Ok(0)` when it takes nothing.
    pub(crate) fn try_write(&self, bytes: &[u8], fds: &[OwnedFd]) -> Result<usize> {
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
        match sys::try_send_some(self.fd.as_fd(), &[bytes], &borrowed) {
            Ok(n) => Ok(n.unwrap_or(0)),
            Err(e) => Err(match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                    ConnectionError::PeerClosed
                }
                _ => ConnectionError::Io(e),
            }),
        }
    }

    /// Length (header included) of the frame starting in the buffer, if its header is
    /// there; `Some(0)` for a header `recv` will reject.
    fn buffered_frame_len(&self) -> Option<u64> {
        let b = &self.rbuf[self.rpos..self.rend];
        let short = i32::from_be_bytes(b.get(..4)?.try_into().ok()?);
        let (header, len) = match short {
            n if n >= 0 => (4, n as u64),
            -1 => (12, u64::from_be_bytes(b.get(4..12)?.try_into().ok()?)),
            _ => return Some(0),
        };
        if len > self.max_message {
            return Some(0);
        }
        Some(header + len)
    }

    /// Read and consume a frame header; returns the body length.
    fn read_header(&mut self) -> Result<u64> {
        if !self.fill_to(4)? {
            return Err(ConnectionError::Eof);
        }
        let start = self.pos;
        let short = i32::from_be_bytes(
            self.rbuf[self.rpos..self.rpos + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        let len = match short {
            n if n >= 0 => {
                self.consume(4);
                n as u64
            }
            -1 => {
                if !self.fill_to(12)? {
                    return Err(ConnectionError::Eof);
                }
                let long: [u8; 8] = self.rbuf[self.rpos + 4..self.rpos + 12]
                    .try_into()
                    .unwrap_or([0; 8]);
                self.consume(12);
                u64::from_be_bytes(long)
            }
            n => {
                self.broken = true;
                return Err(ConnectionError::Malformed(format!(
                    "negative frame length {n}"
                )));
            }
        };
        let header = if short == -1 { 12 } else { 4 };
        if len > self.max_message {
            self.broken = true;
            return Err(ConnectionError::TooLarge {
                len,
                limit: self.max_message,
            });
        }
        self.claim_fds(start, start + header + len);
        Ok(len)
    }

    /// Move the unread bytes to the front of the buffer and make it at least `capacity` long.
    fn compact(&mut self, capacity: usize) {
        self.rbuf.copy_within(self.rpos..self.rend, 0);
        self.rend -= self.rpos;
        self.rpos = 0;
        if self.rbuf.len() < capacity {
            self.rbuf.resize(capacity, 0);
        }
    }

    /// The `len`-byte body of the frame whose header was just read, as an owned vector.
    fn take_body(&mut self, len: u64) -> Result<Vec<u8>> {
        if len <= (self.rend - self.rpos) as u64 {
            let body = self.rbuf[self.rpos..self.rpos + len as usize].to_vec();
            self.consume(len as usize);
            Ok(body)
        } else {
            self.read_body(len)
        }
    }

    /// Read a body of `len` bytes that is not (entirely) buffered yet.
    fn read_body(&mut self, len: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(len).map_err(|_| ConnectionError::TooLarge {
            len,
            limit: usize::MAX as u64,
        })?;
        let buffered = self.rend - self.rpos;
        let mut body = Vec::with_capacity(len.min(GROW_STEP.max(buffered)));
        body.extend_from_slice(&self.rbuf[self.rpos..self.rend]);
        self.consume(buffered);
        while body.len() < len {
            if body.len() == body.capacity() {
                body.reserve_exact((len - body.len()).min(GROW_STEP));
            }
            // Never read past this frame: the next one may carry descriptors.
            let room = (len - body.len()).min(body.capacity() - body.len());
            let n = sys::read_uninit(self.fd.as_fd(), &mut body.spare_capacity_mut()[..room])
                .map_err(recv_error)?;
            if n == 0 {
                self.broken = true;
                return Err(ConnectionError::Truncated {
                    expected: len as u64,
                    got: body.len() as u64,
                });
            }
            // SAFETY: `read_uninit` initialised the first `n` bytes of the spare capacity.
            unsafe { body.set_len(body.len() + n) };
            self.pos += n as u64;
        }
        Ok(body)
    }
}

impl Connection {
    /// Refuse the descriptors of a frame when this connection does not accept handles (they
    /// are closed when the caller drops them).
    fn vet_handles(&self, fds: &[OwnedFd]) -> Result<()> {
        if self.accepts_handles || fds.is_empty() {
            Ok(())
        } else {
            Err(ConnectionError::HandlesRefused { count: fds.len() })
        }
    }
}

fn recv_error(e: io::Error) -> ConnectionError {
    match e.kind() {
        io::ErrorKind::ConnectionReset => ConnectionError::Eof,
        _ => ConnectionError::Io(e),
    }
}

/// Check a typed message body's handle count against the descriptors that came with it.
fn check_count(body: &[u8], arrived: usize) -> Result<()> {
    let &count = body.first().ok_or_else(|| {
        ConnectionError::Malformed("empty message where a value was expected".into())
    })?;
    if count as usize != arrived {
        return Err(ConnectionError::Malformed(format!(
            "message announces {count} OS handles but {arrived} came with it"
        )));
    }
    Ok(())
}

/// Decode a typed message body: its handle count, then the value.
fn decode_body<T: DeserializeOwned>(body: &[u8], fds: Vec<OwnedFd>) -> Result<T> {
    check_count(body, fds.len())?;
    Ok(handle::decode(&body[1..], fds)?)
}

impl AsFd for Connection {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("fd", &self.fd.as_raw_fd())
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

/// How a `Connection` looks inside a message: its descriptor plus any bytes and descriptors
/// already read from the socket but not consumed, so the receiver misses nothing.
#[derive(Serialize)]
struct WireOut<'a> {
    fd: FdRef<'a>,
    readable: bool,
    writable: bool,
    max_message: u64,
    pending: &'a [u8],
    pending_fds: Vec<FdRef<'a>>,
    /// `fd_reads`, relative to the first pending byte.
    pending_fd_reads: Vec<(i64, i64, u64)>,
}

#[derive(Deserialize)]
struct WireIn {
    fd: FdOwned,
    readable: bool,
    writable: bool,
    max_message: u64,
    pending: Vec<u8>,
    pending_fds: Vec<FdOwned>,
    pending_fd_reads: Vec<(i64, i64, u64)>,
}

impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        WireOut {
            fd: FdRef(self.fd.as_fd()),
            readable: self.readable,
            writable: self.writable,
            max_message: self.max_message,
            pending: &self.rbuf[self.rpos..self.rend],
            pending_fds: self.fds.iter().map(|f| FdRef(f.as_fd())).collect(),
            pending_fd_reads: self
                .fd_reads
                .iter()
                .map(|&(r, e, k)| {
                    (
                        r.wrapping_sub(self.pos) as i64,
                        e.wrapping_sub(self.pos) as i64,
                        k as u64,
                    )
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let w = WireIn::deserialize(deserializer)?;
        let mut conn = Connection::from_fd(w.fd.0, w.readable, w.writable);
        conn.max_message = w.max_message;
        conn.rend = w.pending.len();
        conn.rbuf = w.pending;
        conn.fds = w.pending_fds.into_iter().map(|f| f.0).collect();
        // Start the stream count high enough that relative offsets stay positive.
        conn.pos = 1 << 48;
        conn.fd_reads = w
            .pending_fd_reads
            .into_iter()
            .map(|(r, e, k)| {
                (
                    conn.pos.wrapping_add(r as u64),
                    conn.pos.wrapping_add(e as u64),
                    k as usize,
                )
            })
            .collect();
        Ok(conn)
    }
}

/// Wait until at least one of `objects` is ready, or `timeout` passes (Python's
/// `multiprocessing.connection.wait`). Works with anything that has a descriptor: a
/// [`Connection`] is ready when a message or end of file can be read, a
/// [`Process`](crate::Process) when the child has ended. Returns the indices of the ready
/// objects (empty on timeout).
///
/// Note that a `Connection` with messages already buffered in this process is ready even if
/// its socket is not; check [`Connection::poll`] first when that matters.
///
/// ```
/// use std::time::{Duration, Instant};
/// let (mut a1, mut b1) = multiproc::pipe()?;
/// let (_a2, b2) = multiproc::pipe()?;
/// a1.send(&1u8)?;
/// let ready = multiproc::wait(&[&b1, &b2], Some(Duration::from_secs(1)))?;
/// assert_eq!(ready, vec![0]);
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub fn wait<T: AsFd>(objects: &[T], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.as_fd()).collect();
    let ready = sys::wait_readable(&fds, timeout)?;
    Ok(ready
        .iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i)
        .collect())
}
