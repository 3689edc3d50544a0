//! The child side: where this process's records go, and the `log` logger that sends them.
//!
//! A parent that has logging on gives each child it starts a [`ChildSetup`]: the root's ring
//! and the level to forward. The child keeps it as its *sink*; from then on its `log` logger
//! (and, with the `tracing` feature, its `tracing` subscriber) encodes every enabled record
//! as a [`WireRecord`] and puts it into the ring. The root's drain thread (`hub`) emits it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log};
use serde::{Deserialize, Serialize};

use super::{LoggingError, TARGET, hub, output};
use crate::event::{event, level_filter};
use crate::panic_report::PanicReport;
use crate::queue::ring::Ring;
use crate::sys;

/// Which ecosystem a record was emitted through (the root re-emits it through the same one
/// when it can).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Origin {
    Log,
    Tracing,
}

/// One record on its way to the root.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WireRecord<'a> {
    pub origin: Origin,
    /// `log::Level as usize` (1 = Error .. 5 = Trace).
    pub level: u8,
    #[serde(borrow)]
    pub target: Cow<'a, str>,
    #[serde(borrow)]
    pub module_path: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub file: Option<Cow<'a, str>>,
    pub line: Option<u32>,
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// The record's own key-values, rendered as text.
    #[serde(borrow)]
    pub fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    #[serde(borrow)]
    pub process: Cow<'a, str>,
    pub pid: u32,
}

/// What the parent decided about logging for one child.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct ChildSetup {
    log: Option<LogSetup>,
    output: Option<output::Pipes>,
}

#[derive(Clone, Serialize, Deserialize)]
struct LogSetup {
    ring: Ring,
    /// The most verbose level to forward (`LevelFilter as usize`).
    level: usize,
    /// The parent's library level (see `LibraryLogger::set_level`).
    library_level: usize,
    /// The root, which drains the ring.
    root_pid: u32,
}

impl std::fmt::Debug for ChildSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSetup")
            .field("level", &self.log.as_ref().map(|l| level_filter(l.level)))
            .field("output", &self.output.is_some())
            .finish()
    }
}

/// This process's sink: set once when it becomes a child that forwards.
struct Sink {
    setup: LogSetup,
    level: LevelFilter,
    name: String,
    pid: u32,
    root: Option<OwnedFd>,
    /// The root is gone (or the ring broke): drop records instead of waiting for room.
    dead: AtomicBool,
}

/// The sink, leaked on purpose: a process has at most one, for its whole life, and an atomic
/// pointer (unlike a lock) is safe to read in a forked child whatever other threads did.
static SINK: AtomicPtr<Sink> = AtomicPtr::new(std::ptr::null_mut());

fn sink() -> Option<&'static Sink> {
    let p = SINK.load(Ordering::Acquire);
    // SAFETY: SINK only ever holds null or a pointer from `Box::leak`, never freed.
    unsafe { p.as_ref() }
}

/// Whether this process forwards its records (it is a child of a parent with logging on).
pub(super) fn forwarding() -> bool {
    sink().is_some_and(|s| !s.dead.load(Ordering::Relaxed))
}

/// The most verbose level this process forwards.
pub(super) fn forward_level() -> LevelFilter {
    sink().map_or(LevelFilter::Off, |s| s.level)
}

/// In the parent, before starting a child: what it needs to forward its records and, if on,
/// to have its output prefixed. Never fails: without a ring or pipes the child just does
/// without (and a warning says why).
pub(crate) fn prepare_child(name: &str) -> Option<ChildSetup> {
    let log = log_setup();
    let output = output::prepare(name);
    (log.is_some() || output.is_some()).then_some(ChildSetup { log, output })
}

/// How verbose the parent's logging is: the more verbose of `log`'s max level and the
/// `tracing` subscribers' hint. `Off` means forwarding is off.
fn parent_level() -> LevelFilter {
    let log_level = log::max_level();
    #[cfg(feature = "tracing")]
    {
        log_level.max(super::tracing_forward::current_level())
    }
    #[cfg(not(feature = "tracing"))]
    log_level
}

fn log_setup() -> Option<LogSetup> {
    let level = parent_level();
    if level == LevelFilter::Off {
        return None;
    }
    let library_level = crate::event::library_level() as usize;
    // A child that forwards passes its root's ring on: grandchildren write to the root too.
    if let Some(s) = sink().filter(|s| !s.dead.load(Ordering::Relaxed)) {
        return Some(LogSetup {
            level: level.min(s.level) as usize,
            library_level,
            ..s.setup.clone()
        });
    }
    match hub::ring() {
        Ok(ring) => Some(LogSetup {
            ring,
            level: level as usize,
            library_level,
            root_pid: sys::getpid(),
        }),
        Err(e) => {
            event!(
                Level::Warn,
                "children's log records cannot be forwarded (no log ring: {e})"
            );
            None
        }
    }
}

/// In a new child (any start method), before its task: take the setup its parent made.
pub(crate) fn become_child(setup: Option<ChildSetup>, name: &str) {
    let Some(ChildSetup { log, output }) = setup else {
        // A fork child may have inherited its parent's sink: that one names the parent.
        SINK.store(std::ptr::null_mut(), Ordering::Release);
        return;
    };
    if let Some(pipes) = output {
        pipes.redirect();
    }
    let Some(setup) = log else {
        SINK.store(std::ptr::null_mut(), Ordering::Release);
        return;
    };
    let level = level_filter(setup.level);
    crate::event::set_library_level(level_filter(setup.library_level));
    let sink = Sink {
        level,
        name: name.to_string(),
        pid: sys::getpid(),
        root: sys::pidfd_open(setup.root_pid).ok(),
        dead: AtomicBool::new(false),
        setup,
    };
    SINK.store(Box::into_raw(Box::new(sink)), Ordering::Release);
    // A spawned child has no logger yet; a forked one keeps what it inherited (which
    // forwards if it is ours, see `Forwarding`).
    if log::set_boxed_logger(Box::new(Forwarding { inner: None })).is_ok() {
        OURS.store(true, Ordering::Relaxed);
    }
    if OURS.load(Ordering::Relaxed) {
        log::set_max_level(level);
    }
    #[cfg(feature = "tracing")]
    super::tracing_forward::install(level);
}

impl Sink {
    fn root_alive(&self) -> bool {
        self.root.as_ref().is_none_or(|fd| {
            !sys::wait_readable(&[fd.as_fd()], Some(Duration::ZERO)).is_ok_and(|r| r[0])
        })
    }

    /// Put one record into the ring, waiting for room while the root lives.
    fn send(&self, record: &WireRecord<'_>) {
        if self.dead.load(Ordering::Relaxed) {
            return;
        }
        let put = |bytes: &[u8]| loop {
            let deadline = Instant::now() + Duration::from_millis(200);
            match self.setup.ring.put(bytes, Some(deadline)) {
                Ok(true) => return,
                Ok(false) if self.root_alive() => {}
                _ => {
                    self.dead.store(true, Ordering::Relaxed);
                    return;
                }
            }
        };
        // The thread's scratch buffer; a record logged while this thread sends one gets a
        // fresh buffer (`take_scratch` is re-entrant).
        let mut buf = crate::handle::take_scratch();
        if crate::handle::encode(record, &mut buf).is_ok() {
            put(&buf);
        }
        crate::handle::keep_scratch(buf);
    }
}

/// Forward a record built by the `tracing` forwarder (or by the `log` logger below).
#[allow(clippy::too_many_arguments)]
pub(super) fn send(
    origin: Origin,
    level: Level,
    target: &str,
    module_path: Option<&str>,
    file: Option<&str>,
    line: Option<u32>,
    message: &str,
    fields: Vec<(Cow<'_, str>, Cow<'_, str>)>,
) {
    let Some(sink) = sink() else {
        return;
    };
    sink.send(&WireRecord {
        origin,
        level: level as usize as u8,
        target: Cow::Borrowed(target),
        module_path: module_path.map(Cow::Borrowed),
        file: file.map(Cow::Borrowed),
        line,
        message: Cow::Borrowed(message),
        fields,
        process: Cow::Borrowed(&sink.name),
        pid: sink.pid,
    });
}

/// Send a `log` record.
fn send_log(record: &log::Record<'_>) {
    let message = match record.args().as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(record.args().to_string()),
    };
    send(
        Origin::Log,
        record.level(),
        record.target(),
        record.module_path(),
        record.file(),
        record.line(),
        &message,
        key_values(record),
    );
}

/// A `log` record's key-values, rendered as text.
pub(super) fn key_values(record: &log::Record<'_>) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
    let mut fields = Vec::new();
    let _ = record.key_values().visit(&mut Fields(&mut fields));
    fields
}

struct Fields<'v>(&'v mut Vec<(Cow<'static, str>, Cow<'static, str>)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0
            .push((Cow::Owned(key.to_string()), Cow::Owned(value.to_string())));
        Ok(())
    }
}

/// Send a panic of this child as one error record naming the process; `false` if this
/// process does not forward (the caller prints it instead). The thread is named unless the
/// panic is in the thread running the child's task (which a fork child inherits, name
/// included, from whichever parent thread started it).
pub(crate) fn forward_panic(report: &PanicReport, in_task: bool) -> bool {
    if !forwarding() {
        return false;
    }
    let mut message = String::from("panicked");
    if let Some(thread) = report.thread.as_ref().filter(|_| !in_task) {
        let _ = write!(message, " in thread '{thread}'");
    }
    if let Some((file, line, column)) = &report.location {
        let _ = write!(message, " at {file}:{line}:{column}");
    }
    let _ = write!(message, ": {}", report.message);
    let wants_backtrace =
        std::env::var_os("RUST_BACKTRACE").is_some_and(|v| !v.is_empty() && v != "0");
    if wants_backtrace && !report.backtrace.is_empty() {
        let _ = write!(message, "\nstack backtrace:\n{}", report.backtrace);
    }
    send(
        Origin::Log,
        Level::Error,
        TARGET,
        Some(module_path!()),
        None,
        None,
        &message,
        Vec::new(),
    );
    true
}

/// Whether `log`'s global logger is this module's `Forwarding`.
static OURS: AtomicBool = AtomicBool::new(false);

/// Whether `log::logger()` is multiproc's own (installed by `install` or `log_to_stderr`).
pub(super) fn ours() -> bool {
    OURS.load(Ordering::Relaxed)
}

/// The `log` logger multiproc installs: the user's logger in a process that does not
/// forward, the ring in one that does (a fork child inherits it and switches by itself).
struct Forwarding {
    inner: Option<Box<dyn Log>>,
}

impl Log for Forwarding {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        if forwarding() {
            metadata.level() <= forward_level()
        } else {
            self.inner.as_ref().is_some_and(|l| l.enabled(metadata))
        }
    }

    fn log(&self, record: &log::Record<'_>) {
        if forwarding() {
            if record.level() <= forward_level() {
                send_log(record);
            }
        } else if let Some(inner) = &self.inner {
            inner.log(record);
        }
    }

    fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.flush();
        }
    }
}

/// Install `inner` behind multiproc's forwarding logger as `log`'s global logger.
pub(super) fn install_global(inner: Box<dyn Log>, level: LevelFilter) -> Result<(), LoggingError> {
    log::set_boxed_logger(Box::new(Forwarding { inner: Some(inner) }))
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    OURS.store(true, Ordering::Relaxed);
    log::set_max_level(level);
    Ok(())
}
