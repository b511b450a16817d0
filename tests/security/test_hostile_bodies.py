"""Hostile request bodies over a real socket: a 4xx JSON answer in bounded time, and the workers
live on (no worker is replaced, /healthz answers and a normal sign-in works afterwards)."""

from __future__ import annotations

import json
import socket

import pytest

from tests.security.conftest import TIMEOUT
from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"
JSON = {"Content-Type": "application/json"}
MB = 1024 * 1024


def _chunks(head: bytes, filler: bytes, total: int, tail: bytes):
    """A chunked (no Content-Length) body of about `total` bytes, streamed as it is sent."""
    yield head
    sent = len(head)
    block = filler * (64 * 1024 // len(filler))
    while sent < total:
        yield block
        sent += len(block)
    yield tail


# (name, request kwargs, status, error code)
LOGIN_BODIES = [
    ("invalid JSON", dict(data=b"{not json", headers=JSON), 400, "bad_request"),
    ("truncated JSON", dict(data=b'{"email": "a@b.io", "pass', headers=JSON), 400, "bad_request"),
    (
        "UTF-8 byte order mark",
        dict(data=b'\xef\xbb\xbf{"email": "a@b.io", "password": "long-enough"}', headers=JSON),
        400,
        "bad_request",
    ),
    ("top-level array", dict(json=["a@b.io", "long-enough"]), 422, "validation_error"),
    ("top-level null", dict(data=b"null", headers=JSON), 422, "validation_error"),
    ("wrong types", dict(json={"email": 5, "password": ["x"]}), 422, "validation_error"),
    ("operator objects", dict(json={"email": {"$ne": None}, "password": {"$gt": ""}}), 422, "validation_error"),
    (
        "10 MB with Content-Length",
        dict(data=b'{"email": "' + b"a" * (10 * MB) + b'"}', headers=JSON),
        413,
        "payload_too_large",
    ),
    (
        "10 MB chunked",
        dict(data=_chunks(b'{"email": "', b"a", 10 * MB, b'@b.io", "password": "x"}'), headers=JSON),
        413,
        "payload_too_large",
    ),
    (
        "10 MB chunked, valid JSON padded with spaces",
        dict(data=_chunks(b'{"email": "a@b.io", "password": "long-enough"}', b" ", 10 * MB, b""), headers=JSON),
        413,
        "payload_too_large",
    ),
    ("deeply nested arrays", dict(data=b"[" * 400_000 + b"]" * 400_000, headers=JSON), 400, "bad_request"),
    ("deeply nested objects", dict(data=b'{"a":' * 150_000 + b"1" + b"}" * 150_000, headers=JSON), 400, "bad_request"),
    (
        "not UTF-8",
        dict(data=b'{"email": "\xff\xfe@b.io", "password": "long-enough"}', headers=JSON),
        400,
        "bad_request",
    ),
    (
        "lone surrogate",
        dict(data=b'{"email": "\\ud800@b.io", "password": "long-enough"}', headers=JSON),
        400,
        "bad_request",
    ),
    (
        "raw NUL byte",
        dict(data=b'{"email": "a@b.io",\x00 "password": "long-enough"}', headers=JSON),
        400,
        "bad_request",
    ),
    ("NUL in the email", dict(json={"email": "a\x00@b.io", "password": "long-enough"}), 422, "validation_error"),
    (
        "NUL in the password",
        dict(json={"email": "nobody@b.io", "password": "long\x00enough"}),
        401,
        "invalid_credentials",
    ),
    ("1e400", dict(data=b'{"email": "a@b.io", "password": 1e400}', headers=JSON), 422, "validation_error"),
    ("NaN", dict(data=b'{"email": "a@b.io", "password": NaN}', headers=JSON), 422, "validation_error"),
    (
        "5000-digit integer",
        dict(data=b'{"email": "a@b.io", "password": 1' + b"0" * 5000 + b"}", headers=JSON),
        400,
        "bad_request",
    ),
    (
        "text/plain",
        dict(data=b'{"email": "a@b.io"}', headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    ("form encoded", dict(data={"email": "a@b.io", "password": "long-enough"}), 415, "unsupported_media_type"),
    ("SQL in an invalid email", dict(json={"email": "' OR 1=1 --@b.io", "password": "x"}), 422, "validation_error"),
    (
        "SQL in a valid email",
        dict(json={"email": "admin'--@example.com", "password": "long-enough"}),
        401,
        "invalid_credentials",
    ),
    (
        "SQL as the password",
        dict(json={"email": "nobody@example.com", "password": "' OR '1'='1' --"}),
        401,
        "invalid_credentials",
    ),
]

# Addresses registration must refuse: each would look like another account, or no mail server takes it.
HOSTILE_EMAILS = {
    "SQL comment": "x@example.com'; DROP TABLE users;--",
    "RTL override": "\u202emoc.elpmaxe@nimda",
    "RTL override in the domain": "admin@exa\u202emple.com",
    "zero-width space in the local part": "ad\u200bmin@example.com",
    "zero-width space in the domain": "admin@exa\u200bmple.com",
    "zero-width joiner": "admin\u200d@example.com",
    "soft hyphen": "ad\u00admin@example.com",
    "combining accent": "e\u0301@example.com",
    "emoji": "\U0001f600@example.com",
    "tab": "ad\tmin@example.com",
    "65-byte local part": "a" * 65 + "@example.com",
    "321 characters": "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "c" * 12,
}


@pytest.fixture(scope="module")
def workers(hardened) -> list[int]:
    """The workers before the battery: none may be replaced by the end."""
    return hardened.gunicorn.worker_pids()


@pytest.mark.parametrize("name, kwargs, status, error", LOGIN_BODIES, ids=[c[0] for c in LOGIN_BODIES])
def test_hostile_login_body_is_a_4xx_json_answer(hardened, workers, name, kwargs, status, error):
    # Each case from its own address, so the login limit (5 per hour per client) never interferes.
    response = hardened.client().post(LOGIN, **kwargs)
    assert_error(response, status, error)


@pytest.mark.parametrize("name", list(HOSTILE_EMAILS))
def test_registration_refuses_lookalike_and_oversized_addresses(hardened, workers, name):
    client = hardened.client()
    email = HOSTILE_EMAILS[name]
    body = assert_error(
        client.post(REGISTER, json={"email": email, "password": "long-enough-pw"}), 422, "validation_error"
    )
    assert set(body["details"]) == {"email"}
    login = client.post(LOGIN, json={"email": email, "password": "long-enough-pw"})
    assert login.status_code in (401, 422), login.text  # no such account, whatever the login rules


def test_a_valid_but_sql_looking_address_is_only_data(hardened, workers):
    client = hardened.client()
    sneaky = AuthActions(client, email="o'brien--@example.com")
    other = AuthActions(hardened.client()).signed_in()
    assert sneaky.register().json()["email"] == "o'brien--@example.com"
    assert sneaky.login().status_code == 200
    assert sneaky.me().json()["email"] == "o'brien--@example.com"
    assert other.me().status_code == 200  # nobody else was touched


@pytest.fixture(scope="module")
def learner(hardened) -> AuthActions:
    return AuthActions(hardened.client()).signed_in()


@pytest.mark.parametrize(
    "body, status",
    [
        ({"exercise_id": "x", "edit_frequency": 1e308, "error_count": 1}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": 10**30}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": True}, 422),
        ({"exercise_id": "x" * 10_000, "edit_frequency": 1, "error_count": 1}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": 1, "error_types": ["E"] * 10_000}, 422),
        ({"exercise_id": "x", "edit_frequency": 1, "error_count": 1, "window_seconds": -1}, 422),
        ({"exercise_id": "\u202e\u200b\x00", "edit_frequency": 1, "error_count": 1}, 201),
    ],
)
def test_hostile_struggle_input(hardened, workers, learner, body, status):
    response = learner.client.post("/api/v1/workflows/struggle", json=body, headers=bearer(learner.access))
    assert response.status_code == status, response.text[:300]
    if status != 201:
        assert_error(response, status, "validation_error")


def test_hostile_struggle_literals(hardened, workers, learner):
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        body = b'{"exercise_id": "x", "edit_frequency": ' + literal + b', "error_count": 1}'
        response = learner.client.post(
            "/api/v1/workflows/struggle", data=body, headers={**JSON, **bearer(learner.access)}
        )
        assert_error(response, 422, "validation_error")


AUDIT_SOURCES = {
    "deep parentheses": "(" * 200_000,
    "deep lists": "[" * 50_000 + "]" * 50_000,
    "long addition chain": "x = " + "1+" * 100_000 + "1",
    "deep lambdas": "x = " + "lambda: " * 25_000 + "1",
    "binary junk": "".join(chr(c) for c in range(1, 256)) * 100,
    "NUL bytes": "x = 1\n\x00\n",
}


def test_audit_sources_made_to_exhaust_the_parser(hardened, workers, learner):
    # All at once, in one request under the body limit: each is a syntax_error finding, not a hang.
    files = [{"path": f"{name}.py", "content": content} for name, content in AUDIT_SOURCES.items()]
    files.append({"path": "../../etc/passwd.py", "content": "eval('1')\n"})
    response = learner.client.post(
        "/api/v1/workflows/audit", json={"files": files}, headers=bearer(learner.access), timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text[:300]
    found = {(v["path"], v["type"]) for v in response.json()["violations"]}
    for name in AUDIT_SOURCES:
        assert (f"{name}.py", "syntax_error") in found, name
    assert ("../../etc/passwd.py", "eval_exec") in found  # a path is only a label


def test_audit_limits_hold(hardened, workers, learner):
    too_big = {"files": [{"path": "big.py", "content": "x = 1\n" * 50_000}]}  # 300 KB > 256 KiB
    response = learner.client.post("/api/v1/workflows/audit", json=too_big, headers=bearer(learner.access))
    assert_error(response, 413, "audit_limit_exceeded")
    too_many = {"files": [{"path": f"{i}.py", "content": ""} for i in range(51)]}
    response = learner.client.post("/api/v1/workflows/audit", json=too_many, headers=bearer(learner.access))
    assert_error(response, 422, "audit_limit_exceeded")


def _raw(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(payload)
        return conn.recv(65536)


@pytest.mark.parametrize(
    "payload, status",
    [
        (
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999999999999999\r\n\r\n{}",
            b"413",
        ),
        (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}", b"400"),
        (b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 9\r\n\r\n{}", b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 20_000 + b"\r\n\r\n", b"431"),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64) + b"\r\n\r\n", b"400"),
    ],
)
def test_malformed_http_is_refused_by_gunicorn(hardened, workers, payload, status):
    """Protocol-level junk never reaches the app; Gunicorn answers it (in HTML - see docs/security.md)."""
    answer = _raw(hardened.gunicorn.port, payload)
    assert answer.split(b" ", 2)[1] == status, answer[:200]


CHUNKED_HEAD = (
    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
BAD_CHUNKED = {
    "chunk size not hex": (b"zz\r\n{}\r\n0\r\n\r\n", False),
    "negative chunk size": (b"-2\r\n{}\r\n0\r\n\r\n", False),
    "empty chunk size": (b"\r\n{}\r\n0\r\n\r\n", False),
    "chunk without its CRLF": (b"2\r\n{}XX0\r\n\r\n", False),
    "control character in a chunk extension": (b"2;\x01\r\n{}\r\n0\r\n\r\n", False),
    "chunk size line of 20 kB": (b"1" * 20_000 + b"\r\n", False),
    "malformed trailer": (b"2\r\n{}\r\n0\r\nno colon here\r\n\r\n", False),
    "body ends inside a chunk": (b"ff\r\n{}", True),
}


def _answer(address: str, port: int, payload: bytes, half_close: bool) -> bytes:
    """Send a raw request from `address`; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(address, 0)) as conn:
        conn.sendall(payload)
        if half_close:
            conn.shutdown(socket.SHUT_WR)  # the client has sent all it will
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if len(answer) > 1_000_000:
                break
    return answer


def _server_errors(hardened) -> float:
    from tests.security.conftest import METRICS_TOKEN
    from tests.support.metrics import parse_exposition

    samples = parse_exposition(hardened.client().get("/metrics", headers=bearer(METRICS_TOKEN)).text)
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "http_requests_total" and dict(labels)["status_code"].startswith("5")
    )


@pytest.mark.parametrize("name", list(BAD_CHUNKED))
def test_a_malformed_chunked_body_is_a_400(hardened, workers, name):
    """Gunicorn raised its parse error from inside the app's read of the body: a 500, a
    traceback in the log and a count in the 5xx rate the SLO pages on."""
    from tests.security.conftest import new_address

    body, half_close = BAD_CHUNKED[name]
    log_before = len(hardened.log_text())
    errors_before = _server_errors(hardened)
    answer = _answer(new_address(), hardened.gunicorn.port, CHUNKED_HEAD + body, half_close)
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer[:300]
    headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
    document = json.loads(content)
    assert document["error"] == "bad_request" and set(document) == {"error", "message"}, document
    assert _server_errors(hardened) == errors_before
    logged = hardened.log_text()[log_before:]
    assert "Traceback" not in logged and "unhandled error" not in logged, logged[-2000:]


def test_workers_survived_the_battery(hardened, workers):
    hardened.assert_healthy(workers)
