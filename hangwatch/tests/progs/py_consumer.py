"""A queue consumer blocked on a connection to a live, responsive server (must be silent).

A server process (forked) listens on a Unix socket (or TCP on 127.0.0.1 with argv[1] == "tcp"),
sends each client three messages over about 1.5 s, then idles in its selector waiting for
clients (or data). The consumer processes the messages, then blocks in recv() for the next one,
which a healthy queue may not send for hours.
ready line: ready server=PID
"""
import os
import selectors
import socket
import sys
import tempfile
import time

tcp = len(sys.argv) > 1 and sys.argv[1] == "tcp"
if tcp:
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    addr = lsock.getsockname()
else:
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    addr = os.path.join(tempfile.mkdtemp(prefix="hangwatch-consumer-"), "q.sock")
    lsock.bind(addr)
lsock.listen(8)

server = os.fork()
if server == 0:
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is lsock:
                conn, _ = lsock.accept()
                for i in range(3):
                    conn.sendall(b"job %d\n" % i)
                    time.sleep(0.5)
                sel.register(conn, selectors.EVENT_READ)
            else:
                if not key.fileobj.recv(4096):
                    sel.unregister(key.fileobj)
                    key.fileobj.close()

lsock.close()
c = socket.socket(socket.AF_INET if tcp else socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(addr)
got = b""
while got.count(b"\n") < 3:
    got += c.recv(4096)
    sum(i * i for i in range(20000))  # "processing"
print("ready server=%d" % server, flush=True)
c.recv(4096)  # the next job: none comes for now
