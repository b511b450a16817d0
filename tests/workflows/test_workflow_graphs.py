"""Graph plumbing: compile once, node names, no network, on_record, execution errors."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from aura.workflows import (
    WorkflowExecutionError,
    get_audit_graph,
    get_struggle_graph,
    run_audit,
    run_struggle,
)
from aura.workflows._graph import CompileOnce

STRUGGLING = {"exercise_id": "ex", "edit_frequency": 8, "error_count": 12, "error_types": ["NameError"]}
AUDIT = {"files": [{"path": "m.py", "content": "print(1)"}]}


def test_graphs_compile_once():
    assert get_struggle_graph() is get_struggle_graph()
    assert get_audit_graph() is get_audit_graph()


def test_compile_once_under_concurrent_first_use():
    builds = []
    barrier = threading.Barrier(8)
    cache = CompileOnce(lambda: builds.append(object()) or builds[-1])

    def first_use(out):
        barrier.wait()
        out.append(cache.get())

    got: list[object] = []
    threads = [threading.Thread(target=first_use, args=(got,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and all(g is builds[0] for g in got)


def test_graph_shapes():
    struggle = get_struggle_graph().get_graph()
    audit = get_audit_graph().get_graph()
    assert {"validate", "signals", "score", "recommend", "record"} <= set(struggle.nodes)
    assert {"load", "parse", "run_rules", "classify", "remediate", "record"} <= set(audit.nodes)
    conditional = {(e.source, e.target) for e in struggle.edges if e.conditional}
    assert conditional == {("score", "recommend"), ("score", "record")}
    conditional = {(e.source, e.target) for e in audit.edges if e.conditional}
    assert conditional == {
        ("load", "parse"),
        ("load", "classify"),
        ("run_rules", "parse"),  # the per-file loop
        ("run_rules", "classify"),
        ("classify", "remediate"),
        ("classify", "record"),
    }


def test_runs_without_network(monkeypatch, catalog):
    def refuse(*args, **kwargs):
        raise AssertionError("a workflow tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert run_struggle(STRUGGLING, catalog=catalog).result == "struggling"
    assert run_audit(AUDIT).status == "remediation_required"


def test_langsmith_tracing_is_forced_off(monkeypatch, catalog):
    # Tracing would upload learners' code to LangSmith; an outer "enabled" context (which outranks
    # LANGSMITH_TRACING=true) must still be overridden inside the workflows.
    import langsmith
    from langsmith.utils import tracing_is_enabled

    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda *args: attempts.append(args))
    seen = []

    def on_record(result):
        seen.append(tracing_is_enabled())

    with langsmith.tracing_context(enabled=True):
        run_audit(AUDIT, on_record=on_record)
        run_struggle(STRUGGLING, catalog=catalog, on_record=on_record)
    assert (seen, attempts) == ([False, False], [])


def test_on_record_receives_the_result(catalog):
    seen = []
    result = run_struggle(STRUGGLING, catalog=catalog, on_record=seen.append)
    audit = run_audit(AUDIT, on_record=seen.append)
    assert seen == [result, audit]


def test_failing_callback_is_an_execution_error(catalog):
    def broken(result):
        raise RuntimeError("database is down")

    with pytest.raises(WorkflowExecutionError) as info:
        run_audit(AUDIT, on_record=broken)
    error = info.value
    assert (error.workflow, error.node, error.error_type) == ("audit", "record", "execution_error")
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(WorkflowExecutionError) as info:
        run_struggle(STRUGGLING, catalog=catalog, on_record=broken)
    assert (info.value.workflow, info.value.node) == ("struggle", "record")


def test_failing_catalog_loader_names_the_recommend_node():
    def broken():
        raise OSError("cannot read lessons")

    with pytest.raises(WorkflowExecutionError) as info:
        run_struggle(STRUGGLING, catalog=broken)
    assert info.value.node == "recommend"


def test_struggle_result_is_json_serialisable(catalog):
    payload = json.loads(json.dumps(run_struggle(STRUGGLING, catalog=catalog).to_dict()))
    assert set(payload) == {"result", "score", "signals", "recommendations"}
    assert payload["recommendations"]
    assert set(payload["recommendations"][0]) == {"lesson_id", "title", "reason"}


def test_failure_outside_any_node_is_an_execution_error():
    from aura.workflows._graph import invoke
    from aura.workflows.audit.graph import AuditContext

    files = {"files": [{"path": f"f{i}.py", "content": ""} for i in range(5)]}
    with pytest.raises(WorkflowExecutionError) as info:
        invoke("audit", get_audit_graph(), {"raw": files}, AuditContext(), recursion_limit=3)
    assert info.value.node == "graph"


def test_concurrent_runs_share_the_compiled_graphs(catalog):
    # Gunicorn threads invoke the same compiled graphs at once; runs must not leak into each other.
    outcomes: list[tuple[str, str, int]] = []

    def work(i: int) -> None:
        audit = run_audit({"files": [{"path": f"f{i}.py", "content": "print(1)\n" * i}]})
        data = {"exercise_id": f"ex{i}", "edit_frequency": i, "error_count": i}
        struggle = run_struggle(data, catalog=catalog)  # score = 0.1 * i
        outcomes.append((audit.violations[0].path if audit.violations else "", struggle.result, i))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=lambda o: o[2]) == [
        (f"f{i}.py", "struggling" if i >= 5 else "not_struggling", i) for i in range(1, 9)
    ]
