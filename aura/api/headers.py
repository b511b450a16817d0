"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, request


def init_security_headers(app: Flask) -> None:
    """nosniff everywhere; token-bearing auth responses are never cached."""

    @app.after_request
    def _headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith("/api/v1/auth/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response
