"""Every error a client can provoke is the one JSON shape with the right 4xx code."""

from __future__ import annotations

import functools
import socket
from types import SimpleNamespace

import pytest
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    TooManyRequests,
    UnprocessableEntity,
)

from aura.api.context import services
from aura.api.errors import (
    _rate_limit_text,
    aura_error_response,
    error_response,
    http_exception_response,
    status_of,
    unexpected_error_response,
)
from aura.errors import AuraError, ErrorCode
from aura.workflows.errors import AuditLimitError
from tests.support.errors import assert_error

LOGIN = "/api/v1/auth/login"


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": b"\xff\xfe\x00junk", "content_type": "application/json"}, 400, "bad_request"),
        ({"data": "[" * 50_000 + "]" * 50_000, "content_type": "application/json"}, 400, "bad_request"),
        (
            {"data": '{"email": "\\ud800@x.io", "password": "long-enough"}', "content_type": "application/json"},
            400,
            "bad_request",
        ),
        ({"data": "email=a", "content_type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"data": "x" * (1024 * 1024 + 1), "content_type": "application/json"}, 413, "payload_too_large"),
        ({"json": ["a", "list"]}, 422, "validation_error"),
        ({"json": {"email": "a@b.io", "password": "1" + "0" * 5000}}, 422, "validation_error"),
        (
            {"data": '{"email": "a@b.io", "password": 1' + "0" * 5000 + "}", "content_type": "application/json"},
            400,
            "bad_request",
        ),
        ({"json": {"email": "a\x00@b.io", "password": "long-enough"}}, 422, "validation_error"),
        ({"json": {"email": "' OR 1=1 --@b.io", "password": "long-enough"}}, 422, "validation_error"),
    ],
)
def test_bad_bodies(client, kwargs, status, code):
    assert_error(client.post(LOGIN, **kwargs), status, code)


def test_unknown_path_and_method(client):
    body = assert_error(client.get("/no/such/path"), 404, "not_found")
    assert body["message"].startswith("The requested URL was not found")  # not the 413 text
    response = client.delete(LOGIN)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}  # in no fixed order


def test_an_invalid_body_names_each_field(client):
    response = client.post(LOGIN, json={"email": "a\x00@b.io", "password": "long-enough"})
    body = assert_error(response, 422, "validation_error")
    assert body["message"] == "The request body is not valid; see details for each field."
    assert list(body["details"]) == ["email"]  # by field, not nested under the location "json"


def _answer(response):
    return response.status_code, response.get_json(), response.headers


def _with_data(exc: HTTPException, **data) -> HTTPException:
    exc.data = data  # what flask-smorest's abort and webargs attach
    return exc


def test_an_http_error_keeps_the_code_message_and_headers_it_carries(app):
    with app.test_request_context():
        status, body, headers = _answer(
            http_exception_response(
                _with_data(
                    UnprocessableEntity(),
                    error="chosen_code",
                    message="chosen message",
                    errors={"json": {"a": ["x"]}, "query": {"b": ["y"]}},
                    headers={"X-Why": "test"},
                )
            )
        )
    assert status == 422 and body["error"] == "chosen_code" and body["message"] == "chosen message"
    assert body["details"] == {"a": ["x"], "b": ["y"]} and headers["X-Why"] == "test"


def test_field_errors_of_every_location_are_merged_and_only_a_422_gets_the_field_message(app):
    locations = {"json": {"j": ["x"]}, "query": {"q": ["x"]}, "headers": {"h": ["x"]}, "path": {"p": ["x"]}}
    with app.test_request_context():
        status, body, headers = _answer(http_exception_response(_with_data(BadRequest(), messages=locations)))
        unknown = _answer(http_exception_response(_with_data(BadRequest(), errors={"form": {"f": ["x"]}})))[1]
    assert status == 400 and body["error"] == "bad_request" and body["message"] == BadRequest.description
    assert body["details"] == {"j": ["x"], "q": ["x"], "h": ["x"], "p": ["x"]}
    assert unknown["details"] == {"form": {"f": ["x"]}}  # a location webargs does not use stays nested


def test_http_errors_without_a_code_a_limit_or_a_size_of_their_own(app):
    not_405 = BadRequest()
    not_405.valid_methods = ["GET"]  # type: ignore[attr-defined]
    with app.test_request_context():
        no_code = _answer(http_exception_response(HTTPException("odd")))
        plain_429 = _answer(http_exception_response(TooManyRequests()))
        own_413 = _answer(http_exception_response(_with_data(RequestEntityTooLarge(), message="too big for us")))
        bad = _answer(http_exception_response(not_405))
    assert no_code[0] == 500 and no_code[1]["error"] == "internal_error"
    assert plain_429[0] == 429 and plain_429[1] == {"error": "rate_limited", "message": TooManyRequests.description}
    assert own_413[0] == 413 and own_413[1] == {"error": "payload_too_large", "message": "too big for us"}
    assert "Allow" not in bad[2]  # Allow belongs to a 405


def test_error_response_fills_in_the_code_and_message(app):
    with app.test_request_context():
        assert error_response(418).get_json() == {"error": "error", "message": "error"}
        unsupported = error_response(415).get_json()
        domain = aura_error_response(AuraError(ErrorCode.VALIDATION_ERROR, "no", {"field": ["bad"]}))
    assert unsupported == {"error": "unsupported_media_type", "message": "unsupported media type"}
    assert domain.status_code == 422
    assert domain.get_json() == {"error": "validation_error", "message": "no", "details": {"field": ["bad"]}}


def test_an_audit_limit_on_bytes_is_413_and_on_a_count_422():
    assert status_of(AuditLimitError("max_file_bytes", 2, 1)) == 413
    assert status_of(AuditLimitError("max_total_bytes", 2, 1)) == 413
    assert status_of(AuditLimitError("max_files", 2, 1)) == 422


def test_a_rate_limit_of_an_unknown_key_is_per_client_address():
    for key_func in (functools.partial(str), lambda: "x"):
        message, details = _rate_limit_text(SimpleNamespace(limit="3 per 1 hour", key_func=key_func))
        assert details == {"limit": "3 per 1 hour", "per": "client address"}
        assert "3 per 1 hour per client address" in message


def test_unexpected_exception_is_a_json_500_without_trace(app, client, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert assert_error(response, 500, "internal_error")["message"] == "An unexpected error occurred."
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text  # logged server side


def test_health_endpoints(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"status": "ok", "mode": "redis", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_in_standalone_mode_checks_the_database_only(app, client):
    from aura.auth.revocation import SqlRevocationStore

    services(app).revocation = SqlRevocationStore()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {
        "status": "ok",
        "mode": "standalone",
        "checks": {
            "database": "ok",
            "redis": "not used (standalone mode: revocations in the database, limits per process)",
        },
    }


def test_readyz_names_a_failed_database(make_app):
    app = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    body = assert_error(response, 503, "service_unavailable", extra={"status", "mode", "checks"})
    assert body["message"] == "unavailable: database" and body["status"] == "unavailable"
    assert body["checks"] == {"database": "unavailable", "redis": "ok"}


def test_readyz_names_every_failed_check(make_app):
    app = make_app(
        env="production", database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", redis_url="redis://127.0.0.1:1"
    )
    body = assert_error(
        app.test_client().get("/readyz"), 503, "service_unavailable", extra={"status", "mode", "checks"}
    )
    assert body["message"] == "unavailable: database, redis"


def test_readyz_answers_503_when_redis_times_out(make_app):
    """A Redis that accepts connections and never answers (hung, black-holed): a timeout, not a
    refused connection - still the documented 503 naming Redis, never a 500."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody reads
        port = silent.getsockname()[1]
        app = make_app(env="production", redis_url=f"redis://127.0.0.1:{port}", redis_socket_timeout=0.2)
        response = app.test_client().get("/readyz")
    body = assert_error(response, 503, "service_unavailable", extra={"status", "mode", "checks"})
    assert body["checks"] == {"database": "ok", "redis": "unavailable"} and "redis" in body["message"]


def test_database_outage_is_503_not_500(make_app):
    app = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().post(LOGIN, json={"email": "a@b.io", "password": "long-enough"})
    body = assert_error(response, 503, "service_unavailable", headers={"Retry-After": "5"})
    assert body["message"] == "database is unavailable; try again shortly"


def test_an_http_exception_reaching_the_catch_all_keeps_its_status(app):
    with app.test_request_context():
        response = unexpected_error_response(NotFound())
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_security_headers_on_every_response(client, auth):
    auth.register()
    for response in (client.get("/healthz"), client.get("/nope"), auth.login(), client.get("/metrics")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert auth.login().headers["Cache-Control"] == "no-store"
