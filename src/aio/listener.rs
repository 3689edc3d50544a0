//! [`AsyncListener`]: accepting peers as a future.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::AsyncConnection;
use crate::connection::{Connection, Result};
use crate::listener::{
    Address, FAILURE, Listener, MAX_HANDSHAKE_MESSAGE, WELCOME, challenge_message, check_response,
    check_verdict, new_challenge, respond, step_result,
};

/// The listener, as tokio's reactor sees it.
struct Registered(Listener);

impl AsRawFd for Registered {
    fn as_raw_fd(&self) -> RawFd {
        self.0.raw_fd()
    }
}

/// A [`Listener`] whose `accept` is a future: it waits in tokio's reactor, and the
/// authentication handshake (with a key) runs on the accepted [`AsyncConnection`], each step
/// limited by the listener's handshake timeout (a tokio timer: the runtime needs its time
/// driver, as `#[tokio::main]` provides).
///
/// While it owns the listener, the listening socket is non-blocking;
/// [`into_inner`](Self::into_inner) makes it blocking again.
///
/// ```
/// use multiproc::aio::AsyncListener;
/// use multiproc::listener::{Client, Listener};
///
/// fn client(address: multiproc::listener::Address) -> String {
///     let mut conn = Client::connect(&address, Some(b"key")).unwrap();
///     conn.send(&"hello").unwrap();
///     conn.recv::<String>().unwrap()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = AsyncListener::new(Listener::bind_auto(Some(b"key"))?)?;
/// let child = multiproc::Process::start(client, listener.address().clone())?;
/// let mut conn = listener.accept().await?;
/// let greeting: String = conn.recv().await?;
/// conn.send(&greeting.to_uppercase()).await?;
/// assert_eq!(child.join_async().await?, "HELLO");
/// # Ok(())
/// # }
/// ```
pub struct AsyncListener {
    io: AsyncFd<Registered>,
}

impl AsyncListener {
    /// Take `listener` over (registering it with the current tokio runtime's reactor).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = multiproc::listener::Listener::bind("127.0.0.1:0", None)?;
    /// let listener = multiproc::aio::AsyncListener::new(listener)?;
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(listener: Listener) -> io::Result<AsyncListener> {
        listener.set_nonblocking(true).map_err(io::Error::other)?;
        Ok(AsyncListener {
            // SAFETY: the `Listener` owns its socket and never replaces it, and this type
            // hands out no `&mut Listener`.
            io: unsafe { super::fd::register(Registered(listener), Interest::READABLE) }?,
        })
    }

    /// The address it listens on.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = multiproc::aio::AsyncListener::new(multiproc::listener::Listener::bind_auto(None)?)?;
    /// println!("listening on {}", listener.address());
    /// # Ok(())
    /// # }
    /// ```
    pub fn address(&self) -> &Address {
        self.io.get_ref().0.address()
    }

    /// Wait for the next peer and return a connection to it, after the handshake if the
    /// listener has a key (see [`Listener::accept`]; a failed handshake fails this call
    /// only). Dropping the future before a peer arrives loses nothing; dropping it during a
    /// handshake drops that peer.
    ///
    /// ```
    /// use multiproc::listener::{Client, Listener};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = multiproc::aio::AsyncListener::new(Listener::bind("127.0.0.1:0", None)?)?;
    /// let mut client = Client::connect(listener.address(), None)?;
    /// let mut server = listener.accept().await?;
    /// client.send(&5u8)?;
    /// assert_eq!(server.recv::<u8>().await?, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn accept(&self) -> Result<AsyncConnection> {
        let fd = loop {
            let mut guard = self.io.readable().await?;
            match guard.try_io(|io| io.get_ref().0.accept_socket()) {
                Ok(accepted) => match accepted {
                    Ok(fd) => break fd,
                    // A peer that went away before we took it: wait for the next one.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionAborted
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
                Err(_would_block) => continue,
            }
        };
        let mut conn = AsyncConnection::new(Connection::new(fd))?;
        let listener = &self.io.get_ref().0;
        if let Some(key) = listener.authkey() {
            accept_handshake_async(&mut conn, key, listener.handshake_timeout()).await?;
        }
        Ok(conn)
    }

    /// Give the listener back, blocking again.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = multiproc::aio::AsyncListener::new(multiproc::listener::Listener::bind_auto(None)?)?;
    /// let listener: multiproc::listener::Listener = listener.into_inner()?;
    /// # drop(listener);
    /// # Ok(())
    /// # }
    /// ```
    pub fn into_inner(self) -> io::Result<Listener> {
        let listener = self.io.into_inner().0;
        listener.set_nonblocking(false).map_err(io::Error::other)?;
        Ok(listener)
    }
}

impl fmt::Debug for AsyncListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncListener")
            .field("listener", &self.io.get_ref().0)
            .finish()
    }
}

/// The listener's side of the handshake over an async connection: the steps of
/// [`server_handshake`](crate::listener::server_handshake), each receive limited to `step` (a tokio timer).
async fn accept_handshake_async(
    conn: &mut AsyncConnection,
    key: &[u8],
    step: Duration,
) -> Result<()> {
    async fn recv(conn: &mut AsyncConnection, step: Duration) -> Result<Vec<u8>> {
        let received =
            match tokio::time::timeout(step, conn.recv_bytes_max(MAX_HANDSHAKE_MESSAGE)).await {
                Ok(r) => r.map(Some),
                Err(_elapsed) => Ok(None),
            };
        step_result(received)
    }
    let (challenge, message) = challenge_message(&new_challenge()?);
    conn.send_bytes(&challenge).await?;
    let response = recv(conn, step).await?;
    if let Err(e) = check_response(key, &message, &response) {
        let _ = conn.send_bytes(FAILURE).await;
        return Err(e);
    }
    conn.send_bytes(WELCOME).await?;
    let challenge = recv(conn, step).await?;
    conn.send_bytes(&respond(key, &challenge)?).await?;
    check_verdict(&recv(conn, step).await?)
}
