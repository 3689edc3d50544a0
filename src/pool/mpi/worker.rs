//! A worker rank: it never runs the program's `main`. Called from the `.init_array` boot
//! hook (as a spawned child is), it initializes MPI, says hello to rank 0 (its build, pid
//! and host), then runs what rank 0 sends until told to shut down, and exits with `_exit`
//! after `MPI_Finalize`.
//!
//! It waits in a blocking MPI receive. Open MPI busy-polls there; the boot hook sets
//! `mpi_yield_when_idle` (unless the user chose) so an idle rank yields its core to
//! whatever else runs on it instead of spinning hard: waking from a sleep would cost far
//! more per task (which is what makes sleep-polling `mpi4py` slow).

use ::mpi::point_to_point::{Destination, MatchedReceiveVec, Source};
use ::mpi::topology::Communicator;

use super::wire::{self, Command, Hello, InitReply};
use crate::identity::Identity;
use crate::panic_report::PanicReport;
use crate::pool::status::WorkerStatus;
use crate::pool::task;
use crate::pool::worker::{self as pool_worker, Order};
use crate::process::child;
use crate::shared::segment::Shared;
use crate::sys;

/// Serve rank 0 (of the world, or of the spawning parent) until it says to shut down.
pub(crate) fn serve(spawned: bool) -> ! {
    sys::ignore_sigpipe();
    let Some(universe) = ::mpi::initialize() else {
        eprintln!("multiproc: MPI worker rank could not initialize MPI");
        sys::exit_now(1)
    };
    let world = universe.world();
    let code = if spawned {
        match world.parent() {
            Some(parent) => run(&parent, world.rank()),
            None => {
                eprintln!("multiproc: started as a spawned MPI worker without an MPI parent");
                1
            }
        }
    } else {
        let rank = world.rank();
        run(&world, rank)
    };
    drop(universe);
    sys::exit_now(code)
}

/// The worker's loop with rank 0 of `comm`; the exit code.
fn run<C: Communicator>(comm: &C, rank: i32) -> i32 {
    let name = format!("MpiWorker-{rank}");
    sys::overflow::report_stack_overflow(&name);
    child::become_child(
        Identity {
            name: name.clone(),
            daemon: true,
            path: vec![rank.max(0) as u32],
            parent_pid: 0,
            parent_name: "MainProcess".into(),
        },
        // A rank is started by the launcher, a fresh program: as a spawned child.
        crate::StartMethod::Spawn,
    );
    let main = comm.process_at_rank(0);
    let hello = Hello {
        fingerprint: crate::code::fingerprint(),
        build_id: wire::build_id(),
        pid: sys::getpid(),
        host: sys::hostname(),
    };
    main.send_with_tag(&wire::encode(&hello)[..], wire::TAG_HELLO);
    let Ok(status) = Shared::<WorkerStatus>::new(0) else {
        eprintln!("multiproc: {name} could not create its status record");
        return 1;
    };
    let mut index = 0u32;
    // The epoch whose initializer failed: its orders are refused, not run.
    let mut failed_epoch = None;
    let mut epoch = 0u64;
    loop {
        let (bytes, info) = main.matched_probe().matched_receive_vec::<u8>();
        // Run one order and answer it.
        let run_one = |bytes: &[u8]| {
            let Ok((Order::Run { id, code, skip }, payload)) =
                postcard::take_from_bytes::<Order>(bytes)
            else {
                return;
            };
            let report = if failed_epoch == Some(epoch) {
                refused(id)
            } else {
                let report = pool_worker::run_order(index, id, code, &skip, payload, &status);
                status.finish();
                report
            };
            main.send_with_tag(&report[..], wire::TAG_DONE);
        };
        match info.tag() {
            wire::TAG_ORDER => run_one(&bytes),
            wire::TAG_ORDERS => {
                for order in wire::decode_orders(&bytes) {
                    run_one(order);
                }
            }
            wire::TAG_COMMAND => match postcard::from_bytes::<Command>(&bytes) {
                Ok(Command::Welcome) => {}
                Ok(Command::Mismatch { expected }) => {
                    eprintln!(
                        "multiproc: {name} on host '{}' runs another build (build-id {}) than \
                         rank 0 ({expected}); it exits",
                        sys::hostname(),
                        wire::build_id()
                    );
                    return 0;
                }
                Ok(Command::Attach {
                    epoch: e,
                    index: i,
                    init,
                }) => {
                    epoch = e;
                    index = i;
                    let result = match init {
                        None => Ok(()),
                        Some((code, arg)) => {
                            match task::resolve_init(code).and_then(|run| run(&arg)) {
                                Ok(Ok(())) => Ok(()),
                                Ok(Err(report)) => Err(Some(report)),
                                Err(reason) => Err(Some(PanicReport {
                                    message: reason,
                                    location: None,
                                    backtrace: String::new(),
                                    thread: None,
                                })),
                            }
                        }
                    };
                    failed_epoch = result.is_err().then_some(epoch);
                    let reply = InitReply { epoch, result };
                    main.send_with_tag(&wire::encode(&reply)[..], wire::TAG_INIT);
                }
                Ok(Command::Shutdown) => return 0,
                Err(e) => eprintln!("multiproc: {name} got an undecodable command: {e}"),
            },
            _ => {}
        }
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}

/// The report for an order of a pool whose initializer failed in this rank.
fn refused(id: u64) -> Vec<u8> {
    let report = pool_worker::Report::Failed {
        id,
        reason: "the pool's initializer failed in this MPI worker rank".into(),
    };
    wire::encode(&report)
}
