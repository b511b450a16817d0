"""Rate limiting: Flask-Limiter on shared Redis, keyed by client address (and user or account).

Limits, from the settings: RATE_LIMIT_DEFAULT on every /api/v1 route per client address;
RATE_LIMIT_LOGIN per address; RATE_LIMIT_LOGIN_ACCOUNT failed logins per target account and
RATE_LIMIT_LOGIN_DEVICE per known device (see `LoginAccountGuard`); RATE_LIMIT_REGISTER per
address and RATE_LIMIT_REGISTER_ALL for all clients together; RATE_LIMIT_WORKFLOWS per signed-in
user.
The client address honours X-Forwarded-For only through TRUSTED_PROXY_COUNT proxies (ProxyFix, in
the WSGI stack: aura/api/pipeline.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, current_app, request
from flask_jwt_extended import decode_token
from flask_limiter import Limiter, RequestLimit
from limits import RateLimitItem, parse_many

from aura.api.context import services
from aura.auth.emails import normalise
from aura.errors import ErrorCode, TooManyRequests
from aura.infra.rate_limit_storage import FailoverRedisStorage
from aura.instrumentation import recorder
from aura.instrumentation.environ import UNMATCHED

log = logging.getLogger("aura.rate_limit")


def client_address() -> str:
    """The client's address as seen through the trusted proxies."""
    return request.remote_addr or "unknown"


def user_key() -> str:
    """The signed-in user when the Bearer token is genuine, else the address."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        try:
            return f"user:{decode_token(header[7:])['sub']}"
        except Exception:  # noqa: BLE001 - a bad token is rejected by the view, not here
            pass
    return f"addr:{client_address()}"


def all_clients() -> str:
    """One key for every client: a limit on the service as a whole."""
    return "all"


def _is_limited() -> bool:
    """Only /api/v1 routes are limited; probes, /metrics and the OpenAPI document and docs are not."""
    return (
        request.url_rule is not None
        and request.path.startswith("/api/v1/")
        and not request.path.endswith("/openapi.json")
        and request.path != "/api/v1/docs"
    )


# What a login attempt took from the limits: each item with the keys it was hit with.
Taken = list[tuple[RateLimitItem, tuple[str, ...]]]


def _setting(name: str) -> Callable[[], str]:
    return lambda: getattr(current_app.config["AURA"], name)


limiter = Limiter(key_func=client_address, headers_enabled=True, strategy="fixed-window")
login_limit = limiter.limit(_setting("rate_limit_login"))
register_limit = limiter.limit(_setting("rate_limit_register"))
# Mass registration from many addresses (each under its own limit) made 200 accounts in 36 s.
# Accounts made count, not attempts: refusals (a 429 for the hashing budget, a 409) cost nothing.
register_all_limit = limiter.limit(
    _setting("rate_limit_register_all"), key_func=all_clients, deduct_when=lambda response: response.status_code == 201
)
workflow_limit = limiter.limit(_setting("rate_limit_workflows"), key_func=user_key)


@limiter.request_filter
def _exempt() -> bool:
    return not _is_limited()


def keep_own_retry_after() -> None:
    """This request's answer says when to retry itself (a 429 that is not a limit's): stop
    Flask-Limiter from replacing its Retry-After with the end of the route's windows, up to an
    hour away, and from adding their X-RateLimit headers."""
    limiter.context.view_rate_limit = None


class LoginAccountGuard:
    """Stops guessing one account from many addresses without locking its owner out.

    A known client - one that presents a device token of this account, handed out by an earlier
    successful login (`aura.auth.devices`, OWASP's device cookies) - has its own allowance of
    failures, RATE_LIMIT_LOGIN_DEVICE per device, and nothing others do touches it. Every other
    attempt is an unknown client's: only failed logins count toward RATE_LIMIT_LOGIN_ACCOUNT
    (per target account, normalised address), and once an account has reached it each client
    address gets one attempt at that account per window, so guessing goes on at one try per
    address per window (each address also under RATE_LIMIT_LOGIN). A device that spent its own
    allowance is an unknown client again until its window ends. Counted in the limiter's
    storage: shared Redis, per process while it is down (the same failover as every limit).
    """

    def __init__(self, email: str, device_token: str | None = None):
        settings = current_app.config["AURA"]
        self.account = normalise(email)
        self.items = parse_many(settings.rate_limit_login_account)
        self.device = services().devices.device(device_token, self.account)
        self.device_items = parse_many(settings.rate_limit_login_device)
        self._taken: Taken = []

    @staticmethod
    def enabled() -> bool:
        """Off with rate limiting (RATE_LIMIT_ENABLED=false)."""
        return limiter.enabled and getattr(limiter, "_storage", None) is not None

    def admits(self) -> None:
        """Go on, or refuse with a 429 (`TooManyRequests`).

        Every attempt first takes a failure from the account's allowance (one atomic INCR per
        limit, so concurrent guesses cannot all slip under it); `not_a_failure` gives it back.
        """
        if not self.enabled():
            return
        strategy = limiter.limiter
        if self.device is not None:
            keys = ("login-device-failures", self.device)
            taken: Taken = [(item, keys) for item in self.device_items if strategy.hit(item, *keys)]
            if len(taken) == len(self.device_items):
                self._taken = taken  # the device's own allowance, not the account's
                return
            self._give_back(taken)  # this device spent its allowance: an unknown client again
        keys = ("login-failures", self.account)
        taken = [(item, keys) for item in self.items if strategy.hit(item, *keys)]
        if len(taken) == len(self.items):
            self._taken = taken
            return
        self._give_back(taken)  # locked by another limit: this attempt is the probe's, or none
        longest = max(self.items, key=lambda item: item.get_expiry())
        probe = type(longest)(1, longest.multiples)
        if strategy.hit(probe, "login-probe", self.account, client_address()):
            self._taken = []  # a probe's failure does not count again
            return
        reset = strategy.get_window_stats(probe, "login-probe", self.account, client_address()).reset_time
        applied = str(longest)  # e.g. "20 per 1 hour"
        raise TooManyRequests(
            ErrorCode.RATE_LIMITED,
            f"Too many requests: the limit of {applied} failed "
            "logins per account was reached, and this client address has had its "
            "one try at the account; retry after the seconds in Retry-After.",
            limit=applied,
            per="account",
            retry_after=max(1, int(reset - time.time())),
        )

    def not_a_failure(self) -> None:
        """Not a failure after all (right password, or an answer other than a wrong password):
        give back what `admits` took."""
        self._give_back(self._taken)
        self._taken = []

    def _give_back(self, taken: Taken) -> None:
        for item, keys in taken:
            limiter.limiter.hit(item, *keys, cost=-1)


def init_rate_limiting(app: Flask) -> None:
    """Bind the limiter with storage and limits from the settings, and its metrics."""
    settings = app.config["AURA"]
    standalone = not services(app).uses_redis
    redis_clients = services(app).redis
    if standalone:
        storage_uri = "memory://"
        log.warning("rate limits are per process (standalone mode: no Redis)")
    else:
        storage_uri = redis_clients.rate_limit_uri.replace("redis", "aura+redis", 1)
    app.config.update(
        RATELIMIT_ENABLED=settings.rate_limit_enabled,
        RATELIMIT_STORAGE_URI=storage_uri,
        RATELIMIT_STORAGE_OPTIONS={} if standalone else redis_clients.rate_limit_options(),
        RATELIMIT_DEFAULT=settings.rate_limit_default,
        RATELIMIT_KEY_PREFIX="aura",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    recorder.bound_client_ids(settings.rate_limit_max_client_ids, settings.prometheus_multiproc_dir)

    @app.before_request
    def _count_evaluated() -> None:  # registered before the limiter's own check, so 429s count too
        rule = request.url_rule
        if limiter.enabled and _is_limited() and rule is not None:  # (a limited request has a rule)
            recorder.rate_limit_request(rule.rule)

    def _on_breach(_limit: RequestLimit) -> None:
        rule = request.url_rule  # limits apply to routes: a breach always has one
        recorder.rate_limit_hit(rule.rule if rule is not None else UNMATCHED, client_address())

    limiter._on_breach = _on_breach
    limiter.init_app(app)
    storage = getattr(limiter, "_storage", None)  # none when limiting is disabled
    if isinstance(storage, FailoverRedisStorage):
        redis_clients.rate_limit_pool = storage.pool
