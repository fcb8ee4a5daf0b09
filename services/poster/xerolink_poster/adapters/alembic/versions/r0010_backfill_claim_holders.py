"""Count the starts that hold a backfill's request_id claim.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

The claim of revision 0009 was freed by the start that made it when that start failed having
queued nothing, even while a retry of the same request that had joined the claim was running:
the retry could queue the bill and stop part-way, and another request could then take the
request_id, so the first could no longer be finished. `holders` counts the starts holding the
claim; a failed start drops its own hold, and the claim goes with the last. A claim held when
this revision runs is kept by one hold: its start may have queued something.

Frozen once released: change the schema in a new revision, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("backfill_claim") as batch:
        batch.add_column(sa.Column("holders", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("backfill_claim") as batch:
        batch.drop_column("holders")
