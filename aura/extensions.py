"""The database handle every layer shares: Flask-SQLAlchemy's `db`, bound to an app in the factory.

It is the one Flask-backed object below the web layer: `db.session` is scoped to the app
context that the web layer, a `flask` command or a test sets up. The web layer's own extensions
(JWT, migrations, the OpenAPI object) live with it, in `aura.api` and `aura.app`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every model (typed SQLAlchemy 2 style)."""


def json_text(value: Any) -> str:
    """JSON columns as stored: UTF-8 text, compact. The default (ASCII with \\u escapes) stored a
    non-ASCII character in 6 bytes, or 12 outside the BMP, where UTF-8 needs 2 to 4."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


db = SQLAlchemy(model_class=Base, engine_options={"json_serializer": json_text})


@event.listens_for(Engine, "connect")
def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite enforces foreign keys only on connections that ask, each time they open: every one
    of this process's does (deleting an account deletes its runs, ON DELETE CASCADE). PostgreSQL
    always enforces them. Migrations turn it off while they rebuild tables (aura/migrations/env.py)."""
    enforce_sqlite_foreign_keys(dbapi_connection)


def enforce_sqlite_foreign_keys(dbapi_connection: Any) -> None:
    """The body of `_sqlite_foreign_keys` (a plain function: mutmut leaves decorated ones alone)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
