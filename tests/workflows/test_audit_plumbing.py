"""The audit workflow's plumbing, in process and without Redis: error types, settings checks,
result shapes, the caps on what one run reports, the CPU budget, NUL and line bookkeeping in
the parser, and a freshly built graph (the cached one is compiled once per process)."""

from __future__ import annotations

import ast
import dataclasses
import gc
import time

import pytest
from langgraph.runtime import Runtime

from aura.errors import ErrorCode
from aura.workflows import (
    AuditLimitError,
    AuditResult,
    AuditSettings,
    Remediation,
    Violation,
    WorkflowExecutionError,
    WorkflowInputError,
    run_audit,
)
from aura.workflows._graph import guarded, invoke
from aura.workflows.audit.classify import locate, report
from aura.workflows.audit.graph import AuditContext, build_audit_graph, parse, run_rules
from aura.workflows.audit.parse import _pause_gc, _resume_gc, parse_source
from aura.workflows.audit.types import Finding, ParsedFile, SourceFile
from aura.workflows.errors import WorkflowError


def _files(*pairs: tuple[str, str | bytes]) -> dict:
    return {"files": [{"path": path, "content": content} for path, content in pairs]}


def _violation(rule: str = "print_statement", line: int = 1, path: str = "m.py") -> Violation:
    return Violation(rule, path, line, "m", "warning")  # type: ignore[arg-type]


# --- errors ----------------------------------------------------------------------------------


def test_an_input_error_names_its_field_for_the_client():
    error = WorkflowInputError("files[0].path", "must be a non-empty string")
    assert (error.code, error.message, error.details) == (
        ErrorCode.VALIDATION_ERROR.value,
        "must be a non-empty string",
        {"files[0].path": ["must be a non-empty string"]},
    )
    assert str(error) == "files[0].path: must be a non-empty string"


def test_an_audit_limit_says_which_limit_by_how_much_and_where():
    error = AuditLimitError("max_file_bytes", 300, 256, path="big.py")
    assert (error.code, error.limit, error.actual, error.maximum, error.path) == (
        ErrorCode.AUDIT_LIMIT_EXCEEDED.value,
        "max_file_bytes",
        300,
        256,
        "big.py",
    )
    assert error.message == "max_file_bytes: 300 is over the limit of 256 (big.py)."
    assert AuditLimitError("max_files", 51, 50).message == "max_files: 51 is over the limit of 50."
    assert AuditLimitError("max_files", 51, 50, path="").message == "max_files: 51 is over the limit of 50."


def test_an_execution_error_names_the_workflow_the_node_and_the_cause_type():
    cause = KeyError("secret detail")
    error = WorkflowExecutionError("audit", "parse", cause)
    assert str(error) == "audit workflow failed in node 'parse': KeyError"
    assert (error.workflow, error.node, error.error_type) == ("audit", "parse", "execution_error")


# --- settings --------------------------------------------------------------------------------

LIMITS = [
    "max_files",
    "max_file_bytes",
    "max_function_lines",
    "max_findings_per_rule",
    "max_reported_per_rule",
    "max_reported_total",
    "max_message_length",
    "max_path_length",
]


@pytest.mark.parametrize("name", LIMITS)
def test_every_limit_must_be_at_least_one(name):
    assert getattr(AuditSettings(**{name: 1}), name) == 1
    with pytest.raises(ValueError) as info:
        AuditSettings(**{name: 0})
    assert str(info.value) == "audit limits must be >= 1"


def test_optional_limits_are_none_or_positive():
    assert AuditSettings(max_cpu_seconds=0.001).max_cpu_seconds == 0.001
    assert AuditSettings(max_total_bytes=1).max_total_bytes == 1
    assert AuditSettings(max_cpu_seconds=None, max_total_bytes=None).max_total_bytes is None
    for seconds in (0, -1.0):
        with pytest.raises(ValueError) as info:
            AuditSettings(max_cpu_seconds=seconds)
        assert str(info.value) == "max_cpu_seconds must be > 0 or None"
    with pytest.raises(ValueError) as info:
        AuditSettings(max_total_bytes=0)
    assert str(info.value) == "max_total_bytes must be >= 1 or None"


def test_severity_errors_name_what_is_wrong():
    with pytest.raises(ValueError) as info:
        AuditSettings(severities={"prints": "error", "evals": "warning"})
    assert str(info.value) == "unknown rules in severities: evals, prints"
    with pytest.raises(ValueError) as info:
        AuditSettings(severities={"print_statement": "fatal"})
    assert str(info.value) == "severities must be 'error' or 'warning'"


def test_the_severity_table_is_complete_and_read_only():
    settings = AuditSettings(severities={"print_statement": "error"})
    assert settings.severities["print_statement"] == "error"
    assert settings.severities["eval_exec"] == "error" and settings.severities["long_function"] == "warning"
    with pytest.raises(TypeError):
        settings.severities["eval_exec"] = "warning"  # type: ignore[index]


# --- result shapes ---------------------------------------------------------------------------


def test_result_shapes():
    assert Remediation("print_statement", "use logging").to_dict() == {
        "type": "print_statement",
        "advice": "use logging",
    }
    # Built without counts (not by the graph): the counts are those of the listed violations.
    result = AuditResult("remediation_required", (_violation(line=1), _violation(line=2)), 1, 0)
    assert result.to_dict()["violation_counts"] == {"print_statement": 2}
    assert AuditResult("pass", (), 0, 0).to_dict()["violation_counts"] == {}


# --- input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (None, "body", "must be an object"),
        ({"files": "a.py"}, "files", "must be a list of {path, content} objects"),
        ({"files": ["a.py"]}, "files[0]", "must be an object with path and content"),
        (
            {"files": [{"path": "a.py", "content": ""}, {"path": "", "content": ""}]},
            "files[1].path",
            "must be a non-empty string",
        ),
        ({"files": [{"path": "a.py", "content": None}]}, "files[0].content", "must be a string"),
    ],
)
def test_malformed_input_says_what_is_expected(data, field, message):
    with pytest.raises(WorkflowInputError) as info:
        run_audit(data)
    assert (info.value.field, info.value.message) == (field, message)


def test_a_path_may_be_as_long_as_the_limit():
    settings = AuditSettings(max_path_length=4)
    assert run_audit(_files(("a.py", "")), settings=settings).files_processed == 1
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(("ab.py", "")), settings=settings)
    assert (info.value.limit, info.value.actual, info.value.maximum) == ("max_path_length", 5, 4)


def test_text_as_long_as_the_byte_limit_is_measured_in_bytes():
    settings = AuditSettings(max_file_bytes=4)
    assert run_audit(_files(("a.py", "#abc")), settings=settings).status == "pass"
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(("a.py", "#\u00e9\u00e9\u00e9")), settings=settings)  # 4 characters, 7 bytes
    assert (info.value.limit, info.value.actual, info.value.maximum) == ("max_file_bytes", 7, 4)


def test_the_total_size_limit_names_its_maximum():
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(("a.py", "#" * 6), ("b.py", "#" * 6)), settings=AuditSettings(max_total_bytes=10))
    assert (info.value.limit, info.value.actual, info.value.maximum, info.value.path) == (
        "max_total_bytes",
        12,
        10,
        "b.py",
    )


# --- what one run lists ----------------------------------------------------------------------


def test_messages_are_cut_to_the_limit_with_an_ellipsis():
    source = SourceFile(0, "m.py", "")
    settings = AuditSettings(max_message_length=5)
    findings = [Finding("print_statement", 1, "12345"), Finding("print_statement", 2, "123456")]
    assert [v.message for v in locate(source, findings, settings)] == ["12345", "1234\u2026"]


def test_report_caps_per_rule_and_in_all():
    settings = AuditSettings(max_reported_per_rule=2, max_reported_total=3)
    prints = [_violation(line=n) for n in range(1, 4)]
    kept, left_out = report((), prints[:2], settings)
    assert (len(kept), left_out) == (2, False)
    kept, left_out = report((), prints, settings)
    assert ([v.line for v in kept], left_out) == ([1, 2], True)
    evals = [_violation("eval_exec", line=n) for n in range(1, 3)]
    kept, left_out = report(kept, evals, settings)
    assert ([(v.type, v.line) for v in kept], left_out) == (
        [("print_statement", 1), ("print_statement", 2), ("eval_exec", 1)],
        True,
    )


def test_truncated_is_a_bool_either_way():
    assert run_audit(_files(("a.py", "print(1)\n"))).truncated is False
    capped = AuditSettings(max_reported_per_rule=1)
    result = run_audit(_files(("a.py", "print(1)\n"), ("b.py", "print(2)\n")), settings=capped)
    assert result.truncated is True
    assert [v.path for v in result.violations] == ["a.py"]
    assert result.violation_counts == {"print_statement": 2}


def test_a_file_that_does_not_parse_counts_once():
    result = run_audit(_files(("a.py", "def (")))
    assert (result.violation_counts, result.truncated) == ({"syntax_error": 1}, False)


# --- the CPU budget --------------------------------------------------------------------------


def _runtime(**settings: object) -> Runtime[AuditContext]:
    return Runtime(context=AuditContext(settings=AuditSettings(**settings)))


def _spent(seconds: float) -> float:
    """A `cpu_started` as if the run had already used `seconds` of this thread's CPU time."""
    return time.thread_time() - seconds


def test_a_run_over_its_cpu_budget_stops_before_the_next_parse():
    source = SourceFile(0, "slow.py", "x = 1")
    state = {"python_files": (source,), "cursor": 0, "cpu_started": _spent(10.004)}
    with pytest.raises(AuditLimitError) as info:
        parse(state, _runtime(max_cpu_seconds=1.0))  # type: ignore[arg-type]
    error = info.value
    assert (error.limit, error.maximum, error.path) == ("max_cpu_seconds", 1.0, "slow.py")
    # Rounded to hundredths of a second: the run used 10.004 s and some microseconds.
    assert error.message == "max_cpu_seconds: 10.0 is over the limit of 1.0 (slow.py)."
    state["cpu_started"] = _spent(0.0)
    assert parse(state, _runtime(max_cpu_seconds=60.0))["cursor"] == 1  # type: ignore[arg-type]


def test_a_run_over_its_cpu_budget_stops_after_the_rules_of_a_file():
    source = SourceFile(0, "slow.py", "x = (")
    current = ParsedFile(source, None, Finding("syntax_error", 1, "does not parse"))
    state = {
        "current": current,
        "violations": (),
        "violation_counts": {},
        "truncated": False,
        "cpu_started": _spent(10.0),
    }
    with pytest.raises(AuditLimitError) as info:
        run_rules(state, _runtime(max_cpu_seconds=1.0))  # type: ignore[arg-type]
    assert (info.value.limit, info.value.path) == ("max_cpu_seconds", "slow.py")


def test_the_cpu_budget_applies_to_a_whole_run():
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(("a.py", "x = 1")), settings=AuditSettings(max_cpu_seconds=1e-9))
    assert (info.value.limit, info.value.path) == ("max_cpu_seconds", "a.py")


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ("\n\0", 2),  # a newline before the NUL counts, the first character included
        (b"\n\0", 2),
        ("x = 1\n\0\ny = 2\n\0\n", 2),  # the first NUL, not the last
        (b"x = 1\n\0\ny = 2\n\0\n", 2),
        (b"x = 1\n\0\ny = 2\n", 2),  # newlines after the NUL do not count
        ("\0\n", 1),
    ],
)
def test_a_nul_byte_is_reported_on_its_line(content, line):
    finding = parse_source(content)
    assert finding == Finding("syntax_error", line, "file contains NUL bytes")


def test_a_lone_surrogate_after_a_first_newline_is_on_line_two():
    assert parse_source("\n'\ud800'") == Finding("syntax_error", 2, "file is not valid UTF-8 text")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        # Older 3.11 patch releases: ValueError, not SyntaxError, for NUL bytes.
        (ValueError("source code string cannot contain null bytes"), (3, "file contains NUL bytes")),
        (SyntaxError("invalid syntax"), (1, "does not parse: invalid syntax")),
    ],
)
def test_parser_errors_this_python_does_not_raise_still_become_findings(monkeypatch, raised, expected):
    def parser(*args, **kwargs):
        raise raised

    monkeypatch.setattr(ast, "parse", parser)
    line, message = expected
    assert parse_source("x = 1\ny = 2\n\0\n") == Finding("syntax_error", line, message)


def test_the_collector_is_paused_and_resumed_only_by_the_call_that_found_it_running():
    assert gc.isenabled()
    try:
        assert _pause_gc() is True and not gc.isenabled()
        assert _pause_gc() is False and not gc.isenabled()  # an overlapping call: already paused
        _resume_gc(False)
        assert not gc.isenabled()
        _resume_gc(True)
        assert gc.isenabled()
    finally:
        gc.enable()


def test_parsing_leaves_the_garbage_collector_as_it_found_it():
    assert gc.isenabled()
    parse_source("x = 1")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_source("x = 1")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- the graph, freshly built ----------------------------------------------------------------


def test_a_failure_outside_any_node_names_the_workflow_and_the_cause():
    from aura.workflows import get_audit_graph

    files = _files(*[(f"f{i}.py", "") for i in range(3)])
    with pytest.raises(WorkflowExecutionError) as info:
        invoke("audit", get_audit_graph(), {"raw": files}, AuditContext(), recursion_limit=3)
    error = info.value
    assert (error.workflow, error.node) == ("audit", "graph")
    assert str(error) == "audit workflow failed in node 'graph': GraphRecursionError"
    assert type(error.__cause__).__name__ == "GraphRecursionError"


def test_guarded_wraps_unexpected_errors_only():
    def load(state, runtime):
        """The docstring."""
        if state["fail"] == "input":
            raise WorkflowInputError("files", "must be a list")
        if state["fail"] == "bug":
            raise ZeroDivisionError
        return {"ok": True}

    node = guarded("audit", "load", load)
    assert (node.__name__, node.__qualname__, node.__doc__) == ("load", "load", "The docstring.")  # type: ignore[attr-defined]
    assert node({"fail": None}, None) == {"ok": True}  # type: ignore[arg-type]
    with pytest.raises(WorkflowInputError):
        node({"fail": "input"}, None)  # type: ignore[arg-type]
    with pytest.raises(WorkflowExecutionError) as info:
        node({"fail": "bug"}, None)  # type: ignore[arg-type]
    assert (info.value.workflow, info.value.node) == ("audit", "load")
    assert str(info.value) == "audit workflow failed in node 'load': ZeroDivisionError"
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert not isinstance(info.value, WorkflowInputError) and isinstance(info.value, WorkflowError)


def test_a_freshly_built_graph_has_the_documented_shape():
    graph = build_audit_graph()
    assert graph.name == "audit"
    shape = graph.get_graph()
    assert set(shape.nodes) == {"__start__", "load", "parse", "run_rules", "classify", "remediate", "record", "__end__"}
    assert {(e.source, e.target, e.conditional) for e in shape.edges} == {
        ("__start__", "load", False),
        ("load", "parse", True),
        ("load", "classify", True),
        ("parse", "run_rules", False),
        ("run_rules", "parse", True),
        ("run_rules", "classify", True),
        ("classify", "remediate", True),
        ("classify", "record", True),
        ("remediate", "record", False),
        ("record", "__end__", False),
    }


def _run_fresh(data: dict, **context: object) -> dict:
    return invoke("audit", build_audit_graph(), {"raw": data}, AuditContext(**context), recursion_limit=40)  # type: ignore[arg-type]


def test_a_freshly_built_graph_audits_like_run_audit():
    data = _files(("a.py", "print(1)\neval('x')\n"), ("notes.txt", "x"), ("b.py", "def ("), ("c.py", "x = 1"))
    recorded: list[AuditResult] = []
    final = _run_fresh(data, on_record=recorded.append)
    result = final["result"]
    assert recorded == [result] and result == run_audit(data)
    assert (result.status, result.files_processed, result.files_skipped) == ("fail", 3, 1)
    assert [(v.path, v.line, v.type) for v in result.violations] == [
        ("a.py", 1, "print_statement"),
        ("a.py", 2, "eval_exec"),
        ("b.py", 1, "syntax_error"),
    ]
    assert [r.type for r in result.remediation] == ["eval_exec", "syntax_error", "print_statement"]
    assert (final["current"], final["cursor"]) == (None, 3)
    clean = _run_fresh(_files(("ok.py", "x = 1")))["result"]
    assert (clean.status, clean.violations, clean.remediation) == ("pass", (), ())
    assert _run_fresh({"files": []})["result"].files_processed == 0


def test_a_freshly_built_graph_names_the_failing_node():
    def broken(result):
        raise RuntimeError("database is down")

    with pytest.raises(WorkflowExecutionError) as info:
        _run_fresh(_files(("a.py", "print(1)")), on_record=broken)
    assert (info.value.workflow, info.value.node) == ("audit", "record")
    with pytest.raises(WorkflowInputError):
        _run_fresh({"files": "a.py"})


def test_settings_reach_the_nodes_through_the_context():
    settings = dataclasses.replace(AuditSettings(), severities={"print_statement": "error"}, max_message_length=10)
    result = _run_fresh(_files(("a.py", "print(1)")), settings=settings)["result"]
    assert result.status == "fail"
    assert result.violations[0].message == "call to b\u2026"
