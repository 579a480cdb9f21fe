"""A multiprocessing pool whose workers are idle after a round of work, its main thread in a
sleep loop (must be silent).
ready line: ready workers=PID,PID,PID
"""
import multiprocessing
import time


def square(x):
    return x * x


if __name__ == "__main__":
    pool = multiprocessing.Pool(3)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.3:
        pool.map(square, range(200))
    print("ready workers=%s" % ",".join(str(p.pid) for p in pool._pool), flush=True)
    while True:
        time.sleep(1)
