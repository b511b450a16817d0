"""workflow runs: a status column (the run's verdict) and an index for listing newest first

Revision ID: 0003_workflow_run_status
Revises: 0002_seed_lessons
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_workflow_run_status"
down_revision = "0002_seed_lessons"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_workflow_runs_user_created", ["user_id", "created_at", "id"], unique=False)
    # Existing rows: the verdict is in the stored result (audit: status, struggle: result).
    runs = sa.table("workflow_runs", sa.column("id", sa.String), sa.column("workflow_type", sa.String),
                    sa.column("result", sa.JSON), sa.column("status", sa.String))
    conn = op.get_bind()
    for run_id, workflow_type, result in conn.execute(sa.select(runs.c.id, runs.c.workflow_type, runs.c.result)):
        key = "status" if workflow_type == "audit" else "result"
        conn.execute(runs.update().where(runs.c.id == run_id).values(status=(result or {}).get(key)))


def downgrade():
    with op.batch_alter_table("workflow_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_workflow_runs_user_created")
        batch_op.drop_column("status")
