"""The WSGI stack is assembled in one place, in one order: metrics, ProxyFix, edge, Flask."""

from __future__ import annotations

import re
from pathlib import Path

from werkzeug.middleware.proxy_fix import ProxyFix

from aura.api.edge import EdgeMiddleware
from aura.instrumentation.http import HttpMetricsMiddleware
from aura.metrics import processes

ROOT = Path(__file__).resolve().parents[2]


def test_the_stack_is_metrics_then_proxy_fix_then_edge_then_flask(make_app):
    app = make_app(trusted_proxy_count=2)
    metrics = app.wsgi_app
    assert isinstance(metrics, HttpMetricsMiddleware)
    proxy_fix = metrics.wsgi_app
    assert isinstance(proxy_fix, ProxyFix) and proxy_fix.x_for == 2
    edge = proxy_fix.app
    assert isinstance(edge, EdgeMiddleware)
    assert edge.wsgi_app.__func__ is type(app).wsgi_app  # Flask itself


def test_without_a_trusted_proxy_or_metrics_those_layers_are_left_out(make_app):
    app = make_app(trusted_proxy_count=0, metrics_enabled=False)
    assert isinstance(app.wsgi_app, EdgeMiddleware)


def test_only_the_pipeline_wraps_wsgi_app():
    wrapping = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "aura").rglob("*.py")
        if re.search(r"(?<!self)\.wsgi_app\s*=", path.read_text())  # a middleware keeps its own
    }
    assert wrapping == {"aura/api/pipeline.py"}


def test_worker_start_callbacks_wait_for_the_workers_when_a_server_forks_them(monkeypatch):
    ran: list[str] = []
    monkeypatch.setattr(processes, "_at_worker_start", None)
    processes.on_worker_start(lambda: ran.append("served here"))  # no pre-fork server: now
    assert ran == ["served here"]
    processes.serve_in_workers()  # gunicorn.conf.py, before the app loads
    processes.on_worker_start(lambda: ran.append("in the worker"))
    assert ran == ["served here"]
    processes.run_worker_start()  # post_worker_init, in each worker
    assert ran == ["served here", "in the worker"]
