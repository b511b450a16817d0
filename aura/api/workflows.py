"""/api/v1/workflows: struggle detection and code audit. Views parse, call the service, respond."""

from __future__ import annotations

import functools

from flask import current_app, request, url_for
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from aura.api.concurrency import per_user_concurrency
from aura.api.errors import error_response
from aura.api.jwt import current_user_id
from aura.api.openapi import BEARER, document_errors
from aura.api.rate_limits import workflow_limit
from aura.api.schemas import (
    AuditInputSchema,
    AuditResultSchema,
    RunListQuerySchema,
    RunListSchema,
    StruggleInputSchema,
    StruggleResultSchema,
)
from aura.errors import ServiceUnavailable
from aura.services import workflow_runs
from aura.workflows import AuditLimitError, WorkflowInputError

blp = Blueprint(
    "workflows",
    __name__,
    url_prefix="/api/v1/workflows",
    description="LangGraph workflows: struggle detection and code audit",
)

_SCHEMAS = {"struggle": StruggleResultSchema, "audit": AuditResultSchema}
_RESULT_ENDPOINTS = {"struggle": "workflows.struggle_result", "audit": "workflows.audit_result"}
LOCATION = {"Location": {"description": "Where the stored result can be read again", "schema": {"type": "string"}}}


def _errors(*codes: int):
    return document_errors(blp, *codes)


def _result_url(workflow_type: str, run_id: str) -> str:
    return url_for(_RESULT_ENDPOINTS[workflow_type], run_id=run_id)


def _limit_exceeded(exc: AuditLimitError):
    status = 413 if exc.limit in ("max_file_bytes", "max_total_bytes") else 422
    where = f" ({exc.path})" if exc.path else ""
    return error_response(
        status, "audit_limit_exceeded", f"{exc.limit}: {exc.actual} is over the limit of {exc.maximum}{where}."
    )


def files_counted_first(view):
    """Refuse an audit of too many files before its entries are validated one by one: 30,000 tiny
    file objects (1 MiB) cost 0.5-0.9 s of CPU to validate and were then refused by the count."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        document = request.get_json(silent=True)  # parsed once already, by the body rules
        files = document.get("files") if isinstance(document, dict) else None
        maximum = current_app.config["AURA"].audit_max_files
        if isinstance(files, list) and len(files) > maximum:
            return _limit_exceeded(AuditLimitError("max_files", len(files), maximum))
        return view(*args, **kwargs)

    return wrapper


def _run(workflow_type: str, body: dict):
    try:
        result = workflow_runs.execute(
            workflow_type, body, current_user_id(), current_app.config["AURA"], len(request.get_data(cache=True))
        )
        return result, 201, {"Location": _result_url(workflow_type, result["id"])}
    except WorkflowInputError as exc:
        return error_response(422, "validation_error", exc.message, {exc.field: [exc.message]})
    except AuditLimitError as exc:
        return _limit_exceeded(exc)
    except workflow_runs.WorkflowRunFailed as exc:
        return error_response(
            500, "execution_error", f"The workflow failed; quote run id {exc.run_id} when reporting it."
        )


@blp.route("/struggle", methods=["POST"])
@jwt_required()
@per_user_concurrency
@workflow_limit
@blp.arguments(StruggleInputSchema)
@blp.response(201, StruggleResultSchema, headers=LOCATION)
@blp.doc(security=BEARER)
@_errors(400, 401, 413, 415, 422, 429, 500, 503)
def struggle(body):
    """Decide whether a learner is struggling on an exercise, and recommend lessons if so."""
    return _run("struggle", body)


@blp.route("/audit", methods=["POST"])
@jwt_required()
@per_user_concurrency
@workflow_limit
@files_counted_first
@blp.arguments(AuditInputSchema)
@blp.response(201, AuditResultSchema, headers=LOCATION)
@blp.doc(security=BEARER)
@_errors(400, 401, 413, 415, 422, 429, 500, 503)
def audit(body):
    """Audit Python files for prints, debugger calls, long functions, secrets, bare excepts, eval/exec."""
    return _run("audit", body)


@blp.route("", methods=["GET"])
@jwt_required()
@workflow_limit
@blp.arguments(RunListQuerySchema, location="query")
@blp.response(200, RunListSchema)
@blp.doc(security=BEARER)
@_errors(401, 422, 429, 503)
def list_runs(query):
    """The caller's runs, newest first, a page at a time (`next_cursor`); filter by type and status."""
    try:
        user_id = current_user_id()
        if user_id is None:
            raise ServiceUnavailable("database")
        page = workflow_runs.list_runs(
            user_id,
            limit=query["limit"],
            cursor=query.get("cursor"),
            workflow_type=query.get("type"),
            status=query.get("status"),
        )
    except workflow_runs.InvalidCursor:
        message = "The cursor is not one this API handed out; start again without it."
        return error_response(422, "validation_error", message, {"cursor": [message]})
    runs = [{**run, "url": _result_url(run["type"], run["id"])} for run in page.runs]
    return {"runs": runs, "next_cursor": page.next_cursor}


def _stored(workflow_type: str, run_id: str):
    result = workflow_runs.load(workflow_type, run_id, current_user_id())
    if result is None:
        return error_response(404, "not_found", f"No {workflow_type} result with this id.")
    return result


@blp.route("/struggle/<string:run_id>", methods=["GET"])
@jwt_required()
@workflow_limit
@blp.response(200, StruggleResultSchema)
@blp.doc(security=BEARER)
@_errors(401, 404, 429, 503)
def struggle_result(run_id):
    """A stored struggle result; only its owner can read it."""
    return _stored("struggle", run_id)


@blp.route("/audit/<string:run_id>", methods=["GET"])
@jwt_required()
@workflow_limit
@blp.response(200, AuditResultSchema)
@blp.doc(security=BEARER)
@_errors(401, 404, 429, 503)
def audit_result(run_id):
    """A stored audit result; only its owner can read it."""
    return _stored("audit", run_id)
