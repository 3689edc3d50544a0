//! Connections between processes that did not start each other: [`Listener`] and
//! [`Client`] (Python's `multiprocessing.connection.Listener` and `Client`), over a Unix
//! socket (a path, or a name in Linux's abstract namespace) or TCP, optionally authenticated
//! with a shared key.
//!
//! Both give the same [`Connection`] as [`pipe`](crate::pipe), and they speak Python's wire
//! protocol exactly: its framing (a 4-byte big-endian length, or `-1` and an 8-byte length
//! above 2 GiB) and its HMAC challenge/response handshake, in both the digest-prefixed form of
//! CPython 3.12+ (`{sha256}...`) and the raw HMAC-MD5 of CPython 3.11 and earlier. So a Rust
//! program can accept `multiprocessing.connection.Client(address, authkey=...)` from Python
//! and connect to a Python `Listener`, and exchange `send_bytes`/`recv_bytes` both ways.
//!
//! ```
//! use multiproc::listener::{Client, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:0", Some(b"secret"))?;
//! let address = listener.address().clone();
//! let peer = std::thread::spawn(move || -> Result<Vec<u8>, multiproc::ConnectionError> {
//!     let mut conn = Client::connect(&address, Some(b"secret"))?;
//!     conn.send_bytes(b"ping")?;
//!     conn.recv_bytes()
//! });
//! let mut conn = listener.accept()?;
//! assert_eq!(conn.recv_bytes()?, b"ping");
//! conn.send_bytes(b"pong")?;
//! assert_eq!(peer.join().unwrap()?, b"pong");
//! # Ok::<(), multiproc::ConnectionError>(())
//! ```
//!
//! # Security
//! With a key, nothing from the peer is decoded before the handshake succeeds (the handshake
//! reads at most 256 bytes per step, as raw bytes); digests are compared in constant time;
//! each step has a deadline ([`Listener::set_handshake_timeout`], 10 s by default), so a peer
//! that stalls or sends garbage makes one `accept` fail with
//! [`ConnectionError::Authentication`] and the listener goes on serving others. Peers are
//! authenticated concurrently, so a stalled one does not delay the others meanwhile. Without a key
//! anyone who can reach the address can connect, as in Python.

use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};

mod address;
mod handshakes;

pub use address::{Address, IntoAddress};

use crate::connection::{Connection, ConnectionError, Result};
use crate::sys;

/// How long each step of the handshake may take by default.
///
/// ```
/// assert_eq!(multiproc::listener::DEFAULT_HANDSHAKE_TIMEOUT, std::time::Duration::from_secs(10));
/// ```
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

enum Socket {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A socket that accepts [`Connection`]s (Python's `multiprocessing.connection.Listener`).
///
/// [`bind_auto`](Self::bind_auto) listens on a fresh name in Linux's abstract socket
/// namespace, which leaves no file behind even if the process is killed. A socket file at a
/// path you gave is removed when the listener is dropped (a killed process leaves it, as in
/// Python).
///
/// ```
/// use multiproc::listener::{Client, Listener};
/// let path = std::env::temp_dir().join(format!("multiproc-doc-{}.sock", std::process::id()));
/// let listener = Listener::bind(path.as_path(), None)?;
/// let mut client = Client::connect(path.as_path(), None)?;
/// let mut server = listener.accept()?;
/// client.send(&(1, "one"))?;
/// assert_eq!(server.recv::<(i32, String)>()?, (1, "one".to_string()));
/// drop(listener);
/// assert!(!path.exists());
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
pub struct Listener {
    socket: Socket,
    address: Address,
    authkey: Option<std::sync::Arc<[u8]>>,
    handshake_timeout: Duration,
    /// The handshakes in progress (keyed listeners, from the first `accept`).
    handshakes: std::sync::OnceLock<handshakes::Handshakes>,
}

impl Listener {
    /// Listen on `address`; with `authkey`, every accepted peer must prove it knows the key
    /// (and is shown that this side does). A TCP port 0 picks a free port
    /// ([`address`](Self::address) tells which).
    ///
    /// ```
    /// let listener = multiproc::listener::Listener::bind("127.0.0.1:0", Some(b"key"))?;
    /// assert!(matches!(listener.address(), multiproc::listener::Address::Tcp(a) if a.port() != 0));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn bind(address: impl IntoAddress, authkey: Option<&[u8]>) -> Result<Listener> {
        let (fd, address) = bind_socket(address.into_address()?)?;
        Ok(Listener::from_parts(fd, address, authkey))
    }

    /// Listen on a fresh Unix address in Linux's abstract namespace,
    /// `"\0multiproc-<pid>-<random>"` (Python's `Listener()` without an address, minus the
    /// socket file): nothing is created on disk, so nothing is left behind however this
    /// process ends. Send [`address`](Self::address) to the peers that should connect.
    ///
    /// ```
    /// use multiproc::listener::{Address, Client, Listener};
    /// let listener = Listener::bind_auto(Some(b"key"))?;
    /// assert!(matches!(listener.address(), Address::Abstract(_)));
    /// let address = listener.address().clone();
    /// let peer = std::thread::spawn(move || Client::connect(&address, Some(b"key")));
    /// let mut conn = listener.accept()?;
    /// peer.join().unwrap()?.send_bytes(b"hi")?;
    /// assert_eq!(conn.recv_bytes()?, b"hi");
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn bind_auto(authkey: Option<&[u8]>) -> Result<Listener> {
        Listener::bind(Address::arbitrary()?, authkey)
    }

    /// A listener on a socket bound by [`bind_socket`] (possibly in another process: the
    /// manager binds in the user's process and serves in its server process).
    pub(crate) fn from_parts(fd: OwnedFd, address: Address, authkey: Option<&[u8]>) -> Listener {
        let socket = match address {
            Address::Unix(_) | Address::Abstract(_) => Socket::Unix(UnixListener::from(fd)),
            Address::Tcp(_) => Socket::Tcp(TcpListener::from(fd)),
        };
        Listener {
            socket,
            address,
            authkey: authkey.map(std::sync::Arc::from),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshakes: std::sync::OnceLock::new(),
        }
    }

    /// The address it listens on (with the port the system chose for port 0).
    ///
    /// ```
    /// let listener = multiproc::listener::Listener::bind("127.0.0.1:0", None)?;
    /// println!("listening on {}", listener.address());
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// How long each step of an accepted peer's handshake may take (10 s by default).
    ///
    /// ```
    /// let mut listener = multiproc::listener::Listener::bind("127.0.0.1:0", Some(b"k"))?;
    /// listener.set_handshake_timeout(std::time::Duration::from_secs(1));
    /// # Ok::<(), multiproc::ConnectionError>(())
    /// ```
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Wait for the next peer and return a connection to it. With a key, the handshake runs
    /// first (this side challenges, then answers the peer's challenge, as Python's
    /// `Listener.accept` does); if it fails, this call returns
    /// [`ConnectionError::Authentication`] and the listener can go on accepting.
    ///
    /// Peers are authenticated concurrently (unlike Python, which takes them one at a time):
    /// a peer that connects and stalls in the handshake does not delay the others, and this
    /// returns the first peer to finish its handshake.
    ///
    /// ```
    /// use multiproc::listener::{Client, Listener};
    /// use multiproc::ConnectionError;
    /// let listener = Listener::bind("127.0.0.1:0", Some(b"right"))?;
    /// let address = listener.address().clone();
    /// let intruder = std::thread::spawn(move || Client::connect(&address, Some(b"wrong")).map(drop));
    /// assert!(matches!(listener.accept(), Err(ConnectionError::Authentication(_))));
    /// assert!(matches!(intruder.join().unwrap(), Err(ConnectionError::Authentication(_))));
    /// # Ok::<(), ConnectionError>(())
    /// ```
    pub fn accept(&self) -> Result<Connection> {
        let Some(key) = &self.authkey else {
            return Ok(Connection::new(self.accept_peer()?));
        };
        let handshakes = match self.handshakes.get() {
            Some(h) => h,
            None => {
                let _ = self.handshakes.set(handshakes::Handshakes::new()?);
                self.handshakes
                    .get()
                    .ok_or_else(|| ConnectionError::Io(io::Error::other("handshakes not set")))?
            }
        };
        handshakes.next(
            self.listening_fd(),
            || Ok(self.accept_peer()?),
            key,
            self.handshake_timeout,
        )
    }

    /// Accept one peer's socket, without a handshake.
    fn accept_peer(&self) -> io::Result<OwnedFd> {
        Ok(match &self.socket {
            Socket::Unix(socket) => socket.accept()?.0.into(),
            Socket::Tcp(socket) => {
                let (stream, _) = socket.accept()?;
                stream.set_nodelay(true)?;
                stream.into()
            }
        })
    }

    fn listening_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match &self.socket {
            Socket::Unix(s) => s.as_fd(),
            Socket::Tcp(s) => s.as_fd(),
        }
    }
}

/// For servers that authenticate each peer on a thread of their own (the manager's).
impl Listener {
    /// Accept a peer's socket (a `WouldBlock` error when none waits and the socket is
    /// non-blocking); no handshake.
    pub(crate) fn accept_socket(&self) -> std::io::Result<OwnedFd> {
        self.accept_peer()
    }

    /// How long a peer's handshake may take.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

#[cfg(feature = "async")]
impl Listener {
    /// Switch the listening socket's blocking mode (the async listener makes it
    /// non-blocking while it owns it).
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> Result<()> {
        use std::os::fd::AsFd;
        let fd = match &self.socket {
            Socket::Unix(s) => s.as_fd(),
            Socket::Tcp(s) => s.as_fd(),
        };
        Ok(sys::set_nonblocking(fd, nonblocking)?)
    }

    /// The listening socket's descriptor number.
    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match &self.socket {
            Socket::Unix(s) => s.as_raw_fd(),
            Socket::Tcp(s) => s.as_raw_fd(),
        }
    }

    pub(crate) fn authkey(&self) -> Option<&[u8]> {
        self.authkey.as_deref()
    }
}

/// Bind a listening socket; returns it and the address it is bound to (the chosen port for
/// TCP port 0).
pub(crate) fn bind_socket(address: Address) -> Result<(OwnedFd, Address)> {
    Ok(match address {
        Address::Unix(path) => (UnixListener::bind(&path)?.into(), Address::Unix(path)),
        Address::Abstract(name) => (sys::listen_abstract(&name)?, Address::Abstract(name)),
        Address::Tcp(addr) => {
            let socket = TcpListener::bind(addr)?;
            let bound = socket.local_addr()?;
            (socket.into(), Address::Tcp(bound))
        }
    })
}

impl Drop for Listener {
    fn drop(&mut self) {
        // An abstract name needs nothing: it goes with the socket.
        if let Address::Unix(path) = &self.address {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("authenticated", &self.authkey.is_some())
            .finish()
    }
}

/// Connect to a [`Listener`] (Python's `multiprocessing.connection.Client`).
///
/// ```
/// use multiproc::listener::{Client, Listener};
/// let listener = Listener::bind("127.0.0.1:0", None)?;
/// let mut client = Client::connect(listener.address(), None)?;
/// let mut server = listener.accept()?;
/// server.send_bytes(b"hi")?;
/// assert_eq!(client.recv_bytes()?, b"hi");
/// # Ok::<(), multiproc::ConnectionError>(())
/// ```
#[derive(Debug)]
pub struct Client {
    _private: (),
}

impl Client {
    /// Connect to `address`; with `authkey`, answer the listener's challenge and then
    /// challenge it (as Python's `Client` does), with [`DEFAULT_HANDSHAKE_TIMEOUT`] per step.
    ///
    /// ```
    /// use multiproc::listener::Client;
    /// // Nothing listens there.
    /// assert!(Client::connect("/nonexistent/multiproc.sock", None).is_err());
    /// ```
    pub fn connect(address: impl IntoAddress, authkey: Option<&[u8]>) -> Result<Connection> {
        let fd: OwnedFd = match address.into_address()? {
            Address::Unix(path) => UnixStream::connect(path)?.into(),
            Address::Abstract(name) => sys::connect_abstract(&name)?,
            Address::Tcp(addr) => {
                let stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.into()
            }
        };
        let mut conn = Connection::new(fd);
        if let Some(key) = authkey {
            client_handshake(&mut conn, key, &new_challenge()?, DEFAULT_HANDSHAKE_TIMEOUT)?;
        }
        Ok(conn)
    }
}

// ----- the handshake -----------------------------------------------------------------------
//
// Python's protocol (Lib/multiprocessing/connection.py): the challenger sends `#CHALLENGE#`
// followed by a message, the answerer replies with an HMAC of the message under the shared
// key, and the challenger answers `#WELCOME#` or `#FAILURE#`. CPython 3.12+ prefixes the
// message with `{digest}` and the reply likewise; 3.11 and earlier send a 20-byte message and
// expect a raw 16-byte HMAC-MD5. Each side tells the forms apart by length, as CPython does.

const CHALLENGE: &[u8] = b"#CHALLENGE#";
pub(crate) const WELCOME: &[u8] = b"#WELCOME#";
pub(crate) const FAILURE: &[u8] = b"#FAILURE#";
/// Random bytes in a challenge (CPython's `MESSAGE_LENGTH`).
const MESSAGE_LENGTH: usize = 40;
/// The length of a legacy challenge, and of a legacy (raw HMAC-MD5) reply.
const LEGACY_LENGTHS: [usize; 2] = [20, 16];
/// The most any handshake message may be (CPython reads at most 256 bytes).
pub(crate) const MAX_HANDSHAKE_MESSAGE: u64 = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Digest {
    Md5,
    Sha256,
    Sha384,
}

impl Digest {
    fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
        }
    }

    fn parse(name: &[u8]) -> Option<Digest> {
        match name {
            b"md5" => Some(Digest::Md5),
            b"sha256" => Some(Digest::Sha256),
            b"sha384" => Some(Digest::Sha384),
            _ => None,
        }
    }

    /// HMAC of `message` under `key`.
    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length, so this cannot fail.
            let mut mac = <M as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message),
        }
    }

    /// Whether `mac` is the HMAC of `message` under `key`, compared in constant time.
    fn verify(self, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
        fn run<M: Mac + KeyInit>(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
                return false;
            };
            m.update(message);
            m.verify_slice(tag).is_ok()
        }
        match self {
            Digest::Md5 => run::<Hmac<md5::Md5>>(key, message, mac),
            Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, message, mac),
            Digest::Sha384 => run::<Hmac<sha2::Sha384>>(key, message, mac),
        }
    }
}

fn auth_error(what: impl Into<String>) -> ConnectionError {
    ConnectionError::Authentication(what.into())
}

/// The digest a message names (`None`: the legacy, unprefixed form) and its payload.
fn digest_and_payload(message: &[u8]) -> Result<(Option<Digest>, &[u8])> {
    if LEGACY_LENGTHS.contains(&message.len()) {
        return Ok((None, message));
    }
    if let Some(rest) = message.strip_prefix(b"{")
        && let Some(end) = rest.iter().take(10).position(|&b| b == b'}')
    {
        let name = &rest[..end];
        return match Digest::parse(name) {
            Some(digest) => Ok((Some(digest), &rest[end + 1..])),
            None => Err(auth_error(format!(
                "unsupported digest {:?}",
                String::from_utf8_lossy(name)
            ))),
        };
    }
    Err(auth_error(format!(
        "unsupported message length ({} bytes) or missing digest prefix",
        message.len()
    )))
}

/// One handshake message, within the step's deadline and size limit.
fn recv_step(conn: &mut Connection, deadline: Option<Instant>) -> Result<Vec<u8>> {
    step_result(conn.recv_bytes_before(MAX_HANDSHAKE_MESSAGE, deadline))
}

/// What a handshake step's receive (`Ok(None)`: not in time) means for the handshake.
pub(crate) fn step_result(received: Result<Option<Vec<u8>>>) -> Result<Vec<u8>> {
    match received {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(auth_error(
            "the peer did not complete the handshake in time",
        )),
        Err(ConnectionError::TooLarge { len, .. }) => Err(auth_error(format!(
            "handshake message of {len} bytes is too large"
        ))),
        Err(ConnectionError::Eof | ConnectionError::Truncated { .. }) => Err(auth_error(
            "the peer closed the connection during the handshake",
        )),
        Err(e) => Err(e),
    }
}

/// The random part of a challenge this side sends.
pub(crate) type Challenge = [u8; MESSAGE_LENGTH];

pub(crate) fn new_challenge() -> Result<Challenge> {
    let mut random = [0u8; MESSAGE_LENGTH];
    sys::random_bytes(&mut random)?;
    Ok(random)
}

/// The listener's side of the handshake (`Listener::accept`): challenge the peer with
/// `random`, then answer its challenge; each step within `timeout`. The challenge is a
/// parameter so that the fuzz targets (`crate::fuzzing`) can play a peer that answers it.
pub(crate) fn server_handshake(
    conn: &mut Connection,
    key: &[u8],
    random: &Challenge,
    timeout: Duration,
) -> Result<()> {
    handshake(conn, key, random, timeout, Side::Listener)
}

/// The client's side of the handshake (`Client::connect`): answer the listener's challenge,
/// then challenge it with `random`.
pub(crate) fn client_handshake(
    conn: &mut Connection,
    key: &[u8],
    random: &Challenge,
    timeout: Duration,
) -> Result<()> {
    handshake(conn, key, random, timeout, Side::Client)
}

/// Which side speaks first in the handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Challenges first, then answers.
    Listener,
    /// Answers first, then challenges.
    Client,
}

fn handshake(
    conn: &mut Connection,
    key: &[u8],
    random: &Challenge,
    timeout: Duration,
    side: Side,
) -> Result<()> {
    let deadline = || crate::deadline::after(timeout);
    if side == Side::Listener {
        deliver_challenge(conn, key, random, deadline)?;
        answer_challenge(conn, key, deadline)
    } else {
        answer_challenge(conn, key, deadline)?;
        deliver_challenge(conn, key, random, deadline)
    }
}

// The steps of the handshake without their I/O, shared by the blocking handshake above and
// the async listener's (`accept_handshake_async`).

/// The challenge message for `random`: what is sent, and the part the response's MAC covers.
pub(crate) fn challenge_message(random: &Challenge) -> (Vec<u8>, Vec<u8>) {
    let mut message = format!("{{{}}}", Digest::Sha256.name()).into_bytes();
    message.extend_from_slice(random);
    ([CHALLENGE, &message].concat(), message)
}

/// Check the peer's response to our challenge `message`.
pub(crate) fn check_response(key: &[u8], message: &[u8], response: &[u8]) -> Result<()> {
    let verified = digest_and_payload(response)
        .map(|(digest, mac)| digest.unwrap_or(Digest::Md5).verify(key, message, mac))?;
    if verified {
        Ok(())
    } else {
        Err(auth_error("digest received was wrong (wrong authkey?)"))
    }
}

/// Our response to the peer's `challenge`.
pub(crate) fn respond(key: &[u8], challenge: &[u8]) -> Result<Vec<u8>> {
    let Some(message) = challenge.strip_prefix(CHALLENGE) else {
        return Err(auth_error("protocol error: expected a challenge"));
    };
    if message.len() < LEGACY_LENGTHS[0] {
        return Err(auth_error(format!(
            "challenge too short: {} bytes",
            message.len()
        )));
    }
    Ok(match digest_and_payload(message)?.0 {
        // A legacy peer (CPython 3.11 and earlier): a raw HMAC-MD5.
        None => Digest::Md5.mac(key, message),
        Some(digest) => {
            let mut response = format!("{{{}}}", digest.name()).into_bytes();
            response.extend(digest.mac(key, message));
            response
        }
    })
}

/// The peer's verdict on our response.
pub(crate) fn check_verdict(verdict: &[u8]) -> Result<()> {
    if verdict != WELCOME {
        return Err(auth_error("digest sent was rejected (wrong authkey?)"));
    }
    Ok(())
}

/// Challenge the peer to prove it knows `key`; tell it whether it did.
fn deliver_challenge(
    conn: &mut Connection,
    key: &[u8],
    random: &Challenge,
    deadline: impl Fn() -> Option<Instant>,
) -> Result<()> {
    let (challenge, message) = challenge_message(random);
    conn.send_bytes(&challenge)?;
    let response = recv_step(conn, deadline())?;
    match check_response(key, &message, &response) {
        Ok(()) => {
            conn.send_bytes(WELCOME)?;
            Ok(())
        }
        Err(e) => {
            let _ = conn.send_bytes(FAILURE);
            Err(e)
        }
    }
}

/// Answer the peer's challenge with `key`.
fn answer_challenge(
    conn: &mut Connection,
    key: &[u8],
    deadline: impl Fn() -> Option<Instant>,
) -> Result<()> {
    let challenge = recv_step(conn, deadline())?;
    conn.send_bytes(&respond(key, &challenge)?)?;
    check_verdict(&recv_step(conn, deadline())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_prefixes_are_parsed_like_cpython() {
        assert_eq!(digest_and_payload(&[7; 20]).unwrap().0, None);
        assert_eq!(digest_and_payload(&[7; 16]).unwrap().0, None);
        let (d, rest) = digest_and_payload(b"{sha256}abcdefghijklmnopqrstuvwxyz").unwrap();
        assert_eq!(
            (d, rest),
            (Some(Digest::Sha256), &b"abcdefghijklmnopqrstuvwxyz"[..])
        );
        assert!(digest_and_payload(b"{whirlpool}abcdefghijklmnopqrstuvwxyz").is_err());
        assert!(digest_and_payload(b"no prefix and the wrong length").is_err());
    }

    #[test]
    fn hmac_matches_known_vectors() {
        // RFC 2202 test case 2 (HMAC-MD5) and RFC 4231 test case 2 (HMAC-SHA-256).
        let md5 = Digest::Md5.mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            md5,
            [
                0x75, 0x0c, 0x78, 0x3e, 0x6a, 0xb0, 0xb5, 0x03, 0xea, 0xa8, 0x6e, 0x31, 0x0a, 0x5d,
                0xb7, 0x38
            ]
        );
        let sha = Digest::Sha256.mac(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sha[..4], [0x5b, 0xdc, 0xc1, 0x46]);
        assert!(Digest::Sha256.verify(b"Jefe", b"what do ya want for nothing?", &sha));
        assert!(!Digest::Sha256.verify(b"jefe", b"what do ya want for nothing?", &sha));
    }
}
