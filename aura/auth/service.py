"""The account and session rules behind the auth API; every outcome is counted here.

Views call these functions and turn `AuthError` into the error shape. Each function records
exactly the metrics its outcome moves, so counting lives next to the decision it counts.

Sessions are token families: login starts one (a random `fam` claim in both tokens), each
refresh continues it. Presenting a refresh token that was already rotated is reuse - the token
was stolen, or a client misbehaves - and revokes the whole family, so whoever rotated first
loses the session too (OAuth 2.0 Security BCP, refresh token rotation). Logout ends the family.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask_jwt_extended import create_access_token, create_refresh_token, decode_token
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aura.auth import emails
from aura.auth.passwords import Passwords
from aura.auth.revocation import RevocationStore
from aura.extensions import db
from aura.instrumentation import recorder
from aura.models import User

FAMILY = "family"  # token_type of a revoked family in the store


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
    """Emails are compared and stored trimmed, NFKC-normalised and case-folded."""
    return emails.normalise(email)


def find_user(email: str) -> User | None:
    """The account with this address (also one stored before NFKC normalisation)."""
    candidates = {emails.normalise(email), emails.legacy_normalise(email)}
    return db.session.scalars(select(User).where(User.email.in_(candidates)).order_by(User.id)).first()


def user_by_subject(subject: object) -> User | None:
    """The account a token names (`sub` is the account's random public id)."""
    if not (isinstance(subject, str) and len(subject) == 32 and subject.isascii() and subject.isalnum()):
        return None
    return db.session.scalar(select(User).where(User.public_id == subject))


def register(passwords: Passwords, email: str, password: str) -> User:
    """Create an account; 409 when the address, or one that looks the same, is taken."""
    skeleton = emails.skeleton(email)
    taken = db.session.scalar(select(User.id).where(User.email_skeleton == skeleton).limit(1))
    if taken is None:
        user = User(email=normalise_email(email), email_skeleton=skeleton, password_hash=passwords.hash(password))
        db.session.add(user)
        try:
            db.session.commit()
            recorder.auth_request("register", True)
            recorder.registration(True)
            return user
        except IntegrityError:
            db.session.rollback()
    _fail("register", None)
    recorder.registration(False)
    raise AuthError(409, "email_taken", "An account with this email (or one that looks the same) already exists.")


def login(passwords: Passwords, email: str, password: str, expires_in: int) -> TokenPair:
    """Check credentials; unknown email and wrong password look the same from outside."""
    user = find_user(email)
    if not passwords.verify(user.password_hash if user else None, password):
        _fail("login", "invalid_credentials")
        raise AuthError(401, "invalid_credentials", "Email or password is incorrect.")
    if not user.is_active:
        _fail("login", "inactive_user")
        raise AuthError(403, "inactive_user", "This account is deactivated.")
    recorder.auth_request("login", True)
    return _issue(user.public_id, uuid.uuid4().hex, expires_in)


def refresh(store: RevocationStore, user: User, claims: dict, expires_in: int, family_lifetime: int) -> TokenPair:
    """Rotate a refresh token: revoke the presented one, issue a new pair of the same family."""
    if not user.is_active:
        _fail("refresh", "inactive_user")
        recorder.token_refresh(False)
        raise AuthError(403, "inactive_user", "This account cannot refresh.")
    if not store.revoke(claims["jti"], "refresh", user.id, _expiry(claims)):
        # Another request rotated this token a moment ago: it is spent, and reused.
        revoke_family(store, user.id, claims, family_lifetime)
        _fail("refresh", "revoked_token")
        recorder.token_refresh(False)
        raise AuthError(401, "revoked_token", "This token has been revoked.")
    recorder.token_revoked("refresh")
    recorder.auth_request("refresh", True)
    recorder.token_refresh(True)
    return _issue(user.public_id, claims.get("fam") or uuid.uuid4().hex, expires_in)


def revoke_family(store: RevocationStore, user_id: int, claims: dict, lifetime: int) -> bool:
    """End the session a token belongs to; counted once as a revoked refresh token."""
    family = claims.get("fam")
    if not isinstance(family, str) or not family:
        return False  # a token from before families: only itself can be revoked
    if store.revoke(family, FAMILY, user_id, datetime.now(UTC) + timedelta(seconds=lifetime)):
        recorder.token_revoked("refresh")
        return True
    return False


def logout(store: RevocationStore, user: User, claims: dict, refresh_token: str | None, family_lifetime: int) -> None:
    """Revoke the access token and its session; a refresh token given in the body (and its
    session, when another one) too."""
    refresh_claims = None
    if refresh_token is not None:
        refresh_claims = _decode_refresh(refresh_token)
        if refresh_claims["sub"] != claims["sub"]:
            _fail("logout", "invalid_token")
            raise AuthError(401, "invalid_token", "The refresh token belongs to another user.")
    if store.revoke(claims["jti"], "access", user.id, _expiry(claims)):
        recorder.token_revoked("access")
    revoke_family(store, user.id, claims, family_lifetime)
    if refresh_claims:
        # Counted once per session: a family's revocation stands for its refresh token.
        revoked = store.revoke(refresh_claims["jti"], "refresh", user.id, _expiry(refresh_claims))
        if not refresh_claims.get("fam"):  # a token from before families
            if revoked:
                recorder.token_revoked("refresh")
        elif refresh_claims["fam"] != claims.get("fam"):  # another session of the same user
            revoke_family(store, user.id, refresh_claims, family_lifetime)
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


def _issue(subject: str, family: str, expires_in: int) -> TokenPair:
    claims = {"fam": family}
    pair = TokenPair(
        create_access_token(subject, additional_claims=claims),
        create_refresh_token(subject, additional_claims=claims),
        expires_in,
    )
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
