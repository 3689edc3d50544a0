//! A Rust worker that answers a Python program: a `Listener` with Python's handshake, and
//! values in Python's pickle format both ways. The Python side (`examples/python_peer.py`)
//! is nothing but `multiprocessing.connection.Client` with `send` and `recv`.
//!
//! `cargo run --example python_peer` (needs `python3`; pass another interpreter as the
//! first argument).

use std::collections::HashMap;
use std::process::Command;

use multiproc::listener::{Address, Listener};
use serde::{Deserialize, Serialize};

/// What the Python client sends: `{"op": ..., "x": ..., "values": [...]}`.
#[derive(Debug, Deserialize)]
struct Request {
    op: String,
    x: Option<i64>,
    values: Option<Vec<f64>>,
}

#[derive(Serialize)]
struct Stats {
    count: usize,
    mean: f64,
    max: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let python = std::env::args().nth(1).unwrap_or_else(|| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python_peer.py");
    let listener = Listener::bind("127.0.0.1:0", Some(b"python peer key"))?;
    let Address::Tcp(addr) = listener.address().clone() else {
        unreachable!("bound to a TCP address")
    };
    println!("rust: listening on {addr}");
    let mut peer = match Command::new(&python)
        .args([script, "127.0.0.1", &addr.port().to_string()])
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            println!("rust: cannot run {python} ({e}); run examples/python_peer.py by hand");
            return Ok(());
        }
    };
    let mut conn = listener.accept()?;
    loop {
        let request: Request = conn.recv_pickle()?;
        println!("rust: got {request:?}");
        match (request.op.as_str(), request.x, request.values) {
            ("square", Some(x), _) => match x.checked_mul(x) {
                Some(sq) => conn.send_pickle(&sq)?,
                None => conn.send_pickle(&"overflow")?,
            },
            ("stats", _, Some(values)) => {
                let stats = Stats {
                    count: values.len(),
                    mean: values.iter().sum::<f64>() / values.len().max(1) as f64,
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                };
                conn.send_pickle(&stats)?;
            }
            ("bye", _, _) => break,
            (op, _, _) => {
                let error = HashMap::from([("error", format!("unknown op {op}"))]);
                conn.send_pickle(&error)?;
            }
        }
    }
    assert!(peer.wait()?.success(), "the Python client failed");
    Ok(())
}
