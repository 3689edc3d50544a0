//! The watcher thread: notices worker processes that end (their pidfds) and kills a worker
//! whose item runs past the task timeout, or that took a chunk someone killed.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use super::{Inner, KILL_TICK, REPORT_GRACE, State};
use crate::pool::status;
use crate::pool::worker::Report;
use crate::{handle, sys};

impl Inner {
    /// The watcher thread: report worker ends, kill workers whose item ran too long.
    pub(super) fn watch(self: Arc<Inner>) {
        let timeout_tick = self
            .config
            .timeout
            .map(|t| (t / 4).clamp(Duration::from_millis(1), Duration::from_millis(100)));
        loop {
            let mut watched: Vec<(usize, u64, Arc<OwnedFd>)> = Vec::new();
            let mut tick = timeout_tick;
            {
                let mut st = self.lock();
                if st.threads_stopped {
                    return;
                }
                let now = status::monotonic_ns();
                let mut killing = false;
                let State {
                    slots,
                    pending,
                    kill_requests,
                    ..
                } = &mut *st;
                for (w, slot) in slots.iter_mut().enumerate() {
                    if slot.reported {
                        continue;
                    }
                    if let Some(p) = &slot.process
                        && slot.timed_out.is_none()
                    {
                        // One consistent record: this item and its own start time.
                        let progress = slot.status.read();
                        if let (Some(limit), Some(at)) = (self.config.timeout, progress)
                            && at.task != 0
                            && at.item != status::NOT_STARTED
                            && at.started_ns != 0
                        {
                            let limit = limit.as_nanos() as u64;
                            let mut deadline = at.started_ns.saturating_add(limit);
                            if at.panicked_ns != 0 {
                                // Its panic report is on its way: it ended as a panic, not
                                // a timeout, however long the report takes (within reason).
                                deadline = deadline.max(
                                    at.panicked_ns
                                        .saturating_add(REPORT_GRACE.as_nanos() as u64),
                                );
                            }
                            if now >= deadline {
                                slot.timed_out = Some((at.task, at.item));
                                let _ = p.kill();
                            }
                        }
                        if *kill_requests > 0
                            && let Some(at) = progress
                            && at.task != 0
                            && let Some(chunk) = pending.get(&(at.task - 1))
                            && chunk.killed
                        {
                            let _ = p.kill();
                        }
                    }
                    if slot.remote
                        && slot.timed_out.is_none()
                        && let (Some(limit), Some(at)) = (self.config.timeout, slot.status.read())
                        && at.task != 0
                        && at.started_ns != 0
                        && now >= at.started_ns.saturating_add(limit.as_nanos() as u64)
                        && let Some(remote) = &self.config.remote
                    {
                        // No process to kill: the transport gives the worker up.
                        slot.timed_out = Some((at.task, at.item));
                        remote.lost(w);
                    }
                    if let Some(fd) = &slot.pidfd {
                        watched.push((w, slot.generation, fd.clone()));
                    }
                }
                if *kill_requests > 0 {
                    killing = pending.values().any(|p| p.killed && p.dispatched);
                    if !killing {
                        *kill_requests = 0;
                    }
                }
                if killing {
                    tick = Some(tick.map_or(KILL_TICK, |t| t.min(KILL_TICK)));
                }
            }
            let mut fds: Vec<std::os::fd::BorrowedFd<'_>> = vec![self.wake.1.as_fd()];
            fds.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
            let Ok(ready) = sys::wait_readable(&fds, tick) else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            if ready[0] {
                let mut buf = [0u8; 64];
                let _ = sys::try_recv_some(self.wake.1.as_fd(), &mut buf, &mut VecDeque::new());
            }
            for ((w, generation, _), _) in watched
                .iter()
                .zip(&ready[1..])
                .filter(|(_, readable)| **readable)
            {
                {
                    let mut st = self.lock();
                    match st.slots.get_mut(*w) {
                        Some(slot) if slot.generation == *generation && !slot.reported => {
                            slot.reported = true;
                        }
                        _ => continue,
                    }
                }
                let mut report = Vec::new();
                let _ = handle::encode(
                    &Report::Ended {
                        worker: *w as u32,
                        generation: *generation,
                    },
                    &mut report,
                );
                let _ = self.results.put(&report, None);
            }
        }
    }
}
