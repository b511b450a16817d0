"""Tooling to run Aura's own processes in tests and benchmarks (as ``flask.testing`` is Flask's).

Nothing in the service imports this package: it exists so that ``tests/`` and ``bench/`` start
Gunicorn, a private redis-server and migrations with one launcher, without the benchmarks
importing from ``tests/``. It needs the dev requirements (``requests``).
"""
