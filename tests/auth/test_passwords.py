"""aura.auth.passwords on its own: a hash verifies its password only; an unknown account never does."""

from __future__ import annotations

import pytest

from aura.auth.hash_slots import HashingBusy, HashSlots
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


def test_the_cost_is_the_settings_and_the_hash_argon2id():
    stored = Passwords(time_cost=2, memory_cost=16).hash("correct-horse-battery-9")
    assert stored.startswith("$argon2id$v=19$m=16,t=2,p=1$")


def test_each_hash_and_verification_holds_a_slot_and_gives_it_back(tmp_path):
    slots = HashSlots(tmp_path, 1)
    passwords = Passwords(time_cost=1, memory_cost=8, slots=slots)
    stored = passwords.hash("correct-horse-battery-9")  # the slot given back after each
    assert passwords.verify(stored, "correct-horse-battery-9")
    assert not passwords.verify(stored, "wrong")
    assert not passwords.verify("not a hash", "wrong")
    with slots.slot():  # every slot taken (by another request)
        for attempt in (
            lambda: passwords.hash("correct-horse-battery-9"),
            lambda: passwords.verify(stored, "correct-horse-battery-9"),
            lambda: passwords.verify(None, "correct-horse-battery-9"),  # an unknown account costs a slot too
        ):
            with pytest.raises(HashingBusy):
                attempt()
    assert passwords.verify(stored, "correct-horse-battery-9")
