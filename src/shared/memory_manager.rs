//! `SharedMemoryManager` (Python's `multiprocessing.managers.SharedMemoryManager`): creates
//! named segments and shareable lists, remembers their names, and unlinks them all when it is
//! shut down or dropped.
//!
//! **No server process.** Python's manager runs a server process for two reasons: its
//! segments must be unlinked even if the creating process dies, and other processes connected
//! to the manager may create segments it tracks. The first is already guaranteed here for
//! every named segment, manager or not: `SharedMemory::create` registers the name with this
//! process's resource tracker (`tracker.rs`) before it returns, and the tracker unlinks it
//! when this process is gone, `SIGKILL` included. The second would be a server that owns
//! names other processes created, while the tracker of each creator also owns them; a child
//! that wants the same convenience makes its own manager (its names are unlinked when it
//! ends either way). So the manager is a list of names in this process: no process to start,
//! no socket, no authentication key, and creating a segment costs what
//! `SharedMemory::create` costs.

use std::io;
use std::sync::{Mutex, MutexGuard};

use super::shareable_list::{ShareableItem, ShareableList, ShareableListError};
use super::shm::{self, SharedMemory};
use crate::sys;

/// Creates [`SharedMemory`] blocks and [`ShareableList`]s and unlinks every one of them when
/// it is [shut down](Self::shutdown) or dropped (Python's `SharedMemoryManager` used in a
/// `with` block).
///
/// If this process dies first, its resource tracker unlinks them instead, so nothing is left
/// in `/dev/shm` in any case. Unlike Python's, this manager starts no server process (the
/// module documentation says why); it is `Sync`, so threads can share it through an `Arc`.
/// Blocks made by the manager can still be [`unlink`](SharedMemory::unlink)ed early.
///
/// ```
/// use multiproc::{Process, ShareableList, SharedMemoryManager};
///
/// fn count(name: String) -> usize {
///     ShareableList::attach(&name).map_or(0, |list| list.len())
/// }
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let manager = SharedMemoryManager::new();
/// let block = manager.shared_memory(1024)?;
/// let list = manager.shareable_list(["a", "b", "c"])?;
/// assert_eq!(Process::start(count, list.name().to_string())?.join()?, 3);
/// let names = manager.segment_names();
/// assert_eq!(names, [block.name(), list.name()]);
/// manager.shutdown()?;
/// assert!(ShareableList::attach(&names[1]).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SharedMemoryManager {
    /// Names created and not unlinked by `shutdown` yet, in creation order.
    names: Mutex<Vec<String>>,
    /// The process that made the manager: a forked copy in a child must not unlink the
    /// parent's segments when it is dropped.
    owner: u32,
}

impl SharedMemoryManager {
    /// A manager with no segments yet (Python's `SharedMemoryManager()` plus `start()`).
    ///
    /// ```
    /// let manager = multiproc::SharedMemoryManager::new();
    /// assert!(manager.segment_names().is_empty());
    /// ```
    pub fn new() -> SharedMemoryManager {
        SharedMemoryManager {
            names: Mutex::new(Vec::new()),
            owner: sys::getpid(),
        }
    }

    /// A new [`SharedMemory`] block of `size` bytes with a fresh name, unlinked at shutdown
    /// (Python's `smm.SharedMemory(size)`).
    ///
    /// ```
    /// let manager = multiproc::SharedMemoryManager::new();
    /// let block = manager.shared_memory(64)?;
    /// block.write_at(0, b"managed")?;
    /// assert_eq!(manager.segment_names(), [block.name()]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shared_memory(&self, size: usize) -> io::Result<SharedMemory> {
        let block = SharedMemory::create(size)?;
        self.names().push(block.name().to_string());
        Ok(block)
    }

    /// A new [`ShareableList`] holding `items`, unlinked at shutdown (Python's
    /// `smm.ShareableList(sequence)`).
    ///
    /// ```
    /// use multiproc::{ShareableItem, SharedMemoryManager};
    ///
    /// let manager = SharedMemoryManager::new();
    /// let list = manager.shareable_list([ShareableItem::Int(1), ShareableItem::None])?;
    /// assert_eq!(list.get(1)?, ShareableItem::None);
    /// # Ok::<(), multiproc::ShareableListError>(())
    /// ```
    pub fn shareable_list<I>(&self, items: I) -> Result<ShareableList, ShareableListError>
    where
        I: IntoIterator,
        I::Item: Into<ShareableItem>,
    {
        let list = ShareableList::new(items)?;
        self.names().push(list.name().to_string());
        Ok(list)
    }

    /// The names of the segments this manager made and will unlink, oldest first.
    ///
    /// ```
    /// let manager = multiproc::SharedMemoryManager::new();
    /// let a = manager.shared_memory(8)?;
    /// let b = manager.shareable_list([true])?;
    /// assert_eq!(manager.segment_names(), [a.name(), b.name()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn segment_names(&self) -> Vec<String> {
        self.names().clone()
    }

    /// Unlink every segment this manager made (Python's `shutdown()`, or leaving its `with`
    /// block). Mappings stay valid in every process that has them. Names already unlinked
    /// are skipped; the first other error is returned after all names were tried.
    ///
    /// ```
    /// let manager = multiproc::SharedMemoryManager::new();
    /// let block = manager.shared_memory(16)?;
    /// manager.shutdown()?;
    /// assert!(multiproc::SharedMemory::attach(block.name()).is_err());
    /// block.write_at(0, b"still mapped")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn shutdown(self) -> io::Result<()> {
        self.unlink_all()
    }

    fn unlink_all(&self) -> io::Result<()> {
        if sys::getpid() != self.owner {
            return Ok(());
        }
        let names = std::mem::take(&mut *self.names());
        let mut first_error = None;
        for name in names {
            match shm::unlink_name(&name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
                Ok(()) => {}
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn names(&self) -> MutexGuard<'_, Vec<String>> {
        // A panic while the list was locked cannot leave it half-updated (single pushes).
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for SharedMemoryManager {
    /// Same as [`SharedMemoryManager::new`].
    ///
    /// ```
    /// let manager = multiproc::SharedMemoryManager::default();
    /// assert!(manager.segment_names().is_empty());
    /// ```
    fn default() -> Self {
        SharedMemoryManager::new()
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        if let Err(e) = self.unlink_all() {
            log::warn!(target: "multiproc", "SharedMemoryManager could not unlink a segment: {e}");
        }
    }
}
