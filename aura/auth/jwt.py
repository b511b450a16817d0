"""flask-jwt-extended wiring: revocation lookup, and failure callbacks in the error shape.

The callbacks run before any view when a token is missing or bad, so they are where those
failures are counted: `auth_failures_total{reason}` always, plus the auth endpoint's own
`auth_requests_total` (and `auth_token_refreshes_total` for refresh) when the call was one.
"""

from __future__ import annotations

import jwt as pyjwt
from flask import Flask, current_app, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from aura.errors import error_response
from aura.extensions import db, jwt
from aura.instrumentation import recorder
from aura.models import User

# Flask endpoint -> the spec's `endpoint` label, for auth routes guarded by a token.
_AUTH_ENDPOINTS = {"auth.refresh": "refresh", "auth.logout": "logout"}

_REQUIRED_CLAIMS = frozenset(("sub", "jti", "exp", "type"))
_TOKEN_TYPES = ("access", "refresh")
_DATABASE_OUTAGES = (OperationalError, InterfaceError, PoolTimeout)
_UNCHECKED = object()  # the account could not be looked up (database down)

_MESSAGES = {
    "missing_token": "A Bearer token is required.",
    "invalid_token": "The token is not valid.",
    "expired_token": "The token has expired.",
    "revoked_token": "The token has been revoked.",
}


def revocation_store():
    """The process's revocation store (chosen at start-up)."""
    return current_app.extensions["aura.revocation"]


def _reject(reason: str):
    recorder.auth_failure(reason)
    endpoint = _AUTH_ENDPOINTS.get(request.endpoint or "")
    if endpoint:
        recorder.auth_request(endpoint, False)
        if endpoint == "refresh":
            recorder.token_refresh(False)
    return error_response(401, reason, _MESSAGES[reason])


def init_jwt(app: Flask) -> None:
    """Bind flask-jwt-extended to the app with Aura's settings and callbacks."""
    settings = app.config["AURA"]
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],  # never `none`, never another algorithm
        JWT_ACCESS_TOKEN_EXPIRES=settings.access_token_expires,
        JWT_REFRESH_TOKEN_EXPIRES=settings.refresh_token_expires,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt.init_app(app)

    @jwt.decode_key_loader
    def _decode_key(_header, unverified_claims) -> str:
        # flask-jwt-extended fills in a missing "type" (as "access") and "jti" after decoding,
        # so the claims are required here, as they were signed (the signature is checked next).
        missing = _REQUIRED_CLAIMS - unverified_claims.keys()
        if missing:
            raise pyjwt.InvalidTokenError(f"missing claims: {sorted(missing)}")
        return current_app.config["JWT_SECRET_KEY"]

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header, payload) -> bool:
        # Runs first after the signature check, so it is also where claims are required.
        missing = _REQUIRED_CLAIMS - payload.keys()
        if missing or not isinstance(payload["jti"], str) or not isinstance(payload["sub"], str) \
                or payload["type"] not in _TOKEN_TYPES:
            raise pyjwt.InvalidTokenError(f"missing or malformed claims: {sorted(missing)}")
        return revocation_store().is_revoked(payload["jti"])

    @jwt.user_lookup_loader
    def _account(_header, payload):
        # Every protected route: a genuine token of an account that no longer exists opens
        # nothing (user_lookup_error_loader answers 401). While the database is down the check
        # is left to the route, which answers 503 and counts the outage where it belongs.
        subject = payload["sub"]
        if not (subject.isascii() and subject.isdigit() and len(subject) <= 18):
            return None
        try:
            return db.session.get(User, int(subject))
        except _DATABASE_OUTAGES:
            db.session.rollback()
            return _UNCHECKED

    jwt.unauthorized_loader(lambda _msg: _reject("missing_token"))
    jwt.invalid_token_loader(lambda _msg: _reject("invalid_token"))
    jwt.expired_token_loader(lambda _h, _p: _reject("expired_token"))
    jwt.revoked_token_loader(lambda _h, _p: _reject("revoked_token"))
    jwt.user_lookup_error_loader(lambda _h, _p: _reject("invalid_token"))
    jwt.token_verification_failed_loader(lambda _h, _p: _reject("invalid_token"))
