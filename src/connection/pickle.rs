//! Python's pickle over a connection (feature `pickle`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Connection, Result};

impl Connection {
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
}
