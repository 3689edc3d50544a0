//! The opt-in progress bar of long maps (`Pool::progress`, `Imap::progress`,
//! `ExecutorMap::progress`, `AsCompleted::progress`): count, rate and ETA, drawn with
//! indicatif on stderr, and only when stderr is a terminal (a log file gets nothing).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when stderr is not a terminal. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `len` items (`None`: unknown, a counter with a rate).
    pub(crate) fn new(len: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let template = match len {
            Some(_) => "{bar:40} {pos}/{len} items  {per_sec}  ETA {eta}",
            None => "{spinner} {pos} items  {per_sec}",
        };
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        Progress(Some(bar))
    }

    pub(crate) fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(drawn)"
        } else {
            "Progress(off)"
        })
    }
}
