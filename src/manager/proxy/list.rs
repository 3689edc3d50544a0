//! [`ListProxy`], and [`ArrayProxy`], a list whose length never changes.

use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::Op;
use crate::manager::session::{FromRemote, Remote, count, done, encode, maybe};

/// A list in a manager (Python's `ListProxy`). Indexes may be negative, as in Python.
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let l = m.list::<i32>()?;
/// l.extend([1, 2, 3])?;
/// l.set(-1, &30)?;
/// assert_eq!(l.pop()?, Some(30));
/// assert_eq!(l.get(0)?, Some(1));
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ListProxy<T> {
    pub(in crate::manager) remote: Remote,
    types: PhantomData<fn() -> T>,
}

proxy_basics!(ListProxy<T>);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Append `value` (Python's `l.append(v)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.push(&1)?;
    /// assert_eq!(l.items()?, vec![1]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn push(&self, value: &T) -> Result<(), ManagerError> {
        done(self.remote.call(Op::ListPush(encode(value)?))?)
    }

    /// The item at `index` (negative: from the end), `None` out of range.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2])?;
    /// assert_eq!((l.get(-1)?, l.get(5)?), (Some(2), None));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get(&self, index: i64) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::ListGet(index))?)
    }

    /// Replace the item at `index`; [`ManagerError::Refused`] out of range.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.push(&1)?;
    /// l.set(0, &9)?;
    /// assert!(l.set(3, &9).is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set(&self, index: i64, value: &T) -> Result<(), ManagerError> {
        done(self.remote.call(Op::ListSet(index, encode(value)?))?)
    }

    /// Append every item, in one round trip.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend(0..3)?;
    /// assert_eq!(l.len()?, 3);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        let items = items
            .into_iter()
            .map(|v| encode(&v))
            .collect::<Result<Vec<_>, _>>()?;
        done(self.remote.call(Op::ListExtend(items))?)
    }

    /// Remove and return the last item.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// assert_eq!(l.pop()?, None);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn pop(&self) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::ListPop(None))?)
    }

    /// Remove and return the item at `index`.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<u8>()?;
    /// l.extend([1, 2, 3])?;
    /// assert_eq!(l.pop_at(0)?, Some(1));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn pop_at(&self, index: i64) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::ListPop(Some(index)))?)
    }

    /// Number of items.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.list::<u8>()?.len()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.remote.call(Op::Len)?)
    }

    /// Whether it is empty.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.list::<u8>()?.is_empty()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// Every item (a snapshot taken in one round trip).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let l = m.list::<String>()?;
    /// l.push(&"a".into())?;
    /// assert_eq!(l.items()?, vec!["a".to_string()]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn items(&self) -> Result<Vec<T>, ManagerError> {
        super::many(self.remote.call(Op::ListItems)?)
    }
}

/// A fixed-length array in a manager (Python's `manager.Array()` proxy): items are read
/// and written by index; its length never changes. See [`Manager::array`](crate::manager::Manager::array).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let a = m.array(&[1u32, 2, 3])?;
/// assert_eq!(a.get(-1)?, Some(3));
/// assert_eq!(a.len()?, 3);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArrayProxy<T> {
    pub(in crate::manager) list: ListProxy<T>,
}

wrapping_proxy!(ArrayProxy, list);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    /// The item at `index` (negative: from the end), `None` out of range.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.array(&[5u8])?.get(0)?, Some(5));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get(&self, index: i64) -> Result<Option<T>, ManagerError> {
        self.list.get(index)
    }

    /// Replace the item at `index`; [`ManagerError::Refused`] out of range.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let a = m.array(&[5u8])?;
    /// a.set(0, &6)?;
    /// assert!(a.set(1, &6).is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set(&self, index: i64, value: &T) -> Result<(), ManagerError> {
        self.list.set(index, value)
    }

    /// The length.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.array(&[0u8; 7])?.len()?, 7);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.list.len()
    }

    /// Whether it has no items.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.array::<u8>(&[])?.is_empty()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        self.list.is_empty()
    }

    /// Every item (a snapshot taken in one round trip).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.array(&[1u8, 2])?.items()?, vec![1, 2]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn items(&self) -> Result<Vec<T>, ManagerError> {
        self.list.items()
    }
}
