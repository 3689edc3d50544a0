//! A worker's end, as the collector learns it: which item it was running fails with the
//! cause, the rest of its chunk goes back to the backlog, and a new worker takes its place
//! (local workers; remote ones are never replaced).

use std::sync::MutexGuard;
use std::sync::atomic::Ordering::SeqCst;

use super::{Death, Inner, LOST_LIMIT, Phase, State, deliver_empty_done};
use crate::pool::PoolError;
use crate::pool::status;
use crate::pool::worker::WorkerExit;
use crate::process::ProcessError;
use crate::sys;

impl Inner {
    pub(super) fn handle_end(&self, w: usize, generation: u64) {
        let mut st = self.lock();
        let Some(slot) = st.slots.get_mut(w) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        if slot.remote {
            self.handle_remote_end(st, w);
            return;
        }
        if slot.process.is_none() {
            return;
        }
        // The worker is dead: nothing writes its record any more.
        let at_death = slot.status.read_fields();
        let (task, item) = (at_death.task, at_death.item);
        let ready = slot.status.ready.load(SeqCst) != 0;
        let timed_out = slot.timed_out.take();
        let (name, pid) = (slot.name.clone(), slot.pid);
        let exit = slot.process.take().map(|p| {
            // The watcher saw the process end, so this does not wait.
            p.join_unflushed()
        });
        slot.pidfd = None;
        st.live -= 1;
        let death = match &exit {
            Some(Ok(Ok(WorkerExit::Stopped | WorkerExit::Retired | WorkerExit::Grew(_)))) => None,
            Some(Ok(Err(reason))) => Some(Death {
                cause: reason.clone(),
                signal: None,
                signal_name: None,
                exit_code: None,
                limit: None,
            }),
            Some(Err(e)) => Some(describe_exit(e)),
            None => Some(Death {
                cause: "lost".into(),
                signal: None,
                signal_name: None,
                exit_code: None,
                limit: None,
            }),
        };
        // A limit the workers cannot have fails every start the same way: the pool breaks.
        let unappliable = match &exit {
            Some(Err(ProcessError::Limits(e))) => Some(PoolError::Limits(e.clone())),
            _ => None,
        };
        let retired = match &exit {
            Some(Ok(Ok(WorkerExit::Grew(resident)))) => format!(
                "retired with {} MiB resident, past max_memory_per_child",
                resident >> 20
            ),
            _ => "retired after its task limit".to_string(),
        };
        let cause = death.as_ref().map(|d| d.cause.clone());
        let stopped = matches!(exit, Some(Ok(Ok(WorkerExit::Stopped))));
        let died = || match &death {
            Some(Death {
                limit: Some(error), ..
            }) => error.clone(),
            Some(d) => PoolError::WorkerDied {
                name: name.clone(),
                pid,
                signal: d.signal,
                signal_name: d.signal_name,
                exit_code: d.exit_code,
                cause: d.cause.clone(),
            },
            None => PoolError::WorkerDied {
                name: name.clone(),
                pid,
                signal: None,
                signal_name: None,
                exit_code: Some(0),
                cause: "exited".into(),
            },
        };
        // The chunk it had taken, if any: the running item fails, the rest goes again.
        let mut delivery = None;
        let id = task.wrapping_sub(1);
        if task != 0
            && let Some(p) = st.pending.get_mut(&id)
            && p.dispatched
        {
            // Killed for an item that finished just before the kill landed (the watcher
            // read the record, then the worker moved on): the item it was running is not
            // to blame and runs again.
            let innocent = timed_out.is_some_and(|blamed| blamed != (task, item));
            // The watcher's kill decides only if it is what ended the worker: one that
            // aborted (or exited) on its own before the kill landed failed by itself.
            let killed_by_us = death
                .as_ref()
                .is_some_and(|d| d.signal == Some(sys::SIGKILL));
            let timed_out = timed_out.filter(|_| killed_by_us);
            let innocent = innocent && killed_by_us;
            if p.killed {
                // Killed on request: the whole chunk fails, nothing runs again.
                for i in 0..p.items {
                    if let Err(at) = p.skip.binary_search(&i) {
                        p.skip.insert(at, i);
                        p.failed.push((i, PoolError::Killed));
                    }
                }
            } else if item == status::NOT_STARTED {
                // Died between taking the chunk and starting it (killed while receiving it):
                // nothing ran, so it all goes again, unless that keeps happening.
                p.lost += 1;
                if p.lost >= LOST_LIMIT {
                    for i in 0..p.items {
                        if let Err(at) = p.skip.binary_search(&i) {
                            p.skip.insert(at, i);
                            p.failed.push((i, died()));
                        }
                    }
                }
            } else if !innocent {
                let error = match (timed_out, self.config.timeout) {
                    (Some(_), Some(after)) => {
                        crate::event::event!(
                            log::Level::Warn,
                            "a task in pool worker '{name}' (pid {pid}) ran past its timeout of \
                             {after:?}; the worker was killed"
                        );
                        PoolError::Timeout {
                            after,
                            name: name.clone(),
                            pid,
                        }
                    }
                    _ => died(),
                };
                let item = item as u32;
                if let Err(at) = p.skip.binary_search(&item) {
                    p.skip.insert(at, item);
                    p.failed.push((item, error));
                }
            }
            p.dispatched = false;
            let finished = p.skip.len() as u32 >= p.items;
            st.in_ring -= 1;
            if finished {
                delivery = st.pending.remove(&id).map(|p| (p.sink, p.failed));
            } else {
                st.backlog.push_front(id);
            }
        }
        // Deaths before the initializer finished: a deterministic failure breaks the pool
        // (CPython would start workers forever); one killed worker does not.
        let mut broken = unappliable;
        if ready {
            st.init_deaths = 0;
        } else if cause.is_some() && self.config.init.is_some() {
            st.init_deaths += 1;
            if st.init_deaths >= LOST_LIMIT && st.broken.is_none() {
                broken = Some(PoolError::InitializerFailed(Box::new(
                    crate::panic_report::PanicReport {
                        message: format!(
                            "{LOST_LIMIT} workers in a row died during initialization, the \
                             last one '{name}' (pid {pid}): {}",
                            cause.clone().unwrap_or_default()
                        ),
                        location: None,
                        backtrace: String::new(),
                        thread: None,
                    }
                    .into_remote(name.clone(), pid),
                )));
            }
        }
        if broken.is_none() {
            // A broken pool (its initializer failed) starts no worker again, whatever the
            // phase: after `close` that would start failing workers forever.
            let replace = st.broken.is_none()
                && match st.phase {
                    Phase::Running => true,
                    Phase::Closed => {
                        !stopped
                            && (!st.pending.is_empty()
                                || st.leases > 0
                                || self.tasks.len() > st.live as u64)
                    }
                    Phase::Terminated => false,
                };
            if replace && let Err(e) = self.start_worker(&mut st, w) {
                broken = Some(e);
            }
            let after = if replace && broken.is_none() {
                let slot = &st.slots[w];
                format!("replaced by '{}' (pid {})", slot.name, slot.pid)
            } else {
                "not replaced".to_string()
            };
            match &cause {
                Some(cause) if !matches!(st.phase, Phase::Terminated) => {
                    crate::event::event!(
                        log::Level::Warn,
                        "pool worker '{name}' (pid {pid}) {cause}; {after}"
                    );
                }
                None if !stopped => crate::event::event!(
                    log::Level::Info,
                    "pool worker '{name}' (pid {pid}) {retired}; {after}"
                ),
                _ => {}
            }
        }
        if broken.is_none() {
            self.dispatch_backlog(&mut st);
        }
        self.changed.notify_all();
        drop(st);
        if let Some((sink, failed)) = delivery {
            deliver_empty_done(sink, failed, (name, pid));
        }
        if let Some(error) = broken {
            self.break_pool(error);
        }
    }

    /// A remote worker's end: after a `Stop`, or given up (its chunk ran past the task
    /// timeout, and the whole chunk fails with `Timeout`: a remote worker reports no
    /// progress within a chunk). Remote workers are never replaced; once none is left, the
    /// pool breaks instead of waiting forever.
    pub(super) fn handle_remote_end(&self, mut st: MutexGuard<'_, State>, w: usize) {
        let slot = &mut st.slots[w];
        slot.remote = false;
        slot.reported = true;
        let timed_out = slot.timed_out.take();
        let at = slot.status.read_fields();
        let (name, pid) = (slot.name.clone(), slot.pid);
        st.live -= 1;
        let mut delivery = None;
        if timed_out.is_some() {
            let after = self.config.timeout.unwrap_or_default();
            crate::event::event!(
                log::Level::Warn,
                "a task on worker '{name}' (pid {pid}) ran past its timeout of {after:?}; the \
                 worker is no longer used"
            );
            let id = at.task.wrapping_sub(1);
            if at.task != 0
                && let Some(p) = st.pending.get_mut(&id)
                && p.dispatched
            {
                p.dispatched = false;
                let error = if p.killed {
                    PoolError::Killed
                } else {
                    PoolError::Timeout {
                        after,
                        name: name.clone(),
                        pid,
                    }
                };
                for i in 0..p.items {
                    if let Err(at) = p.skip.binary_search(&i) {
                        p.skip.insert(at, i);
                        p.failed.push((i, error.clone()));
                    }
                }
                st.in_ring -= 1;
                delivery = st.pending.remove(&id).map(|p| (p.sink, p.failed));
            }
        }
        let stranded = st.live == 0
            && st.phase != Phase::Terminated
            && (st.phase == Phase::Running || !st.pending.is_empty() || st.leases > 0);
        self.dispatch_backlog(&mut st);
        self.changed.notify_all();
        drop(st);
        if let Some((sink, failed)) = delivery {
            deliver_empty_done(sink, failed, (name, pid));
        }
        if stranded {
            self.break_pool(PoolError::Failed(
                "every remote worker of this pool was given up after a task timeout; start \
                 a new pool (or a new MPI job) to go on"
                    .into(),
            ));
        }
    }
}

fn describe_exit(e: &ProcessError) -> Death {
    match e {
        ProcessError::CpuLimit { name, pid, limit } => Death {
            cause: format!("used up its CPU-time limit of {limit:?} (SIGXCPU)"),
            signal: Some(sys::limits::SIGXCPU),
            signal_name: Some(sys::signal_name(sys::limits::SIGXCPU)),
            exit_code: None,
            limit: Some(PoolError::CpuLimit {
                name: name.clone(),
                pid: *pid,
                limit: *limit,
            }),
        },
        ProcessError::MemoryLimit { name, pid, limit } => Death {
            cause: format!("ran out of memory under its limit of {limit} bytes (SIGABRT)"),
            signal: Some(sys::limits::SIGABRT),
            signal_name: Some(sys::signal_name(sys::limits::SIGABRT)),
            exit_code: None,
            limit: Some(PoolError::MemoryLimit {
                name: name.clone(),
                pid: *pid,
                limit: *limit,
            }),
        },
        ProcessError::Signaled {
            signal,
            signal_name,
            ..
        } => Death {
            cause: format!("killed by signal {signal} ({signal_name})"),
            signal: Some(*signal),
            signal_name: Some(signal_name),
            exit_code: None,
            limit: None,
        },
        ProcessError::Exited { code, .. } => Death {
            cause: format!("exited with code {code}"),
            signal: None,
            signal_name: None,
            exit_code: Some(*code),
            limit: None,
        },
        other => Death {
            cause: other.to_string(),
            signal: None,
            signal_name: None,
            exit_code: None,
            limit: None,
        },
    }
}
