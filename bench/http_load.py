"""Throughput and worker memory of real Gunicorn, metrics on and off, in one run.

Starts two Aura instances side by side (4 sync workers each, loopback, access log off, rate
limiting off, SQLite, Redis logical databases 14/15 when Redis answers): one with
METRICS_ENABLED=true, one with METRICS_ENABLED=false. Registers and logs in a user on each,
warms both up, reads each worker's resident memory (VmRSS), then runs --rounds rounds; each
round loads every (route, instance) cell for --seconds seconds, the on/off order reversed
every other round, so that drift and other processes' load hit both alike. Reported: the
median requests/s per cell and the on/off ratio per route.

Routes: GET /healthz (cheap: no database, no Redis) and POST /api/v1/workflows/audit (Bearer
token, a small realistic two-module submission; JWT check, validation, the audit graph, one
stored result).

Load comes from wrk (a Lua script for the POST's headers and body, and for a JSON summary);
without wrk, from a multi-process Python client (much heavier on the CPU it shares with the
server - figures are then lower and not comparable to wrk's). Loopback only.

    .venv/bin/python bench/http_load.py [--rounds 5] [--seconds 5] [--workers 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aura.testing.servers import Gunicorn, free_port, migrate  # noqa: E402

PASSWORD = "bench-password-0123"
JWT_SECRET = "bench-jwt-secret-key-0123456789abcdef-not-for-production"
# A small, realistic submission: two ordinary modules (one with a stray print) and a README.
AUDIT_BODY = {
    "files": [
        {
            "path": "shop/cart.py",
            "content": (
                "from dataclasses import dataclass, field\n\n\n"
                "@dataclass\nclass Item:\n    name: str\n    price: float\n    quantity: int = 1\n\n\n"
                "@dataclass\nclass Cart:\n    items: list[Item] = field(default_factory=list)\n\n"
                "    def add(self, item: Item) -> None:\n        for existing in self.items:\n"
                "            if existing.name == item.name:\n                existing.quantity += item.quantity\n"
                "                return\n        self.items.append(item)\n\n"
                "    def total(self) -> float:\n        total = sum(i.price * i.quantity for i in self.items)\n"
                "        print('cart total', total)\n        return round(total, 2)\n"
            ),
        },
        {
            "path": "shop/discounts.py",
            "content": (
                "def apply_discount(total: float, code: str | None) -> float:\n"
                '    """Apply a discount code to a cart total."""\n'
                "    rates = {'WELCOME10': 0.10, 'VIP20': 0.20}\n"
                "    if not code:\n        return total\n"
                "    rate = rates.get(code.upper(), 0.0)\n"
                "    return round(total * (1 - rate), 2)\n"
            ),
        },
        {"path": "README.md", "content": "# shop\nA tiny shopping cart.\n"},
    ]
}
ROUTES = {
    "healthz": {"method": "GET", "path": "/healthz"},
    "audit": {"method": "POST", "path": "/api/v1/workflows/audit"},
}
_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_p50_us": %d, ' ..
    '"latency_p99_us": %d}\n', summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


# ----------------------------------------------------------------------------- load generators


def ensure_wrk() -> str | None:
    """Path of wrk, installing the Debian package when missing (root or sudo); None if impossible."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get"):
        sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
        if sudo is not None:
            print("  installing wrk (apt-get)", file=sys.stderr)
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
                if subprocess.run(sudo + cmd, env=env, capture_output=True, timeout=300).returncode:
                    break
    return shutil.which("wrk")


class Wrk:
    """wrk with one Lua script per (route, instance): headers, body and a JSON summary."""

    name = "wrk"

    def __init__(self, binary: str, workdir: Path, threads: int = 1, connections: int = 8):
        self.binary, self.workdir, self.threads, self.connections = binary, workdir, threads, connections
        out = subprocess.run([binary, "--version"], capture_output=True, text=True)
        text = (out.stdout + out.stderr).strip()
        self.version = text.splitlines()[0] if text else "wrk"

    def script(self, label: str, method: str, token: str | None, body: bytes | None) -> Path:
        lines = [f'wrk.method = "{method}"']
        if body is not None:
            body_path = self.workdir / f"{label}.body.json"
            body_path.write_bytes(body)
            lines += [
                f'local f = assert(io.open("{body_path}", "rb"))',
                "wrk.body = f:read('*a')",
                "f:close()",
                'wrk.headers["Content-Type"] = "application/json"',
            ]
        if token:
            lines.append(f'wrk.headers["Authorization"] = "Bearer {token}"')
        path = self.workdir / f"{label}.lua"
        path.write_text("\n".join(lines) + "\n" + _WRK_DONE)
        return path

    def run(self, url: str, script: Path, seconds: float) -> dict:
        cmd = [
            self.binary,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        match = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
        if not match:
            raise RuntimeError(f"wrk gave no summary: {out.stdout}\n{out.stderr}")
        r = json.loads(match.group(1))
        seconds_run = r["duration_us"] / 1e6
        errors = sum(v for k, v in r.items() if k.startswith("errors_"))
        return {
            "rps": r["requests"] / seconds_run,
            "requests": r["requests"],
            "seconds": seconds_run,
            "errors": errors,
            "non_2xx": r["errors_status"],
            "p50_ms": r["latency_p50_us"] / 1e3,
            "p99_ms": r["latency_p99_us"] / 1e3,
        }


def _python_client(args) -> tuple[int, int, list[float]]:
    host, port, method, path, headers, body, seconds = args
    ok = bad = 0
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            ok, bad = (ok + 1, bad) if 200 <= resp.status < 400 else (ok, bad + 1)
        except OSError:
            bad += 1
        finally:
            conn.close()
        latencies.append(time.perf_counter() - started)
    return ok, bad, latencies


class PythonClient:
    """Fallback load generator: several processes, one connection per request (as sync Gunicorn)."""

    name = "python"
    version = f"python {sys.version.split()[0]} http.client"

    def __init__(self, workdir: Path, processes: int = 4):
        self.processes = processes
        self.pool = multiprocessing.get_context("fork").Pool(processes)

    def script(self, label, method, token, body):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return (method, headers, body)

    def run(self, url: str, script, seconds: float) -> dict:
        method, headers, body = script
        host, port_path = url.split("://", 1)[1].split(":", 1)
        port, path = port_path.split("/", 1)
        job = (host, int(port), method, "/" + path, headers, body, seconds)
        started = time.perf_counter()
        parts = self.pool.map(_python_client, [job] * self.processes)
        elapsed = time.perf_counter() - started
        ok = sum(p[0] for p in parts)
        bad = sum(p[1] for p in parts)
        lat = sorted(x for p in parts for x in p[2]) or [0.0]
        return {
            "rps": (ok + bad) / elapsed,
            "requests": ok + bad,
            "seconds": elapsed,
            "errors": bad,
            "non_2xx": bad,
            "p50_ms": statistics.median(lat) * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
        }

    def close(self):
        self.pool.terminate()


# ----------------------------------------------------------------------------- servers


def redis_setup(workdir: Path):
    """(redis_url, private server to stop or None, mode): the local Redis, a private one, or none."""
    try:
        import redis

        if redis.Redis.from_url("redis://127.0.0.1:6379", socket_connect_timeout=0.3).ping():
            return "redis://127.0.0.1:6379", None, "redis (127.0.0.1:6379, databases 14/15)"
    except Exception:  # noqa: BLE001 - any failure means: no local Redis
        pass
    if shutil.which("redis-server"):
        from aura.testing.servers import RedisServer

        server = RedisServer().start()
        return server.url, server, f"redis (private redis-server on port {server.port})"
    return f"redis://127.0.0.1:{free_port()}", None, "standalone (no Redis: revocations in SQLite)"


def server_env(workdir: Path, name: str, database_url: str, redis_url: str, metrics_enabled: bool) -> dict:
    """Environment of one instance: production-like settings, no rate limits, no access log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AURA_", "GUNICORN_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        AURA_ENV="development",
        AURA_INSTANCE_PATH=str(workdir / f"instance-{name}"),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        REDIS_AUTH_DB="14",
        REDIS_RATE_LIMIT_DB="15",
        JWT_SECRET_KEY=JWT_SECRET,
        ACCESS_TOKEN_EXPIRES="7200",
        # Only the one register/login per instance hashes a password: cheap settings save time.
        PASSWORD_HASH_TIME_COST="1",
        # 8 KiB, not more: a worker that hashed with 64 MiB keeps that much more resident memory,
        # which would swamp the on/off memory comparison.
        PASSWORD_HASH_MEMORY_COST="8",
        RATE_LIMIT_ENABLED="false",
        # One benchmark user drives every connection: the per-user cap would turn most into 429s.
        WORKFLOW_MAX_CONCURRENT_PER_USER="1000",
        METRICS_ENABLED="true" if metrics_enabled else "false",
        # On tmpfs, as gunicorn.conf.py's default and the k8s emptyDir (medium: Memory) are.
        PROMETHEUS_MULTIPROC_DIR=_metrics_dir(name),
        LOG_LEVEL="WARNING",
        GUNICORN_MAX_REQUESTS="0",  # no recycling during the measurement
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    return env


_METRICS_DIRS: list[str] = []  # removed at the end of the run


def _metrics_dir(name: str) -> str:
    """A metrics directory on tmpfs for one server, removed when the run ends."""
    path = tempfile.mkdtemp(prefix=f"aura-bench-metrics-{name}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    _METRICS_DIRS.append(path)
    return path


def login(url: str) -> str:
    """Register and log in a user; return an access token."""
    import requests

    creds = {"email": "bench@example.com", "password": PASSWORD}
    r = requests.post(f"{url}/api/v1/auth/register", json=creds, timeout=30)
    if r.status_code not in (201, 409):
        raise RuntimeError(f"register: {r.status_code} {r.text}")
    r = requests.post(f"{url}/api/v1/auth/login", json=creds, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"login: {r.status_code} {r.text}")
    token = r.json()["access_token"]
    r = requests.post(
        f"{url}/api/v1/workflows/audit", json=AUDIT_BODY, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    if r.status_code != 201:
        raise RuntimeError(f"audit: {r.status_code} {r.text}")
    return token


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_cpu_seconds(server: Gunicorn) -> float:
    """CPU time (user + system) used so far by the instance's current workers."""
    total = 0
    for pid in server.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def worker_rss(server: Gunicorn) -> list[float]:
    """VmRSS of each worker, MiB, sorted."""
    return sorted(round(rss_kib(pid) / 1024, 1) for pid in server.worker_pids())


def start_server(workdir: Path, env: dict, workers: int, log) -> Gunicorn:
    """Start one instance; one retry (a port taken between choosing and binding it, say)."""
    for attempt in (1, 2):
        server = Gunicorn(workdir, env, workers=workers)
        try:
            return server.start()
        except RuntimeError as exc:
            server.stop()
            code = server.proc.returncode if server.proc else None
            if attempt == 2:
                raise RuntimeError(f"{exc} (exit status {code})") from exc
            log(f"  gunicorn did not start (exit status {code}); retrying")
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- the benchmark


def run(
    rounds: int = 5,
    seconds: float = 5.0,
    warmup: float = 2.0,
    workers: int = 4,
    log=lambda msg: print(msg, file=sys.stderr),
) -> dict:
    """Measure; return a JSON-able dict."""
    workdir = Path(tempfile.mkdtemp(prefix="aura-bench-http-"))
    wrk = ensure_wrk()
    generator = Wrk(wrk, workdir) if wrk else PythonClient(workdir)
    if not wrk:
        log("  wrk unavailable: falling back to the multi-process Python client")
    redis_url, redis_server, redis_mode = redis_setup(workdir)
    servers: dict[str, Gunicorn] = {}
    try:
        db_on = workdir / "on.db"
        env = server_env(workdir, "on", f"sqlite:///{db_on}", redis_url, True)
        env.pop("PROMETHEUS_MULTIPROC_DIR")  # created by Gunicorn's on_starting, not there yet
        migrate(env)
        shutil.copy(db_on, workdir / "off.db")  # same schema and catalog, no second migration
        for name, enabled in (("on", True), ("off", False)):
            env = server_env(workdir, name, f"sqlite:///{workdir / name}.db", redis_url, enabled)
            servers[name] = start_server(workdir, env, workers, log)
            servers[name].wait_for_workers(workers)
        log(f"  servers up: on={servers['on'].url} off={servers['off'].url}")
        tokens = {name: login(s.url) for name, s in servers.items()}
        body = json.dumps(AUDIT_BODY).encode()
        scripts = {}
        for route, spec in ROUTES.items():
            for name in servers:
                is_post = spec["method"] == "POST"
                scripts[route, name] = generator.script(
                    f"{route}-{name}", spec["method"], tokens[name] if is_post else None, body if is_post else None
                )

        def cell(route: str, name: str, secs: float) -> dict:
            cpu0 = worker_cpu_seconds(servers[name])
            r = generator.run(servers[name].url + ROUTES[route]["path"], scripts[route, name], secs)
            r["worker_cpu_us_per_request"] = (worker_cpu_seconds(servers[name]) - cpu0) / max(1, r["requests"]) * 1e6
            return r

        for route in ROUTES:  # warm-up: imports on first use, caches, SQLite pages, label children
            for name in servers:
                cell(route, name, warmup)
        rss_warm = {name: worker_rss(s) for name, s in servers.items()}
        log(f"  warmed up; worker RSS MiB on={rss_warm['on']} off={rss_warm['off']}")

        cells: dict[str, dict[str, list[dict]]] = {r: {"on": [], "off": []} for r in ROUTES}
        for i in range(rounds):
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for route in ROUTES:
                for name in order:
                    cells[route][name].append(cell(route, name, seconds))
            log(
                f"  round {i + 1}/{rounds}: "
                + "  ".join(
                    f"{r} on={cells[r]['on'][-1]['rps']:.0f} off={cells[r]['off'][-1]['rps']:.0f} req/s "
                    f"(cpu {cells[r]['on'][-1]['worker_cpu_us_per_request']:.0f}/"
                    f"{cells[r]['off'][-1]['worker_cpu_us_per_request']:.0f} µs/req)"
                    for r in ROUTES
                )
            )
        rss_end = {name: worker_rss(s) for name, s in servers.items()}
        logs = {name: s.log() for name, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
        if redis_server is not None:
            redis_server.kill()
        if isinstance(generator, PythonClient):
            generator.close()

    routes = {}
    for route, by in cells.items():
        med = {name: statistics.median(x["rps"] for x in by[name]) for name in by}
        cpu = {name: statistics.median(x["worker_cpu_us_per_request"] for x in by[name]) for name in by}
        # Each round loads "on" and "off" back to back: the ratio within a round cancels drift
        # slower than a round, and the median over rounds discards rounds another process spoiled.
        paired = [on["rps"] / off["rps"] for on, off in zip(by["on"], by["off"], strict=True) if off["rps"]]
        routes[route] = {
            "method": ROUTES[route]["method"],
            "path": ROUTES[route]["path"],
            "rps_on": round(med["on"], 1),
            "rps_off": round(med["off"], 1),
            "ratio_on_off": round(statistics.median(paired), 3) if paired else None,
            "ratio_of_medians": round(med["on"] / med["off"], 3) if med["off"] else None,
            "rounds_ratio_on_off": [round(r, 3) for r in paired],
            # Workers' CPU per request: what other processes' load disturbs least.
            "worker_cpu_us_on": round(cpu["on"], 1),
            "worker_cpu_us_off": round(cpu["off"], 1),
            "cpu_ratio_off_on": round(cpu["off"] / cpu["on"], 3) if cpu["on"] else None,
            "p50_ms_on": round(statistics.median(x["p50_ms"] for x in by["on"]), 2),
            "p50_ms_off": round(statistics.median(x["p50_ms"] for x in by["off"]), 2),
            "p99_ms_on": round(statistics.median(x["p99_ms"] for x in by["on"]), 2),
            "p99_ms_off": round(statistics.median(x["p99_ms"] for x in by["off"]), 2),
            "errors_on": sum(x["errors"] for x in by["on"]),
            "errors_off": sum(x["errors"] for x in by["off"]),
            "rounds_on": [round(x["rps"], 1) for x in by["on"]],
            "rounds_off": [round(x["rps"], 1) for x in by["off"]],
            "rounds_cpu_us_on": [round(x["worker_cpu_us_per_request"], 1) for x in by["on"]],
            "rounds_cpu_us_off": [round(x["worker_cpu_us_per_request"], 1) for x in by["off"]],
        }

    def mem(values: dict[str, list[float]]) -> dict:
        return {
            "per_worker_mib_on": values["on"],
            "per_worker_mib_off": values["off"],
            "median_mib_on": statistics.median(values["on"]),
            "median_mib_off": statistics.median(values["off"]),
            "delta_mib": round(statistics.median(values["on"]) - statistics.median(values["off"]), 1),
        }

    shutil.rmtree(workdir, ignore_errors=True)
    for path in _METRICS_DIRS:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "workers": workers,
        "worker_class": "sync",
        "rounds": rounds,
        "seconds_per_cell": seconds,
        "warmup_seconds": warmup,
        "load_generator": generator.name,
        "load_generator_version": generator.version,
        "load_generator_settings": (
            {"threads": generator.threads, "connections": generator.connections}
            if isinstance(generator, Wrk)
            else {"processes": generator.processes}
        ),
        "redis": redis_mode,
        "database": "sqlite (one file per instance)",
        "routes": routes,
        "rss_after_warmup": mem(rss_warm),
        "rss_after_rounds": mem(rss_end),
        "server_log_tail": {k: v[-1500:] for k, v in logs.items() if v.strip()},
    }


def print_table(result: dict, out=sys.stdout) -> None:
    """Requests/s per route, on and off side by side, and worker memory."""
    print(
        f"{'route':<34}{'on req/s':>10}{'off req/s':>11}{'on/off':>8}{'CPU µs/req on/off':>20}"
        f"{'off/on':>8}{'errors':>8}",
        file=out,
    )
    for r in result["routes"].values():
        print(
            f"{r['method'] + ' ' + r['path']:<34}{r['rps_on']:>10.0f}{r['rps_off']:>11.0f}"
            f"{r['ratio_on_off']:>8.3f}{r['worker_cpu_us_on']:>12.0f}/{r['worker_cpu_us_off']:<7.0f}"
            f"{r['cpu_ratio_off_on']:>8.3f}{r['errors_on'] + r['errors_off']:>8}",
            file=out,
        )
    for when in ("rss_after_warmup", "rss_after_rounds"):
        m = result[when]
        print(
            f"worker RSS {when[4:].replace('_', ' ')}: on {m['median_mib_on']:.1f} MiB, "
            f"off {m['median_mib_off']:.1f} MiB (median of {len(m['per_worker_mib_on'])} workers; "
            f"delta {m['delta_mib']:+.1f} MiB)",
            file=out,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per (route, instance) cell")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.rounds, args.seconds, args.warmup, args.workers)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
