"""Database models (SQLAlchemy 2, typed)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from aura.extensions import db

if TYPE_CHECKING:
    # db.Model is built at run time from Base (flask-sqlalchemy's model_class), which mypy cannot
    # follow; Base carries everything the models' types need.
    from aura.extensions import Base as Model
else:
    Model = db.Model


def utcnow() -> datetime:
    """Timezone-aware now, for defaults."""
    return datetime.now(UTC)


def new_public_id() -> str:
    """A random subject for tokens: never reused, unlike row ids (SQLite reuses the highest)."""
    return secrets.token_hex(16)


class User(Model):
    """An account. Emails are stored normalised (NFKC, case-folded: `aura.auth.emails`), and
    their confusable skeleton is unique, so no account can look like another.

    Row ids are never reused: SQLite's AUTOINCREMENT (PostgreSQL's sequence never goes back), so
    rows left by a deleted account - runs, revocations - never name a newer one. Deleting an
    account deletes its runs (ON DELETE CASCADE; `flask user delete` also removes its revocation
    rows), and its tokens open nothing from the next request on (their `sub` is gone for good).
    """

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    # NULL only for accounts made before skeletons whose skeleton another account already had.
    email_skeleton: Mapped[str | None] = mapped_column(String(320), unique=True, nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RevokedToken(Model):
    """A revoked JWT, for standalone mode (no Redis). Rows past `expires_at` may be purged.
    `user_id` is a plain column, not a foreign key: `flask user delete` removes an account's rows,
    and since ids are never reused a row left by a plain SQL delete names no other account."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_type: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lesson(Model):
    """A lesson of the catalog that struggle detection recommends from."""

    __tablename__ = "lessons"

    lesson_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(64), index=True)
    error_types: Mapped[list[str]] = mapped_column(JSON, default=list)


class WorkflowRun(Model):
    """A stored workflow result, readable by its owner only."""

    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    workflow_type: Mapped[str] = mapped_column(String(16), index=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE", name="fk_workflow_runs_user_id_users"), index=True
    )
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The verdict (audit: pass/fail/remediation_required; struggle: struggling/not_struggling),
    # a column so that listings can filter on it.
    status: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_workflow_runs_user_created", "user_id", "created_at", "id"),)
