"""The auth API, told as a learner's story, plus every way a token can be wrong."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt as pyjwt
import pytest
from flask_jwt_extended import create_access_token

from aura.api.context import services
from tests.support.auth import AuthActions


def test_register_login_me_refresh_logout(auth):
    created = auth.register()
    assert created.status_code == 201
    body = created.get_json()
    assert set(body) == {"id", "email", "created_at"} and body["email"] == auth.email
    assert body["created_at"].endswith("+00:00")  # explicit UTC, on SQLite and PostgreSQL
    subject = pyjwt.decode(auth.login().get_json()["access_token"], options={"verify_signature": False})["sub"]
    assert body["id"] == subject == auth.me().get_json()["id"]  # the public id, not the row id

    login = auth.login()
    assert login.status_code == 200
    tokens = login.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 15 * 60
    assert auth.me().get_json()["email"] == auth.email

    old_refresh = tokens["refresh_token"]
    assert auth.refresh().status_code == 200
    assert auth.tokens["refresh_token"] != old_refresh

    access = auth.tokens["access_token"]
    assert auth.logout(refresh_token=auth.tokens["refresh_token"]).status_code == 200
    assert auth.me(access).get_json()["error"] == "revoked_token"
    assert auth.refresh(auth.tokens["refresh_token"]).get_json()["error"] == "revoked_token"
    assert auth.refresh(old_refresh).get_json()["error"] == "revoked_token"


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(auth):
    auth.signed_in()
    stolen = auth.tokens["refresh_token"]
    assert auth.refresh().status_code == 200  # whoever rotates first gets a new pair...
    current = dict(auth.tokens)
    reused = auth.refresh(stolen)  # ...and the other one presents the spent token
    assert reused.status_code == 401 and reused.get_json()["error"] == "revoked_token"
    assert auth.me(current["access_token"]).get_json()["error"] == "revoked_token"
    assert auth.refresh(current["refresh_token"]).get_json()["error"] == "revoked_token"
    assert auth.login().status_code == 200 and auth.me().status_code == 200  # a new session


def test_logout_without_a_refresh_token_ends_the_session(auth):
    auth.signed_in()
    assert auth.refresh().status_code == 200
    tokens = dict(auth.tokens)
    assert auth.logout().status_code == 200
    assert auth.refresh(tokens["refresh_token"]).get_json()["error"] == "revoked_token"


def test_email_is_unique_case_insensitively(auth):
    assert auth.register(email="Ada@Example.com").status_code == 201
    again = auth.register(email="ada@example.COM")
    assert again.status_code == 409 and again.get_json()["error"] == "email_taken"
    assert auth.login(email="ADA@example.com").status_code == 200


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"email": "not-an-email", "password": "long-enough"}, {"email"}),
        ({"email": "a@example.com", "password": "short"}, {"password"}),
        ({"email": "a@example.com", "password": "x" * 129}, {"password"}),
        ({"email": "a@example.com"}, {"password"}),
        ({}, {"email", "password"}),
        ({"email": 5, "password": ["x"]}, {"email", "password"}),
        ({"email": "a@example.com", "password": "long-enough", "admin": True}, {"admin"}),
    ],
)
def test_register_validation_gives_a_message_per_field(client, body, fields):
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    payload = response.get_json()
    assert payload["error"] == "validation_error"
    assert set(payload["details"]) == fields


def test_unknown_email_and_wrong_password_answer_the_same(auth):
    auth.register()
    unknown = auth.login(email="nobody@example.com")
    wrong = auth.login(password="wrong-password")
    assert unknown.status_code == wrong.status_code == 401
    assert (
        unknown.get_json()
        == wrong.get_json()
        == {"error": "invalid_credentials", "message": "Email or password is incorrect."}
    )


def test_deactivated_account_cannot_log_in_until_reactivated(app, auth):
    auth.register()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["user", "deactivate", auth.email.upper()])
    assert result.exit_code == 0, result.output
    denied = auth.login()
    assert denied.status_code == 403 and denied.get_json()["error"] == "inactive_user"
    assert runner.invoke(args=["user", "activate", auth.email]).exit_code == 0
    assert auth.login().status_code == 200
    missing = runner.invoke(args=["user", "activate", "ghost@example.com"])
    assert missing.exit_code != 0 and "no user" in missing.output


def test_deactivated_account_cannot_refresh(app, auth):
    auth.signed_in()
    app.test_cli_runner().invoke(args=["user", "deactivate", auth.email])
    response = auth.refresh()
    assert response.status_code == 403 and response.get_json()["error"] == "inactive_user"


def _forge(app, **claims) -> str:
    secret = app.config["JWT_SECRET_KEY"]
    now = int(time.time())
    payload = {
        "sub": "1",
        "jti": "forged",
        "type": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "fresh": False,
        **claims,
    }
    return pyjwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def _unsigned(app) -> str:
    import base64
    import json

    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': '1', 'jti': 'x', 'type': 'access', 'exp': now + 600})}."


@pytest.mark.parametrize(
    "make_token, error",
    [
        (lambda app: None, "missing_token"),
        (lambda app: "garbage", "invalid_token"),
        (_unsigned, "invalid_token"),
        (
            lambda app: pyjwt.encode(
                {"sub": "1", "type": "access", "jti": "j", "exp": int(time.time()) + 60},
                "another-secret-another-secret-12345",
                algorithm="HS256",
            ),
            "invalid_token",
        ),
        (
            lambda app: pyjwt.encode(
                {"sub": "1", "type": "access", "jti": "j", "exp": int(time.time()) + 60},
                app.config["JWT_SECRET_KEY"],
                algorithm="HS512",
            ),
            "invalid_token",
        ),
        (lambda app: _forge(app, exp=int(time.time()) - 10), "expired_token"),
        (lambda app: _forge(app, nbf=int(time.time()) + 3600), "invalid_token"),
        (lambda app: _forge(app, jti=None), "invalid_token"),
        (lambda app: _forge(app, type="refresh"), "invalid_token"),
    ],
)
def test_bad_access_tokens_get_401_with_a_reason(app, client, make_token, error):
    token = make_token(app)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == error


def test_access_token_is_refused_where_refresh_is_expected(auth):
    auth.signed_in()
    response = auth.refresh(auth.tokens["access_token"])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert auth.me(auth.tokens["refresh_token"]).get_json()["error"] == "invalid_token"


def test_expired_token_from_the_app_itself(app, auth):
    auth.signed_in()
    with app.app_context():
        token = create_access_token("1", expires_delta=timedelta(seconds=-1))
    assert auth.me(token).get_json()["error"] == "expired_token"


def test_logout_refuses_another_users_refresh_token(client):
    alice = AuthActions(client, "alice@example.com").signed_in()
    bob = AuthActions(client, "bob@example.com").signed_in()
    response = alice.logout(refresh_token=bob.tokens["refresh_token"])
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert bob.refresh().status_code == 200  # bob's session is untouched
    assert alice.me().status_code == 200  # and alice's logout did not half-happen


def test_logout_with_an_access_token_as_refresh_token(auth):
    auth.signed_in()
    response = auth.logout(refresh_token=auth.tokens["access_token"])
    assert response.status_code == 401


@pytest.mark.parametrize("mode", ["redis", "standalone"])
def test_revocation_works_in_both_modes(make_app, mode):
    from aura.auth.revocation import SqlRevocationStore

    app = make_app()
    if mode == "standalone":
        services(app).revocation = SqlRevocationStore()
    auth = AuthActions(app.test_client()).signed_in()
    assert app.test_client().get("/readyz").get_json()["mode"] == mode
    assert auth.logout().status_code == 200
    assert auth.me().get_json()["error"] == "revoked_token"


def test_unreachable_redis_in_development_runs_standalone(make_app, caplog):
    app = make_app(env="development", redis_url="redis://127.0.0.1:1")
    assert services(app).revocation.mode == "standalone"
    assert "STANDALONE" in caplog.text
    ready = app.test_client().get("/readyz").get_json()
    assert ready["mode"] == "standalone"


def test_unreachable_redis_in_production_fails_closed(make_app):
    app = make_app(env="production", redis_url="redis://127.0.0.1:1")
    client = app.test_client()
    auth = AuthActions(client)
    assert auth.register().status_code == 201
    assert auth.login().status_code == 200  # issuing needs no revocation lookup
    response = auth.me()
    assert response.status_code == 503 and response.get_json()["error"] == "service_unavailable"
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "redis" in ready.get_json()["message"]
