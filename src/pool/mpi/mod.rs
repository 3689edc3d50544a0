//! Pools and executors on MPI ranks (feature `mpi`): the same [`Pool`](crate::Pool) and
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) code runs its tasks on the ranks of
//! an MPI job, across machines, as `mpi4py.futures` does for Python.
//!
//! Under an MPI launcher with more than one rank (`mpirun -n 4 ./app`, `srun -n 4 ./app`),
//! rank 0 runs `main` and every other rank becomes a worker *before* `main`, as spawned
//! children of this crate do: a pool built on rank 0 then runs its tasks on the other ranks.
//! Nothing changes in the program: tasks are found by offset in the same executable (every
//! rank checks at start-up that it runs rank 0's build), arguments and results travel as
//! they do to local workers, and `map`, `imap`, `apply_async`, `submit`, `as_completed`,
//! callbacks, progress and task errors (message, location, backtrace) behave the same.
//!
//! Choosing the backend:
//! - A pool on MPI uses every worker rank, or as many as its `processes` asks for if fewer.
//! - [`Backend::Auto`] (the default): MPI ranks when the program runs under a launcher with
//!   more than one rank (or after [`spawn_workers`]), local processes otherwise.
//! - [`Backend::Mpi`] / [`Backend::Local`] on [`PoolBuilder::backend`](crate::PoolBuilder::backend)
//!   (or the executor's builder): insist on one.
//! - `MULTIPROC_MPI=off` in the environment of every rank (`mpirun -x MULTIPROC_MPI=off`)
//!   switches the backend off for programs that use MPI themselves: then no rank is taken
//!   over before `main` and this crate never calls MPI.
//!
//! What cannot cross machines is refused: the fork start method ([`MpiError::Fork`]), OS
//! handles and shared-memory objects (locks, values, queues) in arguments
//! ([`PoolError::Failed`](crate::PoolError::Failed), as for local pools).
//!
//! Differences from local workers, all due to ranks being processes the launcher owns:
//! one pool at a time uses the ranks ([`MpiError::Busy`]); `maxtasksperchild` is ignored
//! (a rank is never replaced); a task timeout covers a whole chunk (use chunk size 1 with
//! timeouts) and gives the rank up for good; `kill` cannot stop a running task (its result
//! is dropped and it fails with `Killed`); worker ranks' log records and output are not
//! forwarded through this crate (the launcher forwards their standard streams).
//!
//! A rank that dies: Open MPI 4 ends the whole job by default (`mpirun` kills every rank
//! and reports the dead one). With `--mca orte_abort_on_non_zero_status 0` the job goes on;
//! a pool with a [`task_timeout`](crate::PoolBuilder::task_timeout) then fails the dead
//! rank's chunk with [`PoolError::Timeout`](crate::PoolError::Timeout) and stops using the
//! rank (without a timeout, the chunk waits forever: MPI does not tell rank 0 of the death).
//! The waiting orders of a dead rank go to the others.
//!
//! ```no_run
//! fn square(x: u64) -> u64 { x * x }
//! // `mpirun -n 4 ./app`: three worker ranks; `cargo run`: local workers.
//! let pool = multiproc::Pool::new(multiproc::cpu_count())?;
//! assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
//! # Ok::<(), multiproc::PoolError>(())
//! ```

mod error;
pub(crate) mod hub;
pub(crate) mod launch;
mod ranks;
mod wire;
mod worker;

use std::sync::Arc;

pub use error::MpiError;
pub use launch::OPT_OUT_ENV;

use crate::pool::engine::Remote;
use crate::process::StartMethod;
use launch::Role;

/// Where a pool's workers run.
///
/// ```no_run
/// use multiproc::mpi::Backend;
/// let local = multiproc::Pool::builder().processes(2).backend(Backend::Local).build()?;
/// let ranks = multiproc::Pool::builder().backend(Backend::Mpi).build()?;
/// # Ok::<(), multiproc::PoolError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// MPI ranks when there are worker ranks (under a launcher with more than one rank, or
    /// after [`spawn_workers`]), local processes otherwise.
    #[default]
    Auto,
    /// Local worker processes, even under an MPI launcher.
    Local,
    /// MPI worker ranks; an error ([`MpiError::NoWorkers`]) if there are none.
    Mpi,
}

/// Whether this process is rank 0 of an MPI job whose other ranks serve pools (or it has
/// spawned MPI workers).
///
/// ```
/// // Under plain `cargo test` there is no MPI launcher.
/// assert!(!multiproc::mpi::is_active());
/// ```
pub fn is_active() -> bool {
    matches!(launch::role(), Role::Main { .. })
        || matches!(hub::started(), Some(Ok(hub)) if hub.workers() > 0)
}

/// Start `n` MPI worker processes of this executable with `MPI_Comm_spawn` (for a program
/// started without a launcher; Open MPI supports it): later pools with
/// [`Backend::Auto`] or [`Backend::Mpi`] run on them. The number of workers that passed the
/// build check.
///
/// ```no_run
/// fn square(x: u64) -> u64 { x * x }
/// multiproc::mpi::spawn_workers(3)?;
/// let pool = multiproc::Pool::new(3)?;
/// assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn spawn_workers(n: usize) -> Result<usize, MpiError> {
    keep_boot_hook();
    match launch::role() {
        Role::Alone => {}
        Role::Disabled => return Err(MpiError::Disabled),
        _ => {
            return Err(MpiError::Spawn(
                "this program runs under an MPI launcher: its ranks are the workers".into(),
            ));
        }
    }
    if hub::started().is_some() {
        return Err(MpiError::Spawn("workers were spawned already".into()));
    }
    let n = i32::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| MpiError::Spawn(format!("cannot spawn {n} workers")))?;
    let hub = hub::hub(hub::Workers::Spawn(n))?;
    crate::sys::at_exit(hub::at_exit);
    Ok(hub.workers())
}

// SAFETY (of placing a function in `.init_array`): as for `process::spawn`'s entry, the
// loader calls it once, on the main thread, before `main` and before any other thread exists,
// after the C library and std's own start-up entry. In a child this crate started (a boot
// mode is set) and in an ordinary run without an MPI launcher it returns at once; in a worker
// rank it serves and ends the process, never returning into `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static BOOT_HOOK: extern "C" fn() = boot_hook;

/// Runs before `main` in every process of an executable that can use the MPI backend (the
/// pool's backend choice refers to this entry, so the linker keeps it there).
extern "C" fn boot_hook() {
    if crate::boot::mode().is_none() {
        boot();
    }
}

/// Keep the `.init_array` entry in every executable that reaches this backend.
fn keep_boot_hook() {
    std::hint::black_box(&BOOT_HOOK);
}

/// A worker rank serves and never returns; rank 0 arranges to release the workers at exit.
/// Single-threaded, before `main` (see [`boot_hook`]).
fn boot() {
    let role = launch::role();
    if matches!(role, Role::Worker | Role::Spawned | Role::Main { .. })
        && std::env::var_os("OMPI_MCA_mpi_yield_when_idle").is_none()
    {
        // SAFETY: before `main`, in the loader's thread: no other thread exists to read the
        // environment concurrently.
        unsafe { std::env::set_var("OMPI_MCA_mpi_yield_when_idle", "1") };
    }
    match role {
        Role::Worker => worker::serve(false),
        Role::Spawned => worker::serve(true),
        Role::Main { .. } => crate::sys::at_exit(hub::at_exit),
        Role::Alone | Role::Disabled => {}
    }
}

/// The transport to MPI workers and how many there are.
pub(crate) type RemoteWorkers = (Arc<dyn Remote>, usize);

/// The transport and worker count for a pool asking for `backend` (`None`: local workers).
pub(crate) fn remote_for(
    backend: Backend,
    start_method: Option<StartMethod>,
) -> Result<Option<RemoteWorkers>, MpiError> {
    keep_boot_hook();
    let role = launch::role();
    let hub = match (backend, role) {
        (Backend::Local, _) => return Ok(None),
        (Backend::Mpi, Role::Disabled) => return Err(MpiError::Disabled),
        (_, Role::Main { .. }) => Some(hub::hub(hub::Workers::World)?),
        _ => match hub::started() {
            Some(hub) => Some(hub?),
            None => None,
        },
    };
    let hub = match hub.filter(|h| h.workers() > 0) {
        Some(hub) => hub,
        None if backend == Backend::Mpi => return Err(MpiError::NoWorkers),
        None => return Ok(None),
    };
    if start_method == Some(StartMethod::Fork) {
        return Err(MpiError::Fork);
    }
    let workers = hub.workers();
    Ok(Some((Arc::new(hub::Transport::new(hub)), workers)))
}
