"""Run a workflow (one of a `Registry`, `aura.services.workflows`) for a user: the result stored,
its verdict as the run's status, and every outcome counted exactly once.

Outcomes: a run that finishes counts `workflow_executions_total{status="success"}` and its own
workflow metrics; a fault inside a node counts `failure` + `execution_error` (HTTP 500); the
database or Redis down counts `failure` + `service_unavailable` (HTTP 503). Input the client got
wrong (422/413) is rejected before the run starts and counts nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from aura.config import Settings
from aura.errors import AuraError, ErrorCode, ServiceUnavailable
from aura.extensions import db, json_text
from aura.instrumentation import recorder
from aura.models import WorkflowRun, utcnow
from aura.services.workflows import Registry, Result, Workflow
from aura.services.workflows.audit import audit_settings as audit_settings  # the workflow's own, re-exported
from aura.services.workflows.registry import WORKFLOWS
from aura.services.workflows.struggle import struggle_settings as struggle_settings  # likewise
from aura.workflows import WorkflowExecutionError

log = logging.getLogger("aura.workflows")

_OUTAGES = (OperationalError, InterfaceError, PoolTimeout, ServiceUnavailable)
# Run ids are uuid4 strings; anything else (a NUL byte, 10 kB of text) is not looked up at all.
_RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _store(run_id: str, workflow: Workflow, user_id: int, result: dict[str, Any]) -> datetime:
    created_at = utcnow()
    db.session.add(
        WorkflowRun(
            id=run_id,
            workflow_type=workflow.name,
            user_id=user_id,
            result=result,
            status=workflow.verdict(result),
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


def execute(
    workflow_type: str,
    data: dict[str, Any],
    user_id: int | None,
    settings: Settings,
    input_bytes: int | None = None,
    *,
    workflows: Registry = WORKFLOWS,
) -> dict[str, Any]:
    """Run the workflow named `workflow_type` (one of `workflows`), store the result, count the
    outcome; returns the stored body.

    `user_id` None: the account could not be looked up (database down) - a counted 503.
    `input_bytes`: the request body's size, which bounds the result's (`result_budget`); by
    default the size of `data` as JSON."""
    workflow = workflows[workflow_type]
    if user_id is None:
        _failed(workflow, "service_unavailable", perf_counter())
        raise ServiceUnavailable("database")
    budget = result_budget(len(json_text(data).encode()) if input_bytes is None else input_bytes)
    run_id = str(uuid.uuid4())
    stored: dict[str, Any] = {}
    created: list[datetime] = []

    def record(result: Result) -> None:
        stored.update(workflow.within_budget({**result.to_dict(), "id": run_id}, budget))
        created.append(_store(run_id, workflow, user_id, stored))

    started = perf_counter()
    _run(workflow, run_id, data, settings, record, started)
    recorder.workflow_execution(workflow.name, True, perf_counter() - started)
    workflow.record_metrics(stored)
    return {**stored, "created_at": created[0] if created else utcnow()}


def _run(
    workflow: Workflow,
    run_id: str,
    data: dict[str, Any],
    settings: Settings,
    record: Callable[[Result], None],
    started: float,
) -> None:
    """Run it; a failure is rolled back, counted, and raised as the client's outcome (500 or 503)."""
    try:
        workflow.run(data, settings, record)
    except WorkflowExecutionError as exc:
        db.session.rollback()
        if isinstance(exc.__cause__, _OUTAGES):
            _failed(workflow, "service_unavailable", started)
            raise ServiceUnavailable("database") from exc
        _failed(workflow, WorkflowExecutionError.error_type, started)
        log.error("workflow %s run %s failed in node %s", workflow.name, run_id, exc.node, exc_info=exc.__cause__)
        raise WorkflowRunFailed(run_id) from exc
    except _OUTAGES:
        db.session.rollback()
        _failed(workflow, "service_unavailable", started)
        raise


def load(workflow_type: str, run_id: str, user_id: int | None) -> dict[str, Any]:
    """A stored result, only for its owner; `not_found` (404) for any other id."""
    run = None
    if _RUN_ID.fullmatch(run_id):
        if user_id is None:
            raise ServiceUnavailable("database")
        run = db.session.get(WorkflowRun, run_id)
    if run is None or run.user_id != user_id or run.workflow_type != workflow_type:
        raise AuraError(ErrorCode.NOT_FOUND, f"No {workflow_type} result with this id.")
    return {**run.result, "created_at": run.created_at}


class InvalidCursor(AuraError):
    """A listing cursor that this server did not hand out: `validation_error` (422)."""

    MESSAGE = "The cursor is not one this API handed out; start again without it."

    def __init__(self) -> None:
        super().__init__(ErrorCode.VALIDATION_ERROR, self.MESSAGE, {"cursor": [self.MESSAGE]})


@dataclass(frozen=True)
class RunPage:
    """One page of a user's runs, newest first, and the cursor of the next page (None at the end)."""

    runs: list[dict[str, Any]]
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
        raise InvalidCursor()
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


class WorkflowRunFailed(AuraError):
    """A node failed: `execution_error` (500); the run id is in the log and in the answer."""

    def __init__(self, run_id: str):
        super().__init__(ErrorCode.EXECUTION_ERROR, f"The workflow failed; quote run id {run_id} when reporting it.")
        self.run_id = run_id


def _failed(workflow: Workflow, error_type: str, started: float) -> None:
    recorder.workflow_execution(workflow.name, False, perf_counter() - started)
    recorder.workflow_failure(workflow.name, error_type)
