//! The one error type of managers and proxies.

use crate::connection::ConnectionError;
use crate::handle::CodecError;
use crate::process::ProcessError;

/// What can go wrong with a manager or a proxy.
///
/// ```
/// use multiproc::manager::ManagerError;
/// let m = multiproc::Manager::start()?;
/// let l = m.list::<u8>()?;
/// // The server refuses what it cannot do, and the proxy stays usable.
/// assert!(matches!(l.set(0, &1), Err(ManagerError::Refused(_))));
/// l.push(&1)?;
/// // Once the server is gone, every call says so.
/// m.shutdown()?;
/// assert!(matches!(l.len(), Err(ManagerError::Disconnected { .. })));
/// # Ok::<(), ManagerError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server cannot be reached or went away (it was shut down, or died).
    #[error("the manager at {address} is unreachable: {reason}")]
    Disconnected {
        /// Where the manager was.
        address: String,
        /// Why.
        reason: String,
    },
    /// The server refused the operation (an index out of range, a name used for another
    /// kind of object, ...).
    #[error("the manager refused: {0}")]
    Refused(String),
    /// A key or value could not be encoded or decoded as the proxy's type.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The server process could not be started.
    #[error("could not start the manager: {0}")]
    Start(#[from] ProcessError),
    /// Binding or connecting failed (including authentication).
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}
