"""Password hashing with Argon2id (memory-hard), cost taken from the settings."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hash and verify passwords; verify unknown accounts at the same cost as known ones."""

    def __init__(self, time_cost: int, memory_cost: int):
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
        # Verifying against this for an unknown email makes both failures take the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password-for-timing")

    def hash(self, password: str) -> str:
        """Hash a new password."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; `None` hash means unknown account (still hashed)."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and (password_hash is not None)
        except (VerificationError, InvalidHashError):
            return False
