"""/api/v1/auth: register, login, refresh, logout, me. Views parse, call the service, respond."""

from __future__ import annotations

from typing import Any

from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint

from aura.api.context import services
from aura.api.jwt import current_account, revocation_store, tokens
from aura.api.openapi import BEARER, ApiBlueprint, Decorator, document_errors
from aura.api.rate_limits import LoginAccountGuard, login_limit, register_all_limit, register_limit
from aura.api.schemas import (
    CredentialsSchema,
    LoginSchema,
    LogoutSchema,
    MessageSchema,
    TokenPairSchema,
    UserSchema,
)
from aura.auth import service
from aura.auth.passwords import Passwords
from aura.auth.tokens import TokenPair
from aura.errors import AuthCode
from aura.models import User

blp: ApiBlueprint = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens")

_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429, 503)


def _passwords() -> Passwords:
    return services().passwords


def _tokens(pair: TokenPair) -> dict[str, Any]:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def _login(body: dict[str, Any]) -> dict[str, Any]:
    """The body of `login` (a plain function: mutmut 3 does not mutate decorated ones)."""
    guard = LoginAccountGuard(body["email"], body.get("device_token"))
    guard.admits()
    try:
        pair = service.login(_passwords(), tokens(), body["email"], body["password"])
    except service.AuthError as exc:
        if exc.code != AuthCode.INVALID_CREDENTIALS:
            guard.not_a_failure()
        raise
    except Exception:
        guard.not_a_failure()  # not even tried (every hashing slot taken), or an outage: not a guess
        raise
    guard.not_a_failure()
    return {**_tokens(pair), "device_token": services().devices.issue(guard.account)}


def _logout(body: dict[str, Any] | None) -> dict[str, str]:
    """The body of `logout` (a plain function, as `_login`)."""
    service.logout(revocation_store(), tokens(), current_account(), get_jwt(), (body or {}).get("refresh_token"))
    return {"message": "logged out"}


def _errors(*codes: int) -> Decorator:
    """Document the error responses a route can give (all in the one error shape)."""
    return document_errors(blp, *codes)


@blp.route("/register", methods=["POST"])
@register_limit
@register_all_limit
@blp.arguments(CredentialsSchema)
@blp.response(201, UserSchema)
@_errors(400, 409, 413, 415, 422, 429)
def register(body: dict[str, Any]) -> User:
    """Create an account."""
    # Every password-hashing slot taken: HashingBusy, a 429 at once (aura.api.errors).
    return service.register(_passwords(), body["email"], body["password"])


@blp.route("/login", methods=["POST"])
@login_limit
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@_errors(400, 401, 403, 413, 415, 422, 429)
def login(body: dict[str, Any]) -> dict[str, Any]:
    """Exchange email and password for an access and a refresh token, and a device token: sent
    back with later logins (`device_token`), it keeps this client's own allowance of failed
    logins when guessing from elsewhere has locked the account for unknown clients."""
    return _login(body)


@blp.route("/refresh", methods=["POST"])
@jwt_required(refresh=True)  # type: ignore[untyped-decorator]  # flask-jwt-extended: the decorator is Any
@blp.response(200, TokenPairSchema)
@blp.doc(security=BEARER)
@_errors(401, 403, 429, 503)
def refresh() -> dict[str, Any]:
    """Rotate a refresh token (sent as Bearer): the old one is revoked, a new pair issued."""
    return _tokens(service.refresh(revocation_store(), tokens(), current_account(), get_jwt()))


@blp.route("/logout", methods=["POST"])
@jwt_required()  # type: ignore[untyped-decorator]  # flask-jwt-extended: the decorator is Any
@blp.arguments(LogoutSchema(), required=False)
@blp.response(200, MessageSchema)
@blp.doc(security=BEARER)
@_errors(400, 401, 413, 415, 422, 429, 503)
def logout(body: dict[str, Any] | None) -> dict[str, str]:
    """End the session: the access token (Bearer), every token refreshed from the same login,
    and, when given, the caller's refresh token (and its session)."""
    return _logout(body)


@blp.route("/me", methods=["GET"])
@jwt_required()  # type: ignore[untyped-decorator]  # flask-jwt-extended: the decorator is Any
@blp.response(200, UserSchema)
@blp.doc(security=BEARER)
@_errors(401, 429, 503)
def me() -> User:
    """The account the access token belongs to."""
    return current_account()
