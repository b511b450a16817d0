"""Flask extensions, created unbound here and bound to an app in the factory."""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase

from aura.api.openapi import AuraApi


class Base(DeclarativeBase):
    """Declarative base for every model (typed SQLAlchemy 2 style)."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
jwt = JWTManager()
api = AuraApi()
