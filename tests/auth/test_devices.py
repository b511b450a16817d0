"""aura.auth.devices on its own: a device token names a device of one account, and nothing else."""

from __future__ import annotations

import time

import jwt
import pytest

from aura.auth.devices import DeviceTokens, account_key

SECRET = "device-test-secret-key-0123456789abcdef-long-enough"


def test_a_device_token_names_a_device_of_its_account_only():
    devices = DeviceTokens(SECRET, 3600)
    token = devices.issue("ann@example.com")
    device = devices.device(token, "ann@example.com")
    assert device is not None and len(device) == 32
    assert devices.device(devices.issue("ann@example.com"), "ann@example.com") != device  # one per login
    assert devices.device(token, "bob@example.com") is None
    assert DeviceTokens(SECRET + "x", 3600).device(token, "ann@example.com") is None  # another key


def test_device_tokens_and_the_apis_tokens_never_pass_for_each_other():
    devices = DeviceTokens(SECRET, 3600)
    token = devices.issue("ann@example.com")
    with pytest.raises(jwt.InvalidSignatureError):  # signed with a key derived from the API's
        jwt.decode(token, SECRET, algorithms=["HS256"])
    now = int(time.time())
    access_like = jwt.encode(
        {"type": "access", "acct": account_key("ann@example.com"), "jti": "a" * 32, "exp": now + 60}, SECRET, "HS256"
    )
    assert devices.device(access_like, "ann@example.com") is None


def test_expired_or_malformed_device_tokens_are_none():
    assert (
        DeviceTokens(SECRET, -10).device(DeviceTokens(SECRET, -10).issue("ann@example.com"), "ann@example.com") is None
    )
    devices = DeviceTokens(SECRET, 3600)
    for token in (None, "", "not-a-jwt", 42, "a.b.c"):
        assert devices.device(token, "ann@example.com") is None
