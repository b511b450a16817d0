"""Token revocation: one interface, a Redis backend and a SQL backend (standalone mode).

`revoke` answers whether this call revoked the token, so that refresh-token rotation is atomic:
two concurrent refreshes with the same token cannot both succeed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import redis
from sqlalchemy.exc import IntegrityError

from aura.errors import ServiceUnavailable
from aura.extensions import db
from aura.infra.redis import AUTH_DB, record_error
from aura.models import RevokedToken

KEY_PREFIX = "aura:revoked:"


class RevocationStore(Protocol):
    """Where revoked token ids (JTIs) are kept until the token would have expired anyway."""

    mode: str

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Mark a token revoked; False when it already was."""

    def is_revoked(self, jti: str) -> bool:
        """True when the token was revoked."""


class RedisRevocationStore:
    """One key per JTI in `auth_db`, expiring with the token. Fails closed: errors raise 503."""

    mode = "redis"

    def __init__(self, client: redis.Redis):
        self._redis = client

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """SET NX with the token's remaining lifetime (at least one second)."""
        ttl = max(1, int((expires_at - datetime.now(UTC)).total_seconds()) + 1)
        try:
            return bool(self._redis.set(KEY_PREFIX + jti, token_type, nx=True, ex=ttl))
        except redis.RedisError as exc:
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc

    def is_revoked(self, jti: str) -> bool:
        """A token whose state cannot be checked is never accepted."""
        try:
            return bool(self._redis.exists(KEY_PREFIX + jti))
        except redis.RedisError as exc:
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc


class SqlRevocationStore:
    """Revocations in the `revoked_tokens` table, for a machine without Redis."""

    mode = "standalone"

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Insert the JTI; the primary key makes a second revoke fail."""
        db.session.add(RevokedToken(jti=jti, token_type=token_type, user_id=user_id,
                                    expires_at=expires_at))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            return False
        return True

    def is_revoked(self, jti: str) -> bool:
        """Look the JTI up."""
        return db.session.get(RevokedToken, jti) is not None
