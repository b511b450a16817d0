"""build_struggle_graph itself: a freshly compiled graph, not the process-wide cached one.

run_struggle uses the graph compiled once per process (get_struggle_graph), so a test that only
calls run_struggle never sees a change to build_struggle_graph made after the first compile:
these tests build their own graph and run it.
"""

from __future__ import annotations

import pytest

from aura.workflows import Lesson, WorkflowExecutionError, WorkflowInputError
from aura.workflows._graph import invoke
from aura.workflows.struggle.graph import StruggleContext, build_struggle_graph

CATALOG = [
    Lesson("names", "Names", "variables", ("NameError",)),
    Lesson("loops", "Loops", "loops", ()),
]
STRUGGLING = {"exercise_id": "ex", "edit_frequency": 10, "error_count": 20, "error_types": ["NameError"]}
CALM = {"exercise_id": "ex", "edit_frequency": 1, "error_count": 0, "error_types": ["NameError"]}


@pytest.fixture
def graph():
    # One per test: mutmut runs a mutant only with the tests that reached its function.
    return build_struggle_graph()


def _run(graph, data, **context):
    return invoke("struggle", graph, {"raw": data}, StruggleContext(**{"catalog": CATALOG, **context}))


def test_the_graph_is_named_and_wired(graph):
    assert graph.name == "struggle"
    drawn = graph.get_graph()
    assert set(drawn.nodes) == {"__start__", "validate", "signals", "score", "recommend", "record", "__end__"}
    assert {(e.source, e.target, e.conditional) for e in drawn.edges} == {
        ("__start__", "validate", False),
        ("validate", "signals", False),
        ("signals", "score", False),
        ("score", "recommend", True),
        ("score", "record", True),
        ("recommend", "record", False),
        ("record", "__end__", False),
    }


def test_a_struggling_learner_goes_through_recommend(graph):
    final = _run(graph, STRUGGLING)
    assert [r.lesson_id for r in final["recommendations"]] == ["names"]
    result = final["result"]
    assert (result.result, result.score) == ("struggling", 1.0)
    assert [r.lesson_id for r in result.recommendations] == ["names"]
    assert result.signals.request.exercise_id == "ex"


def test_a_calm_learner_skips_recommend(graph):
    calls = []

    def catalog():
        calls.append(1)
        return CATALOG

    final = _run(graph, CALM, catalog=catalog)
    assert "recommendations" not in final
    assert (final["result"].result, final["result"].recommendations, calls) == ("not_struggling", (), [])


def test_every_run_ends_in_record_with_the_callback(graph):
    seen = []
    for data in (STRUGGLING, CALM):
        final = _run(graph, data, on_record=seen.append)
        assert seen[-1] is final["result"]
    assert [r.result for r in seen] == ["struggling", "not_struggling"]


def test_node_failures_name_the_workflow_and_the_node(graph):
    def broken(*args):
        raise RuntimeError("down")

    with pytest.raises(WorkflowExecutionError) as info:
        _run(graph, CALM, on_record=broken)
    assert (info.value.workflow, info.value.node, type(info.value.__cause__)) == ("struggle", "record", RuntimeError)
    with pytest.raises(WorkflowExecutionError) as info:
        _run(graph, STRUGGLING, catalog=broken)
    assert (info.value.workflow, info.value.node) == ("struggle", "recommend")


def test_bad_input_stays_an_input_error(graph):
    with pytest.raises(WorkflowInputError) as info:
        _run(graph, {**CALM, "error_count": -1})
    assert info.value.field == "error_count"
