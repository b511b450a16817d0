"""Scrape the metrics directory argv[1] in a loop until the file argv[2] exists (at most a minute).

Prints each scrape as one JSON line and touches argv[2] + ".ready" after the first.
"""

import json
import os
import sys
import time

from prometheus_client import CollectorRegistry

from aura.metrics import AuraMultiProcessCollector

directory, stop_file = sys.argv[1], sys.argv[2]
end = time.monotonic() + 60
while not os.path.exists(stop_file) and time.monotonic() < end:
    reg = CollectorRegistry()
    AuraMultiProcessCollector(reg, directory, self_metrics=False, lock_timeout=10)
    out = {}
    for m in reg.collect():
        for s in m.samples:
            out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    print(json.dumps(out), flush=True)
    open(stop_file + ".ready", "w").close()
