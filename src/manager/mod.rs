//! A manager: a server process that owns shared objects, used from any process through
//! typed proxies (Python's `multiprocessing.Manager()` / `BaseManager`).
//!
//! [`Manager::start`] starts the server (a daemonic child) on a private Unix socket with a
//! random key (named in Linux's abstract namespace, so no socket file exists, and none is
//! left if the process is killed); [`Manager::builder`] serves on a TCP address with your key instead, and
//! [`Manager::connect`] reaches such a manager from another program or machine. Proxies
//! ([`DictProxy`], [`ListProxy`], [`NamespaceProxy`], [`ValueProxy`], [`ArrayProxy`],
//! [`QueueProxy`], [`JoinableQueueProxy`], [`LockProxy`] (also for RLocks),
//! [`ConditionProxy`], [`SemaphoreProxy`], [`EventProxy`], [`BarrierProxy`]) travel to children as arguments like
//! every other handle and may be used from many processes at once: each thread of each
//! process opens its own connection to the server on first use, and every operation is one
//! round trip, applied atomically by the server (blocking ones wait in the server).
//!
//! ```
//! use multiproc::{Manager, Process};
//! use multiproc::manager::{DictProxy, ListProxy};
//!
//! fn fill((d, l): (DictProxy<u32, String>, ListProxy<u32>)) {
//!     d.insert(&1, &"1".to_string()).unwrap();
//!     d.insert(&2, &"2".to_string()).unwrap();
//!     l.push(&7).unwrap();
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = Manager::start()?;
//! let d = manager.dict::<u32, String>()?;
//! let l = manager.list::<u32>()?;
//! Process::start(fill, (d.clone(), l.clone()))?.join()?;
//! assert_eq!(d.get(&2)?, Some("2".to_string()));
//! assert_eq!(l.items()?, vec![7]);
//! # Ok(())
//! # }
//! ```
//!
//! Values are stored as their serde encoding; keys compare by encoding, so use key types
//! whose equal values encode equally (integers, strings, tuples of them: anything but floats).
//! Objects live as long as the manager. If the server dies, every proxy operation returns
//! [`ManagerError::Disconnected`] instead of hanging. Your own types are served too: implement
//! [`Managed`] and use [`Manager::create`].

mod server;

/// Python has it in `multiprocessing.managers`; it lives in [`crate::shared`] (no server here).
pub use crate::shared::SharedMemoryManager;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::connection::{Connection, ConnectionError};
use crate::handle::{CodecError, Handle};
use crate::listener::{Address, Client, IntoAddress};
use crate::process::code::{Borrowing, CodeRef};
use crate::process::{Process, ProcessBuilder, ProcessError};
use server::{Kind, Op, Reply, Request, ServerArgs};

/// What can go wrong with a manager or a proxy.
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

/// Where a manager is and how to authenticate to it; shared by every proxy of it.
#[derive(Clone, Serialize, Deserialize)]
struct Endpoint {
    address: Address,
    authkey: ByteBuf,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Connections to a manager: one per thread (as in Python), so that a thread blocked in
/// the server (a lock, a queue) never holds up another, and a lock belongs to the thread
/// that took it. Opened on first use.
struct Session {
    endpoint: Endpoint,
    /// The process that opened them (a forked child must open its own), and the idle ones.
    conns: Mutex<(u32, HashMap<ThreadId, Connection>)>,
}

impl Session {
    fn new(endpoint: Endpoint) -> Arc<Session> {
        Arc::new(Session {
            endpoint,
            conns: Mutex::new((0, HashMap::new())),
        })
    }

    /// The idle connections of this process (a forked child starts with none).
    fn idle(&self) -> MutexGuard<'_, (u32, HashMap<ThreadId, Connection>)> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let me = crate::sys::getpid();
        if conns.0 != me {
            *conns = (me, HashMap::new());
        }
        conns
    }

    /// This thread's connection, taken out of the pool for the length of a call.
    fn take(&self) -> Result<Connection, ManagerError> {
        let existing = self.idle().1.remove(&std::thread::current().id());
        match existing {
            Some(conn) => Ok(conn),
            None => Client::connect(&self.endpoint.address, Some(&self.endpoint.authkey))
                .map_err(|e| self.disconnected(e)),
        }
    }

    /// Give this thread's connection back after a call that left it in a known state.
    fn put_back(&self, conn: Connection) {
        self.idle().1.insert(std::thread::current().id(), conn);
    }

    fn disconnected(&self, reason: impl fmt::Display) -> ManagerError {
        ManagerError::Disconnected {
            address: self.endpoint.address.to_string(),
            reason: reason.to_string(),
        }
    }

    /// One request, one reply.
    fn call(&self, request: &Request) -> Result<Reply, ManagerError> {
        let mut conn = self.take()?;
        let result = conn.send(request).and_then(|()| conn.recv::<Reply>());
        match result {
            Ok(reply) => {
                self.put_back(conn);
                match reply {
                    Reply::Failed(reason) => Err(ManagerError::Refused(reason)),
                    reply => Ok(reply),
                }
            }
            // The connection is dropped: the next call reconnects (or reports the same).
            Err(e) => Err(self.disconnected(e)),
        }
    }

    fn create(self: &Arc<Self>, kind: Kind, name: Option<&str>) -> Result<u64, ManagerError> {
        let request = Request::Create {
            kind,
            name: name.map(str::to_string),
        };
        match self.call(&request)? {
            Reply::Created(id) => Ok(id),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &Reply) -> ManagerError {
    ManagerError::Refused(format!("unexpected reply {reply:?}"))
}

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
    session: Arc<Session>,
    server: Option<Process<()>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.session.endpoint.address)
            .field("server_pid", &self.server.as_ref().map(Process::pid))
            .finish()
    }
}

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

/// What every proxy holds: the session and the object's id. Serialized, it is the endpoint
/// and the id; the receiving process opens its own connection on first use.
#[derive(Clone)]
struct Remote {
    session: Arc<Session>,
    id: u64,
}

impl Remote {
    fn call(&self, op: Op) -> Result<Reply, ManagerError> {
        self.session.call(&Request::Call { id: self.id, op })
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} at {}", self.id, self.session.endpoint.address)
    }
}

impl Serialize for Remote {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (&self.session.endpoint, self.id).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Remote {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (endpoint, id) = <(Endpoint, u64)>::deserialize(deserializer)?;
        Ok(Remote {
            session: Session::new(endpoint),
            id,
        })
    }
}

trait FromRemote {
    fn from_remote(remote: Remote) -> Self;
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<ByteBuf, ManagerError> {
    let mut out = Vec::new();
    let fds = crate::handle::encode(value, &mut out)?;
    if !fds.is_empty() {
        return Err(ManagerError::Codec(CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            reason: "values in a manager cannot hold OS handles".into(),
        }));
    }
    Ok(ByteBuf::from(out))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ManagerError> {
    Ok(crate::handle::decode(bytes, Vec::<OwnedFd>::new())?)
}

fn maybe<T: DeserializeOwned>(reply: Reply) -> Result<Option<T>, ManagerError> {
    match reply {
        Reply::Maybe(v) => v.map(|b| decode(&b)).transpose(),
        other => Err(unexpected(&other)),
    }
}

/// A reply that must carry a value.
fn required<T: DeserializeOwned>(reply: Reply) -> Result<T, ManagerError> {
    maybe(reply)?.ok_or_else(|| ManagerError::Refused("the server sent no value".into()))
}

fn done(reply: Reply) -> Result<(), ManagerError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}

fn count(reply: Reply) -> Result<usize, ManagerError> {
    match reply {
        Reply::Count(n) => Ok(n as usize),
        other => Err(unexpected(&other)),
    }
}

macro_rules! proxy_basics {
    ($name:ident < $($p:ident),* >) => {
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                $name { remote: self.remote.clone(), types: PhantomData }
            }
        }
        impl<$($p),*> fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.remote)
            }
        }
        impl<$($p),*> Serialize for $name<$($p),*> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.remote.serialize(s)
            }
        }
        impl<'de, $($p),*> Deserialize<'de> for $name<$($p),*> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name { remote: Remote::deserialize(d)?, types: PhantomData })
            }
        }
        impl<$($p),*> FromRemote for $name<$($p),*> {
            fn from_remote(remote: Remote) -> Self {
                $name { remote, types: PhantomData }
            }
        }
    };
}

macro_rules! untyped_proxy {
    ($name:ident) => {
        impl Clone for $name {
            fn clone(&self) -> Self {
                $name {
                    remote: self.remote.clone(),
                }
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.remote)
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.remote.serialize(s)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($name {
                    remote: Remote::deserialize(d)?,
                })
            }
        }
        impl FromRemote for $name {
            fn from_remote(remote: Remote) -> Self {
                $name { remote }
            }
        }
    };
}

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
        match self.remote.call(Op::DictKeys)? {
            Reply::Many(keys) => keys.iter().map(|k| decode(k)).collect(),
            other => Err(unexpected(&other)),
        }
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
    remote: Remote,
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
        match self.remote.call(Op::ListItems)? {
            Reply::Many(items) => items.iter().map(|b| decode(b)).collect(),
            other => Err(unexpected(&other)),
        }
    }
}

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

/// Milliseconds for a blocking server operation (`None`: no limit).
fn millis(timeout: Option<Duration>) -> Option<u64> {
    timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

fn flag(reply: Reply) -> Result<bool, ManagerError> {
    match reply {
        Reply::Flag(f) => Ok(f),
        other => Err(unexpected(&other)),
    }
}

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

/// A lock in a manager (Python's `manager.Lock()` proxy); see [`Manager::lock`].
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let lock = m.lock()?;
/// let held = lock.acquire()?;
/// assert!(lock.try_acquire()?.is_none()); // refused, even to its holder (not an RLock)
/// assert!(lock.locked()?); // and still held: a refused acquire releases nothing
/// drop(held);
/// assert!(!lock.locked()?);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct LockProxy {
    remote: Remote,
}

untyped_proxy!(LockProxy);

/// Holds a [`LockProxy`]; releases it when dropped.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockProxyGuard<'a> {
    remote: &'a Remote,
}

impl<'a> LockProxyGuard<'a> {
    /// Take the lock behind `remote` (a lock, an RLock or a condition's), waiting for it.
    fn take(remote: &'a Remote) -> Result<Self, ManagerError> {
        Self::take_within(remote, None)?.ok_or_else(|| {
            ManagerError::Refused("the server gave up a wait without a time limit".into())
        })
    }

    /// Take the lock behind `remote` if the server grants it within `timeout` (`None`: as
    /// long as needed). This is the only place a guard is made, and only for a granted
    /// lock: a refused or timed-out acquire took nothing, so it has nothing to release
    /// (a guard made for it would release the lock its caller already holds).
    fn take_within(
        remote: &'a Remote,
        timeout: Option<Duration>,
    ) -> Result<Option<Self>, ManagerError> {
        if flag(remote.call(Op::LockAcquire(millis(timeout)))?)? {
            Ok(Some(LockProxyGuard { remote }))
        } else {
            Ok(None)
        }
    }
}

impl Drop for LockProxyGuard<'_> {
    fn drop(&mut self) {
        let _ = self.remote.call(Op::LockRelease);
    }
}

impl LockProxy {
    /// Take the lock, waiting as long as needed.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// let _g = lock.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<LockProxyGuard<'_>, ManagerError> {
        LockProxyGuard::take(&self.remote)
    }

    /// Take the lock if it is free within `timeout`.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let lock = m.lock()?;
    /// assert!(lock.acquire_timeout(std::time::Duration::from_secs(1))?.is_some());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<LockProxyGuard<'_>>, ManagerError> {
        LockProxyGuard::take_within(&self.remote, Some(timeout))
    }

    /// Take the lock only if it is free now.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(m.lock()?.try_acquire()?.is_some());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockProxyGuard<'_>>, ManagerError> {
        self.acquire_timeout(Duration::ZERO)
    }

    /// Whether some thread holds it now.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.lock()?.locked()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn locked(&self) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::LockHeld)?)
    }
}

/// An event in a manager (Python's `manager.Event()` proxy).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let e = m.event()?;
/// assert!(!e.is_set()?);
/// e.set()?;
/// e.wait()?;
/// e.clear()?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct EventProxy {
    remote: Remote,
}

untyped_proxy!(EventProxy);

impl EventProxy {
    /// Set the flag, waking every waiter.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.event()?.set()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn set(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::EventSet)?)
    }

    /// Clear the flag.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.event()?.clear()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn clear(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::EventClear)?)
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.event()?.is_set()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn is_set(&self) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::EventIsSet)?)
    }

    /// Wait until the flag is set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let e = m.event()?;
    /// e.set()?;
    /// e.wait()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::EventWait(None))?).map(drop)
    }

    /// Wait at most `timeout`; whether the flag was set.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.event()?.wait_timeout(std::time::Duration::from_millis(10))?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::EventWait(millis(Some(timeout))))?)
    }
}

/// A semaphore in a manager (Python's `manager.Semaphore()` / `BoundedSemaphore()` proxy).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let s = m.semaphore(2)?;
/// s.acquire()?;
/// assert_eq!(s.value()?, 1);
/// s.release()?;
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct SemaphoreProxy {
    remote: Remote,
}

untyped_proxy!(SemaphoreProxy);

impl SemaphoreProxy {
    /// Take one unit, waiting for it.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.semaphore(1)?.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::SemAcquire(None))?).map(drop)
    }

    /// Take one unit if one comes within `timeout`.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.semaphore(0)?.acquire_timeout(std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::SemAcquire(millis(Some(timeout))))?)
    }

    /// Give one unit back (a bounded semaphore refuses to exceed its start value).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.semaphore(0)?.release()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn release(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::SemRelease)?)
    }

    /// The current value.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.semaphore(3)?.value()?, 3);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn value(&self) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::SemValue)?).map(|n| n as u64)
    }
}

/// A type of your own that a manager can hold (Python's `BaseManager.register`): its state
/// lives in the manager's server process and proxies send it requests. The server runs the
/// same executable, so `handle` is your code, found there like a task's function.
///
/// A panic in `handle` fails that call with [`ManagerError::Refused`]; the state keeps
/// whatever the handler had done before panicking.
///
/// ```
/// use multiproc::manager::Managed;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
/// struct Inventory { items: Vec<String> }
///
/// #[derive(Serialize, Deserialize)]
/// enum Ask { Add(String), Count }
///
/// impl Managed for Inventory {
///     type Request = Ask;
///     type Reply = usize;
///     fn handle(&mut self, ask: Ask) -> usize {
///         if let Ask::Add(item) = ask {
///             self.items.push(item);
///         }
///         self.items.len()
///     }
/// }
///
/// let manager = multiproc::Manager::start()?;
/// let inventory = manager.create(Inventory::default())?;
/// inventory.call(&Ask::Add("rope".into()))?;
/// assert_eq!(inventory.call(&Ask::Count)?, 1);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub trait Managed: Serialize + DeserializeOwned + Send + 'static {
    /// What a proxy sends.
    type Request: Serialize + DeserializeOwned;
    /// What the server answers.
    type Reply: Serialize + DeserializeOwned;
    /// Serve one request (in the server process, one at a time).
    fn handle(&mut self, request: Self::Request) -> Self::Reply;
}

/// Decode the initial state of a `T` (runs in the server).
fn make_managed<T: Managed>(bytes: &[u8]) -> Result<Box<dyn std::any::Any + Send>, String> {
    let value: T = decode(bytes).map_err(|e| e.to_string())?;
    Ok(Box::new(value))
}

/// Serve one request to a `T` (runs in the server).
fn call_managed<T: Managed>(
    state: &mut (dyn std::any::Any + Send),
    request: &[u8],
) -> Result<Vec<u8>, String> {
    let state = state
        .downcast_mut::<T>()
        .ok_or_else(|| format!("the object is not a {}", std::any::type_name::<T>()))?;
    let request: T::Request = decode(request).map_err(|e| e.to_string())?;
    let reply = state.handle(request);
    Ok(encode(&reply).map_err(|e| e.to_string())?.into_vec())
}

/// How the server finds `T`'s code, and its initial state.
fn custom<T: Managed>(initial: &T) -> Result<server::Custom, ManagerError> {
    let make: server::MakeFn = make_managed::<T>;
    let call: server::CallFn = call_managed::<T>;
    Ok(server::Custom {
        make: CodeRef::of(Borrowing(make)),
        call: CodeRef::of(Borrowing(call)),
        initial: encode(initial)?,
    })
}

/// A proxy for a [`Managed`] value of your own type; see [`Manager::create`].
///
/// ```
/// # use multiproc::manager::Managed;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Echo;
/// # impl Managed for Echo {
/// #     type Request = String;
/// #     type Reply = String;
/// #     fn handle(&mut self, s: String) -> String { s }
/// # }
/// let manager = multiproc::Manager::start()?;
/// let echo = manager.create(Echo)?;
/// assert_eq!(echo.call(&"hi".to_string())?, "hi");
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ManagedProxy<T> {
    remote: Remote,
    types: PhantomData<fn() -> T>,
}

proxy_basics!(ManagedProxy<T>);

impl<T: Managed> ManagedProxy<T> {
    /// Send `request` to the value in the server and return its reply.
    ///
    /// ```
    /// # use multiproc::manager::Managed;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Double;
    /// # impl Managed for Double {
    /// #     type Request = u32;
    /// #     type Reply = u32;
    /// #     fn handle(&mut self, x: u32) -> u32 { x * 2 }
    /// # }
    /// let manager = multiproc::Manager::start()?;
    /// assert_eq!(manager.create(Double)?.call(&21)?, 42);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn call(&self, request: &T::Request) -> Result<T::Reply, ManagerError> {
        required(self.remote.call(Op::Custom(encode(request)?))?)
    }
}

/// A joinable queue in a manager; it is a [`QueueProxy`] (through `Deref`) with
/// [`task_done`](Self::task_done) and [`join`](Self::join). See
/// [`Manager::joinable_queue`].
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
    queue: QueueProxy<T>,
}

impl<T> Clone for JoinableQueueProxy<T> {
    fn clone(&self) -> Self {
        JoinableQueueProxy {
            queue: self.queue.clone(),
        }
    }
}

impl<T> fmt::Debug for JoinableQueueProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinableQueueProxy({:?})", self.queue.remote)
    }
}

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

/// A condition variable in a manager (Python's `manager.Condition()` proxy): take its lock
/// with [`acquire`](Self::acquire), then [`wait`](Self::wait) (which gives the lock up while
/// waiting and takes it back) or [`notify`](Self::notify).
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let cond = m.condition()?;
/// let held = cond.acquire()?;
/// cond.notify(1)?;
/// drop(held);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct ConditionProxy {
    remote: Remote,
}

untyped_proxy!(ConditionProxy);

impl ConditionProxy {
    /// Take the condition's (reentrant) lock.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn acquire(&self) -> Result<LockProxyGuard<'_>, ManagerError> {
        LockProxyGuard::take(&self.remote)
    }

    /// Wait until notified; this thread must hold the lock, which is released meanwhile
    /// and held again on return.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// assert!(cond.wait().is_err()); // the lock is not held
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<(), ManagerError> {
        flag(self.remote.call(Op::CondWait(None))?).map(drop)
    }

    /// [`wait`](Self::wait) for at most `timeout`; `false` if not notified in time (the
    /// lock is held again either way).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// assert!(!cond.wait_timeout(std::time::Duration::ZERO)?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, ManagerError> {
        flag(self.remote.call(Op::CondWait(millis(Some(timeout))))?)
    }

    /// Wake up to `n` waiting threads (this thread must hold the lock).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// cond.notify(2)?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn notify(&self, n: u64) -> Result<(), ManagerError> {
        done(self.remote.call(Op::CondNotify(n))?)
    }

    /// Wake every waiting thread (this thread must hold the lock).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let cond = m.condition()?;
    /// let _held = cond.acquire()?;
    /// cond.notify_all()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn notify_all(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::CondNotifyAll)?)
    }
}

/// A barrier in a manager (Python's `manager.Barrier()` proxy). A party that times out, or
/// [`abort`](Self::abort), breaks it: every waiter then gets [`ManagerError::Refused`].
///
/// ```
/// let m = multiproc::Manager::start()?;
/// let b = m.barrier(2)?;
/// assert!(b.wait_timeout(std::time::Duration::from_millis(10)).is_err()); // alone: broken
/// assert!(b.broken()?);
/// b.reset()?;
/// assert!(!b.broken()?);
/// # Ok::<(), multiproc::manager::ManagerError>(())
/// ```
pub struct BarrierProxy {
    remote: Remote,
}

untyped_proxy!(BarrierProxy);

impl BarrierProxy {
    /// Wait for all parties; this party's arrival index (`0..parties`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(1)?.wait()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait(&self) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::BarrierWait(None))?).map(|n| n as u64)
    }

    /// [`wait`](Self::wait) for at most `timeout`; on time-out the barrier breaks.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(1)?.wait_timeout(std::time::Duration::from_secs(1))?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u64, ManagerError> {
        count(self.remote.call(Op::BarrierWait(millis(Some(timeout))))?).map(|n| n as u64)
    }

    /// Break the barrier: waiting and later parties fail until [`reset`](Self::reset).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// let b = m.barrier(2)?;
    /// b.abort()?;
    /// assert!(b.wait().is_err());
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn abort(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::BarrierAbort)?)
    }

    /// Make it usable again (parties waiting now fail, as in Python).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// m.barrier(2)?.reset()?;
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn reset(&self) -> Result<(), ManagerError> {
        done(self.remote.call(Op::BarrierReset)?)
    }

    fn state(&self) -> Result<(u64, u64, bool), ManagerError> {
        match self.remote.call(Op::BarrierState)? {
            Reply::Barrier(parties, waiting, broken) => Ok((parties, waiting, broken)),
            other => Err(unexpected(&other)),
        }
    }

    /// How many parties it waits for.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(3)?.parties()?, 3);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn parties(&self) -> Result<u64, ManagerError> {
        Ok(self.state()?.0)
    }

    /// How many parties are waiting now (Python's `n_waiting`).
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert_eq!(m.barrier(3)?.n_waiting()?, 0);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn n_waiting(&self) -> Result<u64, ManagerError> {
        Ok(self.state()?.1)
    }

    /// Whether it is broken.
    ///
    /// ```
    /// let m = multiproc::Manager::start()?;
    /// assert!(!m.barrier(3)?.broken()?);
    /// # Ok::<(), multiproc::manager::ManagerError>(())
    /// ```
    pub fn broken(&self) -> Result<bool, ManagerError> {
        Ok(self.state()?.2)
    }
}

/// A fixed-length array in a manager (Python's `manager.Array()` proxy): items are read
/// and written by index; its length never changes. See [`Manager::array`].
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
    list: ListProxy<T>,
}

impl<T> Clone for ArrayProxy<T> {
    fn clone(&self) -> Self {
        ArrayProxy {
            list: self.list.clone(),
        }
    }
}

impl<T> fmt::Debug for ArrayProxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArrayProxy({:?})", self.list.remote)
    }
}

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
