"""Two threads take two threading.Locks in opposite order (ABBA) while the main thread joins
the first; the process catches SIGTERM (a handler a service installs), so the futex waits
alone would be "a handler may wake it". Python's locks are semaphores: the futex words name
no owner; only the stacks show each thread inside a lock acquire.
    py_lock_abba.py          the deadlock
    py_lock_abba.py event    the same threads each waiting on an Event nobody sets (idle)
ready line: ready one=TID two=TID
"""
import signal
import sys
import threading
import time

signal.signal(signal.SIGTERM, lambda *_: None)
a, b = threading.Lock(), threading.Lock()
ready = threading.Barrier(3)
events = [threading.Event(), threading.Event()]


def one():
    if len(sys.argv) > 1:
        ready.wait()
        events[0].wait()
        return
    with a:
        ready.wait()
        time.sleep(0.2)
        with b:
            pass


def two():
    if len(sys.argv) > 1:
        ready.wait()
        events[1].wait()
        return
    with b:
        ready.wait()
        time.sleep(0.2)
        with a:
            pass


t1 = threading.Thread(target=one)
t2 = threading.Thread(target=two)
t1.start()
t2.start()
ready.wait()
time.sleep(0.5)
print("ready one=%d two=%d" % (t1.native_id, t2.native_id), flush=True)
t1.join()
