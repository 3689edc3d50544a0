//! [`ValueProxy`]: one value in a manager.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::Op;
use crate::manager::session::{FromRemote, Remote, done, encode, required};

/// One value in a manager (Python's `manager.Value`). `get` and `set` are each atomic; for
/// read-modify-write across processes use a lock or a dict/list operation.
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let v = m.value(&"start".to_string())?;
/// v.set(&"end".to_string())?;
/// assert_eq!(v.get()?, "end");
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ValueProxy<T> {
    remote: Remote,
    types: PhantomData<fn() -> T>,
}

proxy_basics!(ValueProxy<T>);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The current value.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.value(&5i32)?.get()?, 5);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get(&self) -> Result<T, ManagerError> {
        required(self.remote.call(Op::ValueGet)?)
    }

    /// Replace the value.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let v = m.value(&5i32)?;
    /// v.set(&6)?;
    /// assert_eq!(v.get()?, 6);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set(&self, value: &T) -> Result<(), ManagerError> {
        done(self.remote.call(Op::ValueSet(encode(value)?))?)
    }
}
