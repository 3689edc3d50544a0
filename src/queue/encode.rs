//! Encoding an item into a queue's ring.
//!
//! A small item is encoded into the thread's scratch buffer (`handle::take_scratch`) and copied into the ring in one piece,
//! so the put lock is held only for the copy. An item whose encoding grows past [`SPILL`]
//! bytes is written straight into the ring instead: the buffered prefix goes in first, and
//! every later byte the encoder produces lands in its chunk directly (an
//! [`ItemWriter`](super::ring::ItemWriter)). A large item is then copied once on the way in,
//! not encoded into a buffer and copied again. The price: for such an item the put lock is held while the
//! item's `Serialize` runs (a `Serialize` that puts into the same queue gets an error, not a
//! deadlock: the lock checks its owner).
//!
//! If encoding stops part-way (an error from `Serialize`, a panic, no room before the
//! deadline, an OS handle inside the item), the writer is dropped unfinished and cancels the
//! item: consumers never see any of it (see `ring/put.rs`).

use std::time::Instant;

use serde::Serialize;

use super::QueueError;
use super::ring::{ItemWriter, Ring};
use crate::handle::{self, CodecError};

/// Encodings up to this size are buffered and copied into the ring in one piece.
const SPILL: usize = 64 << 10;

/// Encode `item` into a reused per-thread buffer and give the bytes to `f` (the async queue,
/// which must know an item's size before it waits for room).
#[cfg(feature = "async")]
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(
    item: &T,
    f: impl FnOnce(&[u8]) -> Result<R, QueueError>,
) -> Result<R, QueueError> {
    let mut buf = handle::take_scratch();
    let result = match handle::encode(item, &mut buf) {
        Ok(fds) if fds.is_empty() => f(&buf),
        Ok(_) => Err(carries_handles::<T>()),
        Err(e) => Err(e.into()),
    };
    handle::keep_scratch(buf);
    result
}

/// Put `item` into `ring` (see the module docs). `Ok(false)`: the lock or the room did not
/// come before `deadline`, and nothing of the item was put.
pub(crate) fn put<T: Serialize + ?Sized>(
    ring: &Ring,
    item: &T,
    deadline: Option<Instant>,
) -> Result<bool, QueueError> {
    let mut sink = Sink {
        ring,
        deadline,
        buf: handle::take_scratch(),
        writer: None,
        stopped: None,
    };
    let (encoded, fds) = handle::encode_with(item, &mut sink);
    let result = match (sink.stopped.take(), encoded) {
        (Some(Stop::NoRoom), _) => Ok(false),
        (Some(Stop::Failed(e)), _) => Err(e),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(())) if !fds.is_empty() => Err(carries_handles::<T>()),
        (None, Ok(())) => match sink.writer.take() {
            Some(writer) => Ok(writer.finish()),
            None => ring.put(&sink.buf, deadline),
        },
    };
    // An unfinished writer cancels its item here, before the buffer is kept.
    drop(sink.writer.take());
    handle::keep_scratch(std::mem::take(&mut sink.buf));
    result
}

fn carries_handles<T: ?Sized>() -> QueueError {
    QueueError::Codec(CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        reason: "OS handles cannot travel through a queue; pass them as process arguments or \
                 send them over a Connection"
            .into(),
    })
}

/// Why writing into the ring stopped (postcard's own error cannot carry it).
enum Stop {
    /// The put lock, `maxsize` or room in the ring did not come before the deadline.
    NoRoom,
    /// Taking the put lock failed.
    Failed(QueueError),
}

/// postcard's output for [`put`]: the buffer until the encoding passes [`SPILL`] bytes, then
/// the ring.
struct Sink<'r> {
    ring: &'r Ring,
    deadline: Option<Instant>,
    buf: Vec<u8>,
    writer: Option<ItemWriter<'r>>,
    stopped: Option<Stop>,
}

impl Sink<'_> {
    /// Start the item in the ring with the buffered bytes and then `more`.
    #[cold]
    fn spill(&mut self, more: &[u8]) -> postcard::Result<()> {
        let mut writer = match self.ring.begin_put(self.deadline) {
            Ok(Some(writer)) => writer,
            Ok(None) => return self.stop(Stop::NoRoom),
            Err(e) => return self.stop(Stop::Failed(e)),
        };
        if !(writer.expect(self.buf.len() + more.len())
            && writer.write(&self.buf)
            && writer.write(more))
        {
            return self.stop(Stop::NoRoom);
        }
        self.writer = Some(writer);
        Ok(())
    }

    fn stop(&mut self, why: Stop) -> postcard::Result<()> {
        self.stopped = Some(why);
        Err(postcard::Error::SerializeBufferFull)
    }
}

impl postcard::ser_flavors::Flavor for &mut Sink<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.writer.is_none() && self.buf.len() < SPILL {
            self.buf.push(byte);
            return Ok(());
        }
        self.try_extend(&[byte])
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        match &mut self.writer {
            Some(writer) => match writer.write(bytes) {
                true => Ok(()),
                false => self.stop(Stop::NoRoom),
            },
            None if self.buf.len() + bytes.len() <= SPILL => {
                handle::append(&mut self.buf, bytes);
                Ok(())
            }
            None => self.spill(bytes),
        }
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}
