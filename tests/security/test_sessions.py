"""Sessions over real Gunicorn: a stolen refresh token, logout, a reused subject, deactivation.

A session is a token family (one login and all its refreshes). Whoever presents a refresh token
that was already rotated ends the whole family - the thief who rotated first loses it too.
"""

from __future__ import annotations

import subprocess

import pytest

from aura.testing.servers import BIN, ROOT
from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error
from tests.support.metrics import parse_exposition, value

pytestmark = pytest.mark.gunicorn


def _revoked(server, token_type: str) -> float:
    from tests.security.conftest import METRICS_TOKEN

    body = server.client().get("/metrics", headers=bearer(METRICS_TOKEN)).text
    return value(parse_exposition(body), "tokens_revoked_total", token_type=token_type)


def test_replaying_a_rotated_refresh_token_ends_the_thiefs_session_too(hardened):
    owner = AuthActions(hardened.client()).signed_in()
    stolen = owner.refresh_token
    thief = AuthActions(hardened.client(), owner.email)
    assert thief.refresh(stolen).status_code == 200  # the thief rotates first
    assert thief.me().status_code == 200
    before = _revoked(hardened, "refresh")

    # The owner's client refreshes with the token it holds: reuse, detected.
    assert_error(owner.refresh(), 401, "revoked_token")
    assert _revoked(hardened, "refresh") == before + 1  # the family, counted once
    for _attempt in range(4):  # every worker refuses the thief's pair
        assert_error(thief.me(), 401, "revoked_token")
        assert_error(thief.refresh(), 401, "revoked_token")
    assert owner.login().status_code == 200 and owner.me().status_code == 200  # a new session


def test_logout_without_a_refresh_token_ends_the_session(hardened):
    account = AuthActions(hardened.client()).signed_in()
    assert account.refresh().status_code == 200
    access, refresh = account.access, account.refresh_token
    assert account.logout().status_code == 200  # no body
    for _attempt in range(4):
        assert_error(account.refresh(refresh), 401, "revoked_token")
        assert_error(account.me(access), 401, "revoked_token")


def test_other_sessions_survive_a_logout(hardened):
    laptop = AuthActions(hardened.client()).signed_in()
    phone = AuthActions(hardened.client(), laptop.email)
    assert phone.login().status_code == 200
    assert laptop.logout().status_code == 200
    assert phone.me().status_code == 200 and phone.refresh().status_code == 200


def test_a_deleted_accounts_tokens_never_open_a_newer_account(hardened):
    """SQLite reuses the highest row id: tokens name a random public id instead."""
    gone = AuthActions(hardened.client()).signed_in()
    hardened.sql("DELETE FROM users WHERE email = :email", email=gone.email)
    newcomer = AuthActions(hardened.client()).signed_in()
    assert newcomer.me().status_code == 200
    assert_error(gone.me(), 401, "invalid_token")
    assert_error(gone.refresh(), 401, "invalid_token")


def test_deactivation_takes_effect_on_the_next_request(hardened):
    account = AuthActions(hardened.client()).signed_in()
    assert account.me().status_code == 200
    env = dict(hardened.gunicorn.env)
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "user", "deactivate", account.email],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    for _attempt in range(4):
        assert_error(account.me(), 403, "inactive_user")
        struggle = {"exercise_id": "loops-1", "edit_frequency": 1, "error_count": 0}
        assert_error(
            account.client.post(
                "/api/v1/workflows/struggle", json=struggle, headers={"Authorization": f"Bearer {account.access}"}
            ),
            403,
            "inactive_user",
        )
    assert_error(account.refresh(), 403, "inactive_user")
