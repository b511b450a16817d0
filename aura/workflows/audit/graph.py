"""The code-audit StateGraph: nodes, edges, compile-once cache and run_audit."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from .._graph import CompileOnce, guarded, invoke
from .classify import audit_status, locate
from .parse import is_python, load_files, parse_source
from .remediation import advise
from .rules import check_tree
from .settings import DEFAULT_AUDIT_SETTINGS, AuditSettings
from .types import AuditResult, AuditState, Finding, ParsedFile

WORKFLOW = "audit"
OnAuditRecord = Callable[[AuditResult], None]


@dataclass(frozen=True)
class AuditContext:
    """Per-run dependencies, passed as LangGraph context so the graph compiles once."""

    settings: AuditSettings = DEFAULT_AUDIT_SETTINGS
    on_record: OnAuditRecord | None = None


Rt = Runtime[AuditContext]


def parse(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Enforce limits, skip non-Python files and parse the rest."""
    files = load_files(state["raw"], runtime.context.settings)
    parsed = []
    for source in files:
        if not is_python(source.path):
            continue
        outcome = parse_source(source.content)
        if isinstance(outcome, Finding):
            parsed.append(ParsedFile(source=source, tree=None, error=outcome))
        else:
            parsed.append(ParsedFile(source=source, tree=outcome))
    return {"parsed": tuple(parsed), "files_skipped": len(files) - len(parsed)}


def run_rules(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Run every rule over every parsed file, in submission order."""
    settings = runtime.context.settings
    violations = []
    for item in state["parsed"]:
        if item.tree is not None:
            findings = check_tree(item.tree, settings)
        else:
            findings = [item.error] if item.error is not None else []
        violations.extend(locate(item.source, findings, settings))
    return {"violations": tuple(violations)}


def classify(state: AuditState, runtime: Rt) -> dict[str, Any]:
    """Derive pass / fail / remediation_required from the severities."""
    return {"status": audit_status(state["violations"])}


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
        files_processed=len(state["parsed"]),
        files_skipped=state["files_skipped"],
        remediation=state.get("remediation", ()),
    )
    if runtime.context.on_record is not None:
        runtime.context.on_record(result)
    return {"result": result}


def build_audit_graph() -> CompiledStateGraph:
    """Wire and compile: parse -> run_rules -> classify -> [needs_remediation] -> remediate? -> record."""
    graph = StateGraph(AuditState, context_schema=AuditContext)
    for name, fn in (
        ("parse", parse),
        ("run_rules", run_rules),
        ("classify", classify),
        ("remediate", remediate),
        ("record", record),
    ):
        graph.add_node(name, guarded(WORKFLOW, name, fn))
    graph.add_edge(START, "parse")
    graph.add_edge("parse", "run_rules")
    graph.add_edge("run_rules", "classify")
    graph.add_conditional_edges("classify", needs_remediation, {"violations": "remediate", "clean": "record"})
    graph.add_edge("remediate", "record")
    graph.add_edge("record", END)
    return graph.compile(name=WORKFLOW)


_GRAPH: CompileOnce[CompiledStateGraph] = CompileOnce(build_audit_graph)


def get_audit_graph() -> CompiledStateGraph:
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
    final = invoke(get_audit_graph(), {"raw": data}, context)
    return final["result"]
