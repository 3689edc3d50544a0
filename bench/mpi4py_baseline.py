"""mpi4py.futures counterpart of benches/mpi-bench.rs: the same workloads on MPI ranks.

Run under a launcher, rank 0 being the client and the other ranks the workers:

    mpirun -n 3 --oversubscribe --mca pml ob1 python3 -m mpi4py.futures bench/mpi4py_baseline.py

(bench/compare.sh --mpi does it). One JSON object per line, as mpi-bench prints.
"""

import json
import os
import sys
import time

from mpi4py.futures import MPIPoolExecutor, wait

REPS = 5
MAP_TASKS = 200_000
CHUNK1_TASKS = 20_000
SUBMIT_TASKS = 20_000
PRIME_LIMIT = 200_000
PRIME_CHUNKS = 16
# Workload sizes are multiplied by this (the worker ranks import this module too, with
# other arguments, so it comes from the environment).
SCALE = float(os.environ.get("MPI_BENCH_SCALE", "1"))


def noop_item(_):
    return None


def count_primes(bounds):
    lo, hi = bounds
    c = 0
    for n in range(max(lo, 2), hi):
        if n < 4:
            c += 1
            continue
        if n % 2 == 0:
            continue
        i = 3
        prime = True
        while i * i <= n:
            if n % i == 0:
                prime = False
                break
            i += 2
        c += prime
    return c


def emit(case, value, unit, **params):
    print(json.dumps({"case": case, "value": round(value, 6), "unit": unit, "params": params}))
    sys.stdout.flush()
    print(f"  {case:36} {value:.4f} {unit}", file=sys.stderr)


def per_task(n, run):
    run(max(n // 10, 1))
    samples = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return sorted(samples)[len(samples) // 2]


def main():
    with MPIPoolExecutor() as ex:
        workers = ex.num_workers
        n = int(MAP_TASKS * SCALE)
        chunk = -(-n // (4 * workers))
        us = per_task(n, lambda k: list(ex.map(noop_item, range(k), chunksize=-(-k // (4 * workers)))))
        emit("mpi_pool_map_noop", us, "us", tasks=n, workers=workers, chunksize=chunk)
        n = int(CHUNK1_TASKS * SCALE)
        us = per_task(n, lambda k: list(ex.map(noop_item, range(k), chunksize=1)))
        emit("mpi_pool_map_noop_chunk1", us, "us", tasks=n, workers=workers, chunksize=1)
        n = int(SUBMIT_TASKS * SCALE)
        us = per_task(n, lambda k: wait([ex.submit(noop_item, 0) for _ in range(k)]))
        emit("mpi_executor_submit_noop", us, "us", tasks=n, workers=workers)
        step = PRIME_LIMIT // PRIME_CHUNKS
        bounds = [(i * step, PRIME_LIMIT if i == PRIME_CHUNKS - 1 else (i + 1) * step)
                  for i in range(PRIME_CHUNKS)]
        chunksize = -(-PRIME_CHUNKS // (4 * workers))

        def serial():
            t0 = time.perf_counter()
            assert sum(map(count_primes, bounds)) == 17_984
            return time.perf_counter() - t0

        def parallel():
            t0 = time.perf_counter()
            assert sum(ex.map(count_primes, bounds, chunksize=chunksize)) == 17_984
            return time.perf_counter() - t0

        serial()
        parallel()
        ratios = sorted(serial() / parallel() for _ in range(REPS))
        emit("mpi_cpu_bound_speedup", ratios[len(ratios) // 2], "x", workers=workers, chunks=PRIME_CHUNKS)


if __name__ == "__main__":
    main()
