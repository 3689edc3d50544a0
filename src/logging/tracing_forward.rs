//! `tracing` in children: a subscriber that forwards each event (with the names and fields
//! of the spans it happened in, as `tracing-subscriber`'s fmt prints them) to the root.
//!
//! Why by hand: the subscriber only formats and forwards; a `tracing-subscriber` registry
//! would add a dependency and per-span storage for no gain here.
//!
//! A spawned child installs it as the global default. A forked child cannot (the global
//! default is set once per process, and it inherited the parent's), so the subscriber is
//! also made the default of the thread that runs the task, which takes precedence.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter as TracingLevel;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

use tracing_log::NormalizeEvent;

use super::forward::{self, Origin};

/// The most verbose level any `tracing` subscriber of this process wants, as a `log` level.
pub(super) fn current_level() -> log::LevelFilter {
    to_log_filter(TracingLevel::current())
}

fn to_log_filter(level: TracingLevel) -> log::LevelFilter {
    match level.into_level() {
        None => log::LevelFilter::Off,
        Some(Level::ERROR) => log::LevelFilter::Error,
        Some(Level::WARN) => log::LevelFilter::Warn,
        Some(Level::INFO) => log::LevelFilter::Info,
        Some(Level::DEBUG) => log::LevelFilter::Debug,
        Some(Level::TRACE) => log::LevelFilter::Trace,
    }
}

fn to_tracing_filter(level: log::LevelFilter) -> TracingLevel {
    match level {
        log::LevelFilter::Off => TracingLevel::OFF,
        log::LevelFilter::Error => TracingLevel::ERROR,
        log::LevelFilter::Warn => TracingLevel::WARN,
        log::LevelFilter::Info => TracingLevel::INFO,
        log::LevelFilter::Debug => TracingLevel::DEBUG,
        log::LevelFilter::Trace => TracingLevel::TRACE,
    }
}

fn to_log_level(level: Level) -> log::Level {
    match level {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        Level::TRACE => log::Level::Trace,
    }
}

/// In a child that forwards: make the forwarder this process's (or at least this thread's)
/// subscriber.
pub(super) fn install(level: log::LevelFilter) {
    let dispatch = Dispatch::new(Forwarder {
        level: to_tracing_filter(level),
        spans: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    if tracing::dispatcher::set_global_default(dispatch.clone()).is_err() {
        // Forked: the parent's subscriber is the global default here. This thread runs the
        // task and lives as long as the child, so its default is never restored.
        std::mem::forget(tracing::dispatcher::set_default(&dispatch));
    }
}

struct SpanData {
    /// `name{field=value ...}`, as it prefixes events.
    label: String,
    refs: usize,
}

struct Forwarder {
    level: TracingLevel,
    spans: Mutex<HashMap<u64, SpanData>>,
    next_id: AtomicU64,
}

thread_local! {
    /// The spans this thread has entered, innermost last.
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl Forwarder {
    fn spans(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SpanData>> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Subscriber for Forwarder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= &self.level
    }

    fn max_level_hint(&self) -> Option<TracingLevel> {
        Some(self.level)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut fields = Fields::default();
        span.record(&mut fields);
        let mut label = span.metadata().name().to_string();
        if !fields.rest.is_empty() {
            let _ = write!(label, "{{{}}}", fields.rest.trim_start());
        }
        self.spans().insert(id, SpanData { label, refs: 1 });
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(data) = self.spans().get_mut(&span.into_u64()) {
            let extra = fields.rest.trim_start();
            if let Some(open) = data.label.strip_suffix('}') {
                data.label = format!("{open} {extra}}}");
            } else if !extra.is_empty() {
                data.label = format!("{}{{{extra}}}", data.label);
            }
        }
    }

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let scope = STACK.with(|stack| {
            let spans = self.spans();
            let mut scope = String::new();
            for id in stack.borrow().iter() {
                if let Some(data) = spans.get(id) {
                    scope.push_str(&data.label);
                    scope.push_str(": ");
                }
            }
            scope
        });
        let message = format!("{scope}{}", fields.message);
        // A `log` record turned into an event by `tracing-log` (a fork child that inherited
        // a `LogTracer`): its real target, module, file and line are fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let pairs = fields
            .pairs
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
            .collect();
        forward::send(
            Origin::Tracing,
            to_log_level(*meta.level()),
            meta.target(),
            meta.module_path(),
            meta.file(),
            meta.line(),
            &message,
            pairs,
        );
    }

    fn enter(&self, span: &Id) {
        STACK.with(|stack| stack.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            if let Some(at) = stack.iter().rposition(|id| *id == span.into_u64()) {
                stack.remove(at);
            }
        });
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some(data) = self.spans().get_mut(&id.into_u64()) {
            data.refs += 1;
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let mut spans = self.spans();
        let key = id.into_u64();
        let closed = spans.get_mut(&key).is_some_and(|data| {
            data.refs = data.refs.saturating_sub(1);
            data.refs == 0
        });
        if closed {
            spans.remove(&key);
        }
        closed
    }
}

/// An event's or span's fields: `message`, the others as pairs (and as text for spans).
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, String)>,
    rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

impl Fields {
    fn add(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = value;
        } else if field.name().starts_with("log.") {
            // tracing-log's own fields (see `event`), not the record's key-values.
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
            self.pairs.push((field.name(), value));
        }
    }
}
