"""The monitoring spec's "Workflow Metrics" dashboard: its panels, with its titles in its order."""

from __future__ import annotations

from .panels import Dashboard, Panel, last_hour, quantiles, rates, sel, shares

PANELS = (
    Panel(
        "timeseries",
        "Workflow Executions Rate",
        "Rate of workflow executions by type and status.",
        rates("workflow_executions_total", "workflow_type, status"),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Workflow Duration",
        "P50, P95 and P99 workflow duration by workflow type.",
        quantiles("workflow_duration_seconds", by="workflow_type", legend="{{workflow_type}}"),
        unit="s",
    ),
    Panel(
        "stat",
        "Struggle Detections",
        "Struggling users detected in the last hour.",
        last_hour("struggle_detections_total", sel('result="struggling"')),
    ),
    Panel(
        "stat",
        "Lesson Recommendations Generated",
        "Lesson recommendations generated in the last hour.",
        last_hour("lesson_recommendations_generated_total"),
    ),
    Panel(
        "piechart",
        "Struggle Detection Results",
        "Struggling against not struggling, over the selected time range.",
        shares("struggle_detections_total", "result"),
    ),
    Panel(
        "timeseries",
        "Audit Execution Status",
        "Rate of audit executions by status (pass, fail, remediation_required).",
        rates("audit_executions_total", "status"),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Audit Violations Detected",
        "P50, P95 and P99 of the number of violations found per audit.",
        quantiles("audit_violations_detected"),
    ),
    Panel(
        "timeseries",
        "Violations by Type",
        "Rate of violations detected, by violation type.",
        rates("audit_violations_by_type_total", "violation_type"),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Files Processed per Audit",
        "P50, P95 and P99 of the number of files processed per audit.",
        quantiles("audit_files_processed"),
    ),
    Panel(
        "timeseries",
        "Workflow Failures",
        "Rate of workflow failures by workflow type and error type.",
        rates("workflow_failures_total", "workflow_type, error_type"),
        unit="ops",
    ),
    Panel(
        "timeseries",
        "Struggle Workflow Input Metrics",
        "Distributions of what struggle detection is given: P50, P95 and P99 of the edit "
        "frequency (edits per minute) and of the error count.",
        quantiles("struggle_workflow_edit_frequency", legend="edit frequency")
        + quantiles("struggle_workflow_error_count", legend="error count"),
    ),
)


DASHBOARD = Dashboard(
    "workflow-metrics.json",
    "aura-workflows",
    "Workflow Metrics",
    "Aura LangGraph workflows: executions, struggle detection, code audit results.",
    PANELS,
)
