"""Audit workflow behaviour: status, remediation, skipped files, limits and input checks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from aura.workflows import (
    DEFAULT_SEVERITIES,
    AuditLimitError,
    AuditSettings,
    WorkflowInputError,
    get_audit_graph,
    run_audit,
)


def _files(*pairs: tuple[str, str]) -> dict:
    return {"files": [{"path": path, "content": content} for path, content in pairs]}


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("x = 1", "pass"),
        ("print(1)", "remediation_required"),
        ("try:\n    print(1)\nexcept:\n    pass", "remediation_required"),
        ("print(1)\neval('1')", "fail"),
        ('password = "hunter2"', "fail"),
        ("breakpoint()", "fail"),
        ("def (", "fail"),
    ],
)
def test_status_classification(source, status):
    assert run_audit(_files(("m.py", source))).status == status


def test_pass_has_no_remediation():
    result = run_audit(_files(("m.py", "x = 1")))
    assert (result.violations, result.remediation) == ((), ())


def test_remediation_once_per_type_errors_first():
    result = run_audit(_files(("a.py", "print(1)\nprint(2)\neval('x')"), ("b.py", "try:\n    pass\nexcept:\n    pass")))
    assert [r.type for r in result.remediation] == ["eval_exec", "bare_except", "print_statement"]
    assert all(r.advice for r in result.remediation)


def test_severity_table_is_configurable():
    settings = AuditSettings(severities={"print_statement": "error"})
    assert run_audit(_files(("m.py", "print(1)")), settings=settings).status == "fail"
    assert settings.severities["bare_except"] == DEFAULT_SEVERITIES["bare_except"]
    with pytest.raises(ValueError, match="unknown rules"):
        AuditSettings(severities={"prints": "error"})
    with pytest.raises(ValueError, match="'error' or 'warning'"):
        AuditSettings(severities={"print_statement": "fatal"})


def test_violations_carry_path_severity_and_order():
    result = run_audit(_files(("z.py", "eval('1')\nprint(1)"), ("a.py", "print(1)")))
    assert [(v.path, v.line, v.type, v.severity) for v in result.violations] == [
        ("z.py", 1, "eval_exec", "error"),
        ("z.py", 2, "print_statement", "warning"),
        ("a.py", 1, "print_statement", "warning"),
    ]


def test_non_python_files_are_skipped_not_parsed():
    result = run_audit(
        _files(
            ("README.md", "print('x')\ndef ("),
            ("data.json", "{"),
            ("stub.pyi", "def ("),
            ("Script.PY", "print(1)"),
            ("pkg/mod.py", "x = 1"),
        )
    )
    assert (result.files_processed, result.files_skipped) == (2, 3)
    assert [(v.path, v.type) for v in result.violations] == [("Script.PY", "print_statement")]


def test_empty_file_list_passes():
    result = run_audit({"files": []})
    assert (result.status, result.files_processed, result.files_skipped) == ("pass", 0, 0)


def test_result_is_json_serialisable():
    result = run_audit(_files(("m.py", 'print(1)\npassword = "hunter2"'), ("n.txt", "")))
    payload = json.loads(json.dumps(result.to_dict()))
    assert set(payload) == {
        "status",
        "violations",
        "files_processed",
        "files_skipped",
        "remediation",
        "truncated",
        "violation_counts",
    }
    assert payload["violations"][0] == {
        "type": "print_statement",
        "path": "m.py",
        "line": 1,
        "message": "call to builtin print()",
        "severity": "warning",
    }
    assert {r["type"] for r in payload["remediation"]} == {"print_statement", "hardcoded_secret"}


# --- limits ----------------------------------------------------------------------------------


def test_too_many_files():
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(*[(f"f{i}.py", "") for i in range(51)]))
    assert (info.value.limit, info.value.actual, info.value.maximum) == ("max_files", 51, 50)


def test_file_count_at_limit_is_accepted():
    assert run_audit(_files(*[(f"f{i}.txt", "") for i in range(50)])).files_skipped == 50


def test_file_too_large_names_the_file():
    with pytest.raises(AuditLimitError) as info:
        run_audit(_files(("ok.py", ""), ("big.py", "#" * (256 * 1024 + 1))))
    assert (info.value.limit, info.value.path, info.value.maximum) == ("max_file_bytes", "big.py", 256 * 1024)


def test_file_size_at_limit_is_accepted():
    assert run_audit(_files(("big.py", "#" * (256 * 1024)))).status == "pass"


def test_file_size_counts_utf8_bytes():
    settings = AuditSettings(max_file_bytes=10)
    assert run_audit(_files(("m.py", "#" + "é" * 4)), settings=settings).status == "pass"  # 9 bytes
    with pytest.raises(AuditLimitError):
        run_audit(_files(("m.py", "#" + "é" * 5)), settings=settings)  # 11 bytes, 6 characters


def test_total_size_limit_is_optional():
    data = _files(("a.py", "#" * 6), ("b.txt", "#" * 6))
    assert run_audit(data, settings=AuditSettings(max_total_bytes=12)).status == "pass"
    with pytest.raises(AuditLimitError) as info:
        run_audit(data, settings=AuditSettings(max_total_bytes=11))
    assert (info.value.limit, info.value.actual, info.value.path) == ("max_total_bytes", 12, "b.txt")


@pytest.mark.parametrize("count", [50, 120])
def test_many_python_files_fit_the_step_budget(count):
    # Each Python file is one parse -> run_rules round trip through the graph.
    data = _files(*[(f"f{i}.py", "print(1)") for i in range(count)])
    result = run_audit(data, settings=AuditSettings(max_files=count, max_reported_per_rule=count))
    assert (result.files_processed, len(result.violations)) == (count, count)


def test_findings_are_capped_per_rule_and_file():
    source = "print(1)\n" * 30 + "eval('x')\n"
    data = _files(("a.py", source), ("b.py", "print(2)"))
    result = run_audit(data, settings=AuditSettings(max_findings_per_rule=5))
    prints = [v for v in result.violations if v.path == "a.py" and v.type == "print_statement"]
    assert [v.line for v in prints] == [1, 2, 3, 4, 5, 6]
    assert prints[-1].message == "25 more print_statement findings from this line on (not listed)"
    assert [v.type for v in result.violations if v.path == "a.py"][-1] == "eval_exec"
    assert [v.path for v in result.violations].count("b.py") == 1
    assert result.status == "fail"


def test_trees_are_not_kept_in_the_final_state():
    from aura.workflows.audit.graph import AuditContext

    final = get_audit_graph().invoke({"raw": _files(("a.py", "x = 1"), ("b.py", "y = 2"))}, context=AuditContext())
    assert final["current"] is None and final["cursor"] == 2


def test_limits_apply_to_skipped_files_too():
    with pytest.raises(AuditLimitError):
        run_audit(_files(("huge.bin", "x" * 11)), settings=AuditSettings(max_file_bytes=10))


def test_limit_settings_must_be_positive():
    with pytest.raises(ValueError):
        AuditSettings(max_files=0)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (None, "body"),
        ({}, "files"),
        ({"files": "a.py"}, "files"),
        ({"files": ["a.py"]}, "files[0]"),
        ({"files": [{"content": "x"}]}, "files[0].path"),
        ({"files": [{"path": "", "content": "x"}]}, "files[0].path"),
        ({"files": [{"path": "a.py", "content": 1}]}, "files[0].content"),
        ({"files": [{"path": "a.py"}]}, "files[0].content"),
    ],
)
def test_malformed_input_is_rejected(data, field):
    """(A path of spaces is a name like any other: the published schema allows it.)"""
    with pytest.raises(WorkflowInputError) as info:
        run_audit(data)
    assert info.value.field == field


def test_one_run_reports_at_most_the_caps_and_counts_everything():
    """50 files of many findings and long paths: the answer lists a bounded number, flags
    `truncated`, and counts every finding by type."""
    source = "print(1)\n" * 40 + "eval('x')\n" * 40 + f"{'k' * 5000}_password = 'hunter2-secret-value'\n"
    data = _files(*[(f"{'d' * 240}/f{i}.py", source) for i in range(50)])
    settings = AuditSettings(max_reported_per_rule=50, max_reported_total=120)
    result = run_audit(data, settings=settings)
    payload = result.to_dict()
    assert result.truncated and len(result.violations) == 120
    assert max(Counter(v.type for v in result.violations).values()) <= 50
    assert payload["violation_counts"] == {"eval_exec": 2000, "hardcoded_secret": 50, "print_statement": 2000}
    assert all(len(v.message) <= settings.max_message_length for v in result.violations)
    assert result.status == "fail"


def test_a_small_run_is_not_truncated():
    result = run_audit(_files(("a.py", "print(1)\n")))
    assert not result.truncated and result.to_dict()["violation_counts"] == {"print_statement": 1}
