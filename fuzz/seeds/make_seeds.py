"""Write the seed corpus of every fuzz target into fuzz/corpus/<target>/seed-*.

Run from the repository root: python3 fuzz/seeds/make_seeds.py. The seeds are valid
inputs (real frames, real pickles made by this Python, real handshake transcripts) in each
target's input layout (see the doc comment at the top of each target)."""

import os
import pickle
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pstr(s):
    b = s.encode()
    return varint(len(b)) + b


def frame(body):
    return struct.pack(">i", len(body)) + body


def long_frame(body):
    return struct.pack(">iq", -1, len(body)) + body


def segment(data, fds=0):
    return bytes([fds]) + struct.pack("<H", len(data)) + data


# ----- frame_decoder: [limit][n][ops][segments] ---------------------------------------------
# postcard bodies of frame_decoder's Msg: Unit=0, Num(u64,i32)=1, Text{s,opt}=2, Bytes=3, File=4
text = bytes([0]) + varint(2) + pstr("hello") + b"\x01\x01" + varint(7)
num = bytes([0]) + varint(1) + varint(300) + varint(2 * 5)  # zigzag i32 5
string = bytes([0]) + pstr("a string")
file_msg = bytes([1]) + varint(4) + varint(0)
py = pickle.dumps({"n": 1, "l": [1.5, None, "x"]}, protocol=4)
stream = b"".join(
    [
        segment(frame(b"raw bytes")),
        segment(frame(text)),
        segment(frame(num)),
        segment(frame(string)),
        segment(frame(file_msg), fds=1),
        segment(frame(py)),
        segment(long_frame(b"long header")),
    ]
)
ops = bytes([0, 1, 1, 2, 1, 7, 0])
write("frame_decoder", "mixed", bytes([6, len(ops)]) + ops + stream)
ops = bytes([5, 6, 11, 3 | (8 << 4), 4 | (15 << 4), 9, 8])
write("frame_decoder", "timeouts", bytes([7, len(ops)]) + ops + stream)
write("frame_decoder", "too-large", bytes([2, 2, 0, 0]) + segment(frame(b"x" * 100)))
write("frame_decoder", "negative", bytes([6, 1, 0]) + segment(struct.pack(">i", -5)))
write("frame_decoder", "truncated", bytes([6, 1, 2]) + segment(frame(string)[:7]))
write("frame_decoder", "split", bytes([6, 2, 1, 0]) + segment(frame(text)[:3]) + segment(frame(text)[3:] + frame(b"z")))

# ----- handshakes: [key len][key][challenge 40][script] -------------------------------------
key = b"secret key"
head = bytes([len(key)]) + key + bytes(range(40))
chal = bytes(range(100, 140))
legacy = bytes(range(20))
# op1 = answer the library (arg: 0 sha256, 1 md5, 2 sha384, 3 legacy raw md5)
# op3 = #CHALLENGE# + raw message, op4 = #CHALLENGE#{digest} + message, op5 = #WELCOME#
for name, answer in [("sha256", 0x01), ("md5", 0x09), ("sha384", 0x11), ("legacy", 0x19)]:
    peer_chal = bytes([0x04, 40]) + chal
    if name == "legacy":
        peer_chal = bytes([0x03, 20]) + legacy
    write("handshake_server", name, head + bytes([answer]) + peer_chal + bytes([0x05]))
    write("handshake_client", name, head + peer_chal + bytes([0x05, answer]))
write("handshake_server", "wrong-answer", head + bytes([0x01 | (4 << 3), 3, 1]))
write("handshake_server", "failure", head + bytes([0x01]) + bytes([0x04, 40]) + chal + bytes([0x06]))
write("handshake_client", "md5-challenge", head + bytes([0x04 | (1 << 3), 40]) + chal + bytes([0x05, 0x01]))
write("handshake_client", "raw-garbage", head + bytes([0x00, 12]) + frame(b"#CHALL"))
write("handshake_client", "huge-header", head + bytes([0x07, 0x7F, 0xFF, 0xFF, 0xFF]))

# ----- pickle: [mode][pickle] ---------------------------------------------------------------
values = [
    None,
    True,
    -5,
    2**70,
    -(2**100),
    1.25,
    "text é",
    b"bytes\x00\xff",
    bytearray(b"ba"),
    [1, [2, [3, []]], "x"],
    (1, 2, 3),
    (),
    {"a": 1, "b": [1.5, None]},
    {1, 2, 3},
    frozenset({"x"}),
    {"name": "n", "id": 3, "tags": ["a", "b"], "scores": {"x": 1.0}, "blob": b"zz"},
    {"k": [1, 2, 3]},
    ("s", b"bb", [(1, True), (2, False)]),
    [[1.0, 2.0], None, []],
]
shared = [1, 2]
values.append([shared, shared, {"again": shared}])  # memo references
for p in range(0, pickle.HIGHEST_PROTOCOL + 1):
    for i, v in enumerate(values):
        data = pickle.dumps(v, protocol=p)
        write("pickle", "p%d-v%02d" % (p, i), bytes([i % 6]) + data)
# Things that must be refused.
import collections
write("pickle", "global", bytes([0]) + pickle.dumps(collections.OrderedDict(a=1), protocol=2))
write("pickle", "reduce", bytes([1]) + pickle.dumps(range(3), protocol=4))

# ----- typed_decode: [type][flags][body: count byte + postcard] -----------------------------
order = (
    varint(7) + pstr("order") + varint(2) + pstr("t1") + pstr("t2") + varint(3) + b"abc"
    + b"\x01\x01" + pstr("note") + varint(2) + struct.pack("<dd", 1.0, 2.0)
    + varint(1) + pstr("k") + varint(4)
)
write("typed_decode", "order", bytes([0, 4]) + b"\x00" + order)
write("typed_decode", "kind", bytes([1, 4]) + b"\x00" + varint(3) + pstr("n") + b"\x01\x05")
write("typed_decode", "pair", bytes([2, 4]) + b"\x00" + pstr("s") + varint(2) + b"\xff\x00")
write("typed_decode", "vec", bytes([3, 4]) + b"\x00" + varint(2) + b"\x01" + varint(9) + pstr("x") + b"\x00")
write("typed_decode", "options", bytes([4, 4]) + b"\x00" + b"\x01\x01\x01" + pstr("deep"))
write("typed_decode", "handle", bytes([5, 4 | 1]) + b"\x01" + varint(0))
with_handles = pstr("w") + b"\x01" + varint(0) + varint(1) + varint(1) + b"\x00"
write("typed_decode", "with-handles", bytes([6, 4 | 2]) + b"\x02" + with_handles)
# A Connection: fd, readable, writable, max_message, pending, pending_fds, pending_fd_reads.
conn = varint(0) + b"\x01\x01" + varint(1 << 20) + varint(9) + frame(b"hello") + varint(0) + varint(0)
write("typed_decode", "connection", bytes([7, 4 | 1]) + b"\x01" + conn)
conn_fds = (
    varint(0) + b"\x01\x01" + varint(64) + varint(5) + frame(b"a")[:5] + varint(1) + varint(1)
    + varint(1) + varint(0) + varint(2) + varint(1)
)
write("typed_decode", "connection-fds", bytes([7, 4 | 2]) + b"\x02" + conn_fds)
write("typed_decode", "handles-kind", bytes([8, 4 | 3]) + b"\x03" + varint(3) + varint(0) + varint(1) + varint(2) + varint(1) + varint(8))
