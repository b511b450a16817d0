"""A worker counts, then forks a child whose directory (argv[1]) does not exist until it counted once.

Prints the child's pid.
"""

import os
import sys

import aura.metrics as multiproc
from aura.metrics import values as mmap_values

later = sys.argv[1]
mmap_values.RETRY_SECONDS = 0.0
multiproc.use_worker_identifier("904-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter  # noqa: E402 - after the identifier, as in a worker

c = Counter("inherited", "Counted by a parent, then by its child.")
c.inc(3)
pid = os.fork()
if pid == 0:
    mmap_values._Process.directory = later  # the child's files cannot be created
    c.inc(1)
    os.makedirs(later)
    c.inc(1)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
print(pid)
