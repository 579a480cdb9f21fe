"""A thread pool whose workers wait for work while the main thread waits on an Event that a
signal handler sets (must be silent). With argv[1] == "nohandler", nothing can ever set it:
every thread waits and nothing visible can wake them (at most a low-severity finding).
ready line: ready workers=N
"""
import concurrent.futures
import signal
import sys
import threading
import time

done = threading.Event()
if not (len(sys.argv) > 1 and sys.argv[1] == "nohandler"):
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: done.set())

pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
t0 = time.monotonic()
while time.monotonic() - t0 < 1.5:
    list(pool.map(lambda n: sum(range(n)), [20000] * 8))
print("ready workers=%d" % len(pool._threads), flush=True)
done.wait()
