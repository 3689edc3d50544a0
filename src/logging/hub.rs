//! The root side: the ring children write their records into, and the drain thread that
//! emits them through this process's logger.
//!
//! Records are emitted inside the ring's `get` (before the item is freed), so whichever
//! thread emits (the drain thread, or one in `flush`) they come out one at a time and in ring
//! order; the ring's consumed count therefore says exactly how far emission got.

use std::io;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use log::{Level, Record};

use super::ThreadState;
use super::forward::{Origin, WireRecord};
use crate::queue::ring::{Ring, RingConfig};
use crate::sys;

/// Room for records in flight (pages are only used as records pass; see the ring).
const CAPACITY: u64 = 1 << 20;

/// A flush gives up after this long without any record being emitted.
const STALL: Duration = Duration::from_secs(3);

struct Hub {
    /// The process that created it; a forked child must not drain its parent's ring.
    owner: u32,
    ring: Ring,
}

/// The hub; its writing lock is held while a record is emitted, and by `fork` (see
/// [`lock_for_fork`]).
static HUB: ThreadState<Hub> = ThreadState::new(|h| h.owner);

/// Hold emission off across `fork`: the logger (and the standard-stream locks it takes)
/// must not be in use by the drain thread at the moment the child copies them.
pub(super) fn lock_for_fork() -> MutexGuard<'static, ()> {
    HUB.lock_writing()
}

/// This process's log ring, created with its drain thread on first use.
pub(super) fn ring() -> io::Result<Ring> {
    let mut hub = HUB.lock();
    if let Some(h) = hub.as_ref() {
        return Ok(h.ring.clone());
    }
    let ring = Ring::new(RingConfig {
        capacity: CAPACITY,
        maxsize: 0,
        joinable: false,
    })?;
    let drained = ring.clone();
    crate::library_thread::spawn("multiproc-log", move || drain(drained))?;
    *hub = Some(Hub {
        owner: sys::getpid(),
        ring: ring.clone(),
    });
    Ok(ring)
}

fn drain(ring: Ring) {
    while ring.get(None, emit).is_ok() {}
}

/// Emit every record put into this process's ring before the call (see
/// [`flush`](super::flush)). Emits them itself when the drain thread is busy elsewhere.
pub(crate) fn flush_quietly() {
    let Some(ring) = HUB.lock().as_ref().map(|h| h.ring.clone()) else {
        return;
    };
    let (target, mut got) = ring.counts();
    let mut progress = Instant::now();
    while got < target {
        let _ = ring.get(Some(Instant::now() + Duration::from_millis(10)), emit);
        let now = ring.counts().1;
        if now != got {
            got = now;
            progress = Instant::now();
        } else if progress.elapsed() > STALL {
            return;
        }
    }
}

/// Emit one encoded record through this process's logger or subscriber. A logger that
/// panics loses that record, not the drain thread.
fn emit(bytes: &[u8]) {
    let _emitting = lock_for_fork();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| emit_record(bytes)));
}

fn emit_record(bytes: &[u8]) {
    let Ok(record) = postcard::from_bytes::<WireRecord<'_>>(bytes) else {
        return;
    };
    let level = match record.level {
        1 => Level::Error,
        2 => Level::Warn,
        3 => Level::Info,
        4 => Level::Debug,
        _ => Level::Trace,
    };
    if super::forward::ours() && super::stderr::is_installed() {
        super::stderr::write(
            level,
            &record.process,
            record.pid,
            &record.message,
            &record.fields,
        );
        return;
    }
    let labelled = format!(
        "{} (pid {}): {}",
        record.process, record.pid, record.message
    );
    let mut pairs: Vec<(&str, log::kv::Value<'_>)> = vec![
        ("process_name", log::kv::Value::from(&*record.process)),
        ("pid", log::kv::Value::from(record.pid)),
    ];
    pairs.extend(
        record
            .fields
            .iter()
            .map(|(k, v)| (&**k, log::kv::Value::from(&**v))),
    );
    let kvs: &[(&str, log::kv::Value<'_>)] = &pairs;
    let module_path = record.module_path.as_deref();
    let file = record.file.as_deref();
    let args = format_args!("{labelled}");
    let built = Record::builder()
        .level(level)
        .target(&record.target)
        .module_path(module_path)
        .file(file)
        .line(record.line)
        .key_values(&kvs)
        .args(args)
        .build();
    dispatch(record.origin, &built);
}

/// Through `tracing` if the record came from it and this process has a subscriber, or if
/// this process has no `log` logger but a subscriber; through `log` otherwise.
fn dispatch(origin: Origin, record: &Record<'_>) {
    #[cfg(feature = "tracing")]
    {
        let has_subscriber = tracing::dispatcher::has_been_set();
        let to_tracing = has_subscriber
            && (origin == Origin::Tracing || log::max_level() == log::LevelFilter::Off);
        if to_tracing {
            let _ = tracing_log::format_trace(record);
            return;
        }
    }
    let _ = origin;
    let logger = log::logger();
    if logger.enabled(record.metadata()) {
        logger.log(record);
    }
}
