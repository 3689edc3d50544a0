//! [`ManagerBuilder`]: where a manager's server listens and with which key.

use serde_bytes::ByteBuf;

use super::server::{self, ServerArgs};
use super::session::{Endpoint, Session};
use super::{Manager, ManagerError};
use crate::connection::ConnectionError;
use crate::handle::Handle;
use crate::listener::{Address, IntoAddress};
use crate::process::ProcessBuilder;

/// Settings for a manager's server: where it listens and with which key.
///
/// ```
/// let manager = multiproc::Manager::builder()
///     .address("127.0.0.1:0")
///     .authkey(b"team secret")
///     .build()?;
/// println!("serving on {}", manager.address());
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Debug, Default)]
pub struct ManagerBuilder {
    address: Option<String>,
    authkey: Option<Vec<u8>>,
}

impl ManagerBuilder {
    /// Listen on this address (`"host:port"` for TCP, a path for a Unix socket, `"\0name"`
    /// for a name in Linux's abstract socket namespace); by default a fresh abstract name,
    /// so no socket file exists to be left behind.
    ///
    /// ```
    /// let builder = multiproc::Manager::builder().address("0.0.0.0:50000");
    /// ```
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Require this key from every client (by default 32 random bytes, which children
    /// receive with the proxies).
    ///
    /// ```
    /// let builder = multiproc::Manager::builder().authkey(b"abc");
    /// ```
    pub fn authkey(mut self, key: &[u8]) -> Self {
        self.authkey = Some(key.to_vec());
        self
    }

    /// Start the server process (renamed from `start`: every builder of the crate ends
    /// with `build`).
    ///
    /// ```
    /// let manager = multiproc::Manager::builder().build()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    #[deprecated(
        since = "0.2.0",
        note = "renamed to `build`, like every builder of the crate"
    )]
    pub fn start(self) -> Result<Manager, ManagerError> {
        self.build()
    }

    /// Start the server process and return the manager connected to it.
    ///
    /// ```
    /// let manager = multiproc::Manager::builder().authkey(b"secret").build()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn build(self) -> Result<Manager, ManagerError> {
        let authkey = match self.authkey {
            Some(key) => key,
            None => {
                let mut key = vec![0u8; 32];
                crate::sys::random_bytes(&mut key).map_err(ConnectionError::from)?;
                key
            }
        };
        let address = match self.address {
            Some(a) => a.into_address().map_err(ConnectionError::from)?,
            // No file to leave behind, even if this process is killed.
            None => Address::arbitrary().map_err(ConnectionError::from)?,
        };
        let (socket, address) = crate::listener::bind_socket(address)?;
        let args = ServerArgs {
            socket: Handle::new(socket),
            address: address.clone(),
            authkey: ByteBuf::from(authkey.clone()),
        };
        let server = ProcessBuilder::new()
            .name("SyncManager")
            .daemon(true)
            .start(server::serve, args)?;
        Ok(Manager {
            session: Session::new(Endpoint {
                address,
                authkey: ByteBuf::from(authkey),
            }),
            server: Some(server),
        })
    }
}
