"""Python's multiprocessing Value, Semaphore and Event, measured like
bench/prims.go measures mproc's: Value read-modify-write under get_lock()
with 1 and 4 processes, Semaphore(1) acquire+release with 1 and 4
processes (the first uncontended, the second contended), and the latency
from Event.set() to the last of 4 waiting processes awake.

Run by `go run ./bench prims` (embedded in the binary); standalone:

    python3 bench/python/prims_bench.py --duration 0.3 --rounds 50

Standard library only. Prints one JSON object:
{"value": {"1": ops_per_s, "4": ...}, "semaphore": {"1": ..., "4": ...},
 "event": [latency_ns, ...]}.
"""

import argparse
import json
import multiprocessing as mp
import time

PROCS = (1, 4)


def value_worker(v, barrier, duration, results):
    barrier.wait()
    lock = v.get_lock()
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + duration
    while time.perf_counter() < deadline:
        for _ in range(16):
            with lock:
                v.value += 1
        n += 16
    results.put((n, time.perf_counter() - t0))


def sem_worker(s, barrier, duration, results):
    barrier.wait()
    acquire, release = s.acquire, s.release
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + duration
    while time.perf_counter() < deadline:
        for _ in range(16):
            acquire()
            release()
        n += 16
    results.put((n, time.perf_counter() - t0))


def measure(ctx, target, obj, procs, duration):
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [ctx.Process(target=target, args=(obj, barrier, duration, results)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
    return sum(n / elapsed for n, elapsed in got)


def event_waiter(ev, conn):
    while conn.recv():
        conn.send("ready")
        ev.wait()
        conn.send(time.monotonic_ns())


def event_latency(ctx, waiters, rounds):
    ev = ctx.Event()
    pipes = [ctx.Pipe() for _ in range(waiters)]
    ps = [ctx.Process(target=event_waiter, args=(ev, child)) for _, child in pipes]
    for p in ps:
        p.start()
    out = []
    for _ in range(rounds):
        ev.clear()
        for parent, _ in pipes:
            parent.send(True)
        for parent, _ in pipes:
            parent.recv()
        time.sleep(0.005)  # let them block in wait()
        t0 = time.monotonic_ns()
        ev.set()
        woke = [parent.recv() for parent, _ in pipes]
        out.append(max(woke) - t0)
    for parent, _ in pipes:
        parent.send(False)
    for p in ps:
        p.join(60)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=50)
    args = ap.parse_args()
    ctx = mp.get_context("fork")
    res = {
        "value": {str(n): measure(ctx, value_worker, ctx.Value("i", 0), n, args.duration) for n in PROCS},
        "semaphore": {str(n): measure(ctx, sem_worker, ctx.Semaphore(1), n, args.duration) for n in PROCS},
        "event": event_latency(ctx, 4, args.rounds),
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
