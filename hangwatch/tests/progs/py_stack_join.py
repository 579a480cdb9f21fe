"""Python stacks: the main thread blocks in multiprocessing.Process.join() on a child that
sleeps. The test finds the join() call by its marker comment and expects that line in the
main thread's frames, in the function `run`.
ready line: ready child=PID
"""
import multiprocessing
import time


def nap():
    time.sleep(3600)


def run():
    p = multiprocessing.Process(target=nap)
    p.start()
    print("ready child=%d" % p.pid, flush=True)
    p.join()  # STACK: join


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    run()
