"""The code-audit StateGraph: nodes, edges, compile-once cache and run_audit."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .._graph import CompileOnce, guarded, invoke
from ..errors import AuditLimitError
from .classify import locate, report, status_of_counts
from .parse import is_python, load_files, parse_source
from .remediation import advise
from .rules import check_tree_counted
from .settings import DEFAULT_AUDIT_SETTINGS, AuditSettings
from .types import AuditResult, AuditState, Finding, ParsedFile

if TYPE_CHECKING:  # LangGraph itself is imported where the graph is built (a flask command never is)
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.runtime import Runtime

WORKFLOW = "audit"
OnAuditRecord = Callable[[AuditResult], None]


@dataclass(frozen=True)
class AuditContext:
    """Per-run dependencies, passed as LangGraph context so the graph compiles once."""

    settings: AuditSettings = DEFAULT_AUDIT_SETTINGS
    on_record: OnAuditRecord | None = None


Rt: TypeAlias = "Runtime[AuditContext]"
AuditGraph: TypeAlias = "CompiledStateGraph[AuditState, AuditContext]"


def _within_budget(state: AuditState, settings: AuditSettings, path: str) -> None:
    """Stop the run once it has used its CPU budget (a 4xx for the client, not a 5xx)."""
    if settings.max_cpu_seconds is None:
        return
    used = time.thread_time() - state["cpu_started"]
    if used > settings.max_cpu_seconds:
        raise AuditLimitError("max_cpu_seconds", round(used, 2), settings.max_cpu_seconds, path=path)


def load(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Check the request shape and limits before any parsing; set non-Python files aside."""
    started = time.thread_time()
    files = load_files(state["raw"], runtime.context.settings)
    python_files = tuple(source for source in files if is_python(source.path))
    return {
        "python_files": python_files,
        "cursor": 0,
        "files_skipped": len(files) - len(python_files),
        "current": None,
        "violations": (),
        "violation_counts": {},
        "truncated": False,
        "cpu_started": started,
    }


def next_file(state: AuditState) -> str:
    """Conditional edge: parse the next Python file, or classify once all are done."""
    return "more" if state["cursor"] < len(state["python_files"]) else "done"


def parse(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Parse one file; a file that does not parse carries a syntax_error finding instead of a tree."""
    source = state["python_files"][state["cursor"]]
    _within_budget(state, runtime.context.settings, source.path)
    outcome = parse_source(source.content)
    if isinstance(outcome, Finding):
        current = ParsedFile(source=source, tree=None, error=outcome)
    else:
        current = ParsedFile(source=source, tree=outcome)
    return {"current": current, "cursor": state["cursor"] + 1}


def run_rules(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Run every rule over the file just parsed, then drop its tree."""
    settings = runtime.context.settings
    item = state["current"]
    if item is None:
        return {}
    found: Mapping[str, int]
    if item.tree is not None:
        findings, found = check_tree_counted(item.tree, settings)
    else:
        findings = [item.error] if item.error is not None else []
        found = {f.type: 1 for f in findings}
    # One file at a time: a 256 KiB file's tree can take ~50 MB, so trees must not pile up.
    _within_budget(state, settings, item.source.path)
    listed, left_out = report(state["violations"], locate(item.source, findings, settings), settings)
    counts = dict(state["violation_counts"])
    for violation_type, n in found.items():
        counts[violation_type] = counts.get(violation_type, 0) + n
    return {
        "violations": listed,
        "violation_counts": counts,
        "current": None,
        "truncated": state["truncated"] or left_out or len(findings) < sum(found.values()),
    }


def classify(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Derive pass / fail / remediation_required from the severities of every finding."""
    return {"status": status_of_counts(state["violation_counts"], runtime.context.settings)}


def needs_remediation(state: AuditState) -> str:
    """Conditional edge: advice is only produced when there is something to fix."""
    return "violations" if state["violations"] else "clean"


def remediate(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Attach advice for each violation type present."""
    return {"remediation": advise(state["violations"])}


def record(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Assemble the result and hand it to the injected on_record callback."""
    result = AuditResult(
        status=state["status"],
        violations=state["violations"],
        files_processed=len(state["python_files"]),
        files_skipped=state["files_skipped"],
        remediation=state.get("remediation", ()),
        truncated=state["truncated"],
        violation_counts=dict(sorted(state["violation_counts"].items())),
    )
    if runtime.context.on_record is not None:
        runtime.context.on_record(result)
    return {"result": result}


def build_audit_graph() -> AuditGraph:
    """Wire and compile the graph (see docs/workflows.md for the diagram)."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(AuditState, context_schema=AuditContext)
    for name, fn in (
        ("load", load),
        ("parse", parse),
        ("run_rules", run_rules),
        ("classify", classify),
        ("remediate", remediate),
        ("record", record),
    ):
        graph.add_node(name, guarded(WORKFLOW, name, fn))
    graph.add_edge(START, "load")
    graph.add_conditional_edges("load", next_file, {"more": "parse", "done": "classify"})
    graph.add_edge("parse", "run_rules")
    # The parse -> run_rules loop runs once per Python file.
    graph.add_conditional_edges("run_rules", next_file, {"more": "parse", "done": "classify"})
    graph.add_conditional_edges("classify", needs_remediation, {"violations": "remediate", "clean": "record"})
    graph.add_edge("remediate", "record")
    graph.add_edge("record", END)
    return graph.compile(name=WORKFLOW)


_GRAPH: CompileOnce[AuditGraph] = CompileOnce(build_audit_graph)


def get_audit_graph() -> AuditGraph:
    """Return the process-wide compiled audit graph."""
    return _GRAPH.get()


def run_audit(
    data: Mapping[str, Any],
    *,
    settings: AuditSettings = DEFAULT_AUDIT_SETTINGS,
    on_record: OnAuditRecord | None = None,
) -> AuditResult:
    """Audit the submitted files; raises WorkflowInputError, AuditLimitError or WorkflowExecutionError."""
    context = AuditContext(settings=settings, on_record=on_record)
    # Two steps per file (parse, run_rules) plus load, classify, remediate and record.
    steps = 2 * settings.max_files + 10
    final = invoke(WORKFLOW, get_audit_graph(), {"raw": data}, context, recursion_limit=steps)
    result: AuditResult = final["result"]
    return result
