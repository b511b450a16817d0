"""Issue 23 item 3: revocations survive a Redis that comes back from an older snapshot, and a
replica promoted before it had the last revocations. The marker that says "Redis holds every
revocation" names the server that was loaded (its run_id); a snapshot restored into a new
process, or a replica promoted, carries the marker of another server, so Aura reloads the
revocations from the database - and a refresh asks the database anyway."""

from __future__ import annotations

import os
import signal

import pytest
import redis
import requests

from aura.testing.ha import production_env
from aura.testing.servers import RedisServer
from tests.ha.conftest import TIMEOUT, Account, assert_revoked, bearer

pytestmark = [pytest.mark.gunicorn, pytest.mark.ha]


def _wait_until_me_answers(url: str, token: str, seconds: float = 30) -> None:
    import time

    deadline = time.monotonic() + seconds
    while True:
        status = requests.get(f"{url}/api/v1/auth/me", headers=bearer(token), timeout=TIMEOUT).status_code
        if status == 200:
            return
        assert status == 503 and time.monotonic() < deadline, status
        time.sleep(0.2)


def test_redis_restarted_from_an_older_snapshot_forgets_no_revocation(tmp_path, postgres, launch):
    data = tmp_path / "redis-data"
    data.mkdir()
    server = RedisServer("--dir", str(data), "--dbfilename", "dump.rdb").start()
    try:
        aura = launch.gunicorn(production_env(tmp_path, postgres.url, server.url))
        account = Account(aura.url)
        logged_out, alive = account.login(), account.login()
        _wait_until_me_answers(aura.url, logged_out["access_token"])  # Redis loaded, marker set
        client = redis.Redis(port=server.port, db=0)
        assert client.get("aura:revoked:loaded") is not None
        client.save()  # the snapshot: before the logout

        response = requests.post(
            f"{aura.url}/api/v1/auth/logout", headers=bearer(logged_out["access_token"]), timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        assert_revoked(aura.url, logged_out)

        server.kill()  # SIGKILL: nothing saved since the snapshot
        server.start()  # a new process, loading the older snapshot: marker and all
        assert client.get("aura:revoked:loaded") is not None  # what fooled the old check
        _wait_until_me_answers(aura.url, alive["access_token"])
        assert_revoked(aura.url, logged_out)
    finally:
        server.kill()


def test_a_promoted_replica_that_missed_the_last_revocations_forgets_none(tmp_path, postgres, sentinels, launch):
    aura = launch.gunicorn(production_env(tmp_path, postgres.url, sentinels.url))
    account = Account(aura.url)
    logged_out, alive = account.login(), account.login()
    _wait_until_me_answers(aura.url, logged_out["access_token"])  # marker set on the primary
    replica = redis.Redis(port=sentinels.replica.port, password=sentinels.password)
    _wait_until_replicated(replica, "aura:revoked:loaded")  # replication is asynchronous

    # The replica stops, and the primary drops its link (else the stream waits in the socket).
    os.kill(sentinels.replica.proc.pid, signal.SIGSTOP)
    try:
        primary = redis.Redis(port=sentinels.primary.port, password=sentinels.password)
        assert primary.client_kill_filter(_type="replica") == 1
        response = requests.post(
            f"{aura.url}/api/v1/auth/logout", headers=bearer(logged_out["access_token"]), timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        old = sentinels.primary.port
        sentinels.primary.kill()  # the logout dies with the primary
    finally:
        os.kill(sentinels.replica.proc.pid, signal.SIGCONT)
    sentinels.wait_for_failover(old)
    assert replica.get("aura:revoked:" + _jti(logged_out["access_token"])) is None  # never replicated
    _wait_until_me_answers(aura.url, alive["access_token"])
    assert_revoked(aura.url, logged_out)


def _wait_until_replicated(replica: redis.Redis, key: str, seconds: float = 10) -> None:
    import time

    deadline = time.monotonic() + seconds
    while replica.get(key) is None:
        assert time.monotonic() < deadline, f"{key} never reached the replica"
        time.sleep(0.05)


def _jti(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["jti"]
