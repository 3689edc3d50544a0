//! Two processes talking over a pipe: one sends a list, the other receives and prints it.
//!
//! The Python original:
//!
//! ```python
//! from multiprocessing import Process, Pipe
//!
//! def send_data(conn):
//!     data = [1, 2, 3, 4, 5]
//!     conn.send(data)
//!     conn.close()
//!
//! def receive_data(conn):
//!     data = conn.recv()
//!     print(data)
//!     conn.close()
//!
//! if __name__ == '__main__':
//!     parent_conn, child_conn = Pipe()
//!     p1 = Process(target=send_data, args=(child_conn,))
//!     p2 = Process(target=receive_data, args=(parent_conn,))
//!     p1.start()
//!     p2.start()
//!     p1.join()
//!     p2.join()
//! ```
//!
//! Run with `cargo run --release --example pipe_pair`.

use multiproc::{Connection, Process, current_process, pipe};

fn send_data(mut conn: Connection) {
    let data = vec![1, 2, 3, 4, 5];
    conn.send(&data).expect("send");
    // No `conn.close()`: `conn` is dropped (and so closed) when the function returns.
}

fn receive_data(mut conn: Connection) -> Vec<i32> {
    // `recv` needs to know what to decode: the type comes from the annotation.
    let data: Vec<i32> = conn.recv().expect("recv");
    println!("{} received {data:?}", current_process().name);
    data
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (parent_conn, child_conn) = pipe()?;

    // `Process(target=..., args=(...,)).start()` is one call. The connection is *moved* into
    // the child: the parent no longer has its own copy of either end (Python's parent keeps
    // both open until garbage collection). So if the sender died without sending, the
    // receiver would get an end-of-file error instead of waiting forever.
    let p1 = Process::start(send_data, child_conn)?;
    let p2 = Process::start(receive_data, parent_conn)?;

    // `join` also hands back what the child returned (and turns a panic in the child into an
    // error here): the receiver's list makes it back to the parent for free.
    p1.join()?;
    let data = p2.join()?;
    assert_eq!(data, [1, 2, 3, 4, 5]);
    println!("MainProcess: the receiver returned {data:?}");
    Ok(())
}
