//! [`AsyncConnection`]: a [`Connection`] whose sends and receives are futures.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::connection::{Connection, Result};

/// A [`Connection`] for async code: `send`/`recv` (typed and bytes) are futures that wait in
/// tokio's reactor (`AsyncFd`), not in a thread.
///
/// Frames, handles and limits are exactly those of the wrapped [`Connection`] (the peer may
/// use the blocking API, or be Python). Create it inside a tokio runtime with I/O enabled.
///
/// Cancellation (dropping a future before it completes, e.g. in `tokio::select!` or
/// `tokio::time::timeout`) loses nothing:
/// - a receive that has read part of a message leaves it buffered: the next receive goes on
///   from there (as [`Connection::recv_timeout`] does);
/// - a send that has begun (been polled once) has committed its message: what the socket did
///   not take yet stays in this connection and is written first by the next
///   [`send`](Self::send)/[`send_bytes`](Self::send_bytes), or by [`flush`](Self::flush). So
///   the peer never sees half a frame followed by another frame. Only dropping the
///   `AsyncConnection` itself with such a rest unwritten (after one more non-blocking try)
///   loses it; the peer then sees
///   [`ConnectionError::Truncated`](crate::ConnectionError::Truncated).
///
/// ```
/// use multiproc::aio::AsyncConnection;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (a, b) = multiproc::pipe()?;
/// let (mut a, mut b) = (AsyncConnection::new(a)?, AsyncConnection::new(b)?);
/// a.send(&vec![1u32, 2, 3]).await?;
/// assert_eq!(b.recv::<Vec<u32>>().await?, [1, 2, 3]);
/// b.send_bytes(b"pong").await?;
/// assert_eq!(a.recv_bytes().await?, b"pong");
/// # Ok(())
/// # }
/// ```
pub struct AsyncConnection {
    io: AsyncFd<Connection>,
    /// The frame being written: `out[written..]` is still to go.
    out: Vec<u8>,
    written: usize,
    /// Descriptors that go with the first byte of `out` (until it is written).
    out_fds: Vec<OwnedFd>,
}

/// Keep at most this much encode buffer between messages.
const KEEP_OUT: usize = 64 * 1024;

impl AsyncConnection {
    /// Wrap `conn` (registering its socket with the current tokio runtime's reactor).
    /// Fails outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = multiproc::pipe()?;
    /// let a = multiproc::aio::AsyncConnection::new(a)?;
    /// assert!(a.get_ref().writable());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(conn: Connection) -> io::Result<AsyncConnection> {
        Ok(AsyncConnection {
            // SAFETY: the `Connection` owns its socket and never replaces it, and this type
            // hands out no `&mut Connection` through which it could be swapped for another.
            io: unsafe { super::fd::register(conn, Interest::READABLE | Interest::WRITABLE) }?,
            out: Vec::new(),
            written: 0,
            out_fds: Vec::new(),
        })
    }

    /// The wrapped connection (for its settings and queries).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = multiproc::pipe()?;
    /// let a = multiproc::aio::AsyncConnection::new(a)?;
    /// assert_eq!(a.get_ref().max_message_size(), multiproc::DEFAULT_MAX_MESSAGE_SIZE);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_ref(&self) -> &Connection {
        self.io.get_ref()
    }

    /// Change the largest message body this end accepts (see
    /// [`Connection::set_max_message_size`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = multiproc::pipe()?;
    /// let mut a = multiproc::aio::AsyncConnection::new(a)?;
    /// a.set_max_message_size(1024);
    /// assert_eq!(a.get_ref().max_message_size(), 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_max_message_size(&mut self, limit: u64) {
        self.io.get_mut().set_max_message_size(limit);
    }

    /// Write any rest of a committed message, then give the plain [`Connection`] back (to
    /// pass it to a child process, for instance).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, b) = multiproc::pipe()?;
    /// let mut a = multiproc::aio::AsyncConnection::new(a)?;
    /// a.send(&1u8).await?;
    /// let mut b = b;
    /// assert_eq!(b.recv::<u8>()?, 1);
    /// let a: multiproc::Connection = a.into_inner().await?;
    /// # drop(a);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn into_inner(mut self) -> Result<Connection> {
        self.flush().await?;
        let mut this = std::mem::ManuallyDrop::new(self);
        drop(std::mem::take(&mut this.out));
        drop(std::mem::take(&mut this.out_fds));
        // SAFETY: `this` is never used or dropped again (`ManuallyDrop`), so `io` is moved
        // out exactly once; the other fields were emptied and own nothing any more.
        let io = unsafe { std::ptr::read(&this.io) };
        Ok(io.into_inner())
    }

    /// Send a value of any serde type (see [`Connection::send`]), waiting for room in the
    /// socket without blocking the thread.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, mut b) = multiproc::pipe()?;
    /// let mut a = multiproc::aio::AsyncConnection::new(a)?;
    /// a.send(&("x", 2)).await?;
    /// assert_eq!(b.recv::<(String, i32)>()?, ("x".to_string(), 2));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.flush().await?;
        let mut out = std::mem::take(&mut self.out);
        match self.io.get_mut().encode_frame(value, &mut out) {
            Ok(fds) => {
                self.out = out;
                self.out_fds = fds;
                self.written = 0;
            }
            Err(e) => {
                out.clear();
                self.out = out;
                return Err(e);
            }
        }
        self.flush().await
    }

    /// Send `bytes` as one message (see [`Connection::send_bytes`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, mut b) = multiproc::pipe()?;
    /// let mut a = multiproc::aio::AsyncConnection::new(a)?;
    /// a.send_bytes(b"raw").await?;
    /// assert_eq!(b.recv_bytes()?, b"raw");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.flush().await?;
        let mut out = std::mem::take(&mut self.out);
        let framed = self.io.get_ref().encode_bytes_frame(bytes, &mut out);
        if framed.is_err() {
            out.clear();
        }
        self.out = out;
        self.written = 0;
        framed?;
        self.flush().await
    }

    /// Finish writing a message whose send was cancelled (nothing to do otherwise).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (a, _b) = multiproc::pipe()?;
    /// let mut a = multiproc::aio::AsyncConnection::new(a)?;
    /// a.flush().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&mut self) -> Result<()> {
        if self.try_flush()? {
            return Ok(());
        }
        loop {
            let Self {
                io,
                out,
                written,
                out_fds,
            } = self;
            let mut guard = io.writable().await?;
            match guard.try_io(|io| match try_flush(io.get_ref(), out, written, out_fds) {
                Ok(true) => Ok(Ok(())),
                Ok(false) => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Ok(Err(e)),
            }) {
                Ok(result) => return result?,
                // Still full: `try_io` cleared the readiness (unless a new one arrived).
                Err(_would_block) => continue,
            }
        }
    }

    /// Write what the socket takes now; `true` when the message is all out.
    fn try_flush(&mut self) -> Result<bool> {
        try_flush(
            self.io.get_ref(),
            &mut self.out,
            &mut self.written,
            &mut self.out_fds,
        )
    }

    /// Wait until a whole message (or end of file, or a protocol error) is buffered.
    ///
    /// Like the blocking receive, it first keeps looking for up to 50 µs on machines with
    /// more than one CPU, but by yielding to the runtime (other tasks run in between; an
    /// idle runtime polls its reactor and comes straight back): a reply usually comes within
    /// that time, and parking the thread in epoll costs the wake-up of an idle CPU, several
    /// times a whole round trip on a virtual machine.
    async fn fill(&mut self) -> Result<()> {
        if self.io.get_mut().try_buffer_frame()? {
            return Ok(());
        }
        if crate::sys::memory::spin_enabled() {
            let end = Instant::now() + crate::sys::memory::SPIN_BEFORE_BLOCKING;
            loop {
                // Let the peer run if it shares this CPU, then the runtime's other tasks.
                std::thread::yield_now();
                tokio::task::yield_now().await;
                if self.io.get_mut().try_buffer_frame()? {
                    return Ok(());
                }
                if Instant::now() >= end {
                    break;
                }
            }
        }
        loop {
            let mut guard = self.io.readable_mut().await?;
            match guard.try_io(|io| match io.get_mut().try_buffer_frame() {
                Ok(true) => Ok(Ok(())),
                Ok(false) => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Ok(Err(e)),
            }) {
                Ok(result) => return result?,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receive a value sent with `send` (see [`Connection::recv`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = multiproc::pipe()?;
    /// let mut b = multiproc::aio::AsyncConnection::new(b)?;
    /// a.send(&Some(3u8))?;
    /// assert_eq!(b.recv::<Option<u8>>().await?, Some(3));
    /// drop(a);
    /// assert!(matches!(b.recv::<u8>().await, Err(multiproc::ConnectionError::Eof)));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        self.fill().await?;
        self.io.get_mut().recv()
    }

    /// Receive one message as bytes (see [`Connection::recv_bytes`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = multiproc::pipe()?;
    /// let mut b = multiproc::aio::AsyncConnection::new(b)?;
    /// a.send_bytes(&[1, 2])?;
    /// assert_eq!(b.recv_bytes().await?, [1, 2]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        self.fill().await?;
        self.io.get_mut().recv_bytes()
    }

    /// Receive one message as bytes if it is at most `max_len` bytes long (see
    /// [`Connection::recv_bytes_max`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = multiproc::pipe()?;
    /// let mut b = multiproc::aio::AsyncConnection::new(b)?;
    /// a.send_bytes(b"0123456789")?;
    /// assert!(matches!(b.recv_bytes_max(4).await, Err(multiproc::ConnectionError::TooLarge { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_bytes_max(&mut self, max_len: u64) -> Result<Vec<u8>> {
        let conn = self.io.get_mut();
        let limit = conn.max_message_size();
        conn.set_max_message_size(limit.min(max_len));
        let result = async {
            self.fill().await?;
            self.io.get_mut().recv_bytes()
        }
        .await;
        self.io.get_mut().set_max_message_size(limit);
        result
    }

    /// Whether a message (or end of file) can be received without waiting.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = multiproc::pipe()?;
    /// let mut b = multiproc::aio::AsyncConnection::new(b)?;
    /// assert!(!b.ready()?);
    /// a.send(&1u8)?;
    /// b.readable().await?;
    /// assert!(b.ready()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn ready(&mut self) -> Result<bool> {
        self.io.get_mut().try_buffer_frame()
    }

    /// Wait until a whole message (or end of file) can be received without waiting; it is
    /// then buffered here.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let (mut a, b) = multiproc::pipe()?;
    /// let mut b = multiproc::aio::AsyncConnection::new(b)?;
    /// a.send(&1u8)?;
    /// b.readable().await?;
    /// assert!(b.ready()?); // buffered: the next receive does not wait
    /// assert_eq!(b.recv::<u8>().await?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn readable(&mut self) -> Result<()> {
        self.fill().await
    }
}

/// Write what the socket takes now of `out[written..]` (with `fds` on its first byte);
/// `true` when all of it is out (the buffer is then emptied for the next message).
fn try_flush(
    conn: &Connection,
    out: &mut Vec<u8>,
    written: &mut usize,
    fds: &mut Vec<OwnedFd>,
) -> Result<bool> {
    while *written < out.len() {
        let with: &[OwnedFd] = if *written == 0 { fds } else { &[] };
        let n = conn.try_write(&out[*written..], with)?;
        if n == 0 {
            return Ok(false);
        }
        if *written == 0 {
            // The kernel took the descriptors with the first byte.
            fds.clear();
        }
        *written += n;
    }
    *written = 0;
    out.clear();
    if out.capacity() > KEEP_OUT {
        *out = Vec::new();
    }
    Ok(true)
}

impl Drop for AsyncConnection {
    fn drop(&mut self) {
        // One last try for a committed message; see the type's documentation.
        let _ = self.try_flush();
    }
}

impl AsRawFd for AsyncConnection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.io.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncConnection")
            .field("conn", self.io.get_ref())
            .field("unwritten", &(self.out.len() - self.written))
            .finish()
    }
}
