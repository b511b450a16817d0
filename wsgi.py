"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`, `flask --app wsgi ...`.

A bad setting stops the process with one line naming the variable, not a traceback.
"""

from aura.config import ConfigError, exit_on_config_error, gunicorn_settings

try:
    gunicorn_settings()  # `make run` and deployment jobs refuse a bad GUNICORN_* before serving
    from aura.app import create_app

    app = create_app()
except ConfigError as exc:
    exit_on_config_error(exc)
