"""aura.auth.emails on its own: the stored form, the look-alike key, invisible characters."""

from __future__ import annotations

from aura.auth.emails import invisible_characters, normalise, skeleton


def test_the_stored_form_is_trimmed_nfkc_and_case_folded():
    assert normalise("  \uff21\uff24\uff21@Example.COM ") == "ada@example.com"  # fullwidth ADA


def test_a_cyrillic_a_has_the_skeleton_of_a_latin_one():
    assert skeleton("\u0430da@example.com") == skeleton("ada@example.com")
    assert skeleton("ada@example.com") != skeleton("bob@example.com")


def test_invisible_characters_are_named_by_code_point():
    assert invisible_characters("a\u3164b@example.com") == ["U+3164"]  # the Hangul filler
    assert invisible_characters("ada@example.com") == []
