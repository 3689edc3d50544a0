//! Specification of `ShareableList` (Python's `multiprocessing.shared_memory.ShareableList`,
//! in its exact layout) and `SharedMemoryManager` (segments unlinked together).
//!
//! The Python tests run a real `python3` on the same segment both ways; they are skipped,
//! with a message, when python3 is absent. Tests with children run once per start method.
//! The guard checks that no `/dev/shm` entry named `*multiproc*` outlives a test.

#[macro_use]
mod common;

use common::children::{LONG, join, kill, start};

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use multiproc::{
    Connection, ShareableItem, ShareableList, ShareableListError, SharedMemory,
    SharedMemoryManager, StartMethod,
};

/// How soon a resource tracker must have unlinked the names of a killed process.
const PROMPT: Duration = Duration::from_secs(5);

per_start_method!(
    child_attached_by_name_sees_and_changes_items,
    child_given_the_list_as_a_handle_sees_and_changes_items,
    segments_of_a_killed_managers_process_are_unlinked_by_its_tracker,
);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A segment name no other test (or test process) uses; the guard watches `*multiproc*`.
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

/// One of every type Python's `ShareableList` holds; Python prints it as
/// `[-7, 2.5, True, 'héllo', b'\x00\x01raw', None]`.
fn every_type() -> Vec<ShareableItem> {
    vec![
        ShareableItem::Int(-7),
        ShareableItem::Float(2.5),
        ShareableItem::Bool(true),
        ShareableItem::from("héllo"),
        ShareableItem::from(b"\x00\x01raw".as_slice()),
        ShareableItem::None,
    ]
}

/// Run `python3 -c script args...`; its output, or `None` without python3.
fn python(script: &str, args: &[&str]) -> Option<String> {
    common::python::run_shared_memory(script, args)
}

// ---------------------------------------------------------------------------------------------
// Python interoperability

/// Attach to the list named `argv[1]`, print it and its format, then change every item.
/// Python 3.11 registers attached segments with its resource tracker, which would unlink
/// this one (owned by Rust) when Python exits: unregister it.
const PYTHON_READ_AND_CHANGE: &str = r#"
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList

sl = ShareableList(name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(repr(list(sl)))
print(sl.format)
sl[0] = 2**62
sl[1] = None
sl[2] = 1.25
sl[3] = "abcdefgh"
sl[4] = b"\xff"
sl[5] = "py"
sl.shm.close()
"#;

#[test]
fn python_reads_and_changes_a_list_created_in_rust() {
    let _g = common::guard();
    let list = ShareableList::new(every_type()).unwrap();

    let Some(printed) = python(PYTHON_READ_AND_CHANGE, &[list.name()]) else {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not available");
        list.unlink().unwrap();
        return;
    };

    assert_eq!(
        printed,
        "[-7, 2.5, True, 'héllo', b'\\x00\\x01raw', None]\nqdxxxxxxx?8s8sxxxxxx?x\n"
    );
    assert_eq!(
        list.to_vec().unwrap(),
        [
            ShareableItem::Int(1 << 62),
            ShareableItem::None,
            ShareableItem::Float(1.25),
            ShareableItem::from("abcdefgh"),
            ShareableItem::Bytes(vec![0xff]),
            ShareableItem::from("py"),
        ]
    );
    assert_eq!(list.format().unwrap(), "qxxxxxx?xd8s8s8s");
    assert!(in_dev_shm(list.name()), "Python must not unlink it");
    list.unlink().unwrap();
}

/// Create a list named `argv[1]`, leave it to Rust (unregistered from Python's tracker) and
/// print its format.
const PYTHON_CREATE: &str = r#"
import sys
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList

sl = ShareableList([42, -1.5, False, "naïve and longer", b"bytes\x00mid", None], name=sys.argv[1])
resource_tracker.unregister(sl.shm._name, "shared_memory")
print(sl.format)
sl.shm.close()
"#;

#[test]
fn rust_reads_a_list_created_by_python() {
    let _g = common::guard();
    let name = unique_name("from-python");

    let Some(printed) = python(PYTHON_CREATE, &[&name]) else {
        eprintln!("skipped: python3 with multiprocessing.shared_memory is not available");
        return;
    };
    let list = ShareableList::attach(&name).unwrap();
    list.unlink().unwrap();

    assert_eq!(list.len(), 6);
    assert_eq!(
        list.to_vec().unwrap(),
        [
            ShareableItem::Int(42),
            ShareableItem::Float(-1.5),
            ShareableItem::Bool(false),
            ShareableItem::from("naïve and longer"),
            ShareableItem::from(b"bytes\x00mid".as_slice()),
            ShareableItem::None,
        ]
    );
    assert_eq!(format!("{}\n", list.format().unwrap()), printed);
    assert_eq!(printed, "qdxxxxxxx?24s16sxxxxxx?x\n");
}

// ---------------------------------------------------------------------------------------------
// Items

#[test]
fn items_of_every_type_read_back_as_written() {
    let _g = common::guard();
    let list = ShareableList::new(every_type()).unwrap();
    let attached = ShareableList::attach(list.name()).unwrap();
    list.unlink().unwrap();

    assert_eq!(attached.len(), 6);
    assert_eq!(attached.to_vec().unwrap(), every_type());
}

#[test]
fn trailing_nul_bytes_of_str_and_bytes_are_dropped_as_in_python() {
    let _g = common::guard();
    let list = ShareableList::new([
        ShareableItem::from("a\0\0"),
        ShareableItem::from(b"\0b\0".as_slice()),
    ])
    .unwrap();
    list.unlink().unwrap();

    assert_eq!(
        list.to_vec().unwrap(),
        [
            ShareableItem::from("a"),
            ShareableItem::from(b"\0b".as_slice())
        ]
    );
}

#[test]
fn str_or_bytes_longer_than_the_slot_is_refused_and_the_item_kept() {
    let _g = common::guard();
    // "12345678" needs a 16-byte slot (one NUL of room, as in Python); "x" an 8-byte one.
    let list = ShareableList::new(["12345678", "x"]).unwrap();
    list.unlink().unwrap();

    let too_long = list.set(1, b"123456789".as_slice()).unwrap_err();
    assert!(
        matches!(
            too_long,
            ShareableListError::DoesNotFit {
                index: 1,
                len: 9,
                capacity: 8
            }
        ),
        "{too_long}"
    );
    assert_eq!(list.get(1).unwrap(), ShareableItem::from("x"));

    list.set(0, "sixteen bytes!!!").unwrap();
    assert_eq!(
        list.get(0).unwrap(),
        ShareableItem::from("sixteen bytes!!!")
    );
}

#[test]
fn any_item_may_become_a_scalar_and_a_scalar_slot_a_short_str() {
    let _g = common::guard();
    let list = ShareableList::new([ShareableItem::from("a long string"), 5.into()]).unwrap();
    list.unlink().unwrap();

    list.set(0, true).unwrap();
    list.set(1, "8 bytes!").unwrap();

    assert_eq!(
        list.to_vec().unwrap(),
        [ShareableItem::Bool(true), ShareableItem::from("8 bytes!")]
    );
    assert_eq!(list.format().unwrap(), "xxxxxxx?8s");
    assert!(list.set(1, "9 bytes!!").is_err());
}

#[test]
fn get_and_set_past_the_end_are_index_errors() {
    let _g = common::guard();
    let list = ShareableList::new([1, 2]).unwrap();
    list.unlink().unwrap();

    for error in [list.get(2).unwrap_err(), list.set(7, 0).unwrap_err()] {
        assert!(
            matches!(error, ShareableListError::IndexOutOfRange { len: 2, .. }),
            "{error}"
        );
    }
    assert_eq!(
        list.to_vec().unwrap(),
        [ShareableItem::Int(1), ShareableItem::Int(2)]
    );
}

#[test]
fn an_empty_list_is_valid_and_attachable() {
    let _g = common::guard();
    let list = ShareableList::new(Vec::<ShareableItem>::new()).unwrap();
    let attached = ShareableList::attach(list.name()).unwrap();
    list.unlink().unwrap();

    assert!(attached.is_empty());
    assert_eq!(attached.format().unwrap(), "");
}

#[test]
fn items_too_long_for_pythons_format_are_refused() {
    let _g = common::guard();
    let huge = vec![b'x'; 10_000_000];

    let error =
        ShareableList::new([ShareableItem::Int(0), ShareableItem::Bytes(huge)]).unwrap_err();

    assert!(
        matches!(error, ShareableListError::ItemTooLarge { index: 1, .. }),
        "{error}"
    );
}

#[test]
fn attaching_to_a_missing_name_is_not_found() {
    let _g = common::guard();
    let error = ShareableList::attach(&unique_name("missing")).unwrap_err();
    assert!(
        matches!(&error, ShareableListError::Io(e) if e.kind() == std::io::ErrorKind::NotFound),
        "{error}"
    );
}

// ---------------------------------------------------------------------------------------------
// Corrupt segments (another process wrote garbage): errors, never panics

fn corrupt_attach(bytes: &[u8]) -> ShareableListError {
    let shm = SharedMemory::create(bytes.len()).unwrap();
    shm.write_at(0, bytes).unwrap();
    let result = ShareableList::attach(shm.name());
    shm.unlink().unwrap();
    result.unwrap_err()
}

fn words(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

#[test]
fn attaching_to_a_segment_with_an_impossible_header_is_refused() {
    let _g = common::guard();
    let headers = [
        vec![1, 2, 3],                    // shorter than the count
        words(&[-1, 0]),                  // negative count
        words(&[i64::MAX, 0]),            // count beyond the segment
        words(&[1, 0, 1 << 40, 0, 0]),    // offset outside the segment
        words(&[1, 8, 16, 0, 0]),         // first offset not 0
        words(&[2, 0, 8, 4, 0, 0, 0, 0]), // offsets going backwards
        words(&[1, 0, 16, 0, 0]),         // formats and codes past the end
        words(&[1, 0, 12, 0, 0, 0]),      // a slot that is not a multiple of 8
    ];
    for header in headers {
        let error = corrupt_attach(&header);
        assert!(
            matches!(error, ShareableListError::Corrupt { .. }),
            "{header:?}: {error}"
        );
    }
}

#[test]
fn items_with_a_corrupt_format_or_code_are_errors() {
    let _g = common::guard();
    let list = ShareableList::new(["a string", "b"]).unwrap();
    list.unlink().unwrap();
    let shm = list.shm();
    // Layout of 2 items with 16 + 8 data bytes: formats at 32 + 24, codes after them.
    let (formats, codes) = (56, 72);

    shm.write_at(formats, b"99s\0\0\0\0\0").unwrap(); // longer than its 16-byte slot
    shm.write_at(codes + 1, &[9]).unwrap(); // no such type code
    let (first, second) = (list.get(0).unwrap_err(), list.get(1).unwrap_err());

    for error in [first, second] {
        assert!(
            matches!(error, ShareableListError::Corrupt { .. }),
            "{error}"
        );
    }
    shm.write_at(formats, b"16s\0\0\0\0\0").unwrap();
    shm.write_at(32, &[0xff, 0xfe]).unwrap(); // not UTF-8
    assert!(matches!(
        list.get(0),
        Err(ShareableListError::Corrupt { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Children

/// Return what the child saw, after changing the first two items.
fn attach_read_and_change(name: String) -> Vec<ShareableItem> {
    let list = ShareableList::attach(&name).expect("attaching by name");
    let seen = list.to_vec().expect("reading the items");
    list.set(0, 100).unwrap();
    list.set(1, "child").unwrap();
    seen
}

fn child_attached_by_name_sees_and_changes_items(method: StartMethod) {
    let _g = common::guard();
    let list = ShareableList::new([ShareableItem::Int(1), "parent".into()]).unwrap();

    let seen = join(start(
        method,
        attach_read_and_change,
        list.name().to_string(),
    ));

    assert_eq!(seen, [ShareableItem::Int(1), ShareableItem::from("parent")]);
    assert_eq!(
        list.to_vec().unwrap(),
        [ShareableItem::Int(100), ShareableItem::from("child")]
    );
    list.unlink().unwrap();
}

fn change_through_handle(list: ShareableList) -> String {
    list.set(0, 2.5).unwrap();
    list.name().to_string()
}

fn child_given_the_list_as_a_handle_sees_and_changes_items(method: StartMethod) {
    let _g = common::guard();
    let list = ShareableList::new([0]).unwrap();
    let handle = ShareableList::attach(list.name()).unwrap();

    let name = join(start(method, change_through_handle, handle));

    assert_eq!(name, list.name());
    assert_eq!(list.get(0).unwrap(), ShareableItem::Float(2.5));
    list.unlink().unwrap();
}

// ---------------------------------------------------------------------------------------------
// SharedMemoryManager

#[test]
fn manager_shutdown_unlinks_every_segment_it_made() {
    let _g = common::guard();
    let manager = SharedMemoryManager::new();
    let block = manager.shared_memory(4096).unwrap();
    let list = manager.shareable_list(["x", "y"]).unwrap();
    let other = manager.shared_memory(1).unwrap();
    let names = manager.segment_names();
    assert_eq!(names, [block.name(), list.name(), other.name()]);
    assert!(names.iter().all(|n| in_dev_shm(n)));

    manager.shutdown().unwrap();

    for name in &names {
        assert!(!in_dev_shm(name), "/dev/shm/{name} is still there");
    }
    block.write_at(0, b"still mapped").unwrap();
    assert_eq!(list.get(1).unwrap(), ShareableItem::from("y"));
}

#[test]
fn dropping_the_manager_unlinks_every_segment_it_made() {
    let _g = common::guard();
    let manager = SharedMemoryManager::new();
    let _block = manager.shared_memory(16).unwrap();
    let _list = manager.shareable_list([1.5]).unwrap();
    let names = manager.segment_names();

    drop(manager);

    for name in &names {
        assert!(!in_dev_shm(name), "/dev/shm/{name} is still there");
    }
}

#[test]
fn manager_shutdown_skips_segments_unlinked_early() {
    let _g = common::guard();
    let manager = SharedMemoryManager::new();
    let early = manager.shared_memory(8).unwrap();
    let late = manager.shared_memory(8).unwrap();
    early.unlink().unwrap();

    manager.shutdown().unwrap();

    assert!(!in_dev_shm(late.name()));
}

/// Make a manager with two segments, send their names, and wait to be killed.
fn manage_and_wait(mut parent: Connection) {
    let manager = SharedMemoryManager::new();
    let _block = manager.shared_memory(4096).unwrap();
    let _list = manager.shareable_list([1, 2, 3]).unwrap();
    parent.send(&manager.segment_names()).unwrap();
    // Blocks until the parent kills this process (the parent never sends).
    let _ = parent.recv::<()>();
}

fn segments_of_a_killed_managers_process_are_unlinked_by_its_tracker(method: StartMethod) {
    let _g = common::guard();
    let (mut ours, theirs) = multiproc::pipe().unwrap();
    let child = start(method, manage_and_wait, theirs);
    let names: Vec<String> = ours
        .recv_timeout(LONG)
        .unwrap()
        .expect("the child did not send its segment names");
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| in_dev_shm(n)));

    kill(child);

    assert!(
        common::wait_until(Instant::now() + PROMPT, || names
            .iter()
            .all(|n| !in_dev_shm(n))),
        "{names:?} still exist {PROMPT:?} after the manager's process was killed"
    );
}
