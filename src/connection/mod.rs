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

mod api;
mod buffer;
mod error;
mod framing;
#[cfg(feature = "pickle")]
mod pickle;
mod transfer;
mod wait;

pub use api::{Connection, pipe, pipe_oneway};
pub use error::ConnectionError;
pub use wait::wait;

/// Default largest message body a [`Connection`] accepts: 1 GiB.
///
/// ```
/// let (mut a, mut b) = multiproc::pipe()?;
/// assert_eq!(b.max_message_size(), multiproc::DEFAULT_MAX_MESSAGE_SIZE);
/// b.set_max_message_size(4 * multiproc::DEFAULT_MAX_MESSAGE_SIZE); // accept up to 4 GiB
/// a.send("small")?;
/// assert_eq!(b.recv::<String>()?, "small");
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 1 << 30;

const READ_CHUNK: usize = 64 * 1024;
const INITIAL_READ: usize = 4 * 1024;

/// Large bodies grow their buffer by at most this much per step, so memory follows the data.
const GROW_STEP: usize = 16 << 20;

/// Shorthand for results of connection operations.
///
/// ```
/// use multiproc::connection::{Connection, Result};
/// fn ask(conn: &mut Connection, question: &str) -> Result<usize> {
///     conn.send(question)?;
///     conn.recv()
/// }
/// let (mut a, mut b) = multiproc::pipe()?;
/// let answerer = std::thread::spawn(move || -> Result<()> {
///     let q: String = b.recv()?;
///     b.send(&q.len())
/// });
/// assert_eq!(ask(&mut a, "how long?")?, 9);
/// answerer.join().expect("the answering thread panicked")?;
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub type Result<T, E = ConnectionError> = std::result::Result<T, E>;
