//! Optional prefixing of children's standard output and error (`prefix_child_output`).
//!
//! When it is on, the parent gives each child it starts two pipes, which the child puts in
//! place of its descriptors 1 and 2 before its task runs. A relay thread in the parent reads
//! them and writes each complete line to the parent's own stdout or stderr as
//! `[name] line`, one write per batch of lines, so lines of different children never mix.
//! A line still incomplete when its child closes the pipe is written with a newline added.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ThreadState;
use crate::handle::{deserialize_fd, serialize_fd};
use crate::sys;

static ENABLED: AtomicBool = AtomicBool::new(false);

pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// A descriptor several copies of a setup share (the boot header is cloned on its way to
/// the fork server); serialized like every handle, by duplication.
#[derive(Clone, Debug)]
struct SharedFd(Arc<OwnedFd>);

impl Serialize for SharedFd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_fd(self.0.as_fd(), serializer)
    }
}

impl<'de> Deserialize<'de> for SharedFd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_fd(deserializer).map(|fd| SharedFd(Arc::new(fd)))
    }
}

/// The write ends a child puts in place of its stdout and stderr.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pipes {
    stdout: SharedFd,
    stderr: SharedFd,
}

impl Pipes {
    /// In the child: make the pipes its standard output and error. Its children inherit
    /// them, so they print under this child's name.
    pub(super) fn redirect(self) {
        let _ = std::io::stdout().flush();
        let _ = sys::redirect_stdio(self.stdout.0.as_fd(), true);
        let _ = sys::redirect_stdio(self.stderr.0.as_fd(), false);
        // The setting is the parent's: this child's own children are not relayed again.
        set_enabled(false);
    }
}

/// One pipe being relayed.
struct Stream {
    label: String,
    to_stderr: bool,
    fd: OwnedFd,
    /// Bytes read after the last complete line; the lock also keeps the relay thread and a
    /// flush from interleaving reads of one pipe.
    partial: Mutex<Vec<u8>>,
    closed: AtomicBool,
}

struct Relay {
    /// The process relaying; a forked child starts without streams.
    owner: u32,
    streams: Vec<Arc<Stream>>,
    /// Written to when a stream is added, so the relay thread polls it too.
    wake: OwnedFd,
}

/// The relay; its writing lock is held while relayed lines are written, and by `fork` (the
/// standard-stream locks must not be held by the relay thread when a child copies them).
static RELAY: ThreadState<Relay> = ThreadState::new(|r| r.owner);

pub(super) fn lock_for_fork() -> MutexGuard<'static, ()> {
    RELAY.lock_writing()
}

/// In the parent, before starting a child named `name`: its pipes, if prefixing is on.
pub(super) fn prepare(name: &str) -> Option<Pipes> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    match add_streams(name) {
        Ok(pipes) => Some(pipes),
        Err(e) => {
            crate::event::event!(
                log::Level::Warn,
                "output of '{name}' is not prefixed: no pipe for it ({e})"
            );
            None
        }
    }
}

fn add_streams(name: &str) -> std::io::Result<Pipes> {
    let (out_read, out_write) = sys::output_pipe()?;
    let (err_read, err_write) = sys::output_pipe()?;
    let mut relay = RELAY.lock();
    if relay.is_none() {
        let (wake_read, wake_write) = sys::output_pipe()?;
        crate::library_thread::spawn("multiproc-output", move || relay_loop(wake_read))?;
        *relay = Some(Relay {
            owner: sys::getpid(),
            streams: Vec::new(),
            wake: wake_write,
        });
    }
    let Some(r) = relay.as_mut() else {
        unreachable!("set just above");
    };
    for (fd, to_stderr) in [(out_read, false), (err_read, true)] {
        r.streams.push(Arc::new(Stream {
            label: name.to_string(),
            to_stderr,
            fd,
            partial: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }));
    }
    sys::poke(&r.wake);
    Ok(Pipes {
        stdout: SharedFd(Arc::new(out_write)),
        stderr: SharedFd(Arc::new(err_write)),
    })
}

fn snapshot() -> Vec<Arc<Stream>> {
    let mut relay = RELAY.lock();
    let Some(r) = relay.as_mut() else {
        return Vec::new();
    };
    r.streams.retain(|s| !s.closed.load(Ordering::Relaxed));
    r.streams.clone()
}

fn relay_loop(wake: OwnedFd) {
    let mut scratch = [0u8; 256];
    loop {
        let streams = snapshot();
        let mut fds = vec![wake.as_fd()];
        fds.extend(streams.iter().map(|s| s.fd.as_fd()));
        let Ok(ready) = sys::wait_readable(&fds, None) else {
            continue;
        };
        if ready[0] {
            while let Ok(Some(n)) = sys::read_available(wake.as_fd(), &mut scratch) {
                if n == 0 {
                    return;
                }
            }
        }
        for (stream, _) in streams.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
            stream.pump();
        }
    }
}

impl Stream {
    /// Read what the pipe has and write out the complete lines.
    fn pump(&self) {
        let mut partial = self.partial.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        let mut out = Vec::new();
        loop {
            match sys::read_available(self.fd.as_fd(), &mut buf) {
                Ok(Some(0)) | Err(_) => {
                    self.closed.store(true, Ordering::Relaxed);
                    if !partial.is_empty() {
                        partial.push(b'\n');
                    }
                    self.lines(&mut partial, &mut out);
                    break;
                }
                Ok(Some(n)) => {
                    partial.extend_from_slice(&buf[..n]);
                    self.lines(&mut partial, &mut out);
                }
                Ok(None) => break,
            }
        }
        if out.is_empty() {
            return;
        }
        let _writing = lock_for_fork();
        let _ = if self.to_stderr {
            std::io::stderr().lock().write_all(&out)
        } else {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out).and_then(|()| stdout.flush())
        };
    }

    /// Move the complete lines of `partial` to `out`, each prefixed with the label.
    fn lines(&self, partial: &mut Vec<u8>, out: &mut Vec<u8>) {
        let Some(end) = partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        for line in partial[..=end].split_inclusive(|&b| b == b'\n') {
            out.push(b'[');
            out.extend_from_slice(self.label.as_bytes());
            out.extend_from_slice(b"] ");
            out.extend_from_slice(line);
        }
        partial.drain(..=end);
    }
}

/// Write out the complete lines children have printed so far.
pub(super) fn flush() {
    for stream in snapshot() {
        stream.pump();
    }
}
