"""Code audit: Python files checked for prints, debugger calls, long functions, secrets, bare
excepts and eval/exec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma
from marshmallow import validate

from aura.config import Settings
from aura.extensions import json_text
from aura.fields import UtcDateTime
from aura.instrumentation import recorder
from aura.services.workflows.definition import Result, Workflow
from aura.workflows import AUDIT_STATUSES, AuditLimitError, AuditSettings, run_audit
from aura.workflows.audit.graph import WORKFLOW

# Longest audited file path (characters): paths are echoed in every finding and stored.
MAX_PATH_LENGTH = 255


class AuditFileSchema(ma.Schema):
    """One file to audit."""

    path = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=MAX_PATH_LENGTH),
        metadata={"description": "Any non-empty name; files ending in .py are audited"},
    )
    content = ma.fields.String(required=True)


class AuditInputSchema(ma.Schema):
    """Files to audit (limits: AUDIT_MAX_FILES files, AUDIT_MAX_FILE_BYTES each)."""

    files = ma.fields.List(ma.fields.Nested(AuditFileSchema), required=True)


class ViolationSchema(ma.Schema):
    """One finding."""

    type = ma.fields.String(required=True)
    path = ma.fields.String(required=True)
    line = ma.fields.Integer(required=True, allow_none=True)
    message = ma.fields.String(required=True)
    severity = ma.fields.String(required=True, validate=validate.OneOf(["error", "warning"]))


class RemediationSchema(ma.Schema):
    """Advice for one violation type."""

    type = ma.fields.String(required=True)
    advice = ma.fields.String(required=True)


class AuditResultSchema(ma.Schema):
    """The audit verdict and its findings."""

    id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=validate.OneOf(list(AUDIT_STATUSES)))
    violations = ma.fields.List(ma.fields.Nested(ViolationSchema), required=True)
    files_processed = ma.fields.Integer(required=True)
    files_skipped = ma.fields.Integer(required=True)
    remediation = ma.fields.List(ma.fields.Nested(RemediationSchema), required=True)
    truncated = ma.fields.Boolean(
        required=True,
        metadata={
            "description": "True when `violations` lists fewer findings than were found (at most 50 "
            "per type and 200 in all are listed)"
        },
    )
    violation_counts = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        required=True,
        metadata={"description": "Every finding by type, listed or not"},
    )
    created_at = UtcDateTime(required=True)


def audit_settings(settings: Settings) -> AuditSettings:
    """Audit limits from the configuration; the whole body never exceeds MAX_CONTENT_LENGTH."""
    return AuditSettings(
        max_files=settings.audit_max_files,
        max_file_bytes=settings.audit_max_file_bytes,
        max_total_bytes=settings.max_content_length,
        max_function_lines=settings.audit_max_function_lines,
        max_cpu_seconds=settings.audit_max_cpu_seconds,
    )


def files_counted_first(document: Any, settings: Settings) -> None:
    """Refuse an audit of too many files before its entries are validated one by one: 30,000 tiny
    file objects (1 MiB) cost 0.5-0.9 s of CPU to validate and were then refused by the count."""
    files = document.get("files") if isinstance(document, dict) else None
    if isinstance(files, list) and len(files) > settings.audit_max_files:
        raise AuditLimitError("max_files", len(files), settings.audit_max_files)


def _run(data: Any, settings: Settings, on_record: Callable[[Result], None]) -> object:
    return run_audit(data, settings=audit_settings(settings), on_record=on_record)


def within(result: dict[str, Any], budget: int) -> dict[str, Any]:
    """The audit result with as many of its findings, in order, as fit in `budget` bytes."""
    size = len(json_text(result).encode())
    if size <= budget:
        return result
    kept: list[dict[str, Any]] = []
    used = len(json_text({**result, "violations": [], "truncated": True}).encode())
    for violation in result["violations"]:
        used += len(json_text(violation).encode()) + 1  # and its comma
        if used > budget:
            break
        kept.append(violation)
    return {**result, "violations": kept, "truncated": True}


def _record_metrics(stored: Mapping[str, Any]) -> None:
    recorder.audit_result(stored["status"], [v["type"] for v in stored["violations"]], stored["files_processed"])


AUDIT = Workflow(
    name=WORKFLOW,
    summary="Audit Python files for prints, debugger calls, long functions, secrets, bare excepts, eval/exec.",
    input_schema=AuditInputSchema,
    result_schema=AuditResultSchema,
    run=_run,
    verdict_key="status",
    verdicts=AUDIT_STATUSES,
    record_metrics=_record_metrics,
    within_budget=within,
    precheck=files_counted_first,
)
