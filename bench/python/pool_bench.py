"""Python's multiprocessing.Pool, measured like bench/pool.go measures
pool.Pool: the same tasks, worker counts and chunksizes.

Run by `go run ./bench pool` (embedded in the binary); standalone:

    python3 bench/python/pool_bench.py --duration 0.3

Standard library only, so any python3 works. Prints one JSON object with
the figures that --what asks for:
{"tiny_rate": tasks/s of the median map of tiny tasks,
 "cpu": [seconds on 1 worker, seconds on 2 workers] for the CPU-bound map,
 "start_stop_ns": median time to start a Pool(2), run one item, stop it}.
"""

import argparse
import json
import multiprocessing as mp
import statistics
import time

MASK = (1 << 64) - 1


def square(x):
    return x * x


def spin(n):
    """The CPU-bound task: n rounds of a 64-bit xorshift generator."""
    x = n | 1
    for _ in range(n):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def calibrate(target):
    """The n for which spin(n) takes about target seconds on one core:
    the fastest of several timings, the one least disturbed by load."""
    n = 2000
    best = min(timed(spin, n) for _ in range(20))
    return max(1, int(n * target / best))


def timed(f, *args):
    t0 = time.perf_counter()
    f(*args)
    return time.perf_counter() - t0


def tiny(args):
    data = list(range(args.tiny_n))
    with mp.Pool(args.workers) as p:
        p.map(square, range(1000))  # warm up
        times = []
        deadline = time.monotonic() + args.duration
        while len(times) < 3 or time.monotonic() < deadline:
            t0 = time.perf_counter()
            out = p.map(square, data, chunksize=args.tiny_chunksize)
            times.append(time.perf_counter() - t0)
            assert out[-1] == data[-1] ** 2
    return args.tiny_n / statistics.median(times)


def cpu(args):
    n = calibrate(args.cpu_target)
    tasks = [n] * args.cpu_n
    pools = [mp.Pool(1), mp.Pool(2)]
    try:
        for p in pools:
            p.map(square, range(10))  # workers up
        times = [[], []]
        for i in (0, 1, 1, 0):  # ABBA
            t0 = time.perf_counter()
            pools[i].map(spin, tasks, chunksize=args.cpu_chunksize)
            times[i].append(time.perf_counter() - t0)
    finally:
        for p in pools:
            p.terminate()
            p.join()
    return [statistics.median(t) for t in times]


def start_stop():
    times = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        p = mp.Pool(2)
        p.map(square, [1])
        p.terminate()
        p.join()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="tiny,cpu,start", help="comma-separated: tiny, cpu, start")
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--workers", type=int, default=mp.cpu_count())
    ap.add_argument("--tiny-n", type=int, default=100_000)
    ap.add_argument("--tiny-chunksize", type=int, default=0)
    ap.add_argument("--cpu-n", type=int, default=1000)
    ap.add_argument("--cpu-chunksize", type=int, default=125)
    ap.add_argument("--cpu-target", type=float, default=0.001)
    args = ap.parse_args()
    if args.tiny_chunksize <= 0:
        args.tiny_chunksize = -(-args.tiny_n // (4 * args.workers))
    what = set(args.what.split(","))
    out = {}
    if "tiny" in what:
        out["tiny_rate"] = tiny(args)
    if "cpu" in what:
        out["cpu"] = cpu(args)
    if "start" in what:
        out["start_stop_ns"] = start_stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
