"""A worker counts before and after forking a child that counts too (e.g. a subprocess a view forks).

Prints the worker's pid and the child's.
"""

import os

import aura.metrics as multiproc

multiproc.use_worker_identifier("900-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter  # noqa: E402 - after the identifier, as in a worker

c = Counter("forked", "Written before and after a fork.")
c.inc(1)
pid = os.fork()
if pid == 0:
    c.inc(10)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
c.inc(1)
print(os.getpid(), pid)
