"""Each auth flow moves exactly the counters it should, and nothing else."""

from __future__ import annotations

import pytest

from tests.support.metrics import counters_moved, registry_samples


@pytest.fixture
def moved():
    """Call with a function; returns the auth counters it moved."""

    def measure(action):
        before = registry_samples()
        action()
        return dict(counters_moved(before, registry_samples()))

    return measure


def test_register(auth, moved):
    assert moved(auth.register) == {
        'auth_requests_total{endpoint="register",status="success"}': 1,
        'user_registrations_total{status="success"}': 1,
    }
    assert moved(auth.register) == {
        'auth_requests_total{endpoint="register",status="failure"}': 1,
        'user_registrations_total{status="failure"}': 1,
    }


def test_login_success_and_failures(app, auth, moved):
    auth.register()
    assert moved(auth.login) == {
        'auth_requests_total{endpoint="login",status="success"}': 1,
        'tokens_issued_total{token_type="access"}': 1,
        'tokens_issued_total{token_type="refresh"}': 1,
    }
    assert moved(lambda: auth.login(password="wrong-password")) == {
        'auth_requests_total{endpoint="login",status="failure"}': 1,
        'auth_failures_total{reason="invalid_credentials"}': 1,
    }
    app.test_cli_runner().invoke(args=["user", "deactivate", auth.email])
    assert moved(auth.login) == {
        'auth_requests_total{endpoint="login",status="failure"}': 1,
        'auth_failures_total{reason="inactive_user"}': 1,
    }


def test_validation_error_is_not_an_authentication_attempt(client, moved):
    assert moved(lambda: client.post("/api/v1/auth/login", json={"email": "x"})) == {}


def test_refresh_rotation_and_reuse(auth, moved):
    auth.signed_in()
    old = auth.tokens["refresh_token"]
    assert moved(auth.refresh) == {
        'auth_requests_total{endpoint="refresh",status="success"}': 1,
        'auth_token_refreshes_total{status="success"}': 1,
        'tokens_issued_total{token_type="access"}': 1,
        'tokens_issued_total{token_type="refresh"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,
    }
    assert moved(lambda: auth.refresh(old)) == {  # rejected by flask-jwt-extended's callback
        'auth_requests_total{endpoint="refresh",status="failure"}': 1,
        'auth_token_refreshes_total{status="failure"}': 1,
        'auth_failures_total{reason="revoked_token"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,  # reuse: the session (family) ends
    }
    assert moved(lambda: auth.refresh(old)) == {  # the family was revoked once, counted once
        'auth_requests_total{endpoint="refresh",status="failure"}': 1,
        'auth_token_refreshes_total{status="failure"}': 1,
        'auth_failures_total{reason="revoked_token"}': 1,
    }
    assert moved(lambda: auth.refresh("garbage")) == {
        'auth_requests_total{endpoint="refresh",status="failure"}': 1,
        'auth_token_refreshes_total{status="failure"}': 1,
        'auth_failures_total{reason="invalid_token"}': 1,
    }


def test_logout_without_a_refresh_token_revokes_the_session(auth, moved):
    auth.signed_in()
    assert moved(auth.logout) == {
        'auth_requests_total{endpoint="logout",status="success"}': 1,
        'tokens_revoked_total{token_type="access"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,  # the family, its refresh token with it
    }


def test_logout_revokes_both_tokens(auth, moved):
    auth.signed_in()
    assert moved(lambda: auth.logout(refresh_token=auth.tokens["refresh_token"])) == {
        'auth_requests_total{endpoint="logout",status="success"}': 1,
        'tokens_revoked_total{token_type="access"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,
    }
    assert moved(auth.logout) == {
        'auth_requests_total{endpoint="logout",status="failure"}': 1,
        'auth_failures_total{reason="revoked_token"}': 1,
    }


def test_missing_and_expired_tokens_on_other_routes(client, moved):
    assert moved(lambda: client.get("/api/v1/auth/me")) == {
        'auth_failures_total{reason="missing_token"}': 1,
    }
    assert moved(lambda: client.post("/api/v1/auth/logout")) == {
        'auth_requests_total{endpoint="logout",status="failure"}': 1,
        'auth_failures_total{reason="missing_token"}': 1,
    }
