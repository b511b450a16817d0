"""Look-alike addresses cannot become second accounts, over real Gunicorn.

Addresses are stored NFKC-normalised and case-folded; code points that render as nothing
(Default_Ignorable_Code_Point, such as the Hangul filler U+3164, a "letter" that passed the
control-character filter) are refused; and an address whose Unicode TS #39 confusable skeleton
matches an existing account's is refused with 409. The skeleton is taken of the mailbox, not of
the spelling: the domain through IDNA UTS #46 (punycode and Unicode are one domain), the local
part unquoted; a domain that is not a valid IDNA name (a braille blank) is refused with 422.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.auth import AuthActions
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

REGISTER = "/api/v1/auth/register"
PASSWORD = "long-enough-pw-1"

LOOKALIKES = {
    "fullwidth": lambda local: "".join(chr(ord(c) + 0xFEE0) for c in local),
    "cyrillic a and o": lambda local: local.replace("a", "\u0430").replace("o", "\u043e"),
    "mathematical bold": lambda local: "".join(chr(0x1D41A + ord(c) - ord("a")) if c.isalpha() else c for c in local),
    "ligature fi": lambda local: local.replace("fi", "\ufb01"),
    "capitals": lambda local: local.upper(),
    "digit one for l": lambda local: local.replace("l", "1"),
}
INVISIBLE = {
    "Hangul filler U+3164": "\u3164",
    "halfwidth Hangul filler U+FFA0": "\uffa0",
    "combining grapheme joiner U+034F": "\u034f",
    "variation selector U+FE0F": "\ufe0f",
    "Mongolian vowel separator U+180E": "\u180e",
}


def _local() -> str:
    # Letters only from a-z with an 'a', an 'o', an 'l' and 'fi' in it, unique per test.
    return "fiola" + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:8])


@pytest.mark.parametrize("name", LOOKALIKES)
def test_an_address_that_looks_like_an_account_is_refused(hardened, name):
    local = _local()
    owner = AuthActions(hardened.client(), f"{local}@example.com").signed_in()
    lookalike = f"{LOOKALIKES[name](local)}@example.com"
    assert lookalike != owner.email
    response = hardened.client().post(REGISTER, json={"email": lookalike, "password": PASSWORD})
    assert_error(response, 409, "email_taken")
    assert owner.login().status_code == 200  # the owner is untouched


@pytest.mark.parametrize("name", INVISIBLE)
def test_an_address_with_an_invisible_code_point_is_refused(hardened, name):
    email = f"{_local()}{INVISIBLE[name]}@example.com"
    body = assert_error(
        hardened.client().post(REGISTER, json={"email": email, "password": PASSWORD}), 422, "validation_error"
    )
    assert set(body["details"]) == {"email"}


def test_fullwidth_login_reaches_the_same_account(hardened):
    local = _local()
    owner = AuthActions(hardened.client(), f"{local}@example.com").signed_in()
    wide = AuthActions(hardened.client(), "".join(chr(ord(c) + 0xFEE0) for c in local) + "@example.com")
    assert wide.login(password=owner.password).status_code == 200  # NFKC: the same address
    assert wide.me().json()["email"] == owner.email


SPELLINGS = {
    "punycode after Unicode": ("{local}@b\u00fccher.de", "{local}@xn--bcher-kva.de"),
    "Unicode after punycode": ("{local}@xn--bcher-kva.de", "{local}@B\u00dcCHER.de"),
    "quoted after plain": ("{local}@example.com", '"{local}"@example.com'),
    "plain after quoted": ('"{local}"@example.com', "{local}@example.com"),
}


@pytest.mark.parametrize("name", SPELLINGS)
def test_another_spelling_of_an_accounts_mailbox_is_refused(hardened, name):
    local = _local()
    first, second = (spelling.format(local=local) for spelling in SPELLINGS[name])
    owner = AuthActions(hardened.client(), first).signed_in()
    response = hardened.client().post(REGISTER, json={"email": second, "password": PASSWORD})
    assert_error(response, 409, "email_taken")
    assert owner.login().status_code == 200


def test_a_braille_blank_in_the_domain_is_refused(hardened):
    local = _local()
    AuthActions(hardened.client(), f"{local}@example.com").signed_in()
    for email in (f"{local}@exa\u2800mple.com", f"{_local()}@exa\u2800mple.com"):
        body = assert_error(
            hardened.client().post(REGISTER, json={"email": email, "password": PASSWORD}), 422, "validation_error"
        )
        assert set(body["details"]) == {"email"} and "U+2800" in body["details"]["email"][0], body
