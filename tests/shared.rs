//! Specification of shared state: `Value`, `Array`, `RawValue`, `RawArray` (anonymous shared
//! memory with and without a lock, atomics for integers) and named `SharedMemory` (with its
//! resource tracker, and Python interoperability).
//!
//! Tests that involve other processes run once per start method (`fork::name`, `spawn::name`,
//! `forkserver::name`): the shared object reaches the child by inheritance (fork) or as a
//! handle in the child's argument (spawn, fork server).
//!
//! No test can hang: every blocking call either has a timeout (`LONG`, reached only if the
//! library is broken) or runs under `within`, and children are joined with a timeout. The
//! guard checks that no `/dev/shm` entry named `*multiproc*` outlives a test.

#[macro_use]
mod common;

use common::children::{INCREMENTS, LONG, PROCS, join, kill, start, within};

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc::{Array, Event, RawArray, RawValue, SharedMemory, StartMethod, Value};

/// How soon something done asynchronously by another process (a kill noticed, a name
/// unlinked by a resource tracker) must be visible. Milliseconds are expected; the bound is
/// generous for a loaded 2-core machine.
const PROMPT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Helpers

fn wait_set(event: &Event, what: &str) {
    assert!(event.wait_timeout(LONG), "{what}: not within {LONG:?}");
}

/// A segment name no other test (or test process) uses.
fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "multiproc-test-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

fn read(shm: &SharedMemory, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    shm.read_at(offset, &mut buf).expect("reading in range");
    buf
}

per_start_method!(
    value_lock_makes_increments_by_several_processes_exact,
    value_fetch_add_by_several_processes_is_exact,
    raw_value_fetch_add_by_several_processes_is_exact,
    raw_array_fetch_add_by_several_processes_is_exact,
    value_set_in_a_child_is_seen_by_the_parent,
    value_of_a_plain_struct_is_shared_with_a_child,
    array_written_by_a_child_is_seen_by_the_parent,
    raw_array_written_by_a_child_is_seen_by_the_parent,
    large_array_summed_in_parts_by_two_children_equals_the_serial_sum,
    value_stays_usable_after_a_process_died_holding_its_lock,
    shared_memory_attached_by_name_in_a_child_shares_bytes_both_ways,
    shared_memory_passed_to_a_child_as_a_handle_shares_bytes,
    shared_memory_attached_by_a_child_survives_the_childs_exit,
    shared_memory_created_by_a_killed_child_is_unlinked_by_its_tracker,
    shared_memory_created_by_a_child_that_exits_without_unlinking_is_unlinked,
);

// ---------------------------------------------------------------------------------------------
// Exact counts under contention

fn add_under_value_lock((value, n): (Value<u64>, u64)) {
    for _ in 0..n {
        let mut guard = value.lock().expect("the value's lock");
        let seen = guard.get();
        guard.set(seen + 1);
    }
}

fn value_lock_makes_increments_by_several_processes_exact(method: StartMethod) {
    let _g = common::guard();
    let value = Value::new(0u64).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| start(method, add_under_value_lock, (value.clone(), INCREMENTS)))
        .collect();
    for child in children {
        join(child);
    }
    assert_eq!(value.get().unwrap(), PROCS * INCREMENTS);
}

fn value_fetch_add((value, n): (Value<u64>, u64)) {
    for _ in 0..n {
        value.fetch_add(1);
    }
}

fn value_fetch_add_by_several_processes_is_exact(method: StartMethod) {
    let _g = common::guard();
    let value = Value::new(0u64).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| start(method, value_fetch_add, (value.clone(), INCREMENTS)))
        .collect();
    for child in children {
        join(child);
    }
    assert_eq!(value.load(), PROCS * INCREMENTS);
}

fn raw_value_fetch_add((value, n): (RawValue<u64>, u64)) {
    for _ in 0..n {
        value.fetch_add(1);
    }
}

fn raw_value_fetch_add_by_several_processes_is_exact(method: StartMethod) {
    let _g = common::guard();
    let value = RawValue::new(0u64).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| start(method, raw_value_fetch_add, (value.clone(), INCREMENTS)))
        .collect();
    for child in children {
        join(child);
    }
    assert_eq!(value.get(), PROCS * INCREMENTS);
}

fn raw_array_fetch_add((array, rounds): (RawArray<u32>, u32)) {
    for _ in 0..rounds {
        for i in 0..array.len() {
            array.fetch_add(i, 1);
        }
    }
}

fn raw_array_fetch_add_by_several_processes_is_exact(method: StartMethod) {
    let _g = common::guard();
    let array = RawArray::<u32>::zeroed(100).unwrap();
    let children: Vec<_> = (0..PROCS)
        .map(|_| start(method, raw_array_fetch_add, (array.clone(), 200)))
        .collect();
    for child in children {
        join(child);
    }
    assert_eq!(array.to_vec(), vec![PROCS as u32 * 200; 100]);
}

// ---------------------------------------------------------------------------------------------
// Value, RawValue

fn double_value(value: Value<i64>) -> i64 {
    let seen = value.get().unwrap();
    value.set(seen * 2).unwrap();
    seen
}

fn value_set_in_a_child_is_seen_by_the_parent(method: StartMethod) {
    let _g = common::guard();
    let value = Value::new(21i64).unwrap();

    let seen_by_child = join(start(method, double_value, value.clone()));

    assert_eq!(seen_by_child, 21);
    assert_eq!(value.get().unwrap(), 42);
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

fn move_point(point: Value<Point>) -> (f64, f64) {
    let mut guard = point.lock().expect("the value's lock");
    let mut p = guard.get();
    let seen = (p.x, p.y);
    p.x += 1.0;
    p.y *= 2.0;
    guard.set(p);
    seen
}

fn value_of_a_plain_struct_is_shared_with_a_child(method: StartMethod) {
    let _g = common::guard();
    let point = Value::new(Point { x: 1.5, y: -3.0 }).unwrap();

    let seen_by_child = join(start(method, move_point, point.clone()));

    assert_eq!(seen_by_child, (1.5, -3.0));
    assert_eq!(point.get().unwrap(), Point { x: 2.5, y: -6.0 });
}

#[test]
fn value_and_raw_value_get_set_and_atomic_operations() {
    let _g = common::guard();
    let value = Value::new(5u32).unwrap();
    value.set(6).unwrap();
    assert_eq!(value.get().unwrap(), 6);
    assert_eq!(value.update(|x| x * 10).unwrap(), 60);
    assert_eq!(value.get().unwrap(), 60);
    assert_eq!(value.fetch_sub(10), 60);
    assert_eq!(value.swap(7), 50);
    assert_eq!(value.compare_exchange(7, 8), Ok(7));
    assert_eq!(value.compare_exchange(7, 9), Err(8));
    value.store(1);
    assert_eq!(value.load(), 1);

    let raw = RawValue::new(u8::MAX).unwrap();
    assert_eq!(raw.fetch_add(1), u8::MAX, "fetch_add wraps");
    assert_eq!(raw.get(), 0);
    raw.set(3);
    assert_eq!(raw.load(), 3);
}

#[test]
fn value_lock_is_reentrant_for_get_and_set() {
    let _g = common::guard();
    let value = Value::new(1i32).unwrap();
    let checked = value.clone();
    within(PROMPT, move || {
        let _held = checked
            .get_lock()
            .acquire_timeout(LONG)
            .expect("a free lock")
            .expect("a free lock");
        checked.set(checked.get().unwrap() + 1).unwrap();
    });
    assert_eq!(value.get().unwrap(), 2);
}

/// Take the value's lock, update the value, never release the lock, and wait to be killed.
fn die_holding_value_lock((value, held): (Value<u64>, Event)) {
    std::mem::forget(
        value
            .get_lock()
            .acquire_timeout(LONG)
            .expect("the child takes the value's lock")
            .expect("the child takes the value's lock"),
    );
    value.set(7).expect("the lock is held");
    held.set();
    std::thread::sleep(LONG);
}

fn value_stays_usable_after_a_process_died_holding_its_lock(method: StartMethod) {
    let _g = common::guard();
    let (value, held) = (Value::new(0u64).unwrap(), Event::new().unwrap());
    let child = start(
        method,
        die_holding_value_lock,
        (value.clone(), held.clone()),
    );
    wait_set(&held, "the child did not take the value's lock");
    kill(child);

    let reader = value.clone();
    assert_eq!(within(PROMPT, move || reader.get().unwrap()), 7);

    let relocked = value.get_lock().try_acquire();
    assert!(
        matches!(relocked, Ok(Some(_))),
        "the lock was not recovered"
    );
}

/// Exit the process in the middle of a critical section.
fn exit_holding_value_lock(value: Value<u64>) {
    let _guard = value
        .get_lock()
        .acquire_timeout(LONG)
        .expect("a free lock")
        .expect("a free lock");
    std::process::exit(0);
}

#[test]
fn value_lock_reports_owner_died_through_get_lock() {
    let _g = common::guard();
    let value = Value::new(0u64).unwrap();
    let child = start(StartMethod::Fork, exit_holding_value_lock, value.clone());
    assert!(child.join_timeout(LONG).unwrap(), "the child did not exit");
    assert_eq!(child.join().unwrap_err().exitcode(), Some(0));

    let guard = value
        .get_lock()
        .acquire_timeout(LONG)
        .expect("acquire")
        .expect("the lock");
    assert!(guard.owner_died(), "expected the owner-died notice");
    drop(guard);
}

// ---------------------------------------------------------------------------------------------
// Array, RawArray

fn fill_array(array: Array<u32>) -> Vec<u32> {
    let seen = array.to_vec().unwrap();
    assert!(array.set(0, 100).unwrap());
    let mut elements = array.lock().expect("the array's lock");
    for i in 1..elements.len() {
        elements.update(i, |x| x * 10);
    }
    seen
}

fn array_written_by_a_child_is_seen_by_the_parent(method: StartMethod) {
    let _g = common::guard();
    let array = Array::from_slice(&[1u32, 2, 3, 4]).unwrap();

    let seen_by_child = join(start(method, fill_array, array.clone()));

    assert_eq!(seen_by_child, [1, 2, 3, 4]);
    assert_eq!(array.to_vec().unwrap(), [100, 20, 30, 40]);
    assert_eq!(array.get(3).unwrap(), Some(40));
}

fn fill_raw_array(array: RawArray<i16>) -> Vec<i16> {
    let seen = array.to_vec();
    for i in 0..array.len() {
        assert!(array.set(i, -(i as i16)));
    }
    seen
}

fn raw_array_written_by_a_child_is_seen_by_the_parent(method: StartMethod) {
    let _g = common::guard();
    let array = RawArray::from_slice(&[7i16, 8, 9]).unwrap();

    let seen_by_child = join(start(method, fill_raw_array, array.clone()));

    assert_eq!(seen_by_child, [7, 8, 9]);
    assert_eq!(array.to_vec(), [0, -1, -2]);
}

#[test]
fn array_get_and_set_out_of_bounds_are_none_and_false() {
    let _g = common::guard();
    let array = Array::from_slice(&[1.0f64, 2.0]).unwrap();
    assert_eq!(array.get(2).unwrap(), None);
    assert!(!array.set(2, 3.0).unwrap());
    assert_eq!(array.to_vec().unwrap(), [1.0, 2.0]);

    let raw = RawArray::from_slice(&[1u8]).unwrap();
    assert_eq!(raw.get(1), None);
    assert!(!raw.set(usize::MAX, 0));
    assert_eq!(raw.to_vec(), [1]);
}

#[test]
fn arrays_have_the_length_they_were_made_with() {
    let _g = common::guard();
    let zeroed = Array::<u64>::zeroed(3).unwrap();
    assert_eq!(
        (zeroed.len(), zeroed.is_empty(), zeroed.to_vec().unwrap()),
        (3, false, vec![0; 3])
    );
    let empty = RawArray::<u64>::zeroed(0).unwrap();
    assert_eq!((empty.len(), empty.is_empty()), (0, true));
    assert_eq!(empty.to_vec(), Vec::<u64>::new());
    let copied = RawArray::from_slice(&[4i32, 5]).unwrap();
    assert_eq!(copied.to_vec(), [4, 5]);
}

const LARGE: usize = 1_000_000;

fn sum_part((array, from, to): (Array<f64>, usize, usize)) -> f64 {
    // SAFETY: nobody writes the array while the children read it.
    let all = unsafe { array.as_slice_unlocked() };
    all[from..to].iter().sum()
}

fn large_array_summed_in_parts_by_two_children_equals_the_serial_sum(method: StartMethod) {
    let _g = common::guard();
    // Whole numbers: every partial sum is exact in f64, so the order of addition is moot.
    let data: Vec<f64> = (0..LARGE).map(|i| i as f64).collect();
    let serial: f64 = data.iter().sum();
    let array = Array::from_slice(&data).unwrap();

    let halves = [(0, LARGE / 2), (LARGE / 2, LARGE)]
        .map(|(from, to)| start(method, sum_part, (array.clone(), from, to)));
    let parallel: f64 = halves.into_iter().map(join).sum();

    assert_eq!(parallel, serial);
    assert_eq!(serial, (LARGE * (LARGE - 1) / 2) as f64);
}

// ---------------------------------------------------------------------------------------------
// Guards: copies in and out, never a reference into the shared memory (issue 14)

/// The lock is re-entrant and the guard holds no reference to the cell, so a `set`, a
/// lock-free `fetch_add` and the guard's own accesses by one thread all act on the same cell
/// (with the old `&mut T` guard this was two live `&mut` to one value).
#[test]
fn value_guard_and_reentrant_access_by_its_thread_act_on_the_same_cell() {
    let _g = common::guard();
    let value = Value::new(1u64).unwrap();
    let mut guard = value.lock().expect("a free lock");
    value.set(5).unwrap();
    assert_eq!(guard.get(), 5);
    assert_eq!(value.fetch_add(1), 5);
    assert_eq!(guard.get(), 6);
    guard.set(10);
    assert_eq!(value.get().unwrap(), 10);
    assert_eq!(guard.update(|x| x + 1), 11);
    assert_eq!((value.load(), value.get_lock().count()), (11, 1));
    drop(guard);
    assert_eq!(value.get_lock().count(), 0, "the guard released its level");
}

/// Python's `arr[0] = 1` while holding `arr.get_lock()`, then writing through the guard: the
/// sequence that used to alias two `&mut [u32]`.
#[test]
fn array_guard_and_reentrant_access_by_its_thread_act_on_the_same_cells() {
    let _g = common::guard();
    let array = Array::from_slice(&[0u32, 0]).unwrap();
    let mut guard = array.lock().expect("a free lock");
    assert!(array.set(0, 1).unwrap());
    assert_eq!(guard.get(0), Some(1));
    assert!(guard.set(0, 2));
    assert_eq!(array.get(0).unwrap(), Some(2));
    guard.copy_from_slice(0, &[3, 4]);
    assert_eq!(array.to_vec().unwrap(), [3, 4]);
    guard.fill(9);
    let mut out = [0; 2];
    array.copy_to_slice(0, &mut out).unwrap();
    assert_eq!(out, [9, 9]);
    assert_eq!(guard.update(1, |x| x + 1), Some(10));
    assert_eq!((guard.update(2, |x| x), guard.set(2, 0)), (None, false));
    assert_eq!(
        (guard.len(), guard.is_empty(), guard.to_vec()),
        (2, false, vec![9, 10])
    );
    drop(guard);
    assert_eq!(array.get_lock().count(), 0, "the guard released its level");
}

/// Lock-free writers never take the lock; a guard's reads see their writes as they happen
/// (with the old guard, a `&u64` into the cell lived while they wrote it).
#[test]
fn value_guard_sees_lock_free_writes_of_other_threads() {
    let _g = common::guard();
    const ADDS: u64 = 20_000;
    let value = Value::new(0u64).unwrap();
    let guard = value.lock().expect("a free lock");
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let value = value.clone();
            std::thread::spawn(move || {
                for _ in 0..ADDS {
                    value.fetch_add(1);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + PROMPT;
    let mut last = 0;
    while last < 2 * ADDS {
        let now = guard.get();
        assert!(now >= last, "the counter went back from {last} to {now}");
        last = now;
        assert!(Instant::now() < deadline, "stuck at {last}");
    }
    for w in writers {
        w.join().unwrap();
    }
    drop(guard);
    assert_eq!(value.get().unwrap(), 2 * ADDS);
}

/// Exit the process in the middle of a critical section of the array.
fn exit_holding_array_lock(array: Array<u8>) {
    let _guard = array.lock().expect("a free lock");
    std::process::exit(0);
}

/// The guard comes only with the lock held: after a holder died it is handed over inside
/// `OwnerDied`, as by `Lock::acquire` (the old `lock()` recovered silently).
#[test]
fn value_and_array_lock_report_owner_died_with_the_guard() {
    let _g = common::guard();
    let value = Value::new(3u64).unwrap();
    let child = start(StartMethod::Fork, exit_holding_value_lock, value.clone());
    assert!(child.join_timeout(LONG).unwrap(), "the child did not exit");
    let mut guard = value.lock().expect("the value's lock");
    assert!(guard.owner_died(), "expected the owner-died notice");
    assert_eq!(guard.update(|x| x + 1), 4);
    drop(guard);
    assert_eq!(value.get().unwrap(), 4);

    let array = Array::from_slice(&[1u8]).unwrap();
    let child = start(StartMethod::Fork, exit_holding_array_lock, array.clone());
    assert!(child.join_timeout(LONG).unwrap(), "the child did not exit");
    let guard = array.lock().expect("the array's lock");
    assert!(guard.owner_died(), "expected the owner-died notice");
    assert_eq!(guard.get(0), Some(1));
    drop(guard);
    assert!(array.lock().is_ok(), "the lock was recovered");
}

/// Send `object` through a pipe and receive it as a `U`.
fn resend<T: serde::Serialize, U: serde::de::DeserializeOwned>(
    object: &T,
) -> Result<U, multiproc::ConnectionError> {
    let (mut a, mut b) = multiproc::pipe().unwrap();
    a.send(object).unwrap();
    b.recv::<U>()
}

/// A handle received as another kind (with/without a lock) or another element layout would
/// access the cells without the lock or in atomic chunks of another width: refused.
#[test]
fn handles_received_as_another_kind_or_element_layout_are_refused() {
    let _g = common::guard();
    let value = Value::new(7u64).unwrap();
    assert_eq!(resend::<_, Value<u64>>(&value).unwrap().get().unwrap(), 7);
    assert_eq!(
        resend::<_, Array<i64>>(&value).unwrap().to_vec().unwrap(),
        [7]
    );
    assert!(
        resend::<_, RawValue<u64>>(&value).is_err(),
        "without its lock"
    );
    assert!(resend::<_, Value<u32>>(&value).is_err(), "another size");
    assert!(
        resend::<_, Value<[u32; 2]>>(&value).is_err(),
        "another alignment"
    );

    let raw = RawArray::from_slice(&[1u16, 2]).unwrap();
    assert_eq!(resend::<_, RawArray<u16>>(&raw).unwrap().to_vec(), [1, 2]);
    assert!(
        resend::<_, Array<u16>>(&raw).is_err(),
        "a lock that is not there"
    );
    assert!(resend::<_, RawArray<u8>>(&raw).is_err(), "another size");
}

#[test]
fn slice_copies_out_of_bounds_panic_like_slice_indexing() {
    let _g = common::guard();
    let array = Array::<u8>::zeroed(2).unwrap();
    let raw = RawArray::<u8>::zeroed(2).unwrap();
    let panics = |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
    assert!(panics(&|| drop(array.copy_from_slice(1, &[1, 2]))));
    assert!(panics(&|| drop(array.copy_to_slice(usize::MAX, &mut [0]))));
    assert!(panics(&|| raw.copy_from_slice(3, &[])));
    assert!(panics(&|| raw.copy_to_slice(0, &mut [0; 3])));
    assert_eq!(array.to_vec().unwrap(), [0, 0], "nothing was written");
    assert_eq!(array.get_lock().count(), 0, "the lock was not taken");
}

// ---------------------------------------------------------------------------------------------
// SharedMemory

fn attach_read_and_reply(name: String) -> Vec<u8> {
    let shm = SharedMemory::attach(&name).expect("attaching by name");
    let mut greeting = vec![0; 5];
    shm.read_at(0, &mut greeting).unwrap();
    shm.write_at(5, b"child").unwrap();
    greeting
}

fn shared_memory_attached_by_name_in_a_child_shares_bytes_both_ways(method: StartMethod) {
    let _g = common::guard();
    let shm = SharedMemory::create(4096).unwrap();
    shm.write_at(0, b"hello").unwrap();

    let seen_by_child = join(start(method, attach_read_and_reply, shm.name().to_string()));

    assert_eq!(seen_by_child, b"hello");
    assert_eq!(read(&shm, 5, 5), b"child");
    shm.unlink().unwrap();
}

fn write_through_handle(shm: SharedMemory) -> (String, usize) {
    shm.write_at(0, b"via handle").unwrap();
    (shm.name().to_string(), shm.size())
}

fn shared_memory_passed_to_a_child_as_a_handle_shares_bytes(method: StartMethod) {
    let _g = common::guard();
    let shm = SharedMemory::create(100).unwrap();
    let handle = SharedMemory::attach(shm.name()).unwrap();

    let (name, size) = join(start(method, write_through_handle, handle));

    assert_eq!((name.as_str(), size), (shm.name(), 100));
    assert_eq!(read(&shm, 0, 10), b"via handle");
    shm.unlink().unwrap();
}

fn attach_and_exit(name: String) {
    SharedMemory::attach(&name).expect("attaching by name");
}

fn shared_memory_attached_by_a_child_survives_the_childs_exit(method: StartMethod) {
    let _g = common::guard();
    let shm = SharedMemory::create(16).unwrap();

    join(start(method, attach_and_exit, shm.name().to_string()));

    // Only the creator's tracker unlinks: attaching registers nothing (unlike Python < 3.13).
    assert!(in_dev_shm(shm.name()));
    shm.unlink().unwrap();
}

/// Create a named segment, say so, and wait to be killed.
fn create_named_and_wait((name, created): (String, Event)) {
    let _shm = SharedMemory::create_named(&name, 4096).expect("creating a named segment");
    created.set();
    std::thread::sleep(LONG);
}

fn shared_memory_created_by_a_killed_child_is_unlinked_by_its_tracker(method: StartMethod) {
    let _g = common::guard();
    let name = unique_name("killed-creator");
    let created = Event::new().unwrap();
    let child = start(
        method,
        create_named_and_wait,
        (name.clone(), created.clone()),
    );
    wait_set(&created, "the child did not create the segment");
    assert!(in_dev_shm(&name));

    kill(child);

    // The child's tracker notices its death and unlinks the name: asynchronously.
    assert!(
        common::wait_until(Instant::now() + PROMPT, || !in_dev_shm(&name)),
        "/dev/shm/{name} still exists {PROMPT:?} after its creator was killed"
    );
}

fn create_named_and_return(name: String) {
    let shm = SharedMemory::create_named(&name, 64).expect("creating a named segment");
    shm.write_at(0, b"left behind").unwrap();
}

fn shared_memory_created_by_a_child_that_exits_without_unlinking_is_unlinked(method: StartMethod) {
    let _g = common::guard();
    let name = unique_name("exited-creator");

    join(start(method, create_named_and_return, name.clone()));

    // A child stops its tracker before it exits, so this happened before the join returned.
    assert!(!in_dev_shm(&name));
}

#[test]
fn shared_memory_create_gives_a_fresh_name_and_the_requested_size() {
    let _g = common::guard();
    let a = SharedMemory::create(123).unwrap();
    let b = SharedMemory::create(123).unwrap();
    assert!(a.name().starts_with("multiproc-"), "{}", a.name());
    assert_ne!(a.name(), b.name());
    assert_eq!(a.size(), 123);
    assert!(in_dev_shm(a.name()));
    assert_eq!(read(&a, 0, 123), vec![0; 123], "new memory is zeroed");
    a.unlink().unwrap();
    b.unlink().unwrap();
}

#[test]
fn shared_memory_access_out_of_range_is_an_error() {
    let _g = common::guard();
    let shm = SharedMemory::create(8).unwrap();
    let mut buf = [0u8; 4];

    let errors = [
        shm.write_at(5, &[1, 2, 3, 4]),
        shm.read_at(5, &mut buf),
        shm.write_at(9, &[]),
        shm.read_at(usize::MAX, &mut buf),
    ];

    for e in errors {
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
    assert!(
        shm.write_at(4, &[1, 2, 3, 4]).is_ok(),
        "the last bytes are in range"
    );
    assert!(
        shm.read_at(8, &mut []).is_ok(),
        "an empty range at the end is in range"
    );
    shm.unlink().unwrap();
}

#[test]
fn shared_memory_unlinked_cannot_be_attached() {
    let _g = common::guard();
    let shm = SharedMemory::create(8).unwrap();
    shm.write_at(0, b"still").unwrap();

    shm.unlink().unwrap();

    assert!(!in_dev_shm(shm.name()));
    let attached = SharedMemory::attach(shm.name());
    assert_eq!(attached.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(read(&shm, 0, 5), b"still", "the mapping outlives the name");
}

#[test]
fn shared_memory_created_twice_with_one_name_is_already_exists() {
    let _g = common::guard();
    let name = unique_name("twice");
    let first = SharedMemory::create_named(&name, 8).unwrap();

    let second = SharedMemory::create_named(&name, 8);

    assert_eq!(second.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
    first.unlink().unwrap();
}

#[test]
fn shared_memory_of_size_zero_is_invalid() {
    let _g = common::guard();
    let name = unique_name("empty");
    let created = SharedMemory::create_named(&name, 0);
    assert_eq!(created.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    assert!(!in_dev_shm(&name));
}

// ---------------------------------------------------------------------------------------------
// Python interoperability

/// Run `python3 -c script args...`; its output, or `None` without python3.
fn python(script: &str, args: &[&str]) -> Option<String> {
    common::python::run_shared_memory(script, args)
}

const PYTHON_ATTACH: &str = r#"
import sys
from multiprocessing import resource_tracker, shared_memory

shm = shared_memory.SharedMemory(name=sys.argv[1])
# Python registers even attached segments with its resource tracker (unless track=False,
# 3.13+), which would unlink this one, owned by Rust, when Python exits.
resource_tracker.unregister(shm._name, "shared_memory")
sys.stdout.write(bytes(shm.buf[:15]).decode())
shm.buf[15:25] = b"and python"
shm.close()
"#;

#[test]
fn python_attaches_to_shared_memory_created_in_rust_and_shares_bytes_both_ways() {
    let _g = common::guard();
    let shm = SharedMemory::create(64).unwrap();
    shm.write_at(0, b"written by rust").unwrap();

    let Some(seen_by_python) = python(PYTHON_ATTACH, &[shm.name()]) else {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not available");
        shm.unlink().unwrap();
        return;
    };

    assert_eq!(seen_by_python, "written by rust");
    assert_eq!(read(&shm, 15, 10), b"and python");
    assert!(in_dev_shm(shm.name()), "Python must not unlink it");
    shm.unlink().unwrap();
}
