//! Why a pool or executor could not run on MPI ranks.

/// Why the MPI backend refused or could not serve a pool (inside
/// [`PoolError::Mpi`](crate::PoolError::Mpi)).
///
/// ```no_run
/// use multiproc::mpi::{Backend, MpiError};
/// match multiproc::Pool::builder().backend(Backend::Mpi).build() {
///     Err(multiproc::PoolError::Mpi(MpiError::NoWorkers)) => println!("not under mpirun"),
///     Err(e) => println!("{e}"),
///     Ok(pool) => println!("{} worker ranks", pool.processes()),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpiError {
    /// The MPI backend was asked for, but there is no worker rank to serve it.
    #[error(
        "no MPI worker ranks: run the program under an MPI launcher with more than one rank \
         (`mpirun -n 4 ./app`, `srun -n 4 ./app`) or call `multiproc::mpi::spawn_workers(n)` \
         first"
    )]
    NoWorkers,
    /// `MULTIPROC_MPI=off` is set, so the worker ranks do not serve pools.
    #[error(
        "the MPI backend is switched off (MULTIPROC_MPI=off): unset it (on every rank) to use \
         MPI worker ranks"
    )]
    Disabled,
    /// The fork start method was asked for a pool on MPI ranks.
    #[error(
        "a pool on MPI ranks cannot use the fork start method: its workers are other \
         processes, usually on other machines, started by the MPI launcher; drop \
         `start_method(StartMethod::Fork)` or choose `Backend::Local`"
    )]
    Fork,
    /// A worker rank runs another build of the program than rank 0.
    #[error(
        "MPI rank {rank} on host '{host}' runs another build of the program (build-id {found}) \
         than rank 0 (build-id {expected}); copy the same executable to every host"
    )]
    BuildMismatch {
        /// The rank that differs.
        rank: i32,
        /// Its host name.
        host: String,
        /// Rank 0's build-id (hex), or a fingerprint when the executable has none.
        expected: String,
        /// The rank's.
        found: String,
    },
    /// Another pool or executor is using the worker ranks.
    #[error(
        "the MPI worker ranks already serve another pool or executor: close or drop it first \
         (one pool at a time runs on the ranks)"
    )]
    Busy,
    /// MPI could not be started, or the program had started it itself.
    #[error(
        "MPI could not be initialized: {0} (a program that uses MPI itself must run with \
         MULTIPROC_MPI=off)"
    )]
    Init(String),
    /// `MPI_Comm_spawn` failed, or workers were already there.
    #[error("could not spawn MPI workers: {0}")]
    Spawn(String),
}
