#!/usr/bin/env python3
"""Python's multiprocessing measured on the cases multiproc-bench measures, for
bench/compare.sh when the fuller baseline of ../shared/bench is not there.

    python3 bench/python_reference.py [--cases a,b,...] [--scale F]

Each case prints one JSON line on stdout,
    {"case": name, "value": number, "unit": unit, "params": {...}}
with the same name, unit and unit of work as the multiproc-bench case of that name (see
benches/multiproc-bench/), the median of REPS timed runs after one warm-up run. Progress goes
to stderr. Cases of multiproc-bench missing here show as "-" in compare.sh's table.
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

REPS = 5


def timed_median(run, size):
    """Warm up once, then the median of REPS runs of `run(size)` (each returns a value)."""
    run(max(1, size // 10))
    samples = [run(size) for _ in range(REPS)]
    return statistics.median(samples), {"samples": REPS, "min": min(samples), "max": max(samples)}


# ---- children's loops (module level, so every start method can find them) ----


def noop(_=None):
    return None


def echo(conn):
    while True:
        msg = conn.recv()
        if msg is None:
            return
        conn.send(msg)


def echo_bytes(conn):
    while True:
        msg = conn.recv_bytes()
        if not msg:
            return
        conn.send_bytes(msg)


def sink_bytes(conn):
    while True:
        msg = conn.recv_bytes()
        if not msg:
            return
        conn.send(len(msg))


def producer(conn, q):
    while True:
        n = conn.recv()
        if n is None:
            return
        for i in range(n):
            q.put(i)
        q.put(None)


# ---- cases ----


def case_machine(ctx):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    return None, "", {
        "python_version": platform.python_version(),
        "default_start_method": mp.get_start_method(),
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "reps": REPS,
        "statistic": "median",
        "scale": ctx.scale,
    }


def spawn_join(method):
    def case(ctx):
        mc = mp.get_context(method)

        def run(k):
            t0 = time.perf_counter()
            for _ in range(k):
                p = mc.Process(target=noop)
                p.start()
                p.join()
            return (time.perf_counter() - t0) / k * 1e3

        value, stats = timed_median(run, ctx.sz(20))
        return value, "ms", {"per": "start()+join() of one no-op Process", "start_method": method, **stats}

    return case


def with_child(target, *args):
    parent, child = mp.Pipe()
    p = mp.Process(target=target, args=(child, *args))
    p.start()
    child.close()
    return parent, p


def case_pipe_rtt_small(ctx):
    conn, p = with_child(echo)
    msg = b"x" * 16

    def run(k):
        t0 = time.perf_counter()
        for _ in range(k):
            conn.send(msg)
            conn.recv()
        return (time.perf_counter() - t0) / k * 1e6

    value, stats = timed_median(run, ctx.sz(20_000))
    conn.send(None)
    p.join()
    return value, "us", {"per": "round trip of a 16-byte object (send/recv, pickled)", **stats}


def case_pipe_rtt_small_bytes(ctx):
    conn, p = with_child(echo_bytes)
    msg = b"x" * 16

    def run(k):
        t0 = time.perf_counter()
        for _ in range(k):
            conn.send_bytes(msg)
            conn.recv_bytes()
        return (time.perf_counter() - t0) / k * 1e6

    value, stats = timed_median(run, ctx.sz(20_000))
    conn.send_bytes(b"")
    p.join()
    return value, "us", {"per": "round trip of 16 bytes (send_bytes/recv_bytes)", **stats}


def case_pipe_throughput_1mb(ctx):
    conn, p = with_child(sink_bytes)
    payload = bytes([0xA5]) * (1 << 20)

    def run(k):
        t0 = time.perf_counter()
        for _ in range(k):
            conn.send_bytes(payload)
            conn.recv()
        return k / (time.perf_counter() - t0)

    value, stats = timed_median(run, ctx.sz(200))
    conn.send_bytes(b"")
    p.join()
    return value, "MB/s", {"per": "1 MiB message to a child that acknowledges it", **stats}


def queue_case(make_queue, label):
    def case(ctx):
        q = make_queue()
        conn, p = with_child(producer, q)

        def run(k):
            t0 = time.perf_counter()
            conn.send(k)
            got = 0
            while q.get() is not None:
                got += 1
            assert got == k
            return k / (time.perf_counter() - t0)

        value, stats = timed_median(run, ctx.sz(50_000))
        conn.send(None)
        p.join()
        return value, "msg/s", {"per": f"small int through a {label}, one producer child", **stats}

    return case


def case_lock_uncontended(ctx):
    lock = mp.Lock()

    def run(k):
        t0 = time.perf_counter()
        for _ in range(k):
            lock.acquire()
            lock.release()
        return (time.perf_counter() - t0) / k * 1e9

    value, stats = timed_median(run, ctx.sz(1_000_000))
    return value, "ns", {"per": "acquire()+release() pair, single process", **stats}


def case_pool_map_noop(ctx):
    with mp.Pool(2) as pool:
        def run(k):
            t0 = time.perf_counter()
            assert len(pool.map(noop, range(k))) == k
            return (time.perf_counter() - t0) / k * 1e6

        value, stats = timed_median(run, ctx.sz(200_000))
    return value, "us", {"per": "task", "processes": 2, "chunksize": "default", **stats}


def case_pool_apply_async_latency(ctx):
    with mp.Pool(2) as pool:
        def run(k):
            t0 = time.perf_counter()
            for _ in range(k):
                pool.apply_async(noop, (0,)).get()
            return (time.perf_counter() - t0) / k * 1e6

        value, stats = timed_median(run, ctx.sz(2_000))
    return value, "us", {"per": "apply_async(...).get() of a no-op, one at a time", **stats}


def case_manager_dict_setget(ctx):
    with mp.Manager() as manager:
        d = manager.dict()

        def run(k):
            t0 = time.perf_counter()
            for i in range(k):
                d[i] = i
                d[i]
            return (time.perf_counter() - t0) / k * 1e6

        value, stats = timed_median(run, ctx.sz(5_000))
    return value, "us", {"per": "d[k] = v followed by d[k] (2 proxy round trips)", **stats}


CASES = {
    "machine": case_machine,
    "spawn_join_fork": spawn_join("fork"),
    "spawn_join_spawn": spawn_join("spawn"),
    "spawn_join_forkserver": spawn_join("forkserver"),
    "pipe_rtt_small": case_pipe_rtt_small,
    "pipe_rtt_small_bytes": case_pipe_rtt_small_bytes,
    "pipe_throughput_1mb": case_pipe_throughput_1mb,
    "queue_throughput_small": queue_case(mp.Queue, "Queue"),
    "simplequeue_throughput_small": queue_case(mp.SimpleQueue, "SimpleQueue"),
    "lock_uncontended": case_lock_uncontended,
    "pool_map_noop": case_pool_map_noop,
    "pool_apply_async_latency": case_pool_apply_async_latency,
    "manager_dict_setget": case_manager_dict_setget,
}


class Ctx:
    def __init__(self, scale):
        self.scale = scale

    def sz(self, n):
        return max(1, int(n * self.scale))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    ctx = Ctx(args.scale)
    names = [c for c in args.cases.split(",") if c]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        # compare.sh passes multiproc-bench's case list: say what is missing, run the rest.
        print(f"not measured here: {', '.join(unknown)}", file=sys.stderr)
        names = [c for c in names if c in CASES]
    if "machine" not in names:
        names.insert(0, "machine")
    for name in names:
        t0 = time.perf_counter()
        try:
            value, unit, params = CASES[name](ctx)
        except Exception as e:  # a failed case is reported, the others still run
            value, unit, params = None, "", {"error": f"{type(e).__name__}: {e}"}
        params["case_wall_s"] = round(time.perf_counter() - t0, 3)
        print(json.dumps({"case": name, "value": value, "unit": unit, "params": params}), flush=True)
        print(f"  {name:32s} {value} {unit}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
