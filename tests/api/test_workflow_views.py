"""The workflow views (`aura.api.workflows`) in process, on workflows declared in the test suite
(word counts: no audit rules run here): the precheck of the raw body, what a run answers, reading
a run again, the listing's pages, filters and bounds, and the database down."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from aura.errors import AuraError, ErrorCode
from aura.services.workflow_runs import CURSOR_LENGTH, CURSOR_PATTERN, result_budget
from aura.services.workflows import Registry
from aura.services.workflows.registry import WORKFLOWS
from tests.support.auth import AuthActions
from tests.support.errors import assert_error
from tests.support.word_count import WORD_COUNT

BROKEN_DATABASE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
SEEN: list = []  # what the precheck of `checked` was given (emptied by the fixture)


def _refuse_empty(document, settings) -> None:
    SEEN.append((document, settings))
    if isinstance(document, dict) and document.get("text") == "":
        raise AuraError(ErrorCode.VALIDATION_ERROR, "empty text", details={"text": ["empty"]})


CHECKED = dataclasses.replace(WORD_COUNT, name="checked", summary="Count words, empty texts refused first.")
CHECKED = dataclasses.replace(CHECKED, precheck=_refuse_empty)
BUDGETS: list = []  # the result budgets `budgeted` was given (emptied by the fixture)


def _recording_budget(result: dict, budget: int) -> dict:
    BUDGETS.append(budget)
    return result


BUDGETED = dataclasses.replace(WORD_COUNT, name="budgeted", within_budget=_recording_budget)
SERVED: Registry = WORKFLOWS.plus(WORD_COUNT, CHECKED, BUDGETED)


@pytest.fixture
def app(make_app):
    SEEN.clear()
    BUDGETS.clear()
    yield make_app(workflows=SERVED)
    SEEN.clear()
    BUDGETS.clear()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def learner(client):
    return AuthActions(client).signed_in()


def _count(client, learner, text, kind="word_count"):
    return client.post(f"/api/v1/workflows/{kind}", json={"text": text}, headers=learner.bearer())


def _list(client, learner, **query):
    return client.get("/api/v1/workflows", query_string=query, headers=learner.bearer())


def test_a_run_answers_201_with_its_result_and_where_to_read_it(client, learner):
    response = _count(client, learner, "one two")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert set(body) == {"id", "words", "length", "created_at"} and (body["words"], body["length"]) == (2, "short")
    assert response.headers["Location"] == f"/api/v1/workflows/word_count/{body['id']}"
    again = client.get(response.headers["Location"], headers=learner.bearer())
    assert again.status_code == 200 and again.get_json() == body


def test_the_result_budget_follows_the_bytes_of_the_body_as_sent(client, learner):
    raw = '{"text": "one two"}' + " " * 1000  # the same document as json={"text": "one two"}, 1,000 bytes more
    response = client.post(
        "/api/v1/workflows/budgeted", data=raw, content_type="application/json", headers=learner.bearer()
    )
    assert response.status_code == 201, response.get_json()
    assert BUDGETS == [result_budget(len(raw.encode()))]


def test_the_precheck_sees_the_parsed_body_and_the_settings_before_the_schema(app, client, learner):
    refused = _count(client, learner, "", kind="checked")
    assert_error(refused, 422, "validation_error")
    assert refused.get_json()["details"] == {"text": ["empty"]}
    assert SEEN == [({"text": ""}, app.config["AURA"])]
    assert _list(client, learner).get_json()["runs"] == []  # refused before it ran
    invalid = client.post("/api/v1/workflows/checked", json={"txt": 1}, headers=learner.bearer())
    assert_error(invalid, 422, "validation_error")  # the schema's refusal, after the precheck
    assert SEEN[-1][0] == {"txt": 1}
    assert _count(client, learner, "a b c", kind="checked").status_code == 201


def test_the_precheck_of_a_post_without_a_body_sees_none(client, learner):
    response = client.post("/api/v1/workflows/checked", headers=learner.bearer())
    assert_error(response, 422, "validation_error")
    assert [document for document, _ in SEEN] == [None]


def test_a_run_is_read_again_by_its_owner_only_and_under_its_own_type(client, learner):
    run = _count(client, learner, "x").get_json()
    other = AuthActions(client).signed_in()
    stranger = client.get(f"/api/v1/workflows/word_count/{run['id']}", headers=other.bearer())
    assert_error(stranger, 404, "not_found")
    wrong_type = client.get(f"/api/v1/workflows/checked/{run['id']}", headers=learner.bearer())
    assert_error(wrong_type, 404, "not_found")


def test_the_listing_pages_newest_first_with_urls_and_a_cursor(client, learner):
    ids = [_count(client, learner, "w " * n).get_json()["id"] for n in range(1, 4)]
    first = _list(client, learner, limit=2).get_json()
    assert [run["id"] for run in first["runs"]] == ids[::-1][:2]
    assert first["runs"][0] == {
        "id": ids[2],
        "type": "word_count",
        "status": "short",
        "created_at": first["runs"][0]["created_at"],
        "url": f"/api/v1/workflows/word_count/{ids[2]}",
    }
    second = _list(client, learner, limit=2, cursor=first["next_cursor"]).get_json()
    assert [run["id"] for run in second["runs"]] == [ids[0]] and second["next_cursor"] is None


def test_the_listing_filters_by_type_and_status(client, learner):
    short = _count(client, learner, "one").get_json()["id"]
    long = _count(client, learner, "one two three four").get_json()["id"]
    checked = _count(client, learner, "one", kind="checked").get_json()["id"]
    assert [r["id"] for r in _list(client, learner, type="word_count").get_json()["runs"]] == [long, short]
    assert [r["id"] for r in _list(client, learner, status="short").get_json()["runs"]] == [checked, short]
    both = _list(client, learner, type="word_count", status="long").get_json()["runs"]
    assert [r["id"] for r in both] == [long]


def test_the_listing_gives_20_by_default_and_takes_1_to_100(client, learner):
    for n in range(21):
        assert _count(client, learner, "w").status_code == 201, n
    assert len(_list(client, learner).get_json()["runs"]) == 20
    assert len(_list(client, learner, limit=1).get_json()["runs"]) == 1
    assert len(_list(client, learner, limit=100).get_json()["runs"]) == 21
    for bad in (0, 101):
        assert_error(_list(client, learner, limit=bad), 422, "validation_error")


@pytest.mark.parametrize(
    "query, field",
    [
        ({"type": "nothing"}, "type"),
        ({"status": "nothing"}, "status"),
        ({"cursor": "0" * 52}, "cursor"),
        ({"cursor": "0" * 54}, "cursor"),
        ({"cursor": "x" * 53}, "cursor"),
    ],
)
def test_bad_listing_queries_name_the_field(client, learner, query, field):
    body = assert_error(_list(client, learner, **query), 422, "validation_error")
    assert list(body["details"]) == [field]


def test_every_served_type_and_verdict_is_a_filter(client, learner):
    for kind in SERVED:
        assert _list(client, learner, type=kind).status_code == 200
    for verdict in SERVED.verdicts:
        assert _list(client, learner, status=verdict).status_code == 200


def test_the_database_down_is_503_for_runs_and_listings(make_app):
    good = make_app(workflows=SERVED)
    learner = AuthActions(good.test_client()).signed_in()
    assert learner.me().status_code == 200  # the revocations are loaded into Redis
    broken = make_app(workflows=SERVED, database_url=BROKEN_DATABASE).test_client()
    for response in (
        broken.post("/api/v1/workflows/word_count", json={"text": "a"}, headers=learner.bearer()),
        broken.get("/api/v1/workflows", headers=learner.bearer()),
        broken.get(f"/api/v1/workflows/word_count/{uuid.uuid4()}", headers=learner.bearer()),
    ):
        body = assert_error(response, 503, "service_unavailable")
        assert body["message"] == "database is unavailable; try again shortly"


def _codes(operation: dict) -> set[str]:
    return set(operation["responses"]) - {"default"}


def test_the_document_describes_each_workflow_route(client):
    document = client.get("/api/v1/openapi.json").get_json()
    paths = document["paths"]
    run = paths["/api/v1/workflows/checked"]["post"]
    assert _codes(run) == {"201", "400", "401", "413", "415", "422", "429", "500", "503"}
    assert run["summary"] == "Count words, empty texts refused first."
    assert run["security"] == [{"bearerAuth": []}]
    assert run["responses"]["201"]["headers"] == {
        "Location": {"description": "Where the stored result can be read again", "schema": {"type": "string"}}
    }
    assert run["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WordCountInput"
    }
    assert run["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WordCountResult"
    }
    stored = paths["/api/v1/workflows/checked/{run_id}"]["get"]
    assert stored["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/WordCountResult"
    }
    assert _codes(stored) == {"200", "401", "404", "429", "503"}
    assert stored["summary"] == "A stored checked result; only its owner can read it."
    assert stored["security"] == [{"bearerAuth": []}]
    listing = paths["/api/v1/workflows"]["get"]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunList"
    }
    assert _codes(listing) == {"200", "401", "422", "429", "503"}
    assert listing["summary"] == (
        "The caller's runs, newest first, a page at a time (`next_cursor`); filter by type and status."
    )
    assert listing["security"] == [{"bearerAuth": []}]
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for operation in (run, stored, listing):  # each error as Aura's own, not flask-smorest's default 422
        assert all(operation["responses"][code] == error for code in _codes(operation) if code[0] in "45")
    (tag,) = [tag for tag in document["tags"] if tag["name"] == "workflows"]
    assert tag["description"] == "LangGraph workflows: struggle, audit, word_count, checked, budgeted"
    summary = document["components"]["schemas"]["RunSummary"]["properties"]
    assert summary["status"]["description"] == (
        "The verdict: struggling/not_struggling or pass/fail/remediation_required"
        " or short/long or short/long or short/long"
    )
    assert summary["type"]["enum"] == list(SERVED)


def test_the_document_describes_the_listing_query_and_its_answer(client):
    """The listing's query parameters and its answer's schemas as documented: each field's name,
    type, bounds, default, whether required or nullable, and its description."""
    document = client.get("/api/v1/openapi.json").get_json()
    parameters = document["paths"]["/api/v1/workflows"]["get"]["parameters"]
    assert parameters == [
        {"in": "query", "name": "type", "schema": {"type": "string", "enum": list(SERVED)}, "required": False},
        {
            "in": "query",
            "name": "status",
            "schema": {"type": "string", "enum": list(SERVED.verdicts)},
            "required": False,
        },
        {
            "in": "query",
            "name": "limit",
            "schema": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
            "required": False,
        },
        {
            "in": "query",
            "name": "cursor",
            "description": "next_cursor of the previous page (a position: any string of this shape is one)",
            "schema": {
                "type": "string",
                "minLength": CURSOR_LENGTH,
                "maxLength": CURSOR_LENGTH,
                "pattern": CURSOR_PATTERN,
            },
            "required": False,
        },
    ]
    schemas = document["components"]["schemas"]
    assert schemas["RunSummary"] == {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(SERVED)},
            "status": {
                "type": "string",
                "description": "The verdict: struggling/not_struggling or pass/fail/remediation_required"
                " or short/long or short/long or short/long",
                "nullable": True,
            },
            "created_at": {"type": "string", "format": "date-time"},
            "url": {"type": "string"},
        },
        "required": ["created_at", "id", "status", "type", "url"],
        "additionalProperties": False,
    }
    assert schemas["RunList"] == {
        "type": "object",
        "properties": {
            "runs": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}},
            "next_cursor": {
                "type": "string",
                "description": "Pass as `cursor` for the next page; null at the end",
                "nullable": True,
            },
        },
        "required": ["next_cursor", "runs"],
        "additionalProperties": False,
    }


def test_each_workflow_route_counts_against_the_users_workflow_limit(make_app):
    app = make_app(
        workflows=SERVED, rate_limit_enabled=True, rate_limit_workflows="1 per hour", rate_limit_default="1000 per hour"
    )
    client = app.test_client()
    learner = AuthActions(client).signed_in()
    first = _count(client, learner, "a")
    assert first.status_code == 201
    assert_error(_count(client, learner, "b"), 429, "rate_limited")
    stored = first.headers["Location"]
    assert client.get(stored, headers=learner.bearer()).status_code == 200
    assert_error(client.get(stored, headers=learner.bearer()), 429, "rate_limited")
    assert _list(client, learner).status_code == 200
    assert_error(_list(client, learner), 429, "rate_limited")


def test_a_run_is_capped_by_the_users_requests_in_progress_and_reading_is_not(app, client, learner):
    from aura.api.concurrency import KEY_PREFIX
    from aura.api.context import services
    from aura.extensions import db
    from aura.models import User

    with app.app_context():
        row = db.session.execute(db.select(User.id).filter_by(public_id=learner.me().get_json()["id"])).scalar_one()
    stored = _count(client, learner, "a").headers["Location"]
    now = time.time()
    services(app).redis.auth.zadd(f"{KEY_PREFIX}{row}", {"held-1": now, "held-2": now})
    assert_error(_count(client, learner, "b"), 429, "too_many_concurrent_requests")
    assert client.get(stored, headers=learner.bearer()).status_code == 200
    assert len(_list(client, learner).get_json()["runs"]) == 1


def test_the_routes_are_named_for_flask(app):
    from flask import url_for

    with app.test_request_context():
        assert url_for("workflows.list_runs") == "/api/v1/workflows"
        assert url_for("workflows.word_count") == "/api/v1/workflows/word_count"
        assert url_for("workflows.word_count_result", run_id="r") == "/api/v1/workflows/word_count/r"
