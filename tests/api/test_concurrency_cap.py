"""The per-user cap on workflow requests in progress (aura.api.concurrency), in process.

Each test mounts the cap on a route of its own (`/capped/<n>`), so it checks the decorator alone:
the sorted set `aura:inflight:<user>` holding the requests in progress, the 429 beyond the cap,
stale members dropped, the slot given back whatever the view does, and failing open on Redis errors.
"""

from __future__ import annotations

import functools
import time

import pytest
import redis
from flask_jwt_extended import jwt_required

from aura.api import concurrency
from aura.api.concurrency import KEY_PREFIX, STALE_SECONDS, per_user_concurrency
from aura.api.context import services
from aura.api.jwt import current_user_id
from aura.auth.revocation import SqlRevocationStore
from tests.support.auth import AuthActions
from tests.support.errors import assert_error
from tests.support.metrics import registry_samples, value

AUTH_DB_ERRORS = dict(database="auth_db", error_type="connection_failed")


def _row_id(app, public_id: str) -> int:
    from aura.extensions import db
    from aura.models import User

    with app.app_context():
        return db.session.execute(db.select(User.id).filter_by(public_id=public_id)).scalar_one()


def _with_positional(view):
    """A decorator outside the cap that passes a positional argument (as flask-smorest's do)."""

    @functools.wraps(view)
    def wrapper(**kwargs):
        return view("from-outside", **kwargs)

    return wrapper


class Capped:
    """An app with a capped route whose view records what it saw, or raises when told to."""

    def __init__(self, make_app, limit: int):
        self.app = make_app(workflow_max_concurrent_per_user=limit)
        self.seen: list[dict] = []
        self.fail = False

        @self.app.get("/capped/<int:n>")
        @jwt_required()
        @_with_positional
        @per_user_concurrency
        def capped(outside: str, n: int):
            client = services().redis.auth
            key = f"{KEY_PREFIX}{current_user_id()}"
            self.seen.append({"members": client.zrange(key, 0, -1, withscores=True), "ttl": client.ttl(key)})
            if self.fail:
                raise RuntimeError("the view failed")
            return {"n": n, "outside": outside}

        self.client = self.app.test_client()
        self.learner = AuthActions(self.client).signed_in()
        self.key = f"{KEY_PREFIX}{_row_id(self.app, self.learner.me().get_json()['id'])}"
        self.redis = services(self.app).redis.auth

    def get(self, n: int = 1):
        return self.client.get(f"/capped/{n}", headers=self.learner.bearer())

    def members(self) -> dict[bytes, float]:
        return dict(self.redis.zrange(self.key, 0, -1, withscores=True))


def test_a_request_holds_one_scored_expiring_slot_while_it_runs(make_app):
    capped = Capped(make_app, limit=2)
    capped.redis.zadd(capped.key, {"held": time.time()})
    started = time.time()
    response = capped.get(5)
    assert response.status_code == 200 and response.get_json() == {"n": 5, "outside": "from-outside"}
    finished = time.time()
    (seen,) = capped.seen
    ours = [(member, score) for member, score in seen["members"] if member != b"held"]
    assert len(seen["members"]) == 2 and len(ours) == 1  # its own member besides the one held
    assert started <= ours[0][1] <= finished  # scored with its start time
    assert 0 < seen["ttl"] <= STALE_SECONDS  # the set expires once nobody renews it
    assert list(capped.members()) == [b"held"]  # given back when done


def test_the_cap_answers_429_and_runs_nothing(make_app):
    capped = Capped(make_app, limit=2)
    now = time.time()
    capped.redis.zadd(capped.key, {"held-1": now, "held-2": now})
    before = registry_samples()
    response = capped.get(7)
    body = assert_error(response, 429, "too_many_concurrent_requests", headers={"Retry-After": "1"})
    assert body["details"] == {"limit": "2 at once", "per": "user"} and "At most 2" in body["message"]
    assert capped.seen == [] and set(capped.members()) == {b"held-1", b"held-2"}
    # Counted as a rate-limit hit of the route (its rule, not the path).
    assert value(registry_samples(), "rate_limit_hits_total", endpoint="/capped/<int:n>", client_id="127.0.0.1") == (
        value(before, "rate_limit_hits_total", endpoint="/capped/<int:n>", client_id="127.0.0.1") + 1
    )


def test_members_older_than_the_stale_age_are_dropped_before_counting(make_app):
    capped = Capped(make_app, limit=2)
    old = time.time() - STALE_SECONDS - 60  # a worker killed mid-request never removed these
    capped.redis.zadd(capped.key, {"dead-1": old, "dead-2": old})
    assert capped.get().status_code == 200
    assert len(capped.seen[0]["members"]) == 1 and capped.members() == {}


def test_a_view_that_raises_gives_its_slot_back(make_app):
    capped = Capped(make_app, limit=1)
    capped.fail = True
    assert_error(capped.get(), 500, "internal_error")
    assert capped.members() == {}
    capped.fail = False
    assert capped.get().status_code == 200  # the one slot is free again


def test_redis_errors_fail_open_and_are_counted(make_app, monkeypatch):
    capped = Capped(make_app, limit=1)

    def refused(*args, **kwargs):
        raise redis.ConnectionError("refused")

    before = value(registry_samples(), "redis_connection_errors_total", **AUTH_DB_ERRORS)
    monkeypatch.setattr(concurrency, "_acquire", refused)
    response = capped.get(3)  # the cap could not be checked: the request runs
    assert response.status_code == 200 and response.get_json() == {"n": 3, "outside": "from-outside"}
    assert value(registry_samples(), "redis_connection_errors_total", **AUTH_DB_ERRORS) == before + 1
    monkeypatch.undo()
    monkeypatch.setattr(type(capped.redis), "zrem", refused)
    assert capped.get().status_code == 200  # a slot that cannot be given back goes stale later
    assert value(registry_samples(), "redis_connection_errors_total", **AUTH_DB_ERRORS) == before + 2


@pytest.mark.parametrize("limit", [1, 3])
def test_the_cap_is_the_configured_number(make_app, limit):
    capped = Capped(make_app, limit=limit)
    now = time.time()
    if limit > 1:
        capped.redis.zadd(capped.key, {f"held-{i}": now for i in range(limit - 1)})
    assert capped.get().status_code == 200
    capped.redis.zadd(capped.key, {"one-more": now})
    assert_error(capped.get(), 429, "too_many_concurrent_requests")


def test_standalone_mode_has_no_cap(make_app):
    capped = Capped(make_app, limit=1)
    services(capped.app).revocation = SqlRevocationStore()  # standalone: no Redis for limits
    capped.redis.zadd(capped.key, {"held": time.time()})  # would be the one slot in redis mode
    response = capped.get(2)
    assert response.status_code == 200 and response.get_json() == {"n": 2, "outside": "from-outside"}
    assert list(capped.members()) == [b"held"]  # nothing taken, nothing given back
