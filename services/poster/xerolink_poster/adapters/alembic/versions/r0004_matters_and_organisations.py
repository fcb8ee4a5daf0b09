"""Store each connection's routing and the matters' Xero tracking options.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

`connection.firm_group` names the group of connections a routing ever joined ("" for none: every
existing connection). `connection.routing` (nullable) holds the serialized
xerolink.poster.v1.ConnectionRouting (the trust organisation's connection and a connection per
division); NULL for every existing connection, which routes nothing, as before.
`tracking_category_link` is the Xero tracking category a connection's matters are tracked in, found
or created once; `matter_option_link` is each matter's option in it, found or created once and known
by its TrackingOptionID (docs/matters-and-organisations.md).
New tables and two columns with defaults: no row of an existing table changes.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connection") as batch:
        batch.add_column(sa.Column("routing", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("firm_group", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "tracking_category_link",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("category_name", sa.String(length=100), nullable=False),
        sa.Column("tracking_category_id", sa.String(length=64), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("connection_id"),
    )
    op.create_table(
        "matter_option_link",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=False),
        sa.Column("tracking_category_id", sa.String(length=64), nullable=False),
        sa.Column("tracking_option_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "action_id"),
    )


def downgrade() -> None:
    op.drop_table("matter_option_link")
    op.drop_table("tracking_category_link")
    with op.batch_alter_table("connection") as batch:
        batch.drop_column("firm_group")
        batch.drop_column("routing")
