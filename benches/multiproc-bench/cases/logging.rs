//! Log records forwarded from children.

#[allow(unused_imports)]
use crate::*;

// ------------------------------------------------------------------------------------ logging

/// Counts the records of target `bench` that reach the parent's logger.
pub(crate) struct CountingLogger;

pub(crate) static LOGGED: AtomicU64 = AtomicU64::new(0);

impl log::Log for CountingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target() == "bench" {
            LOGGED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

/// Install the counting logger (once) and turn logging on at `Info`.
pub(crate) fn enable_logging() -> Measured<()> {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        result = multiproc::logging::install(CountingLogger, log::LevelFilter::Info);
    });
    result?;
    log::set_max_level(log::LevelFilter::Info);
    Ok(())
}

/// Logging off again: children started from now on forward nothing.
pub(crate) fn disable_logging() {
    log::set_max_level(log::LevelFilter::Off);
}

pub(crate) fn log_burst(n: u64) {
    for i in 0..n {
        log::info!(target: "bench", "record {i} of {n}");
    }
}

/// Total records of `log_records_from_children`, before `--scale`.
pub(crate) const LOG_RECORDS: usize = 200_000;

/// Two forked children log `k / 2` records each; records per second from their start until
/// the parent's logger has seen every record (`join` flushes).
pub(crate) fn case_log_records_from_children(ctx: &Ctx) -> CaseResult {
    enable_logging()?;
    let run = |k: usize| -> Measured<f64> {
        let before = LOGGED.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let children = (0..2)
            .map(|_| {
                ProcessBuilder::new()
                    .start_method(StartMethod::Fork)
                    .start(log_burst, (k / 2) as u64)
            })
            .collect::<Result<Vec<_>, _>>()?;
        for child in children {
            child.join()?;
        }
        let dt = t0.elapsed().as_secs_f64();
        let got = (LOGGED.load(Ordering::Relaxed) - before) as usize;
        check_count("records", got, k / 2 * 2)?;
        Ok(k as f64 / dt)
    };
    let n = ctx.sz(LOG_RECORDS);
    let result = repeat(run, n / 10, n);
    disable_logging();
    let (_, samples) = result?;
    let mut params = params! {
        "records" => n,
        "children" => 2usize,
        "api" => "log::info!(target: \"bench\", \"record {i} of {n}\") in 2 fork children, counted by the parent's logger",
        "python_counterpart" => "queue_throughput_small (Python forwards child logs with QueueHandler over a Queue)",
        "includes" => "starting and joining the 2 children",
    };
    params.extend(stats(&samples));
    ctx.emit(
        "log_records_from_children",
        median(&samples).into(),
        "msg/s",
        params,
    );
    Ok(())
}
