"""The bundled lessons.json: shape, coverage and fit with the lessons table."""

from __future__ import annotations

import json
import re

import pytest

from aura.workflows import CATALOG_FILE, Lesson, load_catalog_file

REQUIRED_ERRORS = {
    "SyntaxError",
    "NameError",
    "TypeError",
    "IndexError",
    "KeyError",
    "AttributeError",
    "IndentationError",
    "ValueError",
    "ZeroDivisionError",
    "ImportError",
}
REQUIRED_TOPICS = {"loops", "functions", "strings", "lists", "dicts", "classes", "recursion", "exceptions"}


def test_catalog_size_and_unique_ids(catalog):
    assert 15 <= len(catalog) <= 25
    assert len({lesson.lesson_id for lesson in catalog}) == len(catalog)


def test_catalog_covers_common_errors_and_topics(catalog):
    assert REQUIRED_ERRORS <= {e for lesson in catalog for e in lesson.error_types}
    assert REQUIRED_TOPICS <= {lesson.topic for lesson in catalog}


def test_catalog_fits_the_lessons_table(catalog):
    # lessons.lesson_id String(64), title String(200), topic String(64); topics lowercase.
    for lesson in catalog:
        assert len(lesson.lesson_id) <= 64 and len(lesson.title) <= 200 and len(lesson.topic) <= 64
        assert lesson.topic == lesson.topic.lower()


def test_to_dict_round_trips_the_file(catalog):
    with open(CATALOG_FILE, encoding="utf-8") as handle:
        assert [lesson.to_dict() for lesson in catalog] == json.load(handle)
    assert [Lesson.from_mapping(lesson.to_dict()) for lesson in catalog] == catalog


@pytest.mark.parametrize(
    "entry",
    [
        {"title": "t", "topic": "x"},
        {"lesson_id": "", "title": "t", "topic": "x"},
        {"lesson_id": "a", "title": "t", "topic": "x", "error_types": "NameError"},
        {"lesson_id": "a", "title": "t", "topic": "x", "error_types": [1]},
    ],
)
def test_bad_entries_are_rejected(entry):
    with pytest.raises(ValueError):
        Lesson.from_mapping(entry)


def test_duplicate_ids_are_rejected(tmp_path):
    path = tmp_path / "lessons.json"
    entry = {"lesson_id": "a", "title": "t", "topic": "x", "error_types": []}
    path.write_text(json.dumps([entry, entry]), encoding="utf-8")
    with pytest.raises(ValueError, match="^lesson catalog has duplicate lesson_id values$"):
        load_catalog_file(path)


def test_error_types_may_be_left_out():
    lesson = Lesson.from_mapping({"lesson_id": " a ", "title": " T ", "topic": " Loops "})
    assert lesson == Lesson("a", "T", "loops", ())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"lesson_id": "a", "title": " ", "topic": "x"}, "lesson title must be a non-empty string, got ' '"),
        ({"lesson_id": "a", "title": "t"}, "lesson topic must be a non-empty string, got None"),
        ({"lesson_id": "a", "title": "t", "topic": "x", "error_types": [1]}, "lesson 'a': error_types must be a list"),
    ],
)
def test_bad_entries_say_what_is_wrong(entry, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Lesson.from_mapping(entry)


def test_a_catalog_that_is_not_a_list_is_rejected(tmp_path):
    path = tmp_path / "lessons.json"
    path.write_text(json.dumps({"lesson_id": "a", "title": "t", "topic": "x"}), encoding="utf-8")
    with pytest.raises(ValueError, match="^lesson catalog must be a JSON list$"):
        load_catalog_file(path)
    path.write_text("[]", encoding="utf-8")
    assert load_catalog_file(str(path)) == []
