"""Fork while another thread holds the value lock; the child must still be able to write.

Prints the child's pid.
"""

import os
import signal
import threading

import aura.metrics as multiproc
from aura.metrics.values import _Process

multiproc.use_worker_identifier("901-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter  # noqa: E402 - after the identifier, as in a worker

c = Counter("locked", "Written by a child forked while the lock was held.")
held, release = threading.Event(), threading.Event()


def hold():
    with _Process.lock:
        held.set()
        release.wait(30)


threading.Thread(target=hold).start()
held.wait(30)
pid = os.fork()
if pid == 0:
    signal.alarm(20)  # a deadlocked child dies of SIGALRM instead of hanging the test
    c.inc(1)
    os._exit(0)
release.set()
assert os.waitpid(pid, 0)[1] == 0, "the child could not write"
print(pid)
