"""flask-smorest's Api, adapted so its errors use Aura's error shape and its schema documents it.

flask-smorest validates request bodies with the same marshmallow schemas it publishes in the
OpenAPI document, so the document cannot drift from what the API enforces.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import marshmallow as ma
from apispec import BasePlugin
from flask import Blueprint, Flask, Response, send_from_directory, url_for
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from aura.api.errors import error_response, http_exception_response


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

    def operation_helper(
        self, path: str | None = None, operations: dict[str, dict[str, Any]] | None = None, **kwargs: Any
    ) -> None:
        """e.g. GET /api/v1/workflows/audit/{run_id} -> get_workflows_audit_by_run_id."""
        words = [
            ("by_" + w[1:-1]) if w.startswith("{") else w for w in (path or "").removeprefix("/api/v1").split("/") if w
        ]
        for method, operation in (operations or {}).items():
            operation.setdefault("operationId", re.sub(r"\W", "_", "_".join([method, *words])))


class AuraApi(Api):  # type: ignore[misc]  # flask-smorest ships no types: Api is Any to mypy
    """Api whose HTTP errors are rendered by `aura.api.errors`."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        """Render an HTTPException in the project's error shape."""
        return http_exception_response(error)

    def init_app(self, app: Flask, *, spec_kwargs: dict[str, Any] | None = None) -> None:
        """Bind to the app; the document defines the bearer scheme its operations name."""
        super().init_app(app, spec_kwargs={"extra_plugins": [OperationIdPlugin()], **(spec_kwargs or {})})
        self.spec.components.security_scheme("bearerAuth", BEARER_SCHEME)


View = Callable[..., Any]  # a Flask view: its arguments come from the URL and flask-smorest
Decorator = Callable[[View], View]


class ApiBlueprint(Protocol):
    """What Aura uses of a flask-smorest Blueprint, typed (the library ships no types, so mypy
    sees its Blueprint as Any): each method makes a decorator that registers or documents a view
    and returns it, or a wrapper of it."""

    def route(self, rule: str, *, parameters: list[Any] | None = None, **options: Any) -> Decorator: ...

    def arguments(
        self, schema: type[ma.Schema] | ma.Schema, *, location: str = "json", required: bool = True, **kwargs: Any
    ) -> Decorator: ...

    def response(
        self, status_code: int, schema: type[ma.Schema] | ma.Schema | None = None, **kwargs: Any
    ) -> Decorator: ...

    def alt_response(self, status_code: int, **kwargs: Any) -> Decorator: ...

    def doc(self, **kwargs: Any) -> Decorator: ...


def document_errors(blp: ApiBlueprint, *codes: int) -> Decorator:
    """Decorator: document the error responses a route can give, all with ErrorSchema."""

    def decorate(fn: View) -> View:
        for code in codes:
            fn = blp.alt_response(code, schema=ErrorSchema, description="Error")(fn)
        return fn

    return decorate


api = AuraApi()  # bound to the app by `aura.api.register_blueprints`


# --- The docs page: Swagger UI at /api/v1/docs, every asset served by Aura itself ----------------
#
# The assets come from the pinned flask-swagger-ui package (its `dist/` is Swagger UI's own build;
# the package's blueprint is not used: its page configures Swagger UI in an inline script, which a
# strict Content-Security-Policy would have to allow). The page loads only files named below,
# from this server, under a policy that allows nothing else: it works offline, and a compromised
# CDN or an injected script has nothing to load from.

SWAGGER_UI_DIST = Path(str(files("flask_swagger_ui") / "dist"))
SWAGGER_UI_VERSION = version("flask-swagger-ui")  # the package follows Swagger UI's own version
DOCS_DIR = Path(__file__).resolve().parent / "docs_ui"
DOCS_ASSETS = {  # URL name -> directory it is served from
    "swagger-ui-bundle.js": SWAGGER_UI_DIST,
    "swagger-ui.css": SWAGGER_UI_DIST,
    "favicon-32x32.png": SWAGGER_UI_DIST,
    "init.js": DOCS_DIR,
}
# data: images are the icons inside swagger-ui.css; connect-src 'self' is what "Try it out" calls.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

docs_bp = Blueprint("docs-ui", __name__, url_prefix="/api/v1")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="swagger-ui-version" content="{version}">
  <title>Aura API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body data-openapi-url="{spec}">
  <div id="swagger-ui"></div>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""


@docs_bp.get("/docs")
def docs_page() -> Response:
    """The browsable API reference."""
    return _docs_page()


def _docs_page() -> Response:
    def asset(name: str) -> str:
        return html.escape(url_for("docs-ui.docs_asset", name=name, v=SWAGGER_UI_VERSION))

    page = _PAGE.format(
        version=html.escape(SWAGGER_UI_VERSION),
        css=asset("swagger-ui.css"),
        icon=asset("favicon-32x32.png"),
        spec=html.escape(url_for("api-docs.openapi_json")),
        bundle=asset("swagger-ui-bundle.js"),
        init=asset("init.js"),
    )
    return Response(page, mimetype="text/html", headers={"Content-Security-Policy": DOCS_CSP})


@docs_bp.get("/docs/<name>")
def docs_asset(name: str) -> Response:
    """One of the page's assets (the list above); anything else is 404."""
    return _docs_asset(name)


def _docs_asset(name: str) -> Response:
    directory = DOCS_ASSETS.get(name)
    if directory is None:
        return error_response(404, "not_found", "No such docs asset.")
    response = send_from_directory(directory, name, max_age=3600)
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


def register_docs_page(app: Flask) -> None:
    """Serve the docs page when API_DOCS_ENABLED (the OpenAPI document is always served)."""
    if app.config["AURA"].api_docs_enabled:
        app.register_blueprint(docs_bp)
