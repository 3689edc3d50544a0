//! [`Address`]: where a listener listens and a client connects, and [`IntoAddress`], what
//! can name one.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::sys;

/// Where a [`Listener`](super::Listener) listens and a [`Client`](super::Client) connects: a Unix socket path, a name in
/// Linux's abstract socket namespace, or a TCP address (Python's `AF_UNIX` strings, with
/// `"\0name"` for an abstract name, and its `AF_INET` `(host, port)` tuple).
///
/// Parsed from a string: one starting with a NUL byte is an abstract name (Python's
/// convention), `"host:port"` (or `"[v6]:port"`) is TCP, anything else a path. A path that
/// starts with a NUL byte is an abstract name too.
///
/// ```
/// use multiproc::listener::Address;
/// assert!(matches!("127.0.0.1:6000".parse::<Address>()?, Address::Tcp(_)));
/// assert!(matches!("/tmp/app.sock".parse::<Address>()?, Address::Unix(_)));
/// let abstract_name = Address::Abstract(b"app".to_vec());
/// assert_eq!("\0app".parse::<Address>()?, abstract_name);
/// assert_eq!(abstract_name.to_string().parse::<Address>()?, abstract_name); // Python's "\0app"
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A Unix domain socket at this path (a file that stays until it is removed).
    Unix(PathBuf),
    /// A TCP socket.
    Tcp(SocketAddr),
    /// A Unix domain socket with this name (without the leading NUL byte) in Linux's abstract
    /// namespace: no file, the name is freed when the listening socket is closed, however its
    /// process ends.
    Abstract(Vec<u8>),
}

impl Address {
    /// A fresh abstract Unix address, `"\0multiproc-<pid>-<random>"` (Python's
    /// `arbitrary_address`, without its file): what a listener or a manager uses when given
    /// no address.
    pub(crate) fn arbitrary() -> io::Result<Address> {
        let mut tag = [0u8; 8];
        sys::random_bytes(&mut tag)?;
        Ok(Address::Abstract(
            format!(
                "multiproc-{}-{:016x}",
                std::process::id(),
                u64::from_le_bytes(tag)
            )
            .into_bytes(),
        ))
    }

    /// A Unix address from a path: an abstract name if it starts with a NUL byte.
    fn unix(path: PathBuf) -> Address {
        match path.as_os_str().as_bytes().strip_prefix(b"\0") {
            Some(name) => Address::Abstract(name.to_vec()),
            None => Address::Unix(path),
        }
    }
}

impl FromStr for Address {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Address> {
        if s.starts_with('\0') || s.contains('/') || !s.contains(':') {
            return Ok(Address::unix(PathBuf::from(s)));
        }
        s.to_socket_addrs()?
            .next()
            .map(Address::Tcp)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("no address for {s:?}"))
            })
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Address {
        Address::Tcp(addr)
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Address {
        Address::unix(path)
    }
}

impl From<&Path> for Address {
    fn from(path: &Path) -> Address {
        Address::unix(path.to_path_buf())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            // Python's spelling, which parses back to the same address.
            Address::Abstract(name) => write!(f, "\0{}", OsStr::from_bytes(name).display()),
            Address::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// Anything that names an [`Address`]: an `Address`, a string, a `SocketAddr`, a path.
///
/// ```
/// use multiproc::listener::{Address, IntoAddress};
/// assert_eq!("10.0.0.1:80".into_address()?, Address::Tcp("10.0.0.1:80".parse().unwrap()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait IntoAddress {
    /// The address.
    fn into_address(self) -> io::Result<Address>;
}

impl IntoAddress for Address {
    fn into_address(self) -> io::Result<Address> {
        Ok(self)
    }
}

impl IntoAddress for &Address {
    fn into_address(self) -> io::Result<Address> {
        Ok(self.clone())
    }
}

impl IntoAddress for &str {
    fn into_address(self) -> io::Result<Address> {
        self.parse()
    }
}

impl IntoAddress for String {
    fn into_address(self) -> io::Result<Address> {
        self.parse()
    }
}

impl IntoAddress for SocketAddr {
    fn into_address(self) -> io::Result<Address> {
        Ok(Address::Tcp(self))
    }
}

impl IntoAddress for &Path {
    fn into_address(self) -> io::Result<Address> {
        Ok(Address::from(self))
    }
}

impl IntoAddress for PathBuf {
    fn into_address(self) -> io::Result<Address> {
        Ok(Address::from(self))
    }
}
