#!/usr/bin/env python3
"""A Python process that talks to a Go program over an mproc connection.

The Go parent shares one end of a pipe.Duplex with Conn.Share(cmd, NAME)
and starts this script. The script finds its descriptor in the MPROC_FDS
environment variable, wraps it in multiprocessing.connection.Connection,
whose frames are the ones mproc's conn package reads and writes, and
answers msgpack messages until the Go side closes its end.

    MPROC_FDS=<name>=<kind>:<fd>[,<fd>...][;<name>=<kind>:<fd>...]

for example MPROC_FDS=peer=conn:3. A conn has exactly one descriptor.

Usage: peer.py [NAME]   (NAME defaults to "peer")

Protocol: the peer first sends a greeting, a dict with "hello", "version"
and "pid". Then, for each message:
  - an empty payload is answered with an empty payload;
  - a dict with an "op" key is a command:
      {"op": "make", "what": "dict"|"str"|"bytes"|"empty", "n": N}
          sends a value Python made itself ("bytes": N bytes,
          byte i = i % 251);
      {"op": "close"} closes the connection and exits;
  - anything else is answered with {"type": <Python type name>,
    "len": <len() or None>, "keys": <sorted keys of a dict or None>,
    "value": <the value, echoed>}.
When the Go side closes, recv_bytes raises EOFError: the peer prints how
many messages it answered and exits with status 0.
"""

import os
import sys
from multiprocessing.connection import Connection

import msgpack

DICT = {
    "name": "Grace Hopper",
    "born": 1906,
    "langs": ["COBOL", "FLOW-MATIC"],
    "photo": b"\x89PNG\x00\xff",
    "ratio": 0.25,
}
STR = "Grüße aus Python 🐍, 日本語"


def inherited_fd(name, kind="conn"):
    """Return the descriptor the parent shared under name, from MPROC_FDS."""
    value = os.environ.get("MPROC_FDS", "")
    names = []
    for entry in filter(None, value.split(";")):
        ename, _, rest = entry.partition("=")
        ekind, _, fds = rest.partition(":")
        names.append(ename)
        if ename != name:
            continue
        if ekind != kind:
            sys.exit(f"peer: {name!r} is a {ekind}, not a {kind}")
        fds = [int(fd) for fd in fds.split(",")]
        if len(fds) != 1:
            sys.exit(f"peer: a {kind} has one descriptor, {name!r} has {len(fds)}")
        return fds[0]
    sys.exit(f"peer: nothing named {name!r} inherited (MPROC_FDS has: {', '.join(names) or 'nothing'})")


def make(what, n):
    if what == "dict":
        return DICT
    if what == "str":
        return STR
    if what == "bytes":
        return (bytes(range(251)) * (n // 251 + 1))[:n]
    raise ValueError(f"cannot make {what!r}")


def describe(obj):
    return {
        "type": type(obj).__name__,
        "len": len(obj) if hasattr(obj, "__len__") else None,
        "keys": sorted(obj) if isinstance(obj, dict) else None,
        "value": obj,
    }


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "peer"
    fd = inherited_fd(name)
    # The Go side creates every descriptor nonblocking; Connection wants a
    # blocking one. This changes only this end of the socketpair.
    os.set_blocking(fd, True)
    conn = Connection(fd)
    conn.send_bytes(msgpack.packb({
        "hello": "python",
        "version": sys.version.split()[0],
        "pid": os.getpid(),
    }))
    answered = 0
    while True:
        try:
            data = conn.recv_bytes()
        except EOFError:
            print(f"peer: EOF after {answered} messages", flush=True)
            return 0
        answered += 1
        if not data:
            conn.send_bytes(b"")
            continue
        obj = msgpack.unpackb(data)
        if isinstance(obj, dict) and "op" in obj:
            if obj["op"] == "close":
                print(f"peer: closing after {answered} messages", flush=True)
                conn.close()
                return 0
            if obj["op"] == "make" and obj.get("what") == "empty":
                conn.send_bytes(b"")
            elif obj["op"] == "make":
                conn.send_bytes(msgpack.packb(make(obj.get("what"), obj.get("n", 0))))
            else:
                sys.exit(f"peer: unknown op {obj['op']!r}")
            continue
        conn.send_bytes(msgpack.packb(describe(obj)))


if __name__ == "__main__":
    sys.exit(main())
