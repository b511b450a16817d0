"""Mass registration over real Gunicorn: password hashing cannot take every worker.

40 addresses x 6 attempts made 200 accounts in 36 s while /healthz on the app port took 4.9 s
median: every worker was hashing. Now at most PASSWORD_HASH_MAX_CONCURRENT hashes run at once in
an instance, whatever its workers (lock-file slots, `aura.auth.hash_slots`); a registration or
login that finds no slot is answered 429 at once with Retry-After, so the other workers stay free
for everything else. RATE_LIMIT_REGISTER_ALL bounds registrations from all clients together.
Each client talks from its own loopback address, so per-address limits never interfere.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

import pytest
import requests

from tests.security.conftest import Server
from tests.support.auth import PASSWORD
from tests.support.errors import assert_error

pytestmark = pytest.mark.gunicorn

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
LIMITS = dict(
    RATE_LIMIT_ENABLED="true",
    RATE_LIMIT_DEFAULT="100000 per hour",
    RATE_LIMIT_REGISTER="100000 per hour",
    RATE_LIMIT_REGISTER_ALL="100000 per hour",
    RATE_LIMIT_LOGIN="100000 per hour",
)
# The readiness probe's timeout (k8s/base/deployment.yaml): a probe not answered within it fails.
PROBE_TIMEOUT = 3


def _email(n: object) -> str:
    return f"flood-{n}-{threading.get_ident()}@example.com"


def _busy(response) -> None:
    body = assert_error(response, 429, "too_many_concurrent_requests", headers={"Retry-After": "1"})
    assert body["details"] == {"limit": "1 at once", "per": "instance"}, body


@pytest.fixture
def slow_hashing(tmp_path):
    """Two workers, one hashing slot, and a hash that takes a few seconds (Argon2 t=80, 64 MiB)."""
    server = Server(
        tmp_path,
        "slow-hashing",
        workers=2,
        PASSWORD_HASH_MAX_CONCURRENT="1",
        PASSWORD_HASH_TIME_COST="80",
        PASSWORD_HASH_MEMORY_COST="65536",
        GUNICORN_TIMEOUT="120",
        **LIMITS,
    )
    yield server
    server.close()


def test_beyond_the_hashing_budget_register_and_login_are_refused_at_once(slow_hashing):
    """Two registrations at once on two workers: one hashes, the other is refused while the first
    is still hashing (it used to hash too, and /healthz waited for a worker)."""
    clients = [slow_hashing.client() for _ in range(4)]
    with ThreadPoolExecutor(2) as pool:
        pending = [
            pool.submit(client.post, REGISTER, json={"email": _email(n), "password": PASSWORD}, timeout=120)
            for n, client in enumerate(clients[:2])
        ]
        done, in_flight = wait(pending, timeout=120, return_when=FIRST_COMPLETED)
        assert len(done) == 1, "both registrations were answered together"
        _busy(done.pop().result())
        hashing = in_flight.pop()
        # While that registration is still hashing, the free worker answers everything else:
        assert clients[2].get("/healthz", timeout=60).json() == {"status": "ok"}
        _busy(clients[3].post(LOGIN, json={"email": _email("x"), "password": PASSWORD}, timeout=60))
        assert not hashing.done(), "the registration that hashes ended before the others were answered"
        assert hashing.result().status_code == 201, hashing.result().text
    assert "Traceback" not in slow_hashing.log_text()


@pytest.mark.slow(30)
def test_healthz_answers_through_a_registration_flood(tmp_path):
    """24 addresses registering 6 times each, all at once, on 4 workers and 1 hashing slot: every
    attempt is a 201 or a 429 with Retry-After, and every /healthz probe sent meanwhile is
    answered 200 within the readiness probe's timeout."""
    server = Server(
        tmp_path,
        "flood",
        workers=4,
        PASSWORD_HASH_MAX_CONCURRENT="1",
        PASSWORD_HASH_TIME_COST="20",
        PASSWORD_HASH_MEMORY_COST="65536",
        **LIMITS,
    )
    try:
        over = threading.Event()
        probes: list[int | str] = []

        def probe() -> None:
            client = server.client()
            for _ in range(600):  # bounded, and over when the flood is
                if over.wait(0.2):
                    return
                try:
                    probes.append(client.get("/healthz", timeout=PROBE_TIMEOUT).status_code)
                except requests.RequestException as exc:
                    probes.append(type(exc).__name__)

        def flood(n: int) -> list:
            client = server.client()
            return [
                client.post(REGISTER, json={"email": _email(f"{n}-{i}"), "password": PASSWORD}, timeout=120)
                for i in range(6)
            ]

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(24) as pool:
                answers = [r for batch in pool.map(flood, range(24)) for r in batch]
        finally:
            over.set()
            prober.join(30)
        assert probes and all(p == 200 for p in probes), probes
        statuses = [r.status_code for r in answers]
        assert set(statuses) <= {201, 429}, sorted(set(statuses))
        for refused in (r for r in answers if r.status_code == 429):
            _busy(refused)
        assert statuses.count(429) > 0 and statuses.count(201) > 0, statuses
    finally:
        server.close()


def test_registrations_from_all_clients_together_are_limited(tmp_path):
    server = Server(tmp_path, "register-all", workers=2, **{**LIMITS, "RATE_LIMIT_REGISTER_ALL": "4 per hour"})
    try:
        answers = [server.client().post(REGISTER, json={"email": _email(n), "password": PASSWORD}) for n in range(5)]
        assert [r.status_code for r in answers[:4]] == [201] * 4, [r.text for r in answers]
        body = assert_error(answers[4], 429, "rate_limited")
        assert body["details"] == {"limit": "4 per 1 hour", "per": "service"}, body
        assert int(answers[4].headers["Retry-After"]) > 0
    finally:
        server.close()
