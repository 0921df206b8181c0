"""Python's multiprocessing.connection Listener and Client, measured the way
bench/items.go measures mproc; run by `go run ./bench listen`.

    python3 bench/python/listen_bench.py --family AF_UNIX --mode oneway --n 200000
    python3 bench/python/listen_bench.py --family AF_INET --mode rtt --n 20000

The parent listens (a socket file in a temporary directory, or 127.0.0.1
port 0) with an authkey; a forked child connects with Client(authkey=...).
The items, the dict {"id": i, "name": "task-i", "values": [1.5, 2.5, 3.5]},
are built before the fork. Both wait at a barrier once connected.

oneway: the child send()s every item; the clock runs from its first send to
the parent's last recv(). Prints {"items": N, "seconds": S, "cpu": C}.
rtt: the parent send()s an item and recv()s the child's echo, N times, and
times each. Prints {"p50": ns, "p99": ns}.
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import tempfile
import time
from multiprocessing.connection import Client, Listener

KEY = b"mproc bench authkey"


def make_items(n):
    return [{"id": i, "name": "task-%d" % i, "values": [1.5, 2.5, 3.5]} for i in range(n)]


def cpu_all():
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def sender(address, family, items, barrier, results):
    c = Client(address, family=family, authkey=KEY)
    barrier.wait()
    start = time.time_ns()
    for it in items:
        c.send(it)
    c.close()
    results.put(start)


def echo(address, family, barrier):
    c = Client(address, family=family, authkey=KEY)
    barrier.wait()
    while True:
        try:
            v = c.recv()
        except EOFError:
            break
        c.send(v)


def main():
    mp.set_start_method("fork")
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=["AF_UNIX", "AF_INET"], required=True)
    ap.add_argument("--mode", choices=["oneway", "rtt"], required=True)
    ap.add_argument("--n", type=int, required=True)
    a = ap.parse_args()
    items = make_items(a.n)
    with tempfile.TemporaryDirectory() as d:
        address = os.path.join(d, "l.sock") if a.family == "AF_UNIX" else ("127.0.0.1", 0)
        with Listener(address, family=a.family, authkey=KEY) as listener:
            barrier = mp.Barrier(2)
            results = mp.SimpleQueue()
            if a.mode == "oneway":
                p = mp.Process(target=sender, args=(listener.address, a.family, items, barrier, results), daemon=True)
            else:
                p = mp.Process(target=echo, args=(listener.address, a.family, barrier), daemon=True)
            p.start()
            c = listener.accept()
            barrier.wait()
            if a.mode == "oneway":
                cpu0 = cpu_all()
                for i in range(a.n):
                    v = c.recv()
                    if v["id"] != i:
                        raise SystemExit("item %d, want %d" % (v["id"], i))
                last = time.time_ns()
                start = results.get()
                p.join()
                print(json.dumps({"items": a.n, "seconds": (last - start) / 1e9, "cpu": cpu_all() - cpu0}))
            else:
                lat = []
                for it in items:
                    t0 = time.perf_counter_ns()
                    c.send(it)
                    c.recv()
                    lat.append(time.perf_counter_ns() - t0)
                c.close()
                p.join()
                lat.sort()
                print(json.dumps({"p50": lat[len(lat) // 2], "p99": lat[min(len(lat) - 1, len(lat) * 99 // 100)]}))


main()
