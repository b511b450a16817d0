"""What the app holds per process, typed: one object in ``app.extensions`` instead of a string key
per service. The app factory builds it (aura/app.py ``register_services``); views, hooks and tests
reach it through :func:`services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from aura.auth.devices import DeviceTokens
from aura.auth.passwords import Passwords
from aura.auth.revocation import RevocationStore
from aura.auth.tokens import Tokens
from aura.infra.pools import PoolSampler
from aura.infra.redis import RedisClients
from aura.services.workflows import Registry

_KEY = "aura"


@dataclass
class Services:
    """The per-process services of one app."""

    workflows: Registry  # the workflows it serves
    passwords: Passwords  # hashing within the instance's hashing slots
    devices: DeviceTokens  # login device tokens
    tokens: Tokens  # access and refresh token issue
    redis: RedisClients
    revocation: RevocationStore  # on Redis, or in the database when running standalone
    pool_sampler: PoolSampler | None = None  # with metrics on

    @property
    def uses_redis(self) -> bool:
        """Whether revocations and limits live in Redis (False: standalone)."""
        return self.revocation.mode == "redis"

    def install(self, app: Flask) -> None:
        app.extensions[_KEY] = self


def services(app: Flask | None = None) -> Services:
    """The services of ``app`` (the current app by default)."""
    found: Services = (app or current_app).extensions[_KEY]
    return found
