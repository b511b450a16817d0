"""The figures of docs/security.md for issue 17, measured against real processes.

    .venv/bin/python bench/security_figures.py [--redis-port N]

1. CPU per audit: a 1 MiB audit of plain code (4 files of 256 KiB), in-process: the thread CPU a
   run may use under AUDIT_MAX_CPU_SECONDS before its 422, and what the whole audit would cost.
2. /healthz under a one-user flood: Gunicorn with 4 workers (SQLite, a private redis-server), one
   account sending such audits over 16 connections, retrying every 429 at once, until 60 were
   answered otherwise (or 20,000 attempts); /healthz timed every 0.25 s meanwhile.
3. A hung Redis: SIGSTOP on the private redis-server; /me and /readyz timed call by call.

It starts everything it needs on free loopback ports and stops it by pid. Timings depend on the
machine (2 shared cores here): the numbers are for docs, never asserted by a test.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aura.testing.servers import Gunicorn, RedisServer, app_env, migrate  # noqa: E402

PLAIN = "".join(f"def f{i}(a, b):\n    x = a + b\n    return x * {i}\n\n" for i in range(5000))[:262_000]
AUDIT = {"files": [{"path": f"m{i}.py", "content": PLAIN} for i in range(4)]}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def cpu_per_audit() -> None:
    from aura.workflows import AuditLimitError, AuditSettings, run_audit

    started = time.thread_time()
    run_audit(AUDIT, settings=AuditSettings(max_total_bytes=2 * 1024 * 1024))
    print(f"1 MiB audit, unbounded: {time.thread_time() - started:.2f} s CPU")
    for budget in (1.0, 0.5):
        started = time.thread_time()
        try:
            run_audit(AUDIT, settings=AuditSettings(max_cpu_seconds=budget, max_total_bytes=2 * 1024 * 1024))
        except AuditLimitError as exc:
            print(f"budget {budget} s: stopped after {time.thread_time() - started:.2f} s CPU ({exc})")


def _signed_in(url: str) -> dict:
    creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": "long-enough-password"}
    requests.post(f"{url}/api/v1/auth/register", json=creds, timeout=30).raise_for_status()
    return requests.post(f"{url}/api/v1/auth/login", json=creds, timeout=30).json()


def healthz_under_flood(tmp: Path, redis_url: str) -> None:
    env = app_env(
        tmp,
        f"sqlite:///{tmp / 'flood.db'}",
        REDIS_URL=redis_url,
        AURA_ENV="production",
        MAX_CONTENT_LENGTH=str(2 * 1024 * 1024),
    )
    migrate(env)
    with Gunicorn(tmp, env, workers=4) as server:
        token = _signed_in(server.url)["access_token"]
        statuses: list[int] = []
        lock = threading.Lock()
        done = [0]
        attempts = [0]

        def flood():
            session = requests.Session()
            while True:
                with lock:
                    if done[0] >= 60 or attempts[0] >= 20_000:
                        return
                    attempts[0] += 1
                try:
                    code = session.post(
                        f"{server.url}/api/v1/workflows/audit",
                        json=AUDIT,
                        timeout=120,
                        headers={"Authorization": f"Bearer {token}"},
                    ).status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                with lock:
                    statuses.append(code)
                    done[0] += code != 429

        threads = [threading.Thread(target=flood) for _ in range(16)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        probes = []
        while any(t.is_alive() for t in threads):
            t0 = time.monotonic()
            try:
                requests.get(f"{server.url}/healthz", timeout=30, headers={"Connection": "close"})
                probes.append(time.monotonic() - t0)
            except requests.RequestException:
                probes.append(30.0)
            time.sleep(0.25)
        took = time.monotonic() - started
        counts = {code: statuses.count(code) for code in set(statuses)}
        probes.sort()
        print(
            f"flood: {done[0]} audits (1 MiB) answered over 16 connections in {took:.1f} s "
            f"({attempts[0]} attempts); answers {counts}"
        )
        print(
            f"/healthz during the flood: n={len(probes)} median {_ms(statistics.median(probes))}, "
            f"p90 {_ms(probes[int(len(probes) * 0.9)])}, max {_ms(probes[-1])}, "
            f"over 2 s: {sum(p > 2 for p in probes)}"
        )


def hung_redis(tmp: Path) -> None:
    redis = RedisServer().start()
    env = app_env(tmp, f"sqlite:///{tmp / 'hung.db'}", REDIS_URL=redis.url, AURA_ENV="production")
    migrate(env)
    try:
        with Gunicorn(tmp, env, workers=2) as server:
            token = _signed_in(server.url)["access_token"]
            headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                for path, extra in (
                    ("/api/v1/auth/me", headers),
                    ("/readyz", {"Connection": "close"}),
                    ("/healthz", {"Connection": "close"}),
                ):
                    times = []
                    for _ in range(10):
                        t0 = time.monotonic()
                        code = requests.get(server.url + path, headers=extra, timeout=30).status_code
                        times.append((time.monotonic() - t0, code))
                    print(f"hung Redis, {path}: " + ", ".join(f"{_ms(t)} ({c})" for t, c in times))
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
    finally:
        redis.kill()


def main() -> None:
    cpu_per_audit()
    with tempfile.TemporaryDirectory(prefix="aura-figures-") as tmp_dir:
        tmp = Path(tmp_dir)
        redis = RedisServer().start()
        try:
            healthz_under_flood(tmp, redis.url)
        finally:
            redis.kill()
        hung_redis(tmp)


if __name__ == "__main__":
    main()
