//! The opt-in progress bar of long maps (`Pool::progress`, `Imap::progress`,
//! `ExecutorMap::progress`, `AsCompleted::progress`, feature `progress`): count, rate and ETA,
//! drawn with indicatif on stderr, and only when stderr is a terminal (a log file gets
//! nothing). Without the feature, `Progress` is an empty stand-in so the pool's code needs no
//! `cfg` of its own, and the public `progress` methods do not exist.

/// A progress bar, or nothing when stderr is not a terminal. Cheap to clone (shared).
#[derive(Clone, Default)]
pub(crate) struct Progress(#[cfg(feature = "progress")] Option<std::sync::Arc<bar::Bar>>);

#[cfg(feature = "progress")]
mod bar {
    use std::io::Write as _;

    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

    /// The drawn bar; the last clone of a `Progress` drops it.
    pub(super) struct Bar(ProgressBar);

    impl Bar {
        pub(super) fn new(len: Option<u64>) -> Bar {
            let template = match len {
                Some(_) => "{bar:40} {pos}/{len} items  {rate}  ETA {eta}",
                None => "{spinner} {pos} items  {rate}",
            };
            let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{}", super::rate(state.per_sec()));
                    },
                ));
            }
            Bar(bar)
        }

        pub(super) fn inc(&self, n: u64) {
            self.0.inc(n);
        }

        /// Draw the final state and move the cursor to the next line, once: indicatif leaves
        /// it at the end of the bar's line, where the program's next output would continue.
        pub(super) fn finish(&self) {
            if !self.0.is_finished() {
                self.0.finish();
                let _ = std::io::stderr().write_all(b"\n");
            }
        }
    }

    impl Drop for Bar {
        /// A map dropped before its end leaves the bar where it stopped, on a line of its own.
        fn drop(&mut self) {
            if !self.0.is_finished() {
                self.0.abandon();
                let _ = std::io::stderr().write_all(b"\n");
            }
        }
    }
}

impl Progress {
    /// A bar for `len` items (`None`: unknown, a counter with a rate).
    #[cfg(feature = "progress")]
    pub(crate) fn new(len: Option<u64>) -> Progress {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        Progress(Some(std::sync::Arc::new(bar::Bar::new(len))))
    }

    /// No bar without the feature.
    #[cfg(not(feature = "progress"))]
    pub(crate) fn new(_len: Option<u64>) -> Progress {
        Progress()
    }

    pub(crate) fn inc(&self, _n: u64) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.0 {
            bar.inc(_n);
        }
    }

    pub(crate) fn finish(&self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.0 {
            bar.finish();
        }
    }

    fn drawn(&self) -> bool {
        #[cfg(feature = "progress")]
        return self.0.is_some();
        #[cfg(not(feature = "progress"))]
        false
    }
}

/// A rate for people: no decimals from 100/s, one from 10/s, two below (`456/s`, `12.3/s`,
/// `0.25/s`), where
/// indicatif's `{per_sec}` prints four decimals whatever the size.
#[cfg_attr(not(feature = "progress"), allow(dead_code))]
fn rate(per_sec: f64) -> String {
    let decimals = match per_sec {
        r if !r.is_finite() => return "-/s".into(),
        r if r >= 100.0 => 0,
        r if r >= 10.0 => 1,
        _ => 2,
    };
    format!("{per_sec:.decimals$}/s")
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.drawn() {
            "Progress(drawn)"
        } else {
            "Progress(off)"
        })
    }
}

/// The results a map's iterator has received and not handed out yet, counted on its
/// progress bar as they are handed out (`Imap`, `ExecutorMap`).
pub(crate) struct Handout<R> {
    items: std::collections::VecDeque<Result<R, super::PoolError>>,
    pub(crate) progress: Progress,
}

impl<R> Handout<R> {
    pub(crate) fn new(progress: Progress) -> Self {
        Handout {
            items: std::collections::VecDeque::new(),
            progress,
        }
    }

    /// The next result received, counted.
    pub(crate) fn next(&mut self) -> Option<Result<R, super::PoolError>> {
        let item = self.items.pop_front()?;
        self.progress.inc(1);
        Some(item)
    }

    /// A chunk's results, in order.
    pub(crate) fn receive(&mut self, chunk: impl IntoIterator<Item = Result<R, super::PoolError>>) {
        self.items.extend(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_are_printed_with_fewer_decimals_as_they_grow() {
        assert_eq!(rate(12_345.678_9), "12346/s");
        assert_eq!(rate(123.456), "123/s");
        assert_eq!(rate(12.345_6), "12.3/s");
        assert_eq!(rate(0.256_78), "0.26/s");
        assert_eq!(rate(f64::NAN), "-/s");
    }
}
