"""Passwords, tokens, hashes and keys never reach the logs - even at DEBUG with the access log on."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.security.conftest import METRICS_TOKEN, SECRET
from tests.support.auth import AuthActions, bearer

pytestmark = pytest.mark.gunicorn


def _wait_for_log(server, needle: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while needle not in server.log_text():
        assert time.monotonic() < deadline, f"{needle!r} never logged"
        time.sleep(0.1)


def test_no_secret_in_debug_and_access_logs(hardened):
    alice = AuthActions(hardened.client(), password="alice-pass-Zq81-unique")
    bob = AuthActions(hardened.client(), password="bob-pass-Kx52-unique").signed_in()
    wrong_password = "wrong-pass-Vn37-unique"
    assert alice.register().status_code == 201
    assert alice.login(password=wrong_password).status_code == 401
    AuthActions(hardened.client(), password="ghost-pass-Ue64-unique").login()  # unknown account: 401
    assert alice.login().status_code == 200
    first = dict(alice.tokens)
    assert alice.me().status_code == 200
    assert alice.refresh().status_code == 200
    assert alice.refresh(first["refresh_token"]).status_code == 401  # reuse: the session ends
    assert alice.login().status_code == 200  # a new one
    assert alice.logout(refresh_token=bob.refresh_token).status_code == 401  # someone else's
    second = dict(alice.tokens)
    assert alice.logout(refresh_token=second["refresh_token"]).status_code == 200
    assert alice.me(second["access_token"]).status_code == 401  # revoked
    assert alice.client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert alice.client.get("/metrics", headers=bearer("guessed-token")).status_code == 401
    marker = "/end-of-secrets-test"  # a path: access lines drop query strings
    alice.client.get(marker)
    _wait_for_log(hardened, f"GET {marker} ")  # the access log is flushed up to here

    # test_access_control.py sends the metrics token in a URL on purpose (to show it is refused
    # there): the access lines keep the path only, so it is not in the log either.
    log = hardened.log_text()
    # The grep below means something only if the logs saw the whole story, at DEBUG.
    assert re.search(r'"POST /api/v1/auth/login HTTP/1.1" 401', log)
    assert re.search(r'"POST /api/v1/auth/login HTTP/1.1" 200', log)
    assert re.search(r'"POST /api/v1/auth/logout HTTP/1.1" 200', log)
    assert re.search(r'"POST /api/v1/auth/refresh HTTP/1.1" 401', log)
    assert " DEBUG " in log and "[DEBUG]" in log

    secrets = {
        "alice's password": alice.password,
        "bob's password": bob.password,
        "a wrong password": wrong_password,
        "an unknown account's password": "ghost-pass-Ue64-unique",
        "the JWT key": SECRET,
        "the metrics token": METRICS_TOKEN,
    }
    for name, tokens in (("first", first), ("second", second), ("bob's", bob.tokens)):
        for kind in ("access_token", "refresh_token"):
            token = tokens[kind]
            secrets[f"{name} {kind}"] = token
            secrets[f"{name} {kind} signature"] = token.rsplit(".", 1)[1]
    leaked = sorted(name for name, value in secrets.items() if value in log)
    assert leaked == [], leaked
    assert "$argon2" not in log, "a password hash was logged"


def test_gunicorn_error_log_keeps_no_request_bodies(hardened):
    """A request Gunicorn itself refuses is logged by reason, never with what the client sent."""
    secret_body = b'{"email": "a@b.io", "password": "body-secret-Hr93"}'
    bad = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n"
        b"Content-Type: application/json\r\n\r\n" + secret_body
    )
    import socket

    with socket.create_connection(("127.0.0.1", hardened.gunicorn.port), timeout=20) as conn:
        conn.sendall(bad)
        assert conn.recv(100).startswith(b"HTTP/1.1 400")
    requests.get(hardened.url + "/after-bad-request", timeout=20)
    _wait_for_log(hardened, "GET /after-bad-request ")
    assert "body-secret-Hr93" not in hardened.log_text()
