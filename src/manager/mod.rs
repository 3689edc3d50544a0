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

mod builder;
mod client;
mod error;
mod proxy;
mod server;
mod session;

pub use builder::ManagerBuilder;
pub use client::Manager;
pub use error::ManagerError;
pub use proxy::{
    ArrayProxy, BarrierProxy, ConditionProxy, DictProxy, EventProxy, JoinableQueueProxy, ListProxy,
    LockProxy, LockProxyGuard, Managed, ManagedProxy, NamespaceProxy, QueueProxy, SemaphoreProxy,
    ValueProxy,
};

/// Python has it in `multiprocessing.managers`; it lives in [`crate::shared`] (no server here).
pub use crate::shared::SharedMemoryManager;
