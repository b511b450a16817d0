"""Typed shapes crossing the audit workflow's boundary, and its graph state."""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args

from .settings import RuleType, Severity

AuditStatus = Literal["pass", "fail", "remediation_required"]
AUDIT_STATUSES: tuple[str, ...] = get_args(AuditStatus)


class FileInput(TypedDict):
    """One submitted file."""

    path: str
    # str from JSON; bytes are accepted too and decoded as Python source (PEP 263 rules).
    content: str | bytes


class AuditInput(TypedDict):
    """Request body accepted by run_audit."""

    files: list[FileInput]


class ViolationDict(TypedDict):
    """JSON shape of one finding."""

    type: RuleType
    path: str
    line: int
    message: str
    severity: Severity


class RemediationDict(TypedDict):
    """JSON shape of the advice for one violation type."""

    type: RuleType
    advice: str


class AuditResultDict(TypedDict):
    """JSON shape of an audit result (the web layer adds `id`)."""

    status: AuditStatus
    violations: list[ViolationDict]
    files_processed: int
    files_skipped: int
    remediation: list[RemediationDict]
    truncated: bool
    violation_counts: dict[str, int]


@dataclass(frozen=True)
class Finding:
    """What a rule reports about one file, before path and severity are attached."""

    type: RuleType
    line: int
    message: str


@dataclass(frozen=True)
class SourceFile:
    """One submitted file after the limit checks."""

    index: int
    path: str
    content: str | bytes


@dataclass(frozen=True)
class ParsedFile:
    """A Python file and either its tree or the syntax_error finding that replaced it."""

    source: SourceFile
    tree: ast.Module | None
    error: Finding | None = None


@dataclass(frozen=True)
class Violation:
    """A finding located in a file, with its configured severity."""

    type: RuleType
    path: str
    line: int
    message: str
    severity: Severity

    def to_dict(self) -> ViolationDict:
        """Return the JSON shape."""
        return {
            "type": self.type,
            "path": self.path,
            "line": self.line,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class Remediation:
    """Advice for fixing every violation of one type."""

    type: RuleType
    advice: str

    def to_dict(self) -> RemediationDict:
        """Return the JSON shape."""
        return {"type": self.type, "advice": self.advice}


@dataclass(frozen=True)
class AuditResult:
    """Outcome of one audit run."""

    status: AuditStatus
    violations: tuple[Violation, ...]
    files_processed: int
    files_skipped: int
    remediation: tuple[Remediation, ...] = ()
    # True when `violations` lists fewer findings than were found; `violation_counts` has all.
    truncated: bool = False
    violation_counts: Mapping[str, int] | None = None

    def to_dict(self) -> AuditResultDict:
        """Return the JSON-serialisable shape."""
        return {
            "status": self.status,
            "violations": [v.to_dict() for v in self.violations],
            "files_processed": self.files_processed,
            "files_skipped": self.files_skipped,
            "remediation": [r.to_dict() for r in self.remediation],
            "truncated": self.truncated,
            "violation_counts": dict(
                self.violation_counts if self.violation_counts is not None else Counter(v.type for v in self.violations)
            ),
        }


class AuditState(TypedDict, total=False):
    """LangGraph state: each node reads what earlier nodes wrote and adds or replaces its keys."""

    raw: Mapping[str, Any]
    # Python files still to audit, in submission order; `cursor` is the next one to parse.
    python_files: tuple[SourceFile, ...]
    cursor: int
    files_skipped: int
    # The one file between parse and run_rules; cleared afterwards so its tree can be freed.
    current: ParsedFile | None
    violations: tuple[Violation, ...]
    # Every finding by type, listed or not; `truncated` once one was left out of `violations`.
    violation_counts: Mapping[str, int]
    truncated: bool
    # time.thread_time() when the run began, for the CPU budget.
    cpu_started: float
    status: AuditStatus
    remediation: tuple[Remediation, ...]
    result: AuditResult
