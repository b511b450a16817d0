"""Password hashing with Argon2id (memory-hard), cost taken from the settings, within the
instance's budget of hashes in flight (`aura.auth.hash_slots`)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from aura.auth.hash_slots import HashSlots


class Passwords:
    """Hash and verify passwords; verify unknown accounts at the same cost as known ones.

    With `slots`, each hash or verification holds one of the instance's slots, and raises
    `HashingBusy` at once when none is free."""

    def __init__(self, time_cost: int, memory_cost: int, slots: HashSlots | None = None):
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
        self._slots = slots
        # Verifying against this for an unknown email makes both failures take the same time.
        self._dummy_hash = self._hasher.hash("not-a-real-password-for-timing")

    def _slot(self) -> AbstractContextManager[None]:
        return self._slots.slot() if self._slots is not None else nullcontext()

    def hash(self, password: str) -> str:
        """Hash a new password."""
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; `None` hash means unknown account (still hashed)."""
        with self._slot():
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password) and (password_hash is not None)
            except (VerificationError, InvalidHashError):
                return False
