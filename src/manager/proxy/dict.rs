//! [`DictProxy`]: a dict in a manager.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::{Op, Reply};
use crate::manager::session::{FromRemote, Remote, count, decode, done, encode, maybe, unexpected};

/// A dict in a manager (Python's `DictProxy`). Every method is one round trip.
///
/// ```
/// let manager = multiproc::Manager::start()?;
/// let d = manager.dict::<String, i64>()?;
/// d.update([("a".to_string(), 1), ("b".to_string(), 2)])?;
/// assert_eq!(d.remove(&"a".to_string())?, Some(1));
/// assert_eq!(d.items()?, vec![("b".to_string(), 2)]);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct DictProxy<K, V> {
    remote: Remote,
    types: PhantomData<fn() -> (K, V)>,
}

proxy_basics!(DictProxy<K, V>);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// The value for `key` (Python's `d.get(key)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// assert_eq!(d.get(&1)?, None);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        maybe(self.remote.call(Op::DictGet(encode(key)?))?)
    }

    /// Set `key` to `value`, returning the previous value (Python's `d[key] = value`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// assert_eq!(d.insert(&1, &10)?, None);
    /// assert_eq!(d.insert(&1, &11)?, Some(10));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>, ManagerError> {
        maybe(
            self.remote
                .call(Op::DictInsert(encode(key)?, encode(value)?))?,
        )
    }

    /// Remove `key`, returning its value (Python's `d.pop(key, None)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &10)?;
    /// assert_eq!(d.remove(&1)?, Some(10));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        maybe(self.remote.call(Op::DictRemove(encode(key)?))?)
    }

    /// Whether `key` is there (Python's `key in d`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &10)?;
    /// assert!(d.contains(&1)? && !d.contains(&2)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn contains(&self, key: &K) -> Result<bool, ManagerError> {
        match self.remote.call(Op::DictContains(encode(key)?))? {
            Reply::Flag(f) => Ok(f),
            other => Err(unexpected(&other)),
        }
    }

    /// Number of entries.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.dict::<u8, u8>()?.len()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.remote.call(Op::Len)?)
    }

    /// Whether it is empty.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.dict::<u8, u8>()?.is_empty()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// The keys, in insertion order.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&2, &0)?;
    /// d.insert(&1, &0)?;
    /// assert_eq!(d.keys()?, vec![2, 1]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        super::many(self.remote.call(Op::DictKeys)?)
    }

    /// The entries, in insertion order (a snapshot taken in one round trip).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, char>()?;
    /// d.insert(&1, &'a')?;
    /// assert_eq!(d.items()?, vec![(1, 'a')]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        match self.remote.call(Op::DictItems)? {
            Reply::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
                .collect(),
            other => Err(unexpected(&other)),
        }
    }

    /// Insert every pair, in one round trip (Python's `d.update(...)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.update([(1, 1), (2, 4)])?;
    /// assert_eq!(d.len()?, 2);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), ManagerError> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<Vec<_>, ManagerError>>()?;
        done(self.remote.call(Op::DictUpdate(pairs))?)
    }

    /// Remove every entry.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let d = m.dict::<u8, u8>()?;
    /// d.insert(&1, &1)?;
    /// d.clear()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn clear(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::Clear)?)
    }
}
