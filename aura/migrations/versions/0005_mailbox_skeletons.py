"""users: email skeletons of the mailbox (IDNA UTS #46 domain, unquoted local part)

Revision ID: 0005_mailbox_skeletons
Revises: 0004_public_ids_and_skeletons

The look-alike key is now taken of the mailbox an address names, not of its spelling
(`aura.auth.emails.mailbox`): `ann@xn--bcher-kva.de` and `ann@bücher.de`, `"ann"@x` and `ann@x`
share one. Every account's skeleton is computed again, oldest first; an account whose skeleton an
older one already has keeps NULL (it can still log in; no new look-alike can register against
either), as in 0004.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_mailbox_skeletons"
down_revision = "0004_public_ids_and_skeletons"
branch_labels = None
depends_on = None


def upgrade():
    from aura.auth.emails import skeleton

    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
                     sa.column("email_skeleton", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)).all()
    conn.execute(users.update().values(email_skeleton=None))  # the unique key is free to refill
    seen: set[str] = set()
    for row in rows:
        key = skeleton(row.email)
        conn.execute(users.update().where(users.c.id == row.id).values(email_skeleton=None if key in seen else key))
        seen.add(key)


def downgrade():
    # The new skeletons are the old ones for every address but IDN, punycode and quoted ones,
    # whose old keys were weaker; they stay (0004's code computes them afresh if asked).
    pass
