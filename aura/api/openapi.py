"""flask-smorest's Api, adapted so its errors use Aura's error shape and its schema documents it.

flask-smorest validates request bodies with the same marshmallow schemas it publishes in the
OpenAPI document, so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

import re

import marshmallow as ma
from apispec import BasePlugin
from flask_smorest import Api

from aura.api.errors import http_exception_response


class ErrorSchema(ma.Schema):
    """The one error body of the API."""

    error = ma.fields.String(required=True, metadata={"description": "Machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "Human-readable text"})
    details = ma.fields.Dict(metadata={"description": "Per-field validation errors"})


BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]  # a route's `security`: the bearer scheme

BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from POST /api/v1/auth/login (a refresh token for POST /api/v1/auth/refresh)",
}


class OperationIdPlugin(BasePlugin):
    """Give every operation an `operationId` (method + path), which generated clients name methods by."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        """e.g. GET /api/v1/workflows/audit/{run_id} -> get_workflows_audit_by_run_id."""
        words = [
            ("by_" + w[1:-1]) if w.startswith("{") else w for w in (path or "").removeprefix("/api/v1").split("/") if w
        ]
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", re.sub(r"\W", "_", "_".join([method, *words])))


class AuraApi(Api):
    """Api whose HTTP errors are rendered by `aura.api.errors`."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        """Render an HTTPException in the project's error shape."""
        return http_exception_response(error)

    def init_app(self, app, *, spec_kwargs=None):
        """Bind to the app; the document defines the bearer scheme its operations name."""
        super().init_app(app, spec_kwargs={"extra_plugins": [OperationIdPlugin()], **(spec_kwargs or {})})
        self.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)


def document_errors(blp, *codes: int):
    """Decorator: document the error responses a route can give, all with ErrorSchema."""

    def decorate(fn):
        for code in codes:
            fn = blp.alt_response(code, schema=ErrorSchema, description="Error")(fn)
        return fn

    return decorate


api = AuraApi()  # bound to the app by `aura.api.register_blueprints`
