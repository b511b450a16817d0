"""flask-smorest's Api, adapted so its errors use Aura's error shape and its schema documents it.

flask-smorest validates request bodies with the same marshmallow schemas it publishes in the
OpenAPI document, so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import Api

from aura.errors import http_exception_response


class ErrorSchema(ma.Schema):
    """The one error body of the API."""

    error = ma.fields.String(required=True, metadata={"description": "Machine-readable code"})
    message = ma.fields.String(required=True, metadata={"description": "Human-readable text"})
    details = ma.fields.Dict(metadata={"description": "Per-field validation errors"})


class AuraApi(Api):
    """Api whose HTTP errors are rendered by `aura.errors`."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error):
        """Render an HTTPException in the project's error shape."""
        return http_exception_response(error)


def document_errors(blp, *codes: int):
    """Decorator: document the error responses a route can give, all with ErrorSchema."""
    def decorate(fn):
        for code in codes:
            fn = blp.alt_response(code, schema=ErrorSchema, description="Error")(fn)
        return fn
    return decorate
