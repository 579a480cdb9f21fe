"""A heartbeat thread that wakes every 100 ms beside a main thread that waits forever in
queue.get() for a result that will never come (hung despite the ticking helper).
ready line: ready heartbeat=TID
"""
import queue
import threading
import time

beats = 0


def heartbeat():
    global beats
    while True:
        time.sleep(0.1)
        beats += 1


threading.Thread(target=heartbeat, daemon=True).start()
results = queue.Queue()
t0 = time.monotonic()
while time.monotonic() - t0 < 1.3:
    sum(i * i for i in range(10000))
print("ready heartbeat=%d" % threading.enumerate()[-1].native_id, flush=True)
results.get()
