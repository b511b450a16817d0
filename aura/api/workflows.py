"""/api/v1/workflows: struggle detection and code audit (wired in the workflows issue)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("workflows", __name__, url_prefix="/api/v1/workflows",
                description="LangGraph workflows: struggle detection and code audit")
