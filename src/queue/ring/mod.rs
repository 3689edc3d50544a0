// long file: one data structure (the ring) with its layout, its crash recovery and its tests (the last ~100 lines)
//! The shared-memory ring behind every queue.
//!
//! Why by hand: no crate offers a multi-process, crash-tolerant byte queue in shared memory
//! (the lock-free rings on crates.io assume one address space and no process deaths).
//!
//! # Layout
//! One memfd segment: a state page ([`RingState`]) followed by `capacity` bytes of ring. The
//! ring holds *chunks*, each a 16-byte [`ChunkHeader`] and its payload, padded to 16 bytes,
//! at free-running 64-bit positions (`position % capacity` is the offset). An item is one or
//! more data chunks (`FIRST` on the first, `LAST` on the last); items larger than a quarter
//! of the ring stream through it in pieces while the consumer reads them.
//!
//! # Protocol
//! - Producers serialize on the robust `put_lock` and own the bytes `[head, tail + capacity)`;
//!   consumers serialize on the robust `get_lock` and own `[tail, head)`. A chunk is written
//!   first and published by storing `head`; it is freed by storing `tail`. So between the two
//!   sides the ring is single-producer single-consumer and needs no further locking. The
//!   producer side is `put.rs`: an item's bytes go into its open chunk as an encoder produces
//!   them, and each chunk is published when it is full or the item ends.
//! - `put_seq` counts reserved items and `get_seq` finished ones; `qsize` and `maxsize` use
//!   their difference. A producer sets `open_item` while it writes an item.
//! - Waits poll briefly, then sleep on a futex word (`Signal`); a side wakes the other only
//!   when it announced that it sleeps.
//! - Memory: the memfd is sparse, so only pages that were written occupy memory. When the
//!   consumer keeps up, the producer wraps early (a `SKIP` chunk) after `soft_wrap` bytes,
//!   so a busy queue keeps reusing the same few pages; after a burst went further, the pages
//!   beyond the wrap point are given back to the kernel (`punch_hole`).
//!
//! # Deaths
//! The side locks are priority-inheritance robust mutexes (`sys/memory.rs`): a process that
//! dies holding one, or right after the kernel handed it one, passes it to the next waiter
//! with `OWNER_DIED`; none of the others stays asleep. What each side repairs:
//! - A producer that dies inside a put leaves `open_item` set. Whoever takes the put lock
//!   next (or a consumer waiting for the rest of that item, which looks every
//!   `HEAL_INTERVAL`) checks whether the item's last piece was published (`last_chunk`): if
//!   so the item stands; if not it appends an `ABORT` chunk and consumers drop the partial
//!   item. The item is lost only if it was never fully put; nothing else is.
//! - A JoinableQueue counts the open item and marks it counted in one atomic add, and a
//!   cancel un-counts it only if it is marked (see [`TaskCount`]): a producer's death at any
//!   instruction leaves the count exact.
//! - A consumer that dies inside a get leaves the rest of its item in the ring; the next
//!   consumer discards chunks that do not start an item. The item is lost with the process
//!   that took it. A consumer that dies before freeing a one-chunk item leaves it in the ring
//!   for the next consumer.
//! - Sleepers announce themselves with a bit in the futex word, not a count (see [`Signal`]):
//!   a dead sleeper leaves nothing that grows.
//! - `put_seq`/`get_seq` are single stores next to each other; a death exactly between two of
//!   them can leave `qsize` off by one until the next item passes, never a waiter without a
//!   waker.
//!
//! # Orderings, field by field
//! Loads are `SeqCst` (a plain load on x86). Stores are `SeqCst` where the field takes part
//! in a wake-up argument or in what the other side reads without the lock (`head`, `tail`,
//! `put_seq`, `get_seq`, the signal and task words); a side's private, lock-ordered words
//! are stored with what they need, since on x86 a `SeqCst` store is a locked exchange and a
//! small put made six of them. What each field needs, and why:
//! - `Config` (`capacity`, `soft_wrap`, `max_chunk`, `maxsize`, `joinable`): written once
//!   before the segment's handle leaves the creating process (sending the handle orders it);
//!   any ordering would do.
//! - `head` (producer, under the put lock): its store publishes the chunk bytes written
//!   before it, so a consumer's load of `head` must be at least `Acquire` and the store at
//!   least `Release`. It is also the store a producer makes before reading `data`'s word to
//!   decide whether to wake: store then load of *another* word is the store-buffering
//!   pattern, which only `SeqCst` on both sides (here: the store of `head` and the read of the
//!   signal word; the sleeper's read-modify-write of the word and its re-read of `head`)
//!   forbids. So `head` needs `SeqCst`.
//! - `tail` (consumer, under the get lock): the mirror image. Its store frees bytes the
//!   consumer finished reading (`Release`, paired with the producer's `Acquire` load before it
//!   overwrites them), and precedes the read of `space`'s word: `SeqCst` for the same reason.
//! - `tail_seen`, `head_seen`, `high_water`: each side's private cache, read and written only
//!   under that side's lock (the mutex orders them between holders): `Relaxed` (`head_seen`
//!   is still stored `SeqCst`).
//! - `put_seq` / `get_seq`: under their side's lock; the other side reads them only for
//!   `qsize` and the `maxsize` check, where a stale value errs towards "full" or "empty" and
//!   is corrected by the next wake-up of the `space` / `data` signal (whose argument is the
//!   one above, with `get_seq` / `put_seq` as the stored condition): `SeqCst` for that pairing.
//! - `open_item`, `last_chunk`: written by the producer under the put lock, read by the next
//!   holder (ordered by the lock) and by a consumer healing a dead producer's item without
//!   that lock (only as a hint to take the lock and look again): stored `Release`, so a
//!   holder that sees the new value also sees the stores before it.
//! - `Signal::seq` and `TaskCount::word`: read-modify-writes and the loads of the
//!   store-buffering argument (see [`Signal`] and [`TaskCount`]): `SeqCst`.
//!
//! Known limit: the consumer waiting for the rest of a dead producer's item learns of the
//! death by looking every `HEAL_INTERVAL` (20 ms) while an item is open, because a sleeper on
//! the data word cannot also sleep on the put lock's PI futex, the only word the kernel
//! touches when the producer dies.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::QueueError;
use crate::shared::segment::{Shared, SharedState};
use crate::sys::memory::{self, MutexLock, RobustMutex};

mod put;

pub(crate) use put::ItemWriter;

/// Where the ring starts in the segment: after the state page, so ring pages can be punched.
const RING_OFFSET: u64 = 4096;
const PAGE: u64 = 4096;
const HEADER: u64 = 16;
/// Without data, how often a waiter checks for a producer that died inside a put.
const HEAL_INTERVAL: Duration = Duration::from_millis(20);
/// Rings larger than this wrap early at this offset when the consumer keeps up.
const SOFT_WRAP: u64 = 1 << 20;
/// The smallest ring.
pub(crate) const MIN_CAPACITY: u64 = PAGE;
/// The largest ring (chunk lengths are 32-bit).
pub(crate) const MAX_CAPACITY: u64 = 1 << 40;

/// In `open_item`: the open item is no longer counted in `put_seq` and the task count.
const UNCOUNTED: u64 = 1 << 63;

const KIND_DATA: u8 = 1;
const KIND_SKIP: u8 = 2;
const KIND_ABORT: u8 = 3;
const FLAG_FIRST: u8 = 1;
const FLAG_LAST: u8 = 2;
/// On an `ABORT`: the item was already taken out of the counts.
const FLAG_UNCOUNTED: u8 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct ChunkHeader {
    len: u32,
    kind: u8,
    flags: u8,
    _pad: u16,
    seq: u64,
}

const _: () = assert!(std::mem::size_of::<ChunkHeader>() as u64 == HEADER);

/// Keeps each side's words on its own cache lines (128: adjacent-line prefetch on x86).
#[repr(C, align(128))]
struct Padded<T>(T);

/// A futex word: a change counter in the low 31 bits and a "someone may sleep" bit, so that
/// notifying costs one load when nobody sleeps.
///
/// No lost wake-up: a waiter sets the bit with a read-modify-write *then* re-checks its
/// condition; a notifier stores what makes the condition true *then* reads the word (all
/// `SeqCst`, so one of the two sees the other's write). A notify that sees the bit bumps the
/// counter, clearing the bit, and wakes every sleeper; a sleeper's `FUTEX_WAIT` on the value
/// it announced fails at once if the word moved. Every sleeper is woken, so one that is killed
/// after the wake takes nothing from the others. No count can drift: a bit left by a waiter
/// that died costs the next notify one `FUTEX_WAKE`, which clears it.
#[repr(C)]
struct Signal {
    seq: AtomicU32,
}

/// In [`Signal::seq`]: a waiter may be asleep.
const SLEEPERS: u32 = 1 << 31;

impl Signal {
    /// Wake every sleeper. Call after the store that makes their condition true.
    fn notify(&self) {
        let mut seen = self.seq.load(SeqCst);
        while seen & SLEEPERS != 0 {
            let bumped = seen.wrapping_add(1) & !SLEEPERS;
            match self.seq.compare_exchange(seen, bumped, SeqCst, SeqCst) {
                Ok(_) => {
                    memory::futex_wake(&self.seq, u32::MAX);
                    return;
                }
                Err(now) => seen = now,
            }
        }
    }

    /// Set the sleepers bit and return the word's value with it: an async waiter (see
    /// `crate::aio`) re-checks its condition after this and then sleeps (through the
    /// process's futex watcher) while the word still holds that value, exactly as [`wait`]
    /// does, so the argument above applies unchanged.
    ///
    /// [`wait`]: Signal::wait
    #[cfg(feature = "async")]
    fn announce(&self) -> u32 {
        self.seq.fetch_or(SLEEPERS, SeqCst) | SLEEPERS
    }

    /// Wait until `ready()` or `deadline`; `false` on timeout. While asleep, wake every
    /// `HEAL_INTERVAL` to run `tick` if `poll()` says there may be something to repair.
    fn wait(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> bool,
        mut poll: impl FnMut() -> bool,
        mut tick: impl FnMut(),
    ) -> bool {
        if ready() || memory::spin_until(deadline, &mut ready) {
            return true;
        }
        loop {
            // Announce, then re-check: a notifier either sees the bit or we see its store.
            let seen = self.seq.fetch_or(SLEEPERS, SeqCst) | SLEEPERS;
            if ready() {
                return true;
            }
            let polling = poll();
            let until = if polling {
                let slice = Instant::now() + HEAL_INTERVAL;
                Some(deadline.map_or(slice, |d| d.min(slice)))
            } else {
                deadline
            };
            memory::futex_wait(&self.seq, seen, until);
            if ready() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if polling {
                tick();
            }
        }
    }
}

#[repr(C)]
struct Config {
    capacity: AtomicU64,
    soft_wrap: AtomicU64,
    max_chunk: AtomicU64,
    maxsize: AtomicU64,
    joinable: AtomicU64,
}

/// Written under the put lock.
#[repr(C)]
struct ProducerSide {
    head: AtomicU64,
    put_seq: AtomicU64,
    /// `seq + 1` of the item being written (or left to cancel), 0 between items.
    open_item: AtomicU64,
    /// Last `tail` read, to avoid touching the consumers' cache line on every put.
    tail_seen: AtomicU64,
    /// Highest ring offset written since pages were last given back.
    high_water: AtomicU64,
    /// Position + 1 of the last chunk written (0: none), stored before `head` publishes it:
    /// lets the next put-lock holder tell a dead producer's whole item from a partial one.
    last_chunk: AtomicU64,
}

/// Written under the get lock.
#[repr(C)]
struct ConsumerSide {
    tail: AtomicU64,
    get_seq: AtomicU64,
    /// Last `head` read.
    head_seen: AtomicU64,
}

/// A JoinableQueue's unfinished tasks: `count << 1 | open_counted` in one word, where
/// `open_counted` says the item being put (`open_item`) is already in the count. A put adds
/// the item and sets the bit in one `fetch_add(3)`, and clears the bit when the item is
/// whole; cancelling an open item removes it and clears the bit in one compare-and-swap, and
/// only if the bit is set. So whatever instruction a producer dies at, its item is in the
/// count exactly when it will also be either whole in the ring or cancelled *with* a decrement:
/// the count cannot drift either way (`join` returning with work pending, or never returning).
#[repr(C)]
struct TaskCount {
    word: AtomicU64,
    signal: Signal,
}

/// In [`TaskCount::word`]: the open item is counted.
const OPEN_COUNTED: u64 = 1;
/// In [`TaskCount::word`]: one task.
const ONE_TASK: u64 = 2;

#[repr(C)]
pub(crate) struct RingState {
    config: Padded<Config>,
    put_lock: Padded<RobustMutex>,
    get_lock: Padded<RobustMutex>,
    producer: Padded<ProducerSide>,
    consumer: Padded<ConsumerSide>,
    data: Padded<Signal>,
    space: Padded<Signal>,
    tasks: Padded<TaskCount>,
}

const _: () = assert!(std::mem::size_of::<RingState>() as u64 <= RING_OFFSET);

// SAFETY: apart from the two robust mutexes (initialised here and used only through
// pthread calls) the state is atomics, for which zero is a valid value.
unsafe impl SharedState for RingState {
    const KIND: u32 = 1;

    unsafe fn init(this: *mut Self) -> io::Result<()> {
        // SAFETY: `this` is zeroed, writable and unused (trait contract).
        unsafe {
            RobustMutex::init(&raw mut (*this).put_lock.0)?;
            RobustMutex::init(&raw mut (*this).get_lock.0)?;
        }
        Ok(())
    }
}

/// How a ring is set up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingConfig {
    /// Ring bytes (rounded up to whole pages).
    pub capacity: u64,
    /// Most items in the queue at once; 0: no limit.
    pub maxsize: u64,
    /// Count unfinished tasks (JoinableQueue).
    pub joinable: bool,
}

/// A process's handle on a ring; clones share the mapping.
#[derive(Clone)]
pub(crate) struct Ring {
    state: Shared<RingState>,
    capacity: u64,
    soft_wrap: u64,
    max_chunk: u64,
    maxsize: u64,
    joinable: bool,
}

fn round16(n: u64) -> u64 {
    (n + 15) & !15
}

impl Ring {
    pub(crate) fn new(config: RingConfig) -> io::Result<Ring> {
        let capacity = config
            .capacity
            .clamp(MIN_CAPACITY, MAX_CAPACITY)
            .div_ceil(PAGE)
            * PAGE;
        let extra = (RING_OFFSET as usize - std::mem::size_of::<RingState>()) + capacity as usize;
        let state: Shared<RingState> = Shared::new(extra)?;
        let c = &state.config.0;
        c.capacity.store(capacity, SeqCst);
        c.soft_wrap.store(
            if capacity > 2 * SOFT_WRAP {
                SOFT_WRAP
            } else {
                capacity
            },
            SeqCst,
        );
        c.max_chunk.store((capacity / 4).min(1 << 30) & !15, SeqCst);
        c.maxsize.store(config.maxsize, SeqCst);
        c.joinable.store(config.joinable as u64, SeqCst);
        Ring::from_state(state)
    }

    /// Cache and check the configuration (it also comes from other processes).
    fn from_state(state: Shared<RingState>) -> io::Result<Ring> {
        let c = &state.config.0;
        let capacity = c.capacity.load(SeqCst);
        let soft_wrap = c.soft_wrap.load(SeqCst);
        let max_chunk = c.max_chunk.load(SeqCst);
        let fits = (state.segment().len() as u64)
            .checked_sub(RING_OFFSET)
            .is_some_and(|room| capacity <= room);
        let sane = fits
            && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
            && capacity.is_multiple_of(PAGE)
            && soft_wrap <= capacity
            && soft_wrap.is_multiple_of(16)
            && max_chunk.is_multiple_of(16)
            && (16..=capacity / 4).contains(&max_chunk);
        if !sane {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "queue segment has an inconsistent header",
            ));
        }
        Ok(Ring {
            capacity,
            soft_wrap,
            max_chunk,
            maxsize: c.maxsize.load(SeqCst),
            joinable: c.joinable.load(SeqCst) != 0,
            state,
        })
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    pub(crate) fn joinable(&self) -> bool {
        self.joinable
    }

    pub(crate) fn maxsize(&self) -> u64 {
        self.maxsize
    }

    /// Items put (or being put) and not yet fully got.
    pub(crate) fn len(&self) -> u64 {
        let got = self.state.consumer.0.get_seq.load(SeqCst);
        self.state
            .producer
            .0
            .put_seq
            .load(SeqCst)
            .saturating_sub(got)
    }

    /// Items put or being put so far, and items fully got so far: once `got` reaches a
    /// `put` read earlier, every item put before that read has been consumed (the log
    /// hub's flush waits for that).
    pub(crate) fn counts(&self) -> (u64, u64) {
        let put = self.state.producer.0.put_seq.load(SeqCst);
        let got = self.state.consumer.0.get_seq.load(SeqCst);
        (put, got)
    }

    // ----- raw ring memory -------------------------------------------------------------

    fn base(&self) -> *mut u8 {
        // SAFETY: `from_state` checked that RING_OFFSET + capacity fits in the segment.
        unsafe { self.state.segment().as_ptr().add(RING_OFFSET as usize) }
    }

    /// Copy `src` into the ring at `pos`, wrapping at the end.
    fn write_at(&self, pos: u64, src: &[u8]) {
        let off = (pos % self.capacity) as usize;
        let first = src.len().min(self.capacity as usize - off);
        // SAFETY: both ranges lie inside the ring (first part up to its end, the rest from
        // its start, and src.len() <= capacity). The caller holds the put lock and the bytes
        // are in [head, tail + capacity), which no other process reads or writes (protocol).
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.base().add(off), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.base(), src.len() - first);
        }
    }

    /// Append `len` bytes at `pos` to `out`, wrapping at the end.
    fn read_into(&self, pos: u64, len: usize, out: &mut Vec<u8>) {
        let off = (pos % self.capacity) as usize;
        let first = len.min(self.capacity as usize - off);
        out.reserve(len);
        // SAFETY: the ranges lie inside the ring (as in `write_at`); the caller holds the get
        // lock and the bytes are published ([tail, head)), so nobody writes them meanwhile.
        // `reserve` made room for `len` more bytes, all initialised before `set_len`.
        unsafe {
            let dst = out.as_mut_ptr().add(out.len());
            std::ptr::copy_nonoverlapping(self.base().add(off), dst, first);
            std::ptr::copy_nonoverlapping(self.base(), dst.add(first), len - first);
            out.set_len(out.len() + len);
        }
    }

    /// The payload at `pos` as one slice if it does not wrap.
    fn contiguous(&self, pos: u64, len: usize) -> Option<&[u8]> {
        let off = (pos % self.capacity) as usize;
        // SAFETY: in bounds when it does not pass the end; published bytes owned by the get
        // lock holder (see `read_into`), unchanged while the slice lives because the tail is
        // stored only after the caller is done with it.
        (off + len <= self.capacity as usize)
            .then(|| unsafe { std::slice::from_raw_parts(self.base().add(off), len) })
    }

    fn write_header(&self, pos: u64, header: ChunkHeader) {
        // SAFETY: positions are 16-aligned and the capacity a multiple of 16, so the header
        // never wraps; the bytes belong to the put lock holder (see `write_at`).
        unsafe {
            let p = self.base().add((pos % self.capacity) as usize);
            std::ptr::write(p.cast::<ChunkHeader>(), header);
        }
    }

    fn read_header(&self, pos: u64) -> Result<ChunkHeader, QueueError> {
        // SAFETY: as in `write_header`; the chunk is published, and every bit pattern is a
        // valid ChunkHeader (plain integers), so a corrupt ring gives a bad header, not UB.
        let header = unsafe {
            let p = self.base().add((pos % self.capacity) as usize);
            std::ptr::read(p.cast::<ChunkHeader>())
        };
        let size_ok = header.kind != KIND_DATA || u64::from(header.len) <= self.max_chunk;
        if matches!(header.kind, KIND_DATA | KIND_SKIP | KIND_ABORT) && size_ok {
            Ok(header)
        } else {
            Err(QueueError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "queue ring is corrupt (a process wrote over its shared memory)",
            )))
        }
    }

    /// Take one of the side locks; `None` on timeout. A dead previous holder is not an
    /// error here: each side repairs what it may have left (see the module docs).
    fn lock(
        lock: &RobustMutex,
        deadline: Option<Instant>,
    ) -> Result<Option<Unlock<'_>>, QueueError> {
        match lock.lock(deadline)? {
            MutexLock::Acquired | MutexLock::OwnerDied => Ok(Some(Unlock(lock))),
            MutexLock::TimedOut => Ok(None),
            MutexLock::WouldDeadlock => Err(QueueError::Io(io::Error::new(
                io::ErrorKind::WouldBlock,
                "this thread is already inside an operation on this queue",
            ))),
        }
    }

    // ----- consumer side ---------------------------------------------------------------

    /// A chunk is published at `tail` (waiting until `deadline`).
    fn wait_data(&self, tail: u64, deadline: Option<Instant>) -> bool {
        let c = &self.state.consumer.0;
        if c.head_seen.load(SeqCst) > tail {
            return true;
        }
        let head = &self.state.producer.0.head;
        self.state.data.0.wait(
            deadline,
            || {
                let h = head.load(SeqCst);
                c.head_seen.store(h, SeqCst);
                h > tail
            },
            || self.producer_may_be_dead(),
            || self.heal(),
        )
    }

    fn advance(&self, tail: u64) {
        self.state.consumer.0.tail.store(tail, SeqCst);
        self.state.space.0.notify();
    }

    /// Take the next item and give its bytes to `decode`. `Ok(None)`: nothing arrived
    /// before `deadline`. Once the first piece of a large item has been taken, the rest is
    /// awaited regardless of the deadline (its producer finishes or cancels it).
    pub(crate) fn get<R>(
        &self,
        deadline: Option<Instant>,
        decode: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, QueueError> {
        self.get_claiming(deadline, |_| {}, decode)
    }

    /// [`get`](Ring::get), calling `claim` with the first piece of the item before any of
    /// it leaves the ring: a consumer that records what it takes there leaves a trace even
    /// if it dies while the rest of a large item streams in.
    pub(crate) fn get_claiming<R>(
        &self,
        deadline: Option<Instant>,
        mut claim: impl FnMut(&[u8]),
        decode: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, QueueError> {
        let c = &self.state.consumer.0;
        // Wait for a chunk before taking the lock, so that idle consumers all sleep on the
        // data signal and all wake when work comes, instead of one after another through
        // the lock (each wake-up costs tens of microseconds on a VM).
        let _guard = loop {
            if !self.wait_data(c.tail.load(SeqCst), deadline) {
                return Ok(None);
            }
            let Some(guard) = Ring::lock(&self.state.get_lock.0, deadline)? else {
                return Ok(None);
            };
            let tail = c.tail.load(SeqCst);
            if c.head_seen.load(SeqCst) > tail || self.state.producer.0.head.load(SeqCst) > tail {
                break guard;
            }
            // Another consumer took it: wait again without the lock.
        };
        let mut assembling: Option<(u64, Vec<u8>)> = None;
        loop {
            let tail = c.tail.load(SeqCst);
            let wait_until = if assembling.is_some() { None } else { deadline };
            if !self.wait_data(tail, wait_until) {
                return Ok(None);
            }
            let header = self.read_header(tail)?;
            let size = HEADER + round16(u64::from(header.len));
            match header.kind {
                KIND_SKIP => self.advance(tail - tail % self.capacity + self.capacity),
                KIND_ABORT => {
                    if assembling
                        .as_ref()
                        .is_some_and(|(seq, _)| *seq == header.seq)
                    {
                        assembling = None;
                    }
                    // An uncounted item was taken back from `put_seq` already.
                    if header.flags & FLAG_UNCOUNTED == 0 {
                        c.get_seq.store(header.seq + 1, SeqCst);
                    }
                    self.advance(tail + HEADER);
                }
                _ => {
                    let first = header.flags & FLAG_FIRST != 0;
                    let last = header.flags & FLAG_LAST != 0;
                    let len = header.len as usize;
                    let pos = tail + HEADER;
                    if first && last {
                        let done = Advance(self, tail + size, header.seq);
                        // `decode` runs before the item is freed, so it can claim too.
                        let result = match self.contiguous(pos, len) {
                            Some(bytes) => decode(bytes),
                            None => {
                                let mut copy = Vec::with_capacity(len);
                                self.read_into(pos, len, &mut copy);
                                decode(&copy)
                            }
                        };
                        drop(done);
                        return Ok(Some(result));
                    }
                    match (&mut assembling, first) {
                        (_, true) => {
                            let mut buf = Vec::new();
                            self.read_into(pos, len, &mut buf);
                            claim(&buf);
                            assembling = Some((header.seq, buf));
                        }
                        (Some((seq, buf)), false) if *seq == header.seq => {
                            self.read_into(pos, len, buf);
                        }
                        // The rest of an item whose consumer died: drop it.
                        _ => {
                            if last {
                                c.get_seq.store(header.seq + 1, SeqCst);
                            }
                            self.advance(tail + size);
                            continue;
                        }
                    }
                    if last {
                        // Decode before freeing the last piece, as for one-piece items: a
                        // consumer that dies while decoding leaves a trace in the ring.
                        let done = Advance(self, tail + size, header.seq);
                        let (_, buf) = assembling.take().unwrap_or_default();
                        let result = decode(&buf);
                        drop(done);
                        return Ok(Some(result));
                    }
                    self.advance(tail + size);
                }
            }
        }
    }

    // ----- async waiters (crate::aio) ------------------------------------------------

    /// Announce an async consumer on the data signal; returns the futex word and the value
    /// to sleep on. The caller re-checks ([`has_data`](Ring::has_data) or a non-blocking
    /// get) afterwards, before it sleeps.
    #[cfg(feature = "async")]
    pub(crate) fn announce_data(&self) -> (&AtomicU32, u32) {
        let signal = &self.state.data.0;
        (&signal.seq, signal.announce())
    }

    /// Announce an async producer on the space signal (see [`announce_data`](Ring::announce_data)).
    #[cfg(feature = "async")]
    pub(crate) fn announce_space(&self) -> (&AtomicU32, u32) {
        let signal = &self.state.space.0;
        (&signal.seq, signal.announce())
    }

    /// Whether a chunk is published that no consumer has freed yet (racy: a hint for
    /// choosing how to wait, never for deciding anything).
    #[cfg(any(feature = "async", feature = "mpi"))]
    pub(crate) fn has_data(&self) -> bool {
        self.state.producer.0.head.load(SeqCst) > self.state.consumer.0.tail.load(SeqCst)
    }

    /// The ring bytes an item of `len` encoded bytes takes (all its chunks).
    #[cfg(feature = "async")]
    fn item_need(&self, len: usize) -> u64 {
        let len = len as u64;
        let full = len / self.max_chunk;
        let rest = len % self.max_chunk;
        let mut need = full * (HEADER + self.max_chunk);
        if rest > 0 || full == 0 {
            need += HEADER + round16(rest);
        }
        need
    }

    /// Whether an item of `len` encoded bytes fits in the ring at all without streaming
    /// (its chunks and an `ABORT` a dead producer may leave); larger ones only go through
    /// while consumers take their first pieces.
    #[cfg(feature = "async")]
    pub(crate) fn fits_at_once(&self, len: usize) -> bool {
        self.item_need(len) + HEADER <= self.capacity
    }

    /// Whether an item of `len` encoded bytes would be put now without waiting for room
    /// (`maxsize` and ring space; racy: a hint for choosing how to wait).
    #[cfg(feature = "async")]
    pub(crate) fn room_for(&self, len: usize) -> bool {
        let p = &self.state.producer.0;
        let c = &self.state.consumer.0;
        let count_ok = self.maxsize == 0
            || p.put_seq
                .load(SeqCst)
                .saturating_sub(c.get_seq.load(SeqCst))
                < self.maxsize;
        let free = (c.tail.load(SeqCst) + self.capacity).saturating_sub(p.head.load(SeqCst));
        count_ok && self.item_need(len) <= free
    }

    /// Whether a producer may have died inside a put, leaving an item to cancel; if so,
    /// async consumers look every `HEAL_INTERVAL` and call [`heal`](Ring::heal).
    #[cfg(feature = "async")]
    pub(crate) fn needs_healing(&self) -> bool {
        self.producer_may_be_dead()
    }

    /// Cancel the item of a producer that died inside a put, if there is one.
    #[cfg(feature = "async")]
    pub(crate) fn heal_now(&self) {
        self.heal();
    }

    /// How often async waiters look for a producer that died inside a put.
    #[cfg(feature = "async")]
    pub(crate) const HEAL_INTERVAL: Duration = HEAL_INTERVAL;

    // ----- tasks (JoinableQueue) ------------------------------------------------------

    /// Mark `n` tasks done; error if fewer are unfinished.
    pub(crate) fn finish_tasks(&self, n: u64) -> Result<(), QueueError> {
        let t = &self.state.tasks.0;
        let mut current = t.word.load(SeqCst);
        loop {
            let next = n
                .checked_mul(ONE_TASK)
                .and_then(|sub| current.checked_sub(sub))
                .ok_or(QueueError::TaskDoneTooManyTimes)?;
            match t.word.compare_exchange_weak(current, next, SeqCst, SeqCst) {
                Ok(_) => {
                    if next < ONE_TASK {
                        t.signal.notify();
                    }
                    return Ok(());
                }
                Err(now) => current = now,
            }
        }
    }

    pub(crate) fn unfinished_tasks(&self) -> u64 {
        self.state.tasks.0.word.load(SeqCst) / ONE_TASK
    }

    /// Wait until every task is done; `false` on timeout.
    pub(crate) fn join_tasks(&self, deadline: Option<Instant>) -> bool {
        let t = &self.state.tasks.0;
        t.signal.wait(
            deadline,
            || t.word.load(SeqCst) < ONE_TASK,
            || true,
            || self.heal(),
        )
    }
}

/// Unlocks a side lock when dropped.
struct Unlock<'a>(&'a RobustMutex);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        // Cannot fail: this thread holds the lock.
        let _ = self.0.unlock();
    }
}

/// Frees a one-chunk item once its bytes are no longer borrowed, even if decoding panics.
struct Advance<'a>(&'a Ring, u64, u64);

impl Drop for Advance<'_> {
    fn drop(&mut self) {
        let Advance(ring, tail, seq) = *self;
        ring.state.consumer.0.get_seq.store(seq + 1, SeqCst);
        ring.advance(tail);
    }
}

impl Serialize for Ring {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ring {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let state = Shared::<RingState>::deserialize(deserializer)?;
        Ring::from_state(state).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    //! A producer killed between any two instructions of `put` leaves one of a few states;
    //! each is built here by hand, then the next put-lock holder repairs it. The task count
    //! of a JoinableQueue must come out exact in every one.
    use super::*;

    fn joinable_ring() -> Ring {
        Ring::new(RingConfig {
            capacity: 64 * 1024,
            maxsize: 0,
            joinable: true,
        })
        .expect("ring")
    }

    /// The first steps of `put`, as far as `counted` says, by a producer that then dies.
    fn begin_item(ring: &Ring, counted: bool) -> u64 {
        let p = &ring.state.producer.0;
        let seq = p.put_seq.load(SeqCst);
        p.open_item.store(seq + 1, SeqCst);
        p.put_seq.store(seq + 1, SeqCst);
        if counted {
            ring.state
                .tasks
                .0
                .word
                .fetch_add(ONE_TASK | OPEN_COUNTED, SeqCst);
        }
        seq
    }

    fn chunk(ring: &Ring, seq: u64, flags: u8) {
        let header = ChunkHeader {
            len: 16,
            kind: KIND_DATA,
            flags,
            _pad: 0,
            seq,
        };
        ring.push_chunk(header, &[7; 16]);
    }

    /// The next producer takes the put lock, which repairs what the dead one left.
    fn next_put_lock_holder(ring: &Ring) {
        let guard = ring.lock_put(None).expect("lock").expect("no deadline");
        drop(guard);
        assert_eq!(ring.state.producer.0.open_item.load(SeqCst), 0);
    }

    fn take(ring: &Ring) -> Option<Vec<u8>> {
        ring.get(Some(Instant::now()), <[u8]>::to_vec).expect("get")
    }

    #[test]
    fn a_producer_dead_before_counting_its_item_changes_no_count() {
        let ring = joinable_ring();
        ring.put(&[1; 8], None).expect("put");
        begin_item(&ring, false);
        next_put_lock_holder(&ring);
        assert_eq!(
            ring.unfinished_tasks(),
            1,
            "the earlier item is still unfinished"
        );
        assert_eq!(take(&ring), Some(vec![1; 8]));
        assert_eq!(take(&ring), None);
    }

    #[test]
    fn a_producer_dead_inside_its_item_has_it_cancelled_and_uncounted() {
        let ring = joinable_ring();
        let seq = begin_item(&ring, true);
        chunk(&ring, seq, FLAG_FIRST);
        next_put_lock_holder(&ring);
        assert_eq!(ring.unfinished_tasks(), 0);
        assert!(ring.join_tasks(Some(Instant::now())));
        assert_eq!(take(&ring), None, "the partial item is dropped");
    }

    #[test]
    fn a_producer_dead_after_its_last_piece_keeps_its_item_counted() {
        let ring = joinable_ring();
        let seq = begin_item(&ring, true);
        chunk(&ring, seq, FLAG_FIRST | FLAG_LAST);
        next_put_lock_holder(&ring);
        assert_eq!(ring.unfinished_tasks(), 1);
        assert_eq!(take(&ring), Some(vec![7; 16]));
        ring.finish_tasks(1).expect("task_done");
        assert!(ring.join_tasks(Some(Instant::now())));
    }

    #[test]
    fn a_consumer_done_with_the_whole_item_before_the_repair_counts_it_once() {
        let ring = joinable_ring();
        let seq = begin_item(&ring, true);
        chunk(&ring, seq, FLAG_FIRST | FLAG_LAST);
        assert_eq!(take(&ring), Some(vec![7; 16]));
        ring.finish_tasks(1).expect("task_done");
        next_put_lock_holder(&ring);
        assert_eq!(ring.unfinished_tasks(), 0);
        assert!(ring.finish_tasks(1).is_err(), "nothing left to mark done");
    }
}
