//! A pool worker process: the orders it takes, the reports it sends, and its main loop.

use std::sync::atomic::Ordering::SeqCst;

use serde::{Deserialize, Serialize};

use super::status::WorkerStatus;
use super::task::{Code, InitCode, resolve_chunk, resolve_init};
use crate::handle;
use crate::panic_report::PanicReport;
use crate::queue::ring::Ring;
use crate::segment::Shared;

/// Parent → worker, followed by the chunk's items.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Order {
    Run { id: u64, code: Code, skip: Vec<u32> },
    Stop,
}

/// Worker (or the parent's watcher) → the parent's collector.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Followed by the encoded `ChunkOutput<R>`.
    Done { id: u64, worker: u32 },
    /// The chunk could not run at all (undecodable items, unencodable results).
    Failed { id: u64, reason: String },
    /// The initializer panicked in this worker.
    InitFailed { worker: u32, report: PanicReport },
    /// The worker process ended (sent by the watcher thread; for a remote worker, by its
    /// transport).
    Ended { worker: u32, generation: u64 },
    /// A remote worker was given up: these chunks, sent to it but not started, go back to
    /// the backlog (sent by its transport, before the worker's `Ended`).
    Returned { ids: Vec<u64> },
    /// Stop the collector (sent by the pool when it shuts down).
    Shutdown,
}

/// Why a worker process returned.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WorkerExit {
    /// It took a `Stop` order.
    Stopped,
    /// It ran `max_tasks` chunks.
    Retired,
    /// Its resident memory (bytes) reached `max_memory` after a chunk.
    Grew(u64),
}

/// Everything a worker process needs; its argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub index: u32,
    pub tasks: Ring,
    pub results: Ring,
    pub status: Shared<WorkerStatus>,
    pub init: Option<(InitCode, serde_bytes::ByteBuf)>,
    pub max_tasks: u64,
    /// Retire after a chunk that leaves this many resident bytes or more (0: never).
    pub max_memory: u64,
}

fn send(results: &Ring, report: &Report) {
    let mut out = Vec::new();
    // Encoding our own enum into a Vec cannot fail.
    let _ = handle::encode(report, &mut out);
    // Nothing to do if it fails: the parent sees this worker end and fails the chunk.
    let _ = results.put(&out, None);
}

/// Run one chunk for worker `index`: the encoded report for the parent's collector
/// (`Done` and the chunk's output, or `Failed`). Shared with the MPI worker ranks.
pub(crate) fn run_order(
    index: u32,
    id: u64,
    code: Code,
    skip: &[u32],
    payload: &[u8],
    status: &WorkerStatus,
) -> Vec<u8> {
    let mut out = Vec::new();
    // Encoding our own enum into a Vec cannot fail.
    let _ = handle::encode(&Report::Done { id, worker: index }, &mut out);
    if let Err(reason) = resolve_chunk(code).and_then(|run| run(payload, skip, status, &mut out)) {
        out.clear();
        let _ = handle::encode(&Report::Failed { id, reason }, &mut out);
    }
    out
}

/// The worker process: run the initializer, then orders until `Stop` or `max_tasks`.
pub(crate) fn worker_main(args: WorkerArgs) -> Result<WorkerExit, String> {
    let WorkerArgs {
        index,
        tasks,
        results,
        status,
        init,
        max_tasks,
        max_memory,
    } = args;
    if let Some((code, payload)) = init
        && let Err(report) = resolve_init(code)?(&payload)?
    {
        send(
            &results,
            &Report::InitFailed {
                worker: index,
                report,
            },
        );
        return Err("the initializer panicked".into());
    }
    status.ready.store(1, SeqCst);
    let mut done = 0u64;
    loop {
        // The order is claimed (written into the status) before any of it leaves the ring:
        // if this process dies from then on, the parent finds the chunk in its status.
        let claim = |bytes: &[u8]| {
            if let Ok((Order::Run { id, .. }, _)) = postcard::take_from_bytes::<Order>(bytes) {
                status.claim(id);
            }
        };
        let taken = tasks.get_claiming(None, claim, |bytes| {
            let (order, payload) = postcard::take_from_bytes::<Order>(bytes)
                .map_err(|e| format!("undecodable order from the pool: {e}"))?;
            if let Order::Run { id, .. } = &order {
                status.claim(*id);
            }
            Ok::<_, String>((order, payload.to_vec()))
        });
        let (order, payload) = match taken {
            Ok(Some(decoded)) => decoded?,
            Ok(None) => continue,
            Err(e) => return Err(format!("the pool's task queue failed: {e}")),
        };
        let Order::Run { id, code, skip } = order else {
            return Ok(WorkerExit::Stopped);
        };
        let out = run_order(index, id, code, &skip, &payload, &status);
        let _ = results.put(&out, None);
        status.finish();
        done += 1;
        if max_tasks != 0 && done >= max_tasks {
            return Ok(WorkerExit::Retired);
        }
        // The chunk's results are in the result ring already: retiring keeps them.
        if max_memory != 0
            && let Ok(resident) = crate::sys::limits::resident_bytes()
            && resident >= max_memory
        {
            return Ok(WorkerExit::Grew(resident));
        }
    }
}
