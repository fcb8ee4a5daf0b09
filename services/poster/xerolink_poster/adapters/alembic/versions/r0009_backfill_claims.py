"""Claim a backfill's request_id before anything of it is posted.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

A backfill was recorded under its request_id only after its transactions were posted. Two
starts of different requests under one request_id both posted, and the one recorded second was
refused REQUEST_ID_REUSED with its transactions already queued; after a start that stopped
part-way (nothing recorded), another request could take the request_id, and the first could no
longer be finished under it. `backfill_claim` holds the request a start claimed the request_id
for, from before it posts until its backfill is recorded. A new table only: no row changes.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backfill_claim",
        sa.Column("connection_id", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "request_id"),
    )


def downgrade() -> None:
    op.drop_table("backfill_claim")
