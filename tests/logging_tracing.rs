//! Children's records reach a parent that uses `tracing` (a global subscriber and no `log`
//! logger): `tracing` events and `log` records of the children both arrive as events of the
//! parent's subscriber, labelled, with the child's target.
//!
//! This binary installs a global subscriber, so it has its own test file.
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Mutex, Once};

use multiproc::{Process, StartMethod};
use tracing::field::{Field, Visit};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// One event the parent's subscriber saw.
#[derive(Clone, Debug)]
struct Seen {
    level: tracing::Level,
    target: String,
    message: String,
}

static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());

struct Capture;

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        // Events re-emitted from `log::Record`s carry the real target in their fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        SEEN.lock().unwrap().push(Seen {
            level: *meta.level(),
            target: meta.target().to_string(),
            message: message.0,
        });
    }
}

fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(Capture)
            .init();
    });
}

fn seen_containing(marker: &str) -> Vec<Seen> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|s| s.message.contains(marker))
        .cloned()
        .collect()
}

fn traced(marker: String) {
    tracing::warn!(target: "tracing_child", "traced {marker}");
    log::info!(target: "log_child", "logged {marker}");
    tracing::debug!("below the parent's level {marker}");
}

fn check(method: StartMethod) {
    let _g = common::guard();
    install();
    let name = format!("tracer-{method}");
    let marker = format!("marker-{method}-{}", std::process::id());
    let child = Process::builder()
        .name(name.clone())
        .start_method(method)
        .start(traced, marker.clone())
        .unwrap();
    let pid = child.pid();
    child.join().unwrap();
    let seen = seen_containing(&marker);
    assert_eq!(seen.len(), 2, "{seen:?}");
    let traced = &seen[0];
    assert_eq!(traced.level, tracing::Level::WARN);
    assert_eq!(traced.target, "tracing_child");
    assert_eq!(
        traced.message,
        format!("{name} (pid {pid}): traced {marker}")
    );
    let logged = &seen[1];
    assert_eq!(logged.level, tracing::Level::INFO);
    assert_eq!(logged.target, "log_child");
    assert_eq!(
        logged.message,
        format!("{name} (pid {pid}): logged {marker}")
    );
}

/// A spawned child forwards both kinds of records to the parent's subscriber.
#[test]
fn spawn_child_records_reach_the_parents_tracing_subscriber() {
    check(StartMethod::Spawn);
}

/// A fork child inherits the parent's subscriber but forwards instead of using it.
#[test]
fn fork_child_records_reach_the_parents_tracing_subscriber() {
    check(StartMethod::Fork);
}

/// Fork-server children too.
#[test]
fn forkserver_child_records_reach_the_parents_tracing_subscriber() {
    check(StartMethod::ForkServer);
}
