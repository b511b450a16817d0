"""aura.auth.devices on its own: a device token names a device of one account, and nothing else."""

from __future__ import annotations

import hashlib
import hmac
import os
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
    genuine = devices.issue("ann@example.com")
    assert devices.device(genuine.encode(), "ann@example.com") is None  # strings only (PyJWT would take bytes)


def _signed(claims: dict, secret: str = SECRET) -> str:
    """A token signed as this module signs (the key derivation is a contract: tokens issued by the
    release before must still be read)."""
    key = hmac.new(secret.encode(), b"aura device tokens", hashlib.sha256).hexdigest()
    return jwt.encode(claims, key, "HS256")


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {"type": "device", "acct": account_key("ann@example.com"), "jti": "0123456789abcdef" * 2, "exp": now + 60}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_the_account_key_is_the_first_half_of_the_addresses_sha256():
    assert account_key("ann@example.com") == hashlib.sha256(b"ann@example.com").hexdigest()[:32]
    assert account_key("ann@example.com") == "71d4f55f72fa128dfb468a1a3901507c"


@pytest.fixture
def new_york():
    """The host's zone is not UTC: the token's times must still be (issue stamps them in UTC)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_an_issued_token_carries_its_account_a_new_device_id_and_the_lifetime(new_york):
    before = int(time.time())
    token = DeviceTokens(SECRET, 3600).issue("ann@example.com")
    after = int(time.time())
    key = hmac.new(SECRET.encode(), b"aura device tokens", hashlib.sha256).hexdigest()
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, key, algorithms=["HS256"])
    assert set(claims) == {"type", "acct", "jti", "iat", "exp"}
    assert claims["type"] == "device" and claims["acct"] == account_key("ann@example.com")
    assert before <= claims["iat"] <= after and claims["exp"] - claims["iat"] == 3600
    assert len(claims["jti"]) == 32 and int(claims["jti"], 16) >= 0


def test_a_token_signed_with_the_derived_key_is_read_back():
    devices = DeviceTokens(SECRET, 3600)
    assert devices.device(_signed(_claims()), "ann@example.com") == "0123456789abcdef" * 2
    assert devices.device(_signed(_claims(jti="A" * 32)), "ann@example.com") == "A" * 32


def test_a_token_of_another_type_account_or_shape_is_refused():
    devices = DeviceTokens(SECRET, 3600)
    refused = [
        _claims(type="access"),
        _claims(type=None),
        _claims(acct=account_key("bob@example.com")),
        _claims(acct=None),
        _claims(exp=None),
        _claims(jti=None),
        _claims(jti="a" * 31),
        _claims(jti="a" * 33),
        _claims(jti="-" * 32),
        _claims(jti="\u00e9" * 32),  # letters, but not ASCII
        _claims(jti="\u0661" * 32),  # Arabic-Indic digits: alphanumeric, not ASCII
        _claims(jti=12345678901234567890123456789012),
        _claims(exp=int(time.time()) - 120),
    ]
    for claims in refused:
        assert devices.device(_signed(claims), "ann@example.com") is None, claims
    assert devices.device(_signed(_claims(), secret=SECRET + "x"), "ann@example.com") is None
    assert devices.device(_signed(_claims()), "ann@example.com") is not None
