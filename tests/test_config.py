"""Settings are validated once, at start-up, with messages that say what to set."""

from __future__ import annotations

import pytest

from aura.config import ConfigError, Settings, environment_warnings, gunicorn_settings

GOOD_SECRET = "x9T2k" + "q7Lm3PzR8vWb4NcY1hJd6FgS0aUe5" + "K"


def test_defaults_are_the_embedded_ones(tmp_path):
    settings = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)})
    assert settings.env == "development"
    assert settings.database_url == f"sqlite:///{tmp_path / 'aura.db'}"
    assert (settings.redis_url, settings.redis_auth_db, settings.redis_rate_limit_db) == (
        "redis://127.0.0.1:6379",
        0,
        1,
    )
    assert (settings.access_token_expires, settings.refresh_token_expires) == (900, 14 * 24 * 3600)
    assert settings.max_content_length == 1024 * 1024


def test_development_key_is_generated_once_and_reused(tmp_path):
    first = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)}).jwt_secret_key
    second = Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)}).jwt_secret_key
    assert first == second and len(first) >= 32
    assert (tmp_path / "jwt-secret.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "secret, message",
    [
        (None, "JWT_SECRET_KEY is required"),
        ("short-secret", "at least 32"),
        ("changeme", "at least 32"),
        ("a" * 40, "well-known or trivially guessable"),
        ("please-change-me-to-a-long-random-string", "well-known"),
        ("Please-Change-Me-To-A-Long-Random-String", "well-known"),  # in any letter case
        ("REPLACE-ME-WITH-A-RANDOM-32-BYTE-SECRET", "well-known"),
    ],
)
def test_production_refuses_a_weak_secret(tmp_path, secret, message):
    env = {
        "AURA_ENV": "production",
        "DATABASE_URL": "postgresql+psycopg://db/aura",
        "AURA_INSTANCE_PATH": str(tmp_path),
    }
    if secret is not None:
        env["JWT_SECRET_KEY"] = secret
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_production_needs_a_database_url(tmp_path):
    with pytest.raises(ConfigError, match="DATABASE_URL is required"):
        Settings.from_env(
            {"AURA_ENV": "production", "JWT_SECRET_KEY": GOOD_SECRET, "AURA_INSTANCE_PATH": str(tmp_path)}
        )


def test_production_accepts_a_strong_secret(tmp_path):
    settings = Settings.from_env(
        {
            "AURA_ENV": "production",
            "JWT_SECRET_KEY": GOOD_SECRET,
            "DATABASE_URL": "postgresql+psycopg://db/aura",
            "AURA_INSTANCE_PATH": str(tmp_path),
        }
    )
    assert settings.production and settings.jwt_secret_key == GOOD_SECRET
    assert GOOD_SECRET not in repr(settings)  # secrets never in logs or tracebacks


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AURA_ENV", "staging", "AURA_ENV='staging'"),
        ("REDIS_AUTH_DB", "zero", "REDIS_AUTH_DB='zero': expected an integer"),
        ("RATE_LIMIT_ENABLED", "maybe", "expected true or false"),
        ("ACCESS_TOKEN_EXPIRES", "0", "ACCESS_TOKEN_EXPIRES must be a positive integer"),
        ("RATE_LIMIT_LOGIN", "lots", "RATE_LIMIT_LOGIN='lots': expected Flask-Limiter notation"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be 0 or more"),
        ("STRUGGLE_SCORE_THRESHOLD", "2", "between 0 and 1"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Settings.from_env({name: value, "AURA_INSTANCE_PATH": str(tmp_path)})


def test_several_limits_separated_by_semicolons(tmp_path):
    settings = Settings.from_env({"RATE_LIMIT_LOGIN": "5 per minute;50 per hour", "AURA_INSTANCE_PATH": str(tmp_path)})
    assert settings.rate_limit_login == "5 per minute;50 per hour"


def test_the_app_refuses_to_start_in_production_without_a_secret(tmp_path, monkeypatch):
    import subprocess
    import sys

    env = {
        "AURA_ENV": "production",
        "DATABASE_URL": "sqlite:///x.db",
        "AURA_INSTANCE_PATH": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert result.returncode != 0
    assert "JWT_SECRET_KEY is required when AURA_ENV=production" in result.stderr


def test_redis_url_takes_the_sentinel_form(tmp_path):
    """flask-limiter's form: the password (for the Sentinels and Redis), hosts, service name."""
    from aura.config import redis_target

    url = "redis+sentinel://:s3cret@sentinel-0:26379,sentinel-1:26379,10.0.0.7:26380/aura-main"
    settings = Settings.from_env({"REDIS_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})
    target = redis_target(settings.redis_url)
    assert target.sentinel and target.service == "aura-main" and target.password == "s3cret"
    assert target.sentinels == (("sentinel-0", 26379), ("sentinel-1", 26379), ("10.0.0.7", 26380))
    assert not redis_target("redis://cache:6379").sentinel


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis+sentinel://s0:26379,s1:26379", "names no Sentinel service"),
        ("redis+sentinel://s0:26379/", "names no Sentinel service"),
        ("redis+sentinel://s0:26379/aura/extra", "names no Sentinel service"),
        ("redis+sentinel:///aura", "names no Sentinel host"),
        ("redis+sentinel://:pw@/aura", "names no Sentinel host"),
        ("redis+sentinel://s0/aura", "'s0' is not host:port"),
        ("redis+sentinel://s0:http/aura", "'s0:http' is not host:port"),
        ("redis+sentinel://s0:26379/aura?db=3", "takes no query"),
    ],
)
def test_a_bad_sentinel_url_names_the_variable(tmp_path, url, message):
    with pytest.raises(ConfigError, match=f"^REDIS_URL=.*{message}") as error:
        Settings.from_env({"REDIS_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})
    assert "\n" not in str(error.value) and "pw" not in str(error.value)


@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql+psycopg://u@/aura?host=a,b&port=5432,5432", "need target_session_attrs=read-write"),
        ("postgresql+psycopg://u@/aura?host=a:5432&host=b:5432&target_session_attrs=any", "need target_session"),
        ("postgresql+psycopg://u@/aura?host=a:5432,b:5432&target_session_attrs=read-write", "several hosts with ports"),
    ],
)
def test_a_multi_host_database_url_must_reach_only_the_primary(tmp_path, url, message):
    with pytest.raises(ConfigError, match=f"^DATABASE_URL=.*{message}"):
        Settings.from_env({"DATABASE_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:p@/aura?host=db-a,db-b&port=5432,5432&target_session_attrs=read-write",
        "postgresql+psycopg://u:p@/aura?host=db-a:5432&host=db-b:5432&target_session_attrs=primary",
    ],
)
def test_a_multi_host_database_url_reaches_every_host(tmp_path, url):
    """Both forms reach psycopg as libpq's host=a,b port=p,q with the session attribute."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
    from sqlalchemy.engine import make_url

    settings = Settings.from_env({"DATABASE_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})
    _, params = PGDialect_psycopg().create_connect_args(make_url(settings.database_url))
    assert (params["host"], params["port"]) == ("db-a,db-b", "5432,5432")
    assert params["target_session_attrs"] in ("read-write", "primary")


def test_the_worker_count_is_gunicorn_workers_then_web_concurrency():
    assert gunicorn_settings({"GUNICORN_WORKERS": "3", "WEB_CONCURRENCY": "5"}).workers == 3
    assert gunicorn_settings({"WEB_CONCURRENCY": "5"}).workers == 5
    assert gunicorn_settings({"GUNICORN_WORKERS": "1"}).workers == 1
    with pytest.raises(ConfigError, match="GUNICORN_WORKERS='0'"):
        gunicorn_settings({"GUNICORN_WORKERS": "0"})


@pytest.mark.parametrize(
    "bind, requested, host",
    [
        ("127.0.0.1:8000", "", "127.0.0.1"),
        ("0.0.0.0:8000", "", "0.0.0.0"),
        ("[::1]:8000", "", "::1"),
        ("unix:/run/aura.sock", "", "127.0.0.1"),
        ("unix:/run/aura.sock", "0.0.0.0", "0.0.0.0"),
        ("127.0.0.1:8000", "[::]", "::"),
        ("127.0.0.1:8000", "metrics.internal", "metrics.internal"),
    ],
)
def test_the_listener_host_is_metrics_host_else_the_binds(bind, requested, host):
    settings = gunicorn_settings({"GUNICORN_BIND": bind, "METRICS_HOST": requested, "METRICS_PORT": "9100"})
    assert settings.metrics_host == host


@pytest.mark.parametrize("requested", ["host:9100", "two words", "a..b", "-" * 64, "http://host"])
def test_a_bad_metrics_host_is_refused(requested):
    with pytest.raises(ConfigError, match="METRICS_HOST="):
        gunicorn_settings({"METRICS_HOST": requested})


def test_a_metrics_port_equal_to_the_binds_is_refused_and_a_unix_bind_has_no_clash():
    with pytest.raises(ConfigError, match="METRICS_PORT=8000: the same port as GUNICORN_BIND"):
        gunicorn_settings({"GUNICORN_BIND": "0.0.0.0:8000", "METRICS_PORT": "8000"})
    assert gunicorn_settings({"GUNICORN_BIND": "unix:/run/a.sock", "METRICS_PORT": "8000"}).metrics_port == 8000


def test_environment_warnings_name_likely_typos_only():
    warnings = environment_warnings(
        {
            "GUNICORN_WORKER": "3",  # a typo
            "METRICS_PROT": "9100",  # a typo
            "AURA_ENVIRONMENT_NAME": "x",  # not close to anything
            "DATABSE_URL": "x",  # not a checked prefix
            "AURA_ENV": "testing",  # known
            "AURA_TEST_REDIS_URL": "redis://x",  # the test suite's, known
        }
    )
    assert warnings == [
        "GUNICORN_WORKER is not a setting Aura reads; did you mean GUNICORN_WORKERS? (it is ignored)",
        "METRICS_PROT is not a setting Aura reads; did you mean METRICS_PORT? (it is ignored)",
    ]
    assert environment_warnings({"GUNICORN_WORKERS": "2", "WEB_CONCURRENCY": "2"}) == []
    assert "GUNICORN_WORKERS wins" in environment_warnings({"GUNICORN_WORKERS": "2", "WEB_CONCURRENCY": "3"})[0]
    assert "no longer read" in environment_warnings({"API_DOCS_ASSETS_URL": "https://cdn/"})[0]


@pytest.mark.parametrize(
    "name, value, message",
    [  # boundaries a mutant moved without any test noticing (issue 25's independent sample)
        ("REDIS_SOCKET_TIMEOUT", "0", "above 0"),
        ("REDIS_SOCKET_TIMEOUT", "inf", "above 0"),  # a hung Redis would hang every request
        ("REDIS_SOCKET_TIMEOUT", "nan", "above 0"),
        ("REDIS_CIRCUIT_OPEN_SECONDS", "0", "positive"),
        ("REDIS_CIRCUIT_OPEN_SECONDS", "inf", "positive"),  # Redis would never be tried again
        ("AUDIT_MAX_CPU_SECONDS", "nan", "positive"),
        ("AUDIT_MAX_CPU_SECONDS", "inf", "positive"),  # no CPU budget at all
        ("WORKFLOW_MAX_CONCURRENT_PER_USER", "0", "positive integer"),
    ],
)
def test_zero_and_non_finite_limits_are_refused(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=f"^{name}=.*{message}"):
        Settings.from_env({name: value, "AURA_INSTANCE_PATH": str(tmp_path)})
