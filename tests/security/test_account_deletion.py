"""Deleting an account, over real Gunicorn: nothing it leaves behind passes to a newer account.

On SQLite, foreign keys were off (`PRAGMA foreign_keys` = 0) and row ids were reused: delete an
account (as an operator's script might) and the next account got its row id - and listed and
read its runs, findings included. Now every SQLite connection of Aura enforces foreign keys,
`users` is AUTOINCREMENT (ids are never reused, PostgreSQL's sequence never did), a run is deleted
with its account (ON DELETE CASCADE), and `flask user delete` deletes an account properly: its
runs, its revocation rows, and its tokens stop working from the next request on.
"""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from sqlalchemy.engine import make_url

from aura.testing.servers import BIN, ROOT
from tests.support.auth import AuthActions
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

FAILING = {"files": [{"path": "secrets.py", "content": "password = 'hunter2-secret-value'\nbreakpoint()\n"}]}
CALM = {"exercise_id": "loops-1", "edit_frequency": 1, "error_count": 0}


def _operator_deletes(server, email: str) -> None:
    """Delete the account's row as an operator's SQL shell would: on SQLite a plain connection
    (foreign keys off, the sqlite3 shell's default), on PostgreSQL an ordinary DELETE."""
    if server.database_url.startswith("sqlite"):
        conn = sqlite3.connect(make_url(server.database_url).database)
        with conn:
            conn.execute("DELETE FROM users WHERE email = ?", (email,))
        conn.close()
    else:
        server.sql("DELETE FROM users WHERE email = :email", email=email)


def _run(account: AuthActions, kind: str, body: dict) -> str:
    response = account.client.post(f"/api/v1/workflows/{kind}", json=body, headers=account.bearer())
    assert response.status_code == 201, response.text[:300]
    return response.json()["id"]


def test_a_deleted_accounts_runs_never_pass_to_the_next_account(hardened):
    gone = AuthActions(hardened.client()).signed_in()
    run_id = _run(gone, "audit", FAILING)
    _operator_deletes(hardened, gone.email)
    newcomer = AuthActions(hardened.client()).signed_in()  # the next row
    listing = newcomer.client.get("/api/v1/workflows", headers=newcomer.bearer())
    assert listing.status_code == 200 and listing.json()["runs"] == [], listing.text[:500]
    assert_error(newcomer.client.get(f"/api/v1/workflows/audit/{run_id}", headers=newcomer.bearer()), 404)
    assert_error(gone.me(), 401, "invalid_token")


def _user_delete(server, email: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "user", "delete", email, "--yes"],
        cwd=ROOT,
        env=dict(server.gunicorn.env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_flask_user_delete_removes_the_account_its_runs_and_its_revocations(hardened):
    owner = AuthActions(hardened.client()).signed_in()
    audit_id, struggle_id = _run(owner, "audit", FAILING), _run(owner, "struggle", CALM)
    old_refresh = owner.refresh_token
    assert owner.refresh().status_code == 200  # one revocation row: the rotated refresh token
    other = AuthActions(hardened.client()).signed_in()
    kept = _run(other, "audit", FAILING)
    ((row_id,),) = hardened.sql("SELECT id FROM users WHERE email = :email", email=owner.email)

    done = _user_delete(hardened, owner.email)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{owner.email} deleted with 2 workflow run(s) and 1 revocation record(s)" in done.stdout
    assert hardened.sql("SELECT id FROM workflow_runs WHERE user_id = :id", id=row_id) == []
    assert hardened.sql("SELECT jti FROM revoked_tokens WHERE user_id = :id", id=row_id) == []
    for _attempt in range(4):  # every worker refuses its tokens
        assert_error(owner.me(), 401, "invalid_token")
        assert_error(owner.refresh(), 401, "invalid_token")
    assert_error(owner.refresh(old_refresh), 401)
    assert_error(owner.login(), 401, "invalid_credentials")  # no such account any more

    # The other account is untouched; the address can make a new, empty account.
    assert other.client.get(f"/api/v1/workflows/audit/{kept}", headers=other.bearer()).status_code == 200
    again = AuthActions(hardened.client(), owner.email).signed_in()
    assert again.client.get("/api/v1/workflows", headers=again.bearer()).json()["runs"] == []
    for kind, run_id in (("audit", audit_id), ("struggle", struggle_id)):
        assert_error(again.client.get(f"/api/v1/workflows/{kind}/{run_id}", headers=again.bearer()), 404)
    ((new_row_id,),) = hardened.sql("SELECT id FROM users WHERE email = :email", email=owner.email)
    assert new_row_id > row_id


def test_flask_user_delete_names_an_unknown_address(hardened):
    done = _user_delete(hardened, "nobody-here@example.com")
    assert done.returncode != 0 and "no user with email nobody-here@example.com" in done.stderr
