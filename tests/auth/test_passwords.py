"""aura.auth.passwords on its own: a hash verifies its password only; an unknown account never does."""

from __future__ import annotations

from aura.auth.passwords import Passwords


def test_a_hash_verifies_its_password_and_nothing_else():
    passwords = Passwords(time_cost=1, memory_cost=8)
    stored = passwords.hash("correct-horse-battery-9")
    assert passwords.verify(stored, "correct-horse-battery-9")
    assert not passwords.verify(stored, "correct-horse-battery-8")
    assert not passwords.verify("not a hash", "correct-horse-battery-9")


def test_an_unknown_account_is_refused_even_with_the_dummy_password():
    # verify(None, ...) hashes against a dummy, for timing; it must never say yes.
    assert not Passwords(time_cost=1, memory_cost=8).verify(None, "not-a-real-password-for-timing")
