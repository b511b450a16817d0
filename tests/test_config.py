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
    assert first == second and len(first) == 64  # secrets.token_urlsafe(48): 48 random bytes
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


# Boundaries and accepted forms that mutation testing (group "config") found unpinned.


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("REDIS_AUTH_DB", "-1", "REDIS_AUTH_DB=-1: expected a Redis database number"),
        ("REDIS_RATE_LIMIT_DB", "-1", "REDIS_RATE_LIMIT_DB=-1: expected a Redis database number"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL='verbose': not a log level"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml': expected one of text, json"),
        ("PASSWORD_HASH_MEMORY_COST", "7", "PASSWORD_HASH_MEMORY_COST=7: must be at least 8"),
        ("STRUGGLE_SCORE_THRESHOLD", "0", "STRUGGLE_SCORE_THRESHOLD=0.0: must be between 0 and 1"),
        ("STRUGGLE_SCORE_THRESHOLD", "1", "STRUGGLE_SCORE_THRESHOLD=1.0: must be between 0 and 1"),
        ("REDIS_SOCKET_TIMEOUT", "-1", "REDIS_SOCKET_TIMEOUT=-1.0: expected a number of seconds above 0"),
        ("AUDIT_MAX_CPU_SECONDS", "0", "AUDIT_MAX_CPU_SECONDS=0.0: must be a positive number"),
        ("MAX_CONTENT_LENGTH", "five", "MAX_CONTENT_LENGTH='five': expected an integer"),
        ("STRUGGLE_SCORE_THRESHOLD", "half", "STRUGGLE_SCORE_THRESHOLD='half': expected a number"),
        ("API_DOCS_ENABLED", "sometimes", "API_DOCS_ENABLED='sometimes': expected true or false"),
    ],
)
def test_more_bad_values_are_refused(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        Settings.from_env({name: value, "AURA_INSTANCE_PATH": str(tmp_path)})


def test_the_lowest_valid_values_are_accepted(tmp_path):
    settings = Settings.from_env(
        {
            "AURA_INSTANCE_PATH": str(tmp_path),
            "REDIS_AUTH_DB": "0",
            "REDIS_RATE_LIMIT_DB": "0",
            "PASSWORD_HASH_MEMORY_COST": "8",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MAX_CONCURRENT": "1",
            "ACCESS_TOKEN_EXPIRES": "1",
            "TRUSTED_PROXY_COUNT": "0",
            "REDIS_SOCKET_TIMEOUT": "0.001",
            "REDIS_CIRCUIT_OPEN_SECONDS": "0.001",
            "STRUGGLE_SCORE_THRESHOLD": "0.999",
        }
    )
    assert (settings.redis_auth_db, settings.redis_rate_limit_db, settings.password_hash_memory_cost) == (0, 0, 8)
    assert (settings.password_hash_time_cost, settings.access_token_expires) == (1, 1)
    assert (settings.redis_socket_timeout, settings.struggle_score_threshold) == (0.001, 0.999)


def test_values_are_read_as_their_fields_type(tmp_path):
    settings = Settings.from_env(
        {
            "AURA_INSTANCE_PATH": str(tmp_path),
            "AURA_ENV": "testing",
            "LOG_LEVEL": "debug",
            "LOG_FORMAT": "JSON",
            "REDIS_SOCKET_TIMEOUT": "2.5",
            "AUDIT_MAX_FILES": "7",
            "METRICS_ENABLED": " Off ",
            "RATE_LIMIT_ENABLED": "",  # empty: the default
            "API_DOCS_ENABLED": "no",
        }
    )
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert settings.redis_socket_timeout == 2.5 and isinstance(settings.redis_socket_timeout, float)
    assert settings.audit_max_files == 7
    assert settings.metrics_enabled is False and settings.rate_limit_enabled is True
    assert settings.api_docs_enabled is False
    assert settings.instance_path == tmp_path and not settings.production


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_every_boolean_spelling(tmp_path, value, expected):
    settings = Settings.from_env({"RATE_LIMIT_ENABLED": value, "AURA_INSTANCE_PATH": str(tmp_path)})
    assert settings.rate_limit_enabled is expected


def test_api_docs_follow_the_environment_unless_set(tmp_path):
    prod = {"AURA_ENV": "production", "JWT_SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "postgresql+psycopg://db/aura"}
    assert Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)}).api_docs_enabled is True
    assert Settings.from_env({**prod, "AURA_INSTANCE_PATH": str(tmp_path)}).api_docs_enabled is False
    on = Settings.from_env({**prod, "API_DOCS_ENABLED": "true", "AURA_INSTANCE_PATH": str(tmp_path)})
    assert on.api_docs_enabled is True


def test_overrides_win_over_the_environment(tmp_path):
    settings = Settings.from_env(
        {"LOG_LEVEL": "ERROR", "AURA_INSTANCE_PATH": "/nonexistent"}, instance_path=tmp_path, log_level="WARNING"
    )
    assert settings.log_level == "WARNING" and settings.instance_path == tmp_path


def test_a_development_key_that_is_set_is_used(tmp_path):
    settings = Settings.from_env({"JWT_SECRET_KEY": "short", "AURA_INSTANCE_PATH": str(tmp_path)})
    assert settings.jwt_secret_key == "short"
    assert not (tmp_path / "jwt-secret.key").exists()


def test_an_empty_development_key_file_is_refused(tmp_path):
    (tmp_path / "jwt-secret.key").write_text("  \n")
    with pytest.raises(ConfigError, match="jwt-secret.key is empty; delete it"):
        Settings.from_env({"AURA_INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize(
    "secret, accepted",
    [
        ("k7Q2" * 8, False),  # 32 bytes, 4 distinct characters
        ("abcdefg" * 5, False),  # 7 distinct characters
        ("abcdefgh" * 4, True),  # exactly 32 bytes and 8 distinct characters
        ("é" * 15 + "abcdefgh", True),  # 23 characters, 38 bytes: bytes count, not characters
        ("abcdefghijklmnopqrstuvwxyz01234", False),  # 31 bytes
    ],
)
def test_a_production_secret_needs_32_bytes_and_8_distinct_characters(tmp_path, secret, accepted):
    env = {
        "AURA_ENV": "production",
        "DATABASE_URL": "postgresql+psycopg://db/aura",
        "AURA_INSTANCE_PATH": str(tmp_path),
        "JWT_SECRET_KEY": secret,
    }
    if accepted:
        assert Settings.from_env(env).jwt_secret_key == secret
    else:
        with pytest.raises(ConfigError, match="JWT_SECRET_KEY is"):
            Settings.from_env(env)


def test_the_instance_path_must_be_a_directory_that_can_be_made(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(ConfigError, match="^AURA_INSTANCE_PATH=.*exists and is not a directory"):
        Settings.from_env({"AURA_INSTANCE_PATH": str(afile)})
    with pytest.raises(ConfigError, match="^AURA_INSTANCE_PATH=.*cannot create the directory"):
        Settings.from_env({"AURA_INSTANCE_PATH": str(afile / "sub")})
    nested = tmp_path / "a" / "b"
    Settings.from_env({"AURA_INSTANCE_PATH": str(nested)})
    assert nested.is_dir()


def test_a_database_url_that_is_not_one_is_refused_without_its_password(tmp_path):
    with pytest.raises(ConfigError, match="^DATABASE_URL='not a url': not a SQLAlchemy URL"):
        Settings.from_env({"DATABASE_URL": "not a url", "AURA_INSTANCE_PATH": str(tmp_path)})
    url = "postgresql+psycopg://u:hunter2@/aura?host=a,b"
    with pytest.raises(ConfigError, match=r"^DATABASE_URL='postgresql\+psycopg://u:\*\*\*@/aura\?host=a,b'") as error:
        Settings.from_env({"DATABASE_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})
    assert "hunter2" not in str(error.value)


def test_redact_url_hides_only_the_password():
    from aura.config import redact_url

    assert redact_url("redis://cache:6379") == "redis://cache:6379"
    assert redact_url("redis://:pw@cache:6379") == "redis://:***@cache:6379"
    assert redact_url("redis://user:pw@cache:6379/x?y=1#z") == "redis://user:***@cache:6379/x?y=1#z"
    assert redact_url("redis://u:p@[::1") == "<unparseable URL>"


@pytest.mark.parametrize(
    "url, message",
    [
        ("redis://cache:99999", "not a URL"),
        ("http://cache:6379", "expected redis://"),
        ("redis://", "expected redis://"),
        ("redis://cache:6379/0", "must not name a database number"),
        ("redis://cache:6379?db=2", "must not name a database number"),
        ("redis+sentinel://s0:0/aura", "'s0:0' is not host:port"),
        ("redis+sentinel://s0:65536/aura", "'s0:65536' is not host:port"),
        ("redis+sentinel://:26379/aura", "':26379' is not host:port"),
    ],
)
def test_a_bad_redis_url_is_refused(tmp_path, url, message):
    with pytest.raises(ConfigError, match=f"^REDIS_URL=.*{message}"):
        Settings.from_env({"REDIS_URL": url, "AURA_INSTANCE_PATH": str(tmp_path)})


def test_the_sentinel_form_s_edges():
    from aura.config import redis_target

    target = redis_target("redis+sentinel://user:pw@[::1]:26379, s1:65535,/aura")
    assert target.sentinels == (("::1", 26379), ("s1", 65535))  # an empty entry is skipped
    assert (target.username, target.password, target.url) == (
        "user",
        "pw",
        "redis+sentinel://user:pw@[::1]:26379, s1:65535,/aura",
    )
    assert redis_target("redis+sentinel://s0:1/aura").username is None
    plain = redis_target("rediss://:pw@cache:6380")
    assert plain.url == "rediss://:pw@cache:6380" and plain.sentinels == () and plain.service == ""


def test_gunicorn_defaults_and_each_setting():
    defaults = gunicorn_settings({})
    assert (defaults.bind, defaults.threads, defaults.timeout, defaults.graceful_timeout) == (
        "127.0.0.1:8000",
        1,
        30,
        30,
    )
    assert (defaults.max_requests, defaults.max_requests_jitter, defaults.preload) == (10000, 1000, True)
    assert (defaults.access_log, defaults.control_socket, defaults.metrics_port) == ("-", None, 0)
    assert defaults.metrics_host == "127.0.0.1"
    set_ = gunicorn_settings(
        {
            "GUNICORN_BIND": "0.0.0.0:9000",
            "GUNICORN_THREADS": "4",
            "GUNICORN_TIMEOUT": "0",
            "GUNICORN_GRACEFUL_TIMEOUT": "0",
            "GUNICORN_MAX_REQUESTS": "0",
            "GUNICORN_MAX_REQUESTS_JITTER": "0",
            "GUNICORN_PRELOAD": "false",
            "GUNICORN_ACCESS_LOG": "",
            "GUNICORN_CONTROL_SOCKET": "/run/aura.ctl",
            "METRICS_PORT": "9100",
        }
    )
    assert (set_.bind, set_.threads, set_.timeout, set_.graceful_timeout) == ("0.0.0.0:9000", 4, 0, 0)
    assert (set_.max_requests, set_.max_requests_jitter, set_.preload) == (0, 0, False)
    assert (set_.access_log, set_.control_socket, set_.metrics_port) == (None, "/run/aura.ctl", 9100)


def test_the_worker_tmp_dir_must_exist(tmp_path):
    assert gunicorn_settings({"GUNICORN_WORKER_TMP_DIR": str(tmp_path)}).worker_tmp_dir == str(tmp_path)
    with pytest.raises(ConfigError, match="^GUNICORN_WORKER_TMP_DIR=.*not a directory"):
        gunicorn_settings({"GUNICORN_WORKER_TMP_DIR": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS='0': expected an integer of at least 1"),
        ("GUNICORN_TIMEOUT", "-1", "GUNICORN_TIMEOUT='-1': expected an integer of at least 0"),
        ("WEB_CONCURRENCY", "many", "WEB_CONCURRENCY='many': expected an integer of at least 1"),
        ("METRICS_PORT", "-1", "METRICS_PORT='-1'"),
        ("GUNICORN_PRELOAD", "perhaps", "GUNICORN_PRELOAD='perhaps': expected true or false"),
        ("GUNICORN_BIND", "unix:", "GUNICORN_BIND='unix:'"),
        ("GUNICORN_BIND", ":8000", "GUNICORN_BIND=':8000'"),
        ("GUNICORN_BIND", "host:0", "GUNICORN_BIND='host:0'"),
        ("GUNICORN_BIND", "host:65536", "GUNICORN_BIND='host:65536'"),
        ("GUNICORN_BIND", "host", "GUNICORN_BIND='host'"),
        ("METRICS_HOST", "a" * 64, "METRICS_HOST="),
    ],
)
def test_bad_gunicorn_values_are_refused(name, value, message):
    with pytest.raises(ConfigError, match=f"^{message}"):
        gunicorn_settings({name: value})


def test_the_edges_gunicorn_accepts():
    assert gunicorn_settings({"GUNICORN_BIND": "unix:/run/a.sock"}).bind == "unix:/run/a.sock"
    assert gunicorn_settings({"GUNICORN_BIND": "host:65535"}).bind == "host:65535"
    assert gunicorn_settings({"GUNICORN_BIND": "host:1"}).bind == "host:1"
    assert gunicorn_settings({"METRICS_HOST": "a" * 63 + ".b-c"}).metrics_host == "a" * 63 + ".b-c"
    assert gunicorn_settings({"METRICS_HOST": "::1"}).metrics_host == "::1"


def test_the_metrics_directory_and_check_environment(tmp_path):
    from aura.config import check_environment, metrics_directory

    assert metrics_directory({"PROMETHEUS_MULTIPROC_DIR": "/dev/shm/x"}) == "/dev/shm/x"
    assert metrics_directory({}) == ""
    settings, gunicorn = check_environment({"AURA_INSTANCE_PATH": str(tmp_path), "GUNICORN_THREADS": "3"})
    assert settings.instance_path == tmp_path and gunicorn.threads == 3


def test_every_variable_read_is_known_and_not_reported():
    from aura.config import known_variables

    known = known_variables()
    for name in (
        "AURA_ENV",
        "AURA_INSTANCE_PATH",
        "JWT_SECRET_KEY",
        "WEB_CONCURRENCY",
        "METRICS_HOST",
        "GUNICORN_CMD_ARGS",
    ):
        assert name in known
    assert "ENV" not in known and "INSTANCE_PATH" not in known
    assert environment_warnings(dict.fromkeys(known, "1")) == []
    assert environment_warnings({"METRICS_HOSTS": "x", "METRICS_PORTS": "1"}) == [
        "METRICS_HOSTS is not a setting Aura reads; did you mean METRICS_HOST? (it is ignored)",
        "METRICS_PORTS is not a setting Aura reads; did you mean METRICS_PORT? (it is ignored)",
    ]
    assert environment_warnings({"GUNICORN_WORKERS": "2"}) == environment_warnings({"WEB_CONCURRENCY": "2"}) == []
    assert environment_warnings({"API_DOCS_ASSETS_URL": ""}) == []


def test_a_config_error_exits_2_with_one_line(capsys):
    from aura.config import exit_on_config_error

    with pytest.raises(SystemExit) as stop:
        exit_on_config_error(ConfigError("A=1: first\n   second"))
    assert stop.value.code == 2
    assert capsys.readouterr().err == "aura: configuration error: A=1: first second\n"


def test_gunicorn_defaults_that_follow_the_machine(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert gunicorn_settings({}).workers == 6  # two per core
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert gunicorn_settings({}).workers == 2  # the count unknown: one core
    assert gunicorn_settings({"WEB_CONCURRENCY": "1"}).workers == 1
    assert gunicorn_settings({"METRICS_PORT": "0"}).metrics_port == 0
    expected_tmp = "/dev/shm" if os.path.isdir("/dev/shm") else None
    assert gunicorn_settings({}).worker_tmp_dir == expected_tmp
    assert gunicorn_settings({"GUNICORN_BIND": "unix:s"}).bind == "unix:s"
    monkeypatch.setattr(os.path, "isdir", lambda path: False)  # a machine without /dev/shm
    assert gunicorn_settings({}).worker_tmp_dir is None


def test_without_a_mapping_the_process_environment_is_read(monkeypatch, tmp_path):
    from aura.config import metrics_directory

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("GUNICORN_THREADS", "5")
    monkeypatch.setenv("METRICS_HOSTS", "x")
    assert metrics_directory() == str(tmp_path)
    assert gunicorn_settings().threads == 5
    assert any(w.startswith("METRICS_HOSTS is not a setting") for w in environment_warnings())


def test_a_name_only_loosely_like_a_setting_is_not_reported():
    assert environment_warnings({"METRICS_X": "1"}) == []  # 0.76 like METRICS_PORT: under the 0.8 cutoff


def test_more_url_edges(tmp_path):
    from aura.config import redact_url, redis_target

    assert redact_url("redis://:p@ss@cache:6379") == "redis://:***@cache:6379"  # an @ in the password
    assert redis_target("redis+sentinel://s0:1,,s1:2/aura").sentinels == (("s0", 1), ("s1", 2))
    with pytest.raises(ConfigError, match=r"^REDIS_URL='redis://:\*\*\*@cache:6379/0': must not name"):
        Settings.from_env({"REDIS_URL": "redis://:pw@cache:6379/0", "AURA_INSTANCE_PATH": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^REDIS_URL='redis\+sentinel://:\*\*\*@/aura': names no Sentinel host"):
        Settings.from_env({"REDIS_URL": "redis+sentinel://:pw@/aura", "AURA_INSTANCE_PATH": str(tmp_path)})
    one_host = "postgresql+psycopg://u@/aura?host=db-a"  # one host: no session attribute needed
    assert Settings.from_env({"DATABASE_URL": one_host, "AURA_INSTANCE_PATH": str(tmp_path)}).database_url == one_host


def test_unset_the_instance_path_is_the_default_one(tmp_path, monkeypatch):
    monkeypatch.setattr(Settings, "instance_path", tmp_path / "instance")
    assert Settings.from_env({}).instance_path == tmp_path / "instance"


def test_a_redis_url_may_end_with_a_slash(tmp_path):
    settings = Settings.from_env({"REDIS_URL": "redis://cache:6379/", "AURA_INSTANCE_PATH": str(tmp_path)})
    assert settings.redis_url == "redis://cache:6379/"
