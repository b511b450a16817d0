"""Every way a token can be wrong, over a real socket: a 401 in the JSON shape, nobody let in."""

from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest

from tests.security.conftest import SECRET
from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(subject: str, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": subject,
        "jti": f"forged-{now}-{len(overrides)}",
        "type": "access",
        "fresh": False,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(claims: dict, key: str = SECRET, algorithm: str = "HS256", headers: dict | None = None) -> str:
    return pyjwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _unsigned(claims: dict, alg: str = "none") -> str:
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(claims)}."


def _resigned_header(token: str, header: dict) -> str:
    """Keep the payload and the HS256 signature, change the header (signature no longer matches)."""
    _, payload, signature = token.split(".")
    return f"{_b64(header)}.{payload}.{signature}"


# (name, token factory(sub) -> token, expected error code) - each is presented to GET /me.
FORGERIES = [
    ("alg none", lambda sub: _unsigned(_claims(sub)), "invalid_token"),
    ("alg None", lambda sub: _unsigned(_claims(sub), "None"), "invalid_token"),
    ("alg NONE", lambda sub: _unsigned(_claims(sub), "NONE"), "invalid_token"),
    (
        "alg none with a signature kept",
        lambda sub: _resigned_header(_signed(_claims(sub)), {"alg": "none", "typ": "JWT"}),
        "invalid_token",
    ),
    ("wrong key", lambda sub: _signed(_claims(sub), key="another-secret-another-secret-0123456789"), "invalid_token"),
    ("HS512 with the right key", lambda sub: _signed(_claims(sub), algorithm="HS512"), "invalid_token"),
    ("HS384 with the right key", lambda sub: _signed(_claims(sub), algorithm="HS384"), "invalid_token"),
    (
        "header says RS256, HMAC signature",
        lambda sub: _resigned_header(_signed(_claims(sub)), {"alg": "RS256", "typ": "JWT"}),
        "invalid_token",
    ),
    (
        "payload altered after signing",
        lambda sub: (
            _signed(_claims(sub)).split(".")[0]
            + "."
            + _b64(_claims(sub[::-1]))
            + "."
            + _signed(_claims(sub)).split(".")[2]
        ),
        "invalid_token",
    ),
    ("no sub", lambda sub: _signed(_claims(sub, sub=None)), "invalid_token"),
    ("no jti", lambda sub: _signed(_claims(sub, jti=None)), "invalid_token"),
    ("no type", lambda sub: _signed(_claims(sub, type=None)), "invalid_token"),
    ("no exp", lambda sub: _signed(_claims(sub, exp=None)), "invalid_token"),
    ("sub is a number", lambda sub: _signed(_claims(sub, sub=int(sub, 16))), "invalid_token"),
    ("sub is the account's row id", lambda sub: _signed(_claims("1")), "invalid_token"),
    ("jti is a number", lambda sub: _signed(_claims(sub, jti=7)), "invalid_token"),
    ("type is unknown", lambda sub: _signed(_claims(sub, type="admin")), "invalid_token"),
    ("unsigned with extra claims", lambda sub: _unsigned(_claims(sub, admin=True, roles=["admin"])), "invalid_token"),
    (
        "expired",
        lambda sub: _signed(
            _claims(sub, iat=int(time.time()) - 1200, nbf=int(time.time()) - 1200, exp=int(time.time()) - 600)
        ),
        "expired_token",
    ),
    (
        "not yet valid",
        lambda sub: _signed(_claims(sub, nbf=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
        "invalid_token",
    ),
    ("account that does not exist", lambda sub: _signed(_claims("987654321")), "invalid_token"),
    ("sub is not a number", lambda sub: _signed(_claims("admin")), "invalid_token"),
    ("sub of 40 digits", lambda sub: _signed(_claims("9" * 40)), "invalid_token"),
    ("garbage", lambda sub: "not.a.token", "invalid_token"),
    ("two segments", lambda sub: "eyJhbGciOiJIUzI1NiJ9.e30", "invalid_token"),
    (
        "non-JSON header",
        lambda sub: base64.urlsafe_b64encode(b"\xff\xfe{").decode().rstrip("=") + ".e30.c2ln",
        "invalid_token",
    ),
    ("7 KB of token", lambda sub: "a" * 7000, "invalid_token"),
]


@pytest.fixture(scope="module")
def victim(hardened) -> AuthActions:
    """A real account whose id the forgeries claim."""
    return AuthActions(hardened.client()).signed_in()


def _victim_id(victim: AuthActions) -> str:
    """The subject the victim's genuine tokens carry (its random public id)."""
    return pyjwt.decode(victim.access, options={"verify_signature": False})["sub"]


@pytest.mark.parametrize("name, forge, error", FORGERIES, ids=[f[0] for f in FORGERIES])
def test_forged_or_malformed_access_token_is_refused(hardened, victim, name, forge, error):
    token = forge(_victim_id(victim))
    client = hardened.client()
    assert_error(client.get("/api/v1/auth/me", headers=bearer(token)), 401, error)
    # The same token opens no other door either.
    struggle = {"exercise_id": "loops-1", "edit_frequency": 1, "error_count": 0}
    assert_error(client.post("/api/v1/workflows/struggle", headers=bearer(token), json=struggle), 401, error)


@pytest.mark.parametrize(
    "header, error",
    [
        (None, "missing_token"),
        ("Bearer", "missing_token"),
        ("Bearer ", "missing_token"),
        ("Basic dXNlcjpwYXNz", "missing_token"),
        ("Token abc", "missing_token"),
    ],
)
def test_missing_or_foreign_authorization_header(hardened, header, error):
    headers = {"Authorization": header} if header is not None else {}
    response = hardened.client().get("/api/v1/auth/me", headers=headers)
    assert_error(response, 401)
    assert response.json()["error"] in (error, "invalid_token")


def test_extra_claims_in_a_genuine_token_grant_nothing(hardened, victim):
    """Only the server can sign; claims it does not use are ignored, never obeyed."""
    sub = _victim_id(victim)
    token = _signed(_claims(sub, admin=True, roles=["admin"], fresh=True, scope="*", email="root@x.io"))
    response = victim.client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == victim.me().json()  # the same account, nothing more


def test_token_types_are_not_interchangeable(hardened):
    account = AuthActions(hardened.client()).signed_in()
    assert_error(account.me(account.refresh_token), 401, "invalid_token")
    assert_error(account.refresh(account.access), 401, "invalid_token")
    assert_error(account.logout(token=account.refresh_token), 401, "invalid_token")
    # And the right ones still work.
    assert account.me().status_code == 200
    assert account.refresh().status_code == 200


def test_revoked_and_rotated_tokens_stay_dead(hardened):
    account = AuthActions(hardened.client()).signed_in()
    first_refresh = account.refresh_token
    assert account.refresh().status_code == 200
    assert_error(account.refresh(first_refresh), 401, "revoked_token")  # rotation spent it
    assert account.login().status_code == 200  # reuse ended that session: a new one

    access, refresh = account.access, account.refresh_token
    assert account.logout(refresh_token=refresh).status_code == 200
    for _attempt in range(4):  # on every worker (one connection per request)
        assert_error(account.me(access), 401, "revoked_token")
        assert_error(account.refresh(refresh), 401, "revoked_token")


def test_logout_refuses_another_users_refresh_token(hardened):
    alice = AuthActions(hardened.client()).signed_in()
    bob = AuthActions(hardened.client()).signed_in()
    assert_error(alice.logout(refresh_token=bob.refresh_token), 401, "invalid_token")
    assert bob.refresh().status_code == 200  # bob's session is untouched
    assert alice.me().status_code == 200  # and alice's logout did not half-happen
    forged = _signed(_claims(_victim_id(bob), type="refresh"), key="another-secret-another-secret-012345")
    assert_error(alice.logout(refresh_token=forged), 401, "invalid_token")


def test_workers_stay_healthy_after_the_token_battery(hardened):
    workers = hardened.gunicorn.worker_pids()
    client = hardened.client()
    for _, forge, _ in FORGERIES:
        client.get("/api/v1/auth/me", headers=bearer(forge("0123456789abcdef0123456789abcdef")))
    hardened.assert_healthy(workers)
