"""GET /api/v1/workflows: the caller's runs, newest first, a page at a time, filtered."""

from __future__ import annotations

import pytest

from tests.support.auth import AuthActions

CALM = {"exercise_id": "loops-1", "edit_frequency": 1, "error_count": 0}
STRUGGLING = {"exercise_id": "loops-1", "edit_frequency": 25, "error_count": 14}
CLEAN = {"files": [{"path": "ok.py", "content": "def f(x):\n    return x * 2\n"}]}
FAILING = {"files": [{"path": "a.py", "content": "breakpoint()\n"}]}


@pytest.fixture
def learner(client):
    return AuthActions(client).signed_in()


def _run(client, who, kind, body) -> dict:
    response = client.post(f"/api/v1/workflows/{kind}", json=body, headers=who.bearer())
    assert response.status_code == 201
    return response.get_json()


def _list(client, who, **query):
    return client.get("/api/v1/workflows", query_string=query, headers=who.bearer())


def _all_pages(client, who, **query) -> list[dict]:
    runs, cursor = [], None
    for _ in range(20):  # bounded: 20 pages is far more than any test stores
        page = _list(client, who, **query, **({"cursor": cursor} if cursor else {})).get_json()
        runs += page["runs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return runs
    raise AssertionError("pagination did not end")


def test_runs_are_listed_newest_first_in_pages(client, learner):
    made = [
        _run(client, learner, kind, body)
        for kind, body in [
            ("struggle", CALM),
            ("audit", CLEAN),
            ("struggle", STRUGGLING),
            ("audit", FAILING),
            ("audit", CLEAN),
        ]
    ]
    first = _list(client, learner, limit=2)
    assert first.status_code == 200
    page = first.get_json()
    assert len(page["runs"]) == 2 and page["next_cursor"]
    runs = _all_pages(client, learner, limit=2)
    assert [r["id"] for r in runs] == [m["id"] for m in reversed(made)]
    assert [r["created_at"] for r in runs] == sorted((r["created_at"] for r in runs), reverse=True)
    for run, stored in zip(runs, reversed(made), strict=True):
        assert run["created_at"] == stored["created_at"]
        assert client.get(run["url"], headers=learner.bearer()).get_json() == stored
    # A run stored while paging does not shift the pages already handed out.
    cursor = page["next_cursor"]
    _run(client, learner, "audit", CLEAN)
    assert [r["id"] for r in _list(client, learner, limit=2, cursor=cursor).get_json()["runs"]] == [
        made[2]["id"],
        made[1]["id"],
    ]


def test_filters_by_type_and_status(client, learner):
    calm = _run(client, learner, "struggle", CALM)
    clean = _run(client, learner, "audit", CLEAN)
    failing = _run(client, learner, "audit", FAILING)
    assert [r["id"] for r in _all_pages(client, learner, type="audit")] == [failing["id"], clean["id"]]
    assert [r["id"] for r in _all_pages(client, learner, type="struggle")] == [calm["id"]]
    assert [(r["id"], r["status"]) for r in _all_pages(client, learner, status="pass")] == [(clean["id"], "pass")]
    assert _all_pages(client, learner, type="struggle", status="fail") == []
    assert {r["type"] for r in _all_pages(client, learner)} == {"struggle", "audit"}


def test_each_caller_sees_only_their_own_runs(client, learner):
    mine = _run(client, learner, "audit", CLEAN)
    other = AuthActions(client, "other@example.com").signed_in()
    theirs = _run(client, other, "struggle", CALM)
    assert [r["id"] for r in _all_pages(client, learner)] == [mine["id"]]
    assert [r["id"] for r in _all_pages(client, other)] == [theirs["id"]]
    # Another user's cursor leads nowhere into my runs either: it only positions in the caller's own.
    page = _list(client, other, limit=1).get_json()
    assert page["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        {"limit": 0},
        {"limit": 101},
        {"type": "bogus"},
        {"status": "meh"},
        {"cursor": "not-a-cursor"},
        {"cursor": "bm8tYmFy"},
        {"cursor": "0"},
        {"cursor": "0000000000000000.12345678-1234-1234-1234-12345678901"},  # one character short
        {"cursor": "0000000000000000.12345678-1234-1234-1234-123456789012x"},
        {"cursor": "0000000000000000.12345678-1234-1234-1234-12345678901G"},
    ],
)
def test_bad_queries_are_422_in_the_error_shape(client, learner, query):
    response = _list(client, learner, **query)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_error" and set(body["details"]) == set(query)


def test_listing_needs_a_token(client):
    response = client.get("/api/v1/workflows")
    assert response.status_code == 401 and response.get_json()["error"] == "missing_token"


def test_the_listing_reads_only_the_columns_it_lists(app, client, learner):
    """100 large runs cost 311-350 ms to list when every result was read; only four columns are."""
    from sqlalchemy import event

    from aura.extensions import db

    _run(client, learner, "audit", FAILING)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", seen)
        try:
            assert _list(client, learner).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", seen)
    listing = [s for s in statements if "FROM workflow_runs" in s]
    assert len(listing) == 1, statements
    assert "workflow_runs.result" not in listing[0], listing[0]


def test_every_cursor_the_document_allows_is_a_position(client, learner):
    """The document's pattern describes exactly what is accepted (Schemathesis ST202): any cursor
    of that shape is a position - before everything, after everything, or between runs."""
    import re

    made = [_run(client, learner, "audit", CLEAN) for _ in range(3)]
    document = client.get("/api/v1/openapi.json").get_json()
    (cursor_rules,) = [
        p["schema"] for p in document["paths"]["/api/v1/workflows"]["get"]["parameters"] if p["name"] == "cursor"
    ]
    first = _list(client, learner, limit=1).get_json()
    handed_out = first["next_cursor"]
    earliest = "0" * 16 + "." + "0" * 8 + "-0000-0000-0000-" + "0" * 12
    latest = "9" * 16 + ".ffffffff-ffff-ffff-ffff-ffffffffffff"
    for cursor in (handed_out, earliest, latest):
        assert re.search(cursor_rules["pattern"], cursor)
        assert cursor_rules["minLength"] <= len(cursor) <= cursor_rules["maxLength"]
    assert _list(client, learner, cursor=earliest).get_json() == {"runs": [], "next_cursor": None}
    assert [r["id"] for r in _list(client, learner, cursor=latest).get_json()["runs"]] == [
        m["id"] for m in reversed(made)
    ]
    assert [r["id"] for r in _list(client, learner, cursor=handed_out).get_json()["runs"]] == [
        made[1]["id"],
        made[0]["id"],
    ]
    # "0" is outside the document's rules, and refused by them.
    assert not (cursor_rules["minLength"] <= 1 and re.search(cursor_rules["pattern"], "0"))
