"""aura.auth.emails on its own: the stored form, the look-alike key, invisible characters."""

from __future__ import annotations

from aura.auth.emails import (
    domain_error,
    invisible_characters,
    is_default_ignorable,
    legacy_normalise,
    mailbox,
    normalise,
    skeleton,
)


def test_the_stored_form_is_trimmed_nfkc_and_case_folded():
    assert normalise("  \uff21\uff24\uff21@Example.COM ") == "ada@example.com"  # fullwidth ADA


def test_a_cyrillic_a_has_the_skeleton_of_a_latin_one():
    assert skeleton("\u0430da@example.com") == skeleton("ada@example.com")
    assert skeleton("ada@example.com") != skeleton("bob@example.com")


def test_invisible_characters_are_named_by_code_point():
    assert invisible_characters("a\u3164b@example.com") == ["U+3164"]  # the Hangul filler
    assert invisible_characters("ada@example.com") == []


def test_a_domain_and_its_punycode_are_one_mailbox():
    assert mailbox("ann@xn--bcher-kva.de") == mailbox("Ann@B\u00dcCHER.de") == "ann@b\u00fccher.de"
    assert skeleton("ann@xn--bcher-kva.de") == skeleton("ann@b\u00fccher.de")
    assert mailbox("ann@b\u00fccher\u3002de") == "ann@b\u00fccher.de"  # an ideographic full stop is a dot
    assert skeleton("ann@bucher.de") != skeleton("ann@b\u00fccher.de")  # another domain


def test_a_quoted_local_part_is_its_unquoted_mailbox():
    assert mailbox('"ann"@example.com') == mailbox("ann@example.com") == "ann@example.com"
    assert mailbox('"a\\"n"@example.com') == 'a"n@example.com'  # a quoted pair is its character
    assert skeleton('"ann.lee"@example.com') == skeleton("ann.lee@example.com")


def test_domains_that_are_not_idna_names_are_named():
    assert domain_error("example.com") is None and domain_error("b\u00fccher.de") is None
    assert "U+2800" in domain_error("exa\u2800mple.com")  # the braille blank
    assert domain_error("my_host.com") is not None
    assert domain_error("xn--zz.com") is not None  # not a valid A-label


def test_digits_and_letters_of_one_tr39_class_look_alike():
    assert skeleton("ann0@example.com") == skeleton("anno@example.com")  # O and 0
    assert skeleton("ann1@example.com") == skeleton("annl@example.com")  # l and 1
    assert skeleton("ann\u0661@example.com") == skeleton("ann1@example.com")  # an Arabic-Indic one


def test_the_ends_of_the_ignorable_ranges_are_ignorable_and_their_neighbours_not():
    for char in (
        "\u00ad",
        "\u115f",
        "\u1160",
        "\u200b",
        "\u200f",
        "\u3164",
        "\ufe00",
        "\ufe0f",
        "\U000e0000",
        "\U000e0fff",
    ):
        assert is_default_ignorable(char), f"U+{ord(char):04X}"
    for char in ("\u00ac", "\u00ae", "\u115e", "\u1161", "\u200a", "\u2010", "\u3163", "\u3165", "\U000e1000", "a"):
        assert not is_default_ignorable(char), f"U+{ord(char):04X}"


def test_control_format_private_and_separator_characters_are_invisible_too():
    assert invisible_characters("a\x07b") == ["U+0007"]  # Cc
    assert invisible_characters("a\u0600b") == ["U+0600"]  # Cf, not in the ignorable ranges
    assert invisible_characters("a\ue000b") == ["U+E000"]  # Co
    assert invisible_characters("a\ud800b") == ["U+D800"]  # Cs (a lone surrogate)
    assert invisible_characters("a\u2028b\u2029") == ["U+2028", "U+2029"]  # Zl, Zp
    assert invisible_characters("\u00ad\U000e0001x") == ["U+00AD", "U+E0001"]  # four hex digits at least
    assert invisible_characters("a b\u00a0c\u00e9") == []  # spaces and letters are visible


def test_the_stored_form_folds_case_fully_and_composes_what_folding_decomposed():
    assert normalise("Stra\u00dfe@example.com") == "strasse@example.com"  # full folding, not lower()
    assert normalise("\ufb01le@example.com") == "file@example.com"  # the fi ligature
    assert normalise("\u01f0@example.com") == "\u01f0@example.com"  # folds to j + caron, composed again
    assert normalise("\u212b@example.com") == "\u00e5@example.com"  # the angstrom sign
    assert normalise("\tann@example.com\n") == "ann@example.com"


def test_the_legacy_form_is_trimmed_and_lower_cased_only():
    assert legacy_normalise("  Stra\u00dfe@Example.COM ") == "stra\u00dfe@example.com"
    assert legacy_normalise("\uff21da@example.com") == "\uff41da@example.com"  # no NFKC


def test_the_mailbox_of_odd_shapes():
    assert mailbox("  Ann ") == "ann"  # no @: the normal form
    assert mailbox('"a@b"@example.com') == "a@b@example.com"  # the last @ ends the local part
    assert mailbox('""@example.com') == "@example.com"  # an empty quoted local part
    assert mailbox('"@example.com') == '"@example.com'  # one quote is not a quoted string
    assert mailbox('ann"@example.com') == 'ann"@example.com'
    assert mailbox('"ann@example.com') == '"ann@example.com'
    assert mailbox('"a\\\\b"@example.com') == "a\\b@example.com"  # an escaped backslash
    assert mailbox('"a\\\nb"@example.com') == "a\nb@example.com"  # a quoted pair of any character
    assert mailbox("ann@my_host.com") == "ann@my_host.com"  # not an IDNA name: left as it is
    assert mailbox("ann@Example.COM.") == "ann@example.com."


def test_the_domain_is_read_under_uts46_mapping():
    assert domain_error("B\u00fccher.DE") is None  # mapped (case-folded) before it is checked
    assert domain_error("\u1e9e.de") is None  # capital sharp s
    assert mailbox("ann@exa\u00admple.com") == "ann@example.com"  # UTS #46 drops the soft hyphen
