"""How the app is assembled: the factory's steps, the WSGI stack, the shared field types, the
domain errors, the models' defaults, the OpenAPI document and docs page, and /metrics.

In-process only (no server): what the factory builds is read off the app it returns.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import marshmallow as ma
import pytest
from flask_migrate import Migrate
from werkzeug.exceptions import NotFound
from werkzeug.middleware.proxy_fix import ProxyFix

from aura.api.edge import EdgeMiddleware
from aura.api.metrics_endpoint import metrics_response
from aura.api.openapi import DOCS_CSP, SWAGGER_UI_VERSION, AuraApi, OperationIdPlugin, _docs_asset, api
from aura.app import NoSession, _engine_options, create_app, uses_redis
from aura.auth.revocation import DurableRevocationStore, SqlRevocationStore
from aura.config import Settings
from aura.errors import AuraError, AuthCode, ServiceUnavailable, TooManyRequests
from aura.extensions import db, enforce_sqlite_foreign_keys, json_text
from aura.fields import StrictFloat, StrictInteger, UtcDateTime
from aura.instrumentation import recorder
from aura.instrumentation.http import HttpMetricsMiddleware
from aura.models import new_public_id, utcnow

# --- the factory ------------------------------------------------------------------------------


def test_a_settings_object_is_used_as_given(base_settings, _migrated):
    settings = Settings.from_env({}, **base_settings)
    app = create_app(settings)
    assert app.config["AURA"] is settings
    with app.app_context():
        db.engine.dispose()


def test_a_settings_object_given_as_is_gets_its_instance_directory(base_settings, _migrated, tmp_path):
    validated = Settings.from_env({}, **base_settings)
    instance = tmp_path / "not" / "yet"
    settings = dataclasses.replace(validated, instance_path=instance)  # not validated again: not created
    assert not instance.exists()
    app = create_app(settings)
    assert instance.is_dir()
    with app.app_context():
        db.engine.dispose()


def test_without_settings_the_factory_reads_the_environment(base_settings, _migrated, monkeypatch):
    for name, value in base_settings.items():
        variable = {"env": "AURA_ENV", "instance_path": "AURA_INSTANCE_PATH"}.get(name, name.upper())
        monkeypatch.setenv(variable, str(value).lower() if isinstance(value, bool) else str(value))
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRES", "77")
    app = create_app()
    assert app.config["AURA"].access_token_expires == 77
    assert app.config["SQLALCHEMY_DATABASE_URI"] == base_settings["database_url"]
    with app.app_context():
        db.engine.dispose()


def test_flask_config_is_copied_from_the_settings(make_app, tmp_path):
    instance = tmp_path / "nested" / "instance"  # its parents do not exist yet
    app = make_app(instance_path=instance, max_content_length=12345)
    settings = app.config["AURA"]
    assert instance.is_dir() and app.instance_path == str(instance)
    assert app.config["TESTING"] is True
    assert app.config["SECRET_KEY"] == settings.jwt_secret_key
    assert app.config["SQLALCHEMY_DATABASE_URI"] == settings.database_url
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == _engine_options(settings.database_url)
    assert app.config["MAX_CONTENT_LENGTH"] == 12345
    assert app.config["PROPAGATE_EXCEPTIONS"] is False and app.config["TRAP_HTTP_EXCEPTIONS"] is False
    assert isinstance(app.session_interface, NoSession)
    assert app.session_interface.open_session(app, None) is None
    make_app(instance_path=instance)  # an instance directory that exists already is fine


def test_logging_is_configured_from_the_settings(make_app):
    from aura.infra.logs import formatter

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers.clear()  # as in a server process: no host (pytest) handler on the root logger
    try:
        make_app(log_level="WARNING", log_format="json")
        assert root.level == logging.WARNING
        (ours,) = root.handlers
        assert type(ours.formatter) is type(formatter("json")) and type(ours.formatter) is not type(formatter("text"))
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_testing_is_on_only_in_the_testing_environment(make_app):
    assert make_app(env="development").config["TESTING"] is False


def test_engine_options_for_sqlite_and_for_a_server():
    assert _engine_options("sqlite:///x.db") == {"connect_args": {"timeout": 15}}
    assert _engine_options("postgresql+psycopg://u@h/db") == {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 5,
        "pool_timeout": 5,
        "connect_args": {"connect_timeout": 3},
    }


def test_extensions_are_bound_with_the_migrations_directory(make_app, monkeypatch):
    import aura.app

    # As in a fresh process: the module's Migrate has no database or directory of an earlier app.
    monkeypatch.setattr(aura.app.migrate, "db", None)
    monkeypatch.setattr(aura.app.migrate, "directory", "migrations")
    app = make_app()
    migrate = app.extensions["migrate"]
    assert migrate.db is db
    assert isinstance(migrate.migrate, Migrate)
    directory = Path(migrate.directory)  # aura/migrations, wherever the package is
    assert directory == Path(aura.__file__).resolve().parent / "migrations" and (directory / "env.py").is_file()
    assert "flask-jwt-extended" in app.extensions
    with app.app_context():
        follows = getattr(db.engine, "_aura_follows_primary", False)
    # Only a server database can be demoted to a read-only standby.
    assert follows is (not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"))


def test_services_are_built_from_the_settings(make_app, tmp_path):
    app = make_app(
        instance_path=tmp_path,
        password_hash_max_concurrent=3,
        password_hash_time_cost=2,
        password_hash_memory_cost=16,
        access_token_expires=111,
        refresh_token_expires=222,
        login_device_token_expires=333,
    )
    from aura.api.context import services

    held = services(app)
    settings = app.config["AURA"]
    hasher = held.passwords._hasher
    assert (hasher.time_cost, hasher.memory_cost) == (2, 16)
    assert held.passwords._slots.paths == [tmp_path / "password-hash-slots" / f"slot-{n}.lock" for n in range(3)]
    assert held.devices.lifetime == 333
    assert (held.tokens.secret, held.tokens.access_lifetime, held.tokens.refresh_lifetime) == (
        settings.jwt_secret_key,
        111,
        222,
    )
    assert isinstance(held.revocation, DurableRevocationStore) and uses_redis(app) is True
    assert held.workflows is not None and "struggle" in list(held.workflows)


def test_without_redis_the_app_runs_standalone(make_app):
    app = make_app(redis_url="redis://127.0.0.1:1")
    from aura.api.context import services

    assert isinstance(services(app).revocation, SqlRevocationStore) and uses_redis(app) is False


def test_production_keeps_revocations_in_redis_even_while_it_is_down(make_app):
    app = make_app(env="production", redis_url="redis://127.0.0.1:1", metrics_enabled=False)
    from aura.api.context import services

    assert isinstance(services(app).revocation, DurableRevocationStore) and uses_redis(app) is True


def test_instrumentation_only_with_metrics_on(make_app):
    from aura.api.context import services

    on = make_app()
    assert services(on).pool_sampler is not None
    with on.app_context():
        assert services(on).pool_sampler.engine is db.engine
    assert services(on).pool_sampler.thread.is_alive()  # started at once: no pre-fork server here
    off = make_app(metrics_enabled=False)
    assert services(off).pool_sampler is None and isinstance(off.wsgi_app, EdgeMiddleware)


def test_the_known_series_are_zero_before_the_first_event(make_app):
    from aura.services.workflows.registry import WORKFLOWS
    from tests.support.word_count import WORD_COUNT

    probe = dataclasses.replace(WORD_COUNT, name="zero_series_probe")  # a name no other app serves
    body = make_app(workflows=WORKFLOWS.plus(probe)).test_client().get("/metrics").get_data(as_text=True)
    zero = 'workflow_failures_total{error_type="service_unavailable",workflow_type="zero_series_probe"} 0.0'
    assert zero in body


def test_answers_are_utf8_not_escaped(app):
    assert app.json.ensure_ascii is False
    with app.test_request_context():
        assert app.json.response({"name": "é😀"}).get_data() == '{"name":"é😀"}\n'.encode()


# --- the WSGI stack ---------------------------------------------------------------------------


def test_one_trusted_proxy_is_trusted_for_ids_addresses_and_queue_time(make_app):
    metrics = make_app(trusted_proxy_count=1).wsgi_app
    assert isinstance(metrics, HttpMetricsMiddleware) and metrics.trust_request_start is True
    proxy_fix = metrics.wsgi_app
    assert isinstance(proxy_fix, ProxyFix) and proxy_fix.x_for == 1
    assert isinstance(proxy_fix.app, EdgeMiddleware) and proxy_fix.app.trust_request_id is True


def test_no_trusted_proxy_trusts_nothing_the_client_sends(make_app):
    app = make_app(trusted_proxy_count=0)
    metrics = app.wsgi_app
    assert isinstance(metrics, HttpMetricsMiddleware) and metrics.trust_request_start is False
    assert metrics.url_map is app.url_map
    edge = metrics.wsgi_app
    assert isinstance(edge, EdgeMiddleware) and edge.trust_request_id is False


# --- domain errors, fields, models, the JSON columns ------------------------------------------


def test_aura_errors_carry_a_plain_code_a_message_and_details():
    error = AuraError(AuthCode.INVALID_TOKEN, "no good")
    assert type(error.code) is str and error.code == "invalid_token"
    assert error.message == "no good" and str(error) == "no good" and error.details is None
    assert AuraError("x", "m", {"f": ["bad"]}).details == {"f": ["bad"]}
    busy = TooManyRequests("too_many", "later", limit="2 at once", per="user", retry_after=7)
    assert (busy.code, busy.message, busy.retry_after) == ("too_many", "later", 7)
    assert busy.details == {"limit": "2 at once", "per": "user"}
    down = ServiceUnavailable("redis")
    assert down.dependency == "redis" and str(down) == "redis is unavailable"


def test_utc_datetime_gives_naive_values_a_utc_offset():
    field = UtcDateTime()
    assert field.serialize("t", {"t": datetime(2024, 1, 2, 3, 4, 5)}) == "2024-01-02T03:04:05+00:00"
    plus_two = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert field.serialize("t", {"t": plus_two}) == "2024-01-02T03:04:05+02:00"
    assert field.serialize("t", {"t": None}) is None


@pytest.mark.parametrize("bad", [True, False, "5", [1]])
def test_strict_float_takes_json_numbers_only(bad):
    with pytest.raises(ma.ValidationError, match="Not a valid number"):
        StrictFloat().deserialize(bad)


def test_strict_float_takes_ints_and_floats():
    assert StrictFloat().deserialize(5) == 5.0 and StrictFloat().deserialize(2.5) == 2.5


@pytest.mark.parametrize("bad", [True, False, "5", 5.0, 5.5])
def test_strict_integer_takes_json_integers_only(bad):
    with pytest.raises(ma.ValidationError, match="Not a valid integer"):
        StrictInteger().deserialize(bad)


def test_strict_integer_takes_ints():
    assert StrictInteger().deserialize(5) == 5 and StrictInteger(required=True).required is True


def test_model_defaults():
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)
    ids = {new_public_id() for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_json_columns_are_compact_utf8():
    assert json_text({"a": ["é", 1], "b": None}) == '{"a":["é",1],"b":null}'


def test_sqlite_connections_enforce_foreign_keys():
    connection = sqlite3.connect(":memory:")
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (0,)
    enforce_sqlite_foreign_keys(connection)
    assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    connection.close()

    class NotSqlite:
        def cursor(self):
            raise AssertionError("only SQLite connections are asked")

    enforce_sqlite_foreign_keys(NotSqlite())


def test_the_app_database_enforces_foreign_keys(app):
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


# --- the OpenAPI document and the docs page ---------------------------------------------------


def test_operation_ids_are_method_and_path():
    operations = {"get": {}, "post": {"operationId": "kept"}, "delete": {}}
    OperationIdPlugin().operation_helper(path="/api/v1/a-b/{run_id}/c", operations=operations)
    assert operations == {
        "get": {"operationId": "get_a_b_by_run_id_c"},
        "post": {"operationId": "kept"},
        "delete": {"operationId": "delete_a_b_by_run_id_c"},
    }
    outside = {"get": {}}
    OperationIdPlugin().operation_helper(path="/healthz", operations=outside)
    assert outside == {"get": {"operationId": "get_healthz"}}
    bare = {"put": {}}
    OperationIdPlugin().operation_helper(operations=bare)
    assert bare == {"put": {"operationId": "put"}}
    OperationIdPlugin().operation_helper(path="/x")  # no operations: nothing to do


def test_the_document_describes_the_api_and_its_bearer_scheme(client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"] == "3.0.3"
    assert document["info"]["title"] == "Aura API" and document["info"]["version"] == "v1"
    assert document["servers"] == [{"url": "/", "description": "This Aura server"}]
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from POST /api/v1/auth/login (a refresh token for POST /api/v1/auth/refresh)",
    }
    ids = {op["operationId"] for item in document["paths"].values() for op in item.values() if "operationId" in op}
    assert {"get_workflows_audit_by_run_id", "post_auth_login"} <= ids
    error = document["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    # A workflow's routes are documented as each app is built (the auth routes at import).
    unauthorized = document["paths"]["/api/v1/workflows/struggle"]["post"]["responses"]["401"]
    assert unauthorized["description"] == "Error"
    assert unauthorized["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_the_api_renders_http_errors_in_the_error_shape(app):
    with app.test_request_context():
        response = api.handle_http_exception(NotFound())
        assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_extra_spec_options_are_kept_with_the_operation_id_plugin(make_app):
    from flask import Flask

    app = make_app()
    other = Flask("other")
    other.config.update(app.config)
    extra = AuraApi()
    extra.init_app(other, spec_kwargs={"info": {"description": "extra"}})
    spec = extra.spec.to_dict()
    assert spec["info"]["description"] == "extra"
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert any(isinstance(p, OperationIdPlugin) for p in extra.spec.plugins)


def test_the_docs_page_names_its_assets_with_the_version(client):
    page = client.get("/api/v1/docs")
    assert page.headers["Content-Security-Policy"] == DOCS_CSP
    html = page.get_data(as_text=True)
    assert f'<meta name="swagger-ui-version" content="{SWAGGER_UI_VERSION}">' in html
    for name in ("swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js", "init.js"):
        assert f'"/api/v1/docs/{name}?v={SWAGGER_UI_VERSION}"' in html, name
    assert html.index("swagger-ui-bundle.js") < html.index("init.js")  # the bundle first
    assert 'rel="stylesheet" href="/api/v1/docs/swagger-ui.css' in html
    assert 'rel="icon" type="image/png" href="/api/v1/docs/favicon-32x32.png' in html


def test_docs_assets_are_cached_for_an_hour_under_the_policy(client):
    with client.get("/api/v1/docs/init.js") as asset:
        assert asset.status_code == 200
        assert asset.headers["Content-Security-Policy"] == DOCS_CSP
        assert "max-age=3600" in asset.headers["Cache-Control"]


def test_an_unknown_docs_asset_is_a_json_404(app):
    with app.test_request_context():
        response = _docs_asset("oauth2-redirect.html")
    assert response.status_code == 404
    assert response.get_json() == {"error": "not_found", "message": "No such docs asset."}


# --- /metrics ---------------------------------------------------------------------------------


def test_metrics_without_prometheus_client_are_404(app, monkeypatch):
    monkeypatch.setattr(recorder, "enabled", False)
    response = app.test_client().get("/metrics")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "not_found",
        "message": "Metrics are disabled: prometheus-client is not installed.",
    }


def test_metrics_behind_a_token_refuse_anything_else(make_app):
    client = make_app(metrics_auth_token="scrape-token-0123456789").test_client()
    for headers in ({}, {"Authorization": "scrape-token-0123456789"}, {"Authorization": "Bearer scrape-token"}):
        denied = client.get("/metrics", headers=headers)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == "Bearer"
        assert denied.get_json() == {
            "error": "unauthorized",
            "message": "A valid Bearer token is required for /metrics.",
        }
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"}).status_code == 200


def test_metrics_negotiate_the_format_and_the_encoding(client):
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.status_code == 200 and om.mimetype == "application/openmetrics-text"
    zipped = client.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"


def test_an_unreadable_metrics_directory_is_503_not_500(tmp_path):
    # No Redis and no app fixture: this test reaches the collector, whose mutants `make mutate`
    # runs two at a time (two tests sharing the fixtures' Redis databases would disturb each other).
    from flask import Flask

    gone = tmp_path / "not-a-directory"
    gone.write_text("")
    app = Flask(__name__)
    app.config["AURA"] = Settings(prometheus_multiproc_dir=str(gone))
    with app.test_request_context("/metrics"):
        response = metrics_response()
    assert response.status_code == 503, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "service_unavailable" and body["message"].startswith("Metrics are unavailable: ")
    assert "Retry-After" not in response.headers  # the edge middleware adds it to every 503 (test_edge_headers)
