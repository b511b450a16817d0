"""The one JSON error shape, and the handlers that make every error use it.

The domain raises `aura.errors.AuraError` (a code and a message) and `ServiceUnavailable`;
this module alone knows which HTTP status each code is (`STATUS_OF_CODE`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, has_app_context, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from aura.api.rate_limits import client_address, keep_own_retry_after
from aura.errors import AuraError, AuthCode, ErrorCode, ServiceUnavailable, TooManyRequests
from aura.infra.logs import request_context
from aura.instrumentation import recorder
from aura.workflows.errors import AuditLimitError

log = logging.getLogger("aura")

# Machine-readable codes for the HTTP errors a client can provoke.
HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: ErrorCode.NOT_FOUND,
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: ErrorCode.VALIDATION_ERROR,
    429: ErrorCode.RATE_LIMITED,
    500: "internal_error",
    503: "service_unavailable",
}


def _audit_limit_status(exc: AuraError) -> int:
    """A limit on bytes is the body's size (413); one on a count, its content (422)."""
    return 413 if isinstance(exc, AuditLimitError) and exc.on_size else 422


# The one table of the HTTP status of every code an `AuraError` can carry (a function of the
# error where one code has two statuses).
STATUS_OF_CODE: dict[str, int | Callable[[AuraError], int]] = {
    **{code: status for status, code in HTTP_ERROR_CODES.items()},
    AuthCode.EMAIL_TAKEN: 409,
    AuthCode.INVALID_CREDENTIALS: 401,
    AuthCode.MISSING_TOKEN: 401,
    AuthCode.INVALID_TOKEN: 401,
    AuthCode.EXPIRED_TOKEN: 401,
    AuthCode.REVOKED_TOKEN: 401,
    AuthCode.INACTIVE_USER: 403,
    ErrorCode.AUDIT_LIMIT_EXCEEDED: _audit_limit_status,
    ErrorCode.EXECUTION_ERROR: 500,
    ErrorCode.TOO_MANY_CONCURRENT_REQUESTS: 429,
}


def status_of(exc: AuraError) -> int:
    """The HTTP status of a domain outcome."""
    status = STATUS_OF_CODE[exc.code]
    return status if isinstance(status, int) else status(exc)


# Which key a Flask-Limiter limit counts by, named by its key function (aura.api.rate_limits).
LIMIT_SCOPES = {
    "client_address": "client address",
    "account_key": "account",
    "user_key": "user",
    "all_clients": "service",
}


def error_response(
    status: int,
    error: str | None = None,
    message: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the project's error body `{"error", "message"[, "details"]}` with a status code."""
    code = error or HTTP_ERROR_CODES.get(status, "error")
    body: dict[str, Any] = {"error": code, "message": message or code.replace("_", " ")}
    if details is not None:
        body["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def aura_error_response(exc: AuraError) -> Response:
    """A domain outcome in the error shape, with the status its code maps to; a 429 says when to
    retry (Retry-After) and is counted as a rate-limit hit of its route."""
    if isinstance(exc, TooManyRequests):
        return _too_many_requests(exc)
    return error_response(status_of(exc), exc.code, exc.message, exc.details)


def _too_many_requests(exc: TooManyRequests) -> Response:
    rule = request.url_rule  # these caps apply to matched routes
    recorder.rate_limit_hit(rule.rule if rule is not None else request.path, client_address())
    keep_own_retry_after()
    return error_response(
        status_of(exc), exc.code, exc.message, exc.details, headers={"Retry-After": str(exc.retry_after)}
    )


def http_exception_response(exc: HTTPException) -> Response:
    """Turn any werkzeug/flask-smorest HTTPException into the error shape."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    message, details = _explained(exc, status, data)
    return error_response(status, data.get("error"), message, details, _headers(exc, status, data))


def _field_errors(data: dict[str, Any]) -> Any:
    """The errors webargs found, by field (it nests them under their location; a client wants
    the fields)."""
    details = data.get("errors") or data.get("messages")
    if not (
        isinstance(details, dict)
        and set(details) <= {"json", "query", "headers", "path"}
        and all(isinstance(errors, dict) for errors in details.values())
    ):
        return details
    merged: dict[str, Any] = {}
    for location_errors in details.values():
        merged.update(location_errors)
    return merged


def _explained(exc: HTTPException, status: int, data: dict[str, Any]) -> tuple[str | None, Any]:
    """The message and details of an HTTP error: what applied, in words and as details."""
    message, details = data.get("message") or exc.description, _field_errors(data)
    limit = getattr(exc, "limit", None)  # Flask-Limiter's RateLimitExceeded's
    if status == 422 and details and not data.get("message"):
        message = "The request body is not valid; see details for each field."
    elif status == 429 and limit is not None:
        message, details = _rate_limit_text(limit)
    elif status == 413 and not data.get("message") and has_app_context():
        maximum = current_app.config.get("MAX_CONTENT_LENGTH")
        if maximum:
            message = f"The request body is larger than the limit of {maximum} bytes (MAX_CONTENT_LENGTH)."
            details = {"limit_bytes": maximum}
    return message, details


def _headers(exc: HTTPException, status: int, data: dict[str, Any]) -> dict[str, str]:
    """The error's own headers, and Allow on a 405."""
    headers = dict(data.get("headers") or {})
    valid_methods = getattr(exc, "valid_methods", None)  # MethodNotAllowed's
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    return headers


def _rate_limit_text(limit: Any) -> tuple[str, dict[str, str]]:
    """Which limit applied (a Flask-Limiter RuntimeLimit), in words and as details."""
    applied = str(limit.limit)  # e.g. "3 per 1 hour"
    scope = LIMIT_SCOPES.get(getattr(limit.key_func, "__name__", ""), "client address")
    return (
        f"Too many requests: the limit of {applied} per {scope} was reached; retry after the seconds in Retry-After.",
        {"limit": applied, "per": scope},
    )


def service_unavailable_response(exc: ServiceUnavailable) -> Response:
    """A dependency down: 503, naming it (the edge adds the Retry-After every 503 carries)."""
    log.warning("503: %s", exc)
    return error_response(503, "service_unavailable", f"{exc.dependency} is unavailable; try again shortly")


def unexpected_error_response(exc: Exception) -> Response:
    """Any other exception: logged with the request's context, a 500 without internals."""
    if isinstance(exc, HTTPException):
        return http_exception_response(exc)
    context = request_context()
    log.exception(
        "unhandled error in %s %s (route %s, request id %s)",
        context.get("method"),
        context.get("path"),
        context.get("route"),
        context.get("request_id"),
    )
    return error_response(500, "internal_error", "An unexpected error occurred.")


def register_errorhandlers(app: Flask) -> None:
    """Make every error, expected or not, answer in the one JSON shape (the handlers call plain
    functions: mutmut does not mutate decorated ones)."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return http_exception_response(exc)

    @app.errorhandler(AuraError)
    def _domain(exc: AuraError) -> Response:
        return aura_error_response(exc)

    @app.errorhandler(ServiceUnavailable)
    def _unavailable(exc: ServiceUnavailable) -> Response:
        return service_unavailable_response(exc)

    @app.errorhandler(OperationalError)
    def _database_down(exc: DBAPIError) -> Response:
        log.warning("database error: %s", exc.__class__.__name__)
        return service_unavailable_response(ServiceUnavailable("database"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        return unexpected_error_response(exc)
