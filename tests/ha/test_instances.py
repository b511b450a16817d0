"""Several instances, one truth: two Aura instances (each its own Gunicorn, metrics directory and
metrics listener) behind haproxy, sharing one Redis and one PostgreSQL, scraped by a real
Prometheus. A token revoked on one is refused by the other at once (the revocation is in the
shared Redis before the logout answers); a rate limit is shared (the sum admitted across
instances is the limit); Prometheus's sum of http_requests_total equals the answers the clients
saw; and when one whole instance is SIGKILLed under traffic, haproxy routes around it and the
survivor's counts stay exact."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import datetime

import pytest
import requests

from aura.testing.ha import Traffic, production_env
from aura.testing.servers import RedisServer
from tests.ha.conftest import TIMEOUT, Account, bearer
from tests.support.metrics import parse_exposition
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.gunicorn, pytest.mark.ha]

WORKFLOW_LIMIT = 15  # per user and minute, shared by the instances through Redis
ME = "/api/v1/auth/me"
STRUGGLE = {"exercise_id": "loops-1", "edit_frequency": 25, "error_count": 14}


def _metrics_url(server) -> str:
    return f"http://127.0.0.1:{server.env['METRICS_PORT']}/metrics"


def _served(server, endpoint: str = ME) -> float:
    """Requests to `endpoint` the instance answered, all statuses, from its metrics listener."""
    samples = parse_exposition(requests.get(_metrics_url(server), timeout=TIMEOUT).text)
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "http_requests_total" and dict(labels)["endpoint"] == endpoint
    )


def _scraped_after(prometheus: Prometheus, moment: float, jobs: int, timeout: float = 30) -> None:
    """Wait until Prometheus scraped every healthy target after wall-clock `moment`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [
            t
            for t in prometheus.targets()
            if t["health"] == "up"
            and datetime.fromisoformat(t["lastScrape"].replace("Z", "+00:00")).timestamp() > moment
        ]
        if len(fresh) >= jobs:
            return
        time.sleep(0.2)
    raise AssertionError(f"no scrape after the traffic: {prometheus.targets()}")


def _prometheus_sum(prometheus: Prometheus) -> float:
    [result] = prometheus.query(f'sum(http_requests_total{{endpoint="{ME}"}})')
    return float(result["value"][1])


def test_two_instances_behind_haproxy(tmp_path, postgres, launch):
    redis_server = RedisServer().start()
    prometheus = None
    try:
        env = production_env(
            tmp_path, postgres.url, redis_server.url, RATE_LIMIT_WORKFLOWS=f"{WORKFLOW_LIMIT} per minute"
        )
        a, b = launch.gunicorn(env, name="a"), launch.gunicorn(env, name="b")
        balancer = launch.balancer([a, b])
        prometheus = Prometheus(
            tmp_path, [f"127.0.0.1:{s.env['METRICS_PORT']}" for s in (a, b)], rule_files=[], interval="1s"
        ).start()

        # Revocation: logged out on one instance, refused by the other on the very next request.
        account = Account(balancer.url)
        for here, there in ((a, b), (b, a), (a, b)):
            tokens = account.login()
            assert requests.get(there.url + ME, headers=bearer(tokens["access_token"]), timeout=TIMEOUT).ok
            logout = requests.post(
                f"{here.url}/api/v1/auth/logout", headers=bearer(tokens["access_token"]), timeout=TIMEOUT
            )
            assert logout.status_code == 200, logout.text
            refused = requests.get(there.url + ME, headers=bearer(tokens["access_token"]), timeout=TIMEOUT)
            assert (refused.status_code, refused.json()["error"]) == (401, "revoked_token")
            refreshed = requests.post(
                f"{there.url}/api/v1/auth/refresh", headers=bearer(tokens["refresh_token"]), timeout=TIMEOUT
            )
            assert (refreshed.status_code, refreshed.json()["error"]) == (401, "revoked_token")

        # A rate limit is shared: 40 workflow requests of one user through the balancer, spread
        # over both instances, admit exactly the limit.
        limited = bearer(Account(balancer.url).login()["access_token"])
        answers = Counter()
        for _ in range(40):
            response = requests.post(
                f"{balancer.url}/api/v1/workflows/struggle", json=STRUGGLE, headers=limited, timeout=TIMEOUT
            )
            answers[(response.status_code, response.headers["X-Aura-Instance"])] += 1
        assert answers[(201, "a")] + answers[(201, "b")] == WORKFLOW_LIMIT, answers
        assert answers[(429, "a")] + answers[(429, "b")] == 40 - WORKFLOW_LIMIT, answers
        assert {instance for (_, instance) in answers} == {"a", "b"}, answers

        # Prometheus's sum over both instances equals what the clients saw answered.
        token = account.login()["access_token"]
        steady_from = time.time()
        _scraped_after(prometheus, steady_from, jobs=2)
        before = _prometheus_sum(prometheus)

        def me(session, thread, n):
            return "me", session.get(balancer.url + ME, headers=bearer(token), timeout=TIMEOUT)

        with Traffic(me, threads=4, cap=150) as traffic:
            traffic.finish()  # 4 x 150 requests
        outcomes = traffic.snapshot()
        assert len(outcomes) == 600 and all(o.result == 200 for o in outcomes), traffic.by_result()
        assert {o.instance for o in outcomes} == {"a", "b"}
        _scraped_after(prometheus, time.time(), jobs=2)
        assert _prometheus_sum(prometheus) - before == 600

        # One whole instance SIGKILLed under traffic: haproxy routes around it, and the survivor
        # counts exactly the answers it gave. A request b was answering at that instant can be cut
        # after haproxy passed its headers on (Gunicorn writes headers and body in two sends),
        # which no proxy can retry: the client sees a short body (ChunkedEncodingError). Only
        # those may fail - in flight at the kill, at most one per worker of b; a refused
        # connection or an empty answer is retried on a (haproxy's retry-on), so none of those.
        survivor_before = _served(a)
        with Traffic(me, threads=4, seconds=8, pause=0.005) as traffic:
            time.sleep(2)
            sent_kill = time.monotonic()
            os.killpg(b.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            b.proc.wait(10)
            traffic.finish()  # 8 s of traffic in all
        outcomes = traffic.snapshot()
        cut = [o for o in outcomes if o.result != 200]
        assert len(cut) <= 2, traffic.by_result()  # b's two workers, one request each
        for o in cut:
            assert o.result == "ChunkedEncodingError", (o.result, o.name)
            assert o.started <= killed and o.ended >= sent_kill, (o.started, o.ended, sent_kill, killed)
        assert not [o for o in outcomes if o.started > killed + 1 and o.instance != "a"]
        assert sum(1 for o in outcomes if o.started > killed + 1) > 50
        from_a = sum(1 for o in outcomes if o.instance == "a")
        assert _served(a) - survivor_before == from_a
        print(f"\ninstance killed: {len(outcomes)} answers, {from_a} from the survivor, {traffic.by_result()}")
    finally:
        if prometheus:
            prometheus.stop()
        redis_server.kill()
