"""The auth views and the JWT callbacks (`aura.api.auth`, `aura.api.jwt`) in process: what
login and logout answer and count, tokens of accounts that are gone or deactivated, a replayed
refresh token while the database or Redis is down, the claims each token must carry, and the
address rules of registration (`aura.api.schemas`)."""

from __future__ import annotations

import time

import jwt as pyjwt
import pytest

from aura.api.context import services
from aura.auth.revocation import SqlRevocationStore
from aura.errors import ServiceUnavailable
from tests.support.auth import AuthActions
from tests.support.errors import assert_error

REGISTER = "/api/v1/auth/register"
BROKEN_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def _claims(token: str) -> dict:
    return pyjwt.decode(token, options={"verify_signature": False})


def test_login_answers_a_bearer_pair_and_a_device_token(client):
    auth = AuthActions(client).signed_in()
    tokens = auth.tokens
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in", "device_token"}
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 15 * 60
    assert _claims(tokens["access_token"])["type"] == "access"
    assert _claims(tokens["refresh_token"])["type"] == "refresh"
    device = services(client.application).devices.device(tokens["device_token"], auth.email)
    assert device is not None


def test_logout_answers_its_message_and_ends_the_given_refresh_token(client):
    auth = AuthActions(client).signed_in()
    refresh = auth.refresh_token
    response = auth.logout(refresh_token=refresh)
    assert response.status_code == 200 and response.get_json() == {"message": "logged out"}
    assert_error(auth.refresh(refresh), 401, "revoked_token")


def test_logout_with_an_empty_body_ends_the_session(client):
    auth = AuthActions(client).signed_in()
    response = client.post("/api/v1/auth/logout", json={}, headers=auth.bearer())
    assert response.status_code == 200 and response.get_json() == {"message": "logged out"}
    assert_error(auth.refresh(), 401, "revoked_token")


def test_a_token_of_a_deleted_account_opens_nothing(app, client):
    auth = AuthActions(client).signed_in()
    result = app.test_cli_runner().invoke(args=["user", "delete", "--yes", auth.email])
    assert result.exit_code == 0, result.output
    body = assert_error(auth.me(), 401, "invalid_token")
    assert body["message"] == "The token is not valid."


def test_an_access_token_of_a_deactivated_account_is_403(app, client):
    auth = AuthActions(client).signed_in()
    app.test_cli_runner().invoke(args=["user", "deactivate", auth.email])
    body = assert_error(auth.me(), 403, "inactive_user")
    assert body["message"] == "This account is deactivated."


def test_each_token_failure_has_its_message(app, client):
    auth = AuthActions(client).signed_in()
    assert assert_error(client.get("/api/v1/auth/me"), 401, "missing_token")["message"] == (
        "A Bearer token is required."
    )
    assert assert_error(auth.me("garbage"), 401, "invalid_token")["message"] == "The token is not valid."
    expired = _signed(app, {**_claims(auth.access), "exp": int(time.time()) - 10})
    assert assert_error(auth.me(expired), 401, "expired_token")["message"] == "The token has expired."
    access = auth.access
    auth.logout()
    assert assert_error(auth.me(access), 401, "revoked_token")["message"] == "The token has been revoked."


def _signed(app, claims: dict) -> str:
    return pyjwt.encode(claims, app.config["JWT_SECRET_KEY"], algorithm="HS256")


@pytest.mark.parametrize("claim", ["sub", "jti", "type", "exp"])
def test_a_genuine_signature_over_a_token_without_a_required_claim_is_401(app, client, claim):
    auth = AuthActions(client).signed_in()
    claims = {key: value for key, value in _claims(auth.access).items() if key != claim}
    assert_error(auth.me(_signed(app, claims)), 401, "invalid_token")


def test_a_genuine_signature_over_a_malformed_claim_is_401(app, client):
    auth = AuthActions(client).signed_in()
    assert_error(auth.me(_signed(app, {**_claims(auth.access), "jti": ""})), 401, "invalid_token")
    assert auth.me().status_code == 200  # the genuine token still works


def test_a_refresh_token_is_checked_against_the_database_too(app, client):
    """The table is the durable record: a rotated refresh token whose Redis key is gone (Redis
    lost it) is still refused."""
    auth = AuthActions(client).signed_in()
    old = auth.refresh_token
    assert auth.refresh().status_code == 200
    services(app).redis.auth.delete("aura:revoked:" + _claims(old)["jti"])
    assert_error(auth.refresh(old), 401, "revoked_token")


def test_the_table_answers_for_a_refresh_token_before_its_account_is_looked_up(app, client):
    """Refused by the revocation check itself (401 revoked_token), not by the refresh view nor by
    the account lookup that follows it (403 for a deactivated account)."""
    auth = AuthActions(client).signed_in()
    old = auth.refresh_token
    assert auth.refresh().status_code == 200
    services(app).redis.auth.delete("aura:revoked:" + _claims(old)["jti"])
    app.test_cli_runner().invoke(args=["user", "deactivate", auth.email])
    assert_error(auth.refresh(old), 401, "revoked_token")


def test_an_access_token_is_checked_in_redis_only(app, client):
    auth = AuthActions(client).signed_in()
    access = auth.access
    assert auth.logout().status_code == 200
    client_redis = services(app).redis.auth
    for key in client_redis.scan_iter("aura:revoked:*"):
        if key != b"aura:revoked:loaded":  # Redis still holds every revocation, it says
            client_redis.delete(key)
    assert auth.me(access).status_code == 200  # the table is not asked for an access token


def test_a_replayed_refresh_token_while_the_database_is_down_is_503(make_app):
    good = make_app()
    auth = AuthActions(good.test_client()).signed_in()
    old = auth.refresh_token
    assert auth.refresh().status_code == 200
    broken = make_app(database_url=BROKEN_DATABASE)
    response = broken.test_client().post("/api/v1/auth/refresh", headers=auth.bearer(old))
    body = assert_error(response, 503, "service_unavailable")
    assert body["message"] == "database is unavailable; try again shortly"
    assert auth.refresh().status_code == 200  # the session was not ended: the client retries


class _RedisDownOnRevoke(SqlRevocationStore):
    """The table answers lookups; a revocation fails as the Redis store's does while Redis is down."""

    def revoke(self, *args, **kwargs) -> bool:
        raise ServiceUnavailable("redis")


def test_a_replayed_refresh_token_while_revocations_cannot_be_written_is_503(app, client):
    auth = AuthActions(client).signed_in()
    old = auth.refresh_token
    assert auth.refresh().status_code == 200
    services(app).revocation = _RedisDownOnRevoke()
    response = auth.refresh(old)
    body = assert_error(response, 503, "service_unavailable")
    assert body["message"] == "redis is unavailable; try again shortly"


def test_a_replayed_refresh_token_of_a_deleted_account_is_only_revoked(app, client):
    auth = AuthActions(client).signed_in()
    old = auth.refresh_token
    assert auth.refresh().status_code == 200
    app.test_cli_runner().invoke(args=["user", "delete", "--yes", auth.email])
    assert_error(auth.refresh(old), 401, "revoked_token")


@pytest.mark.parametrize(
    "email, message",
    [
        (
            "a\u3164b@example.com",  # the Hangul filler: a letter to the address syntax
            "Email contains invisible or control characters (U+3164).",
        ),
        (
            "a\u3164\uffa0b@example.com",
            "Email contains invisible or control characters (U+3164, U+FFA0).",
        ),
        (
            "a" + "\u3164" * 6 + "@example.com",  # the first five named
            "Email contains invisible or control characters (U+3164, U+3164, U+3164, U+3164, U+3164).",
        ),
        (
            # ASCII as sent, but the domain's Unicode form (a valid IDNA name) holds a zero-width joiner
            "user@xn--11b2ezcw70k.com",
            "Email contains invisible or control characters (U+200D).",
        ),
        ("a" * 65 + "@example.com", "The part before @ is longer than 64 bytes."),
        ("\u00e9" * 33 + "@example.com", "The part before @ is longer than 64 bytes."),
    ],
)
def test_registration_refuses_hidden_characters_and_long_mailboxes(client, email, message):
    response = client.post(REGISTER, json={"email": email, "password": "long-enough"})
    body = assert_error(response, 422, "validation_error")
    assert body["details"] == {"email": [message]}


def test_registration_refuses_a_domain_that_is_not_an_idna_name(client):
    response = client.post(REGISTER, json={"email": "a@\u2800.example.com", "password": "long-enough"})
    body = assert_error(response, 422, "validation_error")
    (message,) = body["details"]["email"]
    assert message.startswith("The domain is not a valid domain name (IDNA UTS #46): ")


@pytest.mark.parametrize("local", ["a" * 64, "\u00e9" * 32])
def test_a_mailbox_of_64_bytes_is_accepted(client, local):
    response = client.post(REGISTER, json={"email": local + "@example.com", "password": "long-enough"})
    assert response.status_code == 201, response.get_json()


@pytest.mark.parametrize("password, status", [("x" * 7, 422), ("x" * 8, 201), ("x" * 128, 201), ("x" * 129, 422)])
def test_registration_passwords_are_8_to_128_characters(client, password, status):
    response = client.post(REGISTER, json={"email": AuthActions(client).email, "password": password})
    assert response.status_code == status, response.get_json()
    if status == 422:
        assert response.get_json()["details"] == {"password": ["Password must be 8 to 128 characters."]}


LOGIN = "/api/v1/auth/login"


def _guarded(make_app, **overrides):
    """An app allowing 2 failed logins per account an hour (and plenty per address)."""
    settings = dict(
        rate_limit_enabled=True,
        rate_limit_login="100 per hour",
        rate_limit_login_account="2 per hour",
        rate_limit_default="1000 per hour",
        trusted_proxy_count=1,
    )
    return make_app(**{**settings, **overrides})


def _from(address: str) -> dict:
    return {"X-Forwarded-For": address}


def test_refused_logins_other_than_a_wrong_password_are_not_failures(make_app):
    app = _guarded(make_app)
    client = app.test_client()
    owner = AuthActions(client)
    assert owner.register().status_code == 201
    app.test_cli_runner().invoke(args=["user", "deactivate", owner.email])
    body = {"email": owner.email, "password": owner.password}
    codes = [client.post(LOGIN, json=body, headers=_from("192.0.2.1")).status_code for _ in range(4)]
    assert codes == [403] * 4  # never locked: a deactivated account is not being guessed


def test_logins_during_an_outage_are_not_failures(make_app):
    client = _guarded(make_app, database_url=BROKEN_DATABASE).test_client()
    body = {"email": "owner@example.com", "password": "long-enough"}
    codes = [client.post(LOGIN, json=body, headers=_from("192.0.2.1")).status_code for _ in range(4)]
    assert codes == [503] * 4


def test_a_device_token_lets_its_owner_in_while_the_account_is_locked(make_app):
    client = _guarded(make_app).test_client()
    owner = AuthActions(client).signed_in()
    device = owner.tokens["device_token"]
    wrong = {"email": owner.email, "password": "wrong-password"}
    for i in range(3):  # the account's two failures, then this address's one try
        assert client.post(LOGIN, json=wrong, headers=_from("198.51.100.7")).status_code == 401, i
    assert client.post(LOGIN, json=wrong, headers=_from("198.51.100.7")).status_code == 429
    right = {"email": owner.email, "password": owner.password}
    for _ in range(2):  # from the same address, with the device token: its own allowance
        response = client.post(LOGIN, json={**right, "device_token": device}, headers=_from("198.51.100.7"))
        assert response.status_code == 200, response.get_json()
    assert client.post(LOGIN, json=right, headers=_from("198.51.100.7")).status_code == 429  # and without it


def test_a_signed_in_route_while_the_database_is_down_is_503(make_app):
    good = make_app()
    auth = AuthActions(good.test_client()).signed_in()
    assert auth.me().status_code == 200  # the revocations are loaded into Redis
    broken = make_app(database_url=BROKEN_DATABASE).test_client()
    body = assert_error(broken.get("/api/v1/auth/me", headers=auth.bearer()), 503, "service_unavailable")
    assert body["message"] == "database is unavailable; try again shortly"


def test_a_quoted_mailbox_holding_an_at_sign_is_accepted(client):
    """The domain is what follows the last @."""
    response = client.post(REGISTER, json={"email": '"a@b"@example.com', "password": "long-enough"})
    assert response.status_code == 201, response.get_json()
