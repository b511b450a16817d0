"""Turning located findings into violations and an overall audit status."""

from __future__ import annotations

from collections.abc import Sequence

from .settings import AuditSettings
from .types import AuditStatus, Finding, SourceFile, Violation


def locate(source: SourceFile, findings: Sequence[Finding], settings: AuditSettings) -> list[Violation]:
    """Attach the file path and the configured severity to each finding."""
    return [
        Violation(f.type, source.path, f.line, f.message, settings.severities[f.type]) for f in findings
    ]


def audit_status(violations: Sequence[Violation]) -> AuditStatus:
    """pass without violations, fail if any is an error, else remediation_required."""
    if not violations:
        return "pass"
    if any(v.severity == "error" for v in violations):
        return "fail"
    return "remediation_required"
