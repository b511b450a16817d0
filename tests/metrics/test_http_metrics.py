"""HTTP metrics: every request counted, with bounded labels."""

from __future__ import annotations

import gzip

from prometheus_client.parser import text_string_to_metric_families

from tests.support.metrics import delta, registry_samples


def _http_moves(before, after):
    return {
        (dict(labels)["method"], dict(labels)["endpoint"], dict(labels)["status_code"]): diff
        for (name, labels), diff in delta(before, after).items()
        if name == "http_requests_total"
    }


def test_requests_are_labelled_by_rule_with_bounded_values(client):
    before = registry_samples()
    client.post("/api/v1/auth/login", json={"email": "a@b.io", "password": "long-enough"})
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    client.delete("/api/v1/auth/login")
    client.open("/api/v1/auth/login", method="BREW")
    client.post("/api/v1/auth/login", data="x" * (2 * 1024 * 1024), content_type="application/json")
    after = registry_samples()
    assert _http_moves(before, after) == {
        ("POST", "/api/v1/auth/login", "401"): 1,
        ("GET", "unmatched", "404"): 2,
        ("DELETE", "/api/v1/auth/login", "405"): 1,
        ("OTHER", "/api/v1/auth/login", "405"): 1,
        ("POST", "/api/v1/auth/login", "413"): 1,
    }
    count = ("http_request_duration_seconds_count", (("endpoint", "unmatched"), ("method", "GET")))
    assert after[count] - before.get(count, 0) == 2


def test_rule_with_a_variable_is_one_label(app, client):
    @app.get("/items/<int:item_id>")
    def item(item_id):
        return {"id": item_id}

    before = registry_samples()
    for i in range(5):
        client.get(f"/items/{i}")
    assert _http_moves(before, registry_samples()) == {("GET", "/items/<int:item_id>", "200"): 5}


def test_metrics_endpoint_formats(client):
    plain = client.get("/metrics")
    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert list(text_string_to_metric_families(plain.get_data(as_text=True)))

    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.get_data(as_text=True).rstrip().endswith("# EOF")

    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert b"http_requests_total" in gzip.decompress(zipped.data)


def test_metrics_can_require_a_bearer_token(make_app):
    client = make_app(metrics_auth_token="scrape-token-0123456789").test_client()
    denied = client.get("/metrics")
    assert denied.status_code == 401 and denied.get_json()["error"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert ok.status_code == 200
