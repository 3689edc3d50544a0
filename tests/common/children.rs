//! Starting, joining and killing children in tests, with bounds that only a broken library
//! reaches.

use std::sync::mpsc;
use std::time::Duration;

use multiproc::{Process, ProcessBuilder, ProcessError, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A bound reached only when something is broken: how long a process waits for the next step
/// of a test, and the test for a child to finish.
pub const LONG: Duration = Duration::from_secs(30);

/// Processes and increments per process of the exact-count tests.
pub const PROCS: u64 = 4;
pub const INCREMENTS: u64 = 20_000;

/// Start `f(arg)` in a child with the given start method.
pub fn start<A, R>(method: StartMethod, f: fn(A) -> R, arg: A) -> Process<R>
where
    A: Serialize + DeserializeOwned + 'static,
    R: Serialize + DeserializeOwned + 'static,
{
    ProcessBuilder::new()
        .start_method(method)
        .start(f, arg)
        .unwrap_or_else(|e| panic!("starting a child with {method}: {e}"))
}

/// Wait (at most `LONG`) for the child to finish and return its task's value.
pub fn join<R: Serialize + DeserializeOwned + 'static>(child: Process<R>) -> R {
    join_within(child, LONG)
}

/// The child's task's value; the child must finish within `limit`.
pub fn join_within<R: Serialize + DeserializeOwned + 'static>(
    child: Process<R>,
    limit: Duration,
) -> R {
    let finished = child.join_timeout(limit).expect("waiting for a child");
    assert!(
        finished,
        "child {} still running after {limit:?}",
        child.pid()
    );
    child
        .join()
        .unwrap_or_else(|e| panic!("the child failed: {e}"))
}

/// `SIGKILL` the child and reap it.
pub fn kill<R: Serialize + DeserializeOwned + 'static>(child: Process<R>) {
    child.kill().expect("killing a child");
    assert!(
        child
            .join_timeout(LONG)
            .expect("waiting for a killed child"),
        "killed child still running after {LONG:?}"
    );
    match child.join() {
        Err(ProcessError::Signaled { signal, .. }) if signal == libc::SIGKILL => {}
        Err(e) => panic!("expected the child to die of SIGKILL, got: {e}"),
        Ok(_) => panic!("expected the child to die of SIGKILL, but it returned"),
    }
}

/// Run `f` on another thread; fail the test if it does not finish within `limit`. For the
/// blocking calls that have no timeout variant.
pub fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("blocking call did not return within {limit:?} ({e})"))
}

/// `SIGKILL` the child and reap it, whether it had already ended or not.
pub fn kill_any<R: Serialize + DeserializeOwned + 'static>(child: Process<R>) {
    let _ = child.kill();
    assert!(
        child
            .join_timeout(LONG)
            .expect("waiting for a killed child"),
        "killed child still running after {LONG:?}"
    );
}

/// Abort the calling process without writing a core file (tests that end a worker with
/// `SIGABRT`).
pub fn abort_without_core() -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    std::process::abort();
}

/// Another handle on the same object (a queue, a lock...), possibly typed differently, made
/// the way a child receives one: sent over a `Connection` and received.
pub fn retyped<A: Serialize, B: DeserializeOwned>(handle: &A) -> B {
    let (mut a, mut b) = multiproc::pipe().expect("pipe");
    a.send(handle).expect("send the handle");
    b.recv().expect("receive the handle")
}
