"""Aura's two LangGraph workflows (struggle detection, code audit) as plain-Python service functions.

The web layer calls run_struggle / run_audit; everything else here is types, settings and errors.
"""

from .audit import (
    AUDIT_STATUSES,
    DEFAULT_AUDIT_SETTINGS,
    DEFAULT_SEVERITIES,
    RULE_TYPES,
    AuditInput,
    AuditResult,
    AuditResultDict,
    AuditSettings,
    AuditStatus,
    FileInput,
    Remediation,
    RemediationDict,
    RuleType,
    Severity,
    Violation,
    ViolationDict,
    get_audit_graph,
    run_audit,
)
from .errors import AuditLimitError, WorkflowError, WorkflowExecutionError, WorkflowInputError
from .struggle import (
    CATALOG_FILE,
    DEFAULT_STRUGGLE_SETTINGS,
    STRUGGLE_LABELS,
    CatalogSource,
    Lesson,
    LessonDict,
    Recommendation,
    RecommendationDict,
    SignalsDict,
    StruggleInput,
    StruggleLabel,
    StruggleResult,
    StruggleResultDict,
    StruggleSettings,
    get_struggle_graph,
    load_catalog_file,
    run_struggle,
)

__all__ = [
    "warm_up",
    "CATALOG_FILE",
    "DEFAULT_AUDIT_SETTINGS",
    "DEFAULT_SEVERITIES",
    "DEFAULT_STRUGGLE_SETTINGS",
    "RULE_TYPES",
    "AuditInput",
    "AuditLimitError",
    "AuditResult",
    "AuditResultDict",
    "AuditSettings",
    "AuditStatus",
    "AUDIT_STATUSES",
    "CatalogSource",
    "FileInput",
    "Lesson",
    "LessonDict",
    "Recommendation",
    "RecommendationDict",
    "Remediation",
    "RemediationDict",
    "RuleType",
    "Severity",
    "SignalsDict",
    "StruggleInput",
    "StruggleLabel",
    "STRUGGLE_LABELS",
    "StruggleResult",
    "StruggleResultDict",
    "StruggleSettings",
    "Violation",
    "ViolationDict",
    "WorkflowError",
    "WorkflowExecutionError",
    "WorkflowInputError",
    "get_audit_graph",
    "get_struggle_graph",
    "load_catalog_file",
    "run_audit",
    "run_struggle",
]


def warm_up() -> None:
    """Import LangGraph and compile both graphs now rather than on the first workflow request.

    Gunicorn's master calls it before forking (with preload; each worker otherwise), so workers,
    recycled ones included, serve their first run at once; `flask` commands never pay for it.
    """
    get_struggle_graph()
    get_audit_graph()
