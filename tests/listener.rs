//! `Listener` and `Client` against real CPython peers (every python3 on the machine: the
//! system one and those under ~/.pyenv/versions, 3.8 and later), and against peers that
//! break the handshake.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use multiproc::ConnectionError;
use multiproc::listener::{Address, Client, Listener};

/// Every CPython interpreter on this machine that has the modern `multiprocessing` (3.8+).
fn pythons() -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("python3")];
    if let Some(home) = std::env::var_os("HOME") {
        let root = PathBuf::from(home).join(".pyenv/versions");
        if let Ok(entries) = std::fs::read_dir(&root) {
            let mut versions: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let mut parts = name.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
                    (parts.next(), parts.next()) >= (Some(3), Some(8))
                })
                .map(|e| e.path().join("bin/python3"))
                .filter(|p| p.exists())
                .collect();
            versions.sort();
            found.extend(versions);
        }
    }
    found
}

fn python(interpreter: &PathBuf, script: &str, args: &[&str]) -> Child {
    Command::new(interpreter)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const PY_CLIENT: &str = r#"
import sys
from multiprocessing.connection import Client
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with Client((host, port), authkey=key) as c:
    c.send_bytes(b"hello from python " + sys.version.split()[0].encode())
    reply = c.recv_bytes()
    big = c.recv_bytes()
    assert big == bytes(range(256)) * (len(big) // 256), "big message corrupted"
    c.send_bytes(big[::-1])
    print("got", reply.decode(), len(big))
"#;

/// A Rust listener accepts Python's `Client` with the right key; bytes flow both ways,
/// including a 16 MiB message.
#[test]
fn rust_listener_serves_python_clients() {
    let _g = common::guard();
    for py in pythons() {
        let listener = Listener::bind("127.0.0.1:0", Some(b"shared key")).unwrap();
        let Address::Tcp(addr) = listener.address().clone() else {
            unreachable!()
        };
        let port = addr.port().to_string();
        let child = python(&py, PY_CLIENT, &["127.0.0.1", &port, "shared key"]);
        let mut conn = listener.accept().unwrap();
        let hello = conn.recv_bytes().unwrap();
        assert!(hello.starts_with(b"hello from python 3."), "{py:?}");
        conn.send_bytes(b"hello from rust").unwrap();
        let big: Vec<u8> = (0..16 * 1024 * 1024).map(|i| i as u8).collect();
        conn.send_bytes(&big).unwrap();
        let back = conn.recv_bytes().unwrap();
        assert!(back.iter().rev().eq(big.iter()), "{py:?}: reversed message");
        let (ok, out) = finish(child);
        assert!(ok, "{py:?}: {out}");
        assert!(
            out.contains("got hello from rust 16777216"),
            "{py:?}: {out}"
        );
    }
}

const PY_LISTENER: &str = r#"
import sys
from multiprocessing.connection import Listener
key = sys.argv[1].encode()
with Listener(("127.0.0.1", 0), authkey=key) as l:
    print(l.address[1], flush=True)
    try:
        with l.accept() as c:
            msg = c.recv_bytes()
            c.send_bytes(msg.upper())
            print("served", msg.decode(), flush=True)
    except Exception as e:
        print("refused", type(e).__name__, flush=True)
"#;

/// Read the port a Python listener printed on its first line.
fn read_port(child: &mut Child) -> u16 {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap().trim().parse().unwrap()
}

/// A Rust client connects to Python's `Listener` with the right key.
#[test]
fn rust_client_talks_to_python_listeners() {
    let _g = common::guard();
    for py in pythons() {
        let mut child = python(&py, PY_LISTENER, &["k3y"]);
        let port = read_port(&mut child);
        let mut conn = Client::connect(format!("127.0.0.1:{port}"), Some(b"k3y")).unwrap();
        conn.send_bytes(b"shout").unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"SHOUT", "{py:?}");
        let (ok, out) = finish(child);
        assert!(ok && out.contains("served shout"), "{py:?}: {out}");
    }
}

/// A wrong key fails on both sides, whichever side is Python.
#[test]
fn a_wrong_key_fails_on_both_sides() {
    let _g = common::guard();
    for py in pythons() {
        // Python client, Rust listener.
        let listener = Listener::bind("127.0.0.1:0", Some(b"right")).unwrap();
        let Address::Tcp(addr) = listener.address().clone() else {
            unreachable!()
        };
        let child = python(
            &py,
            PY_CLIENT,
            &["127.0.0.1", &addr.port().to_string(), "wrong"],
        );
        match listener.accept() {
            Err(ConnectionError::Authentication(_)) => {}
            other => panic!("{py:?}: expected an authentication error, got {other:?}"),
        }
        let (ok, out) = finish(child);
        assert!(!ok && out.contains("AuthenticationError"), "{py:?}: {out}");

        // Rust client, Python listener.
        let mut child = python(&py, PY_LISTENER, &["right"]);
        let port = read_port(&mut child);
        match Client::connect(format!("127.0.0.1:{port}"), Some(b"wrong")) {
            Err(ConnectionError::Authentication(_)) => {}
            other => panic!("{py:?}: expected an authentication error, got {other:?}"),
        }
        let (_, out) = finish(child);
        assert!(out.contains("refused AuthenticationError"), "{py:?}: {out}");
    }
}

/// A peer that sends garbage, and one that says nothing, each make one `accept` fail
/// promptly; the listener then serves a good client.
#[test]
fn garbage_and_stalled_handshakes_are_dropped_and_the_listener_goes_on() {
    let _g = common::guard();
    let mut listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
    listener.set_handshake_timeout(Duration::from_millis(300));
    let Address::Tcp(addr) = listener.address().clone() else {
        unreachable!()
    };

    // Garbage: a frame announcing 1 GiB, then noise.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&0x4000_0000i32.to_be_bytes()).unwrap();
    garbage.write_all(b"not a digest").unwrap();
    let started = Instant::now();
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Authentication(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));

    // A wrong-length reply to the challenge.
    let mut wrong = TcpStream::connect(addr).unwrap();
    wrong.write_all(&5i32.to_be_bytes()).unwrap();
    wrong.write_all(b"12345").unwrap();
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Authentication(_))
    ));

    // Silence.
    let silent = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Authentication(_))
    ));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // A good client is still served.
    let good = std::thread::spawn(move || {
        let mut conn = Client::connect(addr, Some(b"key")).unwrap();
        conn.send(&"after the bad ones").unwrap();
    });
    let mut conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "after the bad ones");
    good.join().unwrap();
    drop((garbage, wrong, silent));
}

/// A peer that connects and says nothing does not hold up a good client: handshakes run
/// concurrently, and `accept` returns the good client long before the stalled peer's
/// handshake times out (a minute here: the test would wait that long if they ran in turn).
#[test]
fn a_stalled_peer_does_not_delay_a_good_client() {
    let _g = common::guard();
    let mut listener = Listener::bind("127.0.0.1:0", Some(b"key")).unwrap();
    let timeout = Duration::from_secs(60);
    listener.set_handshake_timeout(timeout);
    let Address::Tcp(addr) = listener.address().clone() else {
        unreachable!()
    };
    let stalled = TcpStream::connect(addr).unwrap();
    let good = std::thread::spawn(move || {
        let mut conn = Client::connect(addr, Some(b"key")).unwrap();
        conn.send(&"not held up").unwrap();
    });
    let started = Instant::now();
    let mut conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "not held up");
    assert!(started.elapsed() < timeout / 2, "{:?}", started.elapsed());
    good.join().unwrap();
    // The stalled peer's handshake fails as soon as it hangs up.
    drop(stalled);
    assert!(matches!(
        listener.accept(),
        Err(ConnectionError::Authentication(_) | ConnectionError::Eof)
    ));
}

/// Unix socket paths work too, and the socket file goes with the listener.
#[test]
fn unix_socket_listener_and_client() {
    let _g = common::guard();
    let path = std::env::temp_dir().join(format!("multiproc-test-{}.sock", std::process::id()));
    let listener = Listener::bind(path.as_path(), Some(b"unix key")).unwrap();
    let client_path = path.clone();
    let client = std::thread::spawn(move || {
        let mut conn = Client::connect(client_path.as_path(), Some(b"unix key")).unwrap();
        conn.send_bytes(b"over unix").unwrap();
    });
    let mut conn = listener.accept().unwrap();
    assert_eq!(conn.recv_bytes().unwrap(), b"over unix");
    client.join().unwrap();
    drop(listener);
    assert!(!path.exists());
}

#[cfg(feature = "pickle")]
const PY_PICKLER: &str = r#"
import sys
from fractions import Fraction
from multiprocessing.connection import Client
host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with Client((host, port), authkey=key) as c:
    c.send({"name": "tea", "qty": 3, "price": 2.5, "tags": ["green", "hot"], "extra": None,
            "blob": b"\x00\x01\xff", "pair": (7, "x"), "flag": True})
    c.send(2**70)
    reply = c.recv()
    assert reply == ([1, 2, 3], {"ok": True}, None, "done", b"xy", (1.5, -2)), reply
    c.send(Fraction(1, 2))   # an object: must be refused, not decoded
    print("refusal:", c.recv())
    print("python got", reply)
"#;

#[cfg(feature = "pickle")]
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Order {
    name: String,
    qty: i64,
    price: f64,
    tags: Vec<String>,
    extra: Option<i64>,
    blob: serde_bytes::ByteBuf,
    pair: (i64, String),
    flag: bool,
}

/// Python's `conn.send(dict)` arrives in Rust as a typed struct, Rust's reply arrives in
/// Python as objects, and a pickled object (it would import `fractions`) is refused.
#[test]
#[cfg(feature = "pickle")]
fn pickled_plain_data_crosses_both_ways_and_objects_are_refused() {
    let _g = common::guard();
    for py in pythons() {
        let listener = Listener::bind("127.0.0.1:0", Some(b"pickles")).unwrap();
        let Address::Tcp(addr) = listener.address().clone() else {
            unreachable!()
        };
        let child = python(
            &py,
            PY_PICKLER,
            &["127.0.0.1", &addr.port().to_string(), "pickles"],
        );
        let mut conn = listener.accept().unwrap();
        let order: Order = conn.recv_pickle().unwrap();
        assert_eq!(order.name, "tea");
        assert_eq!((order.qty, order.price, order.flag), (3, 2.5, true));
        assert_eq!(order.tags, ["green", "hot"]);
        assert_eq!(order.extra, None);
        assert_eq!(order.blob.as_slice(), b"\x00\x01\xff");
        assert_eq!(order.pair, (7, "x".to_string()));
        let big = multiproc::pickle::value_from_slice(&conn.recv_bytes().unwrap()).unwrap();
        assert_eq!(big.to_string(), "1180591620717411303424", "{py:?}");
        let mut ok = std::collections::HashMap::new();
        ok.insert("ok", true);
        let reply = (
            vec![1, 2, 3],
            ok,
            None::<i32>,
            "done",
            serde_bytes::ByteBuf::from(b"xy".to_vec()),
            (1.5, -2),
        );
        conn.send_pickle(&reply).unwrap();
        match conn.recv_pickle::<multiproc::pickle::PyValue>() {
            Err(ConnectionError::Codec(e)) => {
                assert!(e.to_string().contains("would import or call"), "{e}")
            }
            other => panic!("{py:?}: an object was accepted: {other:?}"),
        }
        conn.send_pickle(&"refused").unwrap();
        let (ok, out) = finish(child);
        assert!(ok, "{py:?}: {out}");
        assert!(out.contains("refusal: refused"), "{py:?}: {out}");
    }
}

const PY_HUGE: &str = r#"
import sys
from multiprocessing.connection import Client
host, port = sys.argv[1], int(sys.argv[2])
n = (1 << 31) + 3
with Client((host, port), authkey=b"huge") as c:
    got = c.recv_bytes()
    assert len(got) == n and got[:4] == b"head" and got[-4:] == b"tail", len(got)
    del got
    msg = bytearray(n)
    msg[:4] = b"HEAD"
    msg[-4:] = b"TAIL"
    c.send_bytes(msg)
    print("python ok")
"#;

/// Messages over 2 GiB use Python's long form (`-1` then an 8-byte length) both ways.
#[test]
fn messages_over_2_gib_cross_to_and_from_python() {
    let _g = common::guard();
    let listener = Listener::bind("127.0.0.1:0", Some(b"huge")).unwrap();
    let Address::Tcp(addr) = listener.address().clone() else {
        unreachable!()
    };
    let child = python(
        &PathBuf::from("python3"),
        PY_HUGE,
        &["127.0.0.1", &addr.port().to_string()],
    );
    let mut conn = listener.accept().unwrap();
    let n = (1usize << 31) + 3;
    let mut big = vec![0u8; n];
    big[..4].copy_from_slice(b"head");
    big[n - 4..].copy_from_slice(b"tail");
    conn.send_bytes(&big).unwrap();
    drop(big);
    conn.set_max_message_size(4 << 30);
    let back = conn.recv_bytes().unwrap();
    assert_eq!(back.len(), n);
    assert_eq!(&back[..4], b"HEAD");
    assert_eq!(&back[n - 4..], b"TAIL");
    drop(back);
    let (ok, out) = finish(child);
    assert!(ok && out.contains("python ok"), "{out}");
}

const PY_ABSTRACT: &str = r#"
import sys
from multiprocessing.connection import Client, Listener
name, key = sys.argv[1], sys.argv[2].encode()
with Client("\0" + name, authkey=key) as c:
    c.send_bytes(c.recv_bytes().upper())
with Listener("\0" + name + "-py", authkey=key) as l:
    print("listening", flush=True)
    with l.accept() as c:
        c.send_bytes(b"from python")
print("done")
"#;

/// An address that starts with a NUL byte is a name in Linux's abstract namespace, as in
/// Python: a Python `Client("\0name")` reaches a Rust listener on `"\0name"`, and a Rust
/// client reaches Python's `Listener("\0name")`. No socket file appears.
#[test]
fn abstract_addresses_interoperate_with_python() {
    let _g = common::guard();
    for py in pythons() {
        let name = format!("multiproc-test-{}-abstract", std::process::id());
        let listener = Listener::bind(format!("\0{name}"), Some(b"abs key")).unwrap();
        assert_eq!(
            listener.address(),
            &Address::Abstract(name.clone().into_bytes())
        );
        let mut child = python(&py, PY_ABSTRACT, &[&name, "abs key"]);
        let mut conn = listener.accept().unwrap();
        conn.send_bytes(b"shout").unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"SHOUT", "{py:?}");
        assert_eq!(read_line(&mut child), "listening", "{py:?}");
        let py_address = PathBuf::from(format!("\0{name}-py"));
        let mut conn = Client::connect(py_address.as_path(), Some(b"abs key")).unwrap();
        assert_eq!(conn.recv_bytes().unwrap(), b"from python", "{py:?}");
        let (ok, out) = finish(child);
        assert!(ok && out.contains("done"), "{py:?}: {out}");
        assert!(!std::path::Path::new(&name).exists());
    }
}

/// One line a Python peer printed.
fn read_line(child: &mut Child) -> String {
    let stdout = child.stdout.as_mut().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stdout.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).trim().to_string()
}

/// Sockets bound in Linux's abstract namespace now (`/proc/net/unix` shows them as `@name`).
fn abstract_names() -> Vec<String> {
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().nth(7))
        .filter_map(|path| path.strip_prefix('@'))
        .map(str::to_string)
        .collect()
}

/// Start a manager and an auto-address listener, tell the parent where they are, then wait
/// for the `SIGKILL` that ends this process.
fn serve_until_killed(mut parent: multiproc::Connection) {
    let manager = multiproc::Manager::start().unwrap();
    let listener = Listener::bind_auto(None).unwrap();
    parent
        .send(&(manager.address().clone(), listener.address().clone()))
        .unwrap();
    let _ = parent.recv::<()>();
}

/// A manager's default address and an auto-address listener are abstract names: a process
/// that holds them and is `SIGKILL`ed leaves no socket file in the temporary directory, and
/// the names are freed with the sockets.
#[test]
fn default_addresses_leave_no_socket_file_when_the_owner_is_killed() {
    let _g = common::guard();
    let (mut ours, theirs) = multiproc::pipe().unwrap();
    let child = multiproc::ProcessBuilder::new()
        .start(serve_until_killed, theirs)
        .unwrap();
    let pid = child.pid();
    let (manager_at, listener_at): (Address, Address) = ours.recv().unwrap();
    let mut names = Vec::new();
    for address in [&manager_at, &listener_at] {
        let Address::Abstract(name) = address else {
            panic!("{address:?} is not an abstract address")
        };
        names.push(String::from_utf8(name.clone()).unwrap());
    }
    let bound = abstract_names();
    assert!(
        names.iter().all(|n| bound.contains(n)),
        "{names:?} not bound"
    );
    // Both answer: the server starts its handshake, the listener accepts into its backlog.
    let mut to_server = Client::connect(&manager_at, None).unwrap();
    assert!(to_server.recv_bytes().unwrap().starts_with(b"#CHALLENGE#"));
    let _to_listener = Client::connect(&listener_at, None).unwrap();

    common::children::kill(child);
    // The server is daemonic: it dies with its owner, closing our connection.
    assert!(to_server.poll(Some(common::children::LONG)).unwrap());
    assert!(to_server.recv_bytes().is_err());
    let mine = format!("-{pid}-");
    let left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("multiproc") && n.contains(&mine))
        .collect();
    assert!(left.is_empty(), "socket files left behind: {left:?}");
    let freed = common::wait_until(Instant::now() + common::children::LONG, || {
        let bound = abstract_names();
        !names.iter().any(|n| bound.contains(n))
    });
    assert!(freed, "{names:?} still bound after their owners died");
}
