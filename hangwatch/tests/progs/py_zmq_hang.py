"""The libzmq hang: a PUSH socket connected to a peer that does not exist, a message queued to
it, linger=-1; the main thread waits forever in Context.term() ("term") or in recv() on a PULL
socket nothing will send to ("recv"), while libzmq's I/O thread retries the connection every
100 ms. Uses next to no CPU, yet it is hung.
ready line: ready port=PORT
"""
import socket
import sys
import time

import zmq

mode = sys.argv[1] if len(sys.argv) > 1 else "term"
# A port nobody listens on: bind one, note it, close it.
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()

ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.setsockopt(zmq.LINGER, -1)
push.setsockopt(zmq.RECONNECT_IVL, 100)
push.connect("tcp://127.0.0.1:%d" % port)
t0 = time.monotonic()
while time.monotonic() - t0 < 1.3:  # the program's real work
    sum(i * i for i in range(10000))
print("ready port=%d" % port, flush=True)
if mode == "term":
    push.send(b"result", flags=zmq.NOBLOCK)
    push.close()
    ctx.term()  # waits for the queued message to be delivered: never
else:
    pull = ctx.socket(zmq.PULL)
    pull.connect("tcp://127.0.0.1:%d" % port)
    pull.recv()
