"""Marshmallow field types shared by the API's schemas and the workflows' (`aura.services.workflows`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import marshmallow as ma

if TYPE_CHECKING:
    from typing import Unpack

    # The keyword arguments every marshmallow field takes (private in name, but what its own
    # fields' __init__ signatures are typed with).
    from marshmallow.fields import _BaseFieldKwargs

# Python's whitespace (str.isspace: what str.strip removes), spelled out. JSON Schema's \s and \S
# are ECMAScript's, which leave out \x1c-\x1f and \x85 and count \ufeff: a pattern written with
# them would tell clients one thing and the validator (Python's re) another.
WHITESPACE_CLASS = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A string with something in it besides whitespace, in both dialects.
NOT_BLANK = rf"^[{WHITESPACE_CLASS}]*[^{WHITESPACE_CLASS}]"


class UtcDateTime(ma.fields.DateTime):
    """ISO 8601 with an explicit UTC offset; SQLite hands back naive UTC datetimes."""

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | float | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class StrictFloat(ma.fields.Float):
    """A JSON number, never a string ("5") or a boolean: the document says `number`."""

    def _validated(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._validated(value)


class StrictInteger(ma.fields.Integer):
    """A JSON integer, never a string or a boolean (true is an int to Python)."""

    def __init__(self, **kwargs: Unpack[_BaseFieldKwargs]) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)
