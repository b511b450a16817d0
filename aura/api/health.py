"""Liveness and readiness probes."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from aura.api.context import services
from aura.extensions import db

bp = Blueprint("health", __name__)
log = logging.getLogger("aura.health")


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers. No dependency is checked, so a Redis outage never restarts pods."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: the database and (in redis mode) Redis answer; 503 names what failed."""
    body, status = readiness()
    return jsonify(body), status


def readiness() -> tuple[dict[str, Any], int]:
    """/readyz's body and status (a plain function: mutmut does not mutate decorated ones)."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        db.session.rollback()
        log.warning("readiness: database unavailable: %s", exc.__class__.__name__)
        checks["database"] = "unavailable"  # public: the class name stays in the log
    mode = services().revocation.mode
    if mode == "redis":
        redis_ok = services().redis.ping()
        checks["redis"] = "ok" if redis_ok else "unavailable"
    else:
        checks["redis"] = "not used (standalone mode: revocations in the database, limits per process)"
    failed = [name for name, state in checks.items() if state.startswith("unavailable")]
    body: dict[str, Any] = {"status": "unavailable" if failed else "ok", "mode": mode, "checks": checks}
    if failed:
        body.update(error="service_unavailable", message=f"unavailable: {', '.join(failed)}")
    return body, 503 if failed else 200
