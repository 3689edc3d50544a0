//! The worker ranks as rank 0's hub knows them: meeting them (the build check) and shutting
//! them down at the end.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ::mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use ::mpi::topology::{Communicator, Rank};

use super::error::MpiError;
use super::hub::{DEPTH, QUICK_DEPTH};
use super::wire::{self, Command, Hello};

/// One worker rank as the hub knows it.
pub(super) struct Worker {
    pub(super) rank: Rank,
    pub(super) pid: u32,
    pub(super) host: String,
    /// Orders sent and not answered: `(epoch, id)`, oldest first.
    pub(super) out: VecDeque<(u64, u64)>,
    /// When the oldest order in `out` became the oldest (the rank started on it).
    pub(super) front_since: Option<Instant>,
    /// The rank's last order took less than [`QUICK`](super::hub::QUICK).
    pub(super) quick: bool,
    /// Given up after a task timeout: never used again.
    pub(super) lost: bool,
}

impl Worker {
    /// Whether the rank may take one more order (see [`DEPTH`] and [`QUICK_DEPTH`]).
    pub(super) fn has_room(&self) -> bool {
        !self.lost && self.out.len() < if self.quick { QUICK_DEPTH } else { DEPTH }
    }
}

/// Receive every worker's hello; welcome those of this build. The workers, and the
/// first mismatch (every rank is then told to go: a pool on a mixed job is refused).
pub(super) fn meet<C: Communicator>(comm: &C, ranks: &[Rank]) -> (Vec<Worker>, Option<MpiError>) {
    let fingerprint = crate::code::fingerprint();
    let expected = wire::build_id();
    let mut workers = Vec::with_capacity(ranks.len());
    let mut mismatch = None;
    for &rank in ranks {
        let process = comm.process_at_rank(rank);
        let (bytes, _) = process
            .matched_probe_with_tag(wire::TAG_HELLO)
            .matched_receive_vec::<u8>();
        let hello = postcard::from_bytes::<Hello>(&bytes).unwrap_or(Hello {
            fingerprint: !fingerprint,
            build_id: "unreadable".into(),
            pid: 0,
            host: String::new(),
        });
        let command = if hello.fingerprint == fingerprint {
            Command::Welcome
        } else {
            mismatch.get_or_insert(MpiError::BuildMismatch {
                rank,
                host: hello.host.clone(),
                expected: expected.clone(),
                found: hello.build_id.clone(),
            });
            Command::Mismatch {
                expected: expected.clone(),
            }
        };
        process.send_with_tag(&wire::encode(&command)[..], wire::TAG_COMMAND);
        if matches!(command, Command::Welcome) {
            workers.push(Worker {
                rank,
                pid: hello.pid,
                host: hello.host,
                out: VecDeque::new(),
                front_since: None,
                quick: false,
                lost: false,
            });
        }
    }
    (workers, mismatch)
}

/// How long rank 0 waits at exit for a given-up rank to take its shut-down command.
const LOST_GRACE: Duration = Duration::from_secs(5);

/// Tell every worker to exit. A rank given up after a task timeout may be dead or still
/// stuck in its task: if it has not taken the command within [`LOST_GRACE`], the job is
/// ended with `MPI_Abort` (otherwise `MPI_Finalize` and `mpirun` would wait for it forever).
pub(super) fn shutdown<C: Communicator>(comm: &C, workers: &[Worker]) {
    let bye = wire::encode(&Command::Shutdown);
    for w in workers.iter().filter(|w| !w.lost) {
        comm.process_at_rank(w.rank)
            .send_with_tag(&bye[..], wire::TAG_COMMAND);
    }
    // Answers still on their way to orders of a detached engine: drained, so that no
    // worker waits for rank 0 to receive them.
    for w in workers.iter().filter(|w| !w.lost) {
        for _ in 0..w.out.len() {
            let _ = comm
                .process_at_rank(w.rank)
                .matched_probe_with_tag(wire::TAG_DONE)
                .matched_receive_vec::<u8>();
        }
    }
    let lost: Vec<Rank> = workers.iter().filter(|w| w.lost).map(|w| w.rank).collect();
    if lost.is_empty() {
        return;
    }
    let taken = ::mpi::request::scope(|scope| {
        let mut waiting: Vec<_> = lost
            .iter()
            .map(|&rank| {
                comm.process_at_rank(rank)
                    .immediate_synchronous_send_with_tag(scope, &bye[..], wire::TAG_COMMAND)
            })
            .collect();
        let deadline = Instant::now() + LOST_GRACE;
        while !waiting.is_empty() && Instant::now() < deadline {
            waiting = waiting
                .into_iter()
                .filter_map(|request| request.test().err())
                .collect();
            std::thread::yield_now();
        }
        if waiting.is_empty() {
            return true;
        }
        eprintln!(
            "multiproc: MPI rank(s) {lost:?}, given up after a task timeout, did not take the \
             command to shut down within {LOST_GRACE:?}; ending the job with MPI_Abort"
        );
        comm.abort(1)
    });
    debug_assert!(taken);
}
