//! A panic as the process it happened in saw it: message, location, backtrace and thread,
//! captured in the panic hook and sent to whoever waits for the task (a child's parent, a
//! pool's collector) or forwarded to the root's logger.
//!
//! A leaf (it uses only std and serde): the child runtime makes reports, and logging and
//! pools carry and show them, without depending on each other.

use std::panic;

use serde::{Deserialize, Serialize};

/// A panic as the child saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PanicReport {
    pub message: String,
    pub location: Option<(String, u32, u32)>,
    pub backtrace: String,
    pub thread: Option<String>,
}

impl PanicReport {
    /// The report of the panic a panic hook was called for.
    pub(crate) fn of(info: &panic::PanicHookInfo<'_>) -> PanicReport {
        PanicReport {
            message: payload_message(info.payload()),
            location: info
                .location()
                .map(|l| (l.file().to_string(), l.line(), l.column())),
            backtrace: backtrace(),
            thread: std::thread::current().name().map(str::to_string),
        }
    }
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

/// The message of a panic payload (`&str` or `String`; anything else is named by its type).
pub(crate) fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}
