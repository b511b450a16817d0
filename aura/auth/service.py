"""The account and session rules behind the auth API; every outcome is counted here.

Views call these functions and turn `AuthError` into the error shape. Each function records
exactly the metrics its outcome moves, so counting lives next to the decision it counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aura.auth.passwords import Passwords
from aura.auth.revocation import RevocationStore
from aura.extensions import db
from aura.instrumentation import recorder
from aura.models import User


class AuthError(Exception):
    """An auth outcome the client caused: HTTP status, error code and message."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


@dataclass(frozen=True)
class TokenPair:
    """What login and refresh return."""

    access_token: str
    refresh_token: str
    expires_in: int


def normalise_email(email: str) -> str:
    """Emails are compared and stored lower-cased and trimmed."""
    return email.strip().lower()


def register(passwords: Passwords, email: str, password: str) -> User:
    """Create an account; 409 when the email is taken (case-insensitively)."""
    user = User(email=normalise_email(email), password_hash=passwords.hash(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        _fail("register", None)
        recorder.registration(False)
        raise AuthError(409, "email_taken", "An account with this email already exists.") from None
    recorder.auth_request("register", True)
    recorder.registration(True)
    return user


def login(passwords: Passwords, email: str, password: str, expires_in: int) -> TokenPair:
    """Check credentials; unknown email and wrong password look the same from outside."""
    user = db.session.scalar(select(User).where(User.email == normalise_email(email)))
    if not passwords.verify(user.password_hash if user else None, password):
        _fail("login", "invalid_credentials")
        raise AuthError(401, "invalid_credentials", "Email or password is incorrect.")
    if not user.is_active:
        _fail("login", "inactive_user")
        raise AuthError(403, "inactive_user", "This account is deactivated.")
    recorder.auth_request("login", True)
    return _issue(user.id, expires_in)


def refresh(store: RevocationStore, claims: dict, expires_in: int) -> TokenPair:
    """Rotate a refresh token: revoke the presented one, issue a new pair."""
    user = db.session.get(User, int(claims["sub"]))
    if user is None or not user.is_active:
        reason = "inactive_user" if user else "invalid_token"
        _fail("refresh", reason)
        recorder.token_refresh(False)
        raise AuthError(401 if user is None else 403, reason, "This account cannot refresh.")
    if not store.revoke(claims["jti"], "refresh", user.id, _expiry(claims)):
        # Another request rotated this token a moment ago: it is spent.
        _fail("refresh", "revoked_token")
        recorder.token_refresh(False)
        raise AuthError(401, "revoked_token", "This token has been revoked.")
    recorder.token_revoked("refresh")
    recorder.auth_request("refresh", True)
    recorder.token_refresh(True)
    return _issue(user.id, expires_in)


def logout(store: RevocationStore, claims: dict, refresh_token: str | None) -> None:
    """Revoke the access token and, when given, the caller's own refresh token."""
    refresh_claims = None
    if refresh_token is not None:
        refresh_claims = _decode_refresh(refresh_token)
        if refresh_claims["sub"] != claims["sub"]:
            _fail("logout", "invalid_token")
            raise AuthError(401, "invalid_token", "The refresh token belongs to another user.")
    if store.revoke(claims["jti"], "access", int(claims["sub"]), _expiry(claims)):
        recorder.token_revoked("access")
    if refresh_claims and store.revoke(refresh_claims["jti"], "refresh",
                                       int(refresh_claims["sub"]), _expiry(refresh_claims)):
        recorder.token_revoked("refresh")
    recorder.auth_request("logout", True)


def _decode_refresh(token: str) -> dict:
    """Decode a refresh token from a body; any defect is the client's 401."""
    import jwt as pyjwt
    from flask_jwt_extended.exceptions import JWTExtendedException

    try:
        claims = decode_token(token)
    except pyjwt.ExpiredSignatureError:
        _fail("logout", "expired_token")
        raise AuthError(401, "expired_token", "The refresh token has expired.") from None
    except (pyjwt.PyJWTError, JWTExtendedException, ValueError):
        _fail("logout", "invalid_token")
        raise AuthError(401, "invalid_token", "The refresh token is not valid.") from None
    if claims.get("type") != "refresh":
        _fail("logout", "invalid_token")
        raise AuthError(401, "invalid_token", "refresh_token must be a refresh token.")
    return claims


def _issue(user_id: int, expires_in: int) -> TokenPair:
    identity = str(user_id)
    pair = TokenPair(create_access_token(identity), create_refresh_token(identity), expires_in)
    recorder.token_issued("access")
    recorder.token_issued("refresh")
    return pair


def _expiry(claims: dict) -> datetime:
    return datetime.fromtimestamp(claims["exp"], UTC)


def _fail(endpoint: str, reason: str | None) -> None:
    """Count a failed auth call, and its reason when it is an authentication failure."""
    recorder.auth_request(endpoint, False)
    if reason:
        recorder.auth_failure(reason)
