"""users: a random public id (token subject) and the email's confusable skeleton

Revision ID: 0004_public_ids_and_skeletons
Revises: 0003_workflow_run_status

Existing accounts get a random public id. Their skeleton is filled in oldest first; an account
whose skeleton an older one already has keeps NULL (it can still log in; no new look-alike can
register against either).
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004_public_ids_and_skeletons"
down_revision = "0003_workflow_run_status"
branch_labels = None
depends_on = None


def upgrade():
    from aura.auth.emails import skeleton

    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("email_skeleton", sa.String(length=320), nullable=True))
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
                     sa.column("public_id", sa.String), sa.column("email_skeleton", sa.String))
    conn = op.get_bind()
    seen: set[str] = set()
    for row in conn.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)).all():
        key = skeleton(row.email)
        conn.execute(users.update().where(users.c.id == row.id).values(
            public_id=secrets.token_hex(16), email_skeleton=None if key in seen else key))
        seen.add(key)
    with op.batch_alter_table("users") as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint("uq_users_public_id", ["public_id"])
        batch_op.create_unique_constraint("uq_users_email_skeleton", ["email_skeleton"])


def downgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_constraint("uq_users_email_skeleton", type_="unique")
        batch_op.drop_constraint("uq_users_public_id", type_="unique")
        batch_op.drop_column("email_skeleton")
        batch_op.drop_column("public_id")
