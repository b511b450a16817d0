"""Exception types the workflows raise; the web layer maps each to an HTTP status."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class for every error a workflow raises on purpose."""


class WorkflowInputError(WorkflowError):
    """The input is impossible (wrong type, negative count, ...); maps to 422."""

    def __init__(self, field: str, message: str) -> None:
        """Name the offending field so the caller can point at it."""
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AuditLimitError(WorkflowError):
    """An audit request exceeds a configured limit; maps to 413 (size) or 422."""

    def __init__(self, limit: str, actual: float, maximum: float, path: str | None = None) -> None:
        """Record which limit was hit, by how much, and for which file if any."""
        where = f" ({path})" if path is not None else ""
        super().__init__(f"{limit} exceeded{where}: {actual} > {maximum}")
        self.limit = limit
        self.actual = actual
        self.maximum = maximum
        self.path = path


class WorkflowExecutionError(WorkflowError):
    """A node failed unexpectedly (a bug or a failing callback); maps to 500."""

    # The metric label the web layer uses for workflow_failures_total{error_type=...}.
    error_type = "execution_error"

    def __init__(self, workflow: str, node: str, cause: BaseException) -> None:
        """Carry the workflow and node names; the original exception is chained as __cause__."""
        super().__init__(f"{workflow} workflow failed in node {node!r}: {type(cause).__name__}")
        self.workflow = workflow
        self.node = node
