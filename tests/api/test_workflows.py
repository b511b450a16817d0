"""The workflow routes: authenticated, owned, validated, and counted exactly."""

from __future__ import annotations

import pytest

from tests.support.auth import AuthActions
from tests.support.metrics import delta, registry_samples

STRUGGLING = {
    "exercise_id": "loops-1",
    "edit_frequency": 25,
    "error_count": 14,
    "error_types": ["NameError", "NameError", "TypeError"],
    "topic": "functions",
}
CALM = {"exercise_id": "loops-1", "edit_frequency": 1, "error_count": 0}
FAILING_AUDIT = {
    "files": [
        {"path": "a.py", "content": "print('x')\nbreakpoint()\npassword = 'hunter2hunter2'\n"},
        {"path": "notes.txt", "content": "print('not python')"},
    ]
}
WARNING_AUDIT = {"files": [{"path": "w.py", "content": "try:\n    pass\nexcept:\n    print(1)\n"}]}
CLEAN_AUDIT = {"files": [{"path": "ok.py", "content": "def f(x):\n    return x * 2\n"}]}


@pytest.fixture
def learner(client):
    return AuthActions(client).signed_in()


def _post(client, learner, kind, body):
    return client.post(f"/api/v1/workflows/{kind}", json=body, headers=learner.bearer())


def _moved(before, after, prefixes=("workflow_", "struggle_", "lesson_", "audit_")):
    return {
        (name, labels): diff
        for (name, labels), diff in delta(before, after).items()
        if name.startswith(prefixes) and not name.endswith(("_sum", "_bucket"))
    }


def test_struggle_run_is_stored_and_counted(client, learner):
    before = registry_samples()
    response = _post(client, learner, "struggle", STRUGGLING)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/workflows/struggle/{body['id']}"
    assert body["created_at"].endswith("+00:00")
    assert body["result"] == "struggling" and 0 <= body["score"] <= 1
    assert 1 <= len(body["recommendations"]) <= 3
    assert body["recommendations"][0]["lesson_id"]
    moved = _moved(before, registry_samples())
    assert moved == {
        ("workflow_executions_total", (("status", "success"), ("workflow_type", "struggle"))): 1,
        ("workflow_duration_seconds_count", (("workflow_type", "struggle"),)): 1,
        ("struggle_detections_total", (("result", "struggling"),)): 1,
        ("lesson_recommendations_generated_total", ()): len(body["recommendations"]),
        ("struggle_workflow_edit_frequency_count", ()): 1,
        ("struggle_workflow_error_count_count", ()): 1,
    }
    stored = client.get(response.headers["Location"], headers=learner.bearer())
    assert stored.status_code == 200 and stored.get_json() == body


def test_calm_learner_gets_no_recommendations(client, learner):
    body = _post(client, learner, "struggle", CALM).get_json()
    assert body["result"] == "not_struggling" and body["recommendations"] == []


@pytest.mark.parametrize(
    "audit, status, types",
    [
        (FAILING_AUDIT, "fail", {"print_statement": 1, "debugger_call": 1, "hardcoded_secret": 1}),
        (WARNING_AUDIT, "remediation_required", {"bare_except": 1, "print_statement": 1}),
        (CLEAN_AUDIT, "pass", {}),
    ],
)
def test_audit_statuses_and_metrics(client, learner, audit, status, types):
    before = registry_samples()
    response = _post(client, learner, "audit", audit)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/workflows/audit/{body['id']}"
    assert body["status"] == status
    assert body["files_processed"] + body["files_skipped"] == len(audit["files"])
    moved = _moved(before, registry_samples())
    expected = {
        ("workflow_executions_total", (("status", "success"), ("workflow_type", "audit"))): 1,
        ("workflow_duration_seconds_count", (("workflow_type", "audit"),)): 1,
        ("audit_executions_total", (("status", status),)): 1,
        ("audit_violations_detected_count", ()): 1,
        ("audit_files_processed_count", ()): 1,
    }
    for violation_type, count in types.items():
        expected[("audit_violations_by_type_total", (("violation_type", violation_type),))] = count
    assert moved == expected


def test_results_belong_to_their_owner(client, learner):
    run_id = _post(client, learner, "audit", CLEAN_AUDIT).get_json()["id"]
    other = AuthActions(client, "other@example.com").signed_in()
    for path in (
        f"/api/v1/workflows/audit/{run_id}",
        f"/api/v1/workflows/struggle/{run_id}",
        "/api/v1/workflows/audit/no-such-id",
    ):
        response = client.get(path, headers=other.bearer())
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"
    assert client.get(f"/api/v1/workflows/audit/{run_id}", headers=learner.bearer()).status_code == 200


def test_workflows_need_a_token(client):
    response = client.post("/api/v1/workflows/audit", json=CLEAN_AUDIT)
    assert response.status_code == 401 and response.get_json()["error"] == "missing_token"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"exercise_id": "x", "edit_frequency": -1, "error_count": 0}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": 1.5}, 422),
        ({"exercise_id": "x", "edit_frequency": "NaN", "error_count": 1}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": 1, "window_seconds": 0}, 422),
        ({"edit_frequency": 1, "error_count": 1}, 422),
        ({"exercise_id": "x", "edit_frequency": 1e400, "error_count": 1}, 422),
    ],
)
def test_struggle_validation(client, learner, body, status):
    before = registry_samples()
    response = _post(client, learner, "struggle", body)
    assert response.status_code == status and response.get_json()["error"] == "validation_error"
    assert _moved(before, registry_samples()) == {}  # rejected input is not a run


def test_audit_limits(make_app):
    app = make_app(audit_max_files=2, audit_max_file_bytes=100)
    client = app.test_client()
    learner = AuthActions(client).signed_in()
    too_many = {"files": [{"path": f"{i}.py", "content": "x = 1\n"} for i in range(3)]}
    assert _post(client, learner, "audit", too_many).status_code == 422
    too_big = {"files": [{"path": "big.py", "content": "x = 1\n" * 50}]}
    response = _post(client, learner, "audit", too_big)
    assert response.status_code == 413 and response.get_json()["error"] == "audit_limit_exceeded"


@pytest.mark.parametrize(
    "content",
    [
        "(" * 200_000,
        "[" * 50_000 + "]" * 50_000,
        "x = " + "1+" * 100_000 + "1",
        "\x00\x01\x02 binary junk \xff",
        "s = '" + "a" * 200_000 + "'",
    ],
)
def test_hostile_sources_are_findings_not_errors(client, learner, content):
    response = _post(client, learner, "audit", {"files": [{"path": "evil.py", "content": content}]})
    assert response.status_code == 201
    assert response.get_json()["status"] in ("pass", "fail")


def test_a_fault_in_a_node_is_a_500_with_a_run_id_and_counted(client, learner, monkeypatch, caplog):
    import aura.workflows.audit.graph as audit_graph
    from aura.workflows._graph import CompileOnce

    def broken(*_args, **_kwargs):
        raise RuntimeError("node exploded")

    # Fault injection: a graph whose classify node raises, compiled fresh for this test only.
    monkeypatch.setattr(audit_graph, "classify", broken)
    monkeypatch.setattr(audit_graph, "_GRAPH", CompileOnce(audit_graph.build_audit_graph))
    before = registry_samples()
    response = _post(client, learner, "audit", CLEAN_AUDIT)
    assert "node exploded" in caplog.text
    assert response.status_code == 500 and response.get_json()["error"] == "execution_error"
    assert "run id" in response.get_json()["message"]
    moved = _moved(before, registry_samples())
    assert moved[("workflow_failures_total", (("error_type", "execution_error"), ("workflow_type", "audit")))] == 1
    assert moved[("workflow_executions_total", (("status", "failure"), ("workflow_type", "audit")))] == 1


def test_database_outage_is_503_and_counted(make_app):
    good = make_app()
    learner = AuthActions(good.test_client()).signed_in()
    # A checked token loads the revocations into Redis (they come from the database, once).
    assert learner.me().status_code == 200
    broken = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    before = registry_samples()
    response = broken.test_client().post("/api/v1/workflows/struggle", json=STRUGGLING, headers=learner.bearer())
    assert response.status_code == 503 and response.get_json()["error"] == "service_unavailable"
    moved = _moved(before, registry_samples())
    assert (
        moved[("workflow_failures_total", (("error_type", "service_unavailable"), ("workflow_type", "struggle")))] == 1
    )


def test_a_capped_run_that_fails_gives_its_slot_back(make_app):
    """Each refused body is rejected inside the per-user cap (the cap is taken first): more
    failures than slots, and the user still has every slot."""
    app = make_app(workflow_max_concurrent_per_user=1)
    client = app.test_client()
    learner = AuthActions(client).signed_in()
    for _ in range(3):
        assert _post(client, learner, "struggle", {"exercise_id": "loops-1"}).status_code == 422
    assert _post(client, learner, "struggle", CALM).status_code == 201
