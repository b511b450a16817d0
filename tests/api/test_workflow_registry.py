"""A workflow is one module and one registry entry: a third one, declared in the test suite
only (tests/support/word_count.py), is served, listed, documented and counted."""

from __future__ import annotations

import pytest

from aura.services.workflows import Registry
from aura.services.workflows.registry import WORKFLOWS
from tests.support.auth import AuthActions
from tests.support.metrics import delta, registry_samples
from tests.support.word_count import WORD_COUNT


@pytest.fixture
def client(make_app):
    return make_app(workflows=WORKFLOWS.plus(WORD_COUNT)).test_client()


@pytest.fixture
def learner(client):
    return AuthActions(client).signed_in()


def _count(client, learner, text):
    return client.post("/api/v1/workflows/word_count", json={"text": text}, headers=learner.bearer())


def test_a_third_workflow_is_served_and_can_be_read_again(client, learner):
    response = _count(client, learner, "one two three four")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["words"], body["length"]) == (4, "long")
    assert response.headers["Location"] == f"/api/v1/workflows/word_count/{body['id']}"
    again = client.get(response.headers["Location"], headers=learner.bearer())
    assert again.status_code == 200 and again.get_json() == body


def test_its_input_is_validated_by_its_schema(client, learner):
    response = client.post("/api/v1/workflows/word_count", json={"txt": "a"}, headers=learner.bearer())
    assert response.status_code == 422
    assert set(response.get_json()["details"]) == {"text", "txt"}


def test_its_runs_are_listed_and_filtered_by_its_name_and_verdicts(client, learner):
    short = _count(client, learner, "hello").get_json()
    client.post(
        "/api/v1/workflows/struggle",
        json={"exercise_id": "e", "edit_frequency": 1, "error_count": 0},
        headers=learner.bearer(),
    )
    listing = client.get("/api/v1/workflows?type=word_count", headers=learner.bearer()).get_json()
    assert [(run["id"], run["type"], run["status"]) for run in listing["runs"]] == [
        (short["id"], "word_count", "short")
    ]
    assert listing["runs"][0]["url"] == f"/api/v1/workflows/word_count/{short['id']}"
    by_status = client.get("/api/v1/workflows?status=short", headers=learner.bearer()).get_json()
    assert [run["id"] for run in by_status["runs"]] == [short["id"]]


def test_it_is_documented_in_the_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    post = doc["paths"]["/api/v1/workflows/word_count"]["post"]
    assert post["summary"] == "Count the words of a text."
    assert "201" in post["responses"] and "Location" in post["responses"]["201"]["headers"]
    assert "/api/v1/workflows/word_count/{run_id}" in doc["paths"]
    assert {"WordCountInput", "WordCountResult"} <= set(doc["components"]["schemas"])
    listing = doc["paths"]["/api/v1/workflows"]["get"]["parameters"]
    enums = {p["name"]: p["schema"].get("enum") for p in listing}
    assert enums["type"] == ["struggle", "audit", "word_count"]
    assert enums["status"][-2:] == ["short", "long"]


def test_it_is_counted_in_the_workflow_metrics_from_zero(client, learner):
    samples = registry_samples()
    labels = (("status", "success"), ("workflow_type", "word_count"))
    assert ("workflow_executions_total", labels) in samples  # a zero series from the start
    assert ("workflow_failures_total", (("error_type", "execution_error"), ("workflow_type", "word_count"))) in samples
    assert _count(client, learner, "a b").status_code == 201
    moved = delta(samples, registry_samples())
    assert moved[("workflow_executions_total", labels)] == 1
    assert moved[("workflow_duration_seconds_count", (("workflow_type", "word_count"),))] == 1


def test_two_workflows_cannot_share_a_name():
    with pytest.raises(ValueError, match="two workflows are named 'audit'"):
        Registry(*WORKFLOWS.values(), WORKFLOWS["audit"])
