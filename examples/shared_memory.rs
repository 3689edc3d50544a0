//! Named shared memory: created by the parent, attached by name in a child, then unlinked.
//!
//! In Python (`multiprocessing.shared_memory`):
//!
//! ```python
//! def writer(name):
//!     shm = shared_memory.SharedMemory(name=name)   # attach by name
//!     shm.buf[:5] = b"hello"
//!     shm.close()
//!
//! shm = shared_memory.SharedMemory(create=True, size=4096)
//! p = Process(target=writer, args=(shm.name,)); p.start(); p.join()
//! print(bytes(shm.buf[:5]))
//! shm.close()
//! shm.unlink()
//! ```
//!
//! The segment is a file in `/dev/shm`, visible to any process that knows its name. A
//! Python program can attach to it too, with `SharedMemory(name=...)` (but before Python
//! 3.13, whose `track=False` turns this off, Python's resource tracker unlinks the segment
//! when that Python program exits). The program lists `/dev/shm` along the way to show that
//! nothing is left behind, and, last, that a segment whose creator is killed before
//! unlinking it is removed all the same.
//!
//! Run with `cargo run --release --example shared_memory`.

use std::error::Error;
use std::io;
use std::time::{Duration, Instant};

use multiproc::{Connection, Process, SharedMemory, pipe_oneway};

const TEXT_AT: usize = 0;
const NUMBERS_AT: usize = 64;

/// Attaches by name and writes a length-prefixed text and eight numbers; returns the text.
fn writer(name: String) -> String {
    let shm = SharedMemory::attach(&name).expect("attach");
    let text = format!("hello from pid {}", std::process::id());
    // `write_at`/`read_at` copy bytes in and out with a bounds check (Python's `shm.buf[...]`
    // slicing); plain data such as `f64`s becomes bytes with `bytemuck`.
    shm.write_at(TEXT_AT, &(text.len() as u32).to_le_bytes())
        .expect("write");
    shm.write_at(TEXT_AT + 4, text.as_bytes()).expect("write");
    let squares: [f64; 8] = std::array::from_fn(|i| (i * i) as f64);
    shm.write_at(NUMBERS_AT, bytemuck::bytes_of(&squares))
        .expect("write");
    text
    // Dropping `shm` unmaps it (Python's `close()`); the segment stays for the others.
}

/// Creates a segment, reports its name, and waits to be killed without unlinking it.
fn careless_creator(mut report: Connection) {
    let shm = SharedMemory::create(1024).expect("create");
    report.send(&shm.name()).expect("send");
    std::thread::sleep(Duration::from_secs(60));
}

/// The names in `/dev/shm` that this crate creates.
fn shm_listing() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/dev/shm")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("multiproc") {
            names.push(name);
        }
    }
    Ok(names)
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("/dev/shm at the start: {:?}", shm_listing()?);

    let shm = SharedMemory::create(4096)?;
    println!("created {:?}, {} bytes", shm.name(), shm.size());
    println!("/dev/shm now:          {:?}", shm_listing()?);

    // The child gets only the name, as in Python. (A `SharedMemory` can also be passed to
    // a child directly: it travels as a file descriptor, like a `Connection`.)
    let written = Process::start(writer, shm.name().to_string())?.join()?;

    let mut len = [0u8; 4];
    shm.read_at(TEXT_AT, &mut len)?;
    let mut text = vec![0u8; u32::from_le_bytes(len) as usize];
    shm.read_at(TEXT_AT + 4, &mut text)?;
    let mut numbers = [0f64; 8];
    shm.read_at(NUMBERS_AT, bytemuck::bytes_of_mut(&mut numbers))?;
    println!(
        "read back: {:?} and {numbers:?}",
        String::from_utf8(text.clone())?
    );
    assert_eq!(text, written.as_bytes());
    assert_eq!(numbers[7], 49.0);

    // Unlink: the name goes away; this process's mapping stays usable until dropped.
    shm.unlink()?;
    let name = shm.name().to_string();
    let gone = SharedMemory::attach(&name).unwrap_err();
    assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    println!("unlinked; attaching by name now fails: {gone}");
    shm.read_at(NUMBERS_AT, bytemuck::bytes_of_mut(&mut numbers))?;
    assert_eq!(numbers[7], 49.0);
    drop(shm);
    println!("/dev/shm after unlink: {:?}", shm_listing()?);
    assert!(!shm_listing()?.contains(&name));

    // A creator that is killed before unlinking: its resource tracker (a helper process
    // started with its first segment) unlinks the segment as soon as the creator is gone.
    let (mut names, report) = pipe_oneway()?;
    let child = Process::start(careless_creator, report)?;
    let name: String = names.recv()?;
    println!("a child created {name:?}; /dev/shm: {:?}", shm_listing()?);
    child.kill()?;
    let _ = child.join(); // killed by SIGKILL
    let killed = Instant::now();
    while shm_listing()?.contains(&name) {
        assert!(killed.elapsed() < Duration::from_secs(5), "{name} leaked");
        std::thread::sleep(Duration::from_millis(5));
    }
    println!(
        "child killed; its segment was unlinked {:.0?} later; /dev/shm: {:?}",
        killed.elapsed(),
        shm_listing()?
    );
    Ok(())
}
