//! The producer side of the ring: an item goes in through an [`ItemWriter`], chunk by chunk,
//! and an item that a dead (or timed-out) producer left open is cancelled by the next one.
//!
//! # Writing an item in place
//! An [`ItemWriter`] holds the put lock for one item. Its bytes may come in any number of
//! writes (one slice, or an encoder writing the item straight into the ring, so that a large
//! item is copied once instead of encoded into a buffer and then copied). Each write lands
//! in the open chunk, past `head`: bytes the producer side owns and no consumer reads. A
//! chunk is published (its header written, then `head` stored) once it is full and more
//! bytes come, or when the item ends; so a chunk holds `max_chunk` bytes unless it is its
//! item's last, exactly as when the whole item was known in advance.
//!
//! Why nothing changes for deaths: what consumers and the next producer can see is only what
//! `head` publishes, and that is the same sequence of states as before this writer existed
//! (an item's chunks in order, the last one marked `LAST`, each published by one store).
//! A producer that dies while an unpublished chunk is half written leaves `open_item` set and
//! `head` before the chunk, which is the state "died between two chunks" of the module docs:
//! the next holder of the put lock, or a consumer waiting for the rest of the item, appends
//! an `ABORT`. A writer that stops without dying (no room before its deadline, an encoder's
//! error or panic) cancels the same way when it is dropped, before the lock is released.
//!
//! Waiting for room with an unpublished chunk cannot deadlock: a chunk holds at most
//! `max_chunk` bytes, a quarter of the ring, and consumers can free everything published
//! before it.

use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::time::Instant;

use super::{
    ChunkHeader, FLAG_FIRST, FLAG_LAST, FLAG_UNCOUNTED, HEADER, KIND_ABORT, KIND_DATA, KIND_SKIP,
    ONE_TASK, OPEN_COUNTED, PAGE, RING_OFFSET, Ring, UNCOUNTED, Unlock, round16,
};
use crate::queue::QueueError;
use crate::sys::memory;

impl Ring {
    /// Take the put lock and cancel an item a previous holder left open.
    pub(super) fn lock_put(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<Unlock<'_>>, QueueError> {
        let guard = Ring::lock(&self.state.put_lock.0, deadline)?;
        Ok(guard.filter(|_| self.abort_open(deadline)))
    }

    /// Free bytes are at least `need` (waiting until `deadline`). Put lock held.
    #[inline]
    fn wait_space(&self, need: u64, deadline: Option<Instant>) -> bool {
        let p = &self.state.producer.0;
        let head = p.head.load(SeqCst);
        head + need <= p.tail_seen.load(SeqCst) + self.capacity
            || self.wait_space_slow(head, need, deadline)
    }

    #[cold]
    fn wait_space_slow(&self, head: u64, need: u64, deadline: Option<Instant>) -> bool {
        let p = &self.state.producer.0;
        let tail = &self.state.consumer.0.tail;
        self.state.space.0.wait(
            deadline,
            || {
                let t = tail.load(SeqCst);
                p.tail_seen.store(t, Relaxed);
                head + need <= t + self.capacity
            },
            || false,
            || {},
        )
    }

    /// Write one chunk at `head` and publish it.
    #[inline]
    pub(super) fn push_chunk(&self, header: ChunkHeader, payload: &[u8]) {
        let head = self.state.producer.0.head.load(SeqCst);
        self.write_at(head + HEADER, payload);
        self.publish(header);
    }

    /// Publish the chunk at `head` whose payload (`header.len` bytes) is written: its
    /// header, then `head` past it.
    #[inline]
    fn publish(&self, header: ChunkHeader) {
        let p = &self.state.producer.0;
        let head = p.head.load(SeqCst);
        self.write_header(head, header);
        let size = HEADER + round16(u64::from(header.len));
        let end = (head % self.capacity + size).min(self.capacity);
        if end > p.high_water.load(SeqCst) {
            p.high_water.store(end, Relaxed);
        }
        p.last_chunk.store(head + 1, Release);
        p.head.store(head + size, SeqCst);
        self.state.data.0.notify();
    }

    /// With the consumer caught up past the first `need` bytes of this lap, jump to the
    /// start of the ring rather than touch fresh pages, and give back pages beyond the
    /// jump point that an earlier burst used.
    #[inline]
    fn maybe_wrap_early(&self, need: u64) {
        let head = self.state.producer.0.head.load(SeqCst);
        let offset = head % self.capacity;
        if offset >= self.soft_wrap {
            self.wrap_early(head, offset, need);
        }
    }

    #[cold]
    fn wrap_early(&self, head: u64, offset: u64, need: u64) {
        let p = &self.state.producer.0;
        let lap = head - offset;
        let tail = self.state.consumer.0.tail.load(SeqCst);
        if tail < lap + need + HEADER {
            return;
        }
        // [offset, capacity) of this lap is unused: behind it the consumer has passed, and
        // nobody reads past head.
        let keep = offset.div_ceil(PAGE) * PAGE;
        let high = p.high_water.load(SeqCst);
        if high > keep {
            let file = self.state.segment().file();
            // Best effort: on failure the pages just stay in memory.
            let _ = memory::punch_hole(file, RING_OFFSET + keep, high - keep);
        }
        p.high_water.store(offset, Relaxed);
        let skip = ChunkHeader {
            len: 0,
            kind: KIND_SKIP,
            flags: 0,
            _pad: 0,
            seq: 0,
        };
        self.write_header(head, skip);
        p.head.store(lap + self.capacity, SeqCst);
        self.state.data.0.notify();
    }

    /// Finish the item a dead (or timed-out) producer left open with an `ABORT` chunk.
    /// Put lock held. `false` if there was no room before `deadline`.
    fn abort_open(&self, deadline: Option<Instant>) -> bool {
        let p = &self.state.producer.0;
        let open = p.open_item.load(SeqCst);
        if open == 0 {
            return true;
        }
        if self.open_item_is_whole(open) {
            // Its producer died after publishing the last piece: the item stands, counted.
            self.close_open();
            return true;
        }
        if !self.wait_space(HEADER, deadline) {
            return false;
        }
        let abort = ChunkHeader {
            len: 0,
            kind: KIND_ABORT,
            flags: if open & UNCOUNTED != 0 {
                FLAG_UNCOUNTED
            } else {
                0
            },
            _pad: 0,
            seq: (open & !UNCOUNTED) - 1,
        };
        self.push_chunk(abort, &[]);
        self.uncount_open();
        p.open_item.store(0, Release);
        true
    }

    /// Whether the last published chunk is the last piece of the open item (put lock held:
    /// nobody has written the ring since the producer that left the item open).
    fn open_item_is_whole(&self, open: u64) -> bool {
        let p = &self.state.producer.0;
        let last = p.last_chunk.load(SeqCst);
        if last == 0 || last > p.head.load(SeqCst) {
            return false;
        }
        self.read_header(last - 1).is_ok_and(|h| {
            h.kind == KIND_DATA && h.flags & FLAG_LAST != 0 && h.seq == (open & !UNCOUNTED) - 1
        })
    }

    /// Put one encoded item. `Ok(false)`: the queue stayed full until `deadline`.
    #[inline]
    pub(crate) fn put(&self, bytes: &[u8], deadline: Option<Instant>) -> Result<bool, QueueError> {
        let Some(item) = self.begin_put(deadline)? else {
            return Ok(false);
        };
        Ok(item.put_whole(bytes))
    }

    /// Start an item: take the put lock, wait for `maxsize` to allow one more item, and
    /// reserve its sequence number (and its task, for a JoinableQueue). `Ok(None)`: the lock
    /// or the room did not come before `deadline`.
    #[inline]
    pub(crate) fn begin_put(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<ItemWriter<'_>>, QueueError> {
        let Some(lock) = self.lock_put(deadline)? else {
            return Ok(None);
        };
        let p = &self.state.producer.0;
        if self.maxsize != 0 {
            let got = &self.state.consumer.0.get_seq;
            let room = || p.put_seq.load(SeqCst).saturating_sub(got.load(SeqCst)) < self.maxsize;
            if !self.state.space.0.wait(deadline, room, || false, || {}) {
                return Ok(None);
            }
        }
        let seq = p.put_seq.load(SeqCst);
        p.open_item.store(seq + 1, Release);
        p.put_seq.store(seq + 1, SeqCst);
        if self.joinable {
            self.state
                .tasks
                .0
                .word
                .fetch_add(ONE_TASK | OPEN_COUNTED, SeqCst);
        }
        Ok(Some(ItemWriter {
            ring: self,
            _lock: lock,
            seq,
            deadline,
            chunk_len: 0,
            cursor: 0,
            room: 0,
            published: false,
            finished: false,
        }))
    }

    /// The open item is whole in the ring: the task count keeps it, and it is no longer open
    /// (put lock held).
    #[inline]
    fn close_open(&self) {
        if self.joinable {
            self.state.tasks.0.word.fetch_and(!OPEN_COUNTED, SeqCst);
        }
        self.state.producer.0.open_item.store(0, Release);
    }

    /// Take the open item out of the task count if it is in it (put lock held).
    fn uncount_open(&self) {
        if !self.joinable {
            return;
        }
        let t = &self.state.tasks.0;
        let mut w = t.word.load(SeqCst);
        while w & OPEN_COUNTED != 0 {
            let next = (w & !OPEN_COUNTED).saturating_sub(ONE_TASK);
            match t.word.compare_exchange(w, next, SeqCst, SeqCst) {
                Ok(_) => {
                    if next < ONE_TASK {
                        t.signal.notify();
                    }
                    return;
                }
                Err(now) => w = now,
            }
        }
    }

    /// If a producer died inside a put, cancel its item (called by waiters, which hold
    /// no put lock).
    pub(super) fn heal(&self) {
        if self.producer_may_be_dead() {
            // Taking the lock cancels the open item (if there is room); nothing else to do.
            let _ = self.lock_put(Some(Instant::now()));
        }
    }

    pub(super) fn producer_may_be_dead(&self) -> bool {
        self.state.producer.0.open_item.load(SeqCst) != 0
    }
}

/// One item being put: holds the put lock, takes the item's bytes in any number of
/// [`write`](ItemWriter::write)s, publishes it with [`finish`](ItemWriter::finish). Dropped
/// unfinished, it cancels the item (see the module docs).
pub(crate) struct ItemWriter<'r> {
    ring: &'r Ring,
    /// Released after `drop` has cancelled an unfinished item.
    _lock: Unlock<'r>,
    /// The item's sequence number.
    seq: u64,
    deadline: Option<Instant>,
    /// Payload bytes written into the open (unpublished) chunk at `head`.
    chunk_len: u64,
    /// Ring offset of the next byte.
    cursor: usize,
    /// Bytes that may be written at `cursor` without looking at the ring: free, inside the
    /// open chunk's limit, and before the end of the ring.
    room: usize,
    /// A chunk of the item is published.
    published: bool,
    finished: bool,
}

impl ItemWriter<'_> {
    /// Append `data` to the item; `false` if there was no room for it before the deadline
    /// (then drop the writer: the item is cancelled).
    #[inline]
    pub(crate) fn write(&mut self, data: &[u8]) -> bool {
        if data.len() <= self.room {
            self.copy(data);
            return true;
        }
        self.write_slow(data)
    }

    /// Make room for the next `n` bytes at once, when a chunk is about to start: an encoder
    /// that knows that much of the item is coming gets it into one chunk where it fits, as
    /// a known item would be (`false`: no room before the deadline).
    pub(crate) fn expect(&mut self, n: usize) -> bool {
        self.room > 0 || self.chunk_len > 0 || self.make_room(n)
    }

    #[inline]
    fn write_slow(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            if self.room == 0 && !self.make_room(data.len()) {
                return false;
            }
            let (now, later) = data.split_at(data.len().min(self.room));
            self.copy(now);
            data = later;
        }
        true
    }

    /// Copy `data` (at most `room` bytes) to `cursor`.
    #[inline]
    fn copy(&mut self, data: &[u8]) {
        // SAFETY: `room` bytes at `cursor` lie inside the ring (`make_room` stops them at its
        // end) and inside the free space the put lock's holder owns, past `head`, which no
        // consumer reads until `publish` (the protocol in the module docs); `data` is the
        // caller's memory, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ring.base().add(self.cursor),
                data.len(),
            );
        }
        self.cursor += data.len();
        self.room -= data.len();
        self.chunk_len += data.len() as u64;
    }

    /// Make `room` non-zero for a write of `want` more bytes: publish the open chunk if it is
    /// full, wrap early at the start of a chunk, wait for the space the chunk needs to grow.
    #[inline]
    fn make_room(&mut self, want: usize) -> bool {
        let ring = self.ring;
        if self.chunk_len == ring.max_chunk {
            self.publish(false);
        }
        let grow = (want as u64).min(ring.max_chunk - self.chunk_len);
        if self.chunk_len == 0 {
            ring.maybe_wrap_early(HEADER + round16(grow));
        }
        if !ring.wait_space(HEADER + round16(self.chunk_len + grow), self.deadline) {
            return false;
        }
        let p = &ring.state.producer.0;
        let head = p.head.load(SeqCst);
        let free = (p.tail_seen.load(SeqCst) + ring.capacity - head - HEADER) & !15;
        let pos = head + HEADER + self.chunk_len;
        let offset = pos % ring.capacity;
        let room = free.min(ring.max_chunk) - self.chunk_len;
        self.cursor = offset as usize;
        self.room = room.min(ring.capacity - offset) as usize;
        true
    }

    /// Publish the open chunk, marked `LAST` if `last`.
    #[inline]
    fn publish(&mut self, last: bool) {
        let mut flags = if self.published { 0 } else { FLAG_FIRST };
        if last {
            flags |= FLAG_LAST;
        }
        self.ring.publish(ChunkHeader {
            // At most `max_chunk`, which is below 2^30.
            len: self.chunk_len as u32,
            kind: KIND_DATA,
            flags,
            _pad: 0,
            seq: self.seq,
        });
        self.published = true;
        self.chunk_len = 0;
        self.room = 0;
    }

    /// The whole item as `bytes`, nothing written yet: `write` then `finish`, except that an
    /// item that fits in one chunk (what most puts are) is copied and published at once.
    #[inline]
    pub(crate) fn put_whole(mut self, bytes: &[u8]) -> bool {
        let ring = self.ring;
        let len = bytes.len() as u64;
        if len > ring.max_chunk {
            return self.write(bytes) && self.finish();
        }
        let need = HEADER + round16(len);
        ring.maybe_wrap_early(need);
        if !ring.wait_space(need, self.deadline) {
            return false;
        }
        ring.write_at(ring.state.producer.0.head.load(SeqCst) + HEADER, bytes);
        self.chunk_len = len;
        self.publish(true);
        self.close();
        true
    }

    /// Publish the rest of the item; `false` if an empty item found no room for its one
    /// (empty) chunk before the deadline (the item is then cancelled).
    #[inline]
    pub(crate) fn finish(mut self) -> bool {
        if self.chunk_len == 0 && !self.published {
            return self.put_whole(&[]);
        }
        self.publish(true);
        self.close();
        true
    }

    /// The item is whole in the ring: it is no longer open.
    #[inline]
    fn close(&mut self) {
        self.ring.close_open();
        self.finished = true;
    }
}

impl Drop for ItemWriter<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let ring = self.ring;
        let p = &ring.state.producer.0;
        ring.uncount_open();
        p.put_seq.store(self.seq, SeqCst);
        if !self.published {
            // Nothing published: take the reservation back.
            p.open_item.store(0, Release);
        } else {
            // Part of the item is out. It was not put, so it is no longer counted; cancel it
            // now if there is room, else leave that to the next producer (or a waiting
            // consumer). The next item reuses its sequence number.
            p.open_item.store((self.seq + 1) | UNCOUNTED, Release);
            ring.abort_open(Some(Instant::now()));
        }
    }
}
