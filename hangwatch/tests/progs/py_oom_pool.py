"""A multiprocessing.Pool in a memory-limited cgroup whose worker is OOM-killed while the parent
waits for pool.map: the pool replaces the worker, the task is lost, map() waits forever.
argv[1]: the cgroup.procs file to join first (so the pool's workers are in it too).
ready line: ready workers=PID,PID
"""
import multiprocessing
import sys


def task(n):
    if n == 3:
        hog = []
        while True:
            hog.append(bytearray(8 << 20))
    return n


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        f.write("%d\n" % __import__("os").getpid())
    multiprocessing.set_start_method("fork")
    pool = multiprocessing.Pool(2)
    print("ready workers=%s" % ",".join(str(p.pid) for p in pool._pool), flush=True)
    pool.map(task, range(6), chunksize=1)
