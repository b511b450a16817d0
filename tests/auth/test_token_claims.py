"""What a token must look like to be read back: the claims issued, and every malformed shape refused.

In-process, on `aura.auth.tokens` alone (no app, no Redis): the same checks guard the web
layer's route guard (`aura.api.jwt` calls `well_formed`) and logout's refresh token in the body
(`Tokens.decode`). tests/security/test_token_attacks.py sends such tokens over a real socket.
"""

from __future__ import annotations

import os
import time

import jwt as pyjwt
import pytest

from aura.auth.tokens import ALGORITHM, Tokens, plain_id, well_formed

SECRET = "a-secret-of-the-tests-that-is-long-enough-for-hs256-0123456789"
TOKENS = Tokens(SECRET, access_lifetime=900, refresh_lifetime=3600)


def _signed(**claims) -> str:
    return pyjwt.encode(claims, SECRET, ALGORITHM)


def _claims(**overrides) -> dict:
    """A well-formed access token's claims, without a session (as tokens from before families)."""
    now = int(time.time())
    claims = {"sub": "a1b2c3", "jti": "0f8e7d6c-5b4a-4321-8fed-cba987654321", "type": "access", "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def new_york_time():
    """The host's local time zone five hours behind UTC, restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    assert time.localtime().tm_gmtoff < 0, "no time zone data for America/New_York (Debian: tzdata)"
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_issued_tokens_carry_the_claims_flask_jwt_extended_writes():
    pair = TOKENS.issue("a1b2c3", family="fam-1")
    assert pair.expires_in == 900
    for token, kind, lifetime in ((pair.access_token, "access", 900), (pair.refresh_token, "refresh", 3600)):
        assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
        claims = TOKENS.decode(token)
        assert set(claims) == {"fresh", "iat", "jti", "type", "sub", "nbf", "exp", "fam"}
        assert (claims["sub"], claims["type"], claims["fam"], claims["fresh"]) == ("a1b2c3", kind, "fam-1", False)
        assert claims["exp"] - claims["iat"] == lifetime and claims["nbf"] == claims["iat"]
        assert plain_id(claims["jti"])
    assert TOKENS.decode(pair.access_token)["jti"] != TOKENS.decode(pair.refresh_token)["jti"]


def test_tokens_are_stamped_in_utc_whatever_the_hosts_time_zone(new_york_time):
    before = time.time()
    claims = TOKENS.decode(TOKENS.issue("a1b2c3", family="fam-1").access_token)
    assert before - 1 <= claims["iat"] <= time.time() + 1
    assert claims["exp"] == claims["iat"] + 900


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(_claims(), id="the shape issued"),
        pytest.param(_claims(jti="7"), id="jti of one character"),
        pytest.param(_claims(jti="a" * 64), id="jti of 64 characters"),
        pytest.param(_claims(fam="0f8e7d6c-5b4a-4321-8fed-cba987654321"), id="with its session"),
        pytest.param(_claims(type="refresh"), id="refresh"),
    ],
)
def test_well_formed_claims_are_read_back(claims):
    assert well_formed(claims)
    assert TOKENS.decode(_signed(**claims)) == claims


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(_claims(jti=""), id="empty jti"),
        pytest.param(_claims(jti="a" * 65), id="jti of 65 characters"),
        pytest.param(_claims(jti="a b"), id="jti with a space"),
        pytest.param(_claims(jti="a/b"), id="jti with a slash"),
        pytest.param(_claims(jti="---"), id="jti of dashes only"),
        pytest.param(_claims(jti="é"), id="jti not ASCII"),
        pytest.param(_claims(jti=7), id="jti a number"),
        pytest.param(_claims(sub=7), id="sub a number"),
        pytest.param(_claims(type="admin"), id="type unknown"),
        pytest.param(_claims(fam="a b"), id="session id with a space"),
        pytest.param(_claims(fam=""), id="empty session id"),
        pytest.param(_claims(sub=None), id="no sub"),
        pytest.param(_claims(jti=None), id="no jti"),
        pytest.param(_claims(type=None), id="no type"),
        pytest.param(_claims(exp=None), id="no exp"),
    ],
)
def test_malformed_claims_are_refused(claims):
    assert not well_formed(claims)
    with pytest.raises(pyjwt.InvalidTokenError):
        TOKENS.decode(_signed(**claims))
