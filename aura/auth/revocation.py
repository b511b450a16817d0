"""Token revocation: one interface; durable in the database with Redis as the fast path, or the
database alone (standalone mode).

What is revoked is an id: a token's `jti`, or a session's token family (`fam`, shared by every
token issued from one login through all its refreshes). `revoke` answers whether this call
revoked the id, so refresh-token rotation is atomic: two refreshes with the same token cannot
both succeed.

Durability: every revocation is a row of `revoked_tokens` first (the primary key is what makes
the rotation atomic), then a key in Redis with the token's remaining lifetime. Checks read Redis
only, together with a marker key written after Redis was loaded from the table. The marker holds
the `run_id` of the Redis server that was loaded, and a check compares it with the run_id of the
server answering (one Lua script: marker, server identity and keys in one call). A Redis that
restarted empty has no marker; one restarted from an older snapshot, or a replica promoted by a
failover, has a marker naming another server (the snapshot's or the old primary's) - and may
lack revocations made after the snapshot or not yet replicated. Either way the first check after
it reloads the unexpired rows (one worker, under a lock; the others meanwhile ask the database),
and nothing revoked is forgotten. A refresh also asks the database (refreshes are rare), so a
spent or logged-out refresh token never refreshes, whatever Redis holds.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from aura.errors import ServiceUnavailable
from aura.extensions import db
from aura.infra.redis import AUTH_DB, GuardedRedis, record_error
from aura.models import RevokedToken

log = logging.getLogger("aura.revocation")

KEY_PREFIX = "aura:revoked:"
LOADED_MARKER = "aura:revoked:loaded"  # the run_id of the server that holds every unexpired revocation
LOADING_LOCK = "aura:revoked:loading"
_RELOAD_BATCH = 1000
_RUN_ID = "string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')"  # this server's identity, per start
# KEYS: the marker, then the ids -> {1 when the marker names this server, then 1 per id revoked}.
_CHECK = f"""
local found = {{redis.call('GET', KEYS[1]) == {_RUN_ID} and 1 or 0}}
for i = 2, #KEYS do found[i] = redis.call('EXISTS', KEYS[i]) end
return found
"""
# Mark this server loaded, unless it is not the one the reload began on (a failover meanwhile).
_MARK = f"""
local run_id = {_RUN_ID}
if ARGV[1] ~= '' and ARGV[1] ~= run_id then return 0 end
redis.call('SET', KEYS[1], run_id)
return 1
"""


class RevocationStore(Protocol):
    """Where revoked ids are kept until the token (or family) would have expired anyway."""

    mode: str

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Mark an id revoked (`token_type` "family" for a family); False when it already was."""

    def is_revoked(self, jti: str, family: str | None = None, durable: bool = False) -> bool:
        """True when the token or its family was revoked (`durable`: ask the database too)."""


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

    def is_revoked(self, jti: str, family: str | None = None, durable: bool = False) -> bool:
        """Look the ids up."""
        ids = [jti] if family is None else [jti, family]
        return db.session.scalar(select(RevokedToken.jti).where(RevokedToken.jti.in_(ids)).limit(1)) is not None


class DurableRevocationStore:
    """The database is the record, Redis the fast path. Fails closed: a Redis error is a 503."""

    mode = "redis"

    def __init__(self, client: GuardedRedis):
        self._redis = client
        self._sql = SqlRevocationStore()
        self._check = client.register_script(_CHECK)
        self._mark = client.register_script(_MARK)
        # Revocations in the table whose Redis write failed: written at this process's next call.
        self._pending: dict[str, tuple[str, datetime]] = {}

    def revoke(self, jti: str, token_type: str, user_id: int, expires_at: datetime) -> bool:
        """Insert the row, then set the key - also when the row existed, so a revocation whose
        Redis write failed (503) is completed by the client's retry. While the breaker is open
        nothing is written: the 503 comes before the row, not between row and key."""
        if self._redis.breaker.is_open:
            raise ServiceUnavailable("redis")
        new = self._sql.revoke(jti, token_type, user_id, expires_at)
        try:
            self._redis.set(KEY_PREFIX + jti, token_type, ex=_ttl(expires_at))
        except redis.RedisError as exc:
            self._pending[jti] = (token_type, expires_at)
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc
        return new

    def is_revoked(self, jti: str, family: str | None = None, durable: bool = False) -> bool:
        """One script: whether the marker names this server, and the token's and family's keys.
        `durable` (refreshes): when Redis has neither, the table is asked too."""
        keys = [LOADED_MARKER, KEY_PREFIX + jti] + ([KEY_PREFIX + family] if family else [])
        try:
            if self._pending:
                self._write_pending()
            found = self._check(keys=keys)
            if not found[0]:
                self._reload()
                return self._sql.is_revoked(jti, family)
        except redis.RedisError as exc:
            record_error(AUTH_DB, exc)
            raise ServiceUnavailable("redis") from exc
        return any(found[1:]) or (durable and self._sql.is_revoked(jti, family))

    def _write_pending(self) -> None:
        with self._redis.guarded():
            pipe = self._redis.pipeline(transaction=False)
            for jti, (token_type, expires_at) in self._pending.items():
                pipe.set(KEY_PREFIX + jti, token_type, ex=_ttl(expires_at))
            pipe.execute()
        self._pending.clear()

    def _reload(self) -> None:
        """Copy every unexpired revocation into Redis, then mark it with this server's run_id
        (one process; not marked when the primary changed while loading)."""
        if not self._redis.set(LOADING_LOCK, "1", nx=True, ex=60):
            return  # another worker is loading; this check asks the database
        server = self._redis.info("server")["run_id"]
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
        if self._mark(keys=[LOADED_MARKER], args=[server]):
            log.warning("revocations reloaded into redis %s from the database: %d unexpired", server[:8], len(rows))
        self._redis.delete(LOADING_LOCK)
