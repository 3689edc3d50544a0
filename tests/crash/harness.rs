//! The crash suite's machinery: seeds and per-round random generators, the rounds loop, the
//! watchdog that turns a hang into a failure with the state of every process, and helpers to
//! start, kill and join the processes of a round.
//!
//! Environment:
//! - `MULTIPROC_CRASH_SEED`: the run's seed (decimal or `0x` hex); default: from the clock.
//! - `MULTIPROC_CRASH_ROUNDS`: rounds per test (default [`DEFAULT_ROUNDS`], or
//!   [`DEFAULT_ROUNDS_SLOW`] for the slow tests).
//! - `MULTIPROC_CRASH_ROUND`: run only this round (replay of a failure).
//! - `MULTIPROC_CRASH_METHODS`: start methods, comma-separated (`fork,spawn,forkserver`, the
//!   default); round `r` uses method `r % n`.
//! - `MULTIPROC_CRASH_DEADLINE`: the watchdog's bound per round, in seconds (default 20).
//! - `MULTIPROC_CRASH_VERBOSE`: print every round's events, not only a failed round's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use multiproc::{Event, Process, ProcessBuilder, ProcessError, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::common;

/// Rounds per test when `MULTIPROC_CRASH_ROUNDS` is not set, for the quick tests (each
/// start method 10 times).
pub const DEFAULT_ROUNDS: u64 = 30;
/// The same for the tests that move tens of MiB or wait for a barrier timeout per round.
pub const DEFAULT_ROUNDS_SLOW: u64 = 6;
/// The watchdog's bound per round when `MULTIPROC_CRASH_DEADLINE` is not set.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);
/// How long the parent's own waits sleep between two looks (they also watch for an abort).
const TICK: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------
// Configuration and random numbers

struct Config {
    seed: u64,
    rounds: Vec<u64>,
    methods: Vec<StartMethod>,
    deadline: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_u64(name: &str, text: &str) -> u64 {
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}"))
}

fn config(default_rounds: u64) -> Config {
    let seed = match env("MULTIPROC_CRASH_SEED") {
        Some(s) => parse_u64("MULTIPROC_CRASH_SEED", &s),
        None => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            splitmix(nanos ^ u64::from(std::process::id()).rotate_left(32))
        }
    };
    let rounds = match env("MULTIPROC_CRASH_ROUND") {
        Some(r) => vec![parse_u64("MULTIPROC_CRASH_ROUND", &r)],
        None => {
            let n = env("MULTIPROC_CRASH_ROUNDS")
                .map(|n| parse_u64("MULTIPROC_CRASH_ROUNDS", &n))
                .unwrap_or(default_rounds);
            (0..n).collect()
        }
    };
    let methods = match env("MULTIPROC_CRASH_METHODS") {
        Some(list) => list
            .split(',')
            .map(|m| match m.trim() {
                "fork" => StartMethod::Fork,
                "spawn" => StartMethod::Spawn,
                "forkserver" => StartMethod::ForkServer,
                other => panic!("MULTIPROC_CRASH_METHODS: unknown start method {other:?}"),
            })
            .collect(),
        None => vec![
            StartMethod::Fork,
            StartMethod::Spawn,
            StartMethod::ForkServer,
        ],
    };
    let deadline = env("MULTIPROC_CRASH_DEADLINE")
        .map(|s| Duration::from_secs(parse_u64("MULTIPROC_CRASH_DEADLINE", &s)))
        .unwrap_or(DEFAULT_DEADLINE);
    Config {
        seed,
        rounds,
        methods,
        deadline,
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator (splitmix64), derived from (seed, test, round).
pub struct Rng(u64);

impl Rng {
    fn new(seed: u64, test: &str, round: u64) -> Rng {
        // FNV-1a of the test name.
        let name = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(splitmix(seed ^ splitmix(name ^ splitmix(round))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// An index in `0..n`.
    pub fn pick(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

// ---------------------------------------------------------------------------------------------
// Time

/// Busy-wait `us` microseconds: the deliberate kill delay (a sleep is far coarser).
pub fn spin_us(us: u64) {
    let end = Instant::now() + Duration::from_micros(us);
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// What a round records, shared with the watchdog

#[derive(Default)]
struct Record {
    roles: HashMap<u32, String>,
    notes: Vec<String>,
}

/// Figures a round reports for the summary (and `docs/RELIABILITY.md`).
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    /// Processes killed by the test.
    pub kills: u64,
    /// Items (messages, queue items, tasks, proxy calls) whose fate was checked.
    pub items: u64,
    /// Acknowledged items missing with no killed consumer to account for them (a bug).
    pub lost: u64,
    /// Acknowledged items missing but accounted for by a killed consumer (allowed).
    pub dropped_with_victim: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.kills += o.kills;
        self.items += o.items;
        self.lost += o.lost;
        self.dropped_with_victim += o.dropped_with_victim;
    }
}

/// Kills processes from any thread of the round and records what it did.
#[derive(Clone)]
pub struct Killer {
    record: Arc<Mutex<Record>>,
    started: Instant,
}

impl Killer {
    pub fn note(&self, text: impl Into<String>) {
        let at = self.started.elapsed();
        let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        rec.notes.push(format!("[{at:>10.3?}] {}", text.into()));
    }

    pub fn watch(&self, pid: u32, role: &str) {
        let mut rec = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        rec.roles.insert(pid, role.to_string());
    }

    /// Pin the process now (a pidfd), to kill it later without hitting a reused pid.
    pub fn arm(&self, pid: u32, role: &str) -> Armed {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) } as i32;
        Armed {
            fd,
            pid,
            role: role.to_string(),
            killer: self.clone(),
        }
    }
}

/// A process pinned by a pidfd, ready to be killed.
pub struct Armed {
    fd: i32,
    pid: u32,
    role: String,
    killer: Killer,
}

impl Armed {
    /// SIGKILL the pinned process; `false` if it was already gone. `why` goes in the notes.
    pub fn fire(self, why: &str) -> bool {
        let sent = self.fd >= 0 && {
            // SAFETY: `fd` is our pidfd; a null siginfo is allowed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    self.fd,
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            rc == 0
        };
        self.killer.note(format!(
            "SIGKILL {} (pid {}) {why}: {}",
            self.role,
            self.pid,
            if sent { "sent" } else { "already gone" }
        ));
        sent
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if self.fd >= 0 {
            // SAFETY: our own descriptor, closed once.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// One round: its random generator, start method, and helpers.
pub struct Round {
    pub method: StartMethod,
    pub rng: Rng,
    pub stats: Stats,
    pub killer: Killer,
    aborted: Arc<AtomicBool>,
}

impl Round {
    pub fn note(&self, text: impl Into<String>) {
        self.killer.note(text);
    }

    /// Start `f(arg)` in a child with this round's start method, known to the watchdog as
    /// `role`.
    pub fn start<A, R>(&self, role: &str, f: fn(A) -> R, arg: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        let p = ProcessBuilder::new()
            .name(role)
            .start_method(self.method)
            .start(f, arg)
            .unwrap_or_else(|e| panic!("starting {role} with {}: {e}", self.method));
        self.killer.watch(p.pid(), role);
        p
    }

    /// Fail (unwind) if the watchdog gave up on this round.
    pub fn check_abort(&self) {
        if self.aborted.load(Ordering::SeqCst) {
            panic!("round aborted by the watchdog");
        }
    }

    /// Wait for a condition that another process makes true; the watchdog bounds it.
    pub fn wait_until(&self, mut cond: impl FnMut() -> bool) {
        while !cond() {
            self.check_abort();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Wait until `event` is set or `gone()` (the process that would set it ended).
    pub fn wait_event_or(&self, event: &Event, mut gone: impl FnMut() -> bool) {
        while !event.wait_timeout(TICK) {
            if gone() {
                return;
            }
            self.check_abort();
        }
    }

    /// Wait until the process is asleep in a futex wait (its main thread).
    pub fn wait_in_futex(&self, pid: u32) {
        self.wait_until(|| in_syscall(pid, &[202, 449]) || !alive(pid));
    }

    /// Join a child (bounded by the watchdog).
    pub fn join<R: Serialize + DeserializeOwned + 'static>(
        &self,
        p: Process<R>,
    ) -> Result<R, ProcessError> {
        loop {
            match p.join_timeout(TICK) {
                Ok(true) => break,
                Ok(false) => self.check_abort(),
                Err(e) => return Err(e),
            }
        }
        p.join()
    }
}

/// Whether the process (not yet reaped) is still running.
pub fn alive(pid: u32) -> bool {
    proc_field(pid, "stat").is_some_and(|s| !matches!(stat_state(&s), Some('Z' | 'X' | 'x')))
}

fn in_syscall(pid: u32, numbers: &[i64]) -> bool {
    proc_field(pid, "syscall")
        .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
        .is_some_and(|n| numbers.contains(&n))
}

fn proc_field(pid: u32, field: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{field}")).ok()
}

fn stat_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// A child that was SIGKILLed (by us).
pub fn killed<R>(r: &Result<R, ProcessError>) -> bool {
    matches!(r, Err(ProcessError::Signaled { signal, .. }) if *signal == libc::SIGKILL)
}

// ---------------------------------------------------------------------------------------------
// Processes: listing, dumping, killing

fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.filter_map(Result::ok) {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = proc_field(pid, "stat").and_then(|s| {
                s.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            }) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &c in children.get(&pid).into_iter().flatten() {
            if seen.insert(c) {
                found.push(c);
                todo.push(c);
            }
        }
    }
    found.sort_unstable();
    found
}

fn describe_task(out: &mut String, indent: &str, dir: &str) {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
    let comm = stat
        .find('(')
        .zip(stat.rfind(')'))
        .map(|(a, b)| stat[a + 1..b].to_string())
        .unwrap_or_default();
    let state = stat_state(&stat).unwrap_or('?');
    let wchan = std::fs::read_to_string(format!("{dir}/wchan")).unwrap_or_default();
    let syscall = std::fs::read_to_string(format!("{dir}/syscall")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{indent}{comm:?} state {state} wchan {:?} syscall {}",
        wchan.trim(),
        syscall.trim()
    );
}

/// The state of this process and every descendant: per process its stat state, wchan and
/// syscall, and the same for each of its threads.
fn dump(record: &Record) -> String {
    let me = std::process::id();
    let helpers = [
        multiproc::forkserver_pid(),
        multiproc::resource_tracker_pid(),
    ];
    let mut out = String::new();
    let mut pids = vec![me];
    pids.extend(descendants(me));
    for pid in pids {
        let role = if pid == me {
            "test process".to_string()
        } else if helpers.contains(&Some(pid)) {
            "library helper".to_string()
        } else {
            record
                .roles
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| "?".into())
        };
        let _ = write!(out, "  pid {pid} [{role}] ");
        describe_task(&mut out, "", &format!("/proc/{pid}"));
        let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        tids.sort_unstable();
        for tid in tids {
            let _ = write!(out, "      task {tid}: ");
            describe_task(&mut out, "", &format!("/proc/{pid}/task/{tid}"));
        }
    }
    let _ = writeln!(out, "  round events:");
    for n in &record.notes {
        let _ = writeln!(out, "    {n}");
    }
    out
}

/// SIGKILL every descendant except the library's long-lived helpers.
fn kill_descendants() {
    let helpers = [
        multiproc::forkserver_pid(),
        multiproc::resource_tracker_pid(),
    ];
    for pid in descendants(std::process::id()) {
        if helpers.contains(&Some(pid)) {
            continue;
        }
        if let Some(p) = common::proc_stat(pid) {
            common::kill_exact(&p, libc::SIGKILL);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rounds loop

/// Run `body` for every configured round of `test`, each under the watchdog.
pub fn run(test: &'static str, body: fn(&mut Round)) {
    run_rounds(test, DEFAULT_ROUNDS, body);
}

/// [`run`] for a slow test: fewer rounds by default.
pub fn run_slow(test: &'static str, body: fn(&mut Round)) {
    run_rounds(test, DEFAULT_ROUNDS_SLOW, body);
}

fn run_rounds(test: &'static str, default_rounds: u64, body: fn(&mut Round)) {
    let _g = common::guard();
    let cfg = config(default_rounds);
    eprintln!(
        "crash {test}: MULTIPROC_CRASH_SEED={} ({} round(s) from {}, methods {:?}, deadline {:?})",
        cfg.seed,
        cfg.rounds.len(),
        cfg.rounds.first().copied().unwrap_or(0),
        cfg.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        cfg.deadline
    );
    let mut totals: BTreeMap<&'static str, (u64, Stats)> = BTreeMap::new();
    let started = Instant::now();
    for (done, &round) in cfg.rounds.iter().enumerate() {
        // A long run says how far it got (every 1,000 rounds), so an operator can tell a
        // slow run from a stuck one (the watchdog bounds each round anyway).
        if done > 0 && done % 1000 == 0 {
            eprintln!(
                "crash {test}: {done} of {} rounds passed after {:.0?}",
                cfg.rounds.len(),
                started.elapsed()
            );
        }
        let method = cfg.methods[(round % cfg.methods.len() as u64) as usize];
        let replay = format!(
            "MULTIPROC_CRASH_SEED={} MULTIPROC_CRASH_ROUND={round} MULTIPROC_CRASH_METHODS={} \
             cargo nextest run --test crash {test}",
            cfg.seed,
            method.as_str()
        );
        let record = Arc::new(Mutex::new(Record::default()));
        let aborted = Arc::new(AtomicBool::new(false));
        let mut r = Round {
            method,
            rng: Rng::new(cfg.seed, test, round),
            stats: Stats::default(),
            killer: Killer {
                record: record.clone(),
                started: Instant::now(),
            },
            aborted: aborted.clone(),
        };
        r.note(format!("round {round} of {test} with {method}"));
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("{test} round {round}"))
            .spawn(move || {
                let result = panic::catch_unwind(AssertUnwindSafe(|| {
                    body(&mut r);
                    r.stats
                }));
                let _ = tx.send(());
                result
            })
            .expect("starting the round's thread");
        match rx.recv_timeout(cfg.deadline) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
                Ok(Ok(stats)) => {
                    if env("MULTIPROC_CRASH_VERBOSE").is_some() {
                        let rec = record.lock().unwrap_or_else(PoisonError::into_inner);
                        eprintln!("round {round} ({method}): {stats:?}");
                        for n in &rec.notes {
                            eprintln!("    {n}");
                        }
                    }
                    let t = totals.entry(method.as_str()).or_default();
                    t.0 += 1;
                    t.1.add(stats);
                }
                Ok(Err(payload)) | Err(payload) => {
                    let rec = record.lock().unwrap_or_else(PoisonError::into_inner);
                    eprintln!(
                        "crash {test}: round {round} ({method}) FAILED (seed {}).\n\
                         Replay: {replay}\nState at the failure:\n{}",
                        cfg.seed,
                        dump(&rec)
                    );
                    drop(rec);
                    kill_descendants();
                    panic::resume_unwind(payload);
                }
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let report = {
                    let rec = record.lock().unwrap_or_else(PoisonError::into_inner);
                    dump(&rec)
                };
                aborted.store(true, Ordering::SeqCst);
                kill_descendants();
                // Killing the children ends the round's waits; give its thread the time to
                // unwind, so its processes are reaped before the guard looks.
                let ended = rx.recv_timeout(Duration::from_secs(10)).is_ok();
                if ended {
                    let _ = handle.join();
                }
                panic!(
                    "crash {test}: HANG in round {round} ({method}, seed {}): not finished \
                     within {:?}{}.\nReplay: {replay}\nState of every process:\n{report}",
                    cfg.seed,
                    cfg.deadline,
                    if ended {
                        ""
                    } else {
                        " (the round's thread was still blocked 10 s after the kills)"
                    }
                );
            }
        }
    }
    for (method, (rounds, s)) in &totals {
        eprintln!(
            "crash summary: test={test} method={method} rounds={rounds} hangs=0 kills={} \
             items={} lost={} dropped_with_killed_consumer={}",
            s.kills, s.items, s.lost, s.dropped_with_victim
        );
    }
    eprintln!("crash {test}: done in {:?}", started.elapsed());
}
