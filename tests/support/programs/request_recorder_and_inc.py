"""The same durations recorded by request_recorder ("fast") and by inc/observe ("slow")."""

import os

import aura.metrics as multiproc

multiproc.use_worker_identifier("902-1", os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter, Histogram  # noqa: E402 - after the identifier, as in a worker

from aura.metrics.values import request_recorder  # noqa: E402

buckets = (0.001, 0.01, 0.1, 1.0)
durations = [0.0, 0.0005, 0.001, 0.0010001, 0.05, 0.1, 0.99, 1.0, 7.5, 1e9]
fast = request_recorder(
    Counter("fast", "h", ["m"]).labels("GET"), Histogram("fast_s", "h", ["m"], buckets=buckets).labels("GET")
)
count, hist = Counter("slow", "h", ["m"]).labels("GET"), Histogram("slow_s", "h", ["m"], buckets=buckets).labels("GET")
for d in durations:
    fast(d)
    count.inc()
    hist.observe(d)
