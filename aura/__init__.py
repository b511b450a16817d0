"""Aura: a Flask API that helps people learn to code, with production-grade metrics.

The app factory is `aura.app.create_app`. This package imports nothing itself, so that
`aura.metrics` can be used from Gunicorn's master (gunicorn.conf.py's hooks) without loading Flask.
"""
