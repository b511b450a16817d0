"""In-process cost of Aura's per-request instrumentation, in microseconds per request.

Runs the WSGI app directly (no sockets) on a cheap route, instrumented and not, alternating
runs so that drift affects both alike, in multiprocess mode (metric values in mmap files, as
under Gunicorn). Prints medians and writes JSON with --json.

    .venv/bin/python bench/http_overhead.py [--requests 20000] [--runs 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _environ(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "bench",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
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


def main() -> None:
    """Measure and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="aura-bench-"))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(workdir / "metrics"))
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    from aura import create_app

    common = dict(env="testing", instance_path=workdir, database_url=f"sqlite:///{workdir}/b.db",
                  jwt_secret_key="bench-secret-key-0123456789abcdefghij", rate_limit_enabled=False,
                  prometheus_multiproc_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    apps = {"instrumented": create_app(dict(common, metrics_enabled=True)),
            "uninstrumented": create_app(dict(common, metrics_enabled=False))}
    for app in apps.values():  # warm up: caches, label children, mmap files
        per_request_us(app, args.path, 2000)
    samples = {name: [] for name in apps}
    for _ in range(args.runs):
        for name, app in apps.items():
            samples[name].append(per_request_us(app, args.path, args.requests))
    on = statistics.median(samples["instrumented"])
    off = statistics.median(samples["uninstrumented"])
    result = {"path": args.path, "requests_per_run": args.requests, "runs": args.runs,
              "instrumented_us": round(on, 2), "uninstrumented_us": round(off, 2),
              "overhead_us": round(on - off, 2), "ratio": round(off / on, 3)}
    print(f"{'route':<12}{'instrumented µs':>18}{'uninstrumented µs':>20}{'overhead µs':>14}{'off/on':>8}")
    print(f"{args.path:<12}{on:>18.2f}{off:>20.2f}{on - off:>14.2f}{off / on:>8.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
