//! Shared by every integration test: [`guard`] isolates a test and checks that it cleaned up,
//! and a few helpers read `/proc` to observe processes from the outside.
//!
//! Each test binary uses a different subset of this module.
#![allow(dead_code)]

pub mod children;
pub mod python;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long the end-of-test check waits for children to be reaped and shared memory to be
/// unlinked. Both happen asynchronously (the background reaper, the fork server), so the check
/// waits for that event with a deadline.
const SETTLE: Duration = Duration::from_secs(5);
/// How often the end-of-test check looks again while waiting.
const POLL: Duration = Duration::from_millis(5);

/// Serialises the tests of one binary under plain `cargo test`, which runs them on threads of
/// one process: every test counts *all* children of the process as its own.
static SERIAL: Mutex<()> = Mutex::new(());

/// Isolates one test; its checks run when it is dropped at the end of the test.
#[must_use = "the checks run when the guard is dropped at the end of the test"]
pub struct Guard {
    shm_before: HashSet<OsString>,
    _serial: MutexGuard<'static, ()>,
}

/// Start a test: wait for the other tests of this binary to finish, then remember the state
/// that the test must leave as it found it. Bind it first (`let _g = common::guard();`) so it
/// is dropped last, after every `Process` and `Connection` of the test.
///
/// When dropped, the guard checks that
/// - no process started during the test is still there: no descendant of this process other
///   than the fork server (`multiproc::forkserver_pid()`), which includes the fork server's
///   children, and no unreaped (zombie) child;
/// - no `/dev/shm` entry whose name contains `multiproc` was created during the test.
///
/// Anything left over is killed (and reaped if it is our child) or unlinked, then the test
/// fails with a description of it.
pub fn guard() -> Guard {
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: the test harness's other threads are idle while a test runs (tests of one
    // binary are serialized by `SERIAL`, and the harness's main thread only waits for
    // results), so they hold nothing a forked child uses.
    unsafe { multiproc::allow_fork_with_threads() };
    Guard {
        shm_before: shm_entries(),
        _serial: serial,
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let me = std::process::id();
        let deadline = Instant::now() + SETTLE;
        let (procs, shm) = loop {
            let procs = leftover_processes(me);
            let shm = self.leftover_shm(me);
            if (procs.is_empty() && shm.is_empty()) || Instant::now() >= deadline {
                break (procs, shm);
            }
            std::thread::sleep(POLL);
        };
        if procs.is_empty() && shm.is_empty() {
            return;
        }

        let mut report = String::new();
        if !procs.is_empty() {
            let _ = writeln!(
                report,
                "{} process(es) started by this test outlived it by {SETTLE:?} (fork server: {:?}):",
                procs.len(),
                multiproc::forkserver_pid()
            );
            for p in &procs {
                let _ = writeln!(
                    report,
                    "  pid {} ppid {} state {} comm {:?} cmdline {:?}",
                    p.pid,
                    p.ppid,
                    p.state,
                    p.comm,
                    cmdline(p.pid)
                );
            }
        }
        if !shm.is_empty() {
            let _ = writeln!(
                report,
                "shared memory created by this test was not unlinked: {shm:?}"
            );
        }
        clean_up(me, &procs, &shm);
        if std::thread::panicking() {
            eprintln!("(while the test was failing) {report}");
        } else {
            panic!("{report}");
        }
    }
}

impl Guard {
    /// `/dev/shm` entries named `*multiproc*` created since the guard was taken, except those
    /// some process outside this process tree holds open (another test process running in
    /// parallel under `cargo nextest`).
    fn leftover_shm(&self, me: u32) -> Vec<OsString> {
        let new: Vec<OsString> = shm_entries()
            .into_iter()
            .filter(|name| !self.shm_before.contains(name))
            .collect();
        if new.is_empty() {
            return new;
        }
        let ours = tree(me, &all_processes());
        new.into_iter()
            .filter(|name| !held_outside(name, &ours))
            .collect()
    }
}

fn shm_entries() -> HashSet<OsString> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().contains("multiproc"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a process that is not in `ours` has `/dev/shm/<name>` open or mapped.
fn held_outside(name: &OsString, ours: &HashSet<u32>) -> bool {
    let path = format!("/dev/shm/{}", name.to_string_lossy());
    all_processes()
        .iter()
        .filter(|p| !ours.contains(&p.pid))
        .any(|p| {
            let open = std::fs::read_dir(format!("/proc/{}/fd", p.pid))
                .map(|fds| {
                    fds.filter_map(Result::ok).any(|fd| {
                        std::fs::read_link(fd.path())
                            .is_ok_and(|target| target.to_string_lossy().starts_with(&path))
                    })
                })
                .unwrap_or(false);
            open || std::fs::read_to_string(format!("/proc/{}/maps", p.pid))
                .is_ok_and(|maps| maps.contains(&path))
        })
}

/// Every descendant of `me` except the library's own helpers, the fork server and the
/// resource tracker, which live as long as the test process (the fork server's children are
/// included).
fn leftover_processes(me: u32) -> Vec<ProcStat> {
    let helpers = [
        multiproc::forkserver_pid(),
        multiproc::resource_tracker_pid(),
    ];
    let all = all_processes();
    let ours = tree(me, &all);
    all.into_iter()
        .filter(|p| p.pid != me && ours.contains(&p.pid) && !helpers.contains(&Some(p.pid)))
        .collect()
}

/// `root` and all its descendants.
fn tree(root: u32, all: &[ProcStat]) -> HashSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for p in all {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut found = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

fn clean_up(me: u32, procs: &[ProcStat], shm: &[OsString]) {
    for p in procs {
        kill_exact(p, libc::SIGKILL);
    }
    for p in procs.iter().filter(|p| p.ppid == me) {
        // SAFETY: waitpid on our own child with a null status pointer has no preconditions.
        unsafe { libc::waitpid(p.pid as libc::pid_t, std::ptr::null_mut(), 0) };
    }
    // The fork server reaps its own children; give it the time to, so the next test starts
    // clean.
    wait_until(Instant::now() + SETTLE, || {
        procs
            .iter()
            .all(|p| p.ppid == me || has_ended(p.pid, p.start_time))
    });
    for name in shm {
        let _ = std::fs::remove_file(format!("/dev/shm/{}", name.to_string_lossy()));
    }
}

/// Send `signal` to the process `p` describes, never to a process that reused its pid: the
/// pidfd pins the process, then its start time is checked.
pub fn kill_exact(p: &ProcStat, signal: i32) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid as libc::c_int, 0) };
    if fd < 0 {
        return;
    }
    if proc_stat(p.pid).is_some_and(|now| now.start_time == p.start_time) {
        // SAFETY: `fd` is the pidfd opened above; a null siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd as libc::c_int,
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
    // SAFETY: `fd` is a descriptor this function opened and nothing else uses.
    unsafe { libc::close(fd as libc::c_int) };
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Clone, Debug)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    /// `R`, `S`, `D`, `Z` (dead, not yet reaped), ...
    pub state: char,
    pub ppid: u32,
    /// Clock ticks after boot: tells a process apart from a later one with the same pid.
    pub start_time: u64,
    /// For a zombie, its wait status (`WIFSIGNALED`/`WTERMSIG` apply).
    pub exit_code: Option<i32>,
}

impl ProcStat {
    /// Dead (a zombie waiting to be reaped, or being reaped).
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// The process with this pid, if there is one.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may contain spaces and parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(ProcStat {
        pid,
        comm,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        exit_code: fields.get(49).and_then(|f| f.parse().ok()),
    })
}

fn all_processes() -> Vec<ProcStat> {
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(proc_stat)
                .collect()
        })
        .unwrap_or_default()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Whether the process that had `pid` and `start_time` has ended: it is gone from `/proc`, its
/// pid now belongs to another process, or it is dead and waiting to be reaped. (Orphans are
/// adopted by pid 1, which need not reap them: a zombie counts as ended.)
pub fn has_ended(pid: u32, start_time: u64) -> bool {
    match proc_stat(pid) {
        None => true,
        Some(p) => p.start_time != start_time || p.is_dead(),
    }
}

/// Whether the process that had `pid` and `start_time` is gone from `/proc` altogether
/// (reaped), as opposed to lingering as a zombie.
pub fn is_reaped(pid: u32, start_time: u64) -> bool {
    proc_stat(pid).is_none_or(|p| p.start_time != start_time)
}

/// Poll `condition` (every few milliseconds) until it holds or `deadline` passes; returns
/// whether it held. For waiting on events that happen in other processes.
pub fn wait_until(deadline: Instant, mut condition: impl FnMut() -> bool) -> bool {
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Generates, for each listed function `fn name(method: StartMethod)`, one test per start
/// method: `fork::name`, `spawn::name` and `forkserver::name`. Invoke it once per file.
#[allow(unused_macros)]
macro_rules! per_start_method {
    ($($test:ident),+ $(,)?) => {
        mod fork {
            $(#[test] fn $test() { super::$test(multiproc::StartMethod::Fork) })+
        }
        mod spawn {
            $(#[test] fn $test() { super::$test(multiproc::StartMethod::Spawn) })+
        }
        mod forkserver {
            $(#[test] fn $test() { super::$test(multiproc::StartMethod::ForkServer) })+
        }
    };
}

/// How late a timed-out call may return on a loaded 2-CPU machine.
pub const LATE: Duration = Duration::from_secs(2);

/// A timed-out call took at least its timeout, and not much longer.
#[track_caller]
#[allow(dead_code)] // not every test file times calls
pub fn assert_on_time(waited: Duration, timeout: Duration) {
    assert!(
        waited >= timeout,
        "returned after {waited:?}, before its timeout of {timeout:?}"
    );
    assert!(
        waited <= timeout + LATE,
        "returned after {waited:?}, long after its timeout of {timeout:?}"
    );
}
