"""A process that waits for a signal and nothing else, after doing some work (must be silent):
argv[1] == "pause": signal.pause(); "sigwait": signal.sigwait({SIGUSR1}).
ready line: ready mode=MODE
"""
import signal
import sys
import time

mode = sys.argv[1]
t0 = time.monotonic()
while time.monotonic() - t0 < 1.3:
    sum(i * i for i in range(10000))
print("ready mode=%s" % mode, flush=True)
if mode == "pause":
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.pause()
else:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    signal.sigwait({signal.SIGUSR1})
