"""The Python side of `cargo run --example python_peer`: a plain multiprocessing Client.

Run by the example (or by hand: python3 examples/python_peer.py HOST PORT).
"""
import sys
from multiprocessing.connection import Client

host, port = sys.argv[1], int(sys.argv[2])
with Client((host, port), authkey=b"python peer key") as conn:
    for x in (3, 12, 2**40):
        conn.send({"op": "square", "x": x})
        print("python: square of", x, "is", conn.recv())
    conn.send({"op": "stats", "values": [1.5, 2.5, 4.0]})
    print("python: stats", conn.recv())
    conn.send({"op": "bye"})
