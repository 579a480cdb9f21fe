"""The multiprocessing join freeze: the parent joins a child that put more into a
multiprocessing.Queue than its pipe holds; the child cannot exit until its feeder thread has
written it all, and only the parent (busy joining) would read it. A deadlock.
ready line: ready child=PID
"""
import multiprocessing


def writer(q):
    q.put(b"x" * (1 << 20))


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=writer, args=(q,))
    p.start()
    print("ready child=%d" % p.pid, flush=True)
    p.join()  # deadlock: should q.get() first
    q.get()
