//! The logger behind `log_to_stderr`: one line per record on standard error, labelled with
//! the level and the process (`[INFO/Process-1 (pid 4242)] message`), Python's
//! `multiprocessing` default format plus the pid.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, Log};

static INSTALLED: AtomicBool = AtomicBool::new(false);

pub(super) fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

pub(super) fn mark_installed() {
    INSTALLED.store(true, Ordering::Relaxed);
}

pub(super) struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let fields = super::forward::key_values(record);
        let message = match record.args().as_str() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(record.args().to_string()),
        };
        write(
            record.level(),
            &crate::identity::name(),
            crate::sys::getpid(),
            &message,
            &fields,
        );
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Write one line (built first, then written at once, so lines from several threads never
/// mix).
pub(super) fn write(
    level: Level,
    process: &str,
    pid: u32,
    message: &str,
    fields: &[(Cow<'_, str>, Cow<'_, str>)],
) {
    let mut line = format!("[{level}/{process} (pid {pid})] {message}");
    for (key, value) in fields {
        let _ = write!(line, " {key}={value}");
    }
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
