//! Shared state: [`Value`], [`Array`], [`RawValue`], [`RawArray`] in anonymous shared memory,
//! and named [`SharedMemory`] and [`ShareableList`] (Python's
//! `multiprocessing.shared_memory`), with [`SharedMemoryManager`] to unlink a group of them.
//!
//! Anonymous memory (`memfd`) backs everything that needs no name: it is freed by the kernel
//! with its last descriptor and mapping, so it cannot leak, even after a crash. Named
//! segments live in `/dev/shm` like Python's; each one created here is registered with a
//! small *resource tracker* process (started on first use) that unlinks whatever its creator
//! did not unlink once the creator is gone, whether it exited or was killed.

mod array;
mod atomic;
mod cells;
mod memory_manager;
mod raw;
mod shareable_list;
mod shm;
pub(crate) mod tracker;
mod value;

/// The anonymous segments under their former path, which the queue ring and the MPI worker
/// still name.
pub(crate) use crate::segment;

pub use array::{Array, ArrayGuard};
pub use atomic::AtomicInt;
pub use memory_manager::SharedMemoryManager;
pub use raw::{RawArray, RawValue};
pub use shareable_list::{ShareableItem, ShareableList, ShareableListError};
pub use shm::SharedMemory;
pub use tracker::resource_tracker_pid;
pub use value::{Value, ValueGuard};
