//! Shared memory and the primitives that sleep in it: memfd segments, POSIX named shared
//! memory, futexes and robust process-shared mutexes.
//!
//! One file per primitive: `mapping.rs` (memfd segments and their mappings), `shm.rs` (POSIX
//! named shared memory), `futex.rs`, `mutex.rs` (the robust PI mutex), `robust_list.rs` (the
//! thread's robust list, for the mutex's inline paths), `ids.rs` (cached
//! process and thread ids), `spin.rs` (the poll-before-sleep policy) and `clock.rs`
//! (deadlines as absolute kernel times).

mod clock;
mod futex;
mod ids;
mod mapping;
mod mutex;
mod robust_list;
mod shm;
mod spin;

#[cfg(feature = "async")]
pub use futex::{FUTEX_WAITV_MAX, futex_waitv};
pub use futex::{futex_wait, futex_wake};
pub use ids::{current_ids, is_own_thread};
pub use mapping::{Mapping, memfd, punch_hole};
pub use mutex::{MutexLock, RobustMutex};
pub use shm::{shm_create, shm_open, shm_unlink};
#[cfg(feature = "async")]
pub use spin::SPIN_BEFORE_BLOCKING;
pub use spin::{spin_enabled, spin_until};

#[cfg(test)]
mod tests {
    #[test]
    fn a_segment_cannot_be_resized_by_anyone_who_holds_it() {
        let file = super::memfd(8192).expect("memfd");
        assert!(file.set_len(0).is_err(), "shrinking must be refused");
        assert!(file.set_len(1 << 20).is_err(), "growing must be refused");
        assert_eq!(file.metadata().expect("stat").len(), 8192);
    }
}
