"""Migrations 0005 and 0006 on a database that already holds accounts, on SQLite and PostgreSQL.

0005 takes every account's look-alike key again, of its mailbox (IDNA domain, unquoted local
part). 0006 makes deleting an account delete its runs (ON DELETE CASCADE) and, on SQLite, row
ids never reused (AUTOINCREMENT, starting above every id a row still names; runs of accounts
already deleted are deleted). Both run with `flask db upgrade` as a deployment does; the models
and the migrated schema agree (`flask db check`), and both go down and up again.
"""

from __future__ import annotations

import sqlite3
import subprocess

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import aura.extensions  # noqa: F401 - this process's SQLite connections enforce foreign keys, as Aura's do
from aura.auth.emails import skeleton
from aura.testing.servers import BIN, ROOT, app_env
from tests.security.conftest import private_database

pytestmark = pytest.mark.slow(25)

USER = (
    "INSERT INTO users (id, public_id, email, email_skeleton, password_hash, is_active, created_at) "
    "VALUES (:id, :public_id, :email, :skeleton, 'x', true, '2026-11-01 00:00:00')"
)
RUN = (
    "INSERT INTO workflow_runs (id, workflow_type, user_id, result, status, created_at) "
    "VALUES (:id, 'audit', :user_id, '{}', 'pass', '2026-11-01 00:00:00')"
)


def _flask(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture
def database(tmp_path):
    url, drop = private_database(tmp_path, "migrations")
    engine = create_engine(url)
    yield url, engine
    engine.dispose()
    drop()


def test_accounts_migrate_to_mailbox_skeletons_and_cascading_deletes(tmp_path, database):
    url, engine = database
    env = app_env(tmp_path, url)
    _flask(env, "upgrade", "0004_public_ids_and_skeletons")
    sqlite = url.startswith("sqlite")
    with engine.begin() as conn:
        for user_id, email, old_key in (
            (1, "ann@xn--bcher-kva.de", "ann@xn--bcher-kva.de"),  # 0004's key of the spelling
            (2, "ann@b\u00fccher.de", "ann@b\u00fccher.de"),  # the same mailbox, made before 0005
            (3, "bob@example.com", "bob@example.com"),
            (4, "cy@example.com", "cy@example.com"),
        ):
            conn.execute(text(USER), dict(id=user_id, public_id=f"{user_id:032x}", email=email, skeleton=old_key))
        conn.execute(text(RUN), dict(id="run-of-bob", user_id=3))
        conn.execute(text(RUN), dict(id="run-of-cy", user_id=4))
    if sqlite:  # foreign keys were off on SQLite: a run outlived its deleted account (row id 9)
        conn = sqlite3.connect(make_url(url).database)  # a plain connection, foreign keys off
        with conn:
            conn.execute(RUN.replace(":id", "'run-of-a-deleted-account'").replace(":user_id", "9"))
        conn.close()
    else:  # the ids above came from the sequence, as they would have
        with engine.begin() as conn:
            conn.execute(text("SELECT setval('users_id_seq', 4)"))

    _flask(env, "upgrade")
    with engine.begin() as conn:
        keys = dict(conn.execute(text("SELECT id, email_skeleton FROM users")).all())
        assert keys == {1: skeleton("ann@b\u00fccher.de"), 2: None, 3: "bob@example.com", 4: "cy@example.com"}
        runs = {row.id for row in conn.execute(text("SELECT id FROM workflow_runs"))}
        assert runs == {"run-of-bob", "run-of-cy"}  # the deleted account's run is gone with it
        conn.execute(text("DELETE FROM users WHERE id = 4"))  # deleting an account deletes its runs
        assert {row.id for row in conn.execute(text("SELECT id FROM workflow_runs"))} == {"run-of-bob"}
        new_id = conn.execute(
            text(
                "INSERT INTO users (public_id, email, password_hash, is_active, created_at) "
                "VALUES ('f' || :n, 'new@example.com', 'x', true, '2026-11-02 00:00:00') RETURNING id"
            ),
            {"n": "0" * 31},
        ).scalar()
        assert new_id > (9 if sqlite else 4)  # never the id of an account that existed
    assert "No new upgrade operations detected" in _flask(env, "check")  # the models agree
    _flask(env, "downgrade", "0005_mailbox_skeletons")
    _flask(env, "upgrade")
    assert "No new upgrade operations detected" in _flask(env, "check")
