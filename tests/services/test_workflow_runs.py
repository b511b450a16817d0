"""aura.services.workflow_runs on its own: the workflows' settings come from the configuration."""

from __future__ import annotations

from aura.config import Settings
from aura.services.workflow_runs import audit_settings, struggle_settings


def test_workflow_settings_are_read_from_the_configuration(tmp_path):
    settings = Settings.from_env(
        {"AURA_INSTANCE_PATH": str(tmp_path)},
        audit_max_files=7,
        audit_max_file_bytes=1000,
        max_content_length=5000,
        audit_max_function_lines=9,
        audit_max_cpu_seconds=0.25,
        struggle_score_threshold=0.75,
    )
    audit = audit_settings(settings)
    assert (audit.max_files, audit.max_file_bytes, audit.max_function_lines) == (7, 1000, 9)
    assert audit.max_total_bytes == 5000  # the whole body never exceeds MAX_CONTENT_LENGTH
    assert audit.max_cpu_seconds == 0.25
    assert struggle_settings(settings).score_threshold == 0.75


def test_a_run_keeps_as_many_findings_as_fit_its_budget(app):
    """The findings kept are the first ones, in order; the result flags `truncated` and keeps
    every count; whatever the request, the stored JSON is within `result_budget`."""
    from aura.extensions import json_text
    from aura.services.workflow_runs import RESULT_BASE_BYTES, execute, result_budget

    assert result_budget(0) == RESULT_BASE_BYTES and result_budget(1000) == RESULT_BASE_BYTES + 2000
    from tests.support.auth import AuthActions

    AuthActions(app.test_client(), "budget@example.com").signed_in()
    path = "\U0001d54f" * 251 + ".py"
    files = [{"path": path, "content": "print(1)\n" * 20 + "breakpoint()\n" * 20}]
    with app.app_context():
        from sqlalchemy import select

        from aura.extensions import db
        from aura.models import User, WorkflowRun

        user_id = db.session.scalar(select(User.id).where(User.email == "budget@example.com"))
        roomy = execute("audit", {"files": files}, user_id, app.config["AURA"], input_bytes=100_000)
        tight = execute("audit", {"files": files}, user_id, app.config["AURA"], input_bytes=1)
        assert roomy["truncated"] is False and len(roomy["violations"]) == 40
        assert tight["truncated"] is True and 0 < len(tight["violations"]) < 40
        assert tight["violations"] == roomy["violations"][: len(tight["violations"])]
        assert (
            tight["violation_counts"]
            == roomy["violation_counts"]
            == {
                **roomy["violation_counts"],
                "print_statement": 20,
                "debugger_call": 20,
            }
        )
        stored = db.session.get(WorkflowRun, tight["id"])
        assert len(json_text(stored.result).encode()) <= result_budget(1)
        # A struggle result is its input's strings and a few hundred bytes: within the budget.
        largest = {
            "exercise_id": "e" * 100,
            "edit_frequency": 1,
            "error_count": 1,
            "error_types": ["\U0001d54f" * 100] * 50,
        }
        struggle = execute("struggle", largest, user_id, app.config["AURA"])
        assert len(json_text(db.session.get(WorkflowRun, struggle["id"]).result).encode()) <= result_budget(
            len(json_text(largest).encode())
        )


def test_every_connection_enforces_foreign_keys(app):
    """SQLite ignored them (`PRAGMA foreign_keys` = 0): a run could name no account, and
    deleting an account left its runs to whoever got its row id next."""
    import pytest
    from sqlalchemy import delete, select, text
    from sqlalchemy.exc import IntegrityError

    from aura.extensions import db
    from aura.models import User, WorkflowRun
    from tests.support.auth import AuthActions

    AuthActions(app.test_client(), "keys@example.com").signed_in()
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            for _connection in range(3):  # a new connection each time: each one asks for them
                with db.engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        user_id = db.session.scalar(select(User.id).where(User.email == "keys@example.com"))
        db.session.add(WorkflowRun(id="no-such-account", workflow_type="audit", user_id=user_id + 1000, result={}))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        db.session.add(WorkflowRun(id="of-keys", workflow_type="audit", user_id=user_id, result={}))
        db.session.commit()
        db.session.execute(delete(User).where(User.id == user_id))  # plain SQL, as any script
        db.session.commit()
        assert db.session.execute(text("SELECT count(*) FROM workflow_runs")).scalar() == 0
