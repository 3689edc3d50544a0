//! [`Connection`] and [`pipe`]: the typed and byte API of one end of a pipe.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::recv_error;
use super::framing::{check_count, decode_body};
use super::{ConnectionError, DEFAULT_MAX_MESSAGE_SIZE, READ_CHUNK, Result};
use crate::handle::{self};
use crate::sys;

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
    pub(super) fd: OwnedFd,
    pub(super) readable: bool,
    pub(super) writable: bool,
    pub(super) max_message: u64,
    pub(super) broken: bool,
    /// Received, not yet consumed bytes are `rbuf[rpos..rend]`; `rbuf` is allocated (and
    /// zeroed) once, growing from 4 KiB to 64 KiB only while reads keep filling it.
    pub(super) rbuf: Vec<u8>,
    pub(super) rpos: usize,
    pub(super) rend: usize,
    /// Descriptors received and not yet claimed by a message, in arrival order.
    pub(super) fds: VecDeque<OwnedFd>,
    /// For each read that delivered descriptors: the stream range it covered and how many
    /// came. The kernel attaches a message's descriptors to its first byte and ends the read
    /// with that message's first segment, so they belong to the frame that starts in this
    /// range and reaches at least its end (see `claim_fds`).
    pub(super) fd_reads: VecDeque<(u64, u64, usize)>,
    /// Stream offset of `rbuf[rpos]` (bytes consumed so far).
    pub(super) pos: u64,
    /// How many descriptors at the front of `fds` belong to the frame being read.
    pub(super) frame_fds: usize,
    /// Reused encoding buffer for `send`.
    pub(super) scratch: Vec<u8>,
    /// Whether OS handles that arrive are taken (see [`Connection::accept_handles`]).
    pub(super) accepts_handles: bool,
    /// Whether a blocking receive polls briefly before it sleeps (see
    /// `sys::memory::spin_until`); off where every answer takes longer than that (the fork
    /// server's: a `fork`), so that waiting costs no CPU the other processes could use.
    pub(super) spins: bool,
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

    /// Whether a blocking receive polls briefly before it sleeps (on by default).
    pub(crate) fn set_spinning(&mut self, on: bool) {
        self.spins = on;
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
            spins: true,
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

    /// Whether received bytes wait in this end's buffer (read from the socket, not yet
    /// consumed by a receive): then the socket itself may have nothing left to read.
    pub(crate) fn has_buffered(&self) -> bool {
        self.rpos < self.rend
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
