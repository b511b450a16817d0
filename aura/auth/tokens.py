"""Access and refresh tokens: HS256-signed JWTs that name an account and its session.

Claims: `sub` (the account's public id), `jti` (this token's id), `type` (access|refresh),
`fam` (the session: every token refreshed from one login shares it), `iat`, `nbf`, `exp`, and
`fresh` - the same claims flask-jwt-extended writes, so the web layer's route guard
(`aura.api.jwt`) reads them with the same secret and algorithm.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"  # the only algorithm issued or accepted: never `none`, never another
REQUIRED_CLAIMS = frozenset(("sub", "jti", "exp", "type"))
TOKEN_TYPES = ("access", "refresh")

Claims = dict[str, Any]


@dataclass(frozen=True)
class TokenPair:
    """What login and refresh return."""

    access_token: str
    refresh_token: str
    expires_in: int


def plain_id(value: object) -> bool:
    """Ids the server issues (uuid4, hex): short printable ASCII, safe to look up anywhere."""
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.replace("-", "").isalnum()


def well_formed(claims: Claims) -> bool:
    """A signed token's claims have the shape this server issues."""
    return (
        REQUIRED_CLAIMS <= claims.keys()
        and plain_id(claims["jti"])
        and isinstance(claims["sub"], str)
        and claims["type"] in TOKEN_TYPES
        and ("fam" not in claims or plain_id(claims["fam"]))
    )


class Tokens:
    """Issues token pairs and reads tokens back, with one secret and the configured lifetimes."""

    def __init__(self, secret: str, access_lifetime: int, refresh_lifetime: int):
        self.secret = secret
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime

    def issue(self, subject: str, family: str) -> TokenPair:
        """A new access and refresh token of one session (`family`)."""
        return TokenPair(
            self._encode(subject, "access", family, self.access_lifetime),
            self._encode(subject, "refresh", family, self.refresh_lifetime),
            self.access_lifetime,
        )

    def decode(self, token: str) -> Claims:
        """The claims of a token this server signed and that has not expired.

        Raises `jwt.ExpiredSignatureError` when it expired, `jwt.PyJWTError` for any other defect
        (bad signature, another algorithm, missing or malformed claims).
        """
        claims: Claims = jwt.decode(
            token, self.secret, algorithms=[ALGORITHM], options={"require": sorted(REQUIRED_CLAIMS)}
        )
        if not well_formed(claims):
            raise jwt.InvalidTokenError("malformed claims")
        return claims

    def _encode(self, subject: str, token_type: str, family: str, lifetime: int) -> str:
        now = datetime.now(UTC)
        claims: Claims = {
            "fresh": False,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "type": token_type,
            "sub": subject,
            "nbf": now,
            "exp": now + timedelta(seconds=lifetime),
            "fam": family,
        }
        return jwt.encode(claims, self.secret, ALGORITHM)
