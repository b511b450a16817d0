"""The web layer: blueprints, request/response schemas and the JSON body rules."""

from __future__ import annotations

from flask import Flask

from aura.api import auth, health, metrics_endpoint, workflows
from aura.api.body import init_body_rules
from aura.api.context import services
from aura.api.openapi import api, register_docs_page


def register_blueprints(app: Flask) -> None:
    """Mount every blueprint; /api/v1 routes go through flask-smorest for the OpenAPI document."""
    # Answers in UTF-8, not \u escapes: an escaped character took 6 bytes (12 outside the BMP).
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    init_body_rules(app)
    api.init_app(app)
    api.register_blueprint(auth.blp)
    api.register_blueprint(workflows.blueprint(services(app).workflows))
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics_endpoint.bp)
    register_docs_page(app)
