"""A Python peer for conn's Listen and Dial tests: Python's own
multiprocessing.connection Client and Listener, with msgpack payloads.

    listen_peer.py client FAMILY ADDRESS   connect, send one dict, print the reply
    listen_peer.py server FAMILY ADDRESS N listen, print the address, serve N clients

FAMILY is AF_UNIX (ADDRESS a path) or AF_INET (ADDRESS host:port; port 0
for the server means any). The authkey is $MPROC_KEY, in hex. Each line
printed is one event the test checks.
"""
import os
import sys

import msgpack
from multiprocessing.connection import AuthenticationError, Client, Listener


def address(family, s):
    if family == "AF_INET":
        host, port = s.rsplit(":", 1)
        return (host, int(port))
    return s


def main():
    mode, family, addr = sys.argv[1], sys.argv[2], address(sys.argv[2], sys.argv[3])
    key = bytes.fromhex(os.environ["MPROC_KEY"])
    if mode == "client":
        try:
            c = Client(addr, family=family, authkey=key)
        except AuthenticationError as e:
            print("AuthenticationError:", e, flush=True)
            return
        c.send_bytes(msgpack.packb({"n": 1, "from": "python"}))
        reply = msgpack.unpackb(c.recv_bytes())
        print("reply", reply["n"], reply["from"], flush=True)
        c.close()
        return
    n = int(sys.argv[4])
    with Listener(addr, family=family, authkey=key) as listener:
        a = listener.address
        print("listening", a if isinstance(a, str) else "%s:%d" % a, flush=True)
        for _ in range(n):
            try:
                c = listener.accept()
            except AuthenticationError as e:
                print("AuthenticationError:", e, flush=True)
                continue
            got = 0
            while True:
                try:
                    v = msgpack.unpackb(c.recv_bytes())
                except EOFError:
                    break
                got += 1
                c.send_bytes(msgpack.packb({"n": v["n"] + 1, "from": "python"}))
            c.close()
            print("served", got, flush=True)


main()
