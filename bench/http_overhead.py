"""In-process cost of Aura's request path and its instrumentation, in microseconds per request.

Runs the WSGI app directly (no sockets) on a cheap route, in multiprocess mode with the worker
identity Gunicorn's post_fork gives (metric values in mmap files, written exactly as under
Gunicorn). Variants of the same app, all built by `create_app`, and a bare Flask app:

    uninstrumented   METRICS_ENABLED=false
    instrumented     METRICS_ENABLED=true (what production runs)
    bare flask       a plain Flask app answering the same JSON on the same route: the floor
    cookie session   uninstrumented with Flask's cookie session back on (Aura before it was off)
    http only        uninstrumented + aura.instrumentation.http.HttpMetricsMiddleware
    http, no record  the same, with recording replaced by a no-op: the middleware's own cost

Runs of --requests requests alternate between the variants (order reversed every other run),
so that drift and bursts of load from other processes hit every variant alike. Every request
is timed on its own: the figures are the median (and the 10th percentile) of all of a variant's
per-request times. A request is far shorter than a scheduler time slice, so preemption by
other processes lands on few requests and moves the median little, where it would move a
mean over thousands of requests a lot. Prints a table and writes JSON with --json.

    .venv/bin/python bench/http_overhead.py [--requests 50] [--runs 400] [--no-breakdown] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _environ(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _start_response(status, headers, exc_info=None):
    return None


def per_request_us(app, path: str, count: int) -> float:
    """Mean µs per request over `count` requests through the WSGI callable."""
    base = _environ(path)
    started = time.perf_counter()
    for _ in range(count):
        environ = dict(base)
        body = app(environ, _start_response)
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()
    return (time.perf_counter() - started) / count * 1e6


def timed_requests(app, path: str, count: int, out: list[float]) -> None:
    """Append the µs each of `count` requests took (response body consumed and closed)."""
    base = _environ(path)
    clock = time.perf_counter_ns
    for _ in range(count):
        started = clock()
        body = app(dict(base), _start_response)
        for _chunk in body:
            pass
        getattr(body, "close", lambda: None)()
        out.append((clock() - started) / 1000)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def build_apps(workdir: Path, breakdown: bool) -> dict:
    """The variants, in a process whose metric files are named like a Gunicorn worker's."""
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(workdir / "metrics"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    from aura.metrics import inflight, install_value_class, use_worker_identifier

    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    install_value_class()  # as gunicorn.conf.py does in the master
    use_worker_identifier(f"{os.getpid()}-1", directory)  # as post_fork does in each worker, with its in-flight file
    inflight.open_for_worker(directory, f"{os.getpid()}-1", 1)
    from aura.app import create_app

    common = dict(
        env="testing",
        instance_path=workdir,
        database_url=f"sqlite:///{workdir}/b.db",
        jwt_secret_key="bench-secret-key-0123456789abcdefghij",
        rate_limit_enabled=False,
        prometheus_multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"],
        log_level="WARNING",
    )
    apps = {
        "uninstrumented": create_app(dict(common, metrics_enabled=False)),
        "instrumented": create_app(dict(common, metrics_enabled=True)),
        "bare flask": bare_flask_app(),
    }
    if breakdown:
        from flask.sessions import SecureCookieSessionInterface

        apps["cookie session"] = create_app(dict(common, metrics_enabled=False))
        apps["cookie session"].session_interface = SecureCookieSessionInterface()
        from aura.instrumentation.http import HttpMetricsMiddleware

        for name in ("http only", "http, no record"):  # the metrics layer alone, outermost as in the stack
            apps[name] = create_app(dict(common, metrics_enabled=False))
            apps[name].wsgi_app = HttpMetricsMiddleware(apps[name].wsgi_app, apps[name].url_map)
        apps["http, no record"].wsgi_app.recorders = _NoRecording()
    return apps


def bare_flask_app():
    """The floor: Flask alone, answering /healthz with the JSON Aura answers."""
    from flask import Flask, jsonify

    app = Flask("bare")
    app.get("/healthz")(lambda: jsonify(status="ok"))
    return app


class _NoRecording(dict):
    """The middleware's recorder cache, handing out a recorder that records nothing."""

    def get(self, key, default=None):
        return _no_record


def _no_record(seconds: float, trace_id: str = "") -> None:
    return None


def measure(path: str = "/healthz", requests: int = 50, runs: int = 400, breakdown: bool = True) -> dict:
    """Alternating runs of every variant; per-request medians (and 10th percentiles) in µs."""
    workdir = Path(tempfile.mkdtemp(prefix="aura-bench-"))
    apps = build_apps(workdir, breakdown)
    for app in apps.values():  # warm up: caches, label children, mmap files
        per_request_us(app, path, 2000)
    gc.collect()
    samples: dict[str, list[float]] = {name: [] for name in apps}
    names = list(apps)
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            timed_requests(apps[name], path, requests, samples[name])
    med = {name: statistics.median(s) for name, s in samples.items()}
    low = {name: _percentile(s, 0.10) for name, s in samples.items()}
    off = med["uninstrumented"]
    result = {
        "path": path,
        "requests_per_run": requests,
        "runs": runs,
        "statistic": "median (and 10th percentile) of per-request times",
        "instrumented_us": round(med["instrumented"], 2),
        "uninstrumented_us": round(off, 2),
        "overhead_us": round(med["instrumented"] - off, 2),
        "ratio": round(off / med["instrumented"], 3),
        "bare_flask_us": round(med["bare flask"], 2),
        "uninstrumented_vs_bare": round(off / med["bare flask"], 3),
        "p10_instrumented_us": round(low["instrumented"], 2),
        "p10_uninstrumented_us": round(low["uninstrumented"], 2),
        "p10_overhead_us": round(low["instrumented"] - low["uninstrumented"], 2),
        "variants": {
            name: {
                "median_us": round(med[name], 2),
                "p10_us": round(low[name], 2),
                "median_overhead_us": round(med[name] - off, 2),
                "p10_overhead_us": round(low[name] - low["uninstrumented"], 2),
                "mean_us": round(statistics.fmean(samples[name]), 2),
            }
            for name in apps
        },
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def print_table(result: dict, out=sys.stdout) -> None:
    """One row per variant: median and 10th percentile µs per request, and what each adds."""
    print(f"{'variant':<16}{'median µs':>11}{'+ vs off':>10}{'p10 µs':>10}{'+ vs off':>10}", file=out)
    for name, v in result["variants"].items():
        print(
            f"{name:<16}{v['median_us']:>11.1f}{v['median_overhead_us']:>10.1f}"
            f"{v['p10_us']:>10.1f}{v['p10_overhead_us']:>10.1f}",
            file=out,
        )


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="requests per run (default 50)")
    parser.add_argument("--runs", type=int, default=400, help="alternating runs per variant (default 400)")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--no-breakdown", action="store_true", help="only instrumented vs uninstrumented")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.path, args.requests, args.runs, breakdown=not args.no_breakdown)
    print(f"{args.path}: {args.runs} alternating runs x {args.requests} requests per variant")
    print_table(result)
    print(
        f"overhead (median): {result['overhead_us']:.1f} µs per request; "
        f"uninstrumented/instrumented = {result['ratio']:.3f}; "
        f"uninstrumented/bare flask = {result['uninstrumented_vs_bare']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
