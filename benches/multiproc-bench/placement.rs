//! CPU placement: pinning processes to CPUs.

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ CPU placement

/// Pin every thread of `pid` to `cpus`.
pub(crate) fn pin(pid: u32, cpus: &[usize]) {
    let tids: Vec<i32> = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => vec![pid as i32],
    };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within its bounds for
    // CPU numbers below CPU_SETSIZE, which the kernel's affinity list guarantees.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        for tid in tids {
            libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// The CPUs this process may run on, ascending.
pub(crate) fn affinity_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed set; CPU_ISSET reads within its bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Re-run `run(k)` (1 warmup + REPS) with the `near` pids on the first CPU and the `far` pids
/// on the same CPU ("same_cpu") and then on the second CPU ("cross_cpu") (Python's `pinned`).
pub(crate) fn pinned(
    mut run: impl FnMut(usize) -> Measured<f64>,
    k: usize,
    near: &[u32],
    far: &[u32],
    unit: &str,
) -> Measured<Params> {
    let cpus = affinity_cpus();
    if cpus.len() < 2 {
        return Ok(params! { "pinned" => "skipped (needs 2 CPUs and sched_setaffinity)" });
    }
    let mut out = params! { "pinned_iterations" => k };
    let mut body = || -> Measured<()> {
        for (label, far_cpu) in [("same_cpu", cpus[0]), ("cross_cpu", cpus[1])] {
            for &pid in near {
                pin(pid, &cpus[..1]);
            }
            for &pid in far {
                pin(pid, &[far_cpu]);
            }
            run((k / 5).max(1))?;
            let samples = (0..REPS).map(|_| run(k)).collect::<Measured<Vec<f64>>>()?;
            out.push((format!("{label}_{unit}"), median(&samples).into()));
            out.push((format!("{label}_samples"), samples.as_slice().into()));
        }
        Ok(())
    };
    let result = body();
    for &pid in near.iter().chain(far) {
        pin(pid, &cpus);
    }
    result.map(|()| out)
}
