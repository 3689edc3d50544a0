//! [`NamespaceProxy`]: named values of any type in a manager.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::{Op, Reply};
use crate::manager::session::{FromRemote, Remote, done, encode, maybe, unexpected};

/// A namespace in a manager: named values, each of its own type (Python's `Namespace`).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let ns = m.namespace()?;
/// ns.set("name", &"worker")?;
/// assert_eq!(ns.get::<String>("name")?, Some("worker".to_string()));
/// assert_eq!(ns.remove::<String>("name")?, Some("worker".to_string()));
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct NamespaceProxy {
    remote: Remote,
}

untyped_proxy!(NamespaceProxy);

impl NamespaceProxy {
    /// The value called `name`, decoded as `T` (Python's `ns.name`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.namespace()?.get::<u8>("missing")?, None);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::NsGet(name.to_string()))?)
    }

    /// Set the value called `name` (Python's `ns.name = value`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.namespace()?.set("x", &[1, 2])?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<(), ManagerError> {
        done(
            self.remote
                .call(Op::NsSet(name.to_string(), encode(value)?))?,
        )
    }

    /// Remove the value called `name`, returning it (Python's `del ns.name`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let ns = m.namespace()?;
    /// ns.set("x", &1u8)?;
    /// assert_eq!(ns.remove::<u8>("x")?, Some(1));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn remove<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::NsRemove(name.to_string()))?)
    }

    /// The names, in the order they were first set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.namespace()?.names()?.is_empty());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn names(&self) -> Result<Vec<String>, ManagerError> {
        match self.remote.call(Op::NsNames)? {
            Reply::Names(names) => Ok(names),
            other => Err(unexpected(&other)),
        }
    }
}
