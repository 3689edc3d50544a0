//! A worker that reports who it is; the parent reports the pid it started.
//!
//! The Python original:
//!
//! ```python
//! import os
//! from multiprocessing import Process, current_process
//!
//! def task(name):
//!     print(f"Child process {name} executing, pid {os.getpid()}")
//!
//! if __name__ == '__main__':
//!     p = Process(target=task, args=('worker',))
//!     p.start()
//!     print("Parent process run. subProcess is", p.pid)
//!     p.join()
//! ```
//!
//! Run with `cargo run --release --example worker_pid`.

use multiproc::{ProcessBuilder, current_process, parent_process};

fn task(name: String) -> u32 {
    // `current_process()` is a snapshot (name, pid, daemon flag) rather than a live object.
    let me = current_process();
    // `parent_process()` is `None` in the main program and `Some` in every child.
    let parent = parent_process().expect("a child always has a parent");
    println!(
        "Child process {name} executing: name {:?}, pid {}, parent pid {}",
        me.name,
        me.pid,
        parent.pid()
    );
    me.pid
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let me = current_process();
    println!("Parent process {:?} has pid {}", me.name, me.pid);

    // `ProcessBuilder` is the spelled-out form of `Process(target=..., name=...)`.
    let p = ProcessBuilder::new()
        .name("worker")
        .start(task, "worker".to_string())?;
    let pid = p.pid();
    println!("Parent process run. subProcess is {pid}");

    // The child returns its own view of its pid, which must agree with the parent's. (`join`
    // consumes the handle, which is why `pid` was read first.)
    let reported = p.join()?;
    assert_eq!(reported, pid);
    println!("Parent process end: the child reported pid {reported}");
    Ok(())
}
