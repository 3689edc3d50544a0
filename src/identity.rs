//! Who this process is, as Python's `current_process()` knows it: its name (`Process-2:1`),
//! whether it is daemonic, its place among its parent's children, and its parent.
//!
//! A leaf (it uses only `sys`): the process layer sets it when a child starts, and the layers
//! that label what a process does with its name (logging) read it without depending on how
//! processes start.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use crate::sys;

/// The name of the process that no one in this crate started.
pub(crate) const MAIN_NAME: &str = "MainProcess";

/// Who a child is; made by its parent ([`next_child`]) and set in the child ([`assume`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub name: String,
    pub daemon: bool,
    /// Python's `_identity`: the child counter at each level (`Process-2:1` is `[2, 1]`).
    pub path: Vec<u32>,
    pub parent_pid: u32,
    pub parent_name: String,
}

struct Current {
    identity: Identity,
    parent_pidfd: Option<Arc<OwnedFd>>,
}

/// This process's identity and a pidfd of its parent; `None` in the main process.
static CURRENT: RwLock<Option<Current>> = RwLock::new(None);
static NEXT_CHILD: AtomicU32 = AtomicU32::new(1);

/// This process's identity; `None` in the main process.
pub(crate) fn identity() -> Option<Identity> {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current.as_ref().map(|c| c.identity.clone())
}

/// This process's name (`MainProcess` in the main process).
pub(crate) fn name() -> String {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current
        .as_ref()
        .map_or_else(|| MAIN_NAME.to_string(), |c| c.identity.name.clone())
}

/// A pidfd of the parent, opened when this child started (`None` in the main process or if
/// the parent was already gone).
pub(crate) fn parent_pidfd() -> Option<Arc<OwnedFd>> {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current.as_ref().and_then(|c| c.parent_pidfd.clone())
}

/// Hold the identity exclusively across `fork`, so the child's copy is never left locked by
/// a reader in a thread that does not exist there.
pub(crate) fn lock_for_fork() -> impl Drop {
    CURRENT.write().unwrap_or_else(|e| e.into_inner())
}

/// Identity for the next child this process starts (name `Process-N`, or `Process-N:M` in a
/// child, as in Python).
pub(crate) fn next_child(name: Option<String>, daemon: bool) -> Identity {
    let n = NEXT_CHILD.fetch_add(1, Ordering::Relaxed);
    let me = identity();
    let mut path = me.as_ref().map(|i| i.path.clone()).unwrap_or_default();
    path.push(n);
    let name = name.unwrap_or_else(|| {
        let parts: Vec<String> = path.iter().map(u32::to_string).collect();
        format!("Process-{}", parts.join(":"))
    });
    Identity {
        name,
        daemon,
        path,
        parent_pid: sys::getpid(),
        parent_name: me.map_or_else(|| MAIN_NAME.to_string(), |i| i.name),
    }
}

/// Make `identity` this (new) process's own; its children are counted from 1 again.
pub(crate) fn assume(identity: Identity) {
    let parent_pidfd = sys::pidfd_open(identity.parent_pid).ok().map(Arc::new);
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Current {
        identity,
        parent_pidfd,
    });
    NEXT_CHILD.store(1, Ordering::Relaxed);
}
