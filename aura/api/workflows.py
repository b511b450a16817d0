"""/api/v1/workflows: the routes of every served workflow (`aura.services.workflows`), and the
listing of a user's runs. Views parse, call the service, respond; errors are raised and rendered
by `aura.api.errors`."""

from __future__ import annotations

import functools
from typing import Any

from flask import current_app, request, url_for
from flask_jwt_extended import jwt_required
from flask_smorest import Blueprint

from aura.api.concurrency import per_user_concurrency
from aura.api.jwt import current_user_id
from aura.api.openapi import BEARER, ApiBlueprint, Decorator, View, document_errors
from aura.api.rate_limits import workflow_limit
from aura.api.schemas import run_listing_schemas
from aura.errors import ServiceUnavailable
from aura.services import workflow_runs
from aura.services.workflows import Registry, Workflow

LOCATION = {"Location": {"description": "Where the stored result can be read again", "schema": {"type": "string"}}}


def blueprint(workflows: Registry) -> ApiBlueprint:
    """The blueprint serving `workflows`: POST /<name>, GET /<name>/<run_id> each, and the listing."""
    blp: ApiBlueprint = Blueprint(
        "workflows",
        __name__,
        url_prefix="/api/v1/workflows",
        description="LangGraph workflows: " + ", ".join(workflows),
    )
    for workflow in workflows.values():
        _add_workflow_routes(blp, workflows, workflow)
    _add_listing_route(blp, workflows)
    return blp


def _stacked(view: View, *decorators: Decorator) -> View:
    """`view` under `decorators`, listed outermost first as they would be stacked with @."""
    for decorate in reversed(decorators):
        view = decorate(view)
    return view


def _named(view: View, name: str, doc: str) -> View:
    """The view as Flask (its endpoint), Flask-Limiter (its limits) and the OpenAPI document
    (its summary) know it."""
    view.__name__ = view.__qualname__ = name
    view.__doc__ = doc
    return view


def _result_url(workflow_type: str, run_id: str) -> str:
    return url_for(f"workflows.{workflow_type}_result", run_id=run_id)


def _checked_first(workflow: Workflow) -> Decorator:
    """Decorator: the workflow's cheap checks of the raw body, before the schema validates it."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _precheck(workflow)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _precheck(workflow: Workflow) -> None:
    """The body of `_checked_first`'s wrapper (a plain function: mutmut 3 does not mutate
    decorated ones)."""
    # Parsed once already, by the body rules.
    workflow.precheck(request.get_json(silent=True), current_app.config["AURA"])


# The views' bodies are module functions rather than code nested in the functions that build
# the routes: mutmut 3 would count a mutant of a nested function as one of the builder, which
# runs when any test makes an app, and run every such test against it.


def _run(workflows: Registry, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    result = workflow_runs.execute(
        name,
        body,
        current_user_id(),
        current_app.config["AURA"],
        len(request.get_data(cache=True)),
        workflows=workflows,
    )
    return result, 201, {"Location": _result_url(name, result["id"])}


def _stored(name: str, run_id: str) -> dict[str, Any]:
    return workflow_runs.load(name, run_id, current_user_id())


def _list_runs(query: dict[str, Any]) -> dict[str, Any]:
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
    runs = [{**run, "url": _result_url(run["type"], run["id"])} for run in page.runs]
    return {"runs": runs, "next_cursor": page.next_cursor}


def _add_workflow_routes(blp: ApiBlueprint, workflows: Registry, workflow: Workflow) -> None:
    name = workflow.name

    def run(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        return _run(workflows, name, body)

    def stored(run_id: str) -> dict[str, Any]:
        return _stored(name, run_id)

    blp.route(f"/{name}", methods=["POST"])(
        _stacked(
            _named(run, name, workflow.summary),
            jwt_required(),
            per_user_concurrency,
            workflow_limit,
            _checked_first(workflow),
            blp.arguments(workflow.input_schema),
            blp.response(201, workflow.result_schema, headers=LOCATION),
            blp.doc(security=BEARER),
            document_errors(blp, 400, 401, 413, 415, 422, 429, 500, 503),
        )
    )
    blp.route(f"/{name}/<string:run_id>", methods=["GET"])(
        _stacked(
            _named(stored, f"{name}_result", f"A stored {name} result; only its owner can read it."),
            jwt_required(),
            workflow_limit,
            blp.response(200, workflow.result_schema),
            blp.doc(security=BEARER),
            document_errors(blp, 401, 404, 429, 503),
        )
    )


def _add_listing_route(blp: ApiBlueprint, workflows: Registry) -> None:
    query_schema, list_schema = run_listing_schemas(workflows)

    def list_runs(query: dict[str, Any]) -> dict[str, Any]:
        return _list_runs(query)

    blp.route("", methods=["GET"])(
        _stacked(
            _named(
                list_runs,
                "list_runs",
                "The caller's runs, newest first, a page at a time (`next_cursor`); filter by type and status.",
            ),
            jwt_required(),
            workflow_limit,
            blp.arguments(query_schema, location="query"),
            blp.response(200, list_schema),
            blp.doc(security=BEARER),
            document_errors(blp, 401, 422, 429, 503),
        )
    )
