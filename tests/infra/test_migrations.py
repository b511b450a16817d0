"""The Alembic migrations, run in this process (`flask_migrate.upgrade`/`downgrade`) on a database
of their own: from nothing to the models' schema, the data they carry or rewrite, and back.

tests/security/test_account_migrations.py runs them as a deployment does (`flask db` in a
subprocess); these run them in-process so that mutation testing sees them (`make mutate`, the
migrations group). Alembic loads env.py and the revision files by path under a name of its own
(`0002_seed_lessons_py`); mutmut finds a function's mutants by the module's dotted name, so the
`dotted_names` fixture has Alembic load them as `aura.migrations.versions.0002_seed_lessons` -
the same files, run the same way.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import pyfiles
from flask_migrate import downgrade, migrate, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import aura
from aura.auth.emails import skeleton
from tests.security.conftest import private_database

MIGRATIONS = Path(aura.__file__).resolve().parent / "migrations"
LESSONS = json.loads((Path(aura.__file__).resolve().parent / "workflows" / "lessons.json").read_text())
HEAD = "0006_account_deletion"
TABLES = {"lessons", "revoked_tokens", "users", "workflow_runs"}

USER_0003 = (
    "INSERT INTO users (id, email, password_hash, is_active, created_at) "
    "VALUES (:id, :email, 'x', true, '2026-11-01 00:00:00')"
)
RUN_0002 = (
    "INSERT INTO workflow_runs (id, workflow_type, user_id, result, created_at) "
    "VALUES (:id, :kind, :user_id, :result, '2026-11-01 00:00:00')"
)


@pytest.fixture
def dotted_names(monkeypatch):
    real = pyfiles.load_module_py

    def load(module_id, path):
        file = Path(path).resolve()
        if file.suffix == ".py" and file.is_relative_to(MIGRATIONS):
            module_id = ".".join(("aura", "migrations", *file.relative_to(MIGRATIONS).with_suffix("").parts))
        return real(module_id, path)

    monkeypatch.setattr(pyfiles, "load_module_py", load)


@pytest.fixture
def database_name() -> str:
    return "inprocess_migrations"


@pytest.fixture
def fresh(tmp_path, base_settings, dotted_names, database_name):
    """(app, engine) of an empty database of its own."""
    from aura.app import create_app
    from aura.extensions import db

    url, drop = private_database(tmp_path, database_name)
    app = create_app({**base_settings, "database_url": url})
    engine = create_engine(url)
    yield app, engine
    engine.dispose()
    with app.app_context():
        db.engine.dispose()
    drop()


def _sqlite(engine) -> bool:
    return engine.dialect.name == "sqlite"


def _schema_differences(engine) -> list:
    from aura.extensions import db

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)


def _length_differences(engine) -> list:
    """Columns whose string length is not the model's (alembic's type comparison lets a column
    without a length pass for one with it)."""
    from aura.extensions import db

    names = inspect(engine)
    found = []
    for table in db.metadata.sorted_tables:
        reflected = {c["name"]: c["type"] for c in names.get_columns(table.name)}
        for column in table.columns:
            want = getattr(column.type, "length", None)
            got = getattr(reflected[column.name], "length", None)
            if want != got:
                found.append((table.name, column.name, want, got))
    return found


def _primary_key_differences(engine) -> list:
    """Tables whose primary key is not the model's (alembic's comparison leaves primary keys out)."""
    from aura.extensions import db

    names = inspect(engine)
    found = []
    for table in db.metadata.sorted_tables:
        want = [c.name for c in table.primary_key.columns]
        got = names.get_pk_constraint(table.name)["constrained_columns"]
        if want != got:
            found.append((table.name, want, got))
    return found


def _version(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _runs_key(engine) -> dict:
    (key,) = [k for k in inspect(engine).get_foreign_keys("workflow_runs") if k["referred_table"] == "users"]
    return key


def _plain_sqlite(engine):
    """A connection without Aura's foreign-key pragma (as the database was before 0006)."""
    return sqlite3.connect(make_url(engine.url).database)


def test_from_nothing_the_migrations_build_the_models_schema_with_the_lessons(fresh):
    app, engine = fresh
    with app.app_context():
        upgrade()
    assert _version(engine) == HEAD
    assert _schema_differences(engine) == []
    assert _length_differences(engine) == []
    assert _primary_key_differences(engine) == []
    names = inspect(engine)
    assert TABLES <= set(names.get_table_names())
    assert {i["name"] for i in names.get_indexes("workflow_runs")} >= {
        "ix_workflow_runs_user_id",
        "ix_workflow_runs_workflow_type",
        "ix_workflow_runs_user_created",
    }
    assert {c["name"] for c in names.get_unique_constraints("users")} >= {
        "uq_users_public_id",
        "uq_users_email_skeleton",
    }
    assert _runs_key(engine)["name"] == "fk_workflow_runs_user_id_users"
    assert _runs_key(engine)["options"].get("ondelete") == "CASCADE"
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT lesson_id, title, topic, error_types FROM lessons")).all()
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1 if _sqlite(engine) else True
    stored = {
        r.lesson_id: (r.title, r.topic, json.loads(r.error_types) if isinstance(r.error_types, str) else r.error_types)
        for r in rows
    }
    assert stored == {x["lesson_id"]: (x["title"], x["topic"], list(x["error_types"])) for x in LESSONS}
    if _sqlite(engine):
        with engine.connect() as conn:
            users_sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'users'")).scalar()
            assert "AUTOINCREMENT" in users_sql
            assert conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'users'")).scalar() == 0


def test_existing_rows_are_carried_through_every_migration(fresh):
    app, engine = fresh
    sqlite = _sqlite(engine)
    with app.app_context():
        upgrade(revision="0002_seed_lessons")
        with engine.begin() as conn:
            for user_id, email in (
                (1, "ann@xn--bcher-kva.de"),
                (2, "ann@b\u00fccher.de"),
                (3, "Bob@Example.com"),
                (4, "b0b@example.com"),
            ):
                conn.execute(text(USER_0003), dict(id=user_id, email=email))
            for run_id, kind, user_id, result in (
                ("audit-run", "audit", 3, {"status": "fail", "result": "nope"}),
                ("struggle-run", "struggle", 3, {"result": "struggling", "status": "nope"}),
                ("empty-run", "audit", 4, None),
                ("other-run", "audit", 4, {"status": "pass"}),
            ):
                conn.execute(text(RUN_0002), dict(id=run_id, kind=kind, user_id=user_id, result=json.dumps(result)))
        upgrade(revision="0003_workflow_run_status")
        with engine.connect() as conn:
            status = dict(conn.execute(text("SELECT id, status FROM workflow_runs")).all())
        assert status == {"audit-run": "fail", "struggle-run": "struggling", "empty-run": None, "other-run": "pass"}

        upgrade(revision="0004_public_ids_and_skeletons")
        with engine.connect() as conn:
            users = {r.id: r for r in conn.execute(text("SELECT id, public_id, email_skeleton FROM users"))}
        assert all(re.fullmatch(r"[0-9a-f]{32}", u.public_id) for u in users.values())
        assert len({u.public_id for u in users.values()}) == 4
        # 0004 keyed the spelling; the oldest account of a key keeps it, a later look-alike NULL
        assert users[3].email_skeleton == skeleton("Bob@Example.com")
        assert users[4].email_skeleton == (
            None if skeleton("b0b@example.com") == skeleton("Bob@Example.com") else skeleton("b0b@example.com")
        )
        assert users[1].email_skeleton == skeleton("ann@xn--bcher-kva.de")

        if sqlite:  # foreign keys were off on SQLite: a run outlived its deleted account (row id 9)
            conn = _plain_sqlite(engine)
            with conn:
                conn.execute(
                    "INSERT INTO workflow_runs (id, workflow_type, user_id, result, status, created_at) "
                    "VALUES ('orphan-run', 'audit', 9, '{}', 'pass', '2026-11-01 00:00:00')"
                )
            conn.close()

        upgrade()
    with engine.begin() as conn:
        keys = dict(conn.execute(text("SELECT id, email_skeleton FROM users")).all())
        assert keys[1] == skeleton("ann@b\u00fccher.de") and keys[2] is None  # one mailbox: the oldest keeps it
        assert keys[3] == skeleton("Bob@Example.com")
        runs = {row.id for row in conn.execute(text("SELECT id FROM workflow_runs"))}
        assert runs == {"audit-run", "struggle-run", "empty-run", "other-run"}  # the orphan is gone
        conn.execute(text("DELETE FROM users WHERE id = 4"))  # deleting an account deletes its runs
        assert {row.id for row in conn.execute(text("SELECT id FROM workflow_runs"))} == {"audit-run", "struggle-run"}
        if sqlite:
            assert conn.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'users'")).scalar() == 9
    assert _schema_differences(engine) == []


def test_down_to_nothing_and_up_again(fresh):
    app, engine = fresh
    with app.app_context():
        upgrade()
        downgrade(revision="0005_mailbox_skeletons")
        assert _version(engine) == "0005_mailbox_skeletons"
        assert _runs_key(engine)["options"].get("ondelete") is None
        if _sqlite(engine):
            with engine.connect() as conn:
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'users'")).scalar()
            assert "AUTOINCREMENT" not in sql
        downgrade(revision="0003_workflow_run_status")
        assert {c["name"] for c in inspect(engine).get_columns("users")} == {
            "id",
            "email",
            "password_hash",
            "is_active",
            "created_at",
        }
        downgrade(revision="0002_seed_lessons")
        assert "status" not in {c["name"] for c in inspect(engine).get_columns("workflow_runs")}
        assert "ix_workflow_runs_user_created" not in {i["name"] for i in inspect(engine).get_indexes("workflow_runs")}
        downgrade(revision="4f8e69fa3ac0")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM lessons")).scalar() == 0
        downgrade(revision="base")
        assert set(inspect(engine).get_table_names()) & TABLES == set()
        upgrade()
    assert _version(engine) == HEAD
    assert _schema_differences(engine) == []


def test_offline_mode_writes_the_sql(fresh, capsys):
    # Only up to the first revision: offline mode cannot write 0002's JSON values as literals
    # (SQLAlchemy has no literal renderer for JSON), and 0003 on read the rows they change.
    app, engine = fresh
    with app.app_context():
        upgrade(revision="4f8e69fa3ac0", sql=True)
    out = capsys.readouterr().out
    assert "CREATE TABLE lessons" in out and "CREATE TABLE workflow_runs" in out, out[-2000:]
    assert "INSERT INTO alembic_version (version_num) VALUES ('4f8e69fa3ac0')" in out
    assert "alembic_version" not in inspect(engine).get_table_names()  # nothing was run


def test_sqlite_migrations_refuse_to_leave_broken_foreign_keys(fresh, capsys):
    from aura.extensions import db

    app, engine = fresh
    if not _sqlite(engine):
        pytest.skip("the foreign key check after the migrations is SQLite's")
    with app.app_context():
        upgrade(revision="0002_seed_lessons")
        conn = _plain_sqlite(engine)
        with conn:
            for n in range(6):
                conn.execute(
                    "INSERT INTO workflow_runs (id, workflow_type, user_id, result, created_at) "
                    f"VALUES ('orphan-run-{n}', 'audit', 9, '{{}}', '2026-11-01 00:00:00')"
                )
        conn.close()
        with pytest.raises(SystemExit):  # flask_migrate logs the error and exits
            upgrade(revision="0003_workflow_run_status")
        err = capsys.readouterr().err
        assert "foreign keys broken by the migrations: [('workflow_runs'" in err
        assert err.count("('workflow_runs'") == 5  # the first five of the six
        with db.engine.connect() as conn:  # and the app's connections enforce the keys again
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


@pytest.mark.parametrize("database_name", ["per%cent"])
def test_a_database_url_with_a_percent_sign_is_migrated(fresh):
    # env.py hands the URL to Alembic's config, which reads `%` as interpolation unless doubled
    app, engine = fresh
    assert "%" in engine.url.render_as_string(hide_password=False)
    with app.app_context():
        upgrade(revision="4f8e69fa3ac0")
    assert _version(engine) == "4f8e69fa3ac0"


def test_autogenerate_writes_no_revision_when_the_schema_matches_the_models(fresh, monkeypatch):
    # `flask db migrate` on an up-to-date database: env.py's process_revision_directives drops
    # the empty revision. The revision files are recorded, not written (the migrations directory
    # is the source tree's).
    app, engine = fresh
    written = []
    monkeypatch.setattr(
        ScriptDirectory, "generate_revision", lambda self, rev_id, message, **kw: written.append(message)
    )
    with app.app_context():
        upgrade()
        # env.py keeps a callback it finds in the Migrate's configure_args, which every app of this
        # process shares: the one an earlier command (this upgrade) left reads that command's
        # options. `flask db migrate` runs in a process of its own, where env.py adds it afresh.
        args = app.extensions["migrate"].configure_args
        monkeypatch.delitem(args, "process_revision_directives", raising=False)
        migrate(message="nothing")
        assert written == []
        with engine.begin() as conn:  # a difference: the models' index on lessons.topic is gone
            conn.execute(text("DROP INDEX ix_lessons_topic"))
        monkeypatch.delitem(args, "process_revision_directives", raising=False)
        migrate(message="the index")
    assert written == ["the index"]


def test_the_lesson_seed_reads_a_catalog_list_or_one_under_lessons(tmp_path, monkeypatch):
    # 0002 takes lessons.json as a list (as shipped) or as {"lessons": [...]}
    seed = pyfiles.load_module_py(
        "aura.migrations.versions.0002_seed_lessons", MIGRATIONS / "versions" / "0002_seed_lessons.py"
    )
    lesson = {"lesson_id": "x", "title": "X", "topic": "t", "error_types": ["e"]}
    for catalog in ([lesson], {"lessons": [lesson]}):
        path = tmp_path / "lessons.json"
        path.write_text(json.dumps(catalog))
        monkeypatch.setattr(seed, "CATALOG", path)
        assert seed._lessons() == [lesson]
