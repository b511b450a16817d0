"""aura.auth.emails on its own: the stored form, the look-alike key, invisible characters."""

from __future__ import annotations

from aura.auth.emails import domain_error, invisible_characters, mailbox, normalise, skeleton


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
