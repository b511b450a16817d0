"""The application factory: a list of named steps."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface
from flask_migrate import Migrate

from aura.api import pipeline
from aura.api import register_blueprints as mount_api
from aura.api.context import Services, services
from aura.api.edge import RoutedRequest
from aura.api.errors import register_errorhandlers as install_errorhandlers
from aura.api.jwt import init_jwt
from aura.api.rate_limits import init_rate_limiting
from aura.auth.devices import DeviceTokens
from aura.auth.hash_slots import HashSlots
from aura.auth.passwords import Passwords
from aura.auth.revocation import DurableRevocationStore, SqlRevocationStore
from aura.auth.tokens import Tokens
from aura.cli import guard_database_commands, user_cli
from aura.config import Settings, redact_url
from aura.extensions import db
from aura.infra.database import follow_the_primary, instrument_engine, release_sessions_quietly
from aura.infra.logs import configure_logging
from aura.infra.pools import PoolSampler
from aura.infra.redis import RedisClients
from aura.instrumentation import recorder
from aura.services.workflows import Registry
from aura.services.workflows.registry import WORKFLOWS

log = logging.getLogger("aura")
migrate = Migrate()  # `flask --app wsgi db upgrade` (Alembic, aura/migrations)


def create_app(config: Settings | dict[str, Any] | None = None, workflows: Registry = WORKFLOWS) -> Flask:
    """Build the Flask app from validated settings (from the environment when not given),
    serving `workflows` (`aura.services.workflows.registry.WORKFLOWS` unless given)."""
    settings = config if isinstance(config, Settings) else Settings.from_env(**(config or {}))
    app = Flask(__name__, instance_path=str(settings.instance_path))
    configure(app, settings)
    register_edge(app)
    register_extensions(app)
    register_services(app, workflows)
    register_blueprints(app)
    register_rate_limiting(app)
    register_errorhandlers(app)
    register_commands(app)
    metrics = register_instrumentation(app)
    pipeline.install(app, settings, metrics=metrics)
    return app


class NoSession(SessionInterface):
    """Bearer tokens carry identity here, not cookies: no request opens Flask's cookie session
    (whose signing serializer was about a fifth of a /healthz request's cost). `session` is
    Flask's read-only null session."""

    def open_session(self, app: Flask, request: object) -> None:
        return None

    def save_session(self, app: Flask, session: object, response: object) -> None:
        return None


def configure(app: Flask, settings: Settings) -> None:
    """Copy settings into Flask's config; `AURA` holds the typed object for our own code."""
    configure_logging(settings.log_level, settings.log_format)
    app.session_interface = NoSession()
    app.config.update(
        AURA=settings,
        TESTING=settings.env == "testing",
        SECRET_KEY=settings.jwt_secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        API_TITLE="Aura API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        # Relative: the document is right wherever Aura is served (behind an ingress too).
        API_SPEC_OPTIONS={"servers": [{"url": "/", "description": "This Aura server"}]},
        # The browsable reference at /api/v1/docs is Aura's own page (aura/api/openapi.py), whose
        # Swagger UI assets are served by Aura under a strict Content-Security-Policy.
        # Errors are ours (aura.errors); don't let Flask re-raise them in testing mode.
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    settings.instance_path.mkdir(parents=True, exist_ok=True)


def register_edge(app: Flask) -> None:
    """The matched route in the environ, for the logs and the metrics (the edge middleware itself,
    with the request id and security headers, is in the WSGI stack: aura/api/pipeline.py)."""
    app.request_class = RoutedRequest


def _engine_options(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Several Gunicorn workers share one SQLite file: wait for locks instead of failing.
        return {"connect_args": {"timeout": 15}}
    # pre_ping: a connection broken by a database restart is replaced, not handed to a view.
    return {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": 5,
        "connect_args": {"connect_timeout": 3},
    }


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions."""
    db.init_app(app)
    release_sessions_quietly(app, db)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            follow_the_primary(db.engine)
    migrate.init_app(app, db, directory=str(_migrations_dir()))
    init_jwt(app)


def register_services(app: Flask, workflows: Registry) -> None:
    """Create the per-process services (`aura.api.context.Services`): the workflows served,
    password hasher (within the instance's hashing slots), token issuers, Redis, revocation store."""
    settings: Settings = app.config["AURA"]
    clients = RedisClients(settings)
    revocation: DurableRevocationStore | SqlRevocationStore
    if settings.production or clients.ping():
        # Production always uses Redis and fails closed (503) while it is down.
        revocation = DurableRevocationStore(clients.auth)
    else:
        log.warning(
            "Redis at %s is not reachable: running STANDALONE - token revocations in "
            "the database, rate limits per process. Start Redis and restart for shared "
            "state.",
            redact_url(settings.redis_url),
        )
        revocation = SqlRevocationStore()
    Services(
        workflows=workflows,
        passwords=Passwords(
            settings.password_hash_time_cost,
            settings.password_hash_memory_cost,
            HashSlots(settings.instance_path / "password-hash-slots", settings.password_hash_max_concurrent),
        ),
        devices=DeviceTokens(settings.jwt_secret_key, settings.login_device_token_expires),
        tokens=Tokens(settings.jwt_secret_key, settings.access_token_expires, settings.refresh_token_expires),
        redis=clients,
        revocation=revocation,
    ).install(app)


def register_blueprints(app: Flask) -> None:
    """Mount the API."""
    mount_api(app)


def register_rate_limiting(app: Flask) -> None:
    """Shared limits on Redis (after the body rules, so the account key can read the body)."""
    init_rate_limiting(app)


def register_errorhandlers(app: Flask) -> None:
    """One JSON error shape for everything."""
    install_errorhandlers(app)


def register_commands(app: Flask) -> None:
    """Operator commands: `flask --app wsgi user activate|deactivate EMAIL`; `db` (flask-migrate's)
    with one-line errors when the database cannot be reached."""
    app.cli.add_command(user_cli)
    guard_database_commands(app)


def register_instrumentation(app: Flask) -> bool:
    """Database and pool instrumentation, and in each process that serves requests (each Gunicorn
    worker as it starts: threads do not survive fork) the zero series and the pool gauges'
    sampling thread. True when HTTP metrics are on (the WSGI stack then counts every request)."""
    if not (recorder.enabled and app.config["AURA"].metrics_enabled):
        return False
    held = services(app)
    with app.app_context():
        instrument_engine(db.engine)
        sampler = held.pool_sampler = PoolSampler(db.engine, held.redis)
    workflow_types = list(held.workflows)

    def start_serving() -> None:
        recorder.initialize_known_series(workflow_types)  # in this process's own files
        sampler.start()

    recorder.on_worker_start(start_serving)
    return True


def uses_redis(app: Flask) -> bool:
    """Whether ``app`` keeps revocations and limits in Redis (False: standalone)."""
    return services(app).uses_redis


def _migrations_dir() -> Path:
    return Path(__file__).resolve().parent / "migrations"
