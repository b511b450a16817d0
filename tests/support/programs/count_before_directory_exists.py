"""Count while the metrics directory (argv[1]) does not exist yet, then create it and count once more."""

import os
import sys

import aura.metrics as multiproc
from aura.metrics import values as mmap_values

directory = sys.argv[1]
mmap_values.RETRY_SECONDS = 0.0
multiproc.use_worker_identifier("903-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter  # noqa: E402 - after the identifier, as in a worker

c = Counter("kept", "Counted while the directory was missing.")
c.inc(5)
assert not os.path.exists(directory)
os.makedirs(directory)
c.inc(1)
