"""A metric created in a Gunicorn-like master before fork, incremented by a worker after it.

Prints the master's pid and the worker's.
"""

import os

import aura.metrics as multiproc

multiproc.install_value_class()
from prometheus_client import Counter  # noqa: E402 - after the value class, as in a master

c = Counter("early", "Created in the master.")
pid = os.fork()
if pid == 0:
    multiproc.use_worker_identifier(multiproc.worker_identifier(os.getpid(), 7), os.environ["PROMETHEUS_MULTIPROC_DIR"])
    c.inc(3)
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0
print(os.getpid(), pid)
