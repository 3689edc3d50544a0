//! [`ConnectionError`]: what can go wrong on a connection.

use std::io;

use crate::handle::CodecError;

/// What can go wrong on a [`Connection`](crate::connection::Connection).
///
/// ```
/// use multiproc::ConnectionError;
/// let (a, mut b) = multiproc::pipe()?;
/// drop(a);
/// assert!(matches!(b.recv::<u32>(), Err(ConnectionError::Eof))); // Python's EOFError
/// assert!(matches!(b.send(&1u32), Err(ConnectionError::PeerClosed))); // BrokenPipeError
/// # Ok::<(), ConnectionError>(())
/// ```
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
    /// [`Connection::accept_handles`](crate::connection::Connection::accept_handles)); they were closed, and the message dropped.
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

pub(super) fn recv_error(e: io::Error) -> ConnectionError {
    match e.kind() {
        io::ErrorKind::ConnectionReset => ConnectionError::Eof,
        _ => ConnectionError::Io(e),
    }
}
