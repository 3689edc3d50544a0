//! A TCP server that hands every accepted connection to a new process.
//!
//! The Python original (abridged):
//!
//! ```python
//! def game_server(host, port):
//!     sock = socket(AF_INET, SOCK_STREAM)
//!     sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
//!     sock.bind((host, port))
//!     sock.listen(5)
//!     while True:
//!         conn, addr = sock.accept()
//!         print('Connected by', addr)
//!         p = Process(target=handle_client, args=(conn,))
//!         p.start()
//!
//! def handle_client(conn):
//!     while True:
//!         data = conn.recv(1024)
//!         if not data:
//!             break
//!         response = process_data(data.decode('utf-8'))
//!         conn.send(response.encode('utf-8'))
//!     conn.close()
//!
//! def process_data(data):
//!     return 'OK'
//! ```
//!
//! So that the example ends by itself, the server listens on 127.0.0.1 with a port chosen by
//! the OS, serves a fixed number of connections and then joins its workers; a client thread in
//! the same program makes those connections and checks every reply.
//!
//! Run with `cargo run --release --example tcp_server`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};

use multiproc::{Handle, Process, current_process};

const CLIENTS: usize = 3;
const MESSAGES: usize = 2;

/// Runs in a worker process, one per connection. Returns how many requests it served.
fn handle_client(mut conn: Handle<TcpStream>) -> usize {
    // `Handle<TcpStream>` dereferences to the `TcpStream`, so it reads and writes like one.
    let me = current_process();
    let mut served = 0;
    let mut buf = [0u8; 1024];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) => break, // the client closed its side
            Ok(n) => n,
            Err(e) => {
                eprintln!("{}: {e}", me.name);
                break;
            }
        };
        let request = String::from_utf8_lossy(&buf[..n]);
        println!("  {} (pid {}) got {request:?}", me.name, me.pid);
        if conn.write_all(process_data(&request).as_bytes()).is_err() {
            break;
        }
        served += 1;
    }
    served
    // No `conn.close()`: the stream is closed when `conn` goes out of scope.
}

fn process_data(_data: &str) -> &'static str {
    "OK"
}

/// The client side: a few connections open at the same time, each sending a few requests
/// and checking the replies.
fn client(addr: SocketAddr) -> std::io::Result<()> {
    let mut streams = (0..CLIENTS)
        .map(|_| TcpStream::connect(addr))
        .collect::<std::io::Result<Vec<_>>>()?;
    for m in 0..MESSAGES {
        for (c, stream) in streams.iter_mut().enumerate() {
            stream.write_all(format!("hello {c}.{m}").as_bytes())?;
            let mut reply = [0u8; 2];
            stream.read_exact(&mut reply)?;
            assert_eq!(&reply, b"OK");
        }
    }
    for (c, mut stream) in streams.into_iter().enumerate() {
        // Closing our sending side ends the worker's loop; the worker then closes the
        // connection, which we see as end of file. That only happens because the server
        // kept no copy of the accepted socket (see `main`).
        stream.shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest)?;
        assert!(rest.is_empty());
        println!("  client {c}: {MESSAGES} replies OK, then the server closed the connection");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Port 0: the OS picks a free port. (std's `TcpListener::bind` sets SO_REUSEADDR.)
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    println!("server {} listening on {addr}", current_process().pid);

    // The client runs on a thread of this very process. That is fine with the default start
    // method (the fork server forks workers from a single-threaded process); plain `fork`
    // from a multithreaded program is what to avoid.
    let client = std::thread::spawn(move || client(addr));

    let mut workers = Vec::new();
    for conn in listener.incoming().take(CLIENTS) {
        let conn = conn?;
        println!("Connected by {}", conn.peer_addr()?);
        // The accepted socket is *moved* into the worker: it travels to the child as a file
        // descriptor, and the server's own copy is closed as soon as the child has it. Python's
        // server (with fork) keeps its copy open, so the client does not see the connection
        // close until the server's `conn` is garbage-collected.
        workers.push(Process::start(handle_client, Handle::new(conn))?);
    }

    // The seed's server never stops; this one has served its connections, so it reaps its
    // workers and checks each one's count.
    for worker in workers {
        assert_eq!(worker.join()?, MESSAGES);
    }
    client.join().expect("client thread panicked")?;
    println!("served {CLIENTS} connections, {MESSAGES} requests each");
    Ok(())
}
