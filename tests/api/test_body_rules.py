"""The body rules of /api/v1 (`aura.api.body`), in process: which requests they check, each
refusal's message, and chunked bodies (no Content-Length) at and over MAX_CONTENT_LENGTH.

Gunicorn's own chunked decoding is tested over HTTP in tests/security/test_hostile_bodies.py;
here the Flask test client stands in for the server (`wsgi.input_terminated`: the server ends
the stream, as Gunicorn does for a chunked body)."""

from __future__ import annotations

import io
import json

import pytest
from werkzeug.test import EnvironBuilder, TestResponse, run_wsgi_app
from werkzeug.wrappers import Request

from tests.support.auth import AuthActions
from tests.support.errors import assert_error

LOGIN = "/api/v1/auth/login"
LIMIT = 200  # MAX_CONTENT_LENGTH of the apps here


def _chunked(app, body: bytes | io.RawIOBase, content_type: str = "application/json"):
    """POST `body` to /login as a server hands on a chunked one: no Content-Length, the stream
    ended by the server. (The test client would measure the stream and send a Content-Length.)"""
    environ = EnvironBuilder(
        path=LOGIN, method="POST", content_type=content_type, headers={"Transfer-Encoding": "chunked"}
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = body if isinstance(body, io.RawIOBase) else io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    return TestResponse(b"".join(app_iter), status, headers, request=Request(environ))


def _padded(document: dict, size: int) -> bytes:
    """`document` as JSON, padded with trailing spaces to `size` bytes (still the same document)."""
    text = json.dumps(document).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


@pytest.fixture
def small(make_app):
    return make_app(max_content_length=LIMIT)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_of_another_media_type_is_415_for_every_method_with_a_body(client, method):
    # The route takes POST only: the body rules answer before routing says 405.
    response = client.open(LOGIN, method=method, data="email=a", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")
    assert response.get_json()["message"] == "Send the body as JSON with Content-Type: application/json."


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_bodies_of_other_methods_are_left_alone(client, method):
    response = client.open("/api/v1/auth/me", method=method, data="not json", content_type="text/plain")
    expected = (401, "missing_token") if method == "GET" else (405, "method_not_allowed")
    assert_error(response, *expected)


def test_bodies_outside_the_api_are_left_alone(client):
    assert_error(client.post("/healthz", data="not json", content_type="text/plain"), 405, "method_not_allowed")


def test_no_body_is_left_to_the_view_whatever_its_media_type(client):
    auth = AuthActions(client).signed_in()
    response = client.post("/api/v1/auth/logout", content_type="text/plain", headers=auth.bearer())
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"message": "logged out"}


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "The body is not valid JSON (or not UTF-8)."),
        (b"\xff\xfe\x00junk", "The body is not valid JSON (or not UTF-8)."),
        ("[" * 50_000 + "]" * 50_000, "The JSON document is nested too deeply."),
        (
            '{"email": "\\ud800@x.io", "password": "long-enough"}',
            "The JSON document contains text that is not valid Unicode.",
        ),
    ],
)
def test_each_bad_document_is_400_with_its_own_message(client, data, message):
    response = client.post(LOGIN, data=data, content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert response.get_json()["message"] == message


def test_a_chunked_body_of_another_media_type_is_415(small):
    assert_error(_chunked(small, b"email=a", content_type="text/plain"), 415, "unsupported_media_type")


def test_a_chunked_body_is_parsed_like_any_other(small):
    response = _chunked(small, json.dumps({"email": "nobody@example.com", "password": "x" * 8}).encode())
    assert_error(response, 401, "invalid_credentials")  # reached the view: parsed, whole
    assert_error(_chunked(small, b"{not json"), 400, "bad_request")


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(small):
    body = _padded({"email": "nobody@example.com", "password": "x" * 8}, LIMIT)
    assert_error(_chunked(small, body), 401, "invalid_credentials")


def test_a_chunked_body_over_the_limit_is_413_even_when_its_prefix_is_a_document(small):
    # The first LIMIT bytes are a whole login document: acting on them would be wrong.
    body = _padded({"email": "nobody@example.com", "password": "x" * 8}, LIMIT) + b" "
    response = _chunked(small, body)
    assert_error(response, 413, "payload_too_large")
    assert str(LIMIT) in response.get_json()["message"]


def test_a_chunked_body_far_over_the_limit_is_413(small):
    assert_error(_chunked(small, b"[" + b"1," * LIMIT + b"1]"), 413, "payload_too_large")


class InvalidChunkSize(Exception):
    """As Gunicorn's own (`gunicorn.http.errors`): neither an HTTPException nor an OSError."""


class _Broken(io.RawIOBase):
    """A body the server cannot decode: its parse error surfaces on read."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise InvalidChunkSize("invalid chunk size")


def test_a_body_the_server_cannot_read_is_400(small):
    response = _chunked(small, _Broken())
    assert_error(response, 400, "bad_request")
    assert response.get_json()["message"] == (
        "The body could not be read: malformed chunked encoding, or it ended early."
    )


def test_a_body_that_ends_before_its_content_length_keeps_werkzeugs_answer(client):
    # Werkzeug's ClientDisconnected (an HTTPException) goes through unchanged.
    response = client.post(
        LOGIN, input_stream=io.BytesIO(b'{"email"'), content_type="application/json", headers={"Content-Length": "100"}
    )
    assert_error(response, 400, "bad_request")
    assert "could not be read" not in response.get_json()["message"]
