"""Rules for request bodies on /api/v1, applied before any view parses them.

A JSON view must see either a well-formed JSON document or nothing: malformed JSON is 400,
another media type 415, too large 413 (Flask's MAX_CONTENT_LENGTH, chunked bodies too), and
nesting deep enough to exhaust the parser or text that cannot be encoded (lone surrogates) 400 -
never a 500.
"""

from __future__ import annotations

import json

from flask import Flask, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def _check_json_body() -> None:
    if request.method not in _BODY_METHODS or not request.path.startswith("/api/"):
        return
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return  # no body: the view's schema decides whether one was required
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    if request.content_length is None:
        _refuse_oversized_stream()
    try:
        document = request.get_json()
    except RecursionError:
        raise BadRequest("The JSON document is nested too deeply.") from None
    except BadRequest:
        raise BadRequest("The body is not valid JSON (or not UTF-8).") from None
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("The JSON document contains text that is not valid Unicode.") from None
    except RecursionError:
        raise BadRequest("The JSON document is nested too deeply.") from None


def _refuse_oversized_stream() -> None:
    # A body without Content-Length (chunked) is cut at MAX_CONTENT_LENGTH by Werkzeug without
    # an error; parsing the prefix would answer 400 - or act on a truncated document. Say 413.
    limit = request.max_content_length
    if limit is not None and len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def init_body_rules(app: Flask) -> None:
    """Install the body check ahead of every view."""
    app.before_request(_check_json_body)
