"""The one JSON error shape, and the handlers that make every error use it.

The domain raises `aura.errors.AuraError` (a code and a message) and `ServiceUnavailable`;
this module alone knows which HTTP status each code is (`STATUS_OF_CODE`).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, has_app_context, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from aura.errors import AuraError, ServiceUnavailable
from aura.infra.logs import request_context

log = logging.getLogger("aura")

# Machine-readable codes for the HTTP errors a client can provoke.
HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}

# The HTTP status of each code the domain (or the token checks) can answer with.
STATUS_OF_CODE = {
    "email_taken": 409,
    "invalid_credentials": 401,
    "missing_token": 401,
    "invalid_token": 401,
    "expired_token": 401,
    "revoked_token": 401,
    "inactive_user": 403,
}

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
    """A domain outcome in the error shape, with the status its code maps to."""
    return error_response(STATUS_OF_CODE[exc.code], exc.code, exc.message)


def http_exception_response(exc: HTTPException) -> Response:
    """Turn any werkzeug/flask-smorest HTTPException into the error shape."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    details = data.get("errors") or data.get("messages")
    if (
        isinstance(details, dict)
        and set(details) <= {"json", "query", "headers", "path"}
        and all(isinstance(errors, dict) for errors in details.values())
    ):
        # webargs nests field errors under their location; a client wants the fields.
        merged: dict[str, Any] = {}
        for location_errors in details.values():
            merged.update(location_errors)
        details = merged
    message = data.get("message") or exc.description
    headers = dict(data.get("headers") or {})
    valid_methods = getattr(exc, "valid_methods", None)  # MethodNotAllowed's
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    if status == 422 and details and not data.get("message"):
        message = "The request body is not valid; see details for each field."
    limit = getattr(exc, "limit", None)  # Flask-Limiter's RateLimitExceeded's
    if status == 429 and limit is not None:
        message, details = _rate_limit_text(limit)
    if status == 413 and not data.get("message") and has_app_context():
        maximum = current_app.config.get("MAX_CONTENT_LENGTH")
        if maximum:
            message = f"The request body is larger than the limit of {maximum} bytes (MAX_CONTENT_LENGTH)."
            details = {"limit_bytes": maximum}
    return error_response(status, data.get("error"), message, details, headers)


def _rate_limit_text(limit: Any) -> tuple[str, dict[str, str]]:
    """Which limit applied (a Flask-Limiter RuntimeLimit), in words and as details."""
    applied = str(limit.limit)  # e.g. "3 per 1 hour"
    scope = LIMIT_SCOPES.get(getattr(limit.key_func, "__name__", ""), "client address")
    return (
        f"Too many requests: the limit of {applied} per {scope} was reached; retry after the seconds in Retry-After.",
        {"limit": applied, "per": scope},
    )


def register_errorhandlers(app: Flask) -> None:
    """Make every error, expected or not, answer in the one JSON shape."""

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return http_exception_response(exc)

    @app.errorhandler(AuraError)
    def _domain(exc: AuraError):
        return aura_error_response(exc)

    @app.errorhandler(ServiceUnavailable)
    def _unavailable(exc: ServiceUnavailable):
        log.warning("503: %s", exc)
        return error_response(
            503,
            "service_unavailable",
            f"{exc.dependency} is unavailable; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(OperationalError)
    def _database_down(exc: DBAPIError):
        log.warning("database error: %s", exc.__class__.__name__)
        return _unavailable(ServiceUnavailable("database"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
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
