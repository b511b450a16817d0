"""Run a workflow for a user: settings from config, lessons from the database, the result stored,
and every outcome counted exactly once.

Outcomes: a run that finishes counts `workflow_executions_total{status="success"}` and its own
workflow metrics; a fault inside a node counts `failure` + `execution_error` (HTTP 500); the
database or Redis down counts `failure` + `service_unavailable` (HTTP 503). Input the client got
wrong (422/413) is rejected before the run starts and counts nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from time import perf_counter

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from aura import metrics
from aura.config import Settings
from aura.errors import ServiceUnavailable
from aura.extensions import db
from aura.models import Lesson as LessonRow
from aura.models import WorkflowRun
from aura.workflows import (
    AuditSettings,
    Lesson,
    StruggleSettings,
    WorkflowExecutionError,
    run_audit,
    run_struggle,
)

log = logging.getLogger("aura.workflows")

_OUTAGES = (OperationalError, InterfaceError, PoolTimeout, ServiceUnavailable)
# Run ids are uuid4 strings; anything else (a NUL byte, 10 kB of text) is not looked up at all.
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def struggle_settings(settings: Settings) -> StruggleSettings:
    """Struggle thresholds from the configuration."""
    return StruggleSettings(score_threshold=settings.struggle_score_threshold)


def audit_settings(settings: Settings) -> AuditSettings:
    """Audit limits from the configuration; the whole body never exceeds MAX_CONTENT_LENGTH."""
    return AuditSettings(max_files=settings.audit_max_files, max_file_bytes=settings.audit_max_file_bytes,
                         max_total_bytes=settings.max_content_length,
                         max_function_lines=settings.audit_max_function_lines,
                         max_cpu_seconds=settings.audit_max_cpu_seconds)


def _catalog() -> list[Lesson]:
    rows = db.session.scalars(select(LessonRow).order_by(LessonRow.lesson_id))
    return [Lesson.from_mapping({"lesson_id": r.lesson_id, "title": r.title, "topic": r.topic,
                                 "error_types": r.error_types}) for r in rows]


def _store(run_id: str, workflow_type: str, user_id: int, result: dict) -> None:
    db.session.add(WorkflowRun(id=run_id, workflow_type=workflow_type, user_id=user_id, result=result))
    db.session.commit()


def execute(workflow_type: str, data: dict, user_id: int | None, settings: Settings) -> dict:
    """Run `struggle` or `audit`, store the result, count the outcome; returns the stored body.

    `user_id` None: the account could not be looked up (database down) - a counted 503."""
    run_id = str(uuid.uuid4())
    stored: dict = {}
    if user_id is None:
        _failed(workflow_type, "service_unavailable", perf_counter())
        raise ServiceUnavailable("database")

    def record(result) -> None:
        stored.update(result.to_dict(), id=run_id)
        _store(run_id, workflow_type, user_id, stored)

    started = perf_counter()
    try:
        if workflow_type == "struggle":
            result = run_struggle(data, catalog=_catalog, settings=struggle_settings(settings),
                                  on_record=record)
        else:
            result = run_audit(data, settings=audit_settings(settings), on_record=record)
    except WorkflowExecutionError as exc:
        db.session.rollback()
        outage = isinstance(exc.__cause__, _OUTAGES)
        _failed(workflow_type, "service_unavailable" if outage else "execution_error", started)
        if outage:
            raise ServiceUnavailable("database") from exc
        log.error("workflow %s run %s failed in node %s", workflow_type, run_id, exc.node,
                  exc_info=exc.__cause__)
        raise WorkflowRunFailed(run_id) from exc
    except _OUTAGES:
        db.session.rollback()
        _failed(workflow_type, "service_unavailable", started)
        raise
    metrics.workflow_execution(workflow_type, True, perf_counter() - started)
    if workflow_type == "struggle":
        metrics.struggle_result(result.result, stored["signals"]["edit_frequency"],
                                stored["signals"]["error_count"], len(stored["recommendations"]))
    else:
        metrics.audit_result(result.status, [v["type"] for v in stored["violations"]],
                             result.files_processed)
    return stored


def load(workflow_type: str, run_id: str, user_id: int | None) -> dict | None:
    """A stored result, only for its owner; None for an id that is not a run id."""
    if not _RUN_ID.fullmatch(run_id):
        return None
    if user_id is None:
        raise ServiceUnavailable("database")
    run = db.session.get(WorkflowRun, run_id)
    if run is None or run.user_id != user_id or run.workflow_type != workflow_type:
        return None
    return run.result


class WorkflowRunFailed(Exception):
    """A node failed; the run id is in the log and in the 500 answer."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


def _failed(workflow_type: str, error_type: str, started: float) -> None:
    metrics.workflow_execution(workflow_type, False, perf_counter() - started)
    metrics.workflow_failure(workflow_type, error_type)
