"""Soak: two Aura instances behind haproxy, worker recycling on, mixed traffic for 20 minutes with
one Redis failover (Sentinel) and one PostgreSQL failover (standby promoted) - not part of
`make test` or `make bench`. It reports requests, answers by status, each failover's error
window, and per instance at start and end: memory (PSS of master + workers), open descriptors,
and /metrics scrape time (median of 5 from the metrics listener). PASS when memory, descriptors
and scrape time stay flat within the tolerances below and no answer is other than 2xx/503
(plus the 401/429 the mix asks for).

    .venv/bin/python bench/soak.py [--minutes 20] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aura.metrics.instance import _children, _memory, _open_fds  # noqa: E402
from aura.testing.ha import HAProxy, SentinelCluster, Traffic, instance, production_env  # noqa: E402
from aura.testing.postgres import PostgresPair  # noqa: E402
from aura.testing.servers import migrate  # noqa: E402

# Flat means: end within these of start (after a warm-up, so imports and pools are settled).
PSS_MAX_RATIO = 1.25  # master + workers
FDS_MAX_GROWTH = 16  # descriptors, master + workers
SCRAPE_MAX_RATIO = 1.5  # median /metrics time
SCRAPE_SLACK_MS = 5.0  # ... or this much, whichever is larger (a few ms jitter on a shared machine)
WARM_UP = 30.0  # seconds of traffic before the start figures
TIMEOUT = 20
PASSWORD = "long-enough-password"
STRUGGLE = {"exercise_id": "loops-1", "edit_frequency": 25, "error_count": 14}


def figures(server) -> dict:
    """PSS (MiB) and open fds of master + workers, and the median /metrics time (ms)."""
    pids = [server.proc.pid, *_children(server.proc.pid)]
    memory = [m for m in map(_memory, pids) if m]
    fds = [f for f in map(_open_fds, pids) if f is not None]
    url = f"http://127.0.0.1:{server.env['METRICS_PORT']}/metrics"
    times = []
    for _ in range(5):
        started = time.perf_counter()
        assert requests.get(url, timeout=TIMEOUT).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return {
        "processes": len(pids),
        "pss_mib": round(sum(m[0] for m in memory) / 2**20, 1),
        "open_fds": sum(fds),
        "scrape_ms": round(statistics.median(times), 2),
    }


def failed(outcome) -> bool:
    """5xx, or no answer at all."""
    return not (isinstance(outcome.result, int) and outcome.result < 500)


def window(outcomes, event: float, since: float, until: float) -> dict:
    """The failed answers of requests begun between since and until, with when the first began
    and the last ended, in seconds after `event`."""
    failed_ = [o for o in outcomes if since <= o.started < until and failed(o)]
    if not failed_:
        return {"failed": 0}
    return {
        "failed": len(failed_),
        "from_s": round(min(o.started for o in failed_) - event, 2),
        "to_s": round(max(o.ended for o in failed_) - event, 2),
        "by_result": dict(Counter(str(o.result) for o in failed_)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    seconds = args.minutes * 60
    tmp = Path(tempfile.mkdtemp(prefix="aura-soak-"))
    sentinels = SentinelCluster(tmp / "sentinel")
    pair = PostgresPair()
    started: list = []
    try:
        sentinels.start()
        pair.start()
        env = production_env(
            tmp, pair.url, sentinels.url, GUNICORN_MAX_REQUESTS="400", GUNICORN_MAX_REQUESTS_JITTER="50"
        )
        migrate(env)
        servers = [instance(tmp, env, name, workers=2) for name in ("a", "b")]
        for server in servers:
            started.append(server.start(timeout=90))
        balancer = HAProxy(tmp, {s.name: s.port for s in servers})  # type: ignore[attr-defined]
        started.append(balancer.start())
        api = balancer.url + "/api/v1"
        accounts = []
        for _ in range(4):
            creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
            assert requests.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT).status_code == 201
            accounts.append(creds)
        tokens = [requests.post(f"{api}/auth/login", json=c, timeout=TIMEOUT).json() for c in accounts]
        lock = threading.Lock()

        def step(session, thread, n):
            kind = n % 10
            pair_ = tokens[thread % len(tokens)]
            if pair_ is None:  # the session ended (a refresh whose answer was lost): log in again
                login = session.post(f"{api}/auth/login", json=accounts[thread % len(accounts)], timeout=TIMEOUT)
                if login.status_code == 200:
                    tokens[thread % len(tokens)] = login.json()
                return "login", login
            auth = {"Authorization": f"Bearer {pair_['access_token']}"}
            if kind == 0:  # a new learner
                creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
                return "register", session.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT)
            if kind == 1:  # a session opened and closed: a revocation
                login = session.post(f"{api}/auth/login", json=accounts[thread % len(accounts)], timeout=TIMEOUT)
                if login.status_code != 200:
                    return "login", login
                bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
                return "logout", session.post(f"{api}/auth/logout", headers=bearer, timeout=TIMEOUT)
            if kind == 2:  # token rotation
                refresh = {"Authorization": f"Bearer {pair_['refresh_token']}"}
                response = session.post(f"{api}/auth/refresh", headers=refresh, timeout=TIMEOUT)
                if response.status_code in (200, 401):  # 401: spent by a rotation whose answer was lost
                    with lock:
                        tokens[thread % len(tokens)] = response.json() if response.status_code == 200 else None
                return "refresh", response
            if kind in (3, 4):
                return "struggle", session.post(
                    f"{api}/workflows/struggle", json=STRUGGLE, headers=auth, timeout=TIMEOUT
                )
            if kind == 5:
                return "list", session.get(f"{api}/workflows", headers=auth, timeout=TIMEOUT)
            return "me", session.get(f"{api}/auth/me", headers=auth, timeout=TIMEOUT)

        report: dict = {"minutes": args.minutes, "instances": {}, "failovers": {}}
        with Traffic(step, threads=4, seconds=seconds, pause=0.01) as traffic:
            time.sleep(WARM_UP)
            start = {s.name: figures(s) for s in servers}  # type: ignore[attr-defined]
            print(f"start: {start}", flush=True)
            time.sleep(max(0.0, seconds / 3 - WARM_UP))
            old = sentinels.primary.port
            redis_killed = time.monotonic()
            sentinels.primary.kill()
            promoted = sentinels.wait_for_failover(old)
            report["failovers"]["redis"] = {"sentinel_s": round(promoted - redis_killed, 2)}
            print(f"redis failover after {promoted - redis_killed:.2f} s", flush=True)
            sentinels.primary.start()  # back, and made a replica of the new primary by Sentinel
            time.sleep(max(0.0, 2 * seconds / 3 - (time.monotonic() - traffic.began)))
            pg_stopped = time.monotonic()
            pair.primary.stop()
            time.sleep(1.0)  # a failover manager's detection time
            pair.standby.promote()
            report["failovers"]["postgres"] = {"promoted_s": round(time.monotonic() - pg_stopped, 2)}
            print(f"postgres promoted after {time.monotonic() - pg_stopped:.2f} s", flush=True)
            traffic.finish(timeout=seconds + 120)
            end = {s.name: figures(s) for s in servers}  # type: ignore[attr-defined]
        outcomes = traffic.snapshot()
        report["requests"] = len(outcomes)
        report["by_status"] = {str(k): v for k, v in sorted(Counter(o.result for o in outcomes).items(), key=str)}
        # Each failover's window: failures of requests begun from 2 s before it (in flight when it
        # happened) to a minute after; times in seconds after the event.
        events = (redis_killed, pg_stopped)
        report["failovers"]["redis"].update(window(outcomes, redis_killed, redis_killed - 2, redis_killed + 60))
        report["failovers"]["postgres"].update(window(outcomes, pg_stopped, pg_stopped - 2, pg_stopped + 60))
        report["failed_outside_failovers"] = sum(
            1 for o in outcomes if failed(o) and not any(e - 2 <= o.started < e + 60 for e in events)
        )
        checks = {}
        for name in start:
            s, e = start[name], end[name]
            report["instances"][name] = {"start": s, "end": e}
            checks[f"{name}: PSS end <= {PSS_MAX_RATIO} x start"] = e["pss_mib"] <= PSS_MAX_RATIO * s["pss_mib"]
            checks[f"{name}: fds end <= start + {FDS_MAX_GROWTH}"] = e["open_fds"] <= s["open_fds"] + FDS_MAX_GROWTH
            checks[f"{name}: scrape end <= max({SCRAPE_MAX_RATIO} x start, start + {SCRAPE_SLACK_MS} ms)"] = e[
                "scrape_ms"
            ] <= max(SCRAPE_MAX_RATIO * s["scrape_ms"], s["scrape_ms"] + SCRAPE_SLACK_MS)
        unexpected = {k for k in report["by_status"] if k not in ("200", "201", "401", "409", "429", "503")}
        checks["answers: only 2xx, 503 (and the mix's 401/409/429)"] = not unexpected
        checks["no failure outside the failovers' minutes"] = report["failed_outside_failovers"] == 0
        report["checks"] = checks
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        for check, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {check}")
        print(f"written to {path}")
        return 0 if all(checks.values()) else 1
    finally:
        for thing in reversed(started):
            thing.stop()
        sentinels.stop()
        pair.remove()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
