"""Python's concurrent.futures.ProcessPoolExecutor and Pool.imap, measured
like bench/executor.go measures pool.Executor: the same tasks, worker
counts and chunksizes.

Run by `go run ./bench executor` (embedded in the binary); standalone:

    python3 bench/python/executor_bench.py --what submit --duration 0.3

Standard library only. Prints one JSON object with the figures that --what
asks for:
{"submit_p50_ns", "submit_p90_ns": one ex.submit(square, i).result() on a
 warm ProcessPoolExecutor,
 "imap_rate": items/s of Pool.imap(square, range(n), chunksize=c) consumed
 to the last item, "imap_maxrss_kb": the parent's peak RSS after it
 (imap has no bound between its input and a slow consumer: CPython gh-64192)}.
"""

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import resource
import statistics
import time


def square(x):
    return x * x


def submit(args):
    with cf.ProcessPoolExecutor(max_workers=args.workers) as ex:
        for i in range(200):  # workers up, warm
            ex.submit(square, i).result()
        times = []
        deadline = time.monotonic() + args.duration
        i = 0
        while len(times) < 100 or time.monotonic() < deadline:
            t0 = time.perf_counter_ns()
            r = ex.submit(square, i).result()
            times.append(time.perf_counter_ns() - t0)
            assert r == i * i
            i += 1
    times.sort()
    return times[len(times) // 2], times[len(times) * 9 // 10]


def imap(args):
    with mp.Pool(args.workers) as p:
        p.map(square, range(1000))  # workers up
        t0 = time.perf_counter()
        total, count = 0, 0
        for y in p.imap(square, range(args.n), chunksize=args.chunksize):
            total += y
            count += 1
        elapsed = time.perf_counter() - t0
        assert count == args.n
    return args.n / elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--what", default="submit,imap")
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--workers", type=int, default=mp.cpu_count())
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunksize", type=int, default=1000)
    args = ap.parse_args()
    what = set(args.what.split(","))
    out = {}
    if "submit" in what:
        out["submit_p50_ns"], out["submit_p90_ns"] = submit(args)
    if "imap" in what:
        out["imap_rate"], out["imap_maxrss_kb"] = imap(args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
