//! [`WorkerStatus`]: what a pool worker publishes about itself in shared memory (the chunk
//! and item it runs, since when, whether that item panicked), and how the parent reads it.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU64, fence};

use crate::segment::SharedState;

/// What a worker publishes about itself, in shared memory the parent reads.
///
/// `task`, `item`, `started_ns` and `panicked_ns` form one record, written only by the
/// worker's task thread (a single writer) under a sequence lock, so the parent's watcher
/// reads a consistent record: never the item of one chunk with the start time of another
/// (see [`WorkerStatus::write`] and [`WorkerStatus::read`] for the ordering argument).
#[repr(C)]
pub(crate) struct WorkerStatus {
    /// Sequence lock over the record: odd while the worker writes it.
    seq: AtomicU64,
    /// `id + 1` of the chunk being run, 0 when idle.
    task: AtomicU64,
    /// Index in that chunk of the item being run ([`NOT_STARTED`] before the first).
    item: AtomicU64,
    /// When that item started (`CLOCK_MONOTONIC` ns), if the pool has a task timeout.
    started_ns: AtomicU64,
    /// When that item panicked (its report is being made; 0: it did not).
    panicked_ns: AtomicU64,
    /// Set once the initializer has run.
    pub ready: AtomicU64,
    /// Whether to record `started_ns`.
    pub timed: AtomicU64,
}

// SAFETY: only atomics; zero is a valid (idle, not ready) status.
unsafe impl SharedState for WorkerStatus {
    const KIND: u32 = 7;
}

/// One consistent reading of a worker's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progress {
    /// `id + 1` of the chunk being run, 0 when idle.
    pub task: u64,
    /// The item being run, or [`NOT_STARTED`].
    pub item: u64,
    pub started_ns: u64,
    pub panicked_ns: u64,
}

pub(crate) fn monotonic_ns() -> u64 {
    crate::sys::monotonic_ns()
}

/// `WorkerStatus::item` while a claimed chunk has not started its first item.
pub(crate) const NOT_STARTED: u64 = u64::MAX;

impl WorkerStatus {
    /// Change the record. Only one thread of one process ever writes (the worker's task
    /// thread, or the parent before the worker starts), so no writer races another.
    ///
    /// Ordering (the classic seqlock with fences): the odd sequence number is stored, then
    /// a `Release` fence, then the fields (`Relaxed`), then the even number with `Release`.
    /// A reader that sees any field value written after the fence has, through its own
    /// `Acquire` fence after the field loads, its second sequence load ordered after our odd
    /// store: it sees the sequence change and retries. A reader whose first (`Acquire`) load
    /// sees the final even number sees every field stored before it.
    fn write(&self, f: impl FnOnce(&Self)) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        f(self);
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// A consistent reading of the record, or `None` if the worker was writing it each of a
    /// few tries (it is in the middle of an update, or died in one).
    pub(crate) fn read(&self) -> Option<Progress> {
        for _ in 0..64 {
            let before = self.seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let progress = self.read_fields();
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                return Some(progress);
            }
        }
        None
    }

    /// The record as it is, once the worker is dead (nothing writes it any more; its exit
    /// ordered every store before our reading). Consistent unless the worker died in the
    /// middle of an update, which [`read`](WorkerStatus::read) would tell.
    pub(crate) fn read_fields(&self) -> Progress {
        Progress {
            task: self.task.load(Relaxed),
            item: self.item.load(Relaxed),
            started_ns: self.started_ns.load(Relaxed),
            panicked_ns: self.panicked_ns.load(Relaxed),
        }
    }

    /// Idle and not ready: in the parent, before a worker starts on this status.
    pub(crate) fn reset(&self, timed: bool) {
        self.write(|s| {
            s.task.store(0, Relaxed);
            s.item.store(0, Relaxed);
            s.started_ns.store(0, Relaxed);
            s.panicked_ns.store(0, Relaxed);
        });
        self.ready.store(0, SeqCst);
        self.timed.store(timed as u64, SeqCst);
    }

    pub(crate) fn claim(&self, id: u64) {
        self.write(|s| {
            s.item.store(NOT_STARTED, Relaxed);
            s.started_ns.store(0, Relaxed);
            s.panicked_ns.store(0, Relaxed);
            s.task.store(id + 1, Relaxed);
        });
    }

    pub(crate) fn start_item(&self, index: usize, timed: bool) {
        let now = if timed { monotonic_ns() } else { 0 };
        self.write(|s| {
            s.item.store(index as u64, Relaxed);
            s.started_ns.store(now, Relaxed);
            s.panicked_ns.store(0, Relaxed);
        });
    }

    /// The running item panicked: its report is on its way (the watcher stops its timeout
    /// clock, see `engine/watcher.rs`). Called from the panic hook, before anything slow.
    pub(super) fn mark_panicked(&self) {
        let now = monotonic_ns().max(1);
        self.write(|s| s.panicked_ns.store(now, Relaxed));
    }

    pub(crate) fn finish(&self) {
        self.write(|s| s.task.store(0, Relaxed));
    }
}
