//! Starting workers (local processes, or remote ones through a [`Remote`]) and handing
//! them orders: the dispatch from the backlog into the task ring, and the stop orders.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Inner, Phase, REMOTE_GENERATION, Remote, RemoteLink, State, encode_order};
use crate::pool::PoolError;
use crate::pool::worker::{self, Order, WorkerArgs};
use crate::process::ProcessBuilder;

impl Inner {
    /// Connect the remote workers to this engine, one per slot.
    pub(super) fn attach_remote(
        &self,
        st: &mut State,
        remote: &dyn Remote,
    ) -> Result<(), PoolError> {
        for slot in &st.slots {
            slot.status.reset(self.config.timeout.is_some());
        }
        let workers = remote.attach(RemoteLink {
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            statuses: st.slots.iter().map(|s| s.status.clone()).collect(),
            init: self.config.init.clone(),
        })?;
        for (slot, (name, pid)) in st.slots.iter_mut().zip(workers) {
            slot.name = name;
            slot.pid = pid;
            slot.generation = REMOTE_GENERATION;
            slot.remote = true;
            slot.reported = false;
            st.live += 1;
        }
        Ok(())
    }

    pub(super) fn start_worker(&self, st: &mut State, w: usize) -> Result<(), PoolError> {
        let number = st.next_worker_number;
        st.next_worker_number += 1;
        let slot = &mut st.slots[w];
        slot.status.reset(self.config.timeout.is_some());
        let args = WorkerArgs {
            index: w as u32,
            tasks: self.tasks.clone(),
            results: self.results.clone(),
            status: slot.status.clone(),
            init: self
                .config
                .init
                .as_ref()
                .map(|(code, arg)| (*code, serde_bytes::ByteBuf::from(arg.clone()))),
            max_tasks: self.config.max_tasks,
            max_memory: self.config.max_memory,
        };
        let name = format!("{}-{number}", self.config.prefix);
        let mut builder = ProcessBuilder::new()
            .name(name.clone())
            .daemon(true)
            .limits(self.config.limits.clone());
        if let Some(method) = self.config.start_method {
            builder = builder.start_method(method);
        }
        let process = builder
            .start(worker::worker_main, args)
            .map_err(|e| PoolError::Failed(format!("could not start a pool worker: {e}")))?;
        let pidfd = process
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| PoolError::Failed(format!("could not watch a pool worker: {e}")))?;
        slot.pid = process.pid();
        slot.name = name;
        slot.process = Some(process);
        slot.pidfd = Some(Arc::new(pidfd));
        slot.generation += 1;
        slot.timed_out = None;
        slot.reported = false;
        st.live += 1;
        self.wake_watcher();
        Ok(())
    }

    /// Put waiting orders into the ring while there is room (never blocks).
    pub(super) fn dispatch_backlog(&self, st: &mut State) {
        while st.in_ring < self.config.window {
            let Some(&id) = st.backlog.front() else {
                break;
            };
            let Some(p) = st.pending.get(&id) else {
                st.backlog.pop_front();
                continue;
            };
            let message = p.order(id);
            match self.tasks.put(&message, Some(Instant::now())) {
                Ok(true) => {
                    st.backlog.pop_front();
                    st.in_ring += 1;
                    if let Some(p) = st.pending.get_mut(&id) {
                        p.dispatched = true;
                    }
                }
                // No room now (or the ring failed): the feeder waits for room (or reports
                // the failure).
                _ => {
                    st.stalled = true;
                    self.changed.notify_all();
                    break;
                }
            }
        }
        self.maybe_send_stops(st);
    }

    /// After `close`, once every chunk is done and no lazy map can submit more, tell each
    /// worker to exit.
    pub(super) fn maybe_send_stops(&self, st: &mut State) {
        if st.phase != Phase::Closed || st.stops_sent || !st.pending.is_empty() || st.leases > 0 {
            return;
        }
        st.stops_sent = true;
        let stop = encode_order(&Order::Stop, &[]);
        for _ in 0..st.live {
            // The ring is empty of work by now, so there is room.
            let _ = self
                .tasks
                .put(&stop, Some(Instant::now() + Duration::from_secs(1)));
        }
        self.changed.notify_all();
    }
}
