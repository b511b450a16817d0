"""The published OpenAPI document and the validation agree, over real Gunicorn.

Schemathesis found two disagreements (ST202): a file path of only whitespace-like characters was
refused although the document allows any non-empty string, and `edit_frequency: "5"` (a string)
was accepted where the document says `number`. /readyz, which is public, named exception classes.
"""

from __future__ import annotations

import re

import pytest

from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

STRUGGLE = {"exercise_id": "loops-1", "edit_frequency": 1.5, "error_count": 2}


@pytest.fixture(scope="module")
def learner(hardened) -> AuthActions:
    return AuthActions(hardened.client()).signed_in()


@pytest.fixture(scope="module")
def document(hardened) -> dict:
    return hardened.client().get("/api/v1/openapi.json").json()


@pytest.mark.parametrize("path", [" ", "\t", "\u3000", "\x1c\x1d", "\u2028", "\u00a0\u00a0"])
def test_any_non_empty_path_the_document_allows_is_accepted(learner, document, path):
    rules = document["components"]["schemas"]["AuditFile"]["properties"]["path"]
    assert rules["minLength"] == 1 and "pattern" not in rules
    response = learner.client.post(
        "/api/v1/workflows/audit",
        headers=bearer(learner.access),
        json={"files": [{"path": path, "content": "x = 1\n"}]},
    )
    assert response.status_code == 201, response.text[:300]
    assert response.json()["files_skipped"] == 1  # not a .py name: listed, not parsed


@pytest.mark.parametrize(
    "field, bad",
    [
        ("edit_frequency", "5"),
        ("edit_frequency", True),
        ("edit_frequency", "1e3"),
        ("error_count", "2"),
        ("error_count", True),
        ("error_count", 2.5),
        ("window_seconds", "300"),
        ("window_seconds", False),
    ],
)
def test_numbers_are_numbers(learner, document, field, bad):
    kind = document["components"]["schemas"]["StruggleInput"]["properties"][field]["type"]
    assert kind in ("number", "integer")
    response = learner.client.post(
        "/api/v1/workflows/struggle", headers=bearer(learner.access), json={**STRUGGLE, field: bad}
    )
    body = assert_error(response, 422, "validation_error")
    assert set(body["details"]) == {field}


def test_the_documented_path_limit_is_the_enforced_one(learner, document):
    limit = document["components"]["schemas"]["AuditFile"]["properties"]["path"]["maxLength"]
    assert limit == 255
    ok = learner.client.post(
        "/api/v1/workflows/audit",
        headers=bearer(learner.access),
        json={"files": [{"path": "p" * (limit - 3) + ".py", "content": "x = 1\n"}]},
    )
    assert ok.status_code == 201, ok.text[:300]
    too_long = learner.client.post(
        "/api/v1/workflows/audit",
        headers=bearer(learner.access),
        json={"files": [{"path": "p" * limit + ".py", "content": "x = 1\n"}]},
    )
    assert_error(too_long, 422, "validation_error")


def test_readyz_names_no_exception_class(hardened):
    body = hardened.client().get("/readyz").json()
    assert all(state in ("ok", "unavailable") or state.startswith("not used") for state in body["checks"].values()), (
        body
    )


@pytest.mark.parametrize("blank", [" ", "\x1f", "\x1c\x1d", "\u3000", "\u2028"])
def test_a_blank_exercise_id_is_refused_by_the_document_too(learner, document, blank):
    """Schemathesis found `exercise_id: "\\x1f"` (a character str.strip() removes) allowed by the
    document and refused by the workflow; the document now publishes the rule it is held to."""
    rules = document["components"]["schemas"]["StruggleInput"]["properties"]["exercise_id"]
    assert re.search(rules["pattern"], blank) is None and re.search(rules["pattern"], " loops-1 ")
    response = learner.client.post(
        "/api/v1/workflows/struggle", headers=bearer(learner.access), json={**STRUGGLE, "exercise_id": blank}
    )
    assert_error(response, 422, "validation_error")
