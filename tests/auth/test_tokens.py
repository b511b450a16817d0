"""Token issue, rotation and logout: what each one leaves revoked, and for how long.

Real Redis (the durable store's fast path) and the test database; the service functions are
called as the views call them where a race has to be staged, and through HTTP otherwise.
"""

from __future__ import annotations

import threading
import time
import uuid

import jwt as pyjwt
import pytest
import redis

from tests.conftest import REDIS_URL, TEST_AUTH_DB
from tests.support.auth import AuthActions

KEY_PREFIX = "aura:revoked:"
SECRET = "test-secret-key-that-is-long-enough-0123456789"  # tests/conftest.py's jwt_secret_key


def _claims(token: str) -> dict:
    return pyjwt.decode(token, SECRET, algorithms=["HS256"])


def _auth_redis() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, db=TEST_AUTH_DB)


def _revoked_rows(app) -> dict[str, tuple[str, int]]:
    """jti -> (token_type, expires_at as a UTC timestamp) of every revoked_tokens row."""
    from datetime import UTC

    from sqlalchemy import select

    from aura.extensions import db
    from aura.models import RevokedToken

    with app.app_context():
        rows = db.session.execute(select(RevokedToken.jti, RevokedToken.token_type, RevokedToken.expires_at)).all()
    return {jti: (kind, int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())) for jti, kind, at in rows}


def _service_call(app, function, *args):
    """Call an aura.auth.service function as a view does: in a request, with the process's store."""
    from aura.auth import service

    with app.test_request_context():
        store = app.extensions["aura.revocation"]
        user = service.find_user("learner@example.com")
        return function(store, user, *args)


@pytest.fixture
def signed_in(app):
    return AuthActions(app.test_client()).signed_in()


def test_a_refresh_token_can_be_rotated_only_once_even_when_both_requests_passed_the_check(app, signed_in):
    """Two requests with the same refresh token both got past the blocklist check: the
    revocation decides, and the loser's presentation counts as reuse."""
    from aura.auth import service

    claims = _claims(signed_in.tokens["refresh_token"])
    settings = app.config["AURA"]
    first = _service_call(app, service.refresh, claims, settings.access_token_expires, 3600)
    with pytest.raises(service.AuthError) as second:
        _service_call(app, service.refresh, claims, settings.access_token_expires, 3600)
    assert second.value.error == "revoked_token"
    # The reuse ended the session: the pair the first rotation issued opens nothing either.
    assert signed_in.me(first.access_token).get_json()["error"] == "revoked_token"
    assert _auth_redis().get(KEY_PREFIX + claims["fam"]) == b"family"


@pytest.mark.parametrize("store_mode", ["redis", "standalone"])
def test_concurrent_refreshes_with_one_token_exactly_one_succeeds(make_app, store_mode):
    app = make_app() if store_mode == "redis" else make_app(redis_url="redis://127.0.0.1:1", redis_socket_timeout=0.2)
    assert app.extensions["aura.revocation"].mode == store_mode
    auth = AuthActions(app.test_client()).signed_in()
    token = auth.tokens["refresh_token"]
    start = threading.Barrier(4)
    codes: list[int] = []

    def rotate():
        client = app.test_client()
        start.wait()
        codes.append(client.post("/api/v1/auth/refresh", headers={"Authorization": f"Bearer {token}"}).status_code)

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(codes) == [200, 401, 401, 401], codes


def test_logout_revokes_the_access_token_and_the_session_until_they_would_expire(app, signed_in):
    access, refresh = _claims(signed_in.tokens["access_token"]), _claims(signed_in.tokens["refresh_token"])
    assert signed_in.logout().status_code == 200
    family_lifetime = app.config["AURA"].refresh_token_expires
    now = time.time()
    client = _auth_redis()
    # The access token's entry lives as long as the token would (not a second, not forever)...
    assert client.get(KEY_PREFIX + access["jti"]) == b"access"
    assert access["exp"] - now - 5 <= client.ttl(KEY_PREFIX + access["jti"]) <= access["exp"] - now + 2
    # ...the session's as long as a refresh token of it could still be live.
    assert client.get(KEY_PREFIX + access["fam"]) == b"family"
    assert family_lifetime - 5 <= client.ttl(KEY_PREFIX + access["fam"]) <= family_lifetime + 2
    rows = _revoked_rows(app)
    assert rows[access["jti"]] == ("access", access["exp"])
    assert rows[access["fam"]][0] == "family"
    assert abs(rows[access["fam"]][1] - (now + family_lifetime)) <= 5
    assert refresh["jti"] not in rows  # its family stands for it
    assert signed_in.refresh(signed_in.tokens["refresh_token"]).get_json()["error"] == "revoked_token"


def test_a_rotated_refresh_token_stays_revoked_as_long_as_it_would_have_lived(app, signed_in):
    refresh = _claims(signed_in.tokens["refresh_token"])
    assert signed_in.refresh().status_code == 200
    ttl = _auth_redis().ttl(KEY_PREFIX + refresh["jti"])
    remaining = refresh["exp"] - time.time()
    assert remaining - 5 <= ttl <= remaining + 2
    assert _revoked_rows(app)[refresh["jti"]] == ("refresh", refresh["exp"])


def test_logout_with_the_refresh_token_of_another_session_ends_both(app):
    auth = AuthActions(app.test_client()).signed_in()
    first = dict(auth.tokens)
    assert auth.login().status_code == 200
    second = dict(auth.tokens)
    assert _claims(first["access_token"])["fam"] != _claims(second["access_token"])["fam"]
    assert auth.logout(first["access_token"], refresh_token=second["refresh_token"]).status_code == 200
    for tokens in (first, second):
        assert auth.me(tokens["access_token"]).get_json()["error"] == "revoked_token"
        assert auth.refresh(tokens["refresh_token"]).get_json()["error"] == "revoked_token"
    rows = _revoked_rows(app)
    for tokens in (first, second):
        assert rows[_claims(tokens["access_token"])["fam"]][0] == "family"


def test_logout_with_a_token_from_before_families_revokes_that_token(app):
    """Tokens issued before sessions had a `fam` claim: only the tokens themselves can be revoked."""
    from flask_jwt_extended import create_access_token, create_refresh_token

    auth = AuthActions(app.test_client()).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        access, refresh = create_access_token(subject), create_refresh_token(subject)
    assert "fam" not in _claims(access)
    assert auth.logout(access, refresh_token=refresh).status_code == 200
    assert auth.me(access).get_json()["error"] == "revoked_token"
    assert auth.refresh(refresh).get_json()["error"] == "revoked_token"
    rows = _revoked_rows(app)
    assert rows[_claims(access)["jti"]][0] == "access" and rows[_claims(refresh)["jti"]][0] == "refresh"
    assert auth.me().status_code == 200  # the session from login is another one: untouched


def test_refresh_of_a_token_from_before_families_starts_a_family(app):
    from flask_jwt_extended import create_refresh_token

    auth = AuthActions(app.test_client()).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        legacy = create_refresh_token(subject)
    assert auth.refresh(legacy).status_code == 200
    family = _claims(auth.tokens["access_token"])["fam"]
    assert family and family == _claims(auth.tokens["refresh_token"])["fam"]
    assert auth.refresh(legacy).get_json()["error"] == "revoked_token"


@pytest.mark.parametrize(
    "token, reason",
    [
        ("not-a-jwt", "invalid_token"),
        ("expired", "expired_token"),
        ("access", "invalid_token"),
        ("another user's", "invalid_token"),
    ],
)
def test_logout_refuses_a_bad_refresh_token_in_the_body_and_revokes_nothing(app, token, reason):
    from datetime import timedelta

    from flask_jwt_extended import create_access_token, create_refresh_token

    auth = AuthActions(app.test_client()).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        body_token = {
            "not-a-jwt": "not-a-jwt",
            "expired": create_refresh_token(subject, expires_delta=timedelta(seconds=-10)),
            "access": create_access_token(subject),
            "another user's": create_refresh_token(uuid.uuid4().hex),
        }[token]
    answer = auth.logout(refresh_token=body_token)
    assert answer.status_code == 401 and answer.get_json()["error"] == reason
    assert auth.me().status_code == 200
    assert _revoked_rows(app) == {}


def test_login_issues_a_pair_of_one_new_session(app):
    auth = AuthActions(app.test_client()).signed_in()
    access, refresh = _claims(auth.tokens["access_token"]), _claims(auth.tokens["refresh_token"])
    assert access["type"] == "access" and refresh["type"] == "refresh"
    assert access["fam"] == refresh["fam"] and len(access["fam"]) == 32
    assert access["sub"] == refresh["sub"]
    assert auth.tokens["expires_in"] == app.config["AURA"].access_token_expires
    assert auth.login().status_code == 200
    assert _claims(auth.tokens["access_token"])["fam"] != access["fam"]
    assert auth.refresh().status_code == 200
    assert auth.tokens["expires_in"] == app.config["AURA"].access_token_expires


def test_a_deactivated_account_cannot_log_in_or_refresh(app):
    from aura.auth import service
    from aura.extensions import db

    auth = AuthActions(app.test_client()).signed_in()
    claims = _claims(auth.tokens["refresh_token"])
    with app.app_context():
        user = service.find_user(auth.email)
        user.is_active = False
        db.session.commit()
    login = auth.login()
    assert login.status_code == 403 and login.get_json()["error"] == "inactive_user"
    with pytest.raises(service.AuthError) as refused:
        _service_call(app, service.refresh, claims, 900, 3600)
    assert refused.value.error == "inactive_user"
    assert _revoked_rows(app) == {}  # refusing is not rotating


def test_find_user_and_user_by_subject(app):
    from aura.auth import service

    auth = AuthActions(app.test_client()).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        user = service.find_user("  LEARNER@Example.COM ")
        assert user is not None and user.email == "learner@example.com"
        assert service.user_by_subject(subject).id == user.id
        for bad in (None, 5, subject[:-1], subject + "0", "é" * 32, "-" * 32):
            assert service.user_by_subject(bad) is None
