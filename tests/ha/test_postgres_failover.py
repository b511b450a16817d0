"""The PostgreSQL primary stops under traffic and its synchronous standby is promoted, as a
failover manager would do. DATABASE_URL names both servers (libpq multi-host with
target_session_attrs=read-write): the pool drops the dead primary's connections (pre-ping), the
requests in flight answer 503, the next ones succeed on the new primary - and every
registration a client saw succeed can log in afterwards (synchronous_commit=on with a
synchronous standby: an acknowledged commit is on the standby before the client hears of it)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from aura.testing.ha import Traffic, production_env
from aura.testing.servers import RedisServer
from tests.ha.conftest import PASSWORD, TIMEOUT, Account, bearer
from tests.resilience.conftest import scrape

pytestmark = [pytest.mark.gunicorn, pytest.mark.ha]

PROMOTION_DELAY = 1.0  # seconds between the primary's stop and the promotion (detection time)
RECOVERY_BOUND = 3.0  # seconds after the promotion by which every answer is 2xx again
STRUGGLE = {"exercise_id": "loops-1", "edit_frequency": 25, "error_count": 14}


def test_postgres_primary_stopped_and_standby_promoted_under_traffic(tmp_path, postgres_pair, launch):
    assert postgres_pair.primary.execute("SHOW synchronous_standby_names") == [("*",)]
    assert postgres_pair.primary.execute("SELECT sync_state FROM pg_stat_replication") == [("sync",)]
    redis_server = RedisServer().start()
    try:
        aura = launch.gunicorn(production_env(tmp_path, postgres_pair.url, redis_server.url), workers=3)
        api = aura.url + "/api/v1"
        token = Account(aura.url).login()["access_token"]
        lock = threading.Lock()
        registered: list[tuple[dict, int]] = []

        def step(session, thread, n):
            if thread < 2:  # registrations: writes whose acknowledgement must hold
                creds = {"email": f"{uuid.uuid4().hex}@example.com", "password": PASSWORD}
                response = session.post(f"{api}/auth/register", json=creds, timeout=TIMEOUT)
                with lock:
                    registered.append((creds, response.status_code))
                return "register", response
            if n % 2:
                return "struggle", session.post(
                    f"{api}/workflows/struggle", json=STRUGGLE, headers=bearer(token), timeout=TIMEOUT
                )
            return "me", session.get(f"{api}/auth/me", headers=bearer(token), timeout=TIMEOUT)

        with Traffic(step, threads=4, pause=0.01) as traffic:
            time.sleep(2)
            assert set(traffic.by_result()) == {200, 201}, traffic.by_result()
            stopped = time.monotonic()
            postgres_pair.primary.stop()
            time.sleep(PROMOTION_DELAY)
            postgres_pair.standby.promote()
            promoted = time.monotonic()
            time.sleep(RECOVERY_BOUND + 5)
        outcomes = traffic.snapshot()
        counts = traffic.by_result()
        assert set(counts) <= {200, 201, 503}, counts  # never a 500, never a hang
        assert {o.code for o in outcomes if o.result == 503} <= {"service_unavailable"}
        window = traffic.error_window()
        print(
            f"\npostgres failover: promoted {promoted - stopped:.2f} s after the stop; 503 window "
            + (f"{window[0] - stopped:+.2f} s .. {window[1] - stopped:+.2f} s" if window else "none")
            + f"; answers {counts}"
        )
        assert window, "the stop went unnoticed: the test did not exercise a failover"
        assert window[1] - promoted <= RECOVERY_BOUND, window[1] - promoted
        assert sum(1 for o in outcomes if o.started > promoted + RECOVERY_BOUND and o.ok) > 20

        # Every registration a client saw succeed (201) can log in, on the new primary.
        succeeded = [creds for creds, status in registered if status == 201]
        assert succeeded and all(status in (201, 503) for _, status in registered)
        for creds in succeeded:
            response = requests.post(f"{api}/auth/login", json=creds, timeout=TIMEOUT)
            assert response.status_code == 200, (creds["email"], response.text)
        metrics = scrape(aura)
        assert not any(
            dict(labels).get("status_code") == "500" for (name, labels) in metrics if name == "http_requests_total"
        )
    finally:
        redis_server.kill()
