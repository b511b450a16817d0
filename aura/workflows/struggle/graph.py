"""The struggle-detection StateGraph: nodes, edges, compile-once cache and run_struggle."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .._graph import CompileOnce, guarded, invoke
from .catalog import CatalogSource
from .recommend import rank_lessons
from .scoring import compute_signals, score_signals
from .settings import DEFAULT_STRUGGLE_SETTINGS, StruggleSettings
from .types import StruggleResult, StruggleState
from .validate import normalise_request

if TYPE_CHECKING:  # LangGraph itself is imported where the graph is built (a flask command never is)
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.runtime import Runtime

WORKFLOW = "struggle"
OnStruggleRecord = Callable[[StruggleResult], None]


@dataclass(frozen=True)
class StruggleContext:
    """Per-run dependencies, passed as LangGraph context so the graph compiles once."""

    catalog: CatalogSource
    settings: StruggleSettings = DEFAULT_STRUGGLE_SETTINGS
    on_record: OnStruggleRecord | None = None


Rt: TypeAlias = "Runtime[StruggleContext]"
StruggleGraph: TypeAlias = "CompiledStateGraph[StruggleState, StruggleContext]"


def validate(state: StruggleState, runtime: Rt) -> dict[str, Any]:
    """Check and normalise the raw input."""
    return {"request": normalise_request(state["raw"], runtime.context.settings)}


def signals(state: StruggleState, runtime: Rt) -> dict[str, Any]:
    """Derive the edit and error signals."""
    return {"signals": compute_signals(state["request"], runtime.context.settings)}


def score(state: StruggleState, runtime: Rt) -> dict[str, Any]:
    """Weight the signals into a score and take the decision."""
    return {"score": score_signals(state["signals"], runtime.context.settings)}


def decide(state: StruggleState) -> str:
    """Conditional edge: only struggling learners get recommendations."""
    return "struggling" if state["score"].struggling else "not_struggling"


def recommend(state: StruggleState, runtime: Rt) -> dict[str, Any]:
    """Pick lessons from the injected catalog."""
    catalog = runtime.context.catalog
    # A callable catalog (e.g. a DB query) is only consulted when it is needed.
    lessons = catalog() if callable(catalog) else catalog
    return {"recommendations": rank_lessons(lessons, state["request"], runtime.context.settings)}


def record(state: StruggleState, runtime: Rt) -> dict[str, Any]:
    """Assemble the result and hand it to the injected on_record callback."""
    verdict = state["score"]
    result = StruggleResult(
        result="struggling" if verdict.struggling else "not_struggling",
        score=verdict.score,
        signals=state["signals"],
        threshold=verdict.threshold,
        explanation=verdict.explanation,
        recommendations=state.get("recommendations", ()),
    )
    if runtime.context.on_record is not None:
        runtime.context.on_record(result)
    return {"result": result}


def build_struggle_graph() -> StruggleGraph:
    """Wire and compile the graph: validate -> signals -> score -> [decide] -> recommend? -> record."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(StruggleState, context_schema=StruggleContext)
    for name, fn in (
        ("validate", validate),
        ("signals", signals),
        ("score", score),
        ("recommend", recommend),
        ("record", record),
    ):
        graph.add_node(name, guarded(WORKFLOW, name, fn))
    graph.add_edge(START, "validate")
    graph.add_edge("validate", "signals")
    graph.add_edge("signals", "score")
    graph.add_conditional_edges("score", decide, {"struggling": "recommend", "not_struggling": "record"})
    graph.add_edge("recommend", "record")
    graph.add_edge("record", END)
    return graph.compile(name=WORKFLOW)


_GRAPH: CompileOnce[StruggleGraph] = CompileOnce(build_struggle_graph)


def get_struggle_graph() -> StruggleGraph:
    """Return the process-wide compiled struggle graph."""
    return _GRAPH.get()


def run_struggle(
    data: Mapping[str, Any],
    *,
    catalog: CatalogSource,
    settings: StruggleSettings = DEFAULT_STRUGGLE_SETTINGS,
    on_record: OnStruggleRecord | None = None,
) -> StruggleResult:
    """Run struggle detection on one request; raises WorkflowInputError or WorkflowExecutionError."""
    context = StruggleContext(catalog=catalog, settings=settings, on_record=on_record)
    final = invoke(WORKFLOW, get_struggle_graph(), {"raw": data}, context)
    result: StruggleResult = final["result"]
    return result
