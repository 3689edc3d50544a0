//! The child side: how its outcome reaches the parent (who it is: `crate::identity`).
//!
//! Every child owns a *status connection* to whoever started it. Exactly one [`Outcome`]
//! travels on it: the task's return value, or the panic that ended it (message, location and
//! a backtrace captured in the child), or why the task could not even start. The panic hook
//! sends the report from inside the panicking thread, before unwinding, so it arrives even
//! when the binary is built with `panic = "abort"`, and it never depends on the child's stderr.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use serde::{Deserialize, Serialize};

use super::limits::{Limit, Limits};
use crate::connection::Connection;
use crate::identity::{self, Identity};
use crate::panic_report::{PanicReport, payload_message};
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

impl PanicReport {
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

/// Make this (new) process the child described by `identity`, started by `start_method`
/// (which becomes its default, as Python's `_bootstrap` forces it).
pub(crate) fn become_child(identity: Identity, start_method: super::StartMethod) {
    // Seen in `ps`/`top` under its multiproc name (`Process-3`, `PoolWorker-2`, ...).
    sys::set_process_name(&short_name(&identity.name));
    super::set_start_method(start_method);
    crate::identity::assume(identity);
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
                if identity::identity().is_none()
                    || !crate::logging::forward_panic(&PanicReport::of(info), false)
                {
                    previous(info);
                }
                return;
            }
            let report_ = PanicReport::of(info);
            // Shown once: forwarded to the parent's logger, or else printed here.
            if !crate::logging::forward_panic(&report_, true) {
                let name = identity::name();
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
