"""Python stacks: three threads wait in threading.Event().wait() (each in its own function),
one sleeps in time.sleep(), and the main thread either waits too ("wait") or spins in Python
code, holding the GIL ("spin"). Each thread prints its kernel tid in the ready line.
ready line: ready main=TID a=TID b=TID c=TID s=TID
"""
import sys
import threading
import time

tids = {}
started = threading.Barrier(5)


def wait_a():
    tids["a"] = threading.get_native_id()
    started.wait()
    threading.Event().wait()  # STACK: wait_a


def wait_b():
    tids["b"] = threading.get_native_id()
    started.wait()
    threading.Event().wait()  # STACK: wait_b


def wait_c():
    tids["c"] = threading.get_native_id()
    started.wait()
    threading.Event().wait()  # STACK: wait_c


def sleeper():
    tids["s"] = threading.get_native_id()
    started.wait()
    time.sleep(3600)  # STACK: sleeper


def spin():
    x = 0
    while True:  # STACK: spin
        x += 1


def main_wait():
    threading.Event().wait()  # STACK: main_wait


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "wait"
    for f in (wait_a, wait_b, wait_c, sleeper):
        threading.Thread(target=f, daemon=True).start()
    started.wait()
    print("ready main=%d %s" % (threading.get_native_id(),
          " ".join("%s=%d" % kv for kv in sorted(tids.items()))), flush=True)
    if mode == "spin":
        spin()
    else:
        main_wait()
