//! The child side: who this process is, and how its outcome reaches the parent.
//!
//! Every child owns a *status connection* to whoever started it. Exactly one [`Outcome`]
//! travels on it: the task's return value, or the panic that ended it (message, location and
//! a backtrace captured in the child), or why the task could not even start. The panic hook
//! sends the report from inside the panicking thread, before unwinding, so it arrives even
//! when the binary is built with `panic = "abort"`, and it never depends on the child's stderr.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once, RwLock};

use serde::{Deserialize, Serialize};

use super::limits::{Limit, Limits};
use crate::connection::Connection;
use crate::sys::{self, ExitStatus};

/// The one message a child's status connection carries (plus, from the fork server, how the
/// child ended).
#[derive(Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    /// The task returned this value.
    Returned(R),
    /// The task panicked.
    Panicked(PanicReport),
    /// The task could not be started in the child (its message could not be decoded, ...).
    Failed(String),
    /// Sent by the fork server after it reaped the child.
    Exited(ExitStatus),
    /// The child could not set its resource limits; its task did not run.
    LimitNotApplied { limit: Limit, reason: String },
    /// The child is aborting because an allocation failed under its memory limit (sent
    /// from its `SIGABRT` handler, see `sys/limits.rs`).
    MemoryLimit,
}

/// A panic as the child saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PanicReport {
    pub message: String,
    pub location: Option<(String, u32, u32)>,
    pub backtrace: String,
    pub thread: Option<String>,
}

impl PanicReport {
    fn of(info: &panic::PanicHookInfo<'_>) -> PanicReport {
        PanicReport {
            message: payload_message(info.payload()),
            location: info
                .location()
                .map(|l| (l.file().to_string(), l.line(), l.column())),
            backtrace: backtrace(),
            thread: std::thread::current().name().map(str::to_string),
        }
    }

    /// The public form, naming the process it happened in.
    pub(crate) fn into_remote(self, process_name: String, pid: u32) -> super::RemotePanic {
        super::RemotePanic {
            process_name,
            pid,
            message: self.message,
            location: self.location.map(|(file, line, column)| super::Location {
                file,
                line,
                column,
            }),
            backtrace: self.backtrace,
            thread: self.thread,
        }
    }
}

/// Who this process is, as Python's `current_process()` knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Identity {
    pub name: String,
    pub daemon: bool,
    /// Python's `_identity`: the child counter at each level (`Process-2:1` is `[2, 1]`).
    pub path: Vec<u32>,
    pub parent_pid: u32,
    pub parent_name: String,
    /// How this process was started: its default start method (Python's `_bootstrap`).
    pub start_method: super::StartMethod,
}

/// This process's identity and a pidfd of its parent; `None` in the main process.
static CURRENT: RwLock<Option<Current>> = RwLock::new(None);
static NEXT_CHILD: AtomicU32 = AtomicU32::new(1);
static STATUS: Mutex<Option<Connection>> = Mutex::new(None);
static REPORTED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    static IS_TASK_THREAD: Cell<bool> = const { Cell::new(false) };
    static PENDING_PANIC: RefCell<Option<PanicReport>> = const { RefCell::new(None) };
    /// Inside `catch_task`: a panic is a task's result, not the process's.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// Called first by the hook when a caught task panics: `(f, context)`.
    static ON_TASK_PANIC: Cell<Option<PanicMark>> = const { Cell::new(None) };
}

/// The backtrace of a panic as `RUST_LIB_BACKTRACE`/`RUST_BACKTRACE` ask (std's
/// `Backtrace::capture` rules): empty unless enabled. Capturing is cheap; resolving symbols
/// (the first time in a process, reading the executable's debug information: 100+ ms) is
/// done only for a captured backtrace.
fn backtrace() -> String {
    let bt = std::backtrace::Backtrace::capture();
    match bt.status() {
        std::backtrace::BacktraceStatus::Captured => bt.to_string(),
        _ => String::new(),
    }
}

/// What a caught panic calls first: `(f, context)`.
type PanicMark = (fn(usize), usize);

/// Until the guard drops, a caught panic in this thread first calls `f(context)` (a pool
/// worker marks its status: the report is on its way).
pub(crate) fn on_task_panic(f: fn(usize), context: usize) -> impl Drop {
    struct Restore(Option<PanicMark>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ON_TASK_PANIC.set(self.0);
        }
    }
    Restore(ON_TASK_PANIC.replace(Some((f, context))))
}

/// While alive, panics in this thread are caught as reports (message, location, backtrace)
/// instead of ending the process: pool workers run many tasks, and a panicking task fails
/// only itself. Set up once per batch of tasks; [`Catching::run`] costs nothing more than
/// `catch_unwind` per task.
pub(crate) struct Catching {
    outer: bool,
}

pub(crate) fn catching() -> Catching {
    install_panic_hook();
    Catching {
        outer: CATCHING.replace(true),
    }
}

impl Catching {
    /// Run `f`; a panic becomes its report.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> Result<R, PanicReport> {
        panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
            PENDING_PANIC.take().unwrap_or_else(|| PanicReport {
                message: payload_message(payload.as_ref()),
                location: None,
                backtrace: String::new(),
                thread: None,
            })
        })
    }
}

impl Drop for Catching {
    fn drop(&mut self) {
        CATCHING.set(self.outer);
    }
}

/// Run `f` with panics caught (see [`Catching`]).
pub(crate) fn catch_task<R>(f: impl FnOnce() -> R) -> Result<R, PanicReport> {
    catching().run(f)
}

struct Current {
    identity: Identity,
    parent_pidfd: Option<Arc<OwnedFd>>,
}

/// This process's identity; `None` in the main process.
pub(crate) fn identity() -> Option<Identity> {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current.as_ref().map(|c| c.identity.clone())
}

/// A pidfd of the parent, opened when this child started (`None` in the main process or if
/// the parent was already gone).
pub(crate) fn parent_pidfd() -> Option<Arc<OwnedFd>> {
    let current = CURRENT.read().unwrap_or_else(|e| e.into_inner());
    current.as_ref().and_then(|c| c.parent_pidfd.clone())
}

/// Hold the identity exclusively across `fork`, so the child's copy is never left locked by
/// a reader in a thread that does not exist there.
pub(crate) fn lock_for_fork() -> impl Drop {
    CURRENT.write().unwrap_or_else(|e| e.into_inner())
}

/// Identity for the next child this process starts (name `Process-N`, or `Process-N:M` in a
/// child, as in Python).
pub(crate) fn next_child_identity(
    name: Option<String>,
    daemon: bool,
    start_method: super::StartMethod,
) -> Identity {
    let n = NEXT_CHILD.fetch_add(1, Ordering::Relaxed);
    let me = identity();
    let mut path = me.as_ref().map(|i| i.path.clone()).unwrap_or_default();
    path.push(n);
    let name = name.unwrap_or_else(|| {
        let parts: Vec<String> = path.iter().map(u32::to_string).collect();
        format!("Process-{}", parts.join(":"))
    });
    Identity {
        name,
        daemon,
        path,
        parent_pid: sys::getpid(),
        parent_name: me.map_or_else(|| "MainProcess".to_string(), |i| i.name),
        start_method,
    }
}

/// The longest name the kernel keeps for a process (`comm`), in bytes.
const COMM_LEN: usize = 15;

/// `name` cut to what `ps` and `top` can show, keeping its number: the kernel keeps the first
/// 15 bytes, which would make `ProcessPoolExecutorWorker-12` and `-13` both
/// `ProcessPoolExec`; this gives `ProcessPoolE-12`.
fn short_name(name: &str) -> String {
    if name.len() <= COMM_LEN {
        return name.to_string();
    }
    let number = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == ':' || c == '-');
    let suffix = &name[number.len()..];
    if suffix.is_empty() || suffix.len() >= COMM_LEN {
        return name.to_string();
    }
    let mut keep = COMM_LEN - suffix.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{suffix}", &name[..keep])
}

/// Make this (new) process the child described by `identity`.
pub(crate) fn become_child(identity: Identity) {
    // Seen in `ps`/`top` under its multiproc name (`Process-3`, `PoolWorker-2`, ...).
    sys::set_process_name(&short_name(&identity.name));
    super::set_start_method(identity.start_method);
    let parent_pidfd = sys::pidfd_open(identity.parent_pid).ok().map(Arc::new);
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Current {
        identity,
        parent_pidfd,
    });
    NEXT_CHILD.store(1, Ordering::Relaxed);
    REPORTED.store(false, Ordering::Relaxed);
}

/// Send `outcome` to the parent (at most one decisive outcome is sent per child).
///
/// Fails only if the outcome cannot be encoded (a return value whose `Serialize` fails): the
/// caller then reports a start/finish failure instead. A parent that stopped listening is not
/// an error: the child's exit code must not depend on whether anyone still listens.
pub(crate) fn report<R: Serialize>(outcome: &Outcome<R>) -> Result<(), String> {
    let mut status = STATUS.lock().unwrap_or_else(|e| e.into_inner());
    let hold = sys::limits::hold_allocation_report();
    let result = match status.as_mut().map(|conn| conn.send(outcome)) {
        Some(Err(crate::ConnectionError::Codec(e))) => {
            Err(format!("its return value could not be sent: {e}"))
        }
        _ => Ok(()),
    };
    if result.is_ok() {
        REPORTED.store(true, Ordering::Relaxed);
        sys::limits::disarm_allocation_report();
    }
    drop(hold);
    drop(status);
    result
}

/// Run `body` as this child's task with `status` as its outcome channel, under `limits`,
/// then exit: code 0 if the task returned, 1 if it panicked or could not start (as Python's
/// `_bootstrap` does). Every start method ends here, so this is where limits are set.
pub(crate) fn run_and_exit(
    mut status: Connection,
    limits: &Limits,
    body: impl FnOnce() -> Result<(), String>,
) -> ! {
    if limits.memory_limit().is_some() {
        // Prepared now: once the limit is reached, nothing can be allocated.
        let mut frame = Vec::new();
        if status
            .encode_frame(&Outcome::<()>::MemoryLimit, &mut frame)
            .is_ok()
        {
            sys::limits::report_allocation_failure(status.as_raw_fd(), frame);
        }
    }
    *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
    install_panic_hook();
    if let Err((limit, reason)) = limits.apply() {
        let _ = report(&Outcome::<()>::LimitNotApplied { limit, reason });
        sys::exit_now(1);
    }
    IS_TASK_THREAD.set(true);
    let result = panic::catch_unwind(AssertUnwindSafe(body));
    IS_TASK_THREAD.set(false);
    let code = match result {
        Ok(Ok(())) => 0,
        Ok(Err(reason)) => {
            let _ = report(&Outcome::<()>::Failed(reason));
            1
        }
        Err(payload) => {
            if !REPORTED.load(Ordering::Relaxed) {
                let report_ = PENDING_PANIC.take().unwrap_or_else(|| PanicReport {
                    message: payload_message(payload.as_ref()),
                    location: None,
                    backtrace: String::new(),
                    thread: None,
                });
                let _ = report(&Outcome::<()>::Panicked(report_));
            }
            1
        }
    };
    // Like Python's `_bootstrap`: the child's own children are dealt with before it exits.
    super::registry::shutdown();
    let _ = std::io::stdout().flush();
    sys::exit_now(code)
}

pub(crate) fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.get() {
                if let Some((f, context)) = ON_TASK_PANIC.get() {
                    f(context);
                }
                PENDING_PANIC.set(Some(PanicReport::of(info)));
                return;
            }
            if !IS_TASK_THREAD.get() || REPORTED.load(Ordering::Relaxed) {
                // Another thread of a child: shown once, with the child's name, by the
                // parent when it forwards; as Rust always does otherwise.
                if identity().is_none()
                    || !crate::logging::forward_panic(&PanicReport::of(info), false)
                {
                    previous(info);
                }
                return;
            }
            let report_ = PanicReport::of(info);
            // Shown once: forwarded to the parent's logger, or else printed here.
            if !crate::logging::forward_panic(&report_, true) {
                let name = identity().map_or_else(|| "MainProcess".into(), |i| i.name);
                let at = report_
                    .location
                    .as_ref()
                    .map_or_else(String::new, |(f, l, c)| format!(" at {f}:{l}:{c}"));
                let _ = writeln!(
                    std::io::stderr(),
                    "process '{name}' (pid {}) panicked{at}:\n{}",
                    sys::getpid(),
                    report_.message
                );
            }
            // Send now (so `panic = "abort"` loses nothing) unless the status channel is busy
            // in this very thread (a panic inside the return value's Serialize); then the
            // unwinding path sends it.
            if let Ok(mut status) = STATUS.try_lock()
                && let Some(conn) = status.as_mut()
            {
                let hold = sys::limits::hold_allocation_report();
                let _ = conn.send(&Outcome::<()>::Panicked(report_));
                REPORTED.store(true, Ordering::Relaxed);
                sys::limits::disarm_allocation_report();
                drop(hold);
                return;
            }
            PENDING_PANIC.set(Some(report_));
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn long_names_keep_their_number_within_the_kernels_15_bytes() {
        assert_eq!(short_name("PoolWorker-3"), "PoolWorker-3");
        assert_eq!(
            short_name("ProcessPoolExecutorWorker-12"),
            "ProcessPoolE-12"
        );
        assert_eq!(short_name("Process-2:13:4"), "Process-2:13:4");
        assert_eq!(
            short_name("a-very-long-name-without-a-number"),
            "a-very-long-name-without-a-number"
        );
    }
}
