"""Token revocation: one interface; durable in the database with Redis as the fast path, or the
database alone (standalone mode).

What is revoked is an id: a token's `jti`, or a session's token family (`fam`, shared by every
token issued from one login through all its refreshes). `revoke` answers whether this call
revoked the id, so refresh-token rotation is atomic: two refreshes with the same token cannot
both succeed.

Durability: every revocation is a row of `revoked_tokens` first (the primary key is what makes
the rotation atomic), then a key in Redis with the token's remaining lifetime. Checks read Redis
only, together with a marker key written after Redis was loaded from the table: a Redis that
restarted without persistence has no marker, so the first check after it reloads the unexpired
rows (one worker, under a lock; the others meanwhile ask the database), and nothing revoked is
forgotten.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aura.errors import ServiceUnavailable
from aura.extensions import db
from aura.infra.redis import AUTH_DB, GuardedRedis, record_error
from aura.models import RevokedToken

KEY_PREFIX = "aura:revoked:"
LOADED_MARKER = "aura:revoked:loaded"  # present while Redis holds every unexpired revocation
LOADING_LOCK = "aura:revoked:loading"
_RELOAD_BATCH = 1000


class RevocationStore(Protocol):
    """Where revoked ids are kept until the token (or family) would have expired anyway."""

    mode: str

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Mark an id revoked (`token_type` "family" for a family); False when it already was."""

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """True when the token or its family was revoked."""


def _ttl(expires_at: datetime) -> int:
    return max(1, int((expires_at - datetime.now(UTC)).total_seconds()) + 1)


class SqlRevocationStore:
    """Revocations in the `revoked_tokens` table (standalone mode, and the durable record)."""

    mode = "standalone"

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Insert the id; the primary key makes a second revoke fail."""
        db.session.add(RevokedToken(jti=jti, token_type=token_type, user_id=user_id, expires_at=expires_at))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return False
        return True

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """Look the ids up."""
        ids = [jti] if family is None else [jti, family]
        return db.session.scalar(select(RevokedToken.jti).where(RevokedToken.jti.in_(ids)).limit(1)) is not None


class DurableRevocationStore:
    """The database is the record, Redis the fast path. Fails closed: a Redis error is a 503."""

    mode = "redis"

    def __init__(self, client: GuardedRedis):
        self._redis = client
        self._sql = SqlRevocationStore()

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Insert the row, then set the key - also when the row existed, so a revocation whose
        Redis write failed (503) is completed by the client's retry."""
        new = self._sql.revoke(jti, token_type, user_id, expires_at)
        try:
            self._redis.set(KEY_PREFIX + jti, token_type, ex=_ttl(expires_at))
        except redis.RedisError as exc:
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc
        return new

    def is_revoked(self, jti: str, family: str | None = None) -> bool:
        """One MGET: the marker, the token's key and its family's key."""
        keys = [LOADED_MARKER, KEY_PREFIX + jti] + ([KEY_PREFIX + family] if family else [])
        try:
            values = self._redis.mget(keys)
            if values[0] is None:
                self._reload()
                return self._sql.is_revoked(jti, family)
        except redis.RedisError as exc:
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc
        return any(v is not None for v in values[1:])

    def _reload(self) -> None:
        """Copy every unexpired revocation into Redis, then set the marker (one process)."""
        if not self._redis.set(LOADING_LOCK, "1", nx=True, ex=60):
            return  # another worker is loading; this check asks the database
        now = datetime.now(UTC)
        rows = db.session.execute(
            select(RevokedToken.jti, RevokedToken.token_type, RevokedToken.expires_at).where(
                RevokedToken.expires_at > now
            )
        ).all()
        with self._redis.guarded():
            for start in range(0, len(rows), _RELOAD_BATCH):
                pipe = self._redis.pipeline(transaction=False)
                for jti, token_type, expires_at in rows[start : start + _RELOAD_BATCH]:
                    if expires_at.tzinfo is None:  # SQLite hands back naive UTC
                        expires_at = expires_at.replace(tzinfo=UTC)
                    pipe.set(KEY_PREFIX + jti, token_type, ex=_ttl(expires_at))
                pipe.execute()
        self._redis.set(LOADED_MARKER, now.isoformat())
        self._redis.delete(LOADING_LOCK)
