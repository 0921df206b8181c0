"""Python's multiprocessing queues, measured like bench/queue.go measures
mproc's.

Run by `go run ./bench queue` (embedded in the binary); standalone:

    python3 bench/python/queue_bench.py --case queue --consumers 2 --duration 0.3

Standard library only, so any python3 works. One producer process puts for
--duration seconds, then one None per consumer; --consumers processes get
until None and report how many items they got and when they got the first
and the last. Prints one JSON object: {"items": N, "seconds": S, "bytes": B,
"cpu": C}, S from the first item got by any consumer to the last, C the CPU
seconds (user and system) of all the processes of the case.

Cases (CASES below; add one by adding a producer/consumer pair):
  simplequeue  SimpleQueue, the small dict
  queue        Queue(), the small dict
  queue1MiB    Queue(8), 1 MiB bytes objects
  joinablequeue JoinableQueue(), the small dict: consumers call task_done
               after each get, the producer joins after its Nones, and S
               runs to the end of its join
"""

import argparse
import json
import multiprocessing as mp
import resource
import time

MSG = {"id": 123456, "kind": "sample", "score": 3.25, "tags": ["alpha", "beta"], "ok": True}


def produce(q, duration, size, nconsumers, results):
    deadline = time.monotonic() + duration
    msg = dict(MSG)
    payload = bytes(range(256)) * (size // 256) if size else None
    every = 64 if size < 65536 else 1
    i = 0
    while True:
        if i % every == 0 and time.monotonic() > deadline:
            break
        if payload is None:
            msg["id"] = i
            q.put(msg)
        else:
            q.put(payload)
        i += 1
    for _ in range(nconsumers):
        q.put(None)
    if hasattr(q, "task_done"):  # JoinableQueue: every item had its task_done
        q.join()
        results.put(("joined", time.time()))
    if hasattr(q, "join_thread"):  # Queue: wait until the feeder thread has sent all
        q.close()
        q.join_thread()


def consume(q, results):
    n = 0
    first = last = 0.0
    task_done = getattr(q, "task_done", lambda: None)
    while True:
        v = q.get()
        task_done()
        if v is None:
            break
        last = time.time()
        if n == 0:
            first = last
        n += 1
    results.put((n, first, last))


# name -> (queue factory, item size: 0 for the small dict). The 1 MiB case
# is bounded (maxsize 8), or a producer that only appends references to its
# feeder's buffer would run minutes ahead of the consumers.
CASES = {
    "simplequeue": (mp.SimpleQueue, 0),
    "queue": (mp.Queue, 0),
    "queue1MiB": (lambda: mp.Queue(8), 1 << 20),
    "joinablequeue": (mp.JoinableQueue, 0),
}


def run(case, nconsumers, duration):
    factory, size = CASES[case]
    q = factory()
    results = mp.SimpleQueue()
    consumers = [mp.Process(target=consume, args=(q, results), daemon=True) for _ in range(nconsumers)]
    for p in consumers:
        p.start()
    producer = mp.Process(target=produce, args=(q, duration, size, nconsumers, results), daemon=True)
    producer.start()
    records = [results.get() for _ in range(nconsumers + hasattr(q, "task_done"))]
    joined = [r[1] for r in records if r[0] == "joined"]
    stats = [r for r in records if r[0] != "joined"]
    producer.join()
    for p in consumers:
        p.join()
    items = sum(s[0] for s in stats)
    firsts = [s[1] for s in stats if s[0]]
    lasts = [s[2] for s in stats if s[0]]
    seconds = max(lasts + joined) - min(firsts) if firsts else 0.0
    # CPU time of every process of the case (all joined above; the
    # results queue's own cost is in it, as a Go consumer's print is).
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"items": items, "seconds": seconds, "bytes": items * size, "cpu": ru.ru_utime + ru.ru_stime}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument("--duration", type=float, default=0.3)
    args = ap.parse_args()
    print(json.dumps(run(args.case, args.consumers, args.duration)))


if __name__ == "__main__":
    main()
