"""429 and 413 answers say which limit applied, in the one error shape."""

from __future__ import annotations

from tests.support.auth import AuthActions
from tests.support.errors import assert_error

LOGIN = "/api/v1/auth/login"
WRONG = {"email": "nobody@example.com", "password": "wrong-password"}


def test_429_names_the_limit_and_what_it_counts(make_app):
    client = make_app(
        rate_limit_enabled=True,
        rate_limit_login="2 per hour",
        rate_limit_login_account="100 per hour",
        rate_limit_default="1000 per hour",
    ).test_client()
    answers = [client.post(LOGIN, json=WRONG) for _ in range(3)]
    assert [r.status_code for r in answers] == [401, 401, 429]
    body = answers[-1].get_json()
    assert body["error"] == "rate_limited"
    assert body["details"] == {"limit": "2 per 1 hour", "per": "client address"}
    assert "2 per 1 hour per client address" in body["message"]


def test_429_of_the_per_account_login_limit(make_app):
    client = make_app(
        rate_limit_enabled=True,
        rate_limit_login="100 per hour",
        rate_limit_login_account="1 per hour",
        rate_limit_default="1000 per hour",
    ).test_client()
    answers = [client.post(LOGIN, json=WRONG) for _ in range(3)]
    # One failure reaches the account's limit; then this address has its one try at the account.
    assert [r.status_code for r in answers] == [401, 401, 429]
    body = assert_error(answers[-1], 429, "rate_limited")
    assert body["details"] == {"limit": "1 per 1 hour", "per": "account"}
    assert body["message"] == (
        "Too many requests: the limit of 1 per 1 hour failed logins per account was reached, and this "
        "client address has had its one try at the account; retry after the seconds in Retry-After."
    )


def test_429_of_the_per_user_workflow_limit(make_app):
    client = make_app(
        rate_limit_enabled=True, rate_limit_workflows="1 per hour", rate_limit_default="1000 per hour"
    ).test_client()
    learner = AuthActions(client).signed_in()
    answers = [client.get("/api/v1/workflows", headers=learner.bearer()) for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 429]
    assert answers[-1].get_json()["details"] == {"limit": "1 per 1 hour", "per": "user"}


def test_413_names_the_body_limit(make_app):
    client = make_app(max_content_length=1000).test_client()
    response = client.post(LOGIN, data="x" * 2000, content_type="application/json")
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "payload_too_large" and body["details"] == {"limit_bytes": 1000}
    assert "1000 bytes (MAX_CONTENT_LENGTH)" in body["message"]
