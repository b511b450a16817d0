"""Rules for request bodies on /api/v1, applied before any view parses them.

A JSON view must see either a well-formed JSON document or nothing: malformed JSON is 400,
another media type 415, too large 413 (Flask's MAX_CONTENT_LENGTH, chunked bodies too), a
body that cannot be read (malformed chunked encoding), nesting deep enough to exhaust the parser
or text that cannot be encoded (lone surrogates) 400 - never a 500.
"""

from __future__ import annotations

import json

from flask import Flask, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge, UnsupportedMediaType

_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def _check_json_body() -> None:
    if request.method not in _BODY_METHODS or not request.path.startswith("/api/"):
        return
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return  # no body: the view's schema decides whether one was required
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    _read_body()
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


def _read_body() -> None:
    """Read the whole body once (kept for the parser), refusing one that cannot be read.

    The WSGI server decodes `Transfer-Encoding: chunked` while the body is read, and raises its
    own exceptions for a malformed one (Gunicorn: InvalidChunkSize, ChunkMissingTerminator,
    NoMoreData...). Whatever their class, the client sent a body that is not HTTP: 400, not an
    unhandled 500 with a traceback.
    """
    try:
        data = request.get_data(cache=True)
        # A body without Content-Length (chunked) is cut at MAX_CONTENT_LENGTH by Werkzeug without
        # an error; parsing the prefix would answer 400 - or act on a truncated document. Say 413.
        limit = request.max_content_length
        more = (
            request.content_length is None
            and limit is not None
            and len(data) >= limit
            and request.environ["wsgi.input"].read(1)
        )
    except HTTPException:
        raise  # Werkzeug's own answers: 413 over Content-Length, 400 when the client went away
    except Exception:  # noqa: BLE001 - the server's parse errors, see above
        raise BadRequest("The body could not be read: malformed chunked encoding, or it ended early.") from None
    if more:
        raise RequestEntityTooLarge()


def init_body_rules(app: Flask) -> None:
    """Install the body check ahead of every view."""
    app.before_request(_check_json_body)
