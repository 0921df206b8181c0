"""Python's multiprocessing.Process, measured like bench/process.go measures
process.Cmd: start a child, get one item back through a Queue, join it.

Run by `go run ./bench process` (embedded in the binary); standalone:

    python3 bench/python/process_bench.py --duration 0.3

Standard library only, so any python3 works. Prints one JSON object:
{"fork": {"median_ns": ..., "n": ...}, "spawn": {...}}, the median time of
one start + get + join, and how many were timed, for each start method.
"""

import argparse
import json
import multiprocessing as mp
import time

ITEM = {"id": 1, "name": "item"}


def child(q):
    q.put(ITEM)


def once(ctx):
    t0 = time.perf_counter_ns()
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    item = q.get(timeout=30)
    p.join(30)
    t = time.perf_counter_ns() - t0
    if item != ITEM or p.exitcode != 0:
        raise RuntimeError(f"bad child: item {item!r}, exit code {p.exitcode}")
    q.close()
    q.join_thread()
    return t


def measure(method, duration, min_n):
    ctx = mp.get_context(method)
    once(ctx)  # warm up: imports, the resource tracker
    times = []
    deadline = time.monotonic() + duration
    while len(times) < min_n or time.monotonic() < deadline:
        times.append(once(ctx))
    times.sort()
    return {"median_ns": times[len(times) // 2], "n": len(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--min", type=int, default=5)
    args = ap.parse_args()
    out = {m: measure(m, args.duration, args.min) for m in ("fork", "spawn")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
