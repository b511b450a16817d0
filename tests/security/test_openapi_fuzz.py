"""Property-based tests of the whole API, driven by its own OpenAPI document (Schemathesis 4).

Every operation gets generated requests - valid and invalid (positive and negative modes) - and
none may be answered with a 5xx. Authenticated operations get a fresh genuine token for each
request (a refresh token for /refresh), so generated logouts cannot starve the rest; bad tokens
have their own tests (test_token_attacks.py). In-process (WSGI) for speed: the socket-level
behaviour is covered against Gunicorn by the other tests here.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask_jwt_extended import create_access_token, create_refresh_token
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.support.auth import AuthActions

REFRESH = "/api/v1/auth/refresh"


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture
def learner_id(app) -> str:
    actions = AuthActions(app.test_client()).signed_in()
    return str(actions.me().get_json()["id"])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_generated_request_gets_a_5xx(case, app, learner_id):
    headers = {}
    if case.operation.definition.raw.get("security"):
        with app.app_context():
            token = (create_refresh_token if case.operation.path == REFRESH else create_access_token)(learner_id)
        headers["Authorization"] = f"Bearer {token}"
    case.call_and_validate(headers=headers, checks=[not_a_server_error])


def test_every_operation_is_exercised(app):
    """The document lists every route, so generation above reaches all of them."""
    operations = {(op.method.upper(), op.path)
                  for op in (result.ok() for result in
                             schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app).get_all_operations())}
    assert {("POST", "/api/v1/auth/register"), ("POST", "/api/v1/auth/login"), ("POST", REFRESH),
            ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/auth/me"),
            ("POST", "/api/v1/workflows/struggle"), ("POST", "/api/v1/workflows/audit"),
            ("GET", "/api/v1/workflows/struggle/{run_id}"),
            ("GET", "/api/v1/workflows/audit/{run_id}")} <= operations
