"""What an operator reads at start-up: one line for an unreachable database, the worker count
under its documented name, warnings for variables that do nothing, a refused METRICS_PORT
clash, the listener on its stated host, one ready line, and access lines without query strings.

Real entry points: `flask --app wsgi db upgrade` (what `make run` runs first) and
`gunicorn -c gunicorn.conf.py wsgi:app`.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
import requests

from aura.testing.servers import BIN, ROOT, Gunicorn, app_env, free_port
from tests.startup.test_startup_errors import flask_upgrade

pytestmark = pytest.mark.gunicorn


def _one_line(result: subprocess.CompletedProcess) -> str:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    return output


@pytest.mark.parametrize(
    "url, cause",
    [
        # Nothing listens on a port free_port() just found; the password must never be printed.
        ("postgresql+psycopg://aura:hunter2-secret@127.0.0.1:{port}/aura", "Connection refused"),
        ("sqlite:///{tmp}/no/such/directory/aura.db", "unable to open database file"),
    ],
    ids=["postgresql-down", "sqlite-unopenable"],
)
def test_an_unreachable_database_is_one_line_naming_database_url(tmp_path, url, cause):
    url = url.format(port=free_port(), tmp=tmp_path)
    line = _one_line(flask_upgrade(app_env(tmp_path, url)))
    assert line.startswith("aura: configuration error: DATABASE_URL=")
    assert cause in line and "hunter2-secret" not in line
    if "hunter2" in url:
        assert "aura:***@127.0.0.1" in line


def _started(tmp_path, server_env, workers: int = 2, unset: tuple[str, ...] = (), **settings: str) -> Gunicorn:
    server = Gunicorn(tmp_path, server_env, workers=workers, **settings)
    for name in unset:
        server.env.pop(name, None)
    return server.start()


def _log_lines(server: Gunicorn) -> list[str]:
    return server.log_path.read_text(errors="replace").splitlines()


def test_gunicorn_workers_is_the_documented_name_and_wins(tmp_path, server_env):
    server = _started(tmp_path, server_env, GUNICORN_WORKERS="3", WEB_CONCURRENCY="2", GUNICORN_WORKR="4")
    try:
        assert len(server.wait_for_workers(3)) == 3
        lines = _log_lines(server)
        both = [line for line in lines if "GUNICORN_WORKERS='3' and WEB_CONCURRENCY='2' are both set" in line]
        typo = [line for line in lines if "GUNICORN_WORKR is not a setting" in line]
        assert len(both) == 1 and "GUNICORN_WORKERS wins" in both[0]
        assert len(typo) == 1 and "did you mean GUNICORN_WORKERS?" in typo[0]  # once, not per worker
    finally:
        server.stop()
    alone = _started(tmp_path, server_env, unset=("WEB_CONCURRENCY",), GUNICORN_WORKERS="3")
    try:
        assert len(alone.wait_for_workers(3)) == 3
        assert not [line for line in _log_lines(alone) if "WARNING" in line], alone.log()
    finally:
        alone.stop()


def test_typos_of_every_prefix_are_warned_about_and_unrelated_names_are_not(tmp_path, server_env):
    server = _started(
        tmp_path,
        server_env,
        AURA_INSTANCE_PAHT="/tmp",
        GUNICORN_TIMEOT="5",
        METRICS_PROT="9100",
        AURA_SOMETHING_ELSE_ENTIRELY="1",
        API_DOCS_ASSETS_URL="https://cdn.example.com/",
    )
    try:
        warnings = [line for line in _log_lines(server) if "[WARNING]" in line]
        assert any("AURA_INSTANCE_PAHT" in w and "AURA_INSTANCE_PATH?" in w for w in warnings)
        assert any("GUNICORN_TIMEOT" in w and "GUNICORN_TIMEOUT?" in w for w in warnings)
        assert any("METRICS_PROT" in w and "METRICS_PORT?" in w for w in warnings)
        assert any("API_DOCS_ASSETS_URL is no longer read" in w for w in warnings)
        assert not any("AURA_SOMETHING_ELSE_ENTIRELY" in w for w in warnings), warnings
        assert len(warnings) == 4, warnings
    finally:
        server.stop()


def _gunicorn_fails(tmp_path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return _one_line(result)


def test_a_metrics_port_that_clashes_with_the_bind_is_refused_at_start(tmp_path, server_env):
    port = free_port()
    env = {**server_env, "GUNICORN_BIND": f"127.0.0.1:{port}", "METRICS_PORT": str(port)}
    line = _gunicorn_fails(tmp_path, env)
    assert line.startswith(f"aura: configuration error: METRICS_PORT={port}: the same port as GUNICORN_BIND")
    bad_host = {**server_env, "GUNICORN_BIND": f"127.0.0.1:{port}", "METRICS_PORT": "0", "METRICS_HOST": "not a host"}
    assert "METRICS_HOST='not a host'" in _gunicorn_fails(tmp_path, bad_host)


def _listener_answers(host: str, port: int) -> bool:
    try:
        return requests.get(f"http://{host}:{port}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_the_listener_binds_metrics_host_or_loopback_for_a_unix_bind(tmp_path, server_env):
    port = free_port()
    sock = tmp_path / "aura.sock"
    server = Gunicorn(tmp_path, server_env, workers=1, GUNICORN_BIND=f"unix:{sock}", METRICS_PORT=str(port))
    server.start(ready_url=f"http://127.0.0.1:{port}/healthz")  # the app listens on the socket only
    try:
        # The listener answers as soon as it is bound; the master logs the line just after.
        _wait(lambda: "metrics listener on" in server.log(), server)
        assert f"metrics listener on 127.0.0.1:{port}" in server.log()
        assert "unix" not in re.findall(r"metrics listener.*", server.log())[0].split(" on ")[1]
    finally:
        server.stop()
    explicit = Gunicorn(tmp_path, server_env, workers=1, METRICS_PORT=str(port), METRICS_HOST="127.0.0.2").start()
    try:
        _wait(lambda: _listener_answers("127.0.0.2", port), explicit)
        assert not _listener_answers("127.0.0.1", port)  # only where it was told
    finally:
        explicit.stop()


def _wait(condition, server: Gunicorn, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
        time.sleep(0.2)


def test_one_ready_line_after_gunicorns_own(tmp_path, server_env):
    port = free_port()
    server = _started(tmp_path, server_env, workers=2, METRICS_PORT=str(port))
    try:
        _wait(lambda: "Aura ready" in server.log(), server)
        lines = _log_lines(server)
    finally:
        server.stop()
    ready = [i for i, line in enumerate(lines) if "Aura ready at" in line]
    assert len(ready) == 1, lines
    line = lines[ready[0]]
    assert ready[0] > max(i for i, line in enumerate(lines) if "Booting worker" in line)
    assert f"Aura ready at {server.url}: 2 workers" in line
    assert "database sqlite (sqlite:///" in line or "database postgresql (" in line
    assert "Redis redis://127.0.0.1:" in line
    assert f"metrics in {tmp_path}" in line or "metrics in /dev/shm/" in line
    assert f"listener http://127.0.0.1:{port}/metrics" in line
    assert f"docs {server.url}/api/v1/docs" in line


def test_the_ready_line_says_standalone_without_redis(tmp_path, server_env):
    with socket.socket() as nothing:  # a port no Redis listens on
        nothing.bind(("127.0.0.1", 0))
        env = {**server_env, "REDIS_URL": f"redis://:hunter2-secret@127.0.0.1:{nothing.getsockname()[1]}"}
        server = _started(tmp_path, env, workers=1, API_DOCS_ENABLED="false")
        try:
            _wait(lambda: "Aura ready" in server.log(), server)
            line = next(line for line in _log_lines(server) if "Aura ready at" in line)
        finally:
            server.stop()
    assert "STANDALONE (no Redis at redis://:***@127.0.0.1:" in line and "hunter2" not in line
    assert "no listener (METRICS_PORT=0)" in line and "no docs page" in line


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_access_lines_never_carry_query_strings(tmp_path, server_env, log_format):
    server = _started(tmp_path, server_env, workers=1, GUNICORN_ACCESS_LOG="-", LOG_FORMAT=log_format)
    try:
        requests.get(
            server.url + "/api/v1/workflows?cursor=secret-cursor-value&limit=5",
            headers={"Referer": "https://app.example.com/page?token=secret-referer-token"},
            timeout=20,
        )
        _wait(lambda: "/api/v1/workflows" in server.log(), server)
    finally:
        server.stop()
    access = [line for line in _log_lines(server) if "/api/v1/workflows" in line]
    assert access, server.log()
    assert not [line for line in access if "secret-cursor-value" in line or "secret-referer-token" in line], access
    if log_format == "text":  # still Gunicorn's familiar line, the path and the referrer without their query
        assert '"GET /api/v1/workflows HTTP/1.1" 401' in access[0] and '"https://app.example.com/page"' in access[0]


def test_flask_commands_do_not_import_langgraph(tmp_path):
    """`flask --app wsgi ...` loads the app; LangGraph (~0.7 s of its ~2 s) loads only where a
    workflow runs - Gunicorn's master compiles both graphs before it forks (aura.workflows.warm_up)."""
    probe = "import sys, wsgi; print(sorted({m.split('.')[0] for m in sys.modules} & {'langgraph', 'langsmith'}))"
    result = subprocess.run(
        [str(BIN / "python"), "-c", probe],
        cwd=ROOT,
        env=app_env(tmp_path, f"sqlite:///{tmp_path / 'aura.db'}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
