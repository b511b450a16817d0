"""Email addresses as accounts see them: one normal form, and a look-alike key.

`normalise` is what is stored and compared: NFKC (fullwidth and mathematical letters, the `ﬁ`
ligature become plain letters) then case folding. `mailbox` is the mailbox an address names,
whatever its spelling: the local part unquoted (`"ann"` is `ann`, RFC 5321) and the domain in
its Unicode form under IDNA UTS #46 (`xn--bcher-kva.de` is `bücher.de`; the `idna` package).
`skeleton` is the Unicode TS #39 confusable skeleton of the mailbox (disarm's `skeleton_key`, TR39
digit classes included): two addresses with the same skeleton look alike, so registration
refuses the second. `domain_error` says why a domain is not a valid IDNA name (a braille blank
U+2800, an underscore), or None. `invisible_characters` finds the code
points that render as nothing (Default_Ignorable_Code_Point, e.g. the Hangul filler U+3164,
which is a letter to `unicodedata` and passes a control-character filter) and control characters.
"""

from __future__ import annotations

import re
import unicodedata

import idna
from disarm import skeleton_key

# Default_Ignorable_Code_Point, from Unicode's DerivedCoreProperties.txt (stable since 6.x).
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# Control, format, private-use, surrogate and line/paragraph separators: never in an address.
_INVISIBLE_CATEGORIES = frozenset(("Cc", "Cf", "Co", "Cs", "Zl", "Zp"))


def is_default_ignorable(char: str) -> bool:
    """True for a code point that renders as nothing (Default_Ignorable_Code_Point)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def invisible_characters(email: str) -> list[str]:
    """The characters of `email` that are invisible or control characters (U+XXXX each)."""
    return [
        f"U+{ord(c):04X}" for c in email if is_default_ignorable(c) or unicodedata.category(c) in _INVISIBLE_CATEGORIES
    ]


def normalise(email: str) -> str:
    """The stored form: trimmed, NFKC, case-folded (then NFKC again: folding can decompose)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


def legacy_normalise(email: str) -> str:
    """How addresses were stored before NFKC (trimmed, lower-cased), for accounts made then."""
    return email.strip().lower()


_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def domain_error(domain: str) -> str | None:
    """Why `domain` is not a valid domain name under IDNA UTS #46 (nontransitional), or None."""
    try:
        idna.encode(domain, uts46=True)
    except idna.IDNAError as exc:
        return str(exc)
    return None


def mailbox(email: str) -> str:
    """The normal form with the local part unquoted and the domain's Unicode (U-label) form."""
    local, at, domain = normalise(email).rpartition("@")
    if not at:
        return normalise(email)
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])  # a quoted pair stands for its character
    try:
        domain = idna.decode(idna.encode(domain, uts46=True))
    except idna.IDNAError:
        pass  # not a valid name: registration refuses it (`domain_error`), login finds no account
    return f"{local}@{domain}"


def skeleton(email: str) -> str:
    """The TS #39 skeleton of the mailbox: equal skeletons look alike."""
    return skeleton_key(mailbox(email), digit_policy="tr39")
