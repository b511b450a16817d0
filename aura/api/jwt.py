"""flask-jwt-extended wiring: the route guard that reads Aura's tokens (`aura.auth.tokens`),
revocation lookup, and failure callbacks in the error shape.

The callbacks run before any view when a token is missing or bad, so they are where those
failures are counted: `auth_failures_total{reason}` always, plus the auth endpoint's own
`auth_requests_total` (and `auth_token_refreshes_total` for refresh) when the call was one.
"""

from __future__ import annotations

from typing import Any

import jwt as pyjwt
from flask import Flask, Response, current_app, g, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import JWTManager, get_current_user
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from aura.api.context import services
from aura.api.errors import aura_error_response
from aura.auth.revocation import RevocationStore
from aura.auth.service import revoke_family, user_by_subject
from aura.auth.tokens import ALGORITHM, REQUIRED_CLAIMS, Tokens, well_formed
from aura.errors import AuraError, AuthCode, ServiceUnavailable
from aura.extensions import db
from aura.instrumentation import recorder
from aura.models import User

jwt = JWTManager()  # bound to the app by `init_jwt`

# Flask endpoint -> the spec's `endpoint` label, for auth routes guarded by a token.
_AUTH_ENDPOINTS = {"auth.refresh": "refresh", "auth.logout": "logout"}

_DATABASE_OUTAGES = (OperationalError, InterfaceError, PoolTimeout)
_UNCHECKED = object()  # the account could not be looked up (database down)

_MESSAGES = {
    AuthCode.MISSING_TOKEN: "A Bearer token is required.",
    AuthCode.INVALID_TOKEN: "The token is not valid.",
    AuthCode.EXPIRED_TOKEN: "The token has expired.",
    AuthCode.REVOKED_TOKEN: "The token has been revoked.",
    AuthCode.INACTIVE_USER: "This account is deactivated.",
}


def current_account() -> User:
    """The signed-in account of this request (looked up once, by the JWT callbacks)."""
    user = get_current_user()  # what `_account` looked up (flask-jwt-extended types it Any)
    if user is _UNCHECKED:
        raise ServiceUnavailable("database")
    account: User = user  # a guarded route runs only with one (else user_lookup_error_loader: 401)
    return account


def current_user_id() -> int | None:
    """The signed-in account's row id, or None while the database could not be asked."""
    user = get_current_user()
    return None if user is _UNCHECKED else user.id


def revocation_store() -> RevocationStore:
    """The process's revocation store (chosen at start-up)."""
    return services().revocation


def tokens() -> Tokens:
    """The process's token issuer (secret and lifetimes from the settings)."""
    return services().tokens


def _reject(reason: AuthCode) -> Response:
    recorder.auth_failure(reason)
    endpoint = _AUTH_ENDPOINTS.get(request.endpoint or "")
    if endpoint:
        recorder.auth_request(endpoint, False)
        if endpoint == "refresh":
            recorder.token_refresh(False)
    return aura_error_response(AuraError(reason, _MESSAGES[reason]))


def _revoked(_header: dict[str, Any], payload: dict[str, Any]) -> ResponseReturnValue | HTTPException:
    """A revoked refresh token presented again is reuse: its whole family (session) ends. When
    the database or Redis is down that cannot be recorded: 503, so the client's retry does it
    (an error raised in this handler would be a 500)."""
    if payload.get("type") == "refresh":
        try:
            user = user_by_subject(payload["sub"])
            if user is not None:
                revoke_family(revocation_store(), user.id, payload, current_app.config["AURA"].refresh_token_expires)
        except _DATABASE_OUTAGES:
            db.session.rollback()
            return current_app.handle_user_exception(ServiceUnavailable("database"))
        except ServiceUnavailable as exc:
            return current_app.handle_user_exception(exc)
    return _reject(AuthCode.REVOKED_TOKEN)


def _lookup_failed(_header: dict[str, Any], _payload: dict[str, Any]) -> Response:
    if g.get("aura_inactive_user"):
        return _reject(AuthCode.INACTIVE_USER)
    return _reject(AuthCode.INVALID_TOKEN)


# The callbacks' bodies, as plain functions (mutmut 3 does not mutate decorated ones).


def _decode_key_for(unverified_claims: dict[str, Any]) -> str:
    # flask-jwt-extended fills in a missing "type" (as "access") and "jti" after decoding,
    # so the claims are required here, as they were signed (the signature is checked next).
    missing = REQUIRED_CLAIMS - unverified_claims.keys()
    if missing:
        raise pyjwt.InvalidTokenError(f"missing claims: {sorted(missing)}")
    key: str = current_app.config["JWT_SECRET_KEY"]
    return key


def _revoked_or_malformed(payload: dict[str, Any]) -> bool:
    # Runs first after the signature check, so it is also where claims are required.
    if not well_formed(payload):
        raise pyjwt.InvalidTokenError(f"missing or malformed claims: {sorted(REQUIRED_CLAIMS - payload.keys())}")
    family = payload.get("fam")
    # A refresh also asks the database (rare, and what a forgetful Redis must not decide).
    return revocation_store().is_revoked(
        payload["jti"], family if isinstance(family, str) and family else None, durable=payload["type"] == "refresh"
    )


def _account_of(payload: dict[str, Any]) -> User | object | None:
    # Every protected route: a genuine token of an account that no longer exists opens
    # nothing (user_lookup_error_loader answers 401), nor one of a deactivated account (403,
    # from the next request on). While the database is down the check is left to the route,
    # which answers 503 and counts the outage where it belongs.
    try:
        user = user_by_subject(payload["sub"])
    except _DATABASE_OUTAGES:
        db.session.rollback()
        return _UNCHECKED
    if user is not None and not user.is_active:
        g.aura_inactive_user = True
        return None
    return user


def init_jwt(app: Flask) -> None:
    """Bind flask-jwt-extended to the app with Aura's settings and callbacks."""
    settings = app.config["AURA"]
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key,
        JWT_ALGORITHM=ALGORITHM,
        JWT_DECODE_ALGORITHMS=[ALGORITHM],  # never `none`, never another algorithm
        JWT_ACCESS_TOKEN_EXPIRES=settings.access_token_expires,
        JWT_REFRESH_TOKEN_EXPIRES=settings.refresh_token_expires,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt.init_app(app)

    @jwt.decode_key_loader
    def _decode_key(_header: Any, unverified_claims: dict[str, Any]) -> str:
        return _decode_key_for(unverified_claims)

    @jwt.token_in_blocklist_loader
    def _is_revoked(_header: Any, payload: dict[str, Any]) -> bool:
        return _revoked_or_malformed(payload)

    @jwt.user_lookup_loader
    def _account(_header: dict[str, Any], payload: dict[str, Any]) -> User | object | None:
        return _account_of(payload)

    jwt.unauthorized_loader(lambda _msg: _reject(AuthCode.MISSING_TOKEN))
    jwt.invalid_token_loader(lambda _msg: _reject(AuthCode.INVALID_TOKEN))
    jwt.expired_token_loader(lambda _h, _p: _reject(AuthCode.EXPIRED_TOKEN))
    jwt.revoked_token_loader(_revoked)
    jwt.user_lookup_error_loader(_lookup_failed)
    jwt.token_verification_failed_loader(lambda _h, _p: _reject(AuthCode.INVALID_TOKEN))
