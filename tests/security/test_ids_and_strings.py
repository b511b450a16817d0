"""Whatever a client puts in an id or a string is checked before the database sees it.

PostgreSQL refuses text holding a NUL byte (psycopg raises DataError), so a NUL that reached a
query was a 500. Every place a client's string goes - path ids, emails, workflow fields, the
token subject - answers 404, 401 or 422 instead, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import base64
import time

import jwt as pyjwt
import pytest

from tests.security.conftest import SECRET
from tests.support.auth import AuthActions, bearer
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

NASTY = [
    "abc\x00def",
    "\x00",
    "%00",
    "a" * 5000,
    "../../etc/passwd",
    "' OR 1=1 --",
    "\ud800",
    "x\u202ey",
    "12345678-1234-1234-1234-1234567890a\x00",
]
PATH_IDS = [
    "abc%00def",
    "%00",
    "a" * 3000,
    "12345678-1234-1234-1234-123456789012%00",
    "%C0%80",
    "%FF%FE",
    "..%2F..%2Fetc",
    "%E2%80%AE",
]


@pytest.fixture(scope="module")
def learner(hardened) -> AuthActions:
    return AuthActions(hardened.client()).signed_in()


@pytest.mark.parametrize("kind", ["struggle", "audit"])
@pytest.mark.parametrize("run_id", PATH_IDS)
def test_odd_run_ids_are_404(hardened, learner, kind, run_id):
    response = learner.client.get(f"/api/v1/workflows/{kind}/{run_id}", headers=bearer(learner.access))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("text", NASTY)
def test_odd_strings_in_bodies_never_reach_the_database_as_a_500(hardened, learner, text):
    client = hardened.client()
    for path, body in (
        ("/api/v1/auth/login", {"email": f"a{text}@example.com", "password": text}),
        ("/api/v1/auth/login", {"email": text, "password": "long-enough-1"}),
        ("/api/v1/auth/register", {"email": f"a{text}@example.com", "password": f"long-enough-{text}"}),
        (
            "/api/v1/workflows/struggle",
            {"exercise_id": text, "edit_frequency": 1, "error_count": 0, "topic": text, "error_types": [text]},
        ),
        ("/api/v1/workflows/audit", {"files": [{"path": f"{text}.py", "content": f"x = '{text}'\n"}]}),
    ):
        response = client.post(path, json=body, headers=bearer(learner.access))
        assert response.status_code < 500, (path, text[:20], response.status_code, response.text[:300])
        assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("subject", ["abc\x00def", "\x00" * 32, "a" * 31 + "\x00", "é" * 32])
def test_odd_token_subjects_are_401(hardened, subject):
    now = int(time.time())
    token = pyjwt.encode(
        {
            "sub": subject,
            "jti": f"odd-{now}",
            "type": "access",
            "fam": "f\x00",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        },
        SECRET,
        algorithm="HS256",
    )
    assert_error(hardened.client().get("/api/v1/auth/me", headers=bearer(token)), 401, "invalid_token")


@pytest.mark.parametrize("claims", [{"jti": "j\x00"}, {"fam": "f\x00"}, {"fam": "f" * 65}, {"jti": 7}, {"fam": ["x"]}])
def test_odd_token_ids_are_401(hardened, learner, claims):
    now = int(time.time())
    subject = pyjwt.decode(learner.access, options={"verify_signature": False})["sub"]
    payload = {
        "sub": subject,
        "jti": f"odd-{now}",
        "type": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **claims,
    }
    token = pyjwt.encode(payload, SECRET, algorithm="HS256")
    assert_error(hardened.client().get("/api/v1/auth/me", headers=bearer(token)), 401, "invalid_token")


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-29T20:00:00+00:00|abc\x00def",
        "2026-11-29T20:00:00|\x00",
        "\x00|12345678-1234-1234-1234-123456789012",
        "x" * 150,
    ],
)
def test_odd_listing_cursors_are_422(hardened, learner, raw):
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    response = learner.client.get("/api/v1/workflows", params={"cursor": cursor}, headers=bearer(learner.access))
    body = assert_error(response, 422, "validation_error")
    assert set(body["details"]) == {"cursor"}


def test_accounts_show_no_row_id(hardened):
    """`/me` (and registration) gave the sequential row id: two sign-ups a moment apart told how
    many accounts were made between them. The id shown is the account's random public id."""
    first, second = AuthActions(hardened.client()), AuthActions(hardened.client())
    ids = [first.register().json()["id"], second.register().json()["id"]]
    for account, shown in zip((first, second), ids, strict=True):
        assert account.login().status_code == 200
        assert (
            account.me().json()["id"]
            == shown
            == pyjwt.decode(account.access, options={"verify_signature": False})["sub"]
        )
        assert isinstance(shown, str) and len(shown) == 32 and not shown.isdigit()
    assert ids[0] != ids[1]
    rows = hardened.sql("SELECT id FROM users WHERE public_id IN (:a, :b)", a=ids[0], b=ids[1])
    assert {str(row.id) for row in rows}.isdisjoint(ids)
