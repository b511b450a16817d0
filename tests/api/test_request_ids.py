"""Every request has an id: in the X-Request-ID response header and on each of its log lines."""

from __future__ import annotations

import json
import logging
import re

import pytest
import requests

from aura.infra.logs import REQUEST_ID_HEADER, trace_id_of

GENERATED = re.compile(r"^[0-9a-f]{32}$")


def _boom_app(make_app, **overrides):
    """The app with one extra route that logs twice, then fails unexpectedly."""
    app = make_app(**overrides)

    def boom(n: int):
        logging.getLogger("aura.test").warning("first line")
        logging.getLogger("aura.test").warning("second line")
        raise RuntimeError("boom")

    app.add_url_rule("/api/v1/boom/<int:n>", "boom", boom)
    return app


def test_each_response_carries_a_fresh_id(client):
    first = client.get("/healthz").headers[REQUEST_ID_HEADER]
    second = client.get("/api/v1/no-such-route").headers[REQUEST_ID_HEADER]
    assert GENERATED.match(first) and GENERATED.match(second) and first != second


def test_a_client_cannot_choose_its_id_without_a_trusted_proxy(client):
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: "chosen-by-client"})
    assert GENERATED.match(response.headers[REQUEST_ID_HEADER])


def test_the_trusted_proxy_id_is_kept(make_app):
    client = make_app(trusted_proxy_count=1).test_client()
    assert (
        client.get("/healthz", headers={REQUEST_ID_HEADER: "edge-42.abc"}).headers[REQUEST_ID_HEADER] == "edge-42.abc"
    )
    # An id that would pollute every log line (spaces, control characters, huge) is replaced.
    for bad in ("two words", "x" * 500, "line\u2028break"):
        assert GENERATED.match(client.get("/healthz", headers={REQUEST_ID_HEADER: bad}).headers[REQUEST_ID_HEADER])


def test_every_log_line_of_a_request_has_its_id_and_route(make_app, caplog):
    client = _boom_app(make_app).test_client()
    caplog.set_level(logging.WARNING)
    response = client.get("/api/v1/boom/7")
    assert response.status_code == 500 and response.get_json()["error"] == "internal_error"
    request_id = response.headers[REQUEST_ID_HEADER]
    lines = [r for r in caplog.records if r.name.startswith("aura")]
    assert [r.getMessage().split(" in ")[0] for r in lines] == ["first line", "second line", "unhandled error"]
    for record in lines:
        assert (record.request_id, record.method, record.route, record.path) == (
            request_id,
            "GET",
            "/api/v1/boom/<int:n>",
            "/api/v1/boom/7",
        )
    # The unhandled error's line says it in text too, for the text log format.
    assert (
        lines[-1].getMessage()
        == f"unhandled error in GET /api/v1/boom/7 (route /api/v1/boom/<int:n>, request id {request_id})"
    )
    assert lines[-1].exc_info is not None


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (TRACEPARENT, TRACE),
        (f" 00-{TRACE}-00f067aa0ba902b7-00\t", TRACE),  # surrounding blanks, not sampled
        (f"cc-{TRACE}-00f067aa0ba902b7-01-future-field", TRACE),  # a later version may add fields
        (f"00-{TRACE}-00f067aa0ba902b7-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-00f067aa0ba902b7-01", None),  # version ff is invalid
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None),  # all-zero trace id
        (f"00-{TRACE}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", None),  # lower-case hex only
        (f"00-{TRACE[:-1]}-00f067aa0ba902b7-01", None),
        ("", None),
        (None, None),
    ],
)
def test_trace_ids_are_read_from_valid_traceparent_headers_only(header, trace_id):
    assert trace_id_of(header) == trace_id


def test_log_lines_carry_a_trusted_callers_trace_id_else_the_request_id(make_app, caplog):
    caplog.set_level(logging.WARNING)
    for trusted, header, expected in (
        (1, TRACEPARENT, TRACE),  # a trusted proxy's trace: logs and exemplars join the caller's trace
        (0, TRACEPARENT, None),  # anyone else's is ignored, as X-Request-ID is
        (1, "00-not-a-trace", None),  # an invalid header starts afresh
    ):
        caplog.clear()
        client = _boom_app(make_app, trusted_proxy_count=trusted).test_client()
        response = client.get("/api/v1/boom/1", headers={"traceparent": header})
        lines = [r for r in caplog.records if r.name.startswith("aura")]
        assert len(lines) == 3
        assert {r.trace_id for r in lines} == {expected or response.headers[REQUEST_ID_HEADER]}


@pytest.mark.gunicorn
def test_json_lines_join_app_logs_and_access_log_by_request_id(gunicorn, tmp_path):
    # A database without tables: login fails with a database error, which Aura logs (twice)
    # inside the request, then answers 503; Gunicorn logs the access line after it.
    server = gunicorn(
        workers=1,
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"},
        LOG_FORMAT="json",
        GUNICORN_ACCESS_LOG="-",
    )
    response = requests.post(
        f"{server.url}/api/v1/auth/login", timeout=10, json={"email": "ada@example.com", "password": "whatever-1"}
    )
    assert response.status_code == 503
    request_id = response.headers[REQUEST_ID_HEADER]
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    ours = [r for r in records if r.get("request_id") == request_id]
    app_lines = [r for r in ours if r["logger"] == "aura"]
    access = [r for r in ours if r["logger"] == "gunicorn.access"]
    assert len(app_lines) == 2 and len(access) == 1, ours
    assert all(r["trace_id"] == request_id for r in ours)  # no trusted traceparent: the request id
    for record in app_lines:
        assert (record["method"], record["route"], record["path"]) == (
            "POST",
            "/api/v1/auth/login",
            "/api/v1/auth/login",
        )
    line = access[0]
    assert (line["method"], line["route"], line["status"]) == ("POST", "/api/v1/auth/login", 503)
    assert line["duration_seconds"] >= 0
    assert any(r["logger"] == "gunicorn.error" for r in records)  # Gunicorn's own lines too
    health = [r for r in records if r["logger"] == "gunicorn.access" and r["path"] == "/healthz"]
    assert health and health[0]["route"] == "/healthz" and health[0]["request_id"] != request_id


@pytest.mark.gunicorn
def test_text_access_lines_end_with_the_request_id(gunicorn):
    server = gunicorn(workers=1, GUNICORN_ACCESS_LOG="-")
    response = requests.get(f"{server.url}/api/v1/auth/me", timeout=10)
    server.stop()
    request_id = response.headers[REQUEST_ID_HEADER]
    lines = [line for line in server.log_path.read_text().splitlines() if '"GET /api/v1/auth/me HTTP/1.1" 401' in line]
    assert len(lines) == 1 and lines[0].endswith(f" {request_id}"), lines
