"""Scrape latency versus recycled (dead) Gunicorn workers, with and without merging.

For each N in --dead (default 0,100,1000) this builds a metrics directory holding --live live
workers plus N dead ones. Each worker has an HTTP-service-like label set: the counter
http_requests_total{method,endpoint,status_code} over 4x10x3 = 120 label sets and the histogram
http_request_duration_seconds{method,endpoint} over 40 label sets with 12 buckets, each bucket and
each 5xx counter with an exemplar (the exemplar file Aura's workers keep). Files are
written directly with prometheus_client's MmapedDict in this one process (no worker processes).

It then measures a scrape - generate_latest() over a fresh CollectorRegistry, as /metrics does -
with merging OFF (stock MultiProcessCollector over every file) and ON (dead workers merged into
the archive by merge_all_dead, read by AuraMultiProcessCollector), reporting the median of
--runs scrapes and, for ON, the first (cold-cache) scrape. It also times one more child_exit
merge into the resulting archive.

    .venv/bin/python bench/metrics_scrape.py [--dead 0,100,1000] [--runs 5] [--off-runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.mmap_dict import MmapedDict, mmap_key  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.utils import floatToGoString  # noqa: E402

import aura.metrics as multiproc  # noqa: E402
from aura.metrics import exemplars  # noqa: E402

METHODS = ("GET", "POST", "PUT", "DELETE")
ENDPOINTS = tuple(f"/api/v1/resource{i}" for i in range(10))
STATUSES = ("200", "404", "500")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)


def _keys():
    counter = [
        mmap_key(
            "http_requests", "http_requests_total", ["method", "endpoint", "status_code"], [m, e, s], "HTTP requests."
        )
        for m in METHODS
        for e in ENDPOINTS
        for s in STATUSES
    ]
    hist = []
    for m in METHODS:
        for e in ENDPOINTS:
            for b in (*BUCKETS, float("inf")):
                hist.append(
                    mmap_key(
                        "http_request_duration_seconds",
                        "http_request_duration_seconds_bucket",
                        ["method", "endpoint", "le"],
                        [m, e, floatToGoString(b)],
                        "HTTP request duration.",
                    )
                )
            hist.append(
                mmap_key(
                    "http_request_duration_seconds",
                    "http_request_duration_seconds_sum",
                    ["method", "endpoint"],
                    [m, e],
                    "HTTP request duration.",
                )
            )
    return counter, hist


COUNTER_KEYS, HISTOGRAM_KEYS = _keys()
EXEMPLAR_KEYS = [k for k in COUNTER_KEYS if '"500"' in k] + [k for k in HISTOGRAM_KEYS if "_bucket" in k]


def write_worker(directory: str, identifier: str, rnd: random.Random) -> None:
    """One worker's counter and histogram files, written with MmapedDict as a worker would, and its
    exemplar file: every bucket and every 5xx counter with a request of its own."""
    for typ, keys in (("counter", COUNTER_KEYS), ("histogram", HISTOGRAM_KEYS)):
        d = MmapedDict(os.path.join(directory, f"{typ}_{identifier}.db"))
        try:
            for key in keys:
                d.write_value(key, float(rnd.randint(0, 50)), 0.0)
        finally:
            d.close()
    kept = exemplars.ExemplarFile(os.path.join(directory, exemplars.file_name(identifier)))
    try:
        for key in EXEMPLAR_KEYS:
            kept.write(kept.position(key), rnd.randbytes(16).hex().encode(), rnd.random(), time.time())
    finally:
        kept.close()


def scrape_seconds(registry_factory, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        generate_latest(registry_factory())
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _stock(directory):
    def factory():
        reg = CollectorRegistry()
        MultiProcessCollector(reg, directory)
        return reg

    return factory


def _aura(directory):
    def factory():
        reg = CollectorRegistry()
        multiproc.AuraMultiProcessCollector(reg, directory)
        return reg

    return factory


def _clear_caches() -> None:
    # A fresh process: no parsed archive, no parsed keys.
    multiproc.collector._archive_cache.clear()
    multiproc.archive._key_cache.clear()


def run_one(dead: int, live: int, runs: int, base: str, off_runs: int | None = None) -> dict:
    """Build the directory for `dead` dead workers and measure both modes."""
    directory = os.path.join(base, f"dead-{dead}")
    multiproc.prepare_directory(directory)
    rnd = random.Random(dead)
    live_ids = [f"{900000 + i}-{i}" for i in range(1, live + 1)]
    start = time.perf_counter()
    for ident in live_ids:
        write_worker(directory, ident, rnd)
    for i in range(1, dead + 1):
        write_worker(directory, f"{10000 + i}-{100 + i}", rnd)
    write_s = time.perf_counter() - start
    files = sum(1 for n in os.listdir(directory) if n.endswith(".db"))

    off_runs = runs if off_runs is None else off_runs
    off_median, _ = scrape_seconds(_stock(directory), off_runs)
    _clear_caches()
    aura_unmerged, _ = scrape_seconds(_aura(directory), off_runs)

    start = time.perf_counter()
    stats = multiproc.merge_all_dead(directory, live_ids, check_pids=False)
    bulk_merge_s = time.perf_counter() - start
    assert len(stats.merged_identifiers) == dead

    _clear_caches()
    on_median, on_times = scrape_seconds(_aura(directory), runs + 1)
    on_cold = on_times[0]
    on_median = statistics.median(on_times[1:])

    # What one child_exit costs the master once the archive holds `dead` workers.
    write_worker(directory, "999999-1", rnd)
    start = time.perf_counter()
    multiproc.merge_dead_worker(directory, "999999-1")
    one_merge_s = time.perf_counter() - start
    archive_bytes = os.path.getsize(os.path.join(directory, "aura-archive.json"))
    return {
        "dead_workers": dead,
        "live_workers": live,
        "files_unmerged": files,
        "write_seconds": round(write_s, 3),
        "off_stock_median_ms": round(off_median * 1e3, 2),
        "aura_unmerged_median_ms": round(aura_unmerged * 1e3, 2),
        "on_median_ms": round(on_median * 1e3, 2),
        "on_cold_ms": round(on_cold * 1e3, 2),
        "bulk_merge_seconds": round(bulk_merge_s, 3),
        "one_merge_ms": round(one_merge_s * 1e3, 2),
        "archive_bytes": archive_bytes,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dead", default="0,100,1000", help="comma-separated dead-worker counts")
    parser.add_argument("--live", type=int, default=4, help="live workers (default 4)")
    parser.add_argument("--runs", type=int, default=5, help="scrapes per measurement (median)")
    parser.add_argument(
        "--off-runs",
        type=int,
        help="scrapes per measurement without merging (default: --runs; they take seconds each with 1000 dead workers)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--dir", help="parent directory for the metric files (default: a temp dir)")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="aura-bench-") as base:
        for dead in (int(n) for n in args.dead.split(",")):
            results.append(run_one(dead, args.live, args.runs, base, args.off_runs))
            print(f"  measured {dead} dead workers", file=sys.stderr)

    fresh = results[0]["on_median_ms"] if results and results[0]["dead_workers"] == 0 else None
    header = (
        f"{'dead':>5} {'files':>6} | {'OFF stock':>10} {'aura unmerged':>14} | "
        f"{'ON median':>10} {'ON cold':>9} {'vs fresh':>8} | {'1 merge':>8} {'archive':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r['on_median_ms'] / fresh:.2f}x" if fresh else "-"
        r["on_vs_fresh"] = round(r["on_median_ms"] / fresh, 3) if fresh else None
        print(
            f"{r['dead_workers']:>5} {r['files_unmerged']:>6} | {r['off_stock_median_ms']:>8.1f}ms "
            f"{r['aura_unmerged_median_ms']:>12.1f}ms | {r['on_median_ms']:>8.1f}ms "
            f"{r['on_cold_ms']:>7.1f}ms {ratio:>8} | {r['one_merge_ms']:>6.1f}ms "
            f"{r['archive_bytes'] / 1024:>7.0f}KB"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "live_workers": args.live,
                    "runs": args.runs,
                    "off_runs": args.off_runs or args.runs,
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
