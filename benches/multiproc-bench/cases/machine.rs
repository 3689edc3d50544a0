//! The `machine` case: what the benchmark ran on.

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ cases

pub(crate) fn case_machine(ctx: &Ctx) -> CaseResult {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or(String::new(), |(_, m)| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| (kb / (1 << 20) as f64 * 10.0).round() / 10.0);
    let nproc = std::fs::read_dir("/sys/devices/system/cpu")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.strip_prefix("cpu")
                        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    ctx.emit(
        "machine",
        J::from(nproc),
        "cpus",
        params! {
            "nproc" => nproc,
            "affinity_cpus" => affinity_cpus().len(),
            "multiproc_cpu_count" => multiproc::cpu_count(),
            "multiproc_version" => env!("CARGO_PKG_VERSION"),
            "rustc" => rustc,
            "profile" => if cfg!(debug_assertions) { "debug" } else { "release" },
            "executable" => exe,
            "platform" => platform(),
            "machine" => std::env::consts::ARCH,
            "cpu_model" => cpu_model,
            "mem_total_gib" => mem_total_gib,
            "default_start_method" => multiproc::get_start_method().as_str(),
            "reps" => REPS,
            "statistic" => "median",
            "scale" => ctx.scale,
            "timer" => "std::time::Instant (CLOCK_MONOTONIC)",
            "timestamp_utc" => timestamp_utc(),
        },
    );
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; use --release for meaningful numbers");
    }
    Ok(())
}

/// Like Python's `platform.platform()`: `Linux-<release>-<machine>-with-glibc<version>`.
pub(crate) fn platform() -> String {
    // SAFETY: uname fills the zeroed struct with NUL-terminated strings; gnu_get_libc_version
    // returns a static NUL-terminated string.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return "Linux".into();
        }
        let s = |f: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(f.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        let glibc = std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()).to_string_lossy();
        format!(
            "{}-{}-{}-with-glibc{glibc}",
            s(&u.sysname),
            s(&u.release),
            s(&u.machine)
        )
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn timestamp_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
