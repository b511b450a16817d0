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

from aura.api.context import services
from aura.api.errors import STATUS_OF_CODE
from tests.conftest import REDIS_URL, TEST_AUTH_DB
from tests.support.auth import AuthActions

KEY_PREFIX = "aura:revoked:"
LEARNER = "learner@example.com"
SECRET = "test-secret-key-that-is-long-enough-even-for-hs512-0123456789abcdef"  # tests/conftest.py's jwt_secret_key


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


def _service_call(app, function, *args, access_lifetime: int = 900, family_lifetime: int = 3600):
    """Call service.refresh or service.logout as a view does: in a request, with the process's
    store, and a token issuer with the app's secret and the given lifetimes."""
    from aura.auth import service
    from aura.auth.tokens import Tokens

    with app.test_request_context():
        store = services(app).revocation
        tokens = Tokens(app.config["JWT_SECRET_KEY"], access_lifetime, family_lifetime)
        user = service.find_user(LEARNER)
        return function(store, tokens, user, *args)


@pytest.fixture
def signed_in(app):
    return AuthActions(app.test_client(), LEARNER).signed_in()


def test_a_refresh_token_can_be_rotated_only_once_even_when_both_requests_passed_the_check(app, signed_in):
    """Two requests with the same refresh token both got past the blocklist check: the
    revocation decides, and the loser's presentation counts as reuse."""
    from aura.auth import service

    claims = _claims(signed_in.tokens["refresh_token"])
    settings = app.config["AURA"]
    first = _service_call(app, service.refresh, claims, access_lifetime=settings.access_token_expires)
    with pytest.raises(service.AuthError) as second:
        _service_call(app, service.refresh, claims, access_lifetime=settings.access_token_expires)
    assert second.value.code == "revoked_token"
    # The reuse ended the session: the pair the first rotation issued opens nothing either.
    assert signed_in.me(first.access_token).get_json()["error"] == "revoked_token"
    assert _auth_redis().get(KEY_PREFIX + claims["fam"]) == b"family"


@pytest.mark.parametrize("store_mode", ["redis", "standalone"])
def test_concurrent_refreshes_with_one_token_exactly_one_succeeds(make_app, store_mode):
    app = make_app() if store_mode == "redis" else make_app(redis_url="redis://127.0.0.1:1", redis_socket_timeout=0.2)
    assert services(app).revocation.mode == store_mode
    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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
    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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
    auth = AuthActions(app.test_client(), LEARNER).signed_in()
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

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
    claims = _claims(auth.tokens["refresh_token"])
    with app.app_context():
        user = service.find_user(auth.email)
        user.is_active = False
        db.session.commit()
    login = auth.login()
    assert login.status_code == 403 and login.get_json()["error"] == "inactive_user"
    with pytest.raises(service.AuthError) as refused:
        _service_call(app, service.refresh, claims)
    assert refused.value.code == "inactive_user"
    assert _revoked_rows(app) == {}  # refusing is not rotating


def test_find_user_and_user_by_subject(app):
    from aura.auth import service

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        user = service.find_user("  LEARNER@Example.COM ")
        assert user is not None and user.email == "learner@example.com"
        assert service.user_by_subject(subject).id == user.id
        for bad in (None, 5, subject[:-1], subject + "0", "é" * 32, "-" * 32):
            assert service.user_by_subject(bad) is None


def _moved(action):
    from tests.support.metrics import counters_moved, registry_samples

    before = registry_samples()
    action()
    return dict(counters_moved(before, registry_samples()))


def _refused_refresh(app, claims) -> tuple[dict, Exception]:
    """A refresh the service refuses: the counters it moved, and the AuthError it raised."""
    from aura.auth import service

    raised = []

    def refuse():
        with pytest.raises(service.AuthError) as refused:
            _service_call(app, service.refresh, claims)
        raised.append(refused.value)

    return _moved(refuse), raised[0]


def test_the_loser_of_a_rotation_race_is_counted_as_a_reused_token(app, signed_in):
    from aura.auth import service

    claims = _claims(signed_in.tokens["refresh_token"])
    assert _moved(lambda: _service_call(app, service.refresh, claims)) == {
        'auth_requests_total{endpoint="refresh",status="success"}': 1,
        'auth_token_refreshes_total{status="success"}': 1,
        'tokens_issued_total{token_type="access"}': 1,
        'tokens_issued_total{token_type="refresh"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,
    }
    moved, lost = _refused_refresh(app, claims)
    assert moved == {
        'auth_requests_total{endpoint="refresh",status="failure"}': 1,
        'auth_token_refreshes_total{status="failure"}': 1,
        'auth_failures_total{reason="revoked_token"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 1,  # the family
    }
    assert (STATUS_OF_CODE[lost.code], lost.code, lost.message) == (
        401,
        "revoked_token",
        "This token has been revoked.",
    )
    rows = _revoked_rows(app)
    assert rows[claims["jti"]][0] == "refresh" and rows[claims["fam"]][0] == "family"
    assert abs(rows[claims["fam"]][1] - (time.time() + 3600)) <= 5


def test_a_deactivated_account_refreshing_is_counted_and_refused(app, signed_in):
    from aura.auth import service
    from aura.extensions import db

    claims = _claims(signed_in.tokens["refresh_token"])
    with app.app_context():
        service.find_user(signed_in.email).is_active = False
        db.session.commit()
    moved, refused = _refused_refresh(app, claims)
    assert moved == {
        'auth_requests_total{endpoint="refresh",status="failure"}': 1,
        'auth_token_refreshes_total{status="failure"}': 1,
        'auth_failures_total{reason="inactive_user"}': 1,
    }
    assert str(refused) == refused.message
    assert (STATUS_OF_CODE[refused.code], refused.code, refused.message) == (
        403,
        "inactive_user",
        "This account cannot refresh.",
    )


def test_a_refreshed_pair_continues_the_session_and_lasts_as_configured(app, signed_in):
    from aura.auth import service

    claims = _claims(signed_in.tokens["refresh_token"])
    pair = _service_call(app, service.refresh, claims, access_lifetime=123)
    assert pair.expires_in == 123
    assert _claims(pair.access_token)["fam"] == claims["fam"] == _claims(pair.refresh_token)["fam"]
    assert _claims(pair.access_token)["sub"] == claims["sub"]


def test_revoking_a_family_twice_counts_once(app, signed_in):
    from aura.auth import service

    claims = _claims(signed_in.tokens["access_token"])
    store = services(app).revocation
    with app.app_context():
        user_id = service.find_user(signed_in.email).id
        results = []
        assert _moved(lambda: results.append(service.revoke_family(store, user_id, claims, 60))) == {
            'tokens_revoked_total{token_type="refresh"}': 1
        }
        assert results == [True]
        assert _moved(lambda: service.revoke_family(store, user_id, claims, 60)) == {}
        assert service.revoke_family(store, user_id, claims, 60) is False
        assert service.revoke_family(store, user_id, {"jti": "x"}, 60) is False
        assert service.revoke_family(store, user_id, {"fam": ""}, 60) is False
        assert service.revoke_family(store, user_id, {"fam": 5}, 60) is False
    assert 55 <= _auth_redis().ttl(KEY_PREFIX + claims["fam"]) <= 62


@pytest.mark.parametrize("kind", ["same session", "other session", "no family"])
def test_logout_counts_each_revoked_token_once(app, kind):
    from flask_jwt_extended import create_access_token, create_refresh_token

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
    access = auth.tokens["access_token"]
    refresh = auth.tokens["refresh_token"]
    if kind == "other session":
        assert auth.login().status_code == 200
        refresh = auth.tokens["refresh_token"]
    elif kind == "no family":
        subject = _claims(access)["sub"]
        with app.app_context():
            access, refresh = create_access_token(subject), create_refresh_token(subject)
    moved = _moved(lambda: auth.logout(access, refresh_token=refresh))
    assert moved == {
        'auth_requests_total{endpoint="logout",status="success"}': 1,
        'tokens_revoked_total{token_type="access"}': 1,
        'tokens_revoked_total{token_type="refresh"}': 2 if kind == "other session" else 1,
    }


def test_logout_failures_are_counted_with_their_reason(app):
    from datetime import timedelta

    from flask_jwt_extended import create_refresh_token

    auth = AuthActions(app.test_client(), LEARNER).signed_in()
    subject = _claims(auth.tokens["access_token"])["sub"]
    with app.app_context():
        expired = create_refresh_token(subject, expires_delta=timedelta(seconds=-10))
        foreign = create_refresh_token(uuid.uuid4().hex)
    for token, reason, message in (
        (expired, "expired_token", "The refresh token has expired."),
        ("garbage", "invalid_token", "The refresh token is not valid."),
        (auth.tokens["access_token"], "invalid_token", "refresh_token must be a refresh token."),
        (foreign, "invalid_token", "The refresh token belongs to another user."),
    ):
        answers: list = []
        assert _moved(lambda t=token, out=answers: out.append(auth.logout(refresh_token=t))) == {
            'auth_requests_total{endpoint="logout",status="failure"}': 1,
            f'auth_failures_total{{reason="{reason}"}}': 1,
        }
        assert answers[0].get_json()["message"] == message


def test_login_and_register_errors_say_what_went_wrong(app):
    auth = AuthActions(app.test_client(), LEARNER)
    assert auth.register().status_code == 201
    taken = auth.register().get_json()
    assert (taken["error"], taken["message"]) == (
        "email_taken",
        "An account with this email (or one that looks the same) already exists.",
    )
    wrong = auth.login(password="wrong-password").get_json()
    assert (wrong["error"], wrong["message"]) == ("invalid_credentials", "Email or password is incorrect.")
    unknown = auth.login(email="nobody@example.com").get_json()
    assert (unknown["error"], unknown["message"]) == (wrong["error"], wrong["message"])  # nothing to tell apart
    app.test_cli_runner().invoke(args=["user", "deactivate", auth.email])
    inactive = auth.login().get_json()
    assert (inactive["error"], inactive["message"]) == ("inactive_user", "This account is deactivated.")


def test_an_address_that_looks_like_a_taken_one_is_refused_and_counted(app):
    from aura.auth import emails, service

    auth = AuthActions(app.test_client(), LEARNER)
    assert auth.register(email="ada@example.com").status_code == 201
    with app.app_context():
        assert service.find_user("ada@example.com").email_skeleton == emails.skeleton("ada@example.com")
    lookalike = []
    moved = _moved(lambda: lookalike.append(auth.register(email="\u0430da@example.com")))  # Cyrillic a
    assert lookalike[0].status_code == 409 and lookalike[0].get_json()["error"] == "email_taken"
    assert moved == {
        'auth_requests_total{endpoint="register",status="failure"}': 1,
        'user_registrations_total{status="failure"}': 1,
    }
