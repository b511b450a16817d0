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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from aura.config import Settings
from aura.errors import ServiceUnavailable
from aura.extensions import db, json_text
from aura.instrumentation import recorder
from aura.models import Lesson as LessonRow
from aura.models import WorkflowRun, utcnow
from aura.workflows import (
    AuditResult,
    AuditSettings,
    Lesson,
    StruggleResult,
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
    return AuditSettings(
        max_files=settings.audit_max_files,
        max_file_bytes=settings.audit_max_file_bytes,
        max_total_bytes=settings.max_content_length,
        max_function_lines=settings.audit_max_function_lines,
        max_cpu_seconds=settings.audit_max_cpu_seconds,
    )


def _catalog() -> list[Lesson]:
    rows = db.session.scalars(select(LessonRow).order_by(LessonRow.lesson_id))
    return [
        Lesson.from_mapping(
            {"lesson_id": r.lesson_id, "title": r.title, "topic": r.topic, "error_types": r.error_types}
        )
        for r in rows
    ]


def _verdict(workflow_type: str, result: dict) -> str | None:
    return result.get("status" if workflow_type == "audit" else "result")


def _store(run_id: str, workflow_type: str, user_id: int, result: dict) -> datetime:
    created_at = utcnow()
    db.session.add(
        WorkflowRun(
            id=run_id,
            workflow_type=workflow_type,
            user_id=user_id,
            result=result,
            status=_verdict(workflow_type, result),
            created_at=created_at,
        )
    )
    db.session.commit()
    return created_at


# A stored run (and the answer that returns it) holds at most this many bytes of JSON (UTF-8,
# compact), plus RESULT_BYTES_PER_INPUT_BYTE for each byte of the request: findings repeat their
# file's path, so 200 of them could return a small request 92 times over. An audit over it lists
# fewer findings (`truncated`; `violation_counts` still counts them all). A struggle result is
# its input's strings plus a few hundred bytes, always within it.
RESULT_BASE_BYTES = 32 * 1024
RESULT_BYTES_PER_INPUT_BYTE = 2


def result_budget(input_bytes: int) -> int:
    """The most bytes a run's stored result may take, for a request of `input_bytes`."""
    return RESULT_BASE_BYTES + RESULT_BYTES_PER_INPUT_BYTE * input_bytes


def _within(result: dict, budget: int) -> dict:
    """The audit result with as many of its findings, in order, as fit in `budget` bytes."""
    size = len(json_text(result).encode())
    if size <= budget:
        return result
    kept: list[dict] = []
    used = len(json_text({**result, "violations": [], "truncated": True}).encode())
    for violation in result["violations"]:
        used += len(json_text(violation).encode()) + 1  # and its comma
        if used > budget:
            break
        kept.append(violation)
    return {**result, "violations": kept, "truncated": True}


def execute(
    workflow_type: str, data: dict, user_id: int | None, settings: Settings, input_bytes: int | None = None
) -> dict:
    """Run `struggle` or `audit`, store the result, count the outcome; returns the stored body.

    `user_id` None: the account could not be looked up (database down) - a counted 503.
    `input_bytes`: the request body's size, which bounds the result's (`result_budget`); by
    default the size of `data` as JSON."""
    if input_bytes is None:
        input_bytes = len(json_text(data).encode())
    run_id = str(uuid.uuid4())
    stored: dict = {}
    if user_id is None:
        _failed(workflow_type, "service_unavailable", perf_counter())
        raise ServiceUnavailable("database")
    created: list[datetime] = []

    def record(result: StruggleResult | AuditResult) -> None:
        stored.update(result.to_dict(), id=run_id)
        if workflow_type == "audit":
            stored.update(_within(stored, result_budget(input_bytes)))
        created.append(_store(run_id, workflow_type, user_id, stored))

    started = perf_counter()
    try:
        if workflow_type == "struggle":
            result: StruggleResult | AuditResult = run_struggle(
                data, catalog=_catalog, settings=struggle_settings(settings), on_record=record
            )
        else:
            result = run_audit(data, settings=audit_settings(settings), on_record=record)
    except WorkflowExecutionError as exc:
        db.session.rollback()
        outage = isinstance(exc.__cause__, _OUTAGES)
        _failed(workflow_type, "service_unavailable" if outage else "execution_error", started)
        if outage:
            raise ServiceUnavailable("database") from exc
        log.error("workflow %s run %s failed in node %s", workflow_type, run_id, exc.node, exc_info=exc.__cause__)
        raise WorkflowRunFailed(run_id) from exc
    except _OUTAGES:
        db.session.rollback()
        _failed(workflow_type, "service_unavailable", started)
        raise
    recorder.workflow_execution(workflow_type, True, perf_counter() - started)
    # Dispatch on the result itself: only a StruggleResult has `.result`, only an AuditResult `.status`.
    if isinstance(result, StruggleResult):
        recorder.struggle_result(
            result.result,
            stored["signals"]["edit_frequency"],
            stored["signals"]["error_count"],
            len(stored["recommendations"]),
        )
    else:
        recorder.audit_result(result.status, [v["type"] for v in stored["violations"]], result.files_processed)
    return {**stored, "created_at": created[0] if created else utcnow()}


def load(workflow_type: str, run_id: str, user_id: int | None) -> dict | None:
    """A stored result, only for its owner; None for an id that is not a run id."""
    if not _RUN_ID.fullmatch(run_id):
        return None
    if user_id is None:
        raise ServiceUnavailable("database")
    run = db.session.get(WorkflowRun, run_id)
    if run is None or run.user_id != user_id or run.workflow_type != workflow_type:
        return None
    return {**run.result, "created_at": run.created_at}


class InvalidCursor(ValueError):
    """A listing cursor that this server did not hand out."""


@dataclass(frozen=True)
class RunPage:
    """One page of a user's runs, newest first, and the cursor of the next page (None at the end)."""

    runs: list[dict]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A cursor is a position in the listing: the creation time (microseconds since 1970, 16 digits)
# and id of the last run of the page. Every string of this shape is a position, so the OpenAPI
# pattern (`aura.api.schemas`) states exactly what is accepted.
CURSOR_PATTERN = r"^[0-9]{16}\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CURSOR_LENGTH = 53
_CURSOR = re.compile(CURSOR_PATTERN)


def _encode_cursor(created_at: datetime, run_id: str) -> str:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        created_at = created_at.replace(tzinfo=UTC)
    elapsed = created_at - _EPOCH
    micros = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    return f"{micros:016d}.{run_id}"


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    if len(cursor) != CURSOR_LENGTH or not _CURSOR.match(cursor):  # never other text into a query
        raise InvalidCursor(cursor)
    micros, _, run_id = cursor.partition(".")
    return _EPOCH + timedelta(microseconds=int(micros)), run_id


def list_runs(
    user_id: int, *, limit: int, cursor: str | None = None, workflow_type: str | None = None, status: str | None = None
) -> RunPage:
    """The user's runs, newest first (ties by id), after `cursor`; filtered by type and status."""
    # The listed columns only: a run's result (up to hundreds of KB) is read by `load`, never here.
    query = select(WorkflowRun.id, WorkflowRun.workflow_type, WorkflowRun.status, WorkflowRun.created_at).where(
        WorkflowRun.user_id == user_id
    )
    if workflow_type:
        query = query.where(WorkflowRun.workflow_type == workflow_type)
    if status:
        query = query.where(WorkflowRun.status == status)
    if cursor:
        created_at, run_id = _decode_cursor(cursor)
        query = query.where(
            or_(
                WorkflowRun.created_at < created_at, and_(WorkflowRun.created_at == created_at, WorkflowRun.id < run_id)
            )
        )
    query = query.order_by(WorkflowRun.created_at.desc(), WorkflowRun.id.desc()).limit(limit + 1)
    rows = db.session.execute(query).all()
    page, more = rows[:limit], len(rows) > limit
    runs = [{"id": r.id, "type": r.workflow_type, "status": r.status, "created_at": r.created_at} for r in page]
    return RunPage(runs, _encode_cursor(page[-1].created_at, page[-1].id) if more else None)


class WorkflowRunFailed(Exception):
    """A node failed; the run id is in the log and in the 500 answer."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


def _failed(workflow_type: str, error_type: str, started: float) -> None:
    recorder.workflow_execution(workflow_type, False, perf_counter() - started)
    recorder.workflow_failure(workflow_type, error_type)
