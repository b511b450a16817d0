"""Rate limiting: Flask-Limiter on shared Redis, keyed by client address (and user or account).

Limits, from the settings: RATE_LIMIT_DEFAULT on every /api/v1 route per client address;
RATE_LIMIT_LOGIN per address plus RATE_LIMIT_LOGIN_ACCOUNT per target email (brute force from
many addresses); RATE_LIMIT_REGISTER per address; RATE_LIMIT_WORKFLOWS per signed-in user.
The client address honours X-Forwarded-For only through TRUSTED_PROXY_COUNT proxies (ProxyFix).
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, request
from flask_jwt_extended import decode_token
from flask_limiter import Limiter
from werkzeug.middleware.proxy_fix import ProxyFix

from aura.infra.rate_limit_storage import FailoverRedisStorage
from aura.instrumentation import recorder

log = logging.getLogger("aura.rate_limit")

def client_address() -> str:
    """The client's address as seen through the trusted proxies."""
    return request.remote_addr or "unknown"


def account_key() -> str:
    """The login's target account (lower-cased email), so guessing is limited per account."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"account:{email.strip().lower()}" if isinstance(email, str) else f"addr:{client_address()}"


def user_key() -> str:
    """The signed-in user when the Bearer token is genuine, else the address."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        try:
            return f"user:{decode_token(header[7:])['sub']}"
        except Exception:  # noqa: BLE001 - a bad token is rejected by the view, not here
            pass
    return f"addr:{client_address()}"


def _is_limited() -> bool:
    """Only /api/v1 routes are limited; probes, /metrics and the OpenAPI document and docs are not."""
    return request.url_rule is not None and request.path.startswith("/api/v1/") \
        and not request.path.endswith("/openapi.json") and request.path != "/api/v1/docs"


def _setting(name: str):
    return lambda: getattr(current_app.config["AURA"], name)


limiter = Limiter(key_func=client_address, headers_enabled=True, strategy="fixed-window")
login_limits = [
    limiter.limit(_setting("rate_limit_login")),
    limiter.limit(_setting("rate_limit_login_account"), key_func=account_key),
]
register_limit = limiter.limit(_setting("rate_limit_register"))
workflow_limit = limiter.limit(_setting("rate_limit_workflows"), key_func=user_key)


@limiter.request_filter
def _exempt() -> bool:
    return not _is_limited()


def init_rate_limiting(app: Flask) -> None:
    """Bind the limiter with storage and limits from the settings, and its metrics."""
    settings = app.config["AURA"]
    if settings.trusted_proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count)
    standalone = app.extensions["aura.revocation"].mode == "standalone"
    redis_clients = app.extensions["aura.redis"]
    if standalone:
        storage_uri = "memory://"
        log.warning("rate limits are per process (standalone mode: no Redis)")
    else:
        storage_uri = redis_clients.rate_limit_uri.replace("redis", "aura+redis", 1)
    app.config.update(
        RATELIMIT_ENABLED=settings.rate_limit_enabled,
        RATELIMIT_STORAGE_URI=storage_uri,
        RATELIMIT_STORAGE_OPTIONS={} if standalone else {
            "socket_timeout": settings.redis_socket_timeout,
            "socket_connect_timeout": settings.redis_socket_timeout,
        },
        RATELIMIT_DEFAULT=settings.rate_limit_default,
        RATELIMIT_KEY_PREFIX="aura",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    recorder.bound_client_ids(settings.rate_limit_max_client_ids)

    @app.before_request
    def _count_evaluated():  # registered before the limiter's own check, so 429s count too
        if limiter.enabled and _is_limited():
            recorder.rate_limit_request(request.url_rule.rule)

    def _on_breach(_limit) -> None:
        recorder.rate_limit_hit(request.url_rule.rule, client_address())

    limiter._on_breach = _on_breach
    limiter.init_app(app)
    storage = getattr(limiter, "_storage", None)  # none when limiting is disabled
    if isinstance(storage, FailoverRedisStorage):
        redis_clients.rate_limit_pool = storage.pool
