"""The request path's recording, hot and with the CPU caches flushed first, in microseconds per call.

A request runs Flask, Werkzeug and Gunicorn between its recording calls, and under Gunicorn other
workers and the load generator share the cores and their caches: the recording then runs with
cold caches, not as in a `timeit` loop. This times the calls both ways, in a process whose metric
files are a Gunicorn worker's (bench/http_overhead.py's `build_apps`):

    hot       the call repeated (best of 5 x N calls, timeit)
    flushed   the call right after writing --flush MiB at a 64-byte stride (one write per cache
              line), timed alone with perf_counter_ns; the median of --calls calls

Calls: the HTTP recorder of one label set without and with a trace id (values; values and
exemplar), and taking, naming and freeing an in-flight slot. See docs/performance.md.

    .venv/bin/python bench/cold_cache.py [--calls 400] [--flush 24]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

TRACE_ID = "0123456789abcdef0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="flushed calls per figure (median)")
    parser.add_argument("--flush", type=int, default=24, help="MiB written before each flushed call")
    args = parser.parse_args()

    import http_overhead

    apps = http_overhead.build_apps(Path(tempfile.mkdtemp(prefix="aura-bench-cold-")), breakdown=False)
    http_overhead.timed_requests(apps["instrumented"], "/healthz", 200, [])  # label children, files
    from aura.instrumentation.recorder import recorder

    record = recorder.http_recorder("GET", "/healthz", "200")

    def slot() -> None:
        taken = recorder.request_started(time.perf_counter(), "GET")
        recorder.request_routed(taken, "/healthz")
        recorder.request_ended(taken, 0.001)

    calls: dict[str, Callable[[], object]] = {
        "nothing (the timer itself)": lambda: None,
        "record, no trace id": lambda: record(0.001, ""),
        "record with a trace id (+ exemplar)": lambda: record(0.001, TRACE_ID),
        "in-flight slot: take, name, free": slot,
    }
    junk = bytearray(args.flush << 20)
    ones = b"\1" * len(range(0, len(junk), 64))
    clock = time.perf_counter_ns

    def flushed(call: Callable[[], object]) -> float:
        times = []
        for _ in range(args.calls):
            junk[::64] = ones
            started = clock()
            call()
            times.append(clock() - started)
        return statistics.median(times) / 1000

    print(f"{'call':40} {'hot µs':>8} {'flushed µs':>11}")
    for name, call in calls.items():
        hot = min(timeit.repeat(call, number=20_000, repeat=5)) / 20_000 * 1e6
        print(f"{name:40} {hot:8.2f} {flushed(call):11.2f}")


if __name__ == "__main__":
    main()
