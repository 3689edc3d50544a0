//! [`QueueProxy`] and [`JoinableQueueProxy`]: queues in a manager.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::manager::ManagerError;
use crate::manager::server::Op;
use crate::manager::session::{
    FromRemote, Remote, count, done, encode, flag, maybe, millis, required,
};

/// A queue in a manager (Python's `manager.Queue()` proxy).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let q = m.queue::<u32>(1)?;
/// q.put(&1)?;
/// assert!(!q.put_timeout(&2, std::time::Duration::from_millis(10))?); // full
/// assert_eq!(q.get_timeout(std::time::Duration::from_secs(1))?, Some(1));
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct QueueProxy<T> {
    remote: Remote,
    types: PhantomData<fn() -> T>,
}

proxy_basics!(QueueProxy<T>);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// Put `item`, waiting while the queue is full.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.queue::<u8>(0)?.put(&1)?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn put(&self, item: impl Borrow<T>) -> Result<(), ManagerError> {
        flag(
            self.remote
                .call(Op::QueuePut(encode(item.borrow())?, None))?,
        )
        .map(drop)
    }

    /// Put `item`, waiting at most `timeout` for room; `false` if the queue stayed full.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.queue::<u8>(0)?.put_timeout(&1, std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    #[must_use = "`false` means the item was not put"]
    pub fn put_timeout(
        &self,
        item: impl Borrow<T>,
        timeout: Duration,
    ) -> Result<bool, ManagerError> {
        flag(
            self.remote
                .call(Op::QueuePut(encode(item.borrow())?, millis(Some(timeout))))?,
        )
    }

    /// Take the next item, waiting for one.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.queue::<u8>(0)?;
    /// q.put(&7)?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get(&self) -> Result<T, ManagerError> {
        required(self.remote.call(Op::QueueGet(None))?)
    }

    /// Take the next item, waiting at most `timeout`; `None` if none came.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.queue::<u8>(0)?;
    /// assert_eq!(q.get_timeout(std::time::Duration::from_millis(10))?, None);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, ManagerError> {
        maybe(self.remote.call(Op::QueueGet(millis(Some(timeout))))?)
    }

    /// Number of items now (Python's `qsize()`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.queue::<u8>(0)?.len()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn len(&self) -> Result<usize, ManagerError> {
        count(self.remote.call(Op::Len)?)
    }

    /// Whether it is empty now.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.queue::<u8>(0)?.is_empty()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }
}

/// A joinable queue in a manager; it is a [`QueueProxy`] (through `Deref`) with
/// [`task_done`](Self::task_done) and [`join`](Self::join). See
/// [`Manager::joinable_queue`](crate::manager::Manager::joinable_queue).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let q = m.joinable_queue::<String>(0)?;
/// q.put(&"job".into())?;
/// assert_eq!(q.len()?, 1);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinableQueueProxy<T> {
    pub(in crate::manager) queue: QueueProxy<T>,
}

wrapping_proxy!(JoinableQueueProxy, queue);

impl<T> std::ops::Deref for JoinableQueueProxy<T> {
    type Target = QueueProxy<T>;
    fn deref(&self) -> &QueueProxy<T> {
        &self.queue
    }
}

impl<T> JoinableQueueProxy<T> {
    /// Mark one item taken from the queue as done; an error if more are marked than were
    /// put.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.joinable_queue::<u8>(0)?.task_done().is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn task_done(&self) -> Result<(), ManagerError> {
        done(self.queue.remote.call(Op::QueueTaskDone)?)
    }

    /// Wait until every item put has been marked done.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.joinable_queue::<u8>(0)?.join()?; // nothing put: returns at once
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn join(&self) -> Result<(), ManagerError> {
        flag(self.queue.remote.call(Op::QueueJoin(None))?).map(drop)
    }

    /// [`join`](Self::join) for at most `timeout`; whether everything was done.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.joinable_queue::<u8>(0)?.join_timeout(std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(
            self.queue
                .remote
                .call(Op::QueueJoin(millis(Some(timeout))))?,
        )
    }
}
