//! The collector thread: results, failures and worker ends from the result ring, in the
//! order they happened.

use std::sync::Arc;

use super::{Delivery, Inner, Sink, deliver};
use crate::pool::PoolError;
use crate::pool::worker::Report;

impl Inner {
    pub(super) fn fail_chunk(&self, id: u64, mut error: PoolError) {
        let sink = {
            let mut st = self.lock();
            let p = st.pending.remove(&id);
            if p.as_ref().is_some_and(|p| p.killed) {
                error = PoolError::Killed;
            }
            if p.as_ref().is_some_and(|p| p.dispatched) {
                st.in_ring -= 1;
            }
            self.dispatch_backlog(&mut st);
            p.map(|p| p.sink)
        };
        if let Some(sink) = sink {
            deliver(sink, Delivery::Failed(error));
        }
    }

    /// The collector thread: results, failures and deaths, in the order they happened.
    pub(super) fn collect(self: Arc<Inner>) {
        loop {
            // Nothing a report leads to (user callbacks, decoding, a logger) may stop this
            // thread: every later result would never arrive.
            let handled = self.results.get(None, |bytes| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle_report(bytes)))
                    .unwrap_or(true)
            });
            match handled {
                Ok(Some(false)) | Err(_) => return,
                _ => {}
            }
        }
    }

    /// `false` to stop collecting.
    pub(super) fn handle_report(&self, bytes: &[u8]) -> bool {
        let Ok((report, rest)) = postcard::take_from_bytes::<Report>(bytes) else {
            return true;
        };
        match report {
            Report::Done { id, worker } => {
                let (p, who) = {
                    let mut st = self.lock();
                    let p = st.pending.remove(&id);
                    if p.as_ref().is_some_and(|p| p.dispatched) {
                        st.in_ring -= 1;
                    }
                    self.dispatch_backlog(&mut st);
                    let who = st
                        .slots
                        .get(worker as usize)
                        .map(|s| (s.name.clone(), s.pid))
                        .unwrap_or_default();
                    (p, who)
                };
                if let Some(p) = p {
                    let delivery = if p.killed {
                        Delivery::Failed(PoolError::Killed)
                    } else {
                        Delivery::Done {
                            bytes: Some(rest),
                            failed: p.failed,
                            worker: who,
                        }
                    };
                    deliver(p.sink, delivery);
                }
            }
            Report::Failed { id, reason } => self.fail_chunk(id, PoolError::Failed(reason)),
            Report::InitFailed { worker, report } => {
                let st = self.lock();
                let (name, pid) = st
                    .slots
                    .get(worker as usize)
                    .map(|s| (s.name.clone(), s.pid))
                    .unwrap_or_default();
                drop(st);
                let remote = report.into_remote(name, pid);
                self.break_pool(PoolError::InitializerFailed(Box::new(remote)));
            }
            Report::Ended { worker, generation } => self.handle_end(worker as usize, generation),
            Report::Returned { ids } => {
                let mut st = self.lock();
                for id in ids.into_iter().rev() {
                    if let Some(p) = st.pending.get_mut(&id)
                        && p.dispatched
                    {
                        p.dispatched = false;
                        st.in_ring -= 1;
                        st.backlog.push_front(id);
                    }
                }
                self.dispatch_backlog(&mut st);
                self.changed.notify_all();
            }
            Report::Shutdown => return false,
        }
        true
    }

    /// Fail everything, now and later, with `error`.
    pub(super) fn break_pool(&self, error: PoolError) {
        let sinks: Vec<Sink> = {
            let mut st = self.lock();
            if st.broken.is_none() {
                st.broken = Some(error.clone());
            }
            st.backlog.clear();
            st.in_ring = 0;
            let sinks = st.pending.drain().map(|(_, p)| p.sink).collect();
            // Closed already: nothing is pending any more, so the live workers may go.
            self.maybe_send_stops(&mut st);
            self.changed.notify_all();
            sinks
        };
        for sink in sinks {
            deliver(sink, Delivery::Failed(error.clone()));
        }
    }
}
