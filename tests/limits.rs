//! Resource limits: set in the child before its task runs, with every start method; going
//! past the memory or CPU limit is an error naming the limit, in a process and in a pool;
//! `max_memory_per_child` retires workers that grew. Behaviours that depend on the start
//! method are checked for each of them (`per_start_method!` at the end of the file).

#[macro_use]
mod common;

use std::time::Duration;

use multiproc::{
    Limit, LimitError, Limits, Pool, PoolError, ProcessBuilder, ProcessError, ProcessPoolExecutor,
    StartMethod,
};

/// An address-space limit a child can start under (its allocator arenas and thread stacks
/// are reserved address space) and that a runaway task reaches in well under a second.
const MEMORY: u64 = 512 << 20;
const ONE_SECOND: Duration = Duration::from_secs(1);

fn builder(method: StartMethod) -> ProcessBuilder {
    ProcessBuilder::new().start_method(method)
}

// ---------------------------------------------------------------------------------------
// Tasks run by the children of these tests.

/// Allocates 1 MiB after 1 MiB until an allocation fails. Zeroed allocations of this size
/// are fresh mappings the kernel fills on first touch, so the address space grows to the
/// limit at once without using (or spending time on) real memory.
fn allocate_without_bound(_: u64) -> u64 {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Burns CPU time until stopped.
fn spin(_: u64) -> u64 {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn double(x: u64) -> u64 {
    x * 2
}

/// A line of `/proc/self/limits`, by its label (e.g. "Max open files"): soft and hard.
fn own_limit(label: String) -> (String, String) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("reading /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with(&label))
        .expect("a line for the limit");
    let mut fields = line[label.len()..].split_whitespace();
    let soft = fields.next().unwrap_or_default().to_string();
    let hard = fields.next().unwrap_or_default().to_string();
    (soft, hard)
}

/// This process's nice value (field 19 of `/proc/self/stat`).
fn own_nice(_: ()) -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("reading /proc/self/stat");
    let after_name = stat.rsplit(')').next().expect("a stat line");
    after_name
        .split_whitespace()
        .nth(16)
        .and_then(|f| f.parse().ok())
        .expect("a nice value")
}

/// Keeps `mib` MiB (touched) until the worker exits: a leak.
fn leak(mib: usize) -> u32 {
    let leaked: &'static mut [u8] = Box::leak(vec![1u8; mib << 20].into_boxed_slice());
    std::hint::black_box(leaked);
    std::process::id()
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

// ---------------------------------------------------------------------------------------
// Processes.

fn a_process_past_its_memory_limit_fails_with_memory_limit(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .limits(Limits::new().memory(MEMORY))
        .start(allocate_without_bound, 0)
        .unwrap();
    match child.join() {
        Err(ProcessError::MemoryLimit { limit, .. }) => assert_eq!(limit, MEMORY),
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
}

fn a_process_past_its_cpu_limit_fails_with_cpu_limit(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .limits(Limits::new().cpu_time(ONE_SECOND))
        .start(spin, 0)
        .unwrap();
    match child.join() {
        Err(ProcessError::CpuLimit { limit, .. }) => assert_eq!(limit, ONE_SECOND),
        other => panic!("expected CpuLimit, got {other:?}"),
    }
}

fn a_process_sees_its_open_file_limit(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .limits(Limits::new().open_files(77))
        .start(own_limit, "Max open files".to_string())
        .unwrap();
    assert_eq!(child.join().unwrap(), ("77".to_string(), "77".to_string()));
}

fn a_process_runs_with_its_nice_value(method: StartMethod) {
    let _g = common::guard();
    let child = builder(method)
        .limits(Limits::new().nice(19))
        .start(own_nice, ())
        .unwrap();
    assert_eq!(child.join().unwrap(), 19);
}

#[test]
fn a_forked_closure_runs_under_its_limits() {
    let _g = common::guard();
    let child = ProcessBuilder::new()
        .limits(Limits::new().open_files(33).nice(19))
        .fork(|| (own_limit("Max open files".into()), own_nice(())))
        .unwrap();
    let ((soft, _), nice) = child.join().unwrap();
    assert_eq!((soft.as_str(), nice), ("33", 19));
}

#[test]
fn a_limit_above_the_hard_limit_is_refused_at_start() {
    let _g = common::guard();
    // The test runner's own open-file hard limit; a child may not go above it.
    let (_, hard) = own_limit("Max open files".into());
    let Ok(hard) = hard.parse::<u64>() else {
        return; // unlimited: nothing is above it
    };
    match ProcessBuilder::new()
        .limits(Limits::new().open_files(hard + 1))
        .start(double, 1)
    {
        Err(ProcessError::Limits(LimitError::AboveHardLimit {
            limit: Limit::OpenFiles,
            requested,
            ..
        })) => assert_eq!(requested, hard + 1),
        other => panic!("expected AboveHardLimit, got {other:?}"),
    }
}

#[test]
fn a_nice_value_out_of_range_is_refused_at_start() {
    let _g = common::guard();
    match ProcessBuilder::new()
        .limits(Limits::new().nice(20))
        .start(double, 1)
    {
        Err(ProcessError::Limits(LimitError::OutOfRange {
            limit: Limit::Nice, ..
        })) => {}
        other => panic!("expected OutOfRange, got {other:?}"),
    }
}

#[test]
fn a_process_under_a_memory_limit_that_panics_is_a_panic() {
    let _g = common::guard();
    fn boom(_: ()) {
        panic!("not about memory")
    }
    let child = ProcessBuilder::new()
        .limits(Limits::new().memory(MEMORY))
        .start(boom, ())
        .unwrap();
    assert!(matches!(child.join(), Err(ProcessError::Panicked(_))));
}

#[test]
fn an_abort_under_a_memory_limit_is_not_a_memory_limit() {
    let _g = common::guard();
    fn abort(_: ()) {
        std::process::abort()
    }
    let child = ProcessBuilder::new()
        .limits(Limits::new().memory(MEMORY))
        .start(abort, ())
        .unwrap();
    assert!(matches!(
        child.join(),
        Err(ProcessError::Signaled { signal: 6, .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Pools and executors.

fn a_pool_task_past_the_memory_limit_fails_alone(method: StartMethod) {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .start_method(method)
        .limits(Limits::new().memory(MEMORY))
        .build()
        .unwrap();
    let runaway = pool.apply_async(allocate_without_bound, 0).unwrap();
    let others = pool.map_async(double, 0..20u64).unwrap();
    match runaway.get() {
        Err(PoolError::MemoryLimit { limit, .. }) => assert_eq!(limit, MEMORY),
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    assert_eq!(
        others.get().unwrap(),
        (0..20).map(|x| x * 2).collect::<Vec<_>>()
    );
    // The pool goes on with a new worker.
    assert_eq!(pool.apply(double, 21).unwrap(), 42);
}

/// One start method: how a worker is started does not change what its death means, and
/// each start method's CPU limit is checked by `a_process_past_its_cpu_limit_...`.
#[test]
fn a_pool_task_past_the_cpu_limit_fails_alone() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(2)
        .limits(Limits::new().cpu_time(ONE_SECOND))
        .build()
        .unwrap();
    let runaway = pool.apply_async(spin, 0).unwrap();
    let others = pool.map_async(double, 0..20u64).unwrap();
    match runaway.get() {
        Err(PoolError::CpuLimit { limit, .. }) => assert_eq!(limit, ONE_SECOND),
        other => panic!("expected CpuLimit, got {other:?}"),
    }
    assert_eq!(
        others.get().unwrap(),
        (0..20).map(|x| x * 2).collect::<Vec<_>>()
    );
    assert_eq!(pool.apply(double, 21).unwrap(), 42);
}

fn a_leaky_worker_is_retired_by_max_memory_per_child(method: StartMethod) {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(1)
        .start_method(method)
        .max_memory_per_child(64 << 20)
        .build()
        .unwrap();
    // Under the bound: the worker stays.
    let small = pool.apply(leak, 1).unwrap();
    assert_eq!(pool.apply(pid, 0).unwrap(), small);
    // Past it: the result is kept, and the next task runs in a new worker.
    let leaky = pool.apply(leak, 100).unwrap();
    assert_eq!(leaky, small);
    let after = pool.apply(pid, 0).unwrap();
    assert_ne!(after, leaky);
    assert!(pool.pids().contains(&after));
}

#[test]
fn an_executor_task_past_the_memory_limit_fails_alone() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(1)
        .limits(Limits::new().memory(MEMORY))
        .build()
        .unwrap();
    let runaway = ex.submit(allocate_without_bound, 0).unwrap();
    assert!(matches!(
        runaway.result(),
        Err(PoolError::MemoryLimit { .. })
    ));
    assert_eq!(ex.submit(double, 4).unwrap().result().unwrap(), 8);
}

#[test]
fn an_executor_retires_a_leaky_worker_by_max_memory_per_child() {
    let _g = common::guard();
    let ex = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_memory_per_child(64 << 20)
        .build()
        .unwrap();
    let leaky = ex.submit(leak, 100).unwrap().result().unwrap();
    assert_ne!(ex.submit(pid, 0).unwrap().result().unwrap(), leaky);
}

#[test]
fn pool_workers_run_with_the_pool_limits() {
    let _g = common::guard();
    let pool = Pool::builder()
        .processes(1)
        .limits(Limits::new().open_files(55).nice(19))
        .build()
        .unwrap();
    let (soft, _) = pool.apply(own_limit, "Max open files".to_string()).unwrap();
    assert_eq!(soft, "55");
    assert_eq!(pool.apply(own_nice, ()).unwrap(), 19);
}

#[test]
fn a_pool_whose_limits_are_out_of_range_is_refused() {
    let _g = common::guard();
    let refused = Pool::builder()
        .limits(Limits::new().cpu_time(Duration::ZERO))
        .build();
    assert!(matches!(
        refused,
        Err(PoolError::Limits(LimitError::OutOfRange {
            limit: Limit::CpuTime,
            ..
        }))
    ));
}

per_start_method!(
    a_process_past_its_memory_limit_fails_with_memory_limit,
    a_process_past_its_cpu_limit_fails_with_cpu_limit,
    a_process_sees_its_open_file_limit,
    a_process_runs_with_its_nice_value,
    a_pool_task_past_the_memory_limit_fails_alone,
    a_leaky_worker_is_retired_by_max_memory_per_child,
);
