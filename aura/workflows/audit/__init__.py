"""Code audit: AST rules over submitted Python files, with severities and remediation advice."""

from .graph import AuditContext, build_audit_graph, get_audit_graph, run_audit
from .remediation import ADVICE
from .settings import (
    DEFAULT_AUDIT_SETTINGS,
    DEFAULT_SEVERITIES,
    RULE_TYPES,
    AuditSettings,
    RuleType,
    Severity,
)
from .types import (
    AUDIT_STATUSES,
    AuditInput,
    AuditResult,
    AuditResultDict,
    AuditStatus,
    FileInput,
    Remediation,
    RemediationDict,
    Violation,
    ViolationDict,
)

__all__ = [
    "ADVICE",
    "DEFAULT_AUDIT_SETTINGS",
    "DEFAULT_SEVERITIES",
    "RULE_TYPES",
    "AuditContext",
    "AuditInput",
    "AuditResult",
    "AuditResultDict",
    "AuditSettings",
    "AuditStatus",
    "AUDIT_STATUSES",
    "FileInput",
    "Remediation",
    "RemediationDict",
    "RuleType",
    "Severity",
    "Violation",
    "ViolationDict",
    "build_audit_graph",
    "get_audit_graph",
    "run_audit",
]
