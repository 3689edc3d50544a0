//! The feeder thread: puts an order that did not fit in the task ring at once into it when
//! there is room.

use std::sync::Arc;

use super::Inner;
use crate::pool::PoolError;

impl Inner {
    /// The feeder thread: puts the backlog's next order into the task ring when it did not
    /// fit at once, waiting for room (which the others must never do: they hold the state
    /// lock, or are the collector that makes room).
    pub(super) fn feed(self: Arc<Inner>) {
        let mut st = self.lock();
        loop {
            if st.threads_stopped {
                return;
            }
            if st.stalled && st.in_ring < self.config.window {
                st.stalled = false;
                if let Some(id) = st.backlog.pop_front()
                    && let Some(p) = st.pending.get_mut(&id)
                {
                    p.dispatched = true;
                    let message = p.order(id);
                    st.in_ring += 1;
                    drop(st);
                    if let Err(e) = self.tasks.put(&message, None) {
                        self.fail_chunk(id, PoolError::Failed(e.to_string()));
                    }
                    st = self.lock();
                    self.dispatch_backlog(&mut st);
                }
                continue;
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}
