"""A real Prometheus scrapes two multi-worker Gunicorn instances under mixed load; every dashboard
panel, documented query and alert has data and evaluates.

Two instances stand for two pods: each has its own multiprocess directory, both share Redis and
the database, one Prometheus scrapes both. The load comes from scripts/loadgen.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from aura.testing.servers import RedisServer
from tests.support.metrics import parse_exposition
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow(150)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "k8s/monitoring/grafana/dashboards"
RULE_FILES = [ROOT / "k8s/monitoring/prometheus/alert-rules.yml", ROOT / "k8s/monitoring/prometheus/slo-rules.yml"]
# What Kubernetes discovery would label each target with: the scoped expressions select these.
NAMESPACE = "aura-e2e"
# Grafana's variables as the dashboards' "All" resolves them here: the namespace and job of the
# test's targets, every pod.
VARIABLES = {"$namespace": NAMESPACE, "$job": "aura", "$pod": ".+"}
# The load should make these alerts go pending (their `for:` keeps them from firing this fast).
EXPECTED_ALERTS = {"HighAuthenticationFailureRate", "RateLimitHitsHigh"}
ACCOUNT_LIMIT = 20
ENV = dict(
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_LOGIN="100000 per hour",
    RATE_LIMIT_LOGIN_ACCOUNT=f"{ACCOUNT_LIMIT} per hour",
    RATE_LIMIT_REGISTER="100000 per hour",
    RATE_LIMIT_DEFAULT="100000 per hour",
    RATE_LIMIT_WORKFLOWS="100000 per hour",
    ACCESS_TOKEN_EXPIRES="3",
    REDIS_SOCKET_TIMEOUT="5",
    # loadgen stamps X-Request-Start as a proxy would: the queue-time panel gets data
    TRUSTED_PROXY_COUNT="1",
)


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of both dashboards, Grafana variables filled in."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$__range", "1h")
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                out.append((panel["title"], expr))
    return out


def documented_queries() -> list[str]:
    """The PromQL lines of docs/metrics.md's query examples."""
    text = (ROOT / "docs/metrics.md").read_text()
    blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _deactivated_account(server) -> str:
    email = f"inactive-{uuid.uuid4().hex[:8]}@loadgen.example"
    requests.post(
        f"{server.url}/api/v1/auth/register", json={"email": email, "password": "loadgen-password-1"}, timeout=10
    )
    subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "user", "deactivate", email],
        cwd=ROOT,
        env=server.env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return email


def _counter_total(samples: dict, name: str) -> float:
    return sum(v for (n, _labels), v in samples.items() if n == name)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def stack(gunicorn, tmp_path):
    """Two Gunicorn instances (4 recycling workers + 2 workers) and a Prometheus scraping both.

    They share a private Redis, so no other test's clean-up can reset the limits they count.
    """
    redis_server = RedisServer().start()
    env = dict(ENV, REDIS_URL=redis_server.url)
    first = gunicorn(
        workers=4,
        env=env,
        GUNICORN_MAX_REQUESTS="150",
        GUNICORN_MAX_REQUESTS_JITTER="100",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics-a"),
    )
    second = gunicorn(workers=2, env=env, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics-b"))
    targets = [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    labels = {
        target: {"namespace": NAMESPACE, "pod": f"aura-{name}"} for target, name in zip(targets, "ab", strict=True)
    }
    prometheus = Prometheus(tmp_path, targets, RULE_FILES, target_labels=labels).start()
    yield first, second, prometheus
    prometheus.stop()
    first.stop()
    second.stop()
    redis_server.kill()


def test_every_panel_query_and_alert_has_data(stack, tmp_path):
    first, second, prometheus = stack
    inactive = _deactivated_account(first)
    tally_path = tmp_path / "tally.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts/loadgen.py"),
            "--url",
            first.url,
            "--url",
            second.url,
            "--requests",
            "8000",
            "--seconds",
            "150",
            "--burst",
            "5000",
            "--burst-threads",
            "4",
            "--inactive-email",
            inactive,
            "--token-ttl",
            "3",
            "--quiet",
            "--json",
            str(tally_path),
        ],
        cwd=ROOT,
        check=True,
        timeout=180,
    )
    tally = json.loads(tally_path.read_text())
    for action in ("audit_pass", "audit_fail", "audit_remediation_required", "struggle"):
        assert tally.get(action, {}).get("201"), f"loadgen did not complete any {action}: {tally}"
    assert tally["login_inactive"].get("403"), tally
    assert tally["me_expired_token"].get("401"), tally
    # The account limit holds across both instances: exactly ACCOUNT_LIMIT failures got through,
    # then the one try per window that the burst's client address has at a locked account.
    burst = tally["login_burst"]
    redis_errors = [
        {
            k: v
            for k, v in parse_exposition(requests.get(s.url + "/metrics", timeout=10).text).items()
            if k[0] == "redis_connection_errors_total" and v
        }
        for s in (first, second)
    ]
    assert burst.get("401") == ACCOUNT_LIMIT + 1 and burst.get("429", 0) > 0, (burst, redis_errors)

    # Prometheus has caught up when its totals equal the apps' own (scrapes excluded).
    def apps_total():
        samples = [parse_exposition(requests.get(s.url + "/metrics", timeout=10).text) for s in (first, second)]
        return sum(
            v
            for s in samples
            for (n, labels), v in s.items()
            if n == "http_requests_total" and dict(labels)["endpoint"] != "/metrics"
        )

    expected_http = apps_total()

    def caught_up():
        result = prometheus.query('sum(http_requests_total{endpoint!="/metrics"})')
        return result and float(result[0]["value"][1]) == expected_http

    _wait(caught_up, 30, "Prometheus to scrape the final counts")

    up = prometheus.query('up{job="aura"}')
    assert sorted(r["metric"]["instance"] for r in up) == sorted(
        [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    )
    assert {r["value"][1] for r in up} == {"1"}

    # Series differ by instance, and dashboard sums add both.
    per_instance = prometheus.query("sum by (instance) (tokens_issued_total)")
    assert len(per_instance) == 2
    apps = [parse_exposition(requests.get(s.url + "/metrics", timeout=10).text) for s in (first, second)]
    for name in (
        "tokens_issued_total",
        "auth_requests_total",
        "workflow_executions_total",
        "audit_violations_by_type_total",
        "rate_limit_hits_total",
    ):
        summed = prometheus.query(f"sum({name})")
        assert float(summed[0]["value"][1]) == sum(_counter_total(a, name) for a in apps), name

    empty = [(title, expr) for title, expr in dashboard_expressions() if not prometheus.query(expr)]
    assert not empty, f"dashboard panels without data: {empty}"
    empty_docs = [expr for expr in documented_queries() if not prometheus.query(expr)]
    assert not empty_docs, f"documented queries without data: {empty_docs}"

    rules = [rule for group in prometheus.rule_groups() for rule in group["rules"]]
    assert rules and all(rule["health"] == "ok" for rule in rules), [
        (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
    ]
    # Prometheus records every pending/firing alert in the ALERTS series; the burst is over by now,
    # so look back over the whole run rather than at this instant.
    seen = {r["metric"]["alertname"]: r["metric"]["alertstate"] for r in prometheus.query("max_over_time(ALERTS[10m])")}
    peak = prometheus.query("max_over_time(max(rate(rate_limit_hits_total[5m]))[10m:1s])")
    assert EXPECTED_ALERTS <= set(seen), (seen, peak)
