"""seed the lesson catalog from aura/workflows/lessons.json

Revision ID: 0002_seed_lessons
Revises: 4f8e69fa3ac0
"""
import json
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002_seed_lessons"
down_revision = "4f8e69fa3ac0"
branch_labels = None
depends_on = None

CATALOG = Path(__file__).resolve().parents[2] / "workflows" / "lessons.json"


def _lessons():
    data = json.loads(CATALOG.read_text())
    return data["lessons"] if isinstance(data, dict) else data


def upgrade():
    lessons = sa.table("lessons", sa.column("lesson_id", sa.String), sa.column("title", sa.String),
                       sa.column("topic", sa.String), sa.column("error_types", sa.JSON))
    op.bulk_insert(lessons, [
        {"lesson_id": x["lesson_id"], "title": x["title"], "topic": x["topic"],
         "error_types": list(x["error_types"])}
        for x in _lessons()
    ])


def downgrade():
    op.execute("DELETE FROM lessons")
