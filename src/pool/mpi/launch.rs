//! What this process is in an MPI job, decided before `main` from the launcher's
//! environment (MPI itself is not initialized yet: a worker rank initializes it right
//! away, rank 0 when a pool first needs the workers).
//!
//! Launchers name the rank in the environment of every process they start: Open MPI's
//! `mpirun` (`OMPI_COMM_WORLD_RANK`/`_SIZE`), MPICH's Hydra and Slurm's `srun` with PMI
//! (`PMI_RANK`/`PMI_SIZE`), PMIx launchers (`PMIX_RANK`). Slurm's own `SLURM_PROCID` is
//! not used: it is also set in a batch script outside any MPI launch, where rank 0 would
//! wait for workers that never come. `MPI_Comm_spawn`ed workers are told by an argument.

use std::sync::OnceLock;

/// The environment variable that switches the MPI backend off (`off`, `0`, `false` or
/// `local`) for programs that use MPI themselves. It must reach every rank
/// (`mpirun -x MULTIPROC_MPI=off`; `srun` passes the environment on), since worker ranks
/// read it before `main`.
///
/// ```
/// assert_eq!(multiproc::mpi::OPT_OUT_ENV, "MULTIPROC_MPI");
/// ```
pub const OPT_OUT_ENV: &str = "MULTIPROC_MPI";

/// The argument `MPI_Comm_spawn` gives workers spawned by [`spawn_workers`](super::spawn_workers).
pub(crate) const SPAWNED_ARG: &str = "--multiproc-mpi-worker";

/// What this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// No launcher (or the backend is off): rank 0 of nothing, workers only by spawning.
    Alone,
    /// Switched off by [`OPT_OUT_ENV`].
    Disabled,
    /// Rank 0 of a launched job of `size` ranks (`None`: the launcher does not say).
    Main { size: Option<u32> },
    /// A worker rank of a launched job.
    Worker,
    /// A worker started by `MPI_Comm_spawn` from a single process.
    Spawned,
}

static ROLE: OnceLock<Role> = OnceLock::new();

/// This process's role (decided once, before `main`).
pub(crate) fn role() -> Role {
    *ROLE.get_or_init(decide)
}

fn number(name: &str) -> Option<u32> {
    std::env::var(name).ok()?.trim().parse().ok()
}

fn decide() -> Role {
    if std::env::var(OPT_OUT_ENV).is_ok_and(|v| matches!(v.trim(), "off" | "0" | "false" | "local"))
    {
        return Role::Disabled;
    }
    if std::env::args_os().any(|a| a == SPAWNED_ARG) {
        return Role::Spawned;
    }
    let launched = [
        ("OMPI_COMM_WORLD_RANK", Some("OMPI_COMM_WORLD_SIZE")),
        ("PMI_RANK", Some("PMI_SIZE")),
        ("PMIX_RANK", None),
    ];
    for (rank, size) in launched {
        let Some(rank) = number(rank) else {
            continue;
        };
        let size = size.and_then(number);
        return match (rank, size) {
            (_, Some(1)) => Role::Alone,
            (0, size) => Role::Main { size },
            _ => Role::Worker,
        };
    }
    Role::Alone
}
