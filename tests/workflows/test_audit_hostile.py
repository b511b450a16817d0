"""Hostile sources end as a clean syntax_error finding within the service's CPU budget, and never as
an exception."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from aura.config import Settings
from aura.workflows import DEFAULT_AUDIT_SETTINGS, AuditResult, run_audit

# What the service allows one audit (AUDIT_MAX_CPU_SECONDS' default), in this thread's CPU time:
# over it, run_audit raises AuditLimitError. CPU time, not wall-clock, so a loaded machine
# (parallel tests) does not fail what an idle one passes.
SERVICE_BUDGET = dataclasses.replace(DEFAULT_AUDIT_SETTINGS, max_cpu_seconds=Settings.audit_max_cpu_seconds)

HOSTILE = {
    "deep parentheses": "(" * 100_000,
    "deep lists": "[" * 10_000 + "]" * 10_000,
    "deep unary minus": "x = " + "-" * 100_000 + "1",
    "deep not": "x = " + "not " * 60_000 + "1",
    "deep lambda": "x = " + "lambda: " * 30_000 + "1",
    "long addition chain": "x = " + "1+" * 30_000 + "1",
    "long attribute chain": "x = a" + ".b" * 30_000,
    "long call chain": "x = f" + "()" * 30_000,
    "long subscript chain": "x = a" + "[0]" * 30_000,
    "deep indentation": "".join(" " * i + "if x:\n" for i in range(120)) + " " * 120 + "pass\n",
    "NUL byte": "x = 1\ny = 2\n\0\n",
    "lone surrogate": "x = 1\ny = '\ud800'\n",
    "binary junk": bytes(range(256)) * 64,
    "invalid UTF-8 bytes": b"x = 1\n\xff\xfe = 2\n",
}


def _audit(content: str | bytes) -> AuditResult:
    return run_audit({"files": [{"path": "evil.py", "content": content}]}, settings=SERVICE_BUDGET)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_source_is_a_syntax_error_finding(name):
    result = _audit(HOSTILE[name])  # within the CPU budget, or AuditLimitError
    assert [v.type for v in result.violations] == ["syntax_error"]
    assert result.status == "fail"
    assert result.files_processed == 1


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("x = 1\ny = 2\n\0\n", 3, "file contains NUL bytes"),
        (b"a = 1\n\0", 2, "file contains NUL bytes"),
        ("x = 1\ny = '\ud800'\n", 2, "file is not valid UTF-8 text"),
        ("x = a" + ".b" * 100_000, 1, "source is nested too deeply to analyse"),
        ("x = " + "-" * 100_000 + "1", 1, "source is too complex to parse"),
    ],
)
def test_hostile_findings_say_what_and_where(content, line, message):
    (violation,) = _audit(content).violations
    assert (violation.line, violation.message) == (line, message)


def test_invalid_utf8_reports_its_line():
    (violation,) = _audit(b"x = 1\n\xff\xfe = 2\n").violations
    assert violation.line == 2


@pytest.mark.parametrize(
    "content",
    [
        "x = '" + "a" * 250_000 + "'",  # a huge literal parses and is scanned quickly
        "x = " + "[" * 150 + "]" * 150,  # deep but within the parser's limits
        "x = " + "1+" * 900 + "1",  # a deep tree the iterative walk handles
        "x = " + "f(" * 150 + ")" * 150,
        "",  # an empty file is fine
    ],
)
def test_large_or_deep_but_valid_sources_pass(content):
    assert _audit(content).status == "pass"  # within the CPU budget, or AuditLimitError


def test_hostile_source_in_a_worker_thread():
    # Gunicorn's threaded workers run requests off the main thread, whose stack may be smaller.
    results: list[AuditResult] = []
    thread = threading.Thread(target=lambda: results.append(_audit("x = a" + ".b" * 100_000)))
    thread.start()
    thread.join(timeout=10)
    assert [v.type for v in results[0].violations] == ["syntax_error"]


def test_hostile_file_does_not_hide_findings_in_other_files():
    result = run_audit(
        {
            "files": [
                {"path": "evil.py", "content": "(" * 100_000},
                {"path": "ok.py", "content": "eval('1')"},
            ]
        }
    )
    assert [(v.path, v.type) for v in result.violations] == [
        ("evil.py", "syntax_error"),
        ("ok.py", "eval_exec"),
    ]
