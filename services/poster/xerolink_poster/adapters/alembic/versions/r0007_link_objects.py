"""Index the Xero objects each link holds, by Xero id.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

Finding the link that holds a Xero object (every webhook event of an object without a snapshot,
most of them made in Xero by someone else; drift checks of links made before snapshots; the
look-up after a lost answer; ListLinks by Xero id) matched the JSON text of every link of the
connection, a read that grew with the firm's links. `link_object` (connection_id, xero_id,
link_id) names each object a link holds, its id in lower case. The rows are filled here from
every link's `xero_objects`, in batches by link id; no existing row changes.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    op.create_table(
        "link_object",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("xero_id", sa.String(length=64), nullable=False),
        sa.Column("link_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "xero_id", "link_id"),
    )
    link = sa.table(
        "link", sa.column("id", sa.Integer), sa.column("connection_id", sa.String), sa.column("xero_objects", sa.Text)
    )
    held = sa.table(
        "link_object",
        sa.column("connection_id", sa.String),
        sa.column("xero_id", sa.String),
        sa.column("link_id", sa.Integer),
    )
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.select(link.c.id, link.c.connection_id, link.c.xero_objects)
            .where(link.c.id > after, link.c.xero_objects != "[]")
            .order_by(link.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        found = {
            (connection_id, str(item["xero_id"]).lower(), link_id)
            for link_id, connection_id, objects in rows
            for item in _objects(objects)
            # Every object xerolink records has a xero_id; anything else names no object.
            if isinstance(item, dict) and item.get("xero_id")
        }
        if found:
            bind.execute(
                held.insert(),
                [{"connection_id": c, "xero_id": x, "link_id": i} for c, x, i in sorted(found)],
            )
        after = rows[-1][0]


def _objects(text: str | None) -> list[object]:
    """A link's objects as stored; a value that is not a JSON list (written by hand) names none."""
    try:
        parsed = json.loads(text or "[]")
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def downgrade() -> None:
    op.drop_table("link_object")
