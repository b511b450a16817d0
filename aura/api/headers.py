"""Security headers on every response, and Retry-After only where it means something."""

from __future__ import annotations

from flask import Flask, request


def init_security_headers(app: Flask) -> None:
    """nosniff everywhere; token-bearing auth responses are never cached."""

    @app.after_request
    def _headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        # Runs after Flask-Limiter's hook (registered before it): keep its Retry-After only on
        # the 429 it concerns, and give a 503 the app's own short retry hint.
        if response.status_code == 503:
            response.headers["Retry-After"] = "5"
        elif response.status_code != 429:
            response.headers.pop("Retry-After", None)
        if request.path.startswith("/api/v1/auth/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response
