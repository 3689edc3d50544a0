//! Child processes: starting them, who they are, waiting for them, how they end, and what
//! happens to them when their parent goes. Behaviours that depend on the start method are
//! checked for each of them (see `per_start_method!` at the end of the file).

#[macro_use]
mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use multiproc::{
    Connection, ProcessBuilder, ProcessError, Run, StartMethod, active_children, cpu_count,
    current_process, get_start_method, parent_process, pipe, set_start_method, wait,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Generous bound for things that take milliseconds, so a loaded machine does not fail them.
const PROMPTLY: Duration = Duration::from_secs(5);

fn builder(method: StartMethod) -> ProcessBuilder {
    ProcessBuilder::new().start_method(method)
}

// ---------------------------------------------------------------------------------------
// Tasks run by the children of these tests.

fn square(x: u64) -> u64 {
    x * x
}

fn repeat_x(len: usize) -> String {
    "x".repeat(len)
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Runs until a message (or end of file) arrives. With the fork start method the child
/// inherits the parent's end of the pipe too, so tests end it with a message, not by closing.
fn wait_for_go(mut conn: Connection) {
    let _ = conn.recv::<()>();
}

fn exit_with(code: i32) {
    std::process::exit(code);
}

/// Ends the calling process with `signal`'s default action, without dumping core.
fn die_by_signal(signal: i32) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with valid arguments; the process ends in `raise`.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    unreachable!("signal {signal} did not end the process");
}

fn abort_without_core(_: ()) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    std::process::abort();
}

/// The line of the `panic!` is part of its message, so the test can check the reported line.
fn panicking_task(_: ()) -> u32 {
    panic!("deliberate panic on line {}", line!())
}

fn own_name(_: ()) -> String {
    current_process().name
}

fn own_pids(_: ()) -> (u32, u32) {
    (current_process().pid, std::process::id())
}

fn own_daemon_flag(_: ()) -> bool {
    current_process().daemon
}

fn parent_seen_from_child(_: ()) -> Option<(u32, String, bool)> {
    parent_process().map(|p| (p.pid(), p.name().to_string(), p.is_alive()))
}

/// (own name, parent's pid, parent's name), as a grandchild sees them.
fn identity_and_parent(_: ()) -> (String, u32, String) {
    let parent = parent_process().expect("a child has a parent");
    (
        current_process().name,
        parent.pid(),
        parent.name().to_string(),
    )
}

/// The start method this process uses by default.
fn own_default_start_method(_: ()) -> String {
    get_start_method().to_string()
}

/// (this child's default start method, the method its child got without choosing one, what
/// that grandchild says its default is).
fn default_start_methods_down_two_generations(_: ()) -> (String, String, String) {
    let grandchild = ProcessBuilder::new()
        .start(own_default_start_method, ())
        .unwrap();
    let used = grandchild.start_method().to_string();
    (
        get_start_method().to_string(),
        used,
        grandchild.join().unwrap(),
    )
}

/// What the descriptors open in this process refer to (`pipe:[inode]`, paths, ...).
fn open_descriptors(_: ()) -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect()
}

/// Starts a grandchild with `method` and returns (its handle's name, what it says about
/// itself and its parent).
fn start_grandchild(method: String) -> (String, (String, u32, String)) {
    let method: StartMethod = method.parse().expect("a start method name");
    let grandchild = builder(method).start(identity_and_parent, ()).unwrap();
    let name = grandchild.name().to_string();
    (name, grandchild.join().unwrap())
}

/// What happens when this (daemonic) process tries to start children: with `start`, then
/// with `fork`.
fn try_to_start_children(_: ()) -> (String, String) {
    fn describe<R: serde::de::DeserializeOwned>(
        result: Result<multiproc::Process<R>, ProcessError>,
    ) -> String {
        match result {
            Err(ProcessError::DaemonCannotHaveChildren) => "refused".into(),
            Err(other) => format!("other error: {other}"),
            Ok(child) => {
                let _ = child.kill();
                let _ = child.join_timeout(PROMPTLY);
                "started".into()
            }
        }
    }
    (
        describe(ProcessBuilder::new().start(square, 2)),
        describe(ProcessBuilder::new().fork(|| 1)),
    )
}

/// Sends its pid (proof that its task runs), then sleeps for a minute.
fn report_pid_then_sleep(mut conn: Connection) {
    conn.send(&std::process::id()).unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[derive(Serialize, Deserialize)]
struct Countdown {
    from: u32,
    label: String,
}

impl Run for Countdown {
    type Output = (String, Vec<u32>);
    fn run(self) -> Self::Output {
        (self.label, (0..=self.from).rev().collect())
    }
}

/// A value whose encoding panics.
#[derive(Debug)]
struct PanicsWhenEncoded;

impl Serialize for PanicsWhenEncoded {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("cannot encode this value")
    }
}

impl<'de> Deserialize<'de> for PanicsWhenEncoded {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| PanicsWhenEncoded)
    }
}

fn return_value_that_panics_when_encoded(_: ()) -> PanicsWhenEncoded {
    PanicsWhenEncoded
}

/// A value whose encoding fails with an error.
#[derive(Debug)]
struct FailsToEncode;

impl Serialize for FailsToEncode {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be encoded",
        ))
    }
}

impl<'de> Deserialize<'de> for FailsToEncode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| FailsToEncode)
    }
}

fn takes_unencodable(_: FailsToEncode) -> u8 {
    0
}

fn return_value_that_fails_to_encode(_: ()) -> FailsToEncode {
    FailsToEncode
}

/// A value that encodes but never decodes.
#[derive(Debug)]
struct FailsToDecode;

impl Serialize for FailsToDecode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for FailsToDecode {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("this value refuses to be decoded"))
    }
}

fn takes_undecodable(_: FailsToDecode) -> u8 {
    0
}

// ---------------------------------------------------------------------------------------
// Starting a child and getting its result

fn join_returns_the_task_value(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(square, 12).unwrap();
    assert_eq!(child.join().unwrap(), 144);
}

fn start_run_runs_a_type_implementing_run(method: StartMethod) {
    let _g = common::guard();
    let task = Countdown {
        from: 3,
        label: "lift-off".into(),
    };
    let child = builder(method).start_run(task).unwrap();
    assert_eq!(child.join().unwrap(), ("lift-off".into(), vec![3, 2, 1, 0]));
}

fn non_capturing_closure_runs_as_a_task(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(|(a, b): (i32, i32)| a + b, (40, 2))
        .unwrap();
    assert_eq!(child.join().unwrap(), 42);
}

fn unannotated_closure_takes_its_types_from_the_argument(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(|x| x * 2, 21u64).unwrap();
    assert_eq!(child.join().unwrap(), 42);
}

fn start_macro_sends_the_named_variables_to_the_child(method: StartMethod) {
    let _g = common::guard();
    let words = vec!["a".to_string(), "b".to_string()];
    let separator = String::from("-");
    let child = multiproc::start!(
        builder(method),
        (words, separator) || words.join(&separator)
    )
    .unwrap();
    assert_eq!(child.join().unwrap(), "a-b");
}

fn start_macro_takes_mut_names_and_a_result_type(method: StartMethod) {
    let _g = common::guard();
    let count = 1u32;
    let child = multiproc::start!(builder(method), (mut count) || -> u32 {
        count += 1;
        count
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 2);
}

fn large_return_value_comes_back_on_join(method: StartMethod) {
    let _g = common::guard();
    let len = 20 << 20;
    let child = builder(method).start(repeat_x, len).unwrap();
    let value = child.join().unwrap();
    assert_eq!(value.len(), len);
    assert!(value.bytes().all(|b| b == b'x'));
}

fn large_argument_reaches_the_child(method: StartMethod) {
    let _g = common::guard();
    let text = "y".repeat(20 << 20);
    let child = builder(method).start(|s: String| s.len(), text).unwrap();
    assert_eq!(child.join().unwrap(), 20 << 20);
}

fn many_children_run_at_once(method: StartMethod) {
    let _g = common::guard();
    let children: Vec<_> = (0..20u64)
        .map(|i| builder(method).start(square, i).unwrap())
        .collect();
    let results: Vec<u64> = children.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(results, (0..20u64).map(|i| i * i).collect::<Vec<_>>());
}

fn children_can_be_started_from_several_threads_at_once(method: StartMethod) {
    let _g = common::guard();
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                s.spawn(move || {
                    (0..5u64)
                        .map(|i| builder(method).start(square, t * 10 + i).unwrap())
                        .map(|c| c.join().unwrap())
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        for (t, thread) in (0..4u64).zip(threads) {
            let expected: Vec<u64> = (0..5u64).map(|i| (t * 10 + i).pow(2)).collect();
            assert_eq!(thread.join().unwrap(), expected);
        }
    });
}

fn a_child_defaults_to_its_own_start_method_and_so_do_its_children(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(default_start_methods_down_two_generations, ())
        .unwrap();
    let m = method.to_string();
    assert_eq!(child.join().unwrap(), (m.clone(), m.clone(), m));
    // The parent's own default is untouched.
    assert_eq!(get_start_method(), StartMethod::ForkServer);
}

/// Spawn and forkserver children get only the descriptors they are given, as in Python: one
/// this process left inheritable (no `FD_CLOEXEC`) does not reach them. (A forked child is
/// a copy of this process and has every descriptor, as in Python.)
fn stray_inheritable_descriptor_is_not_inherited(method: StartMethod) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let _g = common::guard();
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(
        unsafe { libc::pipe(fds.as_mut_ptr()) },
        0,
        "pipe without O_CLOEXEC"
    );
    // SAFETY: pipe(2) just opened both; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pipe = std::fs::read_link(format!("/proc/self/fd/{}", read.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let child = builder(method).start(open_descriptors, ()).unwrap();
    let open = child.join().unwrap();
    assert!(
        !open.contains(&pipe),
        "the child has {open:?}, including the stray pipe {pipe}"
    );
    drop((read, write));
}

#[test]
fn spawn_child_does_not_inherit_a_stray_descriptor() {
    stray_inheritable_descriptor_is_not_inherited(StartMethod::Spawn);
}

#[test]
fn forkserver_child_does_not_inherit_a_stray_descriptor() {
    stray_inheritable_descriptor_is_not_inherited(StartMethod::ForkServer);
}

fn handle_reports_the_start_method(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(square, 1).unwrap();
    assert_eq!(child.start_method(), method);
    child.join().unwrap();
}

#[test]
fn start_macro_without_a_builder_uses_the_default_settings() {
    let _g = common::guard();
    let base = 40u64;
    let child = multiproc::start!((base) || base + 2).unwrap();
    assert_eq!(child.start_method(), get_start_method());
    assert_eq!(child.join().unwrap(), 42);
}

#[test]
fn builder_fork_runs_a_capturing_closure() {
    let _g = common::guard();
    let words = ["a".to_string(), "b".to_string(), "c".to_string()];
    let separator = String::from("-");
    let child = ProcessBuilder::new()
        .fork(move || words.join(&separator))
        .unwrap();
    assert_eq!(child.join().unwrap(), "a-b-c");
}

#[test]
fn builder_fork_uses_fork_whatever_method_was_chosen() {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .fork(|| 7)
        .unwrap();
    assert_eq!(child.start_method(), StartMethod::Fork);
    assert_eq!(child.join().unwrap(), 7);
}

#[test]
fn default_start_method_is_forkserver() {
    let _g = common::guard();
    assert_eq!(get_start_method(), StartMethod::ForkServer);
    let child = multiproc::Process::start(square, 3).unwrap();
    assert_eq!(child.start_method(), StartMethod::ForkServer);
    assert_eq!(child.join().unwrap(), 9);
}

#[test]
fn set_start_method_changes_the_default_for_builders() {
    let _g = common::guard();
    /// Puts the default back even if the test fails, for the tests that run after it.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            set_start_method(StartMethod::ForkServer);
        }
    }
    let _restore = Restore;
    set_start_method(StartMethod::Spawn);
    assert_eq!(get_start_method(), StartMethod::Spawn);
    let child = ProcessBuilder::new().start(square, 4).unwrap();
    assert_eq!(child.start_method(), StartMethod::Spawn);
    assert_eq!(child.join().unwrap(), 16);
}

#[test]
fn start_method_names_are_pythons() {
    let _g = common::guard();
    for (method, name) in [
        (StartMethod::Fork, "fork"),
        (StartMethod::Spawn, "spawn"),
        (StartMethod::ForkServer, "forkserver"),
    ] {
        assert_eq!(method.as_str(), name);
        assert_eq!(method.to_string(), name);
        assert_eq!(name.parse::<StartMethod>().unwrap(), method);
    }
    assert!(matches!(
        "threads".parse::<StartMethod>(),
        Err(ProcessError::Start(_))
    ));
    assert_eq!(StartMethod::all().len(), 3);
}

// ---------------------------------------------------------------------------------------
// Who is who

fn default_names_count_up_as_process_n(method: StartMethod) {
    let _g = common::guard();
    let first = builder(method).start(own_name, ()).unwrap();
    let second = builder(method).start(own_name, ()).unwrap();
    let n: u32 = first
        .name()
        .strip_prefix("Process-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("default name {:?} is not Process-N", first.name()));
    assert_eq!(second.name(), format!("Process-{}", n + 1));
    let (first_name, second_name) = (first.name().to_string(), second.name().to_string());
    assert_eq!(first.join().unwrap(), first_name);
    assert_eq!(second.join().unwrap(), second_name);
}

fn custom_name_is_used_by_the_handle_and_the_child(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .name("worker-7")
        .start(own_name, ())
        .unwrap();
    assert_eq!(child.name(), "worker-7");
    assert_eq!(child.join().unwrap(), "worker-7");
}

fn child_pid_differs_from_ours_and_matches_the_childs_own(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(own_pids, ()).unwrap();
    let pid = child.pid();
    assert_ne!(pid, std::process::id());
    assert_eq!(child.join().unwrap(), (pid, pid));
}

fn daemon_flag_is_seen_by_the_handle_and_the_child(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .daemon(true)
        .start(own_daemon_flag, ())
        .unwrap();
    assert!(child.daemon());
    assert!(child.join().unwrap());
}

fn children_are_not_daemonic_by_default(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(own_daemon_flag, ()).unwrap();
    assert!(!child.daemon());
    assert!(!child.join().unwrap());
}

#[test]
fn current_process_in_the_main_process_is_main_process() {
    let _g = common::guard();
    let me = current_process();
    assert_eq!(me.name, "MainProcess");
    assert_eq!(me.pid, std::process::id());
    assert!(!me.daemon);
}

#[test]
fn parent_process_of_the_main_process_is_none() {
    let _g = common::guard();
    assert!(parent_process().is_none());
}

fn parent_process_in_a_child_is_the_starting_process(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(parent_seen_from_child, ()).unwrap();
    assert_eq!(
        child.join().unwrap(),
        Some((std::process::id(), "MainProcess".to_string(), true))
    );
}

fn grandchild_is_named_and_parented_after_its_parent(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(start_grandchild, method.as_str().to_string())
        .unwrap();
    let (child_name, child_pid) = (child.name().to_string(), child.pid());
    let (handle_name, (own_name, parent_pid, parent_name)) = child.join().unwrap();
    assert_eq!(handle_name, format!("{child_name}:1"));
    assert_eq!(own_name, handle_name);
    assert_eq!(parent_pid, child_pid);
    assert_eq!(parent_name, child_name);
}

fn active_children_lists_a_running_child_but_not_a_joined_one(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = builder(method).start(wait_for_go, there).unwrap();
    let pid = child.pid();
    let running = active_children();
    assert!(
        running
            .iter()
            .any(|c| c.pid == pid && c.name == child.name() && !c.daemon),
        "{pid} not in {running:?}"
    );
    here.send(&()).unwrap();
    child.join().unwrap();
    let after = active_children();
    assert!(
        after.iter().all(|c| c.pid != pid),
        "{pid} still in {after:?}"
    );
}

/// The CPUs listed in `Cpus_allowed_list` of `/proc/self/status` (e.g. `0-3,8`).
fn allowed_cpus() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim();
    list.split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

#[test]
fn cpu_count_is_at_least_one_and_at_most_the_allowed_cpus() {
    let _g = common::guard();
    let n = cpu_count();
    assert!(n >= 1);
    assert!(n <= allowed_cpus(), "{n} > {}", allowed_cpus());
}

// ---------------------------------------------------------------------------------------
// Waiting for a child

fn join_timeout_returns_on_time_while_the_child_runs(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(sleep_ms, 10_000).unwrap();
    let started = Instant::now();
    assert!(!child.join_timeout(Duration::from_millis(100)).unwrap());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100),
        "returned early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(1), "returned late: {waited:?}");
    assert!(child.is_alive());
    assert_eq!(child.exitcode(), None);
    child.kill().unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
}

fn join_timeout_returns_true_once_the_child_has_ended(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(square, 2).unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert!(!child.is_alive());
    assert_eq!(child.exitcode(), Some(0));
}

fn join_after_join_timeout_still_returns_the_value(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(square, 5).unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.join().unwrap(), 25);
}

fn wait_returns_a_process_once_it_has_ended(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = builder(method).start(wait_for_go, there).unwrap();
    assert!(
        wait(&[&child], Some(Duration::from_millis(50)))
            .unwrap()
            .is_empty()
    );
    here.send(&()).unwrap();
    assert_eq!(wait(&[&child], Some(PROMPTLY)).unwrap(), vec![0]);
    child.join().unwrap();
}

fn report_then_wait_for_go(mut conn: Connection) {
    conn.send(&"ready").unwrap();
    let _ = conn.recv::<()>();
}

#[test]
fn wait_on_a_connection_and_a_process_reports_the_ready_ones() {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = multiproc::Process::start(report_then_wait_for_go, there).unwrap();
    let both: [&dyn AsFd; 2] = [&here, &child];
    // A message is ready; the process still runs.
    assert_eq!(wait(&both, Some(PROMPTLY)).unwrap(), vec![0]);
    assert_eq!(here.recv::<String>().unwrap(), "ready");
    here.send(&()).unwrap();
    assert_eq!(wait(&[&child], Some(PROMPTLY)).unwrap(), vec![0]);
    // The process has ended, and its end of the pipe is closed (end of file is ready).
    let both: [&dyn AsFd; 2] = [&here, &child];
    assert_eq!(wait(&both, Some(Duration::ZERO)).unwrap(), vec![0, 1]);
    child.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// How a child ends

fn terminate_ends_the_child_with_sigterm(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(sleep_ms, 60_000).unwrap();
    let pid = child.pid();
    child.terminate().unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(-15));
    match child.join() {
        Err(
            e @ ProcessError::Signaled {
                signal: 15,
                signal_name: "SIGTERM",
                ..
            },
        ) => {
            assert_eq!(e.exitcode(), Some(-15));
            assert!(matches!(e, ProcessError::Signaled { pid: p, .. } if p == pid));
        }
        other => panic!("expected death by SIGTERM, got {other:?}"),
    }
}

fn kill_ends_the_child_with_sigkill(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(sleep_ms, 60_000).unwrap();
    child.kill().unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(-9));
    match child.join() {
        Err(
            e @ ProcessError::Signaled {
                signal: 9,
                signal_name: "SIGKILL",
                ..
            },
        ) => assert_eq!(e.exitcode(), Some(-9)),
        other => panic!("expected death by SIGKILL, got {other:?}"),
    }
}

fn process_exit_code_is_reported(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).name("quitter").start(exit_with, 3).unwrap();
    let pid = child.pid();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(3));
    match child.join() {
        Err(e @ ProcessError::Exited { code: 3, .. }) => {
            assert_eq!(e.exitcode(), Some(3));
            assert!(
                matches!(&e, ProcessError::Exited { name, pid: p, .. } if name == "quitter" && *p == pid)
            );
        }
        other => panic!("expected exit code 3, got {other:?}"),
    }
}

fn child_killed_by_sigsegv_reports_the_signal(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(die_by_signal, libc::SIGSEGV).unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(-libc::SIGSEGV));
    match child.join() {
        Err(ProcessError::Signaled {
            signal,
            signal_name: "SIGSEGV",
            ..
        }) => assert_eq!(signal, libc::SIGSEGV),
        other => panic!("expected death by SIGSEGV, got {other:?}"),
    }
}

fn child_calling_abort_reports_sigabrt(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(abort_without_core, ()).unwrap();
    match child.join() {
        Err(
            e @ ProcessError::Signaled {
                signal_name: "SIGABRT",
                ..
            },
        ) => assert_eq!(e.exitcode(), Some(-libc::SIGABRT)),
        other => panic!("expected death by SIGABRT, got {other:?}"),
    }
}

fn signalling_a_child_that_has_ended_is_not_an_error(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(square, 6).unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    child.terminate().unwrap();
    child.kill().unwrap();
    assert_eq!(child.join().unwrap(), 36);
}

// ---------------------------------------------------------------------------------------
// Panics and failures inside the child

/// Checks that `result` is the panic of `panicking_task` (or an equivalent closure) in the
/// child `pid` named `name`.
fn assert_is_reported_panic<R: std::fmt::Debug>(
    result: Result<R, ProcessError>,
    pid: u32,
    name: &str,
    function: &str,
) {
    let err = result.expect_err("the child panicked");
    assert_eq!(err.exitcode(), Some(1));
    let ProcessError::Panicked(report) = err else {
        panic!("expected a panic report, got {err:?}");
    };
    assert_eq!(report.pid, pid);
    assert_eq!(report.process_name, name);
    let location = report.location.as_ref().expect("a panic location");
    assert_eq!(location.file, file!());
    assert_eq!(
        report.message,
        format!("deliberate panic on line {}", location.line)
    );
    assert!(!report.backtrace.is_empty());
    assert!(
        report.backtrace.contains(function),
        "the backtrace does not mention {function}:\n{}",
        report.backtrace
    );
}

fn panic_in_child_is_reported_with_message_location_and_backtrace(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(panicking_task, ()).unwrap();
    let (pid, name) = (child.pid(), child.name().to_string());
    assert_is_reported_panic(child.join(), pid, &name, "panicking_task");
}

fn panicking_child_exits_with_code_one(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method).start(panicking_task, ()).unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(1));
}

#[test]
fn panic_in_a_forked_closure_is_reported() {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .name("closure")
        .fork(|| -> u32 { panic!("deliberate panic on line {}", line!()) })
        .unwrap();
    let pid = child.pid();
    assert_is_reported_panic(
        child.join(),
        pid,
        "closure",
        "panic_in_a_forked_closure_is_reported",
    );
}

fn panic_while_encoding_the_return_value_is_reported_as_a_panic(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(return_value_that_panics_when_encoded, ())
        .unwrap();
    match child.join() {
        Err(ProcessError::Panicked(report)) => {
            assert_eq!(report.message, "cannot encode this value");
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
}

fn argument_that_cannot_be_decoded_gives_task_failed(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .start(takes_undecodable, FailsToDecode)
        .unwrap();
    match child.join() {
        Err(e @ ProcessError::TaskFailed { .. }) => {
            assert_eq!(e.exitcode(), Some(1));
            assert!(e.to_string().contains("FailsToDecode"), "{e}");
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
}

fn argument_that_cannot_be_encoded_is_a_start_error(method: StartMethod) {
    let _g = common::guard();
    match builder(method).start(takes_unencodable, FailsToEncode) {
        Err(e @ ProcessError::Codec(_)) => {
            assert!(e.to_string().contains("FailsToEncode"), "{e}")
        }
        other => panic!("expected an encoding error, got {other:?}"),
    }
}

#[test]
fn return_value_that_cannot_be_encoded_gives_task_failed() {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .start(return_value_that_fails_to_encode, ())
        .unwrap();
    assert!(child.join_timeout(PROMPTLY).unwrap());
    assert_eq!(child.exitcode(), Some(1), "the task failed, so exit code 1");
    match child.join() {
        Err(e @ ProcessError::TaskFailed { .. }) => {
            assert!(e.to_string().contains("FailsToEncode"), "{e}")
        }
        other => panic!("expected TaskFailed naming the type, got {other:?}"),
    }
}

#[test]
#[ignore = "library gap: postcard replaces a Serialize/Deserialize impl's custom error message \
            with \"Serde Serialization Error\", so CodecError loses the reason"]
fn codec_errors_carry_the_custom_message_of_the_failing_impl() {
    let _g = common::guard();
    let encode = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .start(takes_unencodable, FailsToEncode)
        .unwrap_err();
    assert!(
        encode.to_string().contains("refuses to be encoded"),
        "{encode}"
    );
    let decode = ProcessBuilder::new()
        .start_method(StartMethod::Spawn)
        .start(takes_undecodable, FailsToDecode)
        .unwrap()
        .join()
        .unwrap_err();
    assert!(
        decode.to_string().contains("refuses to be decoded"),
        "{decode}"
    );
}

// ---------------------------------------------------------------------------------------
// Lifetime of children

fn dropped_handle_leaves_no_zombie(method: StartMethod) {
    let _g = common::guard();
    let (mut here, there) = pipe().unwrap();
    let child = builder(method).start(wait_for_go, there).unwrap();
    let pid = child.pid();
    let started = common::proc_stat(pid).expect("the child runs").start_time;
    drop(child);
    here.send(&()).unwrap();
    assert!(
        common::wait_until(Instant::now() + PROMPTLY, || common::is_reaped(
            pid, started
        )),
        "the child was not reaped: {:?}",
        common::proc_stat(pid)
    );
}

fn daemonic_child_cannot_start_children(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .daemon(true)
        .start(try_to_start_children, ())
        .unwrap();
    assert_eq!(
        child.join().unwrap(),
        ("refused".to_string(), "refused".to_string())
    );
}

/// A non-daemonic child (forked) starts a daemonic grandchild with `method`, then is killed
/// with SIGKILL; the grandchild must die with it. Returns nothing; panics on failure.
fn daemonic_grandchild_dies_when_its_parent_is_killed(method: StartMethod) {
    let _g = common::guard();
    let (mut from_parent, to_test) = pipe().unwrap();
    let (mut from_grandchild, to_grandchild) = pipe().unwrap();
    let parent = ProcessBuilder::new()
        .name("intermediate")
        .fork(move || {
            let mut to_test = to_test;
            let grandchild = builder(method)
                .daemon(true)
                .start(report_pid_then_sleep, to_grandchild)
                .unwrap();
            to_test
                .send(&(grandchild.pid(), multiproc::forkserver_pid()))
                .unwrap();
            std::thread::sleep(Duration::from_secs(60));
        })
        .unwrap();
    let (grandchild, server): (u32, Option<u32>) = from_parent.recv().unwrap();
    // The grandchild runs its task, so it is past its start-up.
    assert_eq!(from_grandchild.recv::<u32>().unwrap(), grandchild);
    let grandchild = common::proc_stat(grandchild).expect("the grandchild runs");
    let server = server.map(|pid| common::proc_stat(pid).expect("the fork server runs"));
    assert_eq!(server.is_some(), method == StartMethod::ForkServer);

    parent.kill().unwrap();
    assert!(matches!(
        parent.join(),
        Err(ProcessError::Signaled { signal: 9, .. })
    ));

    for (what, p) in std::iter::once(("daemonic grandchild", &grandchild))
        .chain(server.as_ref().map(|s| ("the parent's fork server", s)))
    {
        let ended = common::wait_until(Instant::now() + Duration::from_secs(3), || {
            common::has_ended(p.pid, p.start_time)
        });
        if !ended {
            common::kill_exact(p, libc::SIGKILL);
            panic!("{what} (pid {}) outlived its killed parent", p.pid);
        }
    }
    // If its status is still visible (pid 1 need not reap orphans), the kernel killed it.
    if let Some(status) = common::proc_stat(grandchild.pid)
        .filter(|p| p.start_time == grandchild.start_time)
        .and_then(|p| p.exit_code)
    {
        assert_eq!(status & 0x7f, libc::SIGKILL, "wait status {status:#x}");
    }
    assert!(matches!(
        from_grandchild.recv::<u32>(),
        Err(multiproc::ConnectionError::Eof)
    ));
}

fn panic_with_stderr_closed(_: ()) -> u8 {
    // SAFETY: closing descriptor 2 of this child; nothing else in it uses stderr afterwards
    // except the panic hook, whose writes must then fail quietly.
    unsafe { libc::close(2) };
    panic!("nobody can read this on stderr");
}

fn panic_report_survives_a_closed_stderr(method: StartMethod) {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .start_method(method)
        .start(panic_with_stderr_closed, ())
        .unwrap();
    match child.join() {
        Err(ProcessError::Panicked(p)) => {
            assert_eq!(p.message, "nobody can read this on stderr");
            assert!(p.location.is_some());
        }
        other => panic!("expected the panic report, got {other:?}"),
    }
}

fn args_and_name(_: ()) -> (Vec<String>, String) {
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    (std::env::args().collect(), comm.trim_end().to_string())
}

/// Python passes `sys.argv` on to its children; a child also shows in `ps`/`top` under its
/// multiproc name.
fn child_sees_the_parents_arguments_and_is_named_after_itself(method: StartMethod) {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .start_method(method)
        .name("argsy-worker")
        .start(args_and_name, ())
        .unwrap();
    let (args, comm) = child.join().unwrap();
    assert_eq!(args, std::env::args().collect::<Vec<_>>());
    assert_eq!(comm, "argsy-worker");
}

fn recurse_forever(depth: u64) -> u64 {
    let frame = [depth; 512];
    std::hint::black_box(&frame);
    if std::hint::black_box(depth) == u64::MAX {
        return 0; // never: the stack runs out first
    }
    recurse_forever(depth + 1) + frame[7]
}

fn overflow_the_stack(_: ()) -> u64 {
    recurse_forever(0)
}

fn write_through_a_bad_pointer(_: ()) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid rlimit; the write is the crash this test wants (address
    // 8 is never mapped).
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        std::ptr::write_volatile(std::ptr::without_provenance_mut::<u64>(8), 1);
    }
}

/// A stack overflow in a child is reported as std reports it (message, SIGABRT) whatever
/// the start method, and any other fault still ends the child with SIGSEGV.
fn a_stack_overflow_aborts_and_a_bad_pointer_segfaults(method: StartMethod) {
    let _g = common::guard();
    let overflowed = ProcessBuilder::new()
        .start_method(method)
        .start(overflow_the_stack, ())
        .unwrap()
        .join();
    assert!(
        matches!(overflowed, Err(ProcessError::Signaled { signal, .. }) if signal == libc::SIGABRT),
        "{overflowed:?}"
    );
    let faulted = ProcessBuilder::new()
        .start_method(method)
        .start(write_through_a_bad_pointer, ())
        .unwrap()
        .join();
    assert!(
        matches!(faulted, Err(ProcessError::Signaled { signal, .. }) if signal == libc::SIGSEGV),
        "{faulted:?}"
    );
}

per_start_method!(
    a_stack_overflow_aborts_and_a_bad_pointer_segfaults,
    child_sees_the_parents_arguments_and_is_named_after_itself,
    panic_report_survives_a_closed_stderr,
    join_returns_the_task_value,
    start_run_runs_a_type_implementing_run,
    non_capturing_closure_runs_as_a_task,
    unannotated_closure_takes_its_types_from_the_argument,
    start_macro_sends_the_named_variables_to_the_child,
    start_macro_takes_mut_names_and_a_result_type,
    large_return_value_comes_back_on_join,
    handle_reports_the_start_method,
    a_child_defaults_to_its_own_start_method_and_so_do_its_children,
    large_argument_reaches_the_child,
    many_children_run_at_once,
    children_can_be_started_from_several_threads_at_once,
    default_names_count_up_as_process_n,
    custom_name_is_used_by_the_handle_and_the_child,
    child_pid_differs_from_ours_and_matches_the_childs_own,
    daemon_flag_is_seen_by_the_handle_and_the_child,
    children_are_not_daemonic_by_default,
    parent_process_in_a_child_is_the_starting_process,
    grandchild_is_named_and_parented_after_its_parent,
    active_children_lists_a_running_child_but_not_a_joined_one,
    join_timeout_returns_on_time_while_the_child_runs,
    join_timeout_returns_true_once_the_child_has_ended,
    join_after_join_timeout_still_returns_the_value,
    wait_returns_a_process_once_it_has_ended,
    terminate_ends_the_child_with_sigterm,
    kill_ends_the_child_with_sigkill,
    process_exit_code_is_reported,
    child_killed_by_sigsegv_reports_the_signal,
    child_calling_abort_reports_sigabrt,
    signalling_a_child_that_has_ended_is_not_an_error,
    panic_in_child_is_reported_with_message_location_and_backtrace,
    panicking_child_exits_with_code_one,
    panic_while_encoding_the_return_value_is_reported_as_a_panic,
    dropped_handle_leaves_no_zombie,
    daemonic_child_cannot_start_children,
    daemonic_grandchild_dies_when_its_parent_is_killed,
);

/// Tests that only make sense for the start methods that encode the task (with fork, the
/// child gets the argument by copy of memory).
mod encoded_tasks {
    use super::*;

    #[test]
    fn spawn_argument_that_cannot_be_decoded_gives_task_failed() {
        argument_that_cannot_be_decoded_gives_task_failed(StartMethod::Spawn);
    }

    #[test]
    fn forkserver_argument_that_cannot_be_decoded_gives_task_failed() {
        argument_that_cannot_be_decoded_gives_task_failed(StartMethod::ForkServer);
    }

    #[test]
    fn spawn_argument_that_cannot_be_encoded_is_a_start_error() {
        argument_that_cannot_be_encoded_is_a_start_error(StartMethod::Spawn);
    }

    #[test]
    fn forkserver_argument_that_cannot_be_encoded_is_a_start_error() {
        argument_that_cannot_be_encoded_is_a_start_error(StartMethod::ForkServer);
    }
}

fn triple(x: u32) -> u32 {
    x * 3
}

#[test]
fn context_starts_children_with_its_method_and_leaves_the_default_alone() {
    let _g = common::guard();
    let default = multiproc::get_start_method();
    for method in StartMethod::all() {
        let ctx = multiproc::get_context(*method);
        let child = ctx.start(triple, 5).unwrap();
        assert_eq!(child.start_method(), *method);
        assert_eq!(child.join().unwrap(), 15);
    }
    assert_eq!(multiproc::get_start_method(), default);
}
