"""/api/v1/auth: register, login, refresh, logout, me. Views parse, call the service, respond."""

from __future__ import annotations

from flask import current_app, request
from flask_jwt_extended import get_jwt, jwt_required
from flask_smorest import Blueprint

from aura.api.errors import aura_error_response, error_response
from aura.api.jwt import current_account, revocation_store, tokens
from aura.api.openapi import BEARER, document_errors
from aura.api.rate_limits import (
    LoginAccountGuard,
    client_address,
    keep_own_retry_after,
    login_limit,
    register_all_limit,
    register_limit,
)
from aura.api.schemas import (
    CredentialsSchema,
    LoginSchema,
    LogoutSchema,
    MessageSchema,
    TokenPairSchema,
    UserSchema,
)
from aura.auth import service
from aura.auth.hash_slots import HashingBusy
from aura.auth.tokens import TokenPair
from aura.instrumentation import recorder

blp = Blueprint("auth", __name__, url_prefix="/api/v1/auth", description="Accounts and tokens")

_ERRORS = (400, 401, 403, 409, 413, 415, 422, 429, 503)


def _passwords():
    return current_app.extensions["aura.passwords"]


def _tokens(pair: TokenPair) -> dict:
    return {
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
    }


def _errors(*codes: int):
    """Document the error responses a route can give (all in the one error shape)."""
    return document_errors(blp, *codes)


def _hashing_busy(exc: HashingBusy):
    """429 at once: every password-hashing slot of the instance is taken (a flood), retry soon."""
    rule = request.url_rule  # the view's own route, always matched here
    recorder.rate_limit_hit(rule.rule if rule is not None else request.path, client_address())
    keep_own_retry_after()
    return error_response(
        429, exc.code, exc.message, {"limit": f"{exc.slots} at once", "per": "instance"}, headers={"Retry-After": "1"}
    )


@blp.route("/register", methods=["POST"])
@register_limit
@register_all_limit
@blp.arguments(CredentialsSchema)
@blp.response(201, UserSchema)
@_errors(400, 409, 413, 415, 422, 429)
def register(body):
    """Create an account."""
    try:
        return service.register(_passwords(), body["email"], body["password"])
    except HashingBusy as exc:
        return _hashing_busy(exc)


@blp.route("/login", methods=["POST"])
@login_limit
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@_errors(400, 401, 403, 413, 415, 422, 429)
def login(body):
    """Exchange email and password for an access and a refresh token, and a device token: sent
    back with later logins (`device_token`), it keeps this client's own allowance of failed
    logins when guessing from elsewhere has locked the account for unknown clients."""
    guard = LoginAccountGuard(body["email"], body.get("device_token"))
    refused = guard.admits()
    if refused is not None:
        return refused
    try:
        pair = service.login(_passwords(), tokens(), body["email"], body["password"])
    except service.AuthError as exc:
        if exc.code != "invalid_credentials":
            guard.not_a_failure()
        return aura_error_response(exc)
    except HashingBusy as exc:
        guard.not_a_failure()  # not even tried
        return _hashing_busy(exc)
    except Exception:
        guard.not_a_failure()  # an outage is not a guess
        raise
    guard.not_a_failure()
    return {**_tokens(pair), "device_token": current_app.extensions["aura.devices"].issue(guard.account)}


@blp.route("/refresh", methods=["POST"])
@jwt_required(refresh=True)
@blp.response(200, TokenPairSchema)
@blp.doc(security=BEARER)
@_errors(401, 403, 429, 503)
def refresh():
    """Rotate a refresh token (sent as Bearer): the old one is revoked, a new pair issued."""
    return _tokens(service.refresh(revocation_store(), tokens(), current_account(), get_jwt()))


@blp.route("/logout", methods=["POST"])
@jwt_required()
@blp.arguments(LogoutSchema(), required=False)
@blp.response(200, MessageSchema)
@blp.doc(security=BEARER)
@_errors(400, 401, 413, 415, 422, 429, 503)
def logout(body):
    """End the session: the access token (Bearer), every token refreshed from the same login,
    and, when given, the caller's refresh token (and its session)."""
    service.logout(revocation_store(), tokens(), current_account(), get_jwt(), (body or {}).get("refresh_token"))
    return {"message": "logged out"}


@blp.route("/me", methods=["GET"])
@jwt_required()
@blp.response(200, UserSchema)
@blp.doc(security=BEARER)
@_errors(401, 429, 503)
def me():
    """The account the access token belongs to."""
    return current_account()
