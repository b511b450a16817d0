"""Every error a client can provoke is the one JSON shape with the right 4xx code."""

from __future__ import annotations

import socket

import pytest

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
    assert_error(client.get("/no/such/path"), 404, "not_found")
    response = client.delete(LOGIN)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_a_json_500_without_trace(app, client, caplog):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert_error(response, 500, "internal_error")
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text  # logged server side


def test_health_endpoints(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_names_a_failed_database(make_app):
    app = make_app(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "service_unavailable" and "database" in body["message"]


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
    assert_error(response, 503, "service_unavailable")


def test_security_headers_on_every_response(client, auth):
    auth.register()
    for response in (client.get("/healthz"), client.get("/nope"), auth.login(), client.get("/metrics")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert auth.login().headers["Cache-Control"] == "no-store"
