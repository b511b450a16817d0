"""What an instrumented Gunicorn worker pays per request, metrics on against off, counted.

`bench/http_load.py` times whole workers under wrk; on a shared 2-core machine its CPU
cross-check moves by tens of µs from round to round. This script counts instead of timing, so
its figures do not depend on what else the machine does. For METRICS_ENABLED=true and =false,
one Gunicorn instance with one sync worker (the settings of bench/http_load.py: access log off,
rate limits off, SQLite) answers --requests sequential `GET /healthz`, and the script reports
per request:

    calls         Python function calls inside the request (cProfile, switched on by a
                  pre_request hook and off by post_request; the wrapper config runs
                  gunicorn.conf.py first, so the worker is the production one)
    instructions  the worker's instructions by thread (valgrind's callgrind, collection
                  switched on after the warm-up for exactly those requests); the main thread
                  serves requests, the others are the once-a-second samplers
    syscalls      system calls by name over the same requests (strace -c -f)

and the same two variants in-process (bench/http_overhead.py's apps, no sockets) for calls and
instructions: what Gunicorn mode adds shows as the difference of the differences.

    .venv/bin/python bench/worker_breakdown.py [--requests 2000] [--json PATH]

Needs valgrind and strace (Debian packages of those names); a missing one skips its part.
Under callgrind a request takes ~50x longer, so the samplers' share is inflated by as much:
their figure is an upper bound.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Runs gunicorn.conf.py, then adds hooks that profile exactly the request (pre/post_request).
PROFILING_CONFIG = """
import cProfile, os
exec(compile(open({conf!r}).read(), {conf!r}, "exec"))
_profile = cProfile.Profile()
def pre_request(worker, req):
    _profile.enable()
def post_request(worker, req, environ, resp):
    _profile.disable()
_exit = worker_exit
def worker_exit(server, worker):
    _profile.dump_stats(os.environ["AURA_BENCH_PROFILE"])
    _exit(server, worker)
"""
VARIANTS = {"on": True, "off": False}
IN_PROCESS = {"on": "instrumented", "off": "uninstrumented"}
REDIS_URL = os.environ.get("AURA_BENCH_REDIS_URL", "redis://127.0.0.1:6379")  # /healthz does not use it


def get(port: int) -> None:
    """One request on a new connection, as a sync worker serves them."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")
    finally:
        conn.close()


class Worker:
    """One Gunicorn instance, one worker, optionally under a wrapper command (valgrind)."""

    def __init__(self, workdir: Path, name: str, config: str, prefix: list[str], extra_env: dict[str, str]):
        import http_load

        from aura.testing.servers import free_port

        env = http_load.server_env(workdir, name, f"sqlite:///{workdir / 'bench.db'}", REDIS_URL, VARIANTS[name])
        env.update(
            GUNICORN_WORKERS="1",
            GUNICORN_TIMEOUT="600",  # a request under callgrind takes milliseconds
            GUNICORN_ACCESS_LOG="",
            METRICS_PORT="0",
            **extra_env,
        )
        self.port = free_port()
        env["GUNICORN_BIND"] = f"127.0.0.1:{self.port}"
        argv = [*prefix, sys.executable, str(ROOT / ".venv/bin/gunicorn"), "-c", config, "wsgi:app"]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=open(workdir / f"gunicorn-{name}.log", "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 600
        while True:
            try:
                get(self.port)
                break
            except (OSError, RuntimeError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start; see {workdir}/gunicorn-{name}.log") from None
                time.sleep(0.5)

    def worker_pid(self) -> int:
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        if len(children) != 1:
            raise RuntimeError(f"expected one worker, found {children}")
        return int(children[0])

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=120)


def calls_per_request(stats_path: Path, requests: int) -> float:
    return sum(entry[1] for entry in pstats.Stats(str(stats_path)).stats.values()) / requests


def callgrind_totals(paths: list[Path], requests: int) -> list[float]:
    """Instructions per request in each callgrind output file (one per thread), largest first."""
    totals = []
    for path in paths:
        match = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.MULTILINE)
        if match:
            totals.append(int(match.group(1)) / requests)
    return sorted(totals, reverse=True)


def measure_gunicorn(workdir: Path, name: str, requests: int, warmup: int) -> dict:
    result: dict = {}
    # Python calls per request
    config = workdir / "profiling.conf.py"
    config.write_text(PROFILING_CONFIG.format(conf=str(ROOT / "gunicorn.conf.py")))
    stats = workdir / f"calls-{name}.prof"
    worker = Worker(workdir, name, str(config), [], {"AURA_BENCH_PROFILE": str(stats)})
    for _ in range(requests):
        get(worker.port)
    worker.stop()
    result["calls"] = calls_per_request(stats, requests + 1)  # + the start-up probe
    # system calls per request
    if shutil.which("strace"):
        worker = Worker(workdir, name, str(ROOT / "gunicorn.conf.py"), [], {})
        for _ in range(warmup):
            get(worker.port)
        out = workdir / f"strace-{name}.txt"
        tracer = subprocess.Popen(["strace", "-f", "-c", "-o", str(out), "-p", str(worker.worker_pid())])
        time.sleep(1)  # attached
        for _ in range(requests):
            get(worker.port)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
        worker.stop()
        counts = {}
        for line in out.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] not in ("total",):
                counts[fields[-1]] = int(fields[3]) / requests
        result["syscalls"] = {k: round(v, 2) for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v >= 0.01}
    # instructions per request, by thread
    if shutil.which("valgrind"):
        prefix = [
            "valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
            "--separate-threads=yes", f"--callgrind-out-file={workdir}/cg-{name}.%p",
        ]  # fmt: skip
        worker = Worker(workdir, name, str(ROOT / "gunicorn.conf.py"), prefix, {})
        for _ in range(warmup):
            get(worker.port)
        pid = worker.worker_pid()
        subprocess.run(["callgrind_control", "-i", "on", str(pid)], check=True, capture_output=True)
        for _ in range(requests):
            get(worker.port)
        subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
        worker.stop()
        threads = callgrind_totals(sorted(workdir.glob(f"cg-{name}.{pid}.1-*")), requests)
        result["instructions"] = {"main thread": round(threads[0]), "other threads": round(sum(threads[1:]))}
    return result


def in_process_child(variant: str, requests: int, warmup: int, stats_path: str) -> None:
    """Runs in a child (under callgrind, or not): the in-process variant, counted."""
    import cProfile

    import http_overhead

    apps = http_overhead.build_apps(Path(tempfile.mkdtemp(prefix="aura-bench-breakdown-")), False)
    app = apps[IN_PROCESS[variant]]
    http_overhead.timed_requests(app, "/healthz", warmup, [])
    if stats_path:
        profile = cProfile.Profile()
        profile.enable()
        http_overhead.timed_requests(app, "/healthz", requests, [])
        profile.disable()
        profile.dump_stats(stats_path)
        return
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True, capture_output=True)
    http_overhead.timed_requests(app, "/healthz", requests, [])
    subprocess.run(["callgrind_control", "-d", str(os.getpid())], check=True, capture_output=True)


def measure_in_process(workdir: Path, name: str, requests: int, warmup: int) -> dict:
    me = [sys.executable, __file__, "--in-process", name, "--requests", str(requests), "--warmup", str(warmup)]
    stats = workdir / f"inproc-{name}.prof"
    subprocess.run([*me, "--stats", str(stats)], check=True, cwd=ROOT)
    result: dict = {"calls": calls_per_request(stats, requests)}
    if shutil.which("valgrind"):
        out = workdir / f"cg-inproc-{name}"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}.%p", *me],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        result["instructions"] = {
            "main thread": round(callgrind_totals(list(workdir.glob(f"{out.name}.*.1")), requests)[0])
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", default="")
    parser.add_argument("--in-process", default="", help=argparse.SUPPRESS)
    parser.add_argument("--stats", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        in_process_child(args.in_process, args.requests, args.warmup, args.stats)
        return
    from aura.testing.servers import migrate

    workdir = Path(tempfile.mkdtemp(prefix="aura-bench-breakdown-"))
    import http_load

    migrate(http_load.server_env(workdir, "on", f"sqlite:///{workdir / 'bench.db'}", REDIS_URL, True))
    result: dict = {"requests": args.requests}
    for mode, measure in (("gunicorn", measure_gunicorn), ("in-process", measure_in_process)):
        for name in VARIANTS:
            print(f"  {mode}, metrics {name} ...", file=sys.stderr, flush=True)
            result[mode, name] = measure(workdir, name, args.requests, args.warmup)
    shutil.rmtree(workdir, ignore_errors=True)
    print_table(result)
    if args.json:
        Path(args.json).write_text(
            json.dumps({f"{k[0]} {k[1]}" if isinstance(k, tuple) else k: v for k, v in result.items()}, indent=2)
        )


def print_table(result: dict) -> None:
    def row(label: str, pick) -> None:
        cells = []
        for mode in ("gunicorn", "in-process"):
            on, off = pick(result[mode, "on"]), pick(result[mode, "off"])
            cells.append("n/a" if on is None or off is None else f"{on:,.0f} / {off:,.0f} (+{on - off:,.0f})")
        print(f"| {label} | {cells[0]} | {cells[1]} |")

    print(f"\nper request, metrics on / off (+ difference), {result['requests']} requests each")
    print("| | Gunicorn worker | in-process |\n|---|---|---|")
    row("Python calls", lambda r: r.get("calls"))
    row("instructions, request thread", lambda r: r.get("instructions", {}).get("main thread"))
    row(
        "instructions, sampler threads",
        lambda r: r.get("instructions", {}).get("other threads", 0 if "instructions" in r else None),
    )
    on, off = result["gunicorn", "on"].get("syscalls"), result["gunicorn", "off"].get("syscalls")
    if on is not None and off is not None:
        print(f"| system calls | {sum(on.values()):.2f} / {sum(off.values()):.2f} | - |")
        print(f"  on: {on}\n  off: {off}")


if __name__ == "__main__":
    main()
