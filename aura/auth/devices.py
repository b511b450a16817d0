"""Device tokens: proof that a client logged in to an account before (OWASP's device cookies).

Every successful login hands the client a device token for that account. A login that presents
one (for the same account, unexpired, signed here) is a known client: its failures count against
that device's own allowance (RATE_LIMIT_LOGIN_DEVICE), never against the account's, so the
account-wide lockout that guessing from many addresses causes does not reach it - the owner
keeps their tries whatever others do. A device that spent its allowance is treated as unknown
again until its window ends; a stolen device token buys a thief that allowance and no more.

The token is a JWT (HS256) signed with a key derived from JWT_SECRET_KEY, so it can never pass
for an access or refresh token. Claims: `type` "device", `acct` (a hash of the account's
normalised address - the token says which account it is for without showing the address),
`jti` (the device id), `iat`, `exp`.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
DEVICE = "device"


def account_key(account: str) -> str:
    """The `acct` claim of a (normalised) address."""
    return hashlib.sha256(account.encode()).hexdigest()[:32]


class DeviceTokens:
    """Issues device tokens and reads them back for one account."""

    def __init__(self, secret: str, lifetime: int):
        self._key = hmac.new(secret.encode(), b"aura device tokens", hashlib.sha256).hexdigest()
        self.lifetime = lifetime

    def issue(self, account: str) -> str:
        """A new device token for the (normalised) address `account`."""
        now = datetime.now(UTC)
        claims = {
            "type": DEVICE,
            "acct": account_key(account),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + timedelta(seconds=self.lifetime),
        }
        return jwt.encode(claims, self._key, ALGORITHM)

    def device(self, token: object, account: str) -> str | None:
        """The device id of a genuine, unexpired device token for `account`; None otherwise."""
        if not isinstance(token, str) or not token:
            return None
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], options={"require": ["exp", "jti", "acct"]})
        except jwt.PyJWTError:
            return None
        device = claims.get("jti")
        if claims.get("type") != DEVICE or claims.get("acct") != account_key(account):
            return None
        if not (isinstance(device, str) and len(device) == 32 and device.isascii() and device.isalnum()):
            return None
        return device
