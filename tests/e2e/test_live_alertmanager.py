"""Alerts reach a receiver: a real Prometheus scrapes a real Gunicorn, evaluates the project's
rules (the demo's override: the same rules on short windows) and sends what fires to a real
Alertmanager running the project's configuration, whose receivers point at a local webhook.

Traffic breaks the availability SLO the way production would: Redis dies, token checks fail
closed, and every authenticated request answers 503.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from aura.testing.servers import RedisServer
from tests.support.alertmanager import Alertmanager, WebhookReceiver
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.gunicorn, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = ROOT / "k8s/monitoring/alertmanager/alertmanager.yml"
DEMO_RULES = ROOT / "dashboards/demo-rules.yml"
RUNBOOKS = ROOT / "docs/runbooks.md"
NAMESPACE = "aura-e2e"
PAGE = "AuraAvailabilitySLOFastBurn"
TICKET = "AuraAvailabilitySLOSlowBurn"
ENV = dict(
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_LOGIN="100000 per hour",
    RATE_LIMIT_REGISTER="100000 per hour",
    RATE_LIMIT_LOGIN_ACCOUNT="100000 per hour",
    RATE_LIMIT_DEFAULT="1000000 per hour",
    REDIS_SOCKET_TIMEOUT="1",
)


def project_config(receiver: WebhookReceiver) -> dict:
    """alertmanager.yml as committed - routes, grouping, inhibition, receivers - with each
    webhook's host replaced by the local receiver (its path kept) and the waits shortened."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for entry in config["receivers"]:
        for webhook in entry.get("webhook_configs", []):
            path = webhook["url"].split("/", 3)[3]
            webhook["url"] = f"{receiver.url}/{path}"
    for route in [config["route"], *config["route"].get("routes", [])]:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
    return config


def wait_for(predicate, timeout: float, step: float, what: str, during=None):
    """Poll predicate until it returns something truthy; `during` runs each round (traffic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if during:
            during()
        result = predicate()
        if result:
            return result
        time.sleep(step)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def stack(gunicorn, tmp_path):
    redis_server = RedisServer().start()
    receiver = WebhookReceiver().start()
    alertmanager = Alertmanager(tmp_path, project_config(receiver)).start()
    server = gunicorn(workers=2, env=dict(ENV, REDIS_URL=redis_server.url))
    target = f"127.0.0.1:{server.port}"
    prometheus = Prometheus(
        tmp_path,
        [target],
        [DEMO_RULES],
        alertmanagers=[alertmanager.address],
        target_labels={target: {"namespace": NAMESPACE, "pod": "aura-a"}},
    ).start()
    yield server, redis_server, prometheus, alertmanager, receiver
    prometheus.stop()
    server.stop()
    alertmanager.stop()
    receiver.stop()
    redis_server.kill()


def test_an_slo_breach_pages_with_labels_and_runbook(stack):
    server, redis_server, prometheus, alertmanager, receiver = stack
    email = f"am-{uuid.uuid4().hex[:8]}@e2e.example"
    requests.post(
        f"{server.url}/api/v1/auth/register", json={"email": email, "password": "e2e-password-1"}, timeout=10
    ).raise_for_status()
    login = requests.post(
        f"{server.url}/api/v1/auth/login", json={"email": email, "password": "e2e-password-1"}, timeout=10
    )
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    session = requests.Session()

    def traffic(n: int = 20) -> list[int]:
        return [session.get(f"{server.url}/api/v1/auth/me", headers=headers, timeout=10).status_code for _ in range(n)]

    # Healthy traffic until Prometheus has scraped it: the SLO holds, nothing pages.
    wait_for(
        lambda: prometheus.query('namespace_job:aura_api_requests:rate20s{job="aura"} > 0'),
        60,
        0.5,
        "the API request rate to be recorded",
        during=traffic,
    )
    assert set(traffic()) == {200}
    assert not [n for path, n in receiver.notifications() if path == "/page"]

    # Redis dies: token checks fail closed, every authenticated request answers 503.
    redis_server.kill()
    assert set(traffic()) == {503}

    def paged():
        for path, notification in receiver.notifications():
            for alert in notification["alerts"]:
                if path == "/page" and alert["labels"]["alertname"] == PAGE and alert["status"] == "firing":
                    return notification, alert
        return None

    notification, alert = wait_for(paged, 150, 0.5, f"{PAGE} to reach the page receiver", during=traffic)
    assert notification["receiver"] == "page"
    assert notification["groupLabels"] == {"namespace": NAMESPACE, "alertname": PAGE}
    labels = alert["labels"]
    assert (labels["severity"], labels["slo"], labels["burn"]) == ("critical", "availability", "fast")
    assert (labels["namespace"], labels["job"]) == (NAMESPACE, "aura")
    runbook = alert["annotations"]["runbook_url"]
    assert runbook.endswith(f"#{PAGE.lower()}")
    assert f"\n## {PAGE}\n" in RUNBOOKS.read_text()
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]

    # The same cause's slow burn reaches Alertmanager too, and the page inhibits it.
    def ticket_inhibited():
        held = [a for a in alertmanager.alerts() if a["labels"]["alertname"] == TICKET]
        return held and held[0]["status"]["inhibitedBy"]

    wait_for(ticket_inhibited, 90, 0.5, f"{TICKET} to be held and inhibited", during=traffic)
