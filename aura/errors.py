"""Errors the domain raises, free of HTTP: each names its outcome by a code.

The web layer (`aura.api.errors`) maps the codes to HTTP statuses in one table and renders
every error in the project's JSON shape.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class AuthCode(StrEnum):
    """The outcome of an auth call or token check the client caused: its error code, and the
    `reason` label of auth_failures_total (every one but `email_taken`)."""

    EMAIL_TAKEN = "email_taken"
    INVALID_CREDENTIALS = "invalid_credentials"
    INACTIVE_USER = "inactive_user"
    INVALID_TOKEN = "invalid_token"
    EXPIRED_TOKEN = "expired_token"
    REVOKED_TOKEN = "revoked_token"
    MISSING_TOKEN = "missing_token"


class ErrorCode(StrEnum):
    """The other outcomes a client can meet, besides the auth ones and HTTP's own (`aura.api.errors`)."""

    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONCURRENT_REQUESTS = "too_many_concurrent_requests"
    AUDIT_LIMIT_EXCEEDED = "audit_limit_exceeded"
    EXECUTION_ERROR = "execution_error"


AUTH_FAILURE_REASONS: tuple[str, ...] = tuple(code.value for code in AuthCode if code is not AuthCode.EMAIL_TAKEN)


class AuraError(Exception):
    """An outcome the client caused, named by a machine-readable `code`, with a message for people
    and, optionally, details (per-field errors, the limit that applied)."""

    def __init__(self, code: str, message: str, details: Any = None):
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.details = details


class TooManyRequests(AuraError):
    """Refused for now by a cap that is not a rate limit's window: retry after `retry_after` seconds."""

    def __init__(self, code: str, message: str, *, limit: str, per: str, retry_after: int):
        super().__init__(code, message, {"limit": limit, "per": per})
        self.retry_after = retry_after


class ServiceUnavailable(Exception):
    """A dependency (database, Redis) is down; the client may retry later."""

    def __init__(self, dependency: str):
        super().__init__(f"{dependency} is unavailable")
        self.dependency = dependency
