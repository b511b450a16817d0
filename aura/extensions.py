"""The database handle every layer shares: Flask-SQLAlchemy's `db`, bound to an app in the factory.

It is the one Flask-backed object below the web layer: `db.session` is scoped to the app
context that the web layer, a `flask` command or a test sets up. The web layer's own extensions
(JWT, migrations, the OpenAPI object) live with it, in `aura.api` and `aura.app`.
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every model (typed SQLAlchemy 2 style)."""


db = SQLAlchemy(model_class=Base)
