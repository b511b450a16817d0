"""A worker doing a deterministic, k-dependent amount of work with every metric type and gauge mode.

argv[1] is JSON: {"identifier": ..., "k": ...}. Values are integers so sums are exact whatever the
order of addition. It imports aura.metrics alone: the core imports nothing else of Aura (a test
checks), so no metric of the app's own can write files into the test directory.
"""

import json
import os
import sys
import time

spec = json.loads(sys.argv[1])
from aura.metrics import use_worker_identifier  # noqa: E402

use_worker_identifier(spec["identifier"], os.environ["PROMETHEUS_MULTIPROC_DIR"])
from prometheus_client import Counter, Gauge, Histogram, Summary  # noqa: E402 - after the identifier

GAUGE_MODES = ("all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent")

k = spec["k"]
c = Counter("t_requests", "Requests.", ["method", "status"])
c.labels("GET", "200").inc(k)
if k % 2 == 0:
    c.labels("POST", "500").inc(10 * k)
h = Histogram("t_latency_seconds", "Latency.", ["route"], buckets=(1, 2, 5))
for v in (1, 2 * k, 3 * k):
    h.labels("/a").observe(v)
s = Summary("t_payload_bytes", "Payload.")
s.observe(100 * k)
for mode in GAUGE_MODES:
    Gauge("t_g_" + mode, "Gauge " + mode + ".", ["kind"], multiprocess_mode=mode).labels("x").set(10 * k + 1)
    time.sleep(0.001)  # distinct mostrecent timestamps
