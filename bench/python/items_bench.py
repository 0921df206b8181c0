"""Python's multiprocessing, measured the way bench/items.go measures mproc.

Run by `go run ./bench conn queue` (embedded in the binary); standalone:

    python3 bench/python/items_bench.py --suite conn --transport duplex --n 200000
    python3 bench/python/items_bench.py --suite queue --case queue --consumers 2 --n 200000

Standard library only. Start method fork. The items are built before the
clock, in the parent, before the processes fork: the dict
{"id": i, "name": "task-i", "values": [1.5, 2.5, 3.5]} (or 1 MiB bytes
objects for --shape 1MiB). Every process waits at a barrier; the clock runs
from the producer's first send/put to the last item a consumer got (the end
of join for a JoinableQueue). Prints one JSON object: {"items": N,
"seconds": S, "cpu": C}, C the CPU seconds of all the processes.

Suites:
  conn   Pipe(duplex=True) ("duplex") or Pipe(duplex=False) ("simplex"):
         a child sends, the parent receives (send/recv, or send_bytes/
         recv_bytes for 1MiB)
  queue  SimpleQueue ("simplequeue"), Queue ("queue"), JoinableQueue
         ("joinablequeue", task_done after each get, join in the
         producer) or Queue(8) of 1 MiB bytes ("queue1MiB"): one producer,
         --consumers consumers, one None per consumer at the end
"""

import argparse
import json
import multiprocessing as mp
import os
import resource
import time


def make_items(n, shape):
    if shape == "1MiB":
        payload = bytes(range(256)) * 4096
        return [payload] * n
    return [{"id": i, "name": "task-%d" % i, "values": [1.5, 2.5, 3.5]} for i in range(n)]


def cpu_children():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_self():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def conn_sender(w, items, shape, barrier, results):
    barrier.wait()
    start = time.time_ns()
    if shape == "1MiB":
        for it in items:
            w.send_bytes(it)
    else:
        for it in items:
            w.send(it)
    results.put(start)


def run_conn(transport, shape, n):
    items = make_items(n, shape)
    if transport == "duplex":
        r, w = mp.Pipe(True)
    else:
        r, w = mp.Pipe(False)
    barrier = mp.Barrier(2)
    results = mp.SimpleQueue()
    p = mp.Process(target=conn_sender, args=(w, items, shape, barrier, results), daemon=True)
    p.start()
    w.close()
    recv = r.recv_bytes if shape == "1MiB" else r.recv
    barrier.wait()
    cpu0 = cpu_self()
    for i in range(n):
        v = recv()
        if shape != "1MiB" and v["id"] != i:
            raise SystemExit("item %d, want %d" % (v["id"], i))
    last = time.time_ns()
    cpu = cpu_self() - cpu0
    start = results.get()
    p.join()
    return {"items": n, "seconds": (last - start) / 1e9, "cpu": cpu + cpu_children()}


def producer(q, items, nconsumers, barrier, results):
    barrier.wait()
    start = time.time_ns()
    for it in items:
        q.put(it)
    for _ in range(nconsumers):
        q.put(None)
    results.put(("start", start))
    if hasattr(q, "task_done"):  # JoinableQueue: every item had its task_done
        q.join()
        results.put(("joined", time.time_ns()))
    if hasattr(q, "join_thread"):  # Queue: wait until the feeder thread has sent all
        q.close()
        q.join_thread()


def consumer(q, barrier, results):
    task_done = getattr(q, "task_done", lambda: None)
    n = 0
    last = 0
    barrier.wait()
    while True:
        v = q.get()
        task_done()
        if v is None:
            break
        last = time.time_ns()
        n += 1
    results.put(("got", n, last))


CASES = {
    "simplequeue": (mp.SimpleQueue, "item"),
    "queue": (mp.Queue, "item"),
    "joinablequeue": (mp.JoinableQueue, "item"),
    "queue1MiB": (lambda: mp.Queue(8), "1MiB"),
}


def run_queue(case, nconsumers, n):
    factory, shape = CASES[case]
    items = make_items(n, shape)
    q = factory()
    barrier = mp.Barrier(nconsumers + 1)
    results = mp.SimpleQueue()
    procs = [mp.Process(target=consumer, args=(q, barrier, results), daemon=True) for _ in range(nconsumers)]
    procs.append(mp.Process(target=producer, args=(q, items, nconsumers, barrier, results), daemon=True))
    for p in procs:
        p.start()
    want = nconsumers + 1 + (1 if case == "joinablequeue" else 0)
    records = [results.get() for _ in range(want)]
    for p in procs:
        p.join()
    start = [r[1] for r in records if r[0] == "start"][0]
    got = [r for r in records if r[0] == "got"]
    items_got = sum(r[1] for r in got)
    last = max([r[2] for r in got] + [r[1] for r in records if r[0] == "joined"])
    if items_got != n:
        raise SystemExit("got %d items, want %d" % (items_got, n))
    return {"items": n, "seconds": (last - start) / 1e9, "cpu": cpu_children()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True, choices=["conn", "queue"])
    ap.add_argument("--transport", default="duplex", choices=["duplex", "simplex"])
    ap.add_argument("--shape", default="item", choices=["item", "1MiB"])
    ap.add_argument("--case", default="queue", choices=sorted(CASES))
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument("--n", type=int, default=200000)
    args = ap.parse_args()
    mp.set_start_method("fork")
    if args.suite == "conn":
        res = run_conn(args.transport, args.shape, args.n)
    else:
        res = run_queue(args.case, args.consumers, args.n)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
