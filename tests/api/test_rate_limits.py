"""Rate limits on shared Redis: headers, error shape, keys, bounded labels, failing open."""

from __future__ import annotations

import redis

from tests.conftest import REDIS_URL, TEST_RATE_LIMIT_DB
from tests.support.metrics import registry_samples, value

LOGIN = "/api/v1/auth/login"
WRONG = {"email": "someone@example.com", "password": "wrong-password"}


def _limited_app(make_app, **overrides):
    settings = dict(
        rate_limit_enabled=True,
        rate_limit_login="3 per hour",
        rate_limit_login_account="100 per hour",
        rate_limit_default="1000 per hour",
    )
    settings.update(overrides)
    return make_app(**settings)


def test_login_limit_gives_429_in_the_error_shape_with_headers(make_app):
    client = _limited_app(make_app).test_client()
    before = registry_samples()
    answers = [client.post(LOGIN, json=WRONG) for _ in range(4)]
    assert [r.status_code for r in answers] == [401, 401, 401, 429]
    limited = answers[-1]
    assert limited.get_json()["error"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in answers[0].headers
    after = registry_samples()
    assert (
        value(after, "rate_limit_requests_total", endpoint=LOGIN)
        - value(before, "rate_limit_requests_total", endpoint=LOGIN)
        == 4
    )
    assert (
        value(after, "rate_limit_hits_total", endpoint=LOGIN, client_id="127.0.0.1")
        - value(before, "rate_limit_hits_total", endpoint=LOGIN, client_id="127.0.0.1")
        == 1
    )


def test_limits_live_in_the_rate_limit_database(make_app):
    client = _limited_app(make_app).test_client()
    client.post(LOGIN, json=WRONG)
    keys = redis.Redis.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB).keys("*")
    assert any(b"login" in key for key in keys), keys


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    client = _limited_app(make_app).test_client()
    codes = [client.post(LOGIN, json=WRONG, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code for i in range(4)]
    assert codes[-1] == 429  # spoofed addresses did not buy fresh limits


def test_forwarded_for_through_a_trusted_proxy_and_the_account_limit(make_app):
    client = _limited_app(make_app, trusted_proxy_count=1, rate_limit_login_account="5 per hour").test_client()
    codes = [
        client.post(LOGIN, json=WRONG, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(6)
    ]
    # Each address is new (its own 3/hour); the account's 5 failures are used up, and from then
    # on each address has one try at it per hour: the sixth address its try, then 429.
    assert codes == [401] * 6
    assert client.post(LOGIN, json=WRONG, headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 429
    other_account = dict(WRONG, email="other@example.com")
    assert client.post(LOGIN, json=other_account, headers={"X-Forwarded-For": "203.0.113.99"}).status_code == 401


def test_client_id_label_is_bounded(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="1 per hour", rate_limit_max_client_ids=2
    ).test_client()
    before = registry_samples()
    for i in range(4):
        address = f"198.51.100.{i}"
        for _ in range(2):  # the second attempt from each address is a hit
            client.post(LOGIN, json=dict(WRONG, email=f"u{i}@example.com"), headers={"X-Forwarded-For": address})
    after = registry_samples()
    hits = {
        dict(labels)["client_id"]: v - before.get((name, labels), 0)
        for (name, labels), v in after.items()
        if name == "rate_limit_hits_total" and dict(labels)["endpoint"] == LOGIN and v - before.get((name, labels), 0)
    }
    assert hits == {"198.51.100.0": 1, "198.51.100.1": 1, "other": 2}


def test_probes_and_metrics_are_never_limited(make_app):
    client = _limited_app(make_app, rate_limit_default="2 per hour").test_client()
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/v1/openapi.json").status_code == 200


def test_unreachable_rate_limit_redis_fails_open_and_counts(make_app):
    from aura.api.rate_limits import limiter

    app = _limited_app(make_app)
    storage = limiter._storage  # point its Redis side at a port where nothing listens
    storage.redis = type(storage.redis)("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    client = app.test_client()
    before = registry_samples()
    codes = [client.post(LOGIN, json=WRONG).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]  # the same limit, counted in this process
    assert storage.degraded
    errors = value(
        registry_samples(), "redis_connection_errors_total", database="rate_limit_db", error_type="connection_failed"
    ) - value(before, "redis_connection_errors_total", database="rate_limit_db", error_type="connection_failed")
    assert errors >= 1


def test_retry_after_only_where_it_means_something(make_app):
    client = _limited_app(make_app).test_client()
    first = client.post(LOGIN, json=WRONG)
    assert first.status_code == 401 and "Retry-After" not in first.headers
    assert "X-RateLimit-Remaining" in first.headers
