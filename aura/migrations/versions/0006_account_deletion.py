"""accounts: row ids never reused, and deleting an account deletes its runs

Revision ID: 0006_account_deletion
Revises: 0005_mailbox_skeletons

On SQLite, `users` becomes AUTOINCREMENT: a new account never gets the row id of a deleted one
(SQLite otherwise reuses the highest), so rows a deleted account left behind can never name it.
The sequence starts above every id any row still names, and runs whose account is already gone
(left by a delete while foreign keys were off) are deleted: they would have passed to the next
account. PostgreSQL's sequence never reuses ids, and enforced the key all along.

On both, `workflow_runs.user_id` becomes ON DELETE CASCADE: deleting an account deletes its runs
(PostgreSQL refused the delete before; SQLite, whose connections now enforce foreign keys,
ignored the key).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_account_deletion"
down_revision = "0005_mailbox_skeletons"
branch_labels = None
depends_on = None

FK = "fk_workflow_runs_user_id_users"
# SQLite's foreign key on workflow_runs has no name; batch mode names it by this convention.
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _runs_foreign_key(ondelete):
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        with op.batch_alter_table("workflow_runs", naming_convention=NAMING, recreate="always") as batch_op:
            batch_op.drop_constraint(FK, type_="foreignkey")
            batch_op.create_foreign_key(FK, "users", ["user_id"], ["id"], ondelete=ondelete)
        return
    for key in sa.inspect(conn).get_foreign_keys("workflow_runs"):
        if key["referred_table"] == "users":
            op.drop_constraint(key["name"], "workflow_runs", type_="foreignkey")
    op.create_foreign_key(FK, "workflow_runs", "users", ["user_id"], ["id"], ondelete=ondelete)


def upgrade():
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        highest = conn.execute(sa.text(
            "SELECT max(coalesce((SELECT max(id) FROM users), 0),"
            " coalesce((SELECT max(user_id) FROM workflow_runs), 0),"
            " coalesce((SELECT max(user_id) FROM revoked_tokens), 0))"
        )).scalar()
        with op.batch_alter_table("users", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass
        conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'users'"))
        conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('users', :seq)"), {"seq": highest})
    conn.execute(sa.text("DELETE FROM workflow_runs WHERE user_id NOT IN (SELECT id FROM users)"))
    _runs_foreign_key("CASCADE")


def downgrade():
    _runs_foreign_key(None)
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("users", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
