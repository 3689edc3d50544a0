//! [`Manager`]: the handle on a manager's server, and the factory of its proxies.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use super::proxy::custom;
use super::server::{Kind, Request};
use super::session::{Endpoint, FromRemote, Remote, Session};
use super::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, JoinableQueueProxy, ListProxy,
    LockProxy, Managed, ManagedProxy, ManagerBuilder, ManagerError, NamespaceProxy, QueueProxy,
    SemaphoreProxy, ValueProxy,
};
use crate::connection::ConnectionError;
use crate::listener::{Address, Client, IntoAddress};
use crate::process::Process;

/// A manager: owns its server process when started here, or is connected to one started
/// elsewhere. Dropping a manager that started its server shuts the server down.
///
/// ```
/// let manager = multiproc::Manager::start()?;
/// let ns = manager.namespace()?;
/// ns.set("answer", &42)?;
/// assert_eq!(ns.get::<i32>("answer")?, Some(42));
/// manager.shutdown()?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct Manager {
    pub(super) session: Arc<Session>,
    pub(super) server: Option<Process<()>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.session.endpoint.address)
            .field("server_pid", &self.server.as_ref().map(Process::pid))
            .finish()
    }
}

impl Manager {
    /// Start a manager with the default settings (Python's `multiprocessing.Manager()`).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let d = manager.dict::<String, u32>()?;
    /// d.insert(&"a".into(), &1)?;
    /// assert_eq!(d.len()?, 1);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn start() -> Result<Manager, ManagerError> {
        ManagerBuilder::default().build()
    }

    /// Settings for the server: [`ManagerBuilder`].
    ///
    /// ```
    /// let manager = multiproc::Manager::builder().authkey(b"k").build()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Connect to a manager started elsewhere (Python's `BaseManager(address, authkey)
    /// .connect()`); the connection is checked (and authenticated) at once.
    ///
    /// ```
    /// let server = multiproc::Manager::builder().address("127.0.0.1:0").authkey(b"k").build()?;
    /// let remote = multiproc::Manager::connect(server.address(), b"k")?;
    /// remote.dict_named::<u8, u8>("shared")?.insert(&1, &2)?;
    /// assert_eq!(server.dict_named::<u8, u8>("shared")?.get(&1)?, Some(2));
    /// assert!(multiproc::Manager::connect(server.address(), b"wrong").is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn connect(address: impl IntoAddress, authkey: &[u8]) -> Result<Manager, ManagerError> {
        let address = address.into_address().map_err(ConnectionError::from)?;
        let conn = Client::connect(&address, Some(authkey))?;
        let session = Session::new(Endpoint {
            address,
            authkey: ByteBuf::from(authkey.to_vec()),
        });
        session.put_back(conn);
        Ok(Manager {
            session,
            server: None,
        })
    }

    /// The address the server listens on.
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// // By default a fresh name in Linux's abstract socket namespace: no file on disk.
    /// assert!(matches!(manager.address(), multiproc::listener::Address::Abstract(_)));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.session.endpoint.address
    }

    /// The server's pid, if this manager started it.
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// assert!(manager.server_pid().is_some());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// A new shared dict (Python's `manager.dict()`).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let d = manager.dict::<u8, Vec<u8>>()?;
    /// assert!(d.get(&1)?.is_none());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, ManagerError> {
        self.proxy(Kind::Dict, None)
    }

    /// The shared dict called `name`, created on first use (how separate programs find the
    /// same object, like a `BaseManager.register`ed getter).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// manager.dict_named::<u8, u8>("a")?.insert(&1, &1)?;
    /// assert_eq!(manager.dict_named::<u8, u8>("a")?.len()?, 1);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn dict_named<K, V>(&self, name: &str) -> Result<DictProxy<K, V>, ManagerError> {
        self.proxy(Kind::Dict, Some(name))
    }

    /// A new shared list (Python's `manager.list()`).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let l = manager.list::<String>()?;
    /// l.push(&"x".to_string())?;
    /// assert_eq!(l.len()?, 1);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn list<T>(&self) -> Result<ListProxy<T>, ManagerError> {
        self.proxy(Kind::List, None)
    }

    /// The shared list called `name`, created on first use.
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// manager.list_named::<u8>("l")?.push(&1)?;
    /// assert_eq!(manager.list_named::<u8>("l")?.items()?, vec![1]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn list_named<T>(&self, name: &str) -> Result<ListProxy<T>, ManagerError> {
        self.proxy(Kind::List, Some(name))
    }

    /// A new namespace of named values of any types (Python's `manager.Namespace()`).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let ns = manager.namespace()?;
    /// ns.set("x", &1.5f64)?;
    /// ns.set("label", &"ok")?;
    /// assert_eq!(ns.names()?, vec!["x", "label"]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn namespace(&self) -> Result<NamespaceProxy, ManagerError> {
        self.proxy(Kind::Namespace, None)
    }

    /// The namespace called `name`, created on first use.
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// manager.namespace_named("config")?.set("workers", &4)?;
    /// assert_eq!(manager.namespace_named("config")?.get::<i32>("workers")?, Some(4));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn namespace_named(&self, name: &str) -> Result<NamespaceProxy, ManagerError> {
        self.proxy(Kind::Namespace, Some(name))
    }

    /// A new shared value, starting as `initial` (Python's `manager.Value(typecode, v)`).
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let v = manager.value(&10u64)?;
    /// v.set(&11)?;
    /// assert_eq!(v.get()?, 11);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn value<T: Serialize + DeserializeOwned>(
        &self,
        initial: &T,
    ) -> Result<ValueProxy<T>, ManagerError> {
        let proxy: ValueProxy<T> = self.proxy(Kind::Value, None)?;
        proxy.set(initial)?;
        Ok(proxy)
    }

    /// A new queue of at most `maxsize` items (0: no limit), living in the server (Python's
    /// `manager.Queue()`): unlike [`Queue`](crate::Queue) it is reachable over TCP.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.queue::<String>(0)?;
    /// q.put(&"job".to_string())?;
    /// assert_eq!(q.get()?, "job");
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn queue<T>(&self, maxsize: usize) -> Result<QueueProxy<T>, ManagerError> {
        self.proxy(Kind::Queue(maxsize as u64), None)
    }

    /// The queue called `name`, created (unbounded) on first use.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.queue_named::<u8>("jobs")?.put(&1)?;
    /// assert_eq!(m.queue_named::<u8>("jobs")?.get()?, 1);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn queue_named<T>(&self, name: &str) -> Result<QueueProxy<T>, ManagerError> {
        self.proxy(Kind::Queue(0), Some(name))
    }

    /// A new joinable queue (Python's `manager.JoinableQueue()`): consumers call
    /// [`task_done`](JoinableQueueProxy::task_done) for each item, and
    /// [`join`](JoinableQueueProxy::join) waits until every item put is done.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let q = m.joinable_queue::<u8>(0)?;
    /// q.put(&1)?;
    /// assert!(!q.join_timeout(std::time::Duration::from_millis(10))?);
    /// q.get()?;
    /// q.task_done()?;
    /// q.join()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn joinable_queue<T>(&self, maxsize: u64) -> Result<JoinableQueueProxy<T>, ManagerError> {
        let queue = self.proxy(Kind::JoinableQueue(maxsize), None)?;
        Ok(JoinableQueueProxy { queue })
    }

    /// A new lock in the server (Python's `manager.Lock()`). It belongs to the thread that
    /// took it; if that thread's process dies or disconnects, the lock is released.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// {
    ///     let _held = lock.acquire()?;
    ///     assert!(lock.locked()?);
    /// }
    /// assert!(!lock.locked()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn lock(&self) -> Result<LockProxy, ManagerError> {
        self.proxy(Kind::Lock, None)
    }

    /// A new reentrant lock in the server (Python's `manager.RLock()`): the thread holding it
    /// may take it again, and must release it as many times.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.rlock()?;
    /// let outer = lock.acquire()?;
    /// let inner = lock.acquire()?; // a plain lock() would refuse: it would deadlock
    /// drop(inner);
    /// assert!(lock.locked()?);
    /// drop(outer);
    /// assert!(!lock.locked()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn rlock(&self) -> Result<LockProxy, ManagerError> {
        self.proxy(Kind::RLock, None)
    }

    /// A new condition variable with its own reentrant lock (Python's
    /// `manager.Condition()`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// // Nobody notifies: the wait times out, with the lock taken back.
    /// assert!(!cond.wait_timeout(std::time::Duration::from_millis(10))?);
    /// cond.notify_all()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn condition(&self) -> Result<ConditionProxy, ManagerError> {
        self.proxy(Kind::Condition, None)
    }

    /// A new barrier for `parties` parties (Python's `manager.Barrier(parties)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let b = m.barrier(1)?;
    /// assert_eq!(b.wait()?, 0);
    /// assert_eq!(b.parties()?, 1);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn barrier(&self, parties: u64) -> Result<BarrierProxy, ManagerError> {
        self.proxy(Kind::Barrier(parties), None)
    }

    /// A new fixed-length array holding `initial` (Python's `manager.Array(typecode, seq)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let a = m.array(&[0.0f64; 4])?;
    /// a.set(2, &1.5)?;
    /// assert_eq!(a.items()?, vec![0.0, 0.0, 1.5, 0.0]);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn array<T: Serialize + DeserializeOwned + Clone>(
        &self,
        initial: &[T],
    ) -> Result<ArrayProxy<T>, ManagerError> {
        let list: ListProxy<T> = self.proxy(Kind::List, None)?;
        list.extend(initial.iter().cloned())?;
        Ok(ArrayProxy { list })
    }

    /// A new event in the server (Python's `manager.Event()`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// assert!(e.wait_timeout(std::time::Duration::from_secs(1))?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn event(&self) -> Result<EventProxy, ManagerError> {
        self.proxy(Kind::Event, None)
    }

    /// A new semaphore starting at `value` (Python's `manager.Semaphore(value)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let s = m.semaphore(1)?;
    /// assert!(s.acquire_timeout(std::time::Duration::ZERO)?);
    /// assert!(!s.acquire_timeout(std::time::Duration::from_millis(10))?);
    /// s.release()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn semaphore(&self, value: u64) -> Result<SemaphoreProxy, ManagerError> {
        self.proxy(
            Kind::Semaphore {
                value,
                bounded: false,
            },
            None,
        )
    }

    /// A semaphore that refuses to be released above `value` (Python's
    /// `manager.BoundedSemaphore(value)`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let s = m.bounded_semaphore(1)?;
    /// assert!(s.release().is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn bounded_semaphore(&self, value: u64) -> Result<SemaphoreProxy, ManagerError> {
        self.proxy(
            Kind::Semaphore {
                value,
                bounded: true,
            },
            None,
        )
    }

    /// Put a value of your own [`Managed`] type into the manager and get a proxy for it
    /// (Python's `BaseManager.register(typeid, callable)` and the proxy it returns). The
    /// state lives in the server; every [`ManagedProxy::call`] runs
    /// [`Managed::handle`] there, one request at a time.
    ///
    /// ```
    /// use multiproc::manager::Managed;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Tally { total: i64 }
    ///
    /// impl Managed for Tally {
    ///     type Request = i64;  // add this
    ///     type Reply = i64;    // the new total
    ///     fn handle(&mut self, add: i64) -> i64 {
    ///         self.total += add;
    ///         self.total
    ///     }
    /// }
    ///
    /// let manager = multiproc::Manager::start()?;
    /// let tally = manager.create(Tally { total: 10 })?;
    /// assert_eq!(tally.call(&5)?, 15);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn create<T: Managed>(&self, initial: T) -> Result<ManagedProxy<T>, ManagerError> {
        self.proxy(Kind::Custom(custom::<T>(&initial)?), None)
    }

    /// The shared value of type `T` called `name`, made from `initial` on first use (later
    /// callers' `initial` is ignored).
    ///
    /// ```
    /// # use multiproc::manager::Managed;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Tally { total: i64 }
    /// # impl Managed for Tally {
    /// #     type Request = i64;
    /// #     type Reply = i64;
    /// #     fn handle(&mut self, add: i64) -> i64 { self.total += add; self.total }
    /// # }
    /// let manager = multiproc::Manager::start()?;
    /// manager.create_named("score", Tally { total: 0 })?.call(&2)?;
    /// assert_eq!(manager.create_named("score", Tally { total: 99 })?.call(&0)?, 2);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn create_named<T: Managed>(
        &self,
        name: &str,
        initial: T,
    ) -> Result<ManagedProxy<T>, ManagerError> {
        self.proxy(Kind::Custom(custom::<T>(&initial)?), Some(name))
    }

    fn proxy<P: FromRemote>(&self, kind: Kind, name: Option<&str>) -> Result<P, ManagerError> {
        let id = self.session.create(kind, name)?;
        Ok(P::from_remote(Remote {
            session: self.session.clone(),
            id,
        }))
    }

    /// Stop the server and wait for it (Python's `manager.shutdown()`); proxies fail with
    /// [`ManagerError::Disconnected`] afterwards. A connected (not started) manager only
    /// disconnects.
    ///
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let d = manager.dict::<u8, u8>()?;
    /// manager.shutdown()?;
    /// assert!(matches!(d.len(), Err(multiproc::manager::ManagerError::Disconnected { .. })));
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn shutdown(mut self) -> Result<(), ManagerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ManagerError> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        // The reply may not come: the server exits as it answers.
        let _ = self.session.call(&Request::Shutdown);
        if !server.join_timeout(Duration::from_secs(5))? {
            server.kill()?;
        }
        let _ = server.join();
        // A socket file at a path the user gave (the default abstract name has no file).
        if let Address::Unix(path) = &self.session.endpoint.address {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
