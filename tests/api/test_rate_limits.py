"""Rate limits on shared Redis: headers, error shape, keys, bounded labels, failing open."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt as pyjwt
import pytest
import redis

from aura.api.context import services
from tests.conftest import REDIS_URL, TEST_RATE_LIMIT_DB
from tests.support.auth import AuthActions
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


# --------------------------------------------------------------------------- keys: per account, per user


def _from(address: str) -> dict:
    return {"X-Forwarded-For": address}


def test_the_account_limit_is_one_budget_whatever_the_case_or_spacing_of_the_address(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="100 per hour", rate_limit_login_account="2 per hour"
    ).test_client()
    spellings = ["victim@example.com", "VICTIM@example.com", "Victim@Example.COM", "vIcTiM@EXAMPLE.com"]
    codes = [
        client.post(LOGIN, json=dict(WRONG, email=email), headers=_from(f"203.0.113.{i}")).status_code
        for i, email in enumerate(spellings)
    ]
    # Two failures use up the account's budget; the third address gets its one try; its second is refused.
    assert codes == [401, 401, 401, 401]
    again = client.post(LOGIN, json=dict(WRONG, email="VICTIM@EXAMPLE.COM"), headers=_from("203.0.113.3"))
    assert again.status_code == 429 and again.get_json()["details"]["per"] == "account"
    # Another account is not touched by it.
    other = client.post(LOGIN, json=dict(WRONG, email="other@example.com"), headers=_from("203.0.113.3"))
    assert other.status_code == 401


def test_the_account_limit_key_is_the_normalised_address(make_app):
    app = _limited_app(make_app, rate_limit_login_account="1 per hour")
    from aura.api.rate_limits import LoginAccountGuard

    with app.test_request_context():
        assert LoginAccountGuard("  Victim@Example.COM ").account == "victim@example.com"
        assert LoginAccountGuard("victim@example.com").account == "victim@example.com"


def _registered_owner(make_app) -> tuple[Any, AuthActions]:
    """A client of an app allowing 2 failed logins per account an hour, and an account's owner."""
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="100 per hour", rate_limit_login_account="2 per hour"
    ).test_client()
    owner = AuthActions(client, email="owner@example.com")
    assert owner.register().status_code == 201
    return client, owner


def test_the_owner_still_gets_in_once_the_account_is_under_attack(make_app):
    client, owner = _registered_owner(make_app)
    for i in range(4):  # guesses from many addresses use up the account's budget
        client.post(LOGIN, json=dict(WRONG, email="owner@example.com"), headers=_from(f"198.51.100.{i}"))
    right = client.post(LOGIN, json={"email": owner.email, "password": owner.password}, headers=_from("192.0.2.10"))
    assert right.status_code == 200  # the owner's address has its one try at the account, and it is right
    again = client.post(LOGIN, json={"email": owner.email, "password": owner.password}, headers=_from("192.0.2.10"))
    assert again.status_code == 429  # one try per address while the account is locked


def test_successful_logins_do_not_use_the_account_budget(make_app):
    client, owner = _registered_owner(make_app)
    for i in range(5):
        assert owner.login().status_code == 200, i
    codes = [
        client.post(LOGIN, json=dict(WRONG, email=owner.email), headers=_from(f"198.51.100.{i}")).status_code
        for i in range(3)
    ]
    assert codes == [401, 401, 401]  # two failures, then the third address's one try
    refused = client.post(LOGIN, json=dict(WRONG, email=owner.email), headers=_from("198.51.100.2"))
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.get_json()["details"] == {"limit": "2 per 1 hour", "per": "account"}


def test_the_tightest_of_several_account_limits_applies(make_app):
    client = _limited_app(
        make_app,
        trusted_proxy_count=1,
        rate_limit_login="100 per hour",
        rate_limit_login_account="3 per minute; 2 per hour",
    ).test_client()
    codes = [client.post(LOGIN, json=WRONG, headers=_from(f"198.51.100.{i}")).status_code for i in range(3)]
    assert codes == [401, 401, 401]
    refused = client.post(LOGIN, json=WRONG, headers=_from("198.51.100.2"))
    assert refused.status_code == 429
    assert refused.get_json()["details"]["limit"] == "2 per 1 hour"  # the longest window is named
    assert int(refused.headers["Retry-After"]) > 60


def test_without_rate_limiting_the_account_guard_admits_everything(make_app):
    client = make_app(rate_limit_enabled=False, rate_limit_login_account="1 per hour").test_client()
    assert [client.post(LOGIN, json=WRONG).status_code for _ in range(4)] == [401] * 4


def test_the_workflow_limit_is_per_user_not_per_address(make_app):
    client = _limited_app(make_app, rate_limit_workflows="2 per hour").test_client()
    ada = AuthActions(client, email="ada@example.com").signed_in()
    bob = AuthActions(client, email="bob@example.com").signed_in()
    listing = "/api/v1/workflows"
    assert [client.get(listing, headers=ada.bearer()).status_code for _ in range(3)] == [200, 200, 429]
    # Same address, another user: a budget of its own.
    assert [client.get(listing, headers=bob.bearer()).status_code for _ in range(3)] == [200, 200, 429]
    keys = redis.Redis.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB).keys("*workflows*")
    assert keys and all(b"user:" in key for key in keys), keys


def test_the_workflow_limit_follows_the_user_across_addresses(make_app):
    client = _limited_app(make_app, trusted_proxy_count=1, rate_limit_workflows="2 per hour").test_client()
    ada = AuthActions(client, email="ada@example.com").signed_in()
    codes = [
        client.get("/api/v1/workflows", headers={**ada.bearer(), **_from(f"192.0.2.{i}")}).status_code for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_user_key_names_the_user_of_a_genuine_token_and_else_the_address(make_app):
    from aura.api.rate_limits import user_key

    app = _limited_app(make_app)
    ada = AuthActions(app.test_client(), email="ada@example.com").signed_in()
    subject = pyjwt.decode(ada.tokens["access_token"], options={"verify_signature": False})["sub"]
    for headers, expected in (
        (ada.bearer(), f"user:{subject}"),
        ({"Authorization": "Bearer not-a-token"}, "addr:127.0.0.1"),
        ({"Authorization": f"Token {ada.tokens['access_token']}"}, "addr:127.0.0.1"),
        ({"Authorization": f"bearer {ada.tokens['access_token']}"}, "addr:127.0.0.1"),
        ({}, "addr:127.0.0.1"),
    ):
        with app.test_request_context("/api/v1/workflows", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}):
            assert user_key() == expected, headers


def test_a_client_without_an_address_is_keyed_as_unknown(make_app):
    from aura.api.rate_limits import client_address

    app = _limited_app(make_app)
    with app.test_request_context("/api/v1/auth/login", environ_base={"REMOTE_ADDR": None}):
        assert client_address() == "unknown"
    with app.test_request_context("/api/v1/auth/login", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        assert client_address() == "192.0.2.7"


def test_an_already_counted_client_keeps_its_label_once_the_cap_is_reached(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="1 per hour", rate_limit_max_client_ids=2
    ).test_client()
    before = registry_samples()
    for address in ("198.51.100.0", "198.51.100.1", "198.51.100.2", "198.51.100.0"):
        for _ in range(2):  # the second attempt from each address is a hit
            client.post(LOGIN, json=WRONG, headers=_from(address))
    after = registry_samples()

    def hits(client_id):
        labels = {"endpoint": LOGIN, "client_id": client_id}
        return value(after, "rate_limit_hits_total", **labels) - value(before, "rate_limit_hits_total", **labels)

    assert (hits("198.51.100.0"), hits("198.51.100.1"), hits("other")) == (3, 1, 1)


def test_only_api_routes_are_limited_and_counted(make_app):
    client = _limited_app(make_app, rate_limit_login="1 per hour").test_client()
    before = registry_samples()
    for path in ("/healthz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/nowhere"):
        for _ in range(3):
            assert client.get(path).status_code != 429, path
    assert client.get("/api/v1/auth/me").status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 401
    after = registry_samples()
    requests = {
        dict(labels)["endpoint"]: v - before.get((name, labels), 0)
        for (name, labels), v in after.items()
        if name == "rate_limit_requests_total" and v - before.get((name, labels), 0)
    }
    assert requests == {"/api/v1/auth/me": 2}


def test_with_rate_limiting_off_nothing_is_limited_or_counted(make_app):
    client = make_app(
        rate_limit_enabled=False, rate_limit_default="1 per hour", rate_limit_login="1 per hour"
    ).test_client()
    before = registry_samples()
    assert [client.post(LOGIN, json=WRONG).status_code for _ in range(3)] == [401] * 3
    assert value(registry_samples(), "rate_limit_requests_total", endpoint=LOGIN) == value(
        before, "rate_limit_requests_total", endpoint=LOGIN
    )


def test_limits_live_under_the_aura_prefix_with_redis_socket_timeouts(make_app):
    from aura.api.rate_limits import limiter

    app = _limited_app(make_app, redis_socket_timeout=0.7)
    assert app.config["RATELIMIT_KEY_PREFIX"] == "aura"
    assert app.config["RATELIMIT_STORAGE_URI"].startswith("aura+redis://")
    options = app.config["RATELIMIT_STORAGE_OPTIONS"]
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.7, 0.7)
    assert options["retry"].get_retries() == 1  # the same client options as every Redis client
    assert options == services(app).redis.options
    assert app.config["RATELIMIT_DEFAULT"] == "1000 per hour"
    assert services(app).redis.rate_limit_pool is limiter._storage.pool
    app.test_client().post(LOGIN, json=WRONG)
    keys = redis.Redis.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB).keys("*")
    assert any(b"/aura/127.0.0.1/auth.login/" in key for key in keys), keys


def test_standalone_limits_are_per_process(make_app):
    app = make_app(
        redis_url="redis://127.0.0.1:1",
        redis_socket_timeout=0.2,
        rate_limit_enabled=True,
        rate_limit_login="2 per hour",
        rate_limit_login_account="100 per hour",
    )
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://" and app.config["RATELIMIT_STORAGE_OPTIONS"] == {}
    assert [app.test_client().post(LOGIN, json=WRONG).status_code for _ in range(3)] == [401, 401, 429]


def test_a_trusted_proxy_count_is_how_many_forwarded_addresses_are_believed(make_app):
    client = _limited_app(make_app, trusted_proxy_count=2, rate_limit_login="1 per hour").test_client()
    # Two proxies: the client is the second address from the right; what it sent itself is ignored.
    chain = lambda spoof, real: {"X-Forwarded-For": f"{spoof}, {real}, 10.0.0.1"}  # noqa: E731
    assert client.post(LOGIN, json=WRONG, headers=chain("1.1.1.1", "192.0.2.1")).status_code == 401
    assert client.post(LOGIN, json=WRONG, headers=chain("2.2.2.2", "192.0.2.1")).status_code == 429
    assert client.post(LOGIN, json=WRONG, headers=chain("1.1.1.1", "192.0.2.2")).status_code == 401


def test_one_address_has_one_try_at_each_locked_account(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="100 per hour", rate_limit_login_account="1 per hour"
    ).test_client()
    for account in ("a@example.com", "b@example.com"):  # lock both accounts from elsewhere
        client.post(LOGIN, json=dict(WRONG, email=account), headers=_from("198.51.100.1"))
    for account in ("a@example.com", "b@example.com"):  # one address: its try at each of them
        assert client.post(LOGIN, json=dict(WRONG, email=account), headers=_from("192.0.2.9")).status_code == 401
    assert client.post(LOGIN, json=dict(WRONG, email="a@example.com"), headers=_from("192.0.2.9")).status_code == 429


# --------------------------------------------------------------------------- the account limit's 429


def _failures_from(client, address: str, times: int) -> list:
    """`times` wrong-password logins at the same account from `address`."""
    return [client.post(LOGIN, json=WRONG, headers=_from(address)) for _ in range(times)]


def test_an_account_limit_429_is_counted_as_a_hit_of_the_login_route_from_that_address(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="100 per hour", rate_limit_login_account="1 per hour"
    ).test_client()
    before = registry_samples()
    answers = _failures_from(client, "192.0.2.20", 3)  # the failure, this address's one try, refused
    assert [r.status_code for r in answers] == [401, 401, 429]
    assert answers[-1].get_json()["details"]["per"] == "account"
    labels = {"endpoint": LOGIN, "client_id": "192.0.2.20"}
    after = registry_samples()
    assert value(after, "rate_limit_hits_total", **labels) - value(before, "rate_limit_hits_total", **labels) == 1


def test_a_window_of_several_units_locks_the_address_out_for_all_of_it(make_app):
    client = _limited_app(
        make_app, trusted_proxy_count=1, rate_limit_login="100 per hour", rate_limit_login_account="1 per 2 hours"
    ).test_client()
    *admitted, refused = _failures_from(client, "192.0.2.20", 3)
    assert [r.status_code for r in admitted] == [401, 401] and refused.status_code == 429
    assert refused.get_json()["details"] == {"limit": "1 per 2 hour", "per": "account"}
    # The address's one try lasts the account window, two hours: longer than the per-address
    # login window (one hour), whose reset Flask-Limiter would otherwise report.
    assert 3600 < int(refused.headers["Retry-After"]) <= 7200


def test_the_longest_account_window_applies_even_in_a_smaller_unit(make_app):
    client = _limited_app(
        make_app,
        trusted_proxy_count=1,
        rate_limit_login="100 per hour",
        rate_limit_login_account="2 per hour; 3 per 90 minutes",
    ).test_client()
    # Two failures reach the hourly limit; the third is this address's one try; the fourth is refused.
    *admitted, refused = _failures_from(client, "192.0.2.20", 4)
    assert [r.status_code for r in admitted] == [401, 401, 401] and refused.status_code == 429
    # 90 minutes is longer than an hour although a minute is a smaller unit than an hour.
    assert refused.get_json()["details"] == {"limit": "3 per 90 minute", "per": "account"}
    assert 3600 < int(refused.headers["Retry-After"]) <= 5400


# --------------------------------------------------------------------------- where the limits come from


def test_limits_are_read_from_the_settings_of_the_app_serving_the_request(make_app):
    from aura.api.rate_limits import _setting

    # The limit decorators call `_setting` once, at import; what they keep must read the setting
    # of whichever app serves the request, when it does.
    app = _limited_app(make_app, rate_limit_login="7 per hour", rate_limit_workflows="9 per minute")
    with app.app_context():
        assert _setting("rate_limit_login")() == "7 per hour"
        assert _setting("rate_limit_workflows")() == "9 per minute"


@pytest.fixture
def redis_user_url():
    """The test Redis as an ACL user whose name contains "redis" (like a host named `redis`)."""
    admin = redis.Redis.from_url(REDIS_URL)
    name, password = "aura-redis-test", "redis-test-password"
    admin.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], categories=["+@all"], reset=True
    )
    parts = urlsplit(REDIS_URL)
    yield urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port or 6379}"))
    admin.acl_deluser(name)


def test_a_redis_url_naming_redis_beyond_its_scheme_still_shares_the_limits(make_app, redis_user_url):
    from aura.api.rate_limits import limiter

    app = _limited_app(make_app, redis_url=redis_user_url, rate_limit_login="2 per hour")
    assert app.config["RATELIMIT_STORAGE_URI"].startswith("aura+redis://aura-redis-test:")
    client = app.test_client()
    assert [client.post(LOGIN, json=WRONG).status_code for _ in range(3)] == [401, 401, 429]
    assert not limiter._storage.degraded  # counted in Redis, not per process
    keys = redis.Redis.from_url(REDIS_URL, db=TEST_RATE_LIMIT_DB).keys("*auth.login*")
    assert keys, keys
