"""The Python client of examples/listener: Python's own
multiprocessing.connection.Client, with the authkey, against the Go server.

    python3 client.py ADDRESS   (the authkey comes hex-encoded in $LISTENER_KEY)
"""
import os
import sys

import msgpack
from multiprocessing.connection import AuthenticationError, Client

key = bytes.fromhex(os.environ["LISTENER_KEY"])
try:
    c = Client(sys.argv[1], family="AF_UNIX", authkey=key)
except AuthenticationError as e:
    print("python client: AuthenticationError:", e)
    sys.exit(0)
squares = []
for n in (4, 5, 6):
    c.send_bytes(msgpack.packb({"who": "python", "n": n}))
    reply = msgpack.unpackb(c.recv_bytes())
    squares.append(reply["square"])
c.close()
print("python client: squares", squares, "from", reply["server"])
