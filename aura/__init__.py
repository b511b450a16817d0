"""Aura: a Flask API that helps people learn to code, with production-grade metrics.

`create_app` is imported lazily so that `aura.metrics` can be used from Gunicorn's master
(gunicorn.conf.py hooks) without importing Flask and the whole app.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from aura.app import create_app

        return create_app
    raise AttributeError(name)
