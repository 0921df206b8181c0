"""Python's multiprocessing.Lock, measured like bench/lock.go measures
lock.Lock: 1, 2 and 4 processes acquire and release one lock in a loop
with an empty critical section, and the pairs per second of all of them
together are reported.

Run by `go run ./bench lock` (embedded in the binary); standalone:

    python3 bench/python/lock_bench.py --duration 0.3

Standard library only, so any python3 works. Prints one JSON object:
{"1": pairs_per_s, "2": ..., "4": ...}.
"""

import argparse
import json
import multiprocessing as mp
import time

PROCS = (1, 2, 4)


def worker(lock, barrier, duration, results):
    barrier.wait()  # the starting gate: every worker has started
    acquire, release = lock.acquire, lock.release
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + duration
    while time.perf_counter() < deadline:
        for _ in range(16):
            acquire()
            release()
        n += 16
    results.put((n, time.perf_counter() - t0))


def measure(ctx, procs, duration):
    lock = ctx.Lock()
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(lock, barrier, duration, results)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
        if p.exitcode != 0:
            raise RuntimeError(f"worker exit code {p.exitcode}")
    return sum(n / elapsed for n, elapsed in got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=0.3)
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    print(json.dumps({str(n): measure(ctx, n, args.duration) for n in PROCS}))


if __name__ == "__main__":
    main()
