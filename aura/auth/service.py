"""The account and session rules behind the auth API; every outcome is counted here.

Views call these functions; an `AuthError` (a code and a message) is turned into the error
shape, with its HTTP status, by the web layer. Each function records
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

import jwt
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from aura.auth import emails
from aura.auth.passwords import Passwords
from aura.auth.revocation import RevocationStore
from aura.auth.tokens import Claims, TokenPair, Tokens
from aura.errors import AuraError, AuthCode
from aura.extensions import db
from aura.instrumentation import recorder
from aura.models import RevokedToken, User, WorkflowRun

FAMILY = "family"  # token_type of a revoked family in the store


class AuthError(AuraError):
    """An auth outcome the client caused: a code (e.g. `invalid_credentials`) and a message."""


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
    raise AuthError(AuthCode.EMAIL_TAKEN, "An account with this email (or one that looks the same) already exists.")


def login(passwords: Passwords, tokens: Tokens, email: str, password: str) -> TokenPair:
    """Check credentials; unknown email and wrong password look the same from outside."""
    user = find_user(email)
    verified = passwords.verify(user.password_hash if user else None, password)  # hashes either way
    if user is None or not verified:
        _fail("login", AuthCode.INVALID_CREDENTIALS)
        raise AuthError(AuthCode.INVALID_CREDENTIALS, "Email or password is incorrect.")
    if not user.is_active:
        _fail("login", AuthCode.INACTIVE_USER)
        raise AuthError(AuthCode.INACTIVE_USER, "This account is deactivated.")
    recorder.auth_request("login", True)
    return _issue(tokens, user.public_id, uuid.uuid4().hex)


def refresh(store: RevocationStore, tokens: Tokens, user: User, claims: Claims) -> TokenPair:
    """Rotate a refresh token: revoke the presented one, issue a new pair of the same family."""
    if not user.is_active:
        _fail("refresh", AuthCode.INACTIVE_USER)
        recorder.token_refresh(False)
        raise AuthError(AuthCode.INACTIVE_USER, "This account cannot refresh.")
    if not store.revoke(claims["jti"], "refresh", user.id, _expiry(claims)):
        # Another request rotated this token a moment ago: it is spent, and reused.
        revoke_family(store, user.id, claims, tokens.refresh_lifetime)
        _fail("refresh", AuthCode.REVOKED_TOKEN)
        recorder.token_refresh(False)
        raise AuthError(AuthCode.REVOKED_TOKEN, "This token has been revoked.")
    recorder.token_revoked("refresh")
    recorder.auth_request("refresh", True)
    recorder.token_refresh(True)
    return _issue(tokens, user.public_id, claims.get("fam") or uuid.uuid4().hex)


def revoke_family(store: RevocationStore, user_id: int, claims: Claims, lifetime: int) -> bool:
    """End the session a token belongs to; counted once as a revoked refresh token."""
    family = claims.get("fam")
    if not isinstance(family, str) or not family:
        return False  # a token from before families: only itself can be revoked
    if store.revoke(family, FAMILY, user_id, datetime.now(UTC) + timedelta(seconds=lifetime)):
        recorder.token_revoked("refresh")
        return True
    return False


def logout(store: RevocationStore, tokens: Tokens, user: User, claims: Claims, refresh_token: str | None) -> None:
    """Revoke the access token and its session; a refresh token given in the body (and its
    session, when another one) too."""
    family_lifetime = tokens.refresh_lifetime
    refresh_claims = None
    if refresh_token is not None:
        refresh_claims = _decode_refresh(tokens, refresh_token)
        if refresh_claims["sub"] != claims["sub"]:
            _fail("logout", AuthCode.INVALID_TOKEN)
            raise AuthError(AuthCode.INVALID_TOKEN, "The refresh token belongs to another user.")
    # The session first: once its family is revoked every token of it is refused, so a logout
    # cut short by an outage (503) has either ended the session or left it whole for the retry -
    # never the access token revoked and the refresh token alive (the retry would be refused).
    revoke_family(store, user.id, claims, family_lifetime)
    if store.revoke(claims["jti"], "access", user.id, _expiry(claims)):
        recorder.token_revoked("access")
    if refresh_claims:
        # Counted once per session: a family's revocation stands for its refresh token.
        revoked = store.revoke(refresh_claims["jti"], "refresh", user.id, _expiry(refresh_claims))
        if not refresh_claims.get("fam"):  # a token from before families
            if revoked:
                recorder.token_revoked("refresh")
        elif refresh_claims["fam"] != claims.get("fam"):  # another session of the same user
            revoke_family(store, user.id, refresh_claims, family_lifetime)
    recorder.auth_request("logout", True)


@dataclass(frozen=True)
class DeletedAccount:
    """What deleting an account removed."""

    email: str
    runs: int
    revocations: int


def delete_account(user: User) -> DeletedAccount:
    """Delete an account with its workflow runs and its revocation rows, in one transaction.

    Its tokens open nothing from the next request on: every protected route looks up the
    token's `sub`, a public id that no account will have again. Its row id is never reused
    (SQLite AUTOINCREMENT, PostgreSQL's sequence), so nothing left behind can name a newer account.
    """
    runs = db.session.scalar(select(func.count()).select_from(WorkflowRun).where(WorkflowRun.user_id == user.id))
    revocations = db.session.scalar(
        select(func.count()).select_from(RevokedToken).where(RevokedToken.user_id == user.id)
    )
    db.session.execute(delete(RevokedToken).where(RevokedToken.user_id == user.id))
    db.session.execute(delete(WorkflowRun).where(WorkflowRun.user_id == user.id))  # ON DELETE CASCADE too
    db.session.delete(user)
    db.session.commit()
    return DeletedAccount(user.email, runs or 0, revocations or 0)


def _decode_refresh(tokens: Tokens, token: str) -> Claims:
    """Decode a refresh token from a body; any defect is the client's `invalid_token`."""
    try:
        claims = tokens.decode(token)
    except jwt.ExpiredSignatureError:
        _fail("logout", AuthCode.EXPIRED_TOKEN)
        raise AuthError(AuthCode.EXPIRED_TOKEN, "The refresh token has expired.") from None
    except (jwt.PyJWTError, ValueError):
        _fail("logout", AuthCode.INVALID_TOKEN)
        raise AuthError(AuthCode.INVALID_TOKEN, "The refresh token is not valid.") from None
    if claims.get("type") != "refresh":
        _fail("logout", AuthCode.INVALID_TOKEN)
        raise AuthError(AuthCode.INVALID_TOKEN, "refresh_token must be a refresh token.")
    return claims


def _issue(tokens: Tokens, subject: str, family: str) -> TokenPair:
    pair = tokens.issue(subject, family)
    recorder.token_issued("access")
    recorder.token_issued("refresh")
    return pair


def _expiry(claims: Claims) -> datetime:
    return datetime.fromtimestamp(claims["exp"], UTC)


def _fail(endpoint: str, reason: AuthCode | None) -> None:
    """Count a failed auth call, and its reason when it is an authentication failure."""
    recorder.auth_request(endpoint, False)
    if reason:
        recorder.auth_failure(reason)
