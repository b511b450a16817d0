"""Exception types the workflows raise; the web layer maps each error code to an HTTP status."""

from __future__ import annotations

from aura.errors import AuraError, ErrorCode


class WorkflowError(Exception):
    """Base class for every error a workflow raises on purpose."""


class WorkflowInputError(WorkflowError, AuraError):
    """The input is impossible (wrong type, negative count, ...): `validation_error` (422)."""

    def __init__(self, field: str, message: str) -> None:
        """Name the offending field so the caller can point at it."""
        AuraError.__init__(self, ErrorCode.VALIDATION_ERROR, message, {field: [message]})
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class AuditLimitError(WorkflowError, AuraError):
    """An audit request exceeds a configured limit: `audit_limit_exceeded` (413 for a limit on
    bytes, `on_size`; 422 otherwise)."""

    SIZE_LIMITS = ("max_file_bytes", "max_total_bytes")

    def __init__(self, limit: str, actual: float, maximum: float, path: str | None = None) -> None:
        """Record which limit was hit, by how much, and for which file if any."""
        where = f" ({path})" if path else ""
        AuraError.__init__(
            self, ErrorCode.AUDIT_LIMIT_EXCEEDED, f"{limit}: {actual} is over the limit of {maximum}{where}."
        )
        self.limit = limit
        self.actual = actual
        self.maximum = maximum
        self.path = path

    @property
    def on_size(self) -> bool:
        """Whether the limit is on bytes (the request is too large) rather than on a count."""
        return self.limit in self.SIZE_LIMITS


class WorkflowExecutionError(WorkflowError):
    """A node failed unexpectedly (a bug or a failing callback); maps to 500."""

    # The metric label the web layer uses for workflow_failures_total{error_type=...}.
    error_type = ErrorCode.EXECUTION_ERROR.value

    def __init__(self, workflow: str, node: str, cause: BaseException) -> None:
        """Carry the workflow and node names; the original exception is chained as __cause__."""
        super().__init__(f"{workflow} workflow failed in node {node!r}: {type(cause).__name__}")
        self.workflow = workflow
        self.node = node
