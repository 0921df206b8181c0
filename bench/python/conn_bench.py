"""Python's multiprocessing.Pipe, measured like bench/conn.go measures conn.

Run by `go run ./bench conn` (embedded in the binary); standalone:

    python3 bench/python/conn_bench.py --duration 0.3

Standard library only, so any python3 works. Prints one JSON object:
{"pipe": {...}, "socketpair": {...}}, each with "struct" (messages/s, a
dict pickled by Connection.send), "1KiB" and "1MiB" (bytes/s, send_bytes /
recv_bytes), "p50" and "p99" (round-trip nanoseconds).
"""

import argparse
import json
import math
import multiprocessing as mp
import time

MSG = {"id": 123456, "kind": "sample", "score": 3.25, "tags": ["alpha", "beta"], "ok": True}
WORKLOADS = {"struct": 0, "1KiB": 1 << 10, "1MiB": 1 << 20}


def sender(w, size, duration):
    """Send for duration seconds, then close (the parent counts to EOF)."""
    deadline = time.monotonic() + duration
    msg = dict(MSG)
    payload = bytes(i % 256 for i in range(size))
    every = 64 if size < 65536 else 1
    i = 0
    while True:
        if i % every == 0 and time.monotonic() > deadline:
            break
        if size == 0:
            msg["id"] = i
            w.send(msg)
        else:
            w.send_bytes(payload)
        i += 1
    w.close()


def echo(r, w):
    """Send back every message until None (with fork, this process holds
    copies of the parent's ends, so EOF alone would never come)."""
    while True:
        try:
            msg = r.recv()
        except EOFError:
            return
        if msg is None:
            return
        w.send(msg)


def pipe_pair(duplex):
    """(read end, write end) for one direction."""
    if duplex:
        return mp.Pipe(True)
    return mp.Pipe(False)


def throughput(duplex, size, duration):
    r, w = pipe_pair(duplex)
    p = mp.Process(target=sender, args=(w, size, duration), daemon=True)
    p.start()
    w.close()
    recv = r.recv if size == 0 else r.recv_bytes
    recv()
    start = time.perf_counter()
    n = 0
    try:
        while True:
            recv()
            n += 1
    except EOFError:
        pass
    elapsed = time.perf_counter() - start
    r.close()
    p.join()
    rate = n / elapsed
    return rate * size if size else rate


def percentile(sorted_samples, pct):
    i = math.ceil(pct / 100 * len(sorted_samples)) - 1
    return sorted_samples[max(0, min(i, len(sorted_samples) - 1))]


def round_trip(duplex, duration):
    if duplex:
        a, b = mp.Pipe(True)
        pr, pw, cr, cw = a, a, b, b
    else:
        cr, pw = mp.Pipe(False)
        pr, cw = mp.Pipe(False)
    p = mp.Process(target=echo, args=(cr, cw), daemon=True)
    p.start()
    for c in {cr, cw}:
        c.close()
    msg = dict(MSG)
    for _ in range(200):
        pw.send(msg)
        msg = pr.recv()
    samples = []
    now = time.perf_counter_ns()
    deadline = now + int(duration * 1e9)
    while now < deadline:
        pw.send(msg)
        msg = pr.recv()
        t = time.perf_counter_ns()
        samples.append(t - now)
        now = t
    pw.send(None)
    for c in {pr, pw}:
        c.close()
    p.join()
    samples.sort()
    return percentile(samples, 50), percentile(samples, 99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=0.3, help="seconds per measurement")
    args = ap.parse_args()
    out = {}
    for name, duplex in (("pipe", False), ("socketpair", True)):
        res = {}
        for workload, size in WORKLOADS.items():
            res[workload] = throughput(duplex, size, args.duration)
        res["p50"], res["p99"] = round_trip(duplex, args.duration)
        out[name] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
