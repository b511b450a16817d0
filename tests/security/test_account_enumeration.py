"""No account enumeration through login: an unknown email and a wrong password get the same answer,
in similar time, under real Gunicorn with the production Argon2 cost.

The time bound is deliberately loose (medians within 50% of the larger): it is a check on a
behaviour - both paths run one full Argon2 verification - not a speed target. Skipping the hash
for unknown emails makes that path ~100x faster, which this catches on any machine; the
measured figures are in docs/security.md.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.security.conftest import Server
from tests.support.auth import AuthActions

pytestmark = pytest.mark.gunicorn

ROUNDS = 30
PRODUCTION_ARGON2 = dict(PASSWORD_HASH_TIME_COST="3", PASSWORD_HASH_MEMORY_COST="65536")


@pytest.fixture(scope="module")
def production_cost(tmp_path_factory):
    # One worker, so both kinds of login queue for the same CPU and memory.
    server = Server(
        tmp_path_factory.mktemp("enumeration"),
        "enumeration",
        workers=1,
        RATE_LIMIT_ENABLED="false",
        **PRODUCTION_ARGON2,
    )
    yield server
    server.close()


def _timed(client, email: str, password: str):
    started = time.perf_counter()
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    return time.perf_counter() - started, response


@pytest.mark.slow(30)
def test_unknown_email_and_wrong_password_are_indistinguishable(production_cost):
    client = production_cost.client()
    account = AuthActions(client).signed_in()
    unknown = "nobody-here@example.com"
    for _ in range(3):  # warm up: first Argon2 runs allocate their 64 MiB
        _timed(client, unknown, "wrong-password-1")
        _timed(client, account.email, "wrong-password-1")

    times: dict[str, list[float]] = {"unknown email": [], "wrong password": []}
    answers = set()
    for n in range(ROUNDS):  # interleaved, so drift in machine load hits both alike
        pairs = [("unknown email", unknown), ("wrong password", account.email)]
        for kind, email in pairs if n % 2 else reversed(pairs):
            seconds, response = _timed(client, email, f"wrong-password-{n}")
            times[kind].append(seconds)
            answers.add((response.status_code, response.text, response.headers["Content-Type"]))

    assert answers == {
        (401, '{"error":"invalid_credentials","message":"Email or password is incorrect."}\n', "application/json")
    }
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    larger, smaller = max(medians.values()), min(medians.values())
    difference = (larger - smaller) / larger
    print(
        f"\nlogin medians over {ROUNDS} each (production Argon2, t=3, m=64 MiB): "
        + ", ".join(f"{kind} {1000 * m:.1f} ms" for kind, m in medians.items())
        + f"; difference {1000 * (larger - smaller):.1f} ms = {100 * difference:.1f}% of the larger"
    )
    assert difference < 0.5, medians
