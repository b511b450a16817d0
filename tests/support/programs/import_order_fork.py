"""prometheus_client imported first, the metrics directory (argv[1]) set after: Aura's definitions
still install its value class. This process is no Gunicorn worker and writes nothing; a worker
forked from it writes its counts."""

import os
import sys

import prometheus_client  # noqa: F401 - first on purpose: it then picks in-memory values

directory = sys.argv[1]
os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
from aura.instrumentation import definitions  # noqa: E402 - after the directory is set
from aura.metrics import use_worker_identifier  # noqa: E402

definitions.TOKENS_ISSUED.labels("access").inc(2)
assert not os.listdir(directory), os.listdir(directory)
pid = os.fork()
if pid == 0:
    use_worker_identifier("77-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
    definitions.TOKENS_ISSUED.labels("access").inc(3)
    os._exit(0)
assert os.waitpid(pid, 0)[1] == 0
